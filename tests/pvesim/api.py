"""Handlers of the simulated API endpoints and their worker tasks.

Every handler receives ``(ctx, params)`` where params are the already validated
string parameters (path params merged in) and returns the ``data`` value, or a
``(data, {"total": n})`` tuple when the envelope carries extra attributes.
"""

from __future__ import annotations

import re
import threading
import time

from .schema import parse_property_string, split_list
from .state import (GiB, TEMPLATES, Container, PVEError, Task, mac_for, ip_for, normalize_tags,
                    param_error)

UPID_RE = re.compile(
    r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):"
    r"([0-9A-Fa-f]{8}):([^:\s]+):([^:\s]*):([^:\s]+):$")

VERSION = {"version": "8.4.1", "release": "8.4", "repoid": "2a5fa54a8503f96d"}


class TaskFailed(Exception):
    pass


class NoRoute(Exception):
    """The endpoint exists in the schema but the simulator does not implement it."""


class Ctx:
    def __init__(self, user: str, endpoint):
        self.user = user  # "root@pam" or "root@pam!tokenid"
        self.endpoint = endpoint


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
        if (node is not None and ep.path.startswith("/nodes/{node}/")
                and self.cluster.nodes[node]["status"] != "online"):
            raise PVEError("No route to host", 595)
        with self.cluster.lock:
            return fn(ctx, params)

    # --- simple GETs -------------------------------------------------------------------------
    def version(self, ctx, p):
        return dict(VERSION)

    def nodes(self, ctx, p):
        now = time.time()
        out = []
        for name, n in self.cluster.nodes.items():
            e = {"node": name, "status": n["status"], "type": "node", "id": f"node/{name}",
                 "maxcpu": n["maxcpu"], "maxmem": n["maxmem"], "level": "",
                 "ssl_fingerprint": ":".join("%02X" % ((i * 37 + len(name)) % 256) for i in range(32))}
            if n["status"] == "online":
                e.update(self.cluster.node_usage(name, now))
                e["disk"], e["maxdisk"] = 9 * GiB, 100 * GiB
            out.append(e)
        return out

    def node_index(self, ctx, p):
        return [{"name": c} for c in self.sim.schema.children("/nodes/{node}")]

    def node_status(self, ctx, p):
        node = p["node"]
        n = self.cluster.nodes[node]
        u = self.cluster.node_usage(node, time.time())
        return {
            "boot-info": {"mode": "efi", "secureboot": 0},
            "cpu": u["cpu"],
            "cpuinfo": {"cores": n["maxcpu"] // 2, "cpus": n["maxcpu"], "sockets": 1,
                        "model": "AMD EPYC 7302P 16-Core Processor", "mhz": "3000.000",
                        "hvm": "1", "flags": "fpu vme de pse", "user_hz": 100},
            "current-kernel": {"machine": "x86_64", "release": "6.8.12-9-pve", "sysname": "Linux",
                               "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.8.12-9 (2025-03-16T19:18Z)"},
            "kversion": "Linux 6.8.12-9-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-9 (2025-03-16T19:18Z)",
            "loadavg": ["%.2f" % (u["cpu"] * n["maxcpu"]), "0.52", "0.48"],
            "memory": {"total": n["maxmem"], "used": u["mem"], "free": n["maxmem"] - u["mem"]},
            "swap": {"total": 8 * GiB, "used": 0, "free": 8 * GiB},
            "pveversion": "pve-manager/8.4.1/2a5fa54a8503f96d",
            "rootfs": {"total": 100 * GiB, "used": 9 * GiB, "free": 91 * GiB, "avail": 86 * GiB},
            "ksm": {"shared": 0},
            "uptime": u["uptime"],
            "idle": 0,
            "wait": 0.0012,
        }

    # --- cluster -----------------------------------------------------------------------------
    def _guest_resource(self, ct: Container, now: float) -> dict:
        n = self.cluster.nodes[ct.node]
        m = ct.metrics(now, n["maxcpu"])
        e = {"id": f"lxc/{ct.vmid}", "type": "lxc", "vmid": ct.vmid, "node": ct.node,
             "status": ct.status if n["status"] == "online" else "unknown", "name": ct.name, "uptime": m["uptime"],
             "template": 1 if ct.template else 0, "maxcpu": m["cpus"], "cpu": m["cpu"],
             "maxmem": m["maxmem"], "mem": m["mem"], "maxdisk": m["maxdisk"], "disk": m["disk"],
             "netin": m["netin"], "netout": m["netout"], "diskread": m["diskread"],
             "diskwrite": m["diskwrite"]}
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
        typ = p.get("type")
        now = time.time()
        out = []
        if typ in (None, "vm"):
            for ct in sorted(self.cluster.containers.values(), key=lambda c: c.vmid):
                out.append(self._guest_resource(ct, now))
        if typ in (None, "node"):
            for e in self.nodes(ctx, p):
                e.pop("ssl_fingerprint", None)
                e["cgroup-mode"] = 2
                out.append(e)
        if typ in (None, "storage"):
            for node in self.cluster.nodes:
                for s in self.cluster.storage_status(node):
                    out.append({"id": f"storage/{node}/{s['storage']}", "type": "storage",
                                "storage": s["storage"], "node": node, "status": "available",
                                "plugintype": s["type"], "content": s["content"],
                                "shared": s["shared"], "disk": s["used"], "maxdisk": s["total"]})
        if typ in (None, "sdn"):
            for node in self.cluster.nodes:
                out.append({"id": f"sdn/{node}/localnetwork", "type": "sdn", "sdn": "localnetwork",
                            "node": node, "status": "ok"})
        if typ is None:
            for pool in sorted(self.cluster.pools):
                out.append({"id": f"/pool/{pool}", "type": "pool", "pool": pool})
        return out

    def nextid(self, ctx, p):
        if "vmid" in p:
            if int(p["vmid"]) in self.cluster.containers:
                raise param_error({"vmid": f"VM {p['vmid']} already exists"})
            return p["vmid"]  # echoed as given (a string), like the Perl code does
        return self.cluster.next_free_vmid()

    def cluster_tasks(self, ctx, p):
        tasks = sorted(self.cluster.tasks, key=lambda t: (t.starttime, t.pid), reverse=True)
        return [t.list_entry() for t in tasks]

    def node_tasks(self, ctx, p):
        node = p["node"]
        source = p.get("source", "archive")
        out = []
        for t in sorted(self.cluster.tasks, key=lambda t: (t.starttime, t.pid), reverse=True):
            if t.node != node:
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

    def task_index(self, ctx, p):
        self._task(p)
        return [{"name": "log"}, {"name": "status"}]

    def task_status(self, ctx, p):
        t = self._task(p)
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
        lines = list(t.lines) if t else ["unable to open file - No such file or directory"]
        start, limit = int(p.get("start", 0)), int(p.get("limit", 50))
        sel = lines[start:start + limit] if limit else lines[start:]
        return [{"n": start + i + 1, "t": line} for i, line in enumerate(sel)], {"total": len(lines)}

    # --- storage / network -------------------------------------------------------------------
    def storage_list(self, ctx, p):
        out = self.cluster.storage_status(p["node"])
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
        for ct in sorted(self.cluster.containers.values(), key=lambda c: c.vmid):
            if ct.node == node:
                out.append(ct.metrics(now, n["maxcpu"]))
        return out

    def lxc_index(self, ctx, p):
        self.cluster.get_ct(p["node"], p["vmid"])
        return [{"subdir": c} for c in self.sim.schema.children("/nodes/{node}/lxc/{vmid}")]

    def lxc_status_index(self, ctx, p):
        self.cluster.get_ct(p["node"], p["vmid"])
        return [{"subdir": c} for c in self.sim.schema.children("/nodes/{node}/lxc/{vmid}/status")]

    def lxc_config(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        if p.get("snapshot"):
            raise PVEError(f"snapshot '{p['snapshot']}' does not exist")
        cfg = dict(ct.config)
        cfg["digest"] = ct.digest()
        return cfg

    def lxc_status(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        m = ct.metrics(time.time(), self.cluster.nodes[ct.node]["maxcpu"])
        if ct.ha_state:
            m["ha"] = {"managed": 1, "state": ct.ha_state, "group": ct.ha_group,
                       "max_relocate": 1, "max_restart": 1}
        else:
            m["ha"] = {"managed": 0}
        return m

    def lxc_interfaces(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        if not ct.running:
            return None
        out = [{"name": "lo", "hwaddr": "00:00:00:00:00:00", "hardware-address": "00:00:00:00:00:00",
                "inet": "127.0.0.1/8", "inet6": "::1/128",
                "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "inet", "prefix": 8},
                                 {"ip-address": "::1", "ip-address-type": "inet6", "prefix": 128}]}]
        for key in sorted(k for k in ct.config if re.match(r"^net\d+$", k)):
            try:
                net = parse_property_string(self._net_fmt(), ct.config[key], key)
            except Exception:
                continue
            mac = net.get("hwaddr", mac_for(ct.vmid, int(key[3:]))).lower()
            ip = net.get("ip", "dhcp")
            if ip == "dhcp":
                addr, prefix = ip_for(ct.vmid * 4 + int(key[3:])), 24
            elif "/" in ip:
                addr, prefix = ip.split("/")[0], int(ip.split("/")[1])
            else:
                addr = None
            e = {"name": net["name"], "hwaddr": mac, "hardware-address": mac, "ip-addresses": []}
            if addr:
                e["inet"] = f"{addr}/{prefix}"
                e["ip-addresses"].append({"ip-address": addr, "ip-address-type": "inet", "prefix": prefix})
            v6 = "fe80::%s/64" % mac.replace(":", "")[-4:]
            e["inet6"] = v6
            e["ip-addresses"].append({"ip-address": v6.split("/")[0], "ip-address-type": "inet6",
                                      "prefix": 64})
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
            net["hwaddr"] = oldmac or mac_for(vmid, int(key[3:]))
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
        existing = self.cluster.containers.get(vmid)
        if existing and not (restore and _b(p.get("force", "0"))):
            raise PVEError(f"CT {vmid} already exists on node '{existing.node}'")
        if p.get("pool") and p["pool"] not in self.cluster.pools:
            raise PVEError(f"pool '{p['pool']}' does not exist")
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

        skip = {"node", "vmid", "ostemplate", "storage", "password", "ssh-public-keys", "start",
                "restore", "force", "unique", "pool", "ignore-unpack-errors", "bwlimit", "debug",
                "template", "lock"}
        cfg = {"arch": p.get("arch", "amd64")}
        tmpl_os = next((t[2] for t in TEMPLATES if t[0] in ostemplate), None)
        cfg["ostype"] = p.get("ostype") or tmpl_os or "unmanaged"
        disk_idx = 0
        cfg["rootfs"] = self._alloc_volume("rootfs", p.get("rootfs", f"{storage}:4"), vmid, storage, disk_idx)
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

        def on_error(task):
            with self.cluster.lock:
                if self.cluster.containers.get(vmid) is ct:
                    del self.cluster.containers[vmid]

        return self.sim.tasks.spawn(node, "vzrestore" if restore else "vzcreate", vmid, ctx.user,
                                    worker, on_error=on_error)

    # --- update ------------------------------------------------------------------------------
    def lxc_update(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        if ct.lock:
            raise PVEError(f"CT {ct.vmid} is locked ({ct.lock})")
        if p.get("digest") and p["digest"] != ct.digest():
            raise PVEError("detected modified configuration - file changed by other user? Try again.")
        deletes = split_list(p.get("delete", ""))
        for key in deletes:
            if key in p:
                raise param_error({"delete": f"you can't change and delete the same option ('{key}')"})
        new = dict(ct.config)
        for key in deletes:
            if key in ("rootfs", "unprivileged", "template", "arch"):
                raise PVEError(f"unable to delete required option '{key}'")
            new.pop(key, None)
        for key, val in p.items():
            if key in ("node", "vmid", "delete", "revert", "digest", "debug"):
                continue
            if key == "unprivileged" and int(val) != int(ct.config.get("unprivileged", 0)):
                raise PVEError("unable to modify read-only option: 'unprivileged'")
            if re.match(r"^net\d+$", key):
                new[key] = self._normalize_net(key, val, ct.vmid, ct.config.get(key))
            elif key == "tags":
                t = normalize_tags(val)
                if t:
                    new["tags"] = t
                else:
                    new.pop("tags", None)
            elif re.match(r"^mp\d+$", key):
                new[key] = self._alloc_volume(key, val, ct.vmid, "local-lvm",
                                              int(key[2:]) + 1)
            else:
                new[key] = self._coerce(key, val)
        ct.config = new
        return None

    # --- destroy -----------------------------------------------------------------------------
    def lxc_destroy(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        vmid = ct.vmid
        if ct.config.get("protection"):
            raise PVEError(f"can't remove CT {vmid} - protection mode enabled")
        purge = _b(p.get("purge", "0"))
        if ct.ha and not purge:
            raise PVEError(f"unable to remove CT {vmid} - used in HA resources and purge parameter not set.")
        if ct.running and not _b(p.get("force", "0")):
            raise PVEError(f"unable to destroy CT {vmid} - container is running")
        if ct.lock:
            raise PVEError(f"CT {vmid} is locked ({ct.lock})")

        def worker(task: Task):
            if ct.running:
                task.log(f"stopping CT {vmid}")
                with self.cluster.lock:
                    self.cluster._set_stopped(ct)
            vol = ct.config.get("rootfs", "").split(",")[0]
            task.log(f"  Logical volume \"{vol.split(':')[-1]}\" successfully removed.")
            if purge:
                task.log(f"purging CT {vmid} from related configurations..")
            with self.cluster.lock:
                if self.cluster.containers.get(vmid) is ct:
                    del self.cluster.containers[vmid]

        return self.sim.tasks.spawn(ct.node, "vzdestroy", vmid, ctx.user, worker)

    # --- power -------------------------------------------------------------------------------
    def _check_lock(self, ct, p):
        if ct.lock and not _b(p.get("skiplock", "0")) and ct.lock != "mounted":
            raise TaskFailed(f"CT {ct.vmid} is locked ({ct.lock})")

    def _ha_request(self, ctx, ct, state, typ):
        vmid = ct.vmid

        def worker(task: Task):
            task.log(f"Requesting HA {'start' if state == 'started' else 'stop'} for CT {vmid}")
            with self.cluster.lock:
                ct.ha_state = state
            # ha-manager (CRM/LRM) acts on the request shortly afterwards with its own task
            if state == "started" and not ct.running:
                self.sim.tasks.spawn(ct.node, "vzstart", vmid, "root@pam", self._start_worker(ct, {}))
            elif state == "stopped" and ct.running:
                self.sim.tasks.spawn(ct.node, "vzshutdown", vmid, "root@pam",
                                     self._shutdown_worker(ct, {"forceStop": "1"}))

        return self.sim.tasks.spawn(ct.node, typ, vmid, ctx.user, worker)

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
        if ct.ha:
            return self._ha_request(ctx, ct, "started", "hastart")
        return self.sim.tasks.spawn(ct.node, "vzstart", ct.vmid, ctx.user, self._start_worker(ct, p))

    def lxc_stop(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        if not ct.running:
            raise PVEError(f"CT {ct.vmid} not running")
        overrule = _b(p.get("overrule-shutdown", "0"))
        if ct.ha:
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
        if ct.ha:
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

    def spawn(self, node, typ, vmid, user, worker, on_error=None) -> str:
        task = self.sim.cluster.new_task(node, typ, vmid, user)
        with self._idle:
            self._active += 1
        th = threading.Thread(target=self._run, args=(task, worker, on_error),
                              name=f"pvesim-{typ}-{vmid}", daemon=True)
        th.start()
        return task.upid

    def _run(self, task: Task, worker, on_error):
        try:
            fault = self.sim.faults._take_task_fault(task.type, task.id)
            try:
                self.sleep(self.sim.task_delay, task)
                if fault is not None:
                    raise TaskFailed(fault)
                worker(task)
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
