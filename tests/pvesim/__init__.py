"""pvesim: a Proxmox VE API simulator (LXC slice) served over real HTTPS on loopback.

Test-only code. Application code must never import it.

    from tests.pvesim import PVESimulator
    with PVESimulator(containers=20, pve_version="9.1") as sim:   # or "8.4"
        requests.get(sim.url + "/version", verify=sim.ca_cert_path,
                     headers={"Authorization": sim.auth_header})

Releases (``sim.pve_version``; CLI ``python -m tests.pvesim --pve-version 9.1|8.4``): every
request is validated against that release's schema (apidoc-9.1.json.gz / apidoc.json.gz).
9.1: create without ``unprivileged`` -> unprivileged; ``entrypoint``/``env``/net ``host-managed``;
``pressure*`` fields (strings, running CTs only); status/current ``ha`` without ``group``;
/cluster/ha/rules (groups answer "ha groups have been migrated to rules"). 8.4: privileged by
default, ``ha.group``, /cluster/ha/groups, no rules endpoint (501).

Admin endpoint (no PVE auth, outside /api2, JSON in and out; also works while
``unreachable`` is set because only /api2 requests are dropped):

    GET    /_sim/faults            current faults
    POST   /_sim/faults            {"unreachable": true, "delay": 1.5, "auth_fail": true,
                                    "fail_path": {"method": "GET", "path": "^/cluster/resources",
                                                  "status": 500, "message": "boom", "times": 1},
                                    "fail_next_task": {"type": "vzstart", "vmid": 101, "message": "x"},
                                    "warn_next_task": {"type": "vzstart", "vmid": 101, "warnings": 2,
                                                       "message": "x"},
                                    "node_offline": ["pve2"],
                                    "ignore_shutdown": [101], "clear": true}
                                   (Python: sim.faults.fail_path(...), .fail_next_task(...),
                                    .warn_next_task(type, vmid, warnings=1, message=...),
                                    .set_node_offline("pve2"), .node_offline (a set))
    DELETE /_sim/faults            clear all faults (also brings offline nodes back)
    GET    /_sim/token             {"privileges": null | {path: [priv, ...]}}
    POST   /_sim/token             {"privileges": {"/": ["Sys.Audit"], "/vms/101": ["VM.Audit", "VM.PowerMgmt"]}}
                                   limits the API token like a privilege-separated token with
                                   propagating ACLs (deepest ACL path wins, pools ignored);
                                   {"privileges": null} or DELETE = full again (also /_sim/reset).
                                   Python: sim.set_token_privileges({...} | None), sim.token_privileges.
                                   Ticket logins stay root@pam (always full, like real PVE).
    GET/POST /_sim/datacenter      {"next-id": {"lower": 1000, "upper": 2000}} (datacenter.cfg range
                                   used by /cluster/nextid; Python: sim.next_id_range = {...})
    POST   /_sim/reset             seeded state again, faults, token privileges, next-id and the
                                   request log cleared
    GET    /_sim/requests          request log; DELETE clears it
    GET    /_sim/containers        container records; POST adds one (add_container kwargs, e.g.
                                   {"vmid": 300, "ha_state": "error", "net0": "name=eth0,..."});
                                   DELETE removes all; PATCH /_sim/containers/<vmid> sets attributes,
                                   e.g. {"ha_state": "error"} (started, stopped, disabled, ignored,
                                   error, fence, freeze, migrate, relocate, request_start,
                                   request_stop, recovery; null = not HA managed)
    GET    /_sim/idle?timeout=10   waits until no task runs
    GET    /_sim/state             small summary (incl. pve_version)

HA start/stop requests on a managed CT create hastart/hastop tasks; the HA stack then acts:
error -> the hastart task fails like ``ha-manager set`` does and nothing starts; fence/freeze ->
nothing happens; stopped/disabled -> request_start (9.x) -> started + a vzstart task; ignored ->
not HA managed, start/stop act directly (vzstart/vzstop).
"""

from __future__ import annotations

import re
import shutil
import ssl
import threading
import time

from .api import Api, TaskRunner
from .perms import TokenPrivileges
from .schema import SUPPORTED_VERSIONS, load_schema
from .server import Auth, SimHTTPServer, make_self_signed_cert
from .state import Cluster, Container, PVEError

