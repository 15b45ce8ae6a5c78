"""Handlers of the simulated API endpoints and their worker tasks.

Every handler receives ``(ctx, params)`` where params are the already validated
string parameters (path params merged in) and returns the ``data`` value, or a
``(data, {"total": n})`` tuple when the envelope carries extra attributes.
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
import time

from . import config as sim_config
from .backups import SnapshotsAndBackups
from .guest_ops import GuestOps
from .disks import Disks
from .console import Consoles
from .bulk import BulkActions
from .perms import perm_error
from .rrd import Rrd
from .schema import parse_property_string, split_list
from .state import (GiB, HA_STATES, TEMPLATES, Container, PVEError, Task, ha_request_state, mac_for, new_mac,
                    ip_for, normalize_tags, param_error)

STATUS_CYCLE_SECONDS = 10  # pvestatd's update loop (PVE::Service::pvestatd, $updatetime)


def status_time(now: float | None = None) -> float:
    """When the figures /cluster/resources answers at ``now`` (default: now) were taken: the start of
    pvestatd's current cycle."""
    now = time.time() if now is None else now
    return STATUS_CYCLE_SECONDS * math.floor(now / STATUS_CYCLE_SECONDS)


UPID_RE = re.compile(
    r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):"
    r"([0-9A-Fa-f]{8}):([^:\s]+):([^:\s]*):([^:\s]+):$")

# GET /version and node status per simulated release (pve-manager "bump version to 8.4.1" 2a5fa54a,
# "bump version to 9.1.1" f4d3f125; kernels of the 8.4 / 9.1 ISOs)
RELEASES = {
    "8.4": {"version": {"version": "8.4.1", "release": "8.4", "repoid": "2a5fa54a8503f96d"},
            "kernel": ("6.8.12-9-pve", "#1 SMP PREEMPT_DYNAMIC PMX 6.8.12-9 (2025-03-16T19:18Z)")},
    "9.1": {"version": {"version": "9.1.1", "release": "9.1", "repoid": "f4d3f125ffae50e9"},
            "kernel": ("6.17.2-1-pve", "#1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 (2025-10-21T11:55Z)")},
}
VERSION = RELEASES["8.4"]["version"]  # backwards compatible name


def _eui64(prefix: str, mac: str) -> str:
    b = [int(x, 16) for x in mac.split(":")]
    b[0] ^= 0x02
    iid = bytes(b[:3] + [0xFF, 0xFE] + b[3:])
    net = ipaddress.IPv6Address(prefix).packed[:8]
    return str(ipaddress.IPv6Address(net + iid))


def _slaac(vmid: int, idx: int, mac: str) -> str:
    return _eui64(f"2001:db8:{vmid & 0xFFFF:x}:{idx:x}::", mac)


class TaskFailed(Exception):
    pass


class TaskWarnings(Exception):
    pass


class NoRoute(Exception):
    """The endpoint exists in the schema but the simulator does not implement it."""


class Ctx:
    def __init__(self, user: str, endpoint, is_token: bool = False, privs=None):
        self.user = user  # "root@pam" or "root@pam!tokenid"
        self.endpoint = endpoint
        self.is_token = is_token
        self.privs = privs  # TokenPrivileges when the request is limited by them, else None

    def has(self, path, privs, any_=False) -> bool:
        return self.privs is None or self.privs.has(path, privs, any_)

    def check(self, path, privs, any_=False):
        if self.privs is not None:
            self.privs.check(path, privs, any_)


def _b(v) -> bool:
    return str(v) == "1"


