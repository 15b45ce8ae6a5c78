"""Cluster model of the simulator: nodes, storages, containers, HA and tasks."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import os
import random
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from .schema import format_size, parse_size, split_list

GiB = 1 << 30
MiB = 1 << 20

TEMPLATES = [
    ("debian-12-standard_12.7-1_amd64.tar.zst", 126_027_486, "debian"),
    ("ubuntu-24.04-standard_24.04-2_amd64.tar.zst", 141_395_915, "ubuntu"),
    ("alpine-3.20-default_20240908_amd64.tar.xz", 3_082_876, "alpine"),
]

# (storage id, type, content, shared, total bytes)
STORAGES = [
    ("local", "dir", "backup,iso,vztmpl", 0, 100 * GiB),
    ("local-lvm", "lvmthin", "images,rootdir", 0, 800 * GiB),
    ("backup-nfs", "nfs", "backup", 1, 2048 * GiB),
    ("pbs", "pbs", "backup", 1, 4096 * GiB),
]

HOSTNAMES = ["web", "db", "cache", "proxy", "mail", "dns", "git", "ci", "mon", "log",
             "vpn", "files", "media", "backup", "auth", "queue", "search", "api", "app", "dev"]
TAG_POOL = ["prod", "dev", "staging", "web", "db", "critical", "backup", "team-a", "team_b", "k8s"]


# HA states a container can be put in (PATCH /_sim/containers/<vmid> {"ha_state": ...}):
# the CRM service states (pve-ha-manager) plus the request states disabled / ignored.
HA_STATES = ("started", "stopped", "disabled", "ignored", "error", "fence", "freeze", "migrate",
             "relocate", "request_start", "request_stop", "recovery")


def ha_request_state(state: str) -> str:
    """The ``state`` of the resource in ha/resources.cfg behind a displayed HA state."""
    if state in ("stopped", "request_stop"):
        return "stopped"
    if state in ("disabled", "ignored"):
        return state
    return "started"


class PVEError(Exception):
    """An error the API handler raises: HTTP status + message (+ param errors)."""

    def __init__(self, message: str, status: int = 500, errors: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def param_error(errors: dict) -> PVEError:
    return PVEError("Parameter verification failed.", 400, errors)


def normalize_tags(value) -> str:
    if isinstance(value, (list, tuple, set)):
        value = ";".join(value)
    tags = sorted({t.lower() for t in split_list(value or "")})
    return ";".join(tags)


_MAC_SERIAL = itertools.count(1)


def mac_for(vmid: int, idx: int = 0, serial: int = 0) -> str:
    """A MAC for NIC ``idx`` of ``vmid``; the seeded cluster uses serial 0 (stable across resets)."""
    h = hashlib.sha1(f"{vmid}/{idx}/{serial}".encode() if serial else f"{vmid}/{idx}".encode()).digest()
    return "BC:24:11:%02X:%02X:%02X" % (h[0], h[1], h[2])


def new_mac(vmid: int, idx: int = 0) -> str:
    """A MAC for a NIC a create adds: like PVE's random_ether_addr, never the same twice for one VMID."""
    return mac_for(vmid, idx, next(_MAC_SERIAL))


def _mac_serial_floor(serial: int) -> None:
    """Draw MACs from ``serial`` on at least (a loaded cluster never hands out a MAC it saw before)."""
    global _MAC_SERIAL
    current = next(_MAC_SERIAL)
    _MAC_SERIAL = itertools.count(max(current, int(serial)))


def ip_for(vmid: int) -> str:
    return f"10.{(vmid >> 16) & 255}.{(vmid >> 8) & 255}.{vmid & 255 or 1}"


@functools.lru_cache(maxsize=1 << 16)
def _rootfs_size(rootfs: str) -> int:
    """Bytes of a rootfs property string's ``size=`` (4 GiB without one). Cached: every guest's
    entry in /cluster/resources and its node's storage figures read it on every call."""
    m = re.search(r"(?:^|,)size=([^,]+)", rootfs)
    return parse_size(m.group(1)) if m else 4 * GiB