__all__ = ["PVESimulator", "Faults", "Container", "PVEError"]


class Faults:
    """Fault injection switches. Also reachable through ``POST /_sim/faults``."""

    def __init__(self):
        self._lock = threading.Lock()
        self.clear()

    def clear(self):
        with self._lock:
            self.unreachable = False  # drop every /api2 connection without answering
            self.delay = 0.0  # seconds added before every /api2 response
            self.auth_fail = False  # 401 for every /api2 request
            self.path_faults: list[dict] = []
            self.task_faults: list[dict] = []
            self.ignore_shutdown_vmids: set[int] = set()
            self.warn_faults: list[dict] = []
            self.node_offline: set[str] = set()  # nodes that are down (status offline, calls 595)
            self.offline_since: dict[str, float] = {}  # when each went down (its RRD data stop there)

    # -- helpers used by tests ----------------------------------------------------------------
    def fail_path(self, method: str | None, path_regex: str, status: int = 500,
                  message: str = "simulated failure", times: int | None = None) -> dict:
        """Answer requests whose API path (without /api2/json) matches ``path_regex``
        (re.search) with ``status`` and ``message`` as reason phrase. ``method`` None = any.
        ``times`` limits how often it fires (None = until cleared)."""
        f = {"method": method.upper() if method else None, "path": path_regex,
             "rx": re.compile(path_regex), "status": int(status), "message": message, "times": times}
        with self._lock:
            self.path_faults.append(f)
        return f

    def fail_next_task(self, type: str | None = None, vmid: int | None = None,
                       message: str = "simulated task failure") -> dict:
        """The next task matching ``type`` and/or ``vmid`` ends with ``TASK ERROR: <message>``
        without changing any state."""
        f = {"type": type, "vmid": None if vmid is None else str(vmid), "message": message}
        with self._lock:
            self.task_faults.append(f)
        return f

    def warn_next_task(self, type: str | None = None, vmid: int | None = None, warnings: int = 1,
                       message: str = "simulated warning") -> dict:
        """The next task matching ``type`` and/or ``vmid`` does its work, logs ``warnings``
        ``WARN: <message>`` lines and ends with ``TASK WARNINGS: <n>`` (exitstatus ``WARNINGS: <n>``)."""
        f = {"type": type, "vmid": None if vmid is None else str(vmid), "warnings": max(1, int(warnings)),
             "message": message}
        with self._lock:
            self.warn_faults.append(f)
        return f

    def set_node_offline(self, node: str, offline: bool = True):
        with self._lock:
            (self.node_offline.add if offline else self.node_offline.discard)(node)
            self._note_offline()

    def _note_offline(self) -> None:
        """Keep when each offline node went down (the lock held); a node back online forgets it."""
        now = time.time()
        self.offline_since = {node: self.offline_since.get(node, now) for node in self.node_offline}

    def down_since(self, node: str) -> float | None:
        """When ``node`` went offline (epoch seconds), None while it is online."""
        with self._lock:
            return self.offline_since.get(node) if node in self.node_offline else None

    def ignore_shutdown(self, vmid: int, ignore: bool = True):
        with self._lock:
            (self.ignore_shutdown_vmids.add if ignore else self.ignore_shutdown_vmids.discard)(int(vmid))

    # -- internal -----------------------------------------------------------------------------
    def _match_path(self, method: str, path: str):
        with self._lock:
            for f in self.path_faults:
                if (f["method"] in (None, method)) and f["rx"].search(path):
                    if f["times"] is not None:
                        f["times"] -= 1
                        if f["times"] <= 0:
                            self.path_faults.remove(f)
                    return f
        return None

    def _take_task_fault(self, typ: str, vmid: str):
        with self._lock:
            for f in self.task_faults:
                if f["type"] in (None, typ) and f["vmid"] in (None, vmid):
                    self.task_faults.remove(f)
                    return f["message"]
        return None

    def _take_warn_fault(self, typ: str, vmid: str):
        with self._lock:
            for f in self.warn_faults:
                if f["type"] in (None, typ) and f["vmid"] in (None, vmid):
                    self.warn_faults.remove(f)
                    return f
        return None

    def apply(self, d: dict):
        """Apply a JSON payload (admin endpoint)."""
        if d.get("clear"):
            self.clear()
        for k in ("unreachable", "auth_fail"):
            if k in d:
                setattr(self, k, bool(d[k]))
        if "delay" in d:
            self.delay = float(d["delay"] or 0)
        fps = d.get("fail_path")
        for fp in ([fps] if isinstance(fps, dict) else fps or []):
            self.fail_path(fp.get("method"), fp["path"], fp.get("status", 500),
                           fp.get("message", "simulated failure"), fp.get("times"))
        fts = d.get("fail_next_task")
        for ft in ([fts] if isinstance(fts, dict) else fts or []):
            self.fail_next_task(ft.get("type"), ft.get("vmid"), ft.get("message", "simulated task failure"))
        wts = d.get("warn_next_task")
        for wt in ([wts] if isinstance(wts, dict) else wts or []):
            self.warn_next_task(wt.get("type"), wt.get("vmid"), wt.get("warnings", 1),
                                wt.get("message", "simulated warning"))
        if "node_offline" in d:
            nodes = d["node_offline"]
            nodes = [nodes] if isinstance(nodes, str) else list(nodes or [])
            with self._lock:
                self.node_offline = set(nodes)
                self._note_offline()
        ign = d.get("ignore_shutdown")
        for v in ([ign] if isinstance(ign, int) else ign or []):
            self.ignore_shutdown(v)

    def to_dict(self) -> dict:
        with self._lock:
            return {"unreachable": self.unreachable, "delay": self.delay, "auth_fail": self.auth_fail,
                    "fail_path": [{k: v for k, v in f.items() if k != "rx"} for f in self.path_faults],
                    "fail_next_task": list(self.task_faults),
                    "ignore_shutdown": sorted(self.ignore_shutdown_vmids),
                    "warn_next_task": list(self.warn_faults),
                    "node_offline": sorted(self.node_offline)}