class Api:
    def __init__(self, sim):
        self.sim = sim
        self.cluster = sim.cluster
        self.routes = {}
        R = self.routes
        R[("GET", "/version")] = self.version
        R[("GET", "/cluster/resources")] = self.cluster_resources
        R[("GET", "/cluster/nextid")] = self.nextid
        R[("GET", "/cluster/status")] = self.cluster_status
        R[("GET", "/cluster/tasks")] = self.cluster_tasks
        R[("GET", "/nodes")] = self.nodes
        R[("GET", "/nodes/{node}")] = self.node_index
        R[("GET", "/nodes/{node}/status")] = self.node_status
        R[("GET", "/nodes/{node}/lxc")] = self.lxc_list
        R[("POST", "/nodes/{node}/lxc")] = self.lxc_create
        R[("GET", "/nodes/{node}/lxc/{vmid}")] = self.lxc_index
        R[("DELETE", "/nodes/{node}/lxc/{vmid}")] = self.lxc_destroy
        R[("GET", "/nodes/{node}/lxc/{vmid}/config")] = self.lxc_config
        R[("PUT", "/nodes/{node}/lxc/{vmid}/config")] = self.lxc_update
        R[("GET", "/nodes/{node}/lxc/{vmid}/status")] = self.lxc_status_index
        R[("GET", "/nodes/{node}/lxc/{vmid}/status/current")] = self.lxc_status
        R[("POST", "/nodes/{node}/lxc/{vmid}/status/start")] = self.lxc_start
        R[("POST", "/nodes/{node}/lxc/{vmid}/status/stop")] = self.lxc_stop
        R[("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown")] = self.lxc_shutdown
        R[("POST", "/nodes/{node}/lxc/{vmid}/status/reboot")] = self.lxc_reboot
        R[("GET", "/nodes/{node}/lxc/{vmid}/interfaces")] = self.lxc_interfaces
        R[("GET", "/nodes/{node}/tasks")] = self.node_tasks
        R[("GET", "/nodes/{node}/tasks/{upid}")] = self.task_index
        R[("GET", "/nodes/{node}/tasks/{upid}/status")] = self.task_status
        R[("GET", "/nodes/{node}/tasks/{upid}/log")] = self.task_log
        R[("GET", "/nodes/{node}/storage")] = self.storage_list
        R[("GET", "/nodes/{node}/storage/{storage}/content")] = self.storage_content
        R[("GET", "/nodes/{node}/network")] = self.network
        R[("GET", "/access/permissions")] = self.access_permissions
        R[("GET", "/cluster/ha/resources")] = self.ha_resources
        R[("GET", "/cluster/ha/resources/{sid}")] = self.ha_resource
        R[("GET", "/cluster/ha/status")] = self.ha_status_index
        R[("GET", "/cluster/ha/status/current")] = self.ha_status_current
        R[("GET", "/cluster/ha/groups")] = self.ha_groups
        R[("POST", "/cluster/ha/groups")] = self.ha_group_create
        R[("GET", "/cluster/ha/groups/{group}")] = self.ha_group_read
        R[("DELETE", "/cluster/ha/groups/{group}")] = self.ha_group_delete
        self.backups = SnapshotsAndBackups(self)
        self.backups.register(R)
        GuestOps(self).register(R)
        Disks(self).register(R)
        Rrd(self).register(R)
        self.consoles = Consoles(self)
        self.consoles.register(R)
        if sim.pve_version != "8.4":
            BulkActions(self).register(R)
        sim_config.register(self, R)
        if sim.pve_version != "8.4":
            R[("GET", "/cluster/ha/rules")] = self.ha_rules
            R[("POST", "/cluster/ha/rules")] = self.ha_rule_create
            R[("GET", "/cluster/ha/rules/{rule}")] = self.ha_rule_read
            R[("DELETE", "/cluster/ha/rules/{rule}")] = self.ha_rule_delete

    @property
    def v9(self) -> bool:
        return self.sim.pve_version != "8.4"

    # ---------------------------------------------------------------------------------------
    def dispatch(self, ctx: Ctx, params: dict):
        ep = ctx.endpoint
        fn = self.routes.get((ep.method, ep.path))
        if fn is None:
            raise NoRoute()
        node = params.get("node")
        if node is not None and ep.path.startswith("/nodes/{node}") and node not in self.cluster.nodes:
            raise PVEError(f"hostname lookup '{node}' failed - failed to get address info for: "
                           f"{node}: Name or service not known")
        if node is not None and ep.path.startswith("/nodes/{node}/") and ep.reaches_node \
                and not self.sim.node_online(node):
            raise PVEError("No route to host", 595)
        with self.cluster.lock:
            return fn(ctx, params)

    # --- simple GETs -------------------------------------------------------------------------
    def version(self, ctx, p):
        return dict(RELEASES[self.sim.pve_version]["version"])

    def _node_entries(self, ctx, now, metrics=None):
        """PVE::API2Tools::extract_node_stats: an offline node (RRD data older than 5 min are
        dropped by pmxcfs) has only id/node/type/status; without Sys.Audit no figures.
        ``metrics``: the guests' metrics at ``now`` already computed (see Cluster.node_usages)."""
        audited = [name for name in self.cluster.nodes
                   if self.sim.node_online(name) and ctx.has(f"/nodes/{name}", ["Sys.Audit"])]
        usage = self.cluster.node_usages(audited, now, metrics)
        out = []
        for name, n in self.cluster.nodes.items():
            e = {"id": f"node/{name}", "node": name, "type": "node"}
            if not self.sim.node_online(name):
                e["status"] = "offline" if n["status"] in ("online", "offline") else n["status"]
                out.append(e)
                continue
            e["status"] = "online"
            u = usage.get(name)
            if u:
                e.update(uptime=u["uptime"], cpu=u["cpu"], mem=u["mem"], disk=9 * GiB)
            e["level"] = ""
            if u:
                e.update(maxcpu=n["maxcpu"], maxmem=n["maxmem"], maxdisk=100 * GiB)
            out.append(e)
        return out

    def nodes(self, ctx, p):
        out = self._node_entries(ctx, time.time())
        for e in out:
            name = e["node"]
            e["ssl_fingerprint"] = ":".join("%02X" % ((i * 37 + len(name)) % 256) for i in range(32))
        return out

    def node_index(self, ctx, p):
        return [{"name": c} for c in self.sim.schema.children("/nodes/{node}")]

    def node_status(self, ctx, p):
        node = p["node"]
        n = self.cluster.nodes[node]
        u = self.cluster.node_usage(node, time.time())
        krel, kver = RELEASES[self.sim.pve_version]["kernel"]
        vinfo = RELEASES[self.sim.pve_version]["version"]
        memory = {"total": n["maxmem"], "used": u["mem"], "free": n["maxmem"] - u["mem"]}
        if self.v9:  # pve-manager 9.0 added MemAvailable (the page cache counts as available)
            memory["available"] = n["maxmem"] - u["mem"]
        return {
            "boot-info": {"mode": "efi", "secureboot": 0},
            "cpu": u["cpu"],
            "cpuinfo": {"cores": n["maxcpu"] // 2, "cpus": n["maxcpu"], "sockets": 1,
                        "model": "AMD EPYC 7302P 16-Core Processor", "mhz": "3000.000",
                        "hvm": "1", "flags": "fpu vme de pse", "user_hz": 100},
            "current-kernel": {"machine": "x86_64", "release": krel, "sysname": "Linux", "version": kver},
            "kversion": f"Linux {krel} {kver}",
            "loadavg": ["%.2f" % (u["cpu"] * n["maxcpu"]), "0.52", "0.48"],
            "memory": memory,
            "swap": {"total": 8 * GiB, "used": 0, "free": 8 * GiB},
            "pveversion": f"pve-manager/{vinfo['version']}/{vinfo['repoid']}",
            "rootfs": {"total": 100 * GiB, "used": 9 * GiB, "free": 91 * GiB, "avail": 86 * GiB},
            "ksm": {"shared": 0},
            "uptime": u["uptime"],
            "idle": 0,
            "wait": 0.0012,
        }

    # --- cluster -----------------------------------------------------------------------------
    def _guest_resource(self, ct: Container, now: float, online: bool = True, metrics=None) -> dict:
        """The container's /cluster/resources entry; the metrics it is built from go into
        ``metrics`` (vmid -> dict) when given, for the node figures of the same answer."""
        if online:
            n = self.cluster.nodes[ct.node]
            m = ct.metrics(now, n["maxcpu"])
            if metrics is not None:
                metrics[ct.vmid] = m
            e = {"id": f"lxc/{ct.vmid}", "type": "lxc", "vmid": ct.vmid, "node": ct.node,
                 "status": ct.status, "name": ct.name, "uptime": m["uptime"],
                 "template": 1 if ct.template else 0, "maxcpu": m["cpus"], "cpu": m["cpu"],
                 "maxmem": m["maxmem"], "mem": m["mem"], "maxdisk": m["maxdisk"], "disk": m["disk"],
                 "netin": m["netin"], "netout": m["netout"], "diskread": m["diskread"],
                 "diskwrite": m["diskwrite"]}
        else:
            # pve-manager API2Tools::extract_vm_stats without RRD data (pmxcfs drops entries older
            # than 5 minutes): no name/figures/template; lock, tags (config via pmxcfs), pool and
            # hastate are still added by API2/Cluster.pm
            e = {"id": f"lxc/{ct.vmid}", "vmid": ct.vmid, "node": ct.node, "type": "lxc",
                 "status": "unknown"}
        if ct.pool:
            e["pool"] = ct.pool
        if ct.lock:
            e["lock"] = ct.lock
        if ct.config.get("tags"):
            e["tags"] = ct.config["tags"]
        if ct.ha_state:
            e["hastate"] = ct.ha_state
        return e

    def cluster_resources(self, ctx, p):
        """pve-manager PVE/API2/Cluster.pm ``resources``: guests without VM.Audit, storages
        without Datastore.Audit, pools without Pool.Audit are left out silently."""
        typ = p.get("type")
        # The figures are what pvestatd last broadcast (NOTES.md: RRD data about 10 s old), so two
        # calls within one of its cycles answer the same figures; status changes show at once here.
        now = status_time()
        out = []
        # pmxcfs keeps every figure in memory, so the nodes and storages of the unfiltered answer
        # cost no more than their entries: the node sums reuse the guests' metrics, and the
        # storages are summed in one pass for all nodes
        metrics: dict[int, dict] = {}
        if typ is None:
            for pool in sorted(self.cluster.pools):
                if ctx.has(f"/pool/{pool}", ["Pool.Audit"]):
                    out.append({"id": f"/pool/{pool}", "type": "pool", "pool": pool})
        if typ in (None, "vm"):
            online = {n: self.sim.node_online(n) for n in self.cluster.nodes}
            full = ctx.privs is None or ctx.privs.full
            for ct in sorted(self.cluster.containers.values(), key=lambda c: c.vmid):
                if not full and not ctx.privs.has(f"/vms/{ct.vmid}", ["VM.Audit"]):
                    continue
                e = self._guest_resource(ct, now, online.get(ct.node, False), metrics)
                if not full and "pool" in e and not ctx.privs.has(f"/pool/{e['pool']}", ["Pool.Audit"]):
                    del e["pool"]
                out.append(e)
        if typ in (None, "node"):
            for e in self._node_entries(ctx, now, metrics):
                if e["status"] == "online":
                    e["cgroup-mode"] = 2
                out.append(e)
        if typ in (None, "storage"):
            used = self.cluster.storage_used(list(self.cluster.nodes))
            for node in self.cluster.nodes:
                up = self.sim.node_online(node)
                for s in self.cluster.storage_status(node, used):
                    if not ctx.has(f"/storage/{s['storage']}", ["Datastore.Audit"]):
                        continue
                    e = {"id": f"storage/{node}/{s['storage']}", "storage": s["storage"], "node": node,
                         "type": "storage", "plugintype": s["type"], "status": "unknown",
                         "shared": s["shared"], "content": s["content"]}
                    if up:
                        e.update(maxdisk=s["total"], disk=s["used"], status="available")
                    out.append(e)
        if typ in (None, "sdn") and ctx.has("/sdn/zones/localnetwork", ["SDN.Audit"]):
            for node in self.cluster.nodes:
                out.append({"id": f"sdn/{node}/localnetwork", "type": "sdn", "sdn": "localnetwork",
                            "node": node, "status": "ok"})
        return out

    def cluster_status(self, ctx, p):
        """pve-manager PVE/API2/Cluster.pm ``get_status``: with corosync (more than one node here) a
        ``cluster`` entry (name, nodes, config version, quorate) and one entry per member; a
        standalone node answers only its own entry (nodeid 0, local, online). Perl booleans: 1/0."""
        names = list(self.cluster.nodes)
        local = names[0]  # the node the API answers from
        if len(names) == 1:
            return [{"type": "node", "id": f"node/{local}", "name": local, "ip": "127.0.0.1", "local": 1,
                     "nodeid": 0, "online": 1, "level": ""}]
        online = [self.sim.node_online(name) for name in names]
        out = [{"type": "cluster", "id": "cluster", "nodes": len(names), "version": len(names) + 1,
                "name": self.sim.cluster_name, "quorate": 1 if sum(online) * 2 > len(names) else 0}]
        for number, (name, up) in enumerate(zip(names, online), start=1):
            out.append({"type": "node", "id": f"node/{name}", "name": name, "nodeid": number,
                        "local": 1 if name == local else 0, "online": 1 if up else 0,
                        "ip": f"127.0.0.{number + 1}", "level": ""})
        return out

    def nextid(self, ctx, p):
        """pve-manager API2/Cluster.pm ``nextid``: every VMID with a config file counts as used
        (also a guest still being created, locked ``create``); datacenter.cfg ``next-id`` range."""
        if "vmid" in p:
            if int(p["vmid"]) in self.cluster.containers:
                raise param_error({"vmid": f"VM {p['vmid']} already exists"})
            return p["vmid"]  # echoed as given (a string), like the Perl code does
        rng = self.sim.next_id_range or {}
        lower, upper = int(rng.get("lower", 100)), int(rng.get("upper", 1000 * 1000))
        for i in range(lower, upper):
            if i not in self.cluster.containers:
                return i
        raise PVEError(f"unable to get any free VMID in range [{lower}, {upper}]")

    def _task_visible(self, ctx, t) -> bool:
        return ctx.privs is None or t.user == ctx.user or ctx.has(f"/nodes/{t.node}", ["Sys.Audit"])

    def cluster_tasks(self, ctx, p):
        tasks = sorted(self.cluster.tasks, key=lambda t: (t.starttime, t.pid), reverse=True)
        return [t.list_entry() for t in tasks if self._task_visible(ctx, t)]

    def node_tasks(self, ctx, p):
        node = p["node"]
        source = p.get("source", "archive")
        out = []
        for t in sorted(self.cluster.tasks, key=lambda t: (t.starttime, t.pid), reverse=True):
            if t.node != node or not self._task_visible(ctx, t):
                continue
            if source == "archive" and t.status == "running":
                continue
            if source == "active" and t.status != "running":
                continue
            if "vmid" in p and t.id != str(p["vmid"]):
                continue
            if p.get("typefilter") and t.type != p["typefilter"]:
                continue
            if p.get("userfilter") and p["userfilter"] not in t.user:
                continue
            if _b(p.get("errors", "0")) and (t.status == "running" or t.exitstatus == "OK"):
                continue
            if "since" in p and t.starttime < int(p["since"]):
                continue
            if "until" in p and t.starttime > int(p["until"]):
                continue
            if p.get("statusfilter"):
                want = {s.lower() for s in split_list(p["statusfilter"])}
                st = "ok" if t.exitstatus == "OK" else ("warning" if (t.exitstatus or "").startswith("WARNINGS")
                                                         else "error" if t.exitstatus else "unknown")
                if st not in want:
                    continue
            out.append(t.list_entry())
        start, limit = int(p.get("start", 0)), int(p.get("limit", 50))
        total = len(out)
        return out[start:start + limit] if limit else out[start:], {"total": total}

    # --- tasks -------------------------------------------------------------------------------
    def _task(self, p) -> Task | None:
        upid = p["upid"]
        if not UPID_RE.match(upid):
            raise PVEError(f"unable to parse worker upid '{upid}'")
        return self.cluster.tasks_by_upid.get(upid)

    def _task_perm(self, ctx, p):
        # API2/Tasks.pm: "The user needs 'Sys.Audit' permissions on '/nodes/<node>' if they are
        # not the owner of the task."
        if ctx.privs is None:
            return
        m = UPID_RE.match(p["upid"])
        if m and m.group(8) != ctx.user:
            ctx.check(f"/nodes/{p['node']}", ["Sys.Audit"])

    def task_index(self, ctx, p):
        self._task(p)
        return [{"name": "log"}, {"name": "status"}]

    def task_status(self, ctx, p):
        t = self._task(p)
        self._task_perm(ctx, p)
        if t is None:
            m = UPID_RE.match(p["upid"])
            user, _, tok = m.group(8).partition("!")
            d = {"upid": p["upid"], "node": m.group(1), "pid": int(m.group(3), 16),
                 "pstart": int(m.group(4), 16), "starttime": int(m.group(5), 16), "type": m.group(6),
                 "id": m.group(7), "user": user, "status": "stopped", "exitstatus": "unexpected status"}
            if tok:
                d["tokenid"] = tok
            return d
        return t.status_dict()

    def task_log(self, ctx, p):
        t = self._task(p)
        self._task_perm(ctx, p)
        lines = list(t.lines) if t else ["unable to open file - No such file or directory"]
        start, limit = int(p.get("start", 0)), int(p.get("limit", 50))
        sel = lines[start:start + limit] if limit else lines[start:]
        return [{"n": start + i + 1, "t": line} for i, line in enumerate(sel)], {"total": len(lines)}

    # --- storage / network -------------------------------------------------------------------
    def storage_list(self, ctx, p):
        out = [s for s in self.cluster.storage_status(p["node"])
               if ctx.has(f"/storage/{s['storage']}", ["Datastore.Audit", "Datastore.AllocateSpace"], True)]
        if p.get("content"):
            want = set(split_list(p["content"]))
            out = [s for s in out if want & set(s["content"].split(","))]
        if p.get("storage"):
            out = [s for s in out if s["storage"] == p["storage"]]
        if _b(p.get("enabled", "0")):
            out = [s for s in out if s["enabled"]]
        return out

    def storage_content(self, ctx, p):
        sid = p["storage"]
        if not self.cluster.storage_cfg(sid):
            raise PVEError(f"storage '{sid}' does not exist")
        out = self.cluster.storage_content(p["node"], sid)
        if p.get("content"):
            out = [e for e in out if e["content"] == p["content"]]
        if p.get("vmid"):
            out = [e for e in out if e.get("vmid") == int(p["vmid"])]
        return out

    def network(self, ctx, p):
        out = self.cluster.network(p["node"])
        typ = p.get("type")
        if typ in ("any_bridge", "any_local_bridge"):
            out = [i for i in out if i["type"] in ("bridge", "OVSBridge")]
        elif typ:
            out = [i for i in out if i["type"] == typ]
        return out

    # --- LXC read ----------------------------------------------------------------------------
    def lxc_list(self, ctx, p):
        node = p["node"]
        n = self.cluster.nodes[node]
        now = time.time()
        out = []
        v9 = self.v9
        for ct in sorted(self.cluster.containers.values(), key=lambda c: c.vmid):
            if ct.node == node and ctx.has(f"/vms/{ct.vmid}", ["VM.Audit"]):
                out.append(ct.metrics(now, n["maxcpu"], pressure=v9))
        return out

    def lxc_index(self, ctx, p):
        self.cluster.get_ct(p["node"], p["vmid"])
        return [{"subdir": c} for c in self.sim.schema.children("/nodes/{node}/lxc/{vmid}")]

    def lxc_status_index(self, ctx, p):
        self.cluster.get_ct(p["node"], p["vmid"])
        return [{"subdir": c} for c in self.sim.schema.children("/nodes/{node}/lxc/{vmid}/status")]

    def lxc_config(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        if p.get("snapshot") and p.get("current"):
            raise param_error({"snapshot": "cannot use 'snapshot' parameter with 'current'",
                               "current": "cannot use 'snapshot' parameter with 'current'"})
        if p.get("snapshot"):
            return self.backups.snapshot_config_of(ct, p["snapshot"])
        return sim_config.current_config(ct, _b(p.get("current", "0")))

    def lxc_status(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        m = ct.metrics(time.time(), self.cluster.nodes[ct.node]["maxcpu"], pressure=self.v9)
        m["ha"] = self._ha_service_status(ct)
        return m

    def _ha_managed(self, ct) -> bool:
        """PVE::HA::Config::vm_is_ha_managed: an ``ignored`` resource counts as not managed."""
        return ct.ha_state is not None and ct.ha_state != "ignored"

    def _ha_service_status(self, ct) -> dict:
        """PVE::HA::Config::get_service_status (9.x dropped ``group``, pve-ha-manager 86c4db1)."""
        if not self._ha_managed(ct):
            return {"managed": 0}
        if self.v9:
            return {"managed": 1, "state": ct.ha_state}
        return {"managed": 1, "group": ct.ha_group, "state": ct.ha_state}

    def lxc_interfaces(self, ctx, p):
        """pve-container PVE::LXC::get_interfaces: ``ip --json a`` inside the CT's netns.
        ``inet``/``inet6`` hold the LAST address of that family (so link-local for inet6).
        Only configured addresses: ip unset/manual -> no IPv4; ip=dhcp -> a lease; ip6=auto ->
        SLAAC (EUI-64 of the MAC in 2001:db8:<vmid>:<n>::/64); ip6=dhcp -> a DHCPv6 /128;
        link_down=1 (no carrier) -> only static addresses, no DHCP/SLAAC/link-local."""
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        if not ct.running:
            return None
        out = [{"name": "lo", "hwaddr": "00:00:00:00:00:00", "hardware-address": "00:00:00:00:00:00",
                "inet": "127.0.0.1/8", "inet6": "::1/128",
                "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "inet", "prefix": 8},
                                 {"ip-address": "::1", "ip-address-type": "inet6", "prefix": 128}]}]
        keys = sorted((k for k in ct.config if re.match(r"^net\d+$", k)), key=lambda k: int(k[3:]))
        for key in keys:
            try:
                net = parse_property_string(self._net_fmt(), ct.config[key], key)
            except Exception:
                continue
            idx = int(key[3:])
            mac = net.get("hwaddr", mac_for(ct.vmid, idx)).lower()
            carrier = net.get("link_down") != "1"
            addrs = []
            ip = net.get("ip")
            if ip == "dhcp" and carrier:
                addrs.append((ip_for(ct.vmid * 4 + idx), "inet", 24))
            elif ip and "/" in ip:
                addrs.append((ip.split("/")[0], "inet", int(ip.split("/")[1])))
            ip6 = net.get("ip6")
            if ip6 and "/" in ip6:
                addrs.append((str(ipaddress.IPv6Address(ip6.split("/")[0])), "inet6", int(ip6.split("/")[1])))
            elif ip6 == "auto" and carrier:
                addrs.append((_slaac(ct.vmid, idx, mac), "inet6", 64))
            elif ip6 == "dhcp" and carrier:
                addrs.append((f"2001:db8:{ct.vmid & 0xFFFF:x}:{idx:x}::{0x100 + idx:x}", "inet6", 128))
            if carrier:
                addrs.append((_eui64("fe80::", mac), "inet6", 64))
            e = {"name": net["name"]}
            for a, fam, prefix in addrs:
                e[fam] = f"{a}/{prefix}"
            e["ip-addresses"] = [{"ip-address-type": fam, "ip-address": a, "prefix": prefix}
                                 for a, fam, prefix in addrs]
            e["hardware-address"] = mac
            e["hwaddr"] = mac
            out.append(e)
        return out

    # --- helpers for writes ------------------------------------------------------------------
    def _net_fmt(self):
        ep = self.sim.schema.endpoints[("POST", "/nodes/{node}/lxc")]
        for rx, sch in ep.indexed:
            if rx.match("net0"):
                return sch["format"]
        raise RuntimeError("no net format")

    def _config_schema(self, key):
        ep = self.sim.schema.endpoints[("PUT", "/nodes/{node}/lxc/{vmid}/config")]
        if key in ep.props:
            return ep.props[key]
        for rx, sch in ep.indexed:
            if rx.match(key):
                return sch
        return {}

    def _coerce(self, key, value):
        typ = self._config_schema(key).get("type")
        if typ in ("integer", "boolean"):
            return int(value)
        return value

    @staticmethod
    def _print_net(net: dict) -> str:
        keys = ["name"] + sorted(k for k in net if k != "name")
        return ",".join(f"{k}={net[k]}" for k in keys if k in net)

    def _normalize_net(self, key, value, vmid, old=None):
        net = parse_property_string(self._net_fmt(), value, key)
        if "hwaddr" not in net:
            oldmac = None
            if old:
                m = re.search(r"hwaddr=([0-9A-Fa-f:]+)", old)
                oldmac = m.group(1) if m else None
            net["hwaddr"] = oldmac or new_mac(vmid, int(key[3:]))
        net.setdefault("type", "veth")
        return self._print_net(net)

    def _alloc_volume(self, key, value, vmid, default_storage, disk_idx):
        """rootfs/mpN: 'STORAGE:SIZE' or bare 'SIZE' allocates a new volume."""
        parts = value.split(",")
        vol, rest = parts[0], parts[1:]
        if vol.startswith("volume="):
            vol = vol[7:]
        m = re.match(r"^(?:([a-z][a-z0-9\-_.]*[a-z0-9]):)?(\d+(?:\.\d+)?)$", vol, re.I)
        if not m:
            sid = vol.split(":", 1)[0] if ":" in vol else None
            if sid and not self.cluster.storage_cfg(sid):
                raise PVEError(f"storage '{sid}' does not exist")
            return value
        sid = m.group(1) or default_storage
        cfg = self.cluster.storage_cfg(sid)
        if not cfg:
            raise PVEError(f"storage '{sid}' does not exist")
        if "rootdir" not in cfg[2].split(","):
            raise param_error({"storage": f"storage '{sid}' does not support container directories"})
        size_gb = float(m.group(2))
        size = f"{int(size_gb)}G" if size_gb == int(size_gb) else f"{int(size_gb * 1024)}M"
        name = f"vm-{vmid}-disk-{disk_idx}"
        volid = f"{sid}:{name}" if cfg[1] != "dir" else f"{sid}:{vmid}/{name}.raw"
        rest = [r for r in rest if not r.startswith("size=")]
        return ",".join([volid] + rest + [f"size={size}"])

    # --- create ------------------------------------------------------------------------------
    def lxc_create(self, ctx, p):
        node, vmid = p["node"], int(p["vmid"])
        restore = _b(p.get("restore", "0"))
        # pve-container API2/LXC.pm create: 9.x makes unprivileged CTs unless told otherwise
        # (privileged ones need Sys.Modify on /); 8.4 defaults to privileged
        unprivileged = p.get("unprivileged")
        if not restore and unprivileged is None:
            unprivileged = "1" if self.v9 else "0"
        if self.v9 and not restore and not _b(unprivileged):
            ctx.check("/", ["Sys.Modify"])
        ha_managed = _b(p.get("ha-managed", "0"))
        if ha_managed:
            ctx.check("/", ["Sys.Console"])
        existing = self.cluster.containers.get(vmid)
        if existing and not (restore and _b(p.get("force", "0"))):
            raise PVEError(f"CT {vmid} already exists on node '{existing.node}'")
        if p.get("pool") and p["pool"] not in self.cluster.pools:
            raise perm_error(f"pool '{p['pool']}' does not exist")
        if not ctx.has(f"/vms/{vmid}", ["VM.Allocate"]) and not (
                p.get("pool") and ctx.has(f"/pool/{p['pool']}", ["VM.Allocate"])):
            ctx.check(f"/vms/{vmid}", ["VM.Allocate"])
        storage = p.get("storage", "local")
        if not self.cluster.storage_cfg(storage):
            raise PVEError(f"storage '{storage}' does not exist")
        ostemplate = p["ostemplate"]
        if ":" in ostemplate:
            sid = ostemplate.split(":", 1)[0]
            if not self.cluster.storage_cfg(sid):
                raise PVEError(f"storage '{sid}' does not exist")
        elif not ostemplate.startswith("/") and ostemplate != "-":
            raise PVEError(f"unable to parse volume ID '{ostemplate}'")
        if restore and ":" in ostemplate:
            return self._restore(ctx, p, node, vmid, existing, storage, ostemplate, ha_managed)

        skip = {"node", "vmid", "ostemplate", "storage", "password", "ssh-public-keys", "start",
                "restore", "force", "unique", "pool", "ignore-unpack-errors", "bwlimit", "debug",
                "template", "lock", "unprivileged", "ha-managed"}
        cfg = {"arch": p.get("arch", "amd64")}
        tmpl_os = next((t[2] for t in TEMPLATES if t[0] in ostemplate), None)
        cfg["ostype"] = p.get("ostype") or tmpl_os or "unmanaged"
        disk_idx = 0
        cfg["rootfs"] = self._alloc_volume("rootfs", p.get("rootfs", f"{storage}:4"), vmid, storage, disk_idx)
        ctx.check(f"/storage/{cfg['rootfs'].split(':', 1)[0]}", ["Datastore.AllocateSpace"])
        if unprivileged is not None and _b(unprivileged):
            cfg["unprivileged"] = 1  # written only when set (config: 'unprivileged: 1')
        for key in sorted(p):
            if key in skip or key == "rootfs":
                continue
            val = p[key]
            if re.match(r"^net\d+$", key):
                cfg[key] = self._normalize_net(key, val, vmid)
            elif re.match(r"^mp\d+$", key):
                disk_idx += 1
                cfg[key] = self._alloc_volume(key, val, vmid, storage, disk_idx)
            elif key == "tags":
                t = normalize_tags(val)
                if t:
                    cfg["tags"] = t
            else:
                cfg[key] = self._coerce(key, val)
        cfg.setdefault("memory", 512)
        cfg.setdefault("swap", 512)
        cfg["lock"] = "create"
        ct = Container(vmid=vmid, node=node, config=cfg, pool=p.get("pool"))
        self.cluster.containers[vmid] = ct
        start = _b(p.get("start", "0"))
        make_template = _b(p.get("template", "0"))

        def worker(task: Task):
            if not self.cluster.template_exists(ostemplate) and ostemplate != "-":
                raise TaskFailed(f"volume '{ostemplate}' does not exist")
            vol = cfg["rootfs"].split(",")[0]
            task.log(f"  Logical volume \"{vol.split(':')[-1]}\" created.")
            task.log(f"Creating filesystem with {ct.maxdisk // 4096} 4k blocks and "
                     f"{ct.maxdisk // 16384} inodes")
            fname = ostemplate.split("/")[-1]
            task.log(f"extracting archive '/var/lib/vz/template/cache/{fname}'")
            task.log("Total bytes read: 524288000 (500MiB, 180MiB/s)")
            task.log(f"Detected container architecture: {cfg['arch']}")
            task.log("Creating SSH host key 'ssh_host_ed25519_key' - this may take some time ...")
            task.log("done: SHA256:Qm9ndXNGaW5nZXJwcmludEZvclNpbXVsYXRvcg root@" + (cfg.get("hostname") or "localhost"))
            with self.cluster.lock:
                ct.config.pop("lock", None)
                if make_template:
                    ct.config["template"] = 1
            if start and not make_template:
                self.sim.tasks.sleep(self.sim.task_delay)
                with self.cluster.lock:
                    self.cluster._set_running(ct)
            if ha_managed:
                task.log("Add as HA resource")
                with self.cluster.lock:
                    ct.ha_state = "started" if start else "stopped"

        def on_error(task):
            with self.cluster.lock:
                if self.cluster.containers.get(vmid) is ct:
                    del self.cluster.containers[vmid]

        return self.sim.tasks.spawn(node, "vzrestore" if restore else "vzcreate", vmid, ctx.user,
                                    worker, on_error=on_error)

    def _restore(self, ctx, p, node, vmid, existing, storage, volid, ha_managed):
        """create_vm with restore=1 from a backup volume: the backed-up config, the given options over
        it, disks allocated anew on ``storage`` with their backed-up sizes (pve-container
        API2/LXC.pm, LXC/Create.pm restore_configuration)."""
        entry = self.backups.restore_source(node, volid)
        if existing is not None:
            if existing.node != node:
                raise PVEError(f"Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist")
            if existing.running:
                raise PVEError("can't overwrite running container")
            if existing.config.get("protection"):
                raise PVEError(f"unable to restore CT {vmid} - protection mode enabled")
            if existing.lock:
                raise PVEError(f"unable to restore CT {vmid} - CT is locked ({existing.lock})")
        skip = {"node", "vmid", "ostemplate", "storage", "password", "ssh-public-keys", "start", "restore",
                "force", "unique", "pool", "ignore-unpack-errors", "bwlimit", "debug", "ha-managed"}
        given = {}
        for key in sorted(p):
            if key in skip or key == "rootfs" or re.match(r"^mp\d+$", key):
                continue
            if re.match(r"^net\d+$", key):
                given[key] = self._normalize_net(key, p[key], vmid)
            elif key == "tags":
                given["tags"] = normalize_tags(p[key])
            else:
                given[key] = self._coerce(key, p[key])
        cfg = self.backups.restored_config(entry, vmid, given, _b(p.get("unique", "0")))
        disk_idx = 0
        for key in sorted(k for k in cfg if k == "rootfs" or re.match(r"^mp\d+$", k)):
            m = re.search(r"(?:^|,)size=(\d+)([GM])", str(cfg[key]))
            size = (int(m.group(1)) if m.group(2) == "G" else int(m.group(1)) / 1024) if m else 4
            rest = [o for o in str(cfg[key]).split(",")[1:] if not o.startswith("size=")]
            spec = p.get(key) or ",".join([f"{storage}:{size:g}"] + rest)
            cfg[key] = self._alloc_volume(key, spec, vmid, storage, disk_idx)
            disk_idx += 1
        cfg["lock"] = "create"
        previous = existing
        ct = Container(vmid=vmid, node=node, config=cfg, pool=p.get("pool") or (previous.pool if previous else None))
        if previous is not None:
            ct.ha_state = previous.ha_state
        self.cluster.containers[vmid] = ct
        start = _b(p.get("start", "0"))

        def worker(task: Task):
            task.log(f"restoring '{volid}' now..")
            if previous is not None:
                vol = previous.config.get("rootfs", "").split(",")[0]
                task.log(f'  Logical volume "{vol.split(":")[-1]}" successfully removed.')
            vol = cfg["rootfs"].split(",")[0]
            task.log(f'  Logical volume "{vol.split(":")[-1]}" created.')
            task.log(f"extracting archive '{entry['path']}'")
            task.log(f"Total bytes read: {entry['size'] * 3} ({entry['size'] * 3 / GiB:.1f}GiB, 210MiB/s)")
            task.log("merging backed-up and given configuration..")
            with self.cluster.lock:
                ct.config.pop("lock", None)
            if start:
                self.sim.tasks.sleep(self.sim.task_delay)
                with self.cluster.lock:
                    self.cluster._set_running(ct)
            if ha_managed:
                task.log("Add as HA resource")
                with self.cluster.lock:
                    ct.ha_state = "started" if start else "stopped"

        def on_error(task):
            with self.cluster.lock:
                if self.cluster.containers.get(vmid) is ct:
                    if previous is not None:
                        self.cluster.containers[vmid] = previous
                    else:
                        del self.cluster.containers[vmid]

        return self.sim.tasks.spawn(node, "vzrestore", vmid, ctx.user, worker, on_error=on_error)

    # --- update ------------------------------------------------------------------------------
    def lxc_update(self, ctx, p):
        """PUT …/config with its pending section: ``config.update``."""
        return sim_config.update(self, ctx, p)

    # --- destroy -----------------------------------------------------------------------------
    def lxc_destroy(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        vmid = ct.vmid
        if ct.config.get("protection"):
            raise PVEError(f"can't remove CT {vmid} - protection mode enabled")
        if ct.lock:  # pve-container destroy_vm early_checks: protection, lock, HA, then running
            raise PVEError(f"CT is locked ({ct.lock})")
        purge = _b(p.get("purge", "0"))
        if ct.ha and not purge:
            raise PVEError(f"unable to remove CT {vmid} - used in HA resources and purge parameter not set.")
        if ct.running and not _b(p.get("force", "0")):
            raise PVEError(f"unable to destroy CT {vmid} - container is running")

        def worker(task: Task):
            if ct.running:
                task.log(f"stopping CT {vmid}")
                with self.cluster.lock:
                    self.cluster._set_stopped(ct)
            vol = ct.config.get("rootfs", "").split(",")[0]
            task.log(f"  Logical volume \"{vol.split(':')[-1]}\" successfully removed.")
            if purge:
                task.log(f"purging CT {vmid} from related configurations..")
                with self.cluster.lock:  # PVE::VZDump::Plugin::remove_vmid_from_backup_jobs
                    for job in self.cluster.backup_jobs.values():
                        if job.get("vmid"):
                            left = [v for v in split_list(str(job["vmid"])) if v != str(vmid)]
                            job["vmid"] = ",".join(left)
                        if job.get("exclude"):
                            job["exclude"] = ",".join(v for v in split_list(str(job["exclude"])) if v != str(vmid))
            with self.cluster.lock:
                if self.cluster.containers.get(vmid) is ct:
                    del self.cluster.containers[vmid]

        return self.sim.tasks.spawn(ct.node, "vzdestroy", vmid, ctx.user, worker)

    # --- power -------------------------------------------------------------------------------
    def _check_lock(self, ct, p):
        if ct.lock and not _b(p.get("skiplock", "0")) and ct.lock != "mounted":
            raise TaskFailed(f"CT is locked ({ct.lock})")

    def _ha_request(self, ctx, ct, state, typ):
        """hastart / hastop tasks of pve-container Status.pm: they only ask ha-manager
        (``ha-manager set ct:N --state started`` / ``ha-manager crm-command stop ct:N T``); the
        CRM/LRM then act with their own tasks (user root@pam)."""
        vmid = ct.vmid
        sid = f"ct:{vmid}"

        def worker(task: Task):
            if state == "started":
                task.log(f"Requesting HA start for CT {vmid}")
                if ct.ha_state == "error":
                    # PVE::API2::HA::Resources::check_service_state (run by 'ha-manager set')
                    task.log(f"service '{sid}' in error state, must be disabled and fixed first")
                    raise TaskFailed(f"command 'ha-manager set {sid} --state started' failed: exit code 255")
            else:
                task.log(f"Requesting HA stop for CT {vmid}")
            with self.cluster.lock:  # the request is recorded before the task ends
                if ct.ha_state not in (None, "ignored", "error", "fence", "freeze"):
                    ct.ha_state = state
            self.sim.tasks.spawn(ct.node, "_ha_crm", vmid, "root@pam", self._crm_worker(ct, state),
                                 hidden=True)

        return self.sim.tasks.spawn(ct.node, typ, vmid, ctx.user, worker)

    def _crm_worker(self, ct, want):
        """What the HA stack does after a request: fence/freeze/error/migrate/relocate keep the
        service where it is (error only leaves via 'disabled'; fence/freeze wait for the node),
        otherwise request_start/request_stop -> started/stopped with a real vzstart/vzshutdown."""
        def worker(task: Task):
            with self.cluster.lock:
                cur = ct.ha_state
                if cur in (None, "ignored", "error", "fence", "freeze") or self.cluster.containers.get(ct.vmid) is not ct:
                    return
            self.sim.tasks.sleep(self.sim.task_delay / 2)
            if want == "started":
                with self.cluster.lock:
                    ct.ha_state = "started"
                if not ct.running:
                    self.sim.tasks.spawn(ct.node, "vzstart", ct.vmid, "root@pam", self._start_worker(ct, {}))
            else:
                with self.cluster.lock:
                    ct.ha_state = "stopped"
                if ct.running:
                    self.sim.tasks.spawn(ct.node, "vzshutdown", ct.vmid, "root@pam",
                                         self._shutdown_worker(ct, {"forceStop": "1"}))
        return worker

    def _start_worker(self, ct, p):
        def worker(task: Task):
            if ct.template:
                raise TaskFailed("you can't start a CT if it's a template")
            self._check_lock(ct, p)
            if ct.running:
                raise TaskFailed(f"CT {ct.vmid} already running")
            with self.cluster.lock:
                self.cluster._set_running(ct)
        return worker

    def lxc_start(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        if ct.running:
            raise PVEError(f"CT {ct.vmid} already running")
        if self._ha_managed(ct):
            return self._ha_request(ctx, ct, "started", "hastart")
        return self.sim.tasks.spawn(ct.node, "vzstart", ct.vmid, ctx.user, self._start_worker(ct, p))

    def lxc_stop(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        if not ct.running:
            raise PVEError(f"CT {ct.vmid} not running")
        overrule = _b(p.get("overrule-shutdown", "0"))
        if self._ha_managed(ct):
            if overrule:
                raise param_error({"overrule-shutdown": "Not applicable for HA resources."})
            return self._ha_request(ctx, ct, "stopped", "hastop")

        def worker(task: Task):
            if overrule:
                for t in self.cluster.running_tasks():
                    if t.type == "vzshutdown" and t.id == str(ct.vmid):
                        task.log(f"overruling active shutdown task {t.upid}")
                        t.cancelled = True
            self._check_lock(ct, p)
            with self.cluster.lock:
                self.cluster._set_stopped(ct)

        return self.sim.tasks.spawn(ct.node, "vzstop", ct.vmid, ctx.user, worker)

    def _shutdown_worker(self, ct, p):
        timeout = int(p.get("timeout", 60))
        force = _b(p.get("forceStop", "0"))

        def worker(task: Task):
            self._check_lock(ct, p)
            if ct.vmid in self.sim.faults.ignore_shutdown_vmids or ct.ignore_shutdown:
                self.sim.tasks.sleep(timeout * self.sim.time_scale, task)
                if task.cancelled:
                    raise TaskFailed("received interrupt")
                if not force:
                    raise TaskFailed("container did not stop")
                task.log("Container did not shut down in time, killing it.")
            with self.cluster.lock:
                self.cluster._set_stopped(ct)
        return worker

    def lxc_shutdown(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        if not ct.running:
            raise PVEError(f"CT {ct.vmid} not running")
        if self._ha_managed(ct):
            return self._ha_request(ctx, ct, "stopped", "hastop")
        return self.sim.tasks.spawn(ct.node, "vzshutdown", ct.vmid, ctx.user, self._shutdown_worker(ct, p))

    def lxc_reboot(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        if not ct.running:
            raise PVEError(f"VM {ct.vmid} not running")
        timeout = p.get("timeout")

        def worker(task: Task):
            self._check_lock(ct, p)
            if ct.vmid in self.sim.faults.ignore_shutdown_vmids or ct.ignore_shutdown:
                self.sim.tasks.sleep(int(timeout if timeout is not None else 60) * self.sim.time_scale, task)
            with self.cluster.lock:
                self.cluster._set_stopped(ct)
            self.sim.tasks.sleep(self.sim.task_delay / 2, task)
            with self.cluster.lock:
                self.cluster._set_running(ct)

        return self.sim.tasks.spawn(ct.node, "vzreboot", ct.vmid, ctx.user, worker)


    # --- access ------------------------------------------------------------------------------
    def access_permissions(self, ctx, p):
        """pve-access-control API2/AccessControl.pm ``permissions``: own permissions (or those
        of an owned token); others need Sys.Audit on /access."""
        userid = p.get("userid") or ctx.user
        owner = userid.split("!", 1)[0] if "!" in userid else None
        if not (userid == ctx.user or owner == ctx.user):
            ctx.check("/access", ["Sys.Audit"])
        if ctx.is_token and userid == ctx.user:
            privs = self.sim.privileges
            return privs.effective(p.get("path"))
        # root@pam (and tokens of users the simulator does not limit): Administrator everywhere
        from .perms import DEFAULT_PATHS, PRIVILEGES
        every = {x: 1 for x in sorted(PRIVILEGES[self.sim.pve_version])}
        known = userid in ("root@pam",) or userid in self.sim.tokens
        if not known:
            return {p["path"]: {}} if p.get("path") else {}
        if p.get("path"):
            return {p["path"]: dict(every)}
        return {path: dict(every) for path in DEFAULT_PATHS}

    # --- HA ----------------------------------------------------------------------------------
    def _ha_digest(self) -> str:
        import hashlib
        text = ";".join(f"{c.vmid}:{c.ha_state}:{c.ha_group}" for c in self._ha_cts())
        text += repr(sorted(self.cluster.ha_groups.items())) + repr(sorted(self.cluster.ha_rules.items()))
        return hashlib.sha1(text.encode()).hexdigest()

    def _ha_cts(self):
        return [c for c in sorted(self.cluster.containers.values(), key=lambda c: c.vmid) if c.ha_state]

    def _groups_migrated(self):
        return self.v9  # a 9.x cluster that has migrated its groups to rules

    def _ha_resource_cfg(self, ct, digest) -> dict:
        e = {"sid": f"ct:{ct.vmid}", "type": "ct", "state": ha_request_state(ct.ha_state), "digest": digest}
        if not self._groups_migrated() and ct.ha_group:
            e["group"] = ct.ha_group
            if ct.ha_group not in self.cluster.ha_groups:
                e["errors"] = {"group": f"group '{ct.ha_group}' does not exist"}
        return e

    def ha_resources(self, ctx, p):
        if p.get("type") and p["type"] != "ct":
            return []
        digest = self._ha_digest()
        return [self._ha_resource_cfg(ct, digest) for ct in self._ha_cts()]

    def ha_resource(self, ctx, p):
        sid = p["sid"]
        m = re.match(r"^(?:(ct|vm):)?(\d+)$", sid)
        ct = self.cluster.containers.get(int(m.group(2))) if m else None
        if not m or ct is None or not ct.ha_state or m.group(1) == "vm":
            raise PVEError(f"no such resource '{sid if m and m.group(1) else 'ct:' + sid}'")
        return self._ha_resource_cfg(ct, self._ha_digest())

    def ha_status_index(self, ctx, p):
        return [{"name": "current"}, {"name": "manager_status"}]

    def ha_status_current(self, ctx, p):
        """pve-ha-manager API2/HA/Status.pm ``status`` (9.1 era: quorum, master, lrm, service)."""
        now = int(time.time())
        ts = now - 3
        stamp = time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(ts))
        nodes = list(self.cluster.nodes)
        online = [n for n in nodes if self.sim.node_online(n)]
        local = online[0] if online else nodes[0]
        res = [{"id": "quorum", "type": "quorum", "node": local, "status": "OK", "quorate": 1}]
        cts = self._ha_cts()
        if not cts:
            return res
        master = online[0] if online else nodes[0]
        res.append({"id": "master", "type": "master", "node": master, "status": f"{master} (active, {stamp})",
                    "timestamp": ts})
        for n in nodes:
            if self.sim.node_online(n):
                active = any(c.node == n and c.ha_state not in ("ignored", "stopped", "disabled", "error")
                             for c in cts)
                res.append({"id": f"lrm:{n}", "type": "lrm", "node": n,
                            "status": f"{n} ({'active' if active else 'idle'}, {stamp})", "timestamp": ts})
            else:
                old = ts - 900
                res.append({"id": f"lrm:{n}", "type": "lrm", "node": n, "timestamp": old,
                            "status": f"{n} (old timestamp - dead?, "
                                      f"{time.strftime('%a %b %e %H:%M:%S %Y', time.localtime(old))})"})
        managed = [c for c in cts if c.ha_state != "ignored"]
        for c in managed + [c for c in cts if c.ha_state == "ignored"]:
            sid = f"ct:{c.vmid}"
            req = ha_request_state(c.ha_state)
            d = {"id": f"service:{sid}", "type": "service", "sid": sid, "node": c.node}
            if c.ha_state != "ignored":
                d["crm_state"] = c.ha_state
            verbose = _verbose_ha_state(c.ha_state, req, c.running)
            d["state"] = verbose
            d["status"] = f"{sid} ({c.node}, {verbose})"
            d["request_state"] = req
            if not self._groups_migrated() and c.ha_group:
                d["group"] = c.ha_group
            res.append(d)
        return res

    def ha_groups(self, ctx, p):
        if self._groups_migrated():
            raise PVEError("cannot index groups: ha groups have been migrated to rules")
        digest = self._ha_digest()
        return [{**g, "group": name, "type": "group", "digest": digest}
                for name, g in sorted(self.cluster.ha_groups.items())]

    def ha_group_read(self, ctx, p):
        if self._groups_migrated():
            raise PVEError("cannot read group: ha groups have been migrated to rules")
        g = self.cluster.ha_groups.get(p["group"])
        if g is None:
            raise PVEError(f"no such ha group '{p['group']}'")
        return {**g, "group": p["group"], "type": "group", "digest": self._ha_digest()}

    def ha_group_create(self, ctx, p):
        if self._groups_migrated():
            raise PVEError("cannot create group: ha groups have been migrated to rules")
        name = p["group"]
        if name in self.cluster.ha_groups:
            raise PVEError(f"create HA group failed - ha group ID '{name}' already defined")
        g = {k: (int(v) if k in ("restricted", "nofailback") else v) for k, v in p.items()
             if k not in ("group", "type")}
        self.cluster.ha_groups[name] = g
        return None

    def ha_group_delete(self, ctx, p):
        if self._groups_migrated():
            raise PVEError("cannot delete group: ha groups have been migrated to rules")
        name = p["group"]
        if any(c.ha_group == name for c in self._ha_cts()):
            raise PVEError(f"delete HA group failed - group '{name}' is used by resource(s)")
        self.cluster.ha_groups.pop(name, None)
        return None

    def _rule_out(self, name, r, digest, order):
        return {**r, "rule": name, "digest": digest, "order": order}

    def ha_rules(self, ctx, p):
        digest = self._ha_digest()
        out = []
        for order, (name, r) in enumerate(self.cluster.ha_rules.items(), start=1):
            if p.get("type") and r["type"] != p["type"]:
                continue
            if p.get("resource"):
                want = p["resource"] if ":" in p["resource"] else f"vm:{p['resource']}"
                if want not in r.get("resources", "").split(","):
                    continue
            out.append(self._rule_out(name, r, digest, order))
        return sorted(out, key=lambda e: e["rule"])

    def ha_rule_read(self, ctx, p):
        name = p["rule"]
        if name not in self.cluster.ha_rules:
            raise PVEError(f"no such ha rule '{name}'")
        order = list(self.cluster.ha_rules).index(name) + 1
        return self._rule_out(name, self.cluster.ha_rules[name], self._ha_digest(), order)

    def ha_rule_create(self, ctx, p):
        name, typ = p["rule"], p["type"]
        if name in self.cluster.ha_rules:
            raise PVEError(f"create ha rule failed: HA rule '{name}' already defined")
        resources = []
        for sid in split_list(p.get("resources", "")):
            if ":" not in sid:
                sid = f"vm:{sid}"
            resources.append(sid)
        unmanaged = []
        for sid in sorted(set(resources)):
            kind, _, num = sid.partition(":")
            ct = self.cluster.containers.get(int(num)) if num.isdigit() else None
            if kind != "ct" or ct is None or not ct.ha_state:
                unmanaged.append(sid)
        if unmanaged:
            raise PVEError(f"create ha rule failed: cannot use unmanaged resource(s) {', '.join(unmanaged)}.")
        if typ == "node-affinity":
            if not p.get("nodes"):
                raise param_error({"nodes": "property is missing and it is not optional"})
            for entry in split_list(p["nodes"]):
                nname = entry.split(":", 1)[0]
                if nname not in self.cluster.nodes:
                    raise PVEError(f"create ha rule failed: node '{nname}' does not exist")
        elif typ == "resource-affinity" and not p.get("affinity"):
            raise param_error({"affinity": "property is missing and it is not optional"})
        r = {"type": typ, "resources": ",".join(sorted(set(resources)))}
        for k in ("nodes", "affinity", "comment"):
            if p.get(k):
                r[k] = p[k]
        if typ == "node-affinity":
            r["strict"] = int(p.get("strict", 0))
        if _b(p.get("disable", "0")):
            r["disable"] = 1
        self.cluster.ha_rules[name] = r
        return None

    def ha_rule_delete(self, ctx, p):
        self.cluster.ha_rules.pop(p["rule"], None)
        return None


def _verbose_ha_state(cur, req, running) -> str:
    """PVE::HA::Tools::get_verbose_service_state"""
    if req == "ignored":
        return "ignored"
    state = cur
    if cur == "stopped":
        if req == "started":
            state = "starting"
        elif req == "disabled":
            state = "disabled"
    elif cur == "started":
        if req in ("stopped", "disabled"):
            state = "stopping"
        if not running:
            state = "starting"
    elif cur == "error" and req == "disabled":
        state = "clearing error flag"
    return state


class TaskRunner:
    """Runs workers in background threads, producing PVE-like task logs."""

    def __init__(self, sim):
        self.sim = sim
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._active = 0

    def sleep(self, seconds: float, task: Task | None = None):
        end = time.monotonic() + max(0.0, seconds)
        while True:
            left = end - time.monotonic()
            if left <= 0 or self._stop.is_set() or (task is not None and task.cancelled):
                return
            self._stop.wait(min(left, 0.05))

    def spawn(self, node, typ, vmid, user, worker, on_error=None, hidden=False) -> str | None:
        """Run ``worker(task)`` in a thread. ``hidden``: internal work (the HA stack reacting),
        not listed as a PVE task but waited for by wait_idle()."""
        if hidden:
            task = Task(upid="", node=node, pid=0, pstart=0, starttime=int(time.time()), type=typ,
                        id=str(vmid), user=user)
        else:
            task = self.sim.cluster.new_task(node, typ, vmid, user)
        with self._idle:
            self._active += 1
        th = threading.Thread(target=self._run, args=(task, worker, on_error, hidden),
                              name=f"pvesim-{typ}-{vmid}", daemon=True)
        th.start()
        return task.upid or None

    def _run(self, task: Task, worker, on_error, hidden=False):
        try:
            fault = None if hidden else self.sim.faults._take_task_fault(task.type, task.id)
            warn = None if hidden or fault is not None else self.sim.faults._take_warn_fault(task.type, task.id)
            try:
                self.sleep(self.sim.task_delay, task)
                if fault is not None:
                    raise TaskFailed(fault)
                worker(task)
                if warn is not None:
                    # PVE::RESTEnvironment::log_warn -> "WARN: ..." lines, counted; the worker
                    # then ends with "TASK WARNINGS: n" and exit status "WARNINGS: n"
                    n = warn["warnings"]
                    for i in range(n):
                        task.log(f"WARN: {warn['message']}" + (f" ({i + 1}/{n})" if n > 1 else ""))
                    task.log(f"TASK WARNINGS: {n}")
                    task.exitstatus = f"WARNINGS: {n}"
                else:
                    task.log("TASK OK")
                    task.exitstatus = "OK"
            except (TaskFailed, PVEError) as e:
                msg = str(e).rstrip("\n")
                task.log(f"TASK ERROR: {msg}")
                task.exitstatus = msg
                if on_error:
                    on_error(task)
            except Exception as e:  # pragma: no cover - simulator bug
                task.log(f"TASK ERROR: internal simulator error: {e!r}")
                task.exitstatus = f"internal simulator error: {e!r}"
        finally:
            task.endtime = int(time.time())
            task.status = "stopped"
            task.done.set()
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        with self._idle:
            while self._active > 0:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def shutdown(self):
        self._stop.set()