@dataclass
class Container:
    vmid: int
    node: str
    status: str = "stopped"  # running | stopped
    config: dict = field(default_factory=dict)
    ha_state: str | None = None  # None = not HA managed, else started|stopped|...
    ha_group: str | None = None
    pool: str | None = None
    started_at: float | None = None
    pid: int | None = None
    ignore_shutdown: bool = False
    snapshots: dict = field(default_factory=dict)  # name -> the snapshot's config section
    pending: dict = field(default_factory=dict)  # the [pve:pending] section ("delete": "key,key"), see config.py

    # convenient attribute views on the config -------------------------------------------------
    @property
    def hostname(self):
        return self.config.get("hostname")

    @hostname.setter
    def hostname(self, v):
        if v:
            self.config["hostname"] = v
        else:
            self.config.pop("hostname", None)

    @property
    def name(self):
        return self.config.get("hostname") or f"CT{self.vmid}"

    @property
    def tags(self) -> list[str]:
        return [t for t in self.config.get("tags", "").split(";") if t]

    @tags.setter
    def tags(self, v):
        t = normalize_tags(v)
        if t:
            self.config["tags"] = t
        else:
            self.config.pop("tags", None)

    @property
    def lock(self):
        return self.config.get("lock")

    @lock.setter
    def lock(self, v):
        if v:
            self.config["lock"] = v
        else:
            self.config.pop("lock", None)

    @property
    def template(self) -> bool:
        return bool(self.config.get("template"))

    @template.setter
    def template(self, v):
        if v:
            self.config["template"] = 1
        else:
            self.config.pop("template", None)

    @property
    def ha(self) -> bool:
        return self.ha_state is not None

    @ha.setter
    def ha(self, v):
        if v:
            self.ha_state = self.ha_state or ("started" if self.status == "running" else "stopped")
        else:
            self.ha_state = None

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def memory_mb(self) -> int:
        return int(self.config.get("memory", 512))

    @property
    def swap_mb(self) -> int:
        return int(self.config.get("swap", 512))

    @property
    def maxdisk(self) -> int:
        return _rootfs_size(self.config.get("rootfs", ""))

    def cpus(self, host_cpus: int) -> float:
        if self.config.get("cores"):
            return int(self.config["cores"])
        if float(self.config.get("cpulimit", 0) or 0):
            return float(self.config["cpulimit"])
        return host_cpus

    def digest(self) -> str:
        text = "".join(f"{k}: {v}\n" for k, v in sorted(self.config.items()))
        text += "".join(f"[pve:pending] {k}: {v}\n" for k, v in sorted(self.pending.items()))
        return hashlib.sha1(text.encode()).hexdigest()

    # metrics: deterministic functions of (vmid, time) -------------------------------------------
    def metrics(self, now: float, host_cpus: int, pressure: bool = False) -> dict:
        maxmem = self.memory_mb * MiB
        maxdisk = self.maxdisk
        base = {
            "status": self.status, "vmid": self.vmid, "name": self.name, "type": "lxc",
            "cpus": self.cpus(host_cpus), "maxmem": maxmem, "maxswap": self.swap_mb * MiB,
            "maxdisk": maxdisk,
        }
        if self.running:
            up = max(0, int(now - (self.started_at or now)))
            ph = (self.vmid * 7919) % 1000 / 1000 * 2 * math.pi
            wave = 0.5 + 0.5 * math.sin(now / 15.0 + ph)
            base.update(
                cpu=round(0.02 + 0.3 * wave * ((self.vmid % 5) + 1) / 5, 6),
                mem=int(maxmem * (0.15 + 0.5 * wave * ((self.vmid % 3) + 1) / 3)),
                swap=int(self.swap_mb * MiB * 0.02 * wave),
                disk=int(maxdisk * (0.2 + (self.vmid % 50) / 100)),
                uptime=up,
                netin=int(up * (1500 + self.vmid % 700)),
                netout=int(up * (900 + self.vmid % 500)),
                diskread=int(up * 2048 + 40 * MiB),
                diskwrite=int(up * 1024 + 8 * MiB),
                pid=self.pid,
            )
            if pressure:
                # pve-container 6.x vmstatus: avg10 of the cgroup's PSI files, only for running
                # CTs; read with a regex, hence strings like "0.42" (PVE::ProcFSTools::parse_pressure)
                k = (self.vmid % 7) / 7
                base.update(
                    pressurecpusome="%.2f" % (wave * 4 * k),
                    pressurecpufull="%.2f" % (wave * 1.5 * k),
                    pressureiosome="%.2f" % (wave * 2 * ((self.vmid % 3) / 3)),
                    pressureiofull="%.2f" % (wave * ((self.vmid % 3) / 3)),
                    pressurememorysome="%.2f" % (0.3 * wave * ((self.vmid % 5) / 5)),
                    pressurememoryfull="%.2f" % (0.1 * wave * ((self.vmid % 5) / 5)),
                )
        else:
            base.update(cpu=0, mem=0, swap=0, disk=0, uptime=0, netin=0, netout=0,
                        diskread=0, diskwrite=0)
        if self.template:
            base["template"] = 1
        if self.lock:
            base["lock"] = self.lock
        if self.config.get("tags"):
            base["tags"] = self.config["tags"]
        return base