class PVESimulator:
    def __init__(self, nodes: int = 3, containers: int = 20, token: str | None = "root@pam!proxboard=SECRET",
                 password: str | None = "pvepass", task_delay: float = 0.3, seed: int = 1,
                 time_scale: float = 1.0, host: str = "127.0.0.1", port: int = 0,
                 auth_failure_delay: float = 0.0, ticket_lifetime: int = 7200, pve_version: str = "9.1",
                 cluster_name: str = "simcluster", node_prefix: str = "pve"):
        pve_version = str(pve_version)
        if pve_version not in SUPPORTED_VERSIONS:
            raise ValueError(f"pve_version must be one of {', '.join(SUPPORTED_VERSIONS)}")
        self.pve_version = pve_version
        self.schema = load_schema(pve_version)
        self.privileges = TokenPrivileges(pve_version)  # of the API token; full by default
        self.next_id_range: dict = {}  # datacenter.cfg next-id: {"lower": int, "upper": int}
        self.host = host
        self._port = port
        self.task_delay = task_delay
        self.time_scale = time_scale
        self.auth_failure_delay = auth_failure_delay
        self.ticket_lifetime = ticket_lifetime
        self.cluster_name = cluster_name  # corosync's cluster name (/cluster/status); none with one node
        self.cluster = Cluster(nodes=nodes, containers=containers, seed=seed, version=pve_version,
                               node_prefix=node_prefix)
        self.faults = Faults()
        self.requests: list[dict] = []
        self._req_lock = threading.Lock()
        self.epoch = 0  # bumped by reset(); see _record
        self.tokens: dict[str, str] = {}
        self.users: dict[str, str] = {}
        self.token_user = self.token_name = self.token_value = None
        if token:
            m = re.match(r"^([^!]+)!([^=]+)=(.+)$", token)
            if not m:
                raise ValueError("token must look like USER@REALM!TOKENID=SECRET")
            self.token_user, self.token_name, self.token_value = m.groups()
            self.tokens[f"{self.token_user}!{self.token_name}"] = self.token_value
        if password is not None:
            self.users[self.token_user or "root@pam"] = password
        self.password = password
        self._initial = {"task_delay": task_delay, "time_scale": time_scale,
                         "auth_failure_delay": auth_failure_delay, "ticket_lifetime": ticket_lifetime,
                         "tokens": dict(self.tokens), "users": dict(self.users)}
        self.auth = Auth(self)
        self.api = Api(self)
        self.tasks = TaskRunner(self)
        self._server: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None
        self.ca_cert_path: str | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "PVESimulator":
        self._tmpdir, self.ca_cert_path, key_path = make_self_signed_cert(self.host)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.ca_cert_path, key_path)
        self._server = SimHTTPServer((self.host, self._port), self, ctx)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="pvesim-http", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.tasks.shutdown()
        self.tasks.wait_idle(5)
        if self._server is not None:
            self._server.shutdown()
            self._server.close_all_connections()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self):
        return self.start() if self._server is None else self

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._port

    @property
    def url(self) -> str:
        """Base API URL, e.g. https://127.0.0.1:40123/api2/json"""
        return f"https://{self.host}:{self.port}/api2/json"

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def token_id(self) -> str | None:
        return f"{self.token_user}!{self.token_name}" if self.token_user else None

    @property
    def auth_header(self) -> str:
        """Value for the Authorization header using the configured API token."""
        return f"PVEAPIToken={self.token_user}!{self.token_name}={self.token_value}"

    # -- state --------------------------------------------------------------------------------
    @property
    def containers(self) -> dict[int, Container]:
        return self.cluster.containers

    @property
    def nodes(self) -> list[str]:
        return list(self.cluster.nodes)

    def add_container(self, **kw) -> Container:
        return self.cluster.add_container(**kw)

    def remove_all_containers(self):
        with self.cluster.lock:
            self.cluster.containers.clear()

    def reset(self):
        """Restore the initial (seeded) cluster and constructor settings (task_delay,
        time_scale, ticket_lifetime, tokens, users), clear faults and the request log."""
        self.faults.clear()
        for t in self.cluster.running_tasks():
            t.cancelled = True  # cut long sleeps (ignored shutdowns) short
        self.tasks.wait_idle(5)
        for k, v in self._initial.items():
            setattr(self, k, dict(v) if isinstance(v, dict) else v)
        self.cluster.reset()
        self.faults.clear()
        self.privileges.set(None)
        self.next_id_range = {}
        with self._req_lock:
            # A slow call of the previous test still in flight (its page gave up at the deadline) lands
            # after this reset: it must not count among the next test's requests.
            self.epoch += 1
        self.clear_requests()

    # -- token privileges ---------------------------------------------------------------------
    def set_token_privileges(self, privileges: dict | None):
        """Limit the API token to ``{acl_path: [privilege, ...]}`` (like a privilege-separated
        token with ACLs that propagate; the deepest ACL path decides), or ``None`` for full
        privileges again. Ticket logins stay root@pam (full rights, like real PVE)."""
        self.privileges.set(privileges)

    @property
    def token_privileges(self) -> dict | None:
        return self.privileges.to_dict()

    def node_online(self, node: str) -> bool:
        n = self.cluster.nodes.get(node)
        return bool(n) and n["status"] == "online" and node not in self.faults.node_offline

    def set_node_status(self, node: str, status: str):
        self.cluster.nodes[node]["status"] = status

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no task is running. Returns False on timeout."""
        return self.tasks.wait_idle(timeout)

    def task(self, upid: str):
        return self.cluster.tasks_by_upid.get(upid)

    @property
    def task_list(self):
        return list(self.cluster.tasks)

    # -- request log --------------------------------------------------------------------------
    def _record(self, rec: dict, epoch: int | None = None):
        with self._req_lock:
            if epoch is None or epoch == self.epoch:
                self.requests.append(rec)

    def clear_requests(self):
        with self._req_lock:
            self.requests.clear()

    def count_requests(self, method: str | None = None, path_prefix: str = "") -> int:
        """Count recorded /api2 requests; path_prefix is matched against the API path
        (``/cluster/resources``); a leading ``/api2/json`` is ignored."""
        if path_prefix.startswith("/api2/json"):
            path_prefix = path_prefix[len("/api2/json"):]
        with self._req_lock:
            return sum(1 for r in self.requests
                       if (method is None or r["method"] == method.upper()) and r["path"].startswith(path_prefix))