@dataclass
class Task:
    upid: str
    node: str
    pid: int
    pstart: int
    starttime: int
    type: str
    id: str
    user: str  # full user incl. "!tokenid"
    status: str = "running"
    exitstatus: str | None = None
    endtime: int | None = None
    lines: list = field(default_factory=list)
    cancelled: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    def log(self, line: str):
        self.lines.append(line)

    def status_dict(self) -> dict:
        user, _, tokenid = self.user.partition("!")
        d = {"upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart,
             "starttime": self.starttime, "type": self.type, "id": self.id, "user": user,
             "status": self.status}
        if tokenid:
            d["tokenid"] = tokenid
        if self.status == "stopped":
            d["exitstatus"] = self.exitstatus
        return d

    def list_entry(self) -> dict:
        d = {"upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart,
             "starttime": self.starttime, "type": self.type, "id": self.id, "user": self.user}
        if self.status == "stopped":
            d["endtime"] = self.endtime
            d["status"] = self.exitstatus
        return d


def make_upid(node, pid, pstart, starttime, typ, ident, user) -> str:
    return f"UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{typ}:{ident}:{user}:"


class Cluster:
    """All mutable simulator state. Guarded by ``self.lock`` (re-entrant)."""

    def __init__(self, nodes: int = 3, containers: int = 20, seed: int = 1, version: str = "9.1",
                 node_prefix: str = "pve"):
        self.lock = threading.RLock()
        self.version = version
        self.node_prefix = node_prefix  # nodes are <prefix>1, <prefix>2…: clusters side by side differ
        self.nodes_count = nodes
        self.containers_count = containers
        self.seed = seed
        self.pools: set[str] = {"prod", "lab"}
        self.reset()

    # ---------------------------------------------------------------------------------------
    def reset(self):
        with self.lock:
            self.boot_time = time.time() - 86400 * 12
            self.nodes = {f"{self.node_prefix}{i + 1}": {"status": "online", "maxcpu": 16 if i % 2 == 0 else 8,
                                            "maxmem": (64 if i % 2 == 0 else 32) * GiB,
                                            "uptime_base": self.boot_time - i * 3600}
                          for i in range(self.nodes_count)}
            self.containers: dict[int, Container] = {}
            self.tasks: list[Task] = []
            self.tasks_by_upid: dict[str, Task] = {}
            self.ha_groups: dict[str, dict] = {}  # 8.4: /cluster/ha/groups
            self.ha_rules: dict[str, dict] = {}  # 9.x: /cluster/ha/rules
            self.ha_digest_n = 0
            self._pid = 0x3A000
            self._pstart = 0x1C2D000
            self.backups: dict[str, dict] = {}  # volid -> backup volume (see backups.py)
            self.backup_jobs: dict[str, dict] = {}  # /cluster/backup
            self._vzdump_gates: dict[str, threading.Lock] = {}
            self._generate(self.containers_count, self.seed)
            from .backups import seed_backups
            seed_backups(self, time.time())

    # persistence (``python -m tests.pvesim --state FILE``) ------------------------------------
    STATE_FIELDS = ("status", "config", "ha_state", "ha_group", "pool", "started_at", "pid", "ignore_shutdown",
                    "snapshots", "pending")

    def to_dict(self) -> dict:
        """What a restart needs: nodes, containers, pools, HA groups and rules (no tasks).

        Shape: ``{"format": 1, "version": "9.1", "nodes": {name: {...}}, "containers": [{"vmid": 100,
        "node": "pve1", "status": ..., "config": {...}, ...}], "pools": [...], "ha_groups": {...},
        "ha_rules": {...}, "counters": {"pid": int, "pstart": int, "mac_serial": int}}``.
        """
        with self.lock:
            return {
                "format": 1, "version": self.version, "nodes": self.nodes,
                "containers": [{"vmid": ct.vmid, "node": ct.node, **{k: getattr(ct, k) for k in self.STATE_FIELDS}}
                               for ct in sorted(self.containers.values(), key=lambda c: c.vmid)],
                "pools": sorted(self.pools), "ha_groups": self.ha_groups, "ha_rules": self.ha_rules,
                "backups": self.backups, "backup_jobs": self.backup_jobs,
                "counters": {"pid": self._pid, "pstart": self._pstart, "mac_serial": next(_MAC_SERIAL)},
            }

    def load_dict(self, data: dict) -> None:
        """Replace the cluster with ``data`` from ``to_dict``; tasks start empty.

        A container left locked by a task that the restart cut short (``create``, ``destroyed``…)
        stays locked, like on a node that rebooted mid-task. Raises ValueError for another format.
        """
        if data.get("format") != 1:
            raise ValueError(f"unknown simulator state format {data.get('format')!r}")
        with self.lock:
            self.nodes = {name: dict(node) for name, node in data["nodes"].items()}
            self.nodes_count = len(self.nodes)
            self.containers = {}
            for item in data["containers"]:
                ct = Container(vmid=int(item["vmid"]), node=item["node"],
                               **{k: item[k] for k in self.STATE_FIELDS if k in item})
                self.containers[ct.vmid] = ct
            self.pools = set(data.get("pools", self.pools))
            self.ha_groups = dict(data.get("ha_groups", {}))
            self.ha_rules = dict(data.get("ha_rules", {}))
            self.backups = dict(data.get("backups", {}))
            self.backup_jobs = dict(data.get("backup_jobs", {}))
            self.tasks, self.tasks_by_upid = [], {}
            counters = data.get("counters", {})
            self._pid = max(self._pid, int(counters.get("pid", 0)))
            self._pstart = max(self._pstart, int(counters.get("pstart", 0)))
            _mac_serial_floor(int(counters.get("mac_serial", 0)))

    def save(self, path) -> None:
        """Write ``to_dict`` as JSON to ``path`` atomically (a crash mid-write keeps the old file)."""
        tmp = f"{path}.tmp"
        with open(tmp, "w") as handle:
            json.dump(self.to_dict(), handle, indent=1, sort_keys=True)
        os.replace(tmp, path)

    def load(self, path) -> None:
        """Load a file written by ``save``. Raises OSError or ValueError (bad JSON, other format)."""
        with open(path) as handle:
            self.load_dict(json.load(handle))

    def _generate(self, count: int, seed: int):
        rng = random.Random(seed)
        names = list(self.nodes)
        now = time.time()
        for i in range(count):
            vmid = 100 + i
            node = names[i % len(names)]
            tmpl = TEMPLATES[i % len(TEMPLATES)]
            cfg = {
                "arch": "amd64",
                "cores": rng.choice([1, 1, 2, 2, 4]),
                "memory": rng.choice([256, 512, 512, 1024, 2048]),
                "swap": rng.choice([0, 256, 512]),
                "ostype": tmpl[2],
                "rootfs": f"local-lvm:vm-{vmid}-disk-0,size={rng.choice([4, 8, 8, 16, 32])}G",
                "net0": f"name=eth0,bridge=vmbr0,firewall=1,hwaddr={mac_for(vmid)},ip=dhcp,type=veth",
                "unprivileged": 1,
            }
            if i % 7 != 3:  # some containers have no hostname -> name "CT<vmid>"
                cfg["hostname"] = f"{HOSTNAMES[i % len(HOSTNAMES)]}{i // len(HOSTNAMES) + 1:02d}"
            if rng.random() < 0.6:
                cfg["tags"] = normalize_tags(rng.sample(TAG_POOL, rng.randint(1, 3)))
            if rng.random() < 0.3:
                cfg["onboot"] = 1
            if rng.random() < 0.2:
                cfg["features"] = "nesting=1"
            running = rng.random() < 0.6
            ct = Container(vmid=vmid, node=node, status="running" if running else "stopped", config=cfg)
            if running:
                ct.started_at = now - rng.randint(60, 40 * 86400)
                ct.pid = self.next_pid()
            self.containers[vmid] = ct
        # special containers (only if present)
        if 101 in self.containers:  # HA-managed, running
            ct = self.containers[101]
            self._set_running(ct, now - 3600)
            ct.ha_state, ct.ha_group = "started", None
        if 102 in self.containers:  # locked by a backup
            self.containers[102].config["lock"] = "backup"
        if 103 in self.containers:  # a proper template
            ct = self.containers[103]
            ct.status, ct.started_at, ct.pid = "stopped", None, None
            ct.config["template"] = 1
            ct.config.pop("onboot", None)
        if 100 in self.containers:  # a running plain one (stable anchor for tests)
            self._set_running(self.containers[100], now - 7200)
        if 104 in self.containers:  # a stopped plain one
            ct = self.containers[104]
            ct.status, ct.started_at, ct.pid = "stopped", None, None

    def _set_running(self, ct: Container, since: float | None = None):
        if ct.pending:  # PVE::LXC::vm_start applies pending changes first (a reboot starts it again too)
            from .config import apply_pending
            apply_pending(ct)
        ct.status = "running"
        ct.started_at = since if since is not None else time.time()
        ct.pid = self.next_pid()
        ct.config.pop("lock", None) if ct.config.get("lock") == "create" else None

    def _set_stopped(self, ct: Container):
        ct.status, ct.started_at, ct.pid = "stopped", None, None

    def next_pid(self) -> int:
        with self.lock:
            self._pid += 1 + (self._pid % 7)
            return self._pid

    # ---------------------------------------------------------------------------------------
    def add_container(self, vmid: int | None = None, node: str | None = None, status: str = "stopped",
                      hostname: str | None = None, tags=None, ha: bool = False, lock: str | None = None,
                      template: bool = False, memory: int = 512, cores: int | None = 1, swap: int = 512,
                      disk_gb: int = 8, ostype: str = "debian", pool: str | None = None,
                      ha_state: str | None = None, ha_group: str | None = None, **extra_config) -> Container:
        with self.lock:
            if vmid is None:
                vmid = self.next_free_vmid()
            vmid = int(vmid)
            if vmid in self.containers:
                raise ValueError(f"CT {vmid} already exists")
            node = node or next(iter(self.nodes))
            if node not in self.nodes:
                raise ValueError(f"unknown node {node}")
            cfg = {"arch": "amd64", "memory": int(memory), "swap": int(swap), "ostype": ostype,
                   "rootfs": f"local-lvm:vm-{vmid}-disk-0,size={disk_gb}G",
                   "net0": f"name=eth0,bridge=vmbr0,hwaddr={new_mac(vmid)},ip=dhcp,type=veth",
                   "unprivileged": 1}
            if cores:
                cfg["cores"] = int(cores)
            for k, v in extra_config.items():
                if v is None:
                    cfg.pop(k, None)
                else:
                    cfg[k] = int(v) if isinstance(v, bool) else v
            ct = Container(vmid=vmid, node=node, config=cfg, pool=pool)
            ct.hostname = hostname
            ct.tags = tags or ""
            ct.lock = lock
            ct.template = template
            if status == "running":
                self._set_running(ct)
            if ha_state is not None and ha_state not in HA_STATES:
                raise ValueError(f"ha_state must be one of {', '.join(HA_STATES)}")
            if ha or ha_state:
                ct.ha_state = ha_state or ("started" if status == "running" else "stopped")
                ct.ha_group = ha_group
            self.containers[vmid] = ct
            return ct

    def next_free_vmid(self) -> int:
        vmid = 100
        while vmid in self.containers:
            vmid += 1
        return vmid

    def get_ct(self, node: str, vmid) -> Container:
        ct = self.containers.get(int(vmid))
        if ct is None or ct.node != node:
            raise PVEError(f"Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist")
        return ct

    def check_node(self, node: str):
        if node not in self.nodes:
            raise PVEError(f"no such cluster node '{node}'", 595)

    # storage ---------------------------------------------------------------------------------
    def vzdump_gate(self, node: str) -> threading.Lock:
        """The node's vzdump global lock (/var/run/vzdump.lock): one backup job per node at a time."""
        with self.lock:
            return self._vzdump_gates.setdefault(node, threading.Lock())

    def backups_on(self, node: str, sid: str) -> list[dict]:
        """The backup volumes of storage ``sid`` that ``node`` sees (shared storages: all of them)."""
        return sorted((b for b in self.backups.values()
                       if b["storage"] == sid and b["node"] in (None, node)), key=lambda b: (b["vmid"], b["ctime"]))

    def storage_used(self, nodes) -> dict[tuple[str, str], int]:
        """Bytes used per ``(node, storage id)`` for each node in ``nodes``, before the cap at the
        storage's size: the templates and backups on ``local``, the backups on a backup storage,
        a third of each container's disk on its node's image storage.

        One pass over the backups and one over the containers for all nodes and storages: pvestatd
        reads these figures from its cache, so asking for more nodes or storages must not cost
        another scan each (/cluster/resources unfiltered would cost far more than ``type=vm``)."""
        counted = {sid for sid, _typ, content, _shared, _total in STORAGES if sid == "local" or content == "backup"}
        templates = 18 * GiB + sum(t[1] for t in TEMPLATES)
        backup_bytes: dict[tuple, int] = defaultdict(int)  # (node, or None for a shared volume, sid)
        for b in self.backups.values():
            backup_bytes[b["node"], b["storage"]] += b["size"]
        disk_bytes: dict[str, int] = defaultdict(int)
        for ct in self.containers.values():
            disk_bytes[ct.node] += ct.maxdisk // 3
        used = {}
        for node in nodes:
            for sid, *_ in STORAGES:
                if sid in counted:
                    used[node, sid] = ((templates if sid == "local" else 0)
                                       + backup_bytes[None, sid] + backup_bytes[node, sid])
                else:
                    used[node, sid] = disk_bytes[node]
        return used

    def storage_status(self, node: str, used: dict[tuple[str, str], int] | None = None) -> list[dict]:
        """The node's storages as ``/nodes/{node}/storage`` lists them; ``used`` is
        :meth:`storage_used` when the caller already has it for this node."""
        if used is None:
            used = self.storage_used([node])
        out = []
        for sid, typ, content, shared, total in STORAGES:
            u = min(used[(node, sid)], total)
            out.append({"storage": sid, "type": typ, "content": content, "active": 1, "enabled": 1,
                        "shared": shared, "total": total, "used": u, "avail": total - u,
                        "used_fraction": u / total})
        return out

    def storage_cfg(self, sid: str):
        for s in STORAGES:
            if s[0] == sid:
                return s
        return None

    def storage_content(self, node: str, sid: str) -> list[dict]:
        out = []
        if sid == "local":
            for i, (fname, size, _os) in enumerate(TEMPLATES):
                ext = fname.rsplit(".", 1)[1]
                out.append({"volid": f"local:vztmpl/{fname}", "format": "t" + ext, "size": size,
                            "ctime": int(self.boot_time) - 86400 * (30 + i), "content": "vztmpl"})
        elif sid == "local-lvm":
            for ct in sorted(self.containers.values(), key=lambda c: c.vmid):
                if ct.node != node:
                    continue
                vol = ct.config.get("rootfs", "").split(",")[0]
                if vol.startswith("local-lvm:"):
                    out.append({"volid": vol, "format": "raw", "size": ct.maxdisk, "vmid": ct.vmid,
                                "content": "rootdir", "ctime": int(self.boot_time)})
        from .backups import backup_entry_for_listing
        out.extend(backup_entry_for_listing(b) for b in self.backups_on(node, sid))
        return out

    def template_exists(self, volid: str) -> bool:
        return any(volid == f"local:vztmpl/{t[0]}" for t in TEMPLATES)

    # network ---------------------------------------------------------------------------------
    def network(self, node: str) -> list[dict]:
        idx = list(self.nodes).index(node) + 1
        out = [
            {"iface": "eno1", "type": "eth", "active": 1, "exists": 1, "families": ["inet"],
             "method": "manual", "method6": None, "priority": 3},
            {"iface": "vmbr0", "type": "bridge", "active": 1, "autostart": 1, "families": ["inet"],
             "method": "static", "method6": "manual", "address": f"192.168.1.{10 + idx}",
             "netmask": "24", "cidr": f"192.168.1.{10 + idx}/24", "gateway": "192.168.1.1",
             "bridge_ports": "eno1", "bridge_stp": "off", "bridge_fd": "0", "priority": 4},
        ]
        if idx % 2 == 1:
            out.append({"iface": "vmbr1", "type": "bridge", "active": 1, "autostart": 1,
                        "families": ["inet"], "method": "static", "method6": "manual",
                        "address": f"10.10.0.{idx}", "netmask": "16", "cidr": f"10.10.0.{idx}/16",
                        "bridge_ports": "none", "bridge_stp": "off", "bridge_fd": "0",
                        "comments": "internal\n", "priority": 5})
        return out

    # node ------------------------------------------------------------------------------------
    def node_usage(self, node: str, now: float) -> dict:
        """The node's cpu (fraction), mem (bytes) and uptime (s) at ``now`` (see :meth:`node_usages`)."""
        return self.node_usages([node], now)[node]

    def node_usages(self, nodes, now: float, metrics: dict[int, dict] | None = None) -> dict[str, dict]:
        """Each of ``nodes``' cpu (fraction), mem (bytes) and uptime (s) at ``now``, summed from its
        running containers in one pass over them; ``metrics`` maps a vmid to the
        :meth:`Container.metrics` already computed at ``now`` for this request (the guest entries
        of /cluster/resources), the others are computed here."""
        metrics = metrics or {}
        running: dict[str, list[dict]] = {node: [] for node in nodes}
        for c in self.containers.values():
            if c.node in running and c.running:
                running[c.node].append(metrics.get(c.vmid) or c.metrics(now, self.nodes[c.node]["maxcpu"]))
        out = {}
        for node, ms in running.items():
            n = self.nodes[node]
            cpu = 0.03 + sum(m["cpu"] * m["cpus"] for m in ms) / n["maxcpu"]
            mem = int(2.5 * GiB + sum(m["mem"] for m in ms))
            out[node] = {"cpu": round(min(cpu, 1.0), 6), "mem": min(mem, n["maxmem"]),
                         "uptime": int(now - n["uptime_base"])}
        return out

    # tasks -----------------------------------------------------------------------------------
    def new_task(self, node: str, typ: str, ident, user: str) -> Task:
        with self.lock:
            pid = self.next_pid()
            self._pstart += 97
            start = int(time.time())
            upid = make_upid(node, pid, self._pstart, start, typ, ident, user)
            t = Task(upid=upid, node=node, pid=pid, pstart=self._pstart, starttime=start,
                     type=typ, id=str(ident), user=user)
            self.tasks.append(t)
            self.tasks_by_upid[upid] = t
            return t

    def running_tasks(self) -> list[Task]:
        return [t for t in self.tasks if t.status == "running"]
