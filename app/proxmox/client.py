"""ProxmoxClient: the only code in Proxboard that talks to Proxmox VE.

Built on proxmoxer's https backend. proxmoxer does the HTTP (a keep-alive
``requests`` session), API-token and ticket auth; this module adds what it lacks:
lazy connection, error mapping, one log line per failure, booleans sent as 1/0,
single-flight caching and typed results.
"""
from __future__ import annotations

import contextvars
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import requests
from proxmoxer import AuthenticationError, ProxmoxAPI, ProxmoxResource, ResourceException
from requests.adapters import HTTPAdapter

from . import parse, telemetry
from . import deadline as request_deadline
from .cache import ReadCache
from .errors import (
    ProxmoxAPIError,
    ProxmoxAuthError,
    ProxmoxConfigError,
    ProxmoxError,
    ProxmoxPermissionError,
    ProxmoxSlow,
    ProxmoxUnreachable,
    TaskFailed,
    TaskTimeout,
)
from .models import (
    BackupIndex,
    BackupJob,
    BackupVolume,
    Bridge,
    ClusterSnapshot,
    ClusterVersion,
    ContainerConfig,
    ContainerInterface,
    ContainerSpec,
    ContainerSummary,
    MigratePreconditions,
    Node,
    NodeStatus,
    OsTemplate,
    RrdData,
    Snapshot,
    Storage,
    Task,
    TaskLogLine,
)
from .pending import ConfigWithPending, config_with_pending
from .settings import ProxmoxSettings
from .wire import Repeated, wire_params

logger = logging.getLogger("app.proxmox")

T = TypeVar("T")
Health = Literal["ok", "unreachable", "auth failed", "error", "not configured"]

HEALTH_TIMEOUT = 3.0
# Enough keep-alive connections for a gunicorn worker's threads plus the job runner.
POOL_SIZE = 32

_TASK_LABELS = {
    "vzstart": "Start",
    "vzstop": "Stop",
    "vzshutdown": "Shutdown",
    "vzreboot": "Reboot",
    "vzcreate": "Create",
    "vzdestroy": "Delete",
    "hastart": "Start (HA)",
    "hastop": "Stop (HA)",
    "vzsnapshot": "Snapshot",
    "vzdelsnapshot": "Snapshot deletion",
    "vzrollback": "Rollback",
    "vzdump": "Backup",
    "imgdel": "Backup deletion",
}
# How long the cluster-wide backup index is served before a background sweep reloads it.
BACKUP_INDEX_SECONDS = 300.0
BACKUP_INDEX_KEY = ("backup-index",)
SWEEP_RETRY_SECONDS = 30.0  # after a failed sweep, the next one waits this long (unless forced)
# Seconds between two RRD points per time frame (pve-cluster RRD.pm create_rrd_data): 8.x, then 9.x.
RRD_STEPS = {
    8: {"hour": 60, "day": 1800, "week": 10800, "month": 43200, "year": 604800},
    9: {"hour": 60, "day": 60, "week": 1800, "month": 1800, "year": 21600},
}
RRD_TIMEFRAMES = tuple(RRD_STEPS[9])
RRD_CFS = ("AVERAGE", "MAX")
RRD_KEEP_SECONDS = float(max(step for steps in RRD_STEPS.values() for step in steps.values()))
RRD_VERSION_SECONDS = 3600.0  # the release only changes with an upgrade


class ProxmoxClient:
    """Thread-safe access to one Proxmox VE cluster; see the package docstring for usage."""

    def __init__(self, settings: ProxmoxSettings | None, *, not_configured: str = "",
                 cache: ReadCache | None = None, backup_cache: ReadCache | None = None,
                 rrd_cache: ReadCache | None = None) -> None:
        """Create the client; nothing touches the network until the first call.

        ``cache`` defaults to an in-process cache of ``settings.cache_seconds``; pass a
        Redis-backed one to share reads between processes (see ``init_app``). ``backup_cache``
        holds the cluster-wide backup index (``backup_index``) for its own, longer interval; ``rrd_cache`` the
        RRD statistics (``rrddata``), each for its time frame's resolution, kept apart so that an action's
        ``invalidate()`` leaves history alone.
        """
        _protect_wire_logs()
        self.settings = settings
        self._not_configured = not_configured or "Proxmox is not configured (set PVE_HOST)"
        self._cache = cache if cache is not None else ReadCache(settings.cache_seconds if settings else 0)
        self._backup_cache = backup_cache if backup_cache is not None else ReadCache(BACKUP_INDEX_SECONDS)
        self._rrd_cache = rrd_cache if rrd_cache is not None else ReadCache(RRD_KEEP_SECONDS)
        self._backup_sweep = threading.Lock()
        self._backup_sweep_failed = 0.0  # monotonic time of the last failed sweep
        self._lock = threading.Lock()
        self._api: ProxmoxAPI | None = None

    def __repr__(self) -> str:
        return f"<ProxmoxClient {self.settings!r}>"

    def __enter__(self) -> ProxmoxClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connection ---------------------------------------------------------------

    def close(self) -> None:
        """Close pooled connections (Proxmox's and the shared cache's); the next call reconnects."""
        with self._lock:
            api, self._api = self._api, None
        _close(api)
        self._cache.close()
        self._backup_cache.close()
        self._rrd_cache.close()

    @property
    def cache(self) -> ReadCache:
        """The read cache (its ``get_or_load`` caches other reads under the same interval and lock)."""
        return self._cache

    def invalidate(self) -> None:
        """Drop every cached read (after a change made outside this client, for instance)."""
        self._cache.invalidate()

    def _connection(self) -> tuple[ProxmoxAPI, bool]:
        """The shared ProxmoxAPI, built on first use; True if it was built just now."""
        with self._lock:
            if self._api is not None:
                return self._api, False
            if self.settings is None:
                raise ProxmoxConfigError(self._not_configured)
            s = self.settings
            credentials: dict[str, Any]
            if s.auth_method == "token":
                credentials = {"token_name": s.token_name, "token_value": s.token_value}
            else:
                credentials = {"password": s.password}  # ProxmoxAPI logs in right here
            api = ProxmoxAPI(
                s.host,
                backend="https",
                service="PVE",
                user=s.user,
                port=s.port,
                verify_ssl=s.verify_ssl,
                timeout=s.timeout,
                **credentials,
            )
            # proxmoxer keeps its requests.Session in _store; we need it to size and close the pool.
            api._store["session"].mount("https://", HTTPAdapter(pool_maxsize=POOL_SIZE))
            self._api = api
            return api, True

    def _drop(self, api: ProxmoxAPI | None) -> None:
        """Forget a broken connection (only if nobody replaced it meanwhile)."""
        with self._lock:
            if api is None or self._api is not api:
                return
            self._api = None
        _close(api)

    # -- the one request path -----------------------------------------------------

    def _call(
        self,
        method: Literal["get", "post", "put", "delete"],
        path: str,
        *,
        op: str,
        node: str | None = None,
        vmid: int | None = None,
        params: Mapping[str, object] | None = None,
        timeout: float | None = None,
        expect: frozenset[int] = frozenset(),
    ) -> Any:
        """Send one request; map failures to ProxmoxError and log each failure once.

        ``expect`` lists HTTP statuses that are an answer rather than a failure
        (logged at debug level only).
        """
        started = time.monotonic()
        left = request_deadline.remaining()
        if left is not None:
            if left[0] <= 0.05:
                error = ProxmoxSlow(
                    f"Proxmox did not answer within {left[1]:g} s", operation=op, node=node, vmid=vmid
                )
                request_deadline.mark_missed()
                _log_error(error, started, level=logging.WARNING)
                raise error
            timeout = min(timeout or (self.settings.timeout if self.settings else left[0]), left[0])
        wire = wire_params(params or {})
        ticket_auth = self.settings is not None and self.settings.auth_method == "password"
        context = {"operation": op, "node": node, "vmid": vmid}
        api: ProxmoxAPI | None = None
        for attempt in (1, 2):
            fresh = True  # if connecting itself fails, there is no older session to blame
            try:
                api, fresh = self._connection()
                resource = api if timeout is None else _with_timeout(api, timeout)
                answer = getattr(resource(path), method)(**dict(wire))
                telemetry.record(op, started)
                return answer
            except ResourceException as exc:
                if exc.status_code == 401 and ticket_auth and attempt == 1 and not fresh:
                    # Ticket expired or revoked server-side: log in again once, then retry.
                    logger.info("Proxmox ticket rejected; logging in again (op=%s)", op)
                    self._drop(api)
                    continue
                error = _from_resource_exception(exc, self.settings, context)
                cause: BaseException = exc
            except AuthenticationError as exc:
                if ticket_auth and attempt == 1 and not fresh:
                    # proxmoxer's own renewal (old ticket as password) failed: full login once.
                    self._drop(api)
                    continue
                error = _auth_failed(self.settings, "login failed", 401, context)
                cause = exc
            except requests.RequestException as exc:
                self._drop(api)
                error = _unreachable(exc, self.settings, timeout, context)
                if left is not None and isinstance(exc, requests.exceptions.Timeout):
                    error = ProxmoxSlow(f"Proxmox did not answer within {left[1]:g} s", **context)
                    request_deadline.mark_missed()
                cause = exc
            except ProxmoxConfigError as exc:
                exc.operation, exc.node, exc.vmid = op, node, vmid
                error, cause = exc, exc
            except OSError as exc:
                # Below requests' own errors: e.g. the CA file PVE_VERIFY_SSL names vanished (requests
                # raises a bare OSError for that), or a socket error it did not wrap.
                self._drop(api)
                error = _unreachable(exc, self.settings, timeout, context)
                cause = exc
            break
        status = getattr(error, "status_code", None)
        _log_error(error, started, level=logging.DEBUG if status in expect else None)
        telemetry.record(op, started, None if status in expect else error)  # an expected status is an answer
        if error is cause:
            raise error
        raise error from cause

    def _cached(self, key: tuple[object, ...], load: Callable[[], T]) -> T:
        return self._cache.get_or_load(key, load)

    # -- reads (cached) -----------------------------------------------------------

    def cluster_snapshot(self) -> ClusterSnapshot:
        """Containers (templates included), nodes and storages from ONE /cluster/resources call."""

        def load() -> ClusterSnapshot:
            raws = self._call("get", "cluster/resources", op="cluster_snapshot")
            return parse.cluster_snapshot(raws or (), self._pinned_node)

        return self._cached(("snapshot",), load)

    def list_containers(self, include_templates: bool = False) -> tuple[ContainerSummary, ...]:
        """All LXC containers, sorted by vmid, from one GET /cluster/resources?type=vm."""

        def load() -> tuple[ContainerSummary, ...]:
            raws = self._call(
                "get", "cluster/resources", op="list_containers", params={"type": "vm"}
            )
            pinned = self._pinned_node
            cts = (
                parse.container_summary(raw)
                for raw in raws or ()
                if raw.get("type") == "lxc" and (not pinned or raw.get("node") == pinned)
            )
            return tuple(sorted(cts, key=lambda ct: ct.vmid))

        containers = self._cached(("containers",), load)
        if include_templates:
            return containers
        return tuple(ct for ct in containers if not ct.template)

    def container_status(self, node: str, vmid: int, *, fresh: bool = False) -> ContainerSummary:
        """Live status of one container, including swap and HA state; ``fresh`` asks Proxmox now (and caches
        the answer) rather than reading a cached one, as an action must be decided on the state of now."""

        def load() -> ContainerSummary:
            raw = self._call(
                "get",
                f"nodes/{node}/lxc/{vmid}/status/current",
                op="container_status",
                node=node,
                vmid=vmid,
            )
            return parse.container_summary({"vmid": vmid, **(raw or {})}, node=node)

        key = ("status", node, int(vmid))
        if fresh:
            status = load()
            self._cache.put(key, status)
            return status
        return self._cached(key, load)

    def container_config(self, node: str, vmid: int) -> ContainerConfig:
        """A container's configuration (hostname, resources, rootfs, networks, features)."""

        def load() -> ContainerConfig:
            raw = self._call(
                "get", f"nodes/{node}/lxc/{vmid}/config", op="container_config", node=node, vmid=vmid
            )
            return parse.container_config(raw or {}, node, int(vmid))

        return self._cached(("config", node, int(vmid)), load)

    def nodes(self) -> tuple[Node, ...]:
        """Cluster nodes sorted by name (only the pinned one if PVE_NODE is set)."""

        def load() -> tuple[Node, ...]:
            raws = self._call("get", "nodes", op="nodes")
            pinned = self._pinned_node
            found = (parse.node(r) for r in raws or ())
            return tuple(sorted((n for n in found if not pinned or n.name == pinned), key=lambda n: n.name))

        return self._cached(("nodes",), load)

    def node_status(self, node: str) -> NodeStatus:
        """One node's versions, load, memory, swap and root disk (GET /nodes/{node}/status, Sys.Audit).

        Raises ProxmoxAPIError with ``node_unreachable`` (595) when the node is offline.
        """

        def load() -> NodeStatus:
            raw = self._call("get", f"nodes/{node}/status", op="node_status", node=node)
            return parse.node_status(raw or {}, node)

        return self._cached(("node-status", node), load)

    def storages(self, node: str, content: str | None = None) -> tuple[Storage, ...]:
        """Storages visible on ``node``, optionally only those accepting ``content``."""

        def load() -> tuple[Storage, ...]:
            raws = self._call(
                "get", f"nodes/{node}/storage", op="storages", node=node, params={"content": content}
            )
            return tuple(sorted((parse.storage(r, node) for r in raws or ()), key=lambda s: s.storage))

        return self._cached(("storages", node, content), load)

    def os_templates(self, node: str) -> tuple[OsTemplate, ...]:
        """Container templates on every active storage of ``node`` that holds vztmpl, by name."""

        def load() -> tuple[OsTemplate, ...]:
            templates: dict[str, OsTemplate] = {}
            for store in self.storages(node, content="vztmpl"):
                if not store.active or not store.holds("vztmpl"):
                    continue
                raws = self._call(
                    "get",
                    f"nodes/{node}/storage/{store.storage}/content",
                    op="os_templates",
                    node=node,
                    params={"content": "vztmpl"},
                )
                for raw in raws or ():
                    template = parse.os_template(raw)
                    templates.setdefault(template.volid, template)
            return tuple(sorted(templates.values(), key=lambda t: (t.name, t.volid)))

        return self._cached(("templates", node), load)

    def bridges(self, node: str) -> tuple[Bridge, ...]:
        """Bridges on ``node`` that container NICs can attach to."""

        def load() -> tuple[Bridge, ...]:
            raws = self._call(
                "get", f"nodes/{node}/network", op="bridges", node=node, params={"type": "any_bridge"}
            )
            return tuple(sorted((parse.bridge(r) for r in raws or ()), key=lambda b: b.iface))

        return self._cached(("bridges", node), load)

    def rrddata(self, node: str, timeframe: str, cf: str = "AVERAGE", vmid: int | None = None) -> RrdData:
        """A container's (``vmid``) or node's RRD statistics over ``timeframe`` (hour, day, week, month, year),
        consolidated by ``cf`` (AVERAGE or MAX): GET nodes/{node}/lxc/{vmid}/rrddata or nodes/{node}/rrddata
        (VM.Audit / Sys.Audit).

        Cached per node, guest, frame and cf for the frame's resolution (``rrd_step``): a point changes no
        sooner. Raises ValueError for another frame or cf, ProxmoxError when Proxmox fails (a guest without
        an RRD file yet: ProxmoxAPIError 500).
        """
        if timeframe not in RRD_TIMEFRAMES or cf not in RRD_CFS:
            raise ValueError(f"no RRD time frame {timeframe!r} with cf {cf!r}")
        path = f"nodes/{node}/rrddata" if vmid is None else f"nodes/{node}/lxc/{vmid}/rrddata"

        def load() -> RrdData:
            raws = self._call("get", path, op="rrddata", node=node, vmid=vmid,
                              params={"timeframe": timeframe, "cf": cf})
            return parse.rrd_data(raws or (), timeframe, cf)

        key = ("rrd", node, None if vmid is None else int(vmid), timeframe, cf)
        return self._rrd_cache.get_or_load(key, load, ttl=self.rrd_step(timeframe))

    def rrd_step(self, timeframe: str) -> int:
        """Seconds between two RRD points of ``timeframe`` on the cluster's release (its version is cached
        for an hour). Raises KeyError for an unknown frame, ProxmoxError when the version cannot be read."""
        version = self._rrd_cache.get_or_load(("version",), self.version, ttl=RRD_VERSION_SECONDS)
        return RRD_STEPS[9 if version.at_least(9) else 8][timeframe]

    # -- reads (never cached) -----------------------------------------------------

    def container_interfaces(self, node: str, vmid: int) -> tuple[ContainerInterface, ...]:
        """Interfaces and addresses inside a running container (empty when stopped)."""
        raws = self._call(
            "get", f"nodes/{node}/lxc/{vmid}/interfaces", op="container_interfaces", node=node, vmid=vmid
        )
        return tuple(parse.container_interface(r) for r in raws or ())

    def find_container_node(self, vmid: int) -> str | None:
        """The node currently holding container ``vmid``, or None."""
        for ct in self.list_containers(include_templates=True):
            if ct.vmid == int(vmid):
                return ct.node
        return None

    def locate_container(self, vmid: int, *, fresh: bool = False) -> ContainerSummary | None:
        """The live status of container ``vmid`` on the node holding it now, or None when Proxmox has it nowhere;
        ``fresh`` reads the status from Proxmox now (see ``container_status``).

        The node comes from the cached listing (GET /cluster/resources), then GET
        /nodes/{node}/lxc/{vmid}/status/current. A listing cached before a migration or a destroy names a node
        that answers "Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist" (pmxcfs): the cache is
        dropped and the listing asked once more, and a guest still not found there is gone (None). Other
        failures raise as the calls do (ProxmoxError).
        """
        for last in (False, True):
            node = self.find_container_node(vmid)
            if node is None:
                return None
            try:
                return self.container_status(node, vmid, fresh=fresh)
            except ProxmoxAPIError as exc:
                if not exc.not_found:
                    raise
                if last:
                    return None
                self.invalidate()
        return None

    def permissions(self) -> dict[str, frozenset[str]]:
        """What the token (or user) may do: ACL path -> privilege names (GET /access/permissions).

        Proxmox answers ``{"/vms": {"VM.Audit": 1, ...}, ...}``; privileges whose value is 0 are
        left out. Never cached: an operator checks it after changing ACLs.
        """
        raw = self._call("get", "access/permissions", op="permissions") or {}
        if not isinstance(raw, Mapping):
            return {}
        return {
            str(path): frozenset(str(name) for name, on in (privs or {}).items() if parse.as_bool(on))
            for path, privs in raw.items()
            if isinstance(privs, Mapping)
        }

    def version(self) -> ClusterVersion:
        """The Proxmox VE version answering the API."""
        return parse.version(self._call("get", "version", op="version") or {})

    def next_vmid(self) -> int:
        """The lowest free VMID (Proxmox's suggestion; it may be taken before you use it)."""
        return parse.as_int(self._call("get", "cluster/nextid", op="next_vmid"))

    def is_vmid_free(self, vmid: int) -> bool:
        """True if no guest in the cluster uses ``vmid`` (at the time of the check)."""
        try:
            self._call(
                "get", "cluster/nextid", op="is_vmid_free", vmid=vmid, params={"vmid": vmid},
                expect=frozenset({400}),
            )
        except ProxmoxAPIError as exc:
            if exc.status_code == 400 and "already exists" in exc.errors.get("vmid", ""):
                return False
            if exc.status_code == 400:
                _log_error(exc, time.monotonic())  # was muted as "expected"; it is not
            raise
        return True

    def task_status(self, node: str, upid: str) -> Task:
        """Current state of a task (never cached)."""
        raw = self._call("get", f"nodes/{node}/tasks/{upid}/status", op="task_status", node=node)
        return parse.task(raw or {}, upid)

    def task_log(self, node: str, upid: str, start: int = 0, limit: int = 500) -> tuple[TaskLogLine, ...]:
        """Lines ``start`` .. ``start + limit`` of a task's log."""
        raws = self._call(
            "get",
            f"nodes/{node}/tasks/{upid}/log",
            op="task_log",
            node=node,
            params={"start": start, "limit": limit},
        )
        return parse.task_log(raws or ())

    def wait_task(self, upid: str, timeout: float = 120.0, poll: float = 0.5) -> Task:
        """Poll a task until it stops; return it if OK, raise TaskFailed or TaskTimeout."""
        info = parse.parse_upid(upid)
        node, vmid = info["node"], parse.as_opt_int(info["id"])
        started = time.monotonic()
        deadline = started + timeout
        while True:
            task = self.task_status(node, upid)
            if not task.running:
                self._cache.invalidate()  # the task changed what pages show
                if task.ok:
                    return task
                label = _TASK_LABELS.get(task.type, task.type)
                what = f"CT {vmid}" if vmid else task.id
                error: ProxmoxError = TaskFailed(
                    f"{label} of {what} failed: {task.exitstatus}",
                    upid=upid,
                    exitstatus=task.exitstatus or "",
                    operation=f"task {task.type}",
                    node=node,
                    vmid=vmid,
                )
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                error = TaskTimeout(
                    f"Task {info['type']} on {node} still running after {timeout:g} s",
                    upid=upid,
                    operation=f"task {info['type']}",
                    node=node,
                    vmid=vmid,
                )
                break
            time.sleep(min(poll, remaining))
        _log_error(error, started)
        raise error

    # -- health -------------------------------------------------------------------

    def health(self) -> Health:
        """``ok``, ``unreachable``, ``auth failed``, ``error`` or ``not configured``; one cheap GET /version."""
        if self.settings is None:
            return "not configured"
        try:
            self._call("get", "version", op="health", timeout=min(HEALTH_TIMEOUT, self.settings.timeout))
        except ProxmoxUnreachable:
            return "unreachable"
        except ProxmoxAuthError:
            return "auth failed"
        except ProxmoxError:
            return "error"
        return "ok"

    # -- lifecycle actions (return the UPID, invalidate the cache) -------------------

    def start(self, node: str, vmid: int) -> str:
        """Start a container (an HA-managed one via ha-manager: task ``hastart``)."""
        return self._action("start", node, vmid, "post", "status/start")

    def stop(self, node: str, vmid: int) -> str:
        """Stop a container immediately (hard kill)."""
        return self._action("stop", node, vmid, "post", "status/stop")

    def shutdown(self, node: str, vmid: int, timeout: int = 30, force_stop: bool = False) -> str:
        """Shut a container down cleanly; with ``force_stop`` kill it after ``timeout`` seconds."""
        params = {"timeout": timeout, "forceStop": force_stop}
        return self._action("shutdown", node, vmid, "post", "status/shutdown", params)

    def reboot(self, node: str, vmid: int, timeout: int | None = None) -> str:
        """Reboot a running container (shutdown, kill after ``timeout`` if given, start)."""
        return self._action("reboot", node, vmid, "post", "status/reboot", {"timeout": timeout})

    def delete(
        self,
        node: str,
        vmid: int,
        purge: bool = True,
        force: bool = False,
        destroy_unreferenced_disks: bool = True,
    ) -> str:
        """Destroy a container and its disks; ``purge`` also drops it from HA/backup jobs."""
        params = {
            "purge": purge,
            "force": force,
            "destroy-unreferenced-disks": destroy_unreferenced_disks,
        }
        return self._action("delete", node, vmid, "delete", "", params)

    def create_container(self, spec: ContainerSpec) -> str:
        """Create a container from ``spec``; returns the ``vzcreate`` task id."""
        try:
            upid = self._call(
                "post", f"nodes/{spec.node}/lxc", op="create_container", node=spec.node,
                vmid=spec.vmid, params=spec.to_params(),
            )
        finally:
            self._cache.invalidate()
        return _expect_upid(upid, "create_container", spec.node, spec.vmid)

    def _action(
        self,
        op: str,
        node: str,
        vmid: int,
        method: Literal["post", "delete"],
        suffix: str,
        params: Mapping[str, object] | None = None,
    ) -> str:
        path = f"nodes/{node}/lxc/{vmid}" + (f"/{suffix}" if suffix else "")
        try:
            upid = self._call(method, path, op=op, node=node, vmid=vmid, params=params)
        finally:
            # Even a refused action means our cached view may be stale ("already running").
            self._cache.invalidate()
        return _expect_upid(upid, op, node, vmid)

    # -- clone, migrate, convert to template ------------------------------------------

    def clone(self, node: str, vmid: int, newid: int, *, hostname: str | None = None, full: bool | None = None,
              storage: str | None = None, target: str | None = None, snapname: str | None = None) -> str:
        """Clone CT ``vmid`` as ``newid`` (task ``vzclone``; POST nodes/{node}/lxc/{vmid}/clone).

        ``full`` copies every volume (to ``storage`` when given); a linked clone (``full=False``) is only possible
        from a template. ``target`` moves the new guest to another node (its volumes must be on shared storage);
        a full clone of a running container needs ``snapname``.
        """
        params = {"newid": newid, "hostname": hostname or None, "full": full, "storage": storage,
                  "target": target if target and target != node else None, "snapname": snapname or None}
        return self._action("clone", node, vmid, "post", "clone", params)

    def migrate(self, node: str, vmid: int, target: str, *, restart: bool = False, timeout: int | None = None) -> str:
        """Move CT ``vmid`` to node ``target`` (task ``vzmigrate``, ``hamigrate`` for an HA-managed guest; POST
        nodes/{node}/lxc/{vmid}/migrate). A running container needs ``restart`` (shut down, moved, started
        again, its shutdown bounded by ``timeout`` seconds); LXC has no live migration."""
        params = {"target": target, "restart": restart or None, "timeout": timeout if restart else None}
        return self._action("migrate", node, vmid, "post", "migrate", params)

    def migrate_preconditions(self, node: str, vmid: int) -> MigratePreconditions:
        """What stands in the way of migrating CT ``vmid`` (GET nodes/{node}/lxc/{vmid}/migrate, PVE 9.0 and
        later only: ask ``version().at_least(9)`` first). Not cached."""
        raw = self._call("get", f"nodes/{node}/lxc/{vmid}/migrate", op="migrate_preconditions", node=node, vmid=vmid)
        return parse.migrate_preconditions(raw if isinstance(raw, Mapping) else {})

    def convert_to_template(self, node: str, vmid: int) -> str:
        """Turn stopped CT ``vmid`` into a template (task ``vztemplate``; POST nodes/{node}/lxc/{vmid}/template).

        Proxmox (8.4 and 9.x alike) starts the task but answers ``null``: its UPID is read from the node's task
        list (GET nodes/{node}/tasks?vmid=…&typefilter=vztemplate). Raises ProxmoxAPIError when none is listed.
        """
        try:
            self._call("post", f"nodes/{node}/lxc/{vmid}/template", op="convert_to_template", node=node, vmid=vmid)
        finally:
            self._cache.invalidate()
        tasks = self._call("get", f"nodes/{node}/tasks", op="convert_to_template", node=node, vmid=vmid,
                           params={"vmid": vmid, "typefilter": "vztemplate", "source": "all", "limit": 1})
        upid = next((t.get("upid") for t in tasks or () if isinstance(t, Mapping)), None)
        return _expect_upid(upid, "convert_to_template", node, vmid)

    # -- bulk actions and tags ------------------------------------------------------

    def supports_bulk_action(self) -> bool:
        """Whether ``/cluster/bulk-action/guest/*`` exists: PVE 9.1 and later (by GET /version)."""
        numbers = [int(part) if part.isdigit() else 0 for part in self.version().release.split(".")[:2]]
        return tuple(numbers + [0] * (2 - len(numbers))) >= (9, 1)

    def bulk_start(self, vmids: Sequence[int], max_workers: int = 4) -> str:
        """Start the guests ``vmids``, ``max_workers`` at a time, as ONE task (``bulk-start``; POST
        cluster/bulk-action/guest/start, PVE 9.1+). Its log says ``Starting CT N`` or ``Skipping CT N, already
        running.`` per guest and ``Starting CT N failed: …``; it fails with ``Some guests failed to start: …``."""
        try:
            upid = self._call("post", "cluster/bulk-action/guest/start", op="bulk_start",
                              params={"vms": Repeated(vmids), "maxworkers": max_workers})
        finally:
            self._cache.invalidate()
        return _expect_upid(upid, "bulk_start", "", 0)

    def bulk_shutdown(self, vmids: Sequence[int], timeout: int = 180, force_stop: bool = True,
                      max_workers: int = 4) -> str:
        """Shut the guests ``vmids`` down as ONE task (``bulk-shutdown``; POST cluster/bulk-action/guest/shutdown,
        PVE 9.1+); ``timeout`` applies to a guest with no shutdown timeout of its own, ``force_stop`` kills it then.
        Its log says ``Shutting down CT N (Timeout = T seconds)`` or ``Skipping CT N, not running.`` per guest
        and ``Stopping CT N failed: …``."""
        try:
            upid = self._call("post", "cluster/bulk-action/guest/shutdown", op="bulk_shutdown",
                              params={"vms": Repeated(vmids), "timeout": timeout, "force-stop": force_stop,
                                      "maxworkers": max_workers})
        finally:
            self._cache.invalidate()
        return _expect_upid(upid, "bulk_shutdown", "", 0)

    def set_tags(self, node: str, vmid: int, tags: Sequence[str]) -> None:
        """Replace CT ``vmid``'s tags (PUT nodes/{node}/lxc/{vmid}/config ``tags``, no task); none deletes them."""
        params = {"tags": list(tags)} if tags else {"delete": "tags"}
        try:
            self._call("put", f"nodes/{node}/lxc/{vmid}/config", op="set_tags", node=node, vmid=vmid, params=params)
        finally:
            self._cache.invalidate()

    # -- configuration edits (the Config tab) ------------------------------------------

    def pending(self, node: str, vmid: int) -> ConfigWithPending:
        """Every option with its current value and the change Proxmox holds until the next start, and the
        config's digest (GET nodes/{node}/lxc/{vmid}/pending). Not cached: an edit starts from what is there now."""
        raws = self._call("get", f"nodes/{node}/lxc/{vmid}/pending", op="pending", node=node, vmid=vmid)
        return config_with_pending(raws or ())

    def update_config(self, node: str, vmid: int, changes: Mapping[str, object], delete: Sequence[str] = (),
                      digest: str | None = None) -> None:
        """Set options and ``delete`` others (PUT nodes/{node}/lxc/{vmid}/config; synchronous, no task).

        With ``digest`` Proxmox refuses when the config changed since it was read. On a running container
        some changes stay pending until the next start (read them with ``pending``).
        """
        params = {**changes, "delete": ",".join(delete) or None, "digest": digest}
        try:
            self._call("put", f"nodes/{node}/lxc/{vmid}/config", op="update_config", node=node, vmid=vmid,
                       params=params)
        finally:
            self._cache.invalidate()

    # -- snapshots ------------------------------------------------------------------

    def snapshots(self, node: str, vmid: int) -> tuple[Snapshot, ...]:
        """The container's snapshots, oldest first (a parent before its children), then ``current``.

        GET nodes/{node}/lxc/{vmid}/snapshot.
        """

        def load() -> tuple[Snapshot, ...]:
            raws = self._call("get", f"nodes/{node}/lxc/{vmid}/snapshot", op="snapshots", node=node, vmid=vmid)
            found = [parse.snapshot(raw) for raw in raws or () if isinstance(raw, Mapping)]
            parents = {snap.name: snap.parent for snap in found}

            def depth(name: str) -> int:  # snapshots taken within one second share a snaptime
                seen: set[str] = set()
                while (name := parents.get(name)) and name not in seen:
                    seen.add(name)
                return len(seen)

            found.sort(key=lambda snap: (snap.current, snap.snaptime or 0, depth(snap.name), snap.name))
            return tuple(found)

        return self._cached(("snapshots", node, int(vmid)), load)

    def can_snapshot(self, node: str, vmid: int) -> bool:
        """Whether every volume of the container supports snapshots (GET …/lxc/{vmid}/feature?feature=snapshot)."""

        def load() -> bool:
            raw = self._call("get", f"nodes/{node}/lxc/{vmid}/feature", op="can_snapshot", node=node, vmid=vmid,
                             params={"feature": "snapshot"})
            return parse.as_bool((raw or {}).get("hasFeature"))

        return self._cached(("feature", "snapshot", node, int(vmid)), load)

    def create_snapshot(self, node: str, vmid: int, name: str, description: str | None = None) -> str:
        """Take a snapshot (task ``vzsnapshot``; POST nodes/{node}/lxc/{vmid}/snapshot); returns the UPID."""
        return self._action("create_snapshot", node, vmid, "post", "snapshot",
                            {"snapname": name, "description": description or None})

    def delete_snapshot(self, node: str, vmid: int, name: str, force: bool = False) -> str:
        """Delete a snapshot (task ``vzdelsnapshot``; DELETE …/snapshot/{snapname}); returns the UPID."""
        return self._action("delete_snapshot", node, vmid, "delete", f"snapshot/{quote(name, safe='')}",
                            {"force": force or None})

    def rollback_snapshot(self, node: str, vmid: int, name: str, start: bool = False) -> str:
        """Roll back to a snapshot (task ``vzrollback``; POST …/snapshot/{snapname}/rollback).

        Proxmox stops a running container first; ``start`` starts it once rolled back.
        """
        return self._action("rollback_snapshot", node, vmid, "post", f"snapshot/{quote(name, safe='')}/rollback",
                            {"start": start or None})

    # -- disks ----------------------------------------------------------------------

    def resize_disk(self, node: str, vmid: int, disk: str, size: str) -> str:
        """Grow the root disk or a volume mount point (task ``resize``; PUT nodes/{node}/lxc/{vmid}/resize).

        ``disk`` is ``rootfs`` or ``mpN``; ``size`` an absolute size (``12G``) or an increase (``+2G``). Proxmox
        refuses a shrink (``unable to shrink disk size``) or no change before starting the task; returns the UPID.
        """
        try:
            upid = self._call("put", f"nodes/{node}/lxc/{vmid}/resize", op="resize_disk", node=node, vmid=vmid,
                              params={"disk": disk, "size": size})
        finally:
            self._cache.invalidate()
        return _expect_upid(upid, "resize_disk", node, vmid)

    def add_mount_point(self, node: str, vmid: int, key: str, value: str, digest: str | None = None) -> None:
        """Add mount point ``key`` (``mpN``) as ``value`` (``local-lvm:8,mp=/data``: a new 8 GiB volume), no task.

        PUT nodes/{node}/lxc/{vmid}/config: Proxmox allocates the volume at once and hot-plugs it into a
        running container; ``digest`` refuses the change if the config changed since it was read.
        """
        try:
            self._call("put", f"nodes/{node}/lxc/{vmid}/config", op="add_mount_point", node=node, vmid=vmid,
                       params={key: value, "digest": digest})
        finally:
            self._cache.invalidate()

    # -- backups --------------------------------------------------------------------

    def backups(self, node: str, storage: str, vmid: int | None = None) -> tuple[BackupVolume, ...]:
        """Backup volumes on ``storage`` as seen from ``node``, newest first; only CT ``vmid``'s when given.

        GET nodes/{node}/storage/{storage}/content?content=backup[&vmid=…]. Not cached: the Backups
        tab shows what is there now.
        """
        raws = self._call("get", f"nodes/{node}/storage/{storage}/content", op="backups", node=node, vmid=vmid,
                          params={"content": "backup", "vmid": vmid})
        found = (parse.backup_volume(raw, node) for raw in raws or () if isinstance(raw, Mapping))
        return tuple(sorted((b for b in found if vmid is None or b.vmid == vmid),
                            key=lambda b: (b.ctime or 0, b.volid), reverse=True))

    def backup_now(self, node: str, vmid: int, storage: str, mode: str = "snapshot", compress: str | None = "zstd",
                   notes_template: str | None = None, protected: bool = False) -> str:
        """Back up one container (task ``vzdump``; POST nodes/{node}/vzdump); returns the UPID.

        ``mode`` is snapshot, suspend or stop; ``compress`` 0, gzip, lzo or zstd (ignored by PBS).
        Proxmox answers ``OK`` without a task when the guest is not on ``node``: that raises ProxmoxAPIError.
        """
        params = {"vmid": str(vmid), "storage": storage, "mode": mode, "compress": compress,
                  "notes-template": notes_template or None, "protected": protected or None}
        try:
            answer = self._call("post", f"nodes/{node}/vzdump", op="backup_now", node=node, vmid=vmid, params=params)
        finally:
            self._cache.invalidate()
        if answer == "OK":
            raise ProxmoxAPIError(f"CT {vmid} is not on node {node}: Proxmox started no backup", status_code=200,
                                  operation="backup_now", node=node, vmid=vmid)
        return _expect_upid(answer, "backup_now", node, vmid)

    def update_backup(self, node: str, volid: str, *, notes: str | None = None, protected: bool | None = None) -> None:
        """Change a backup's notes or protection (PUT nodes/{node}/storage/{storage}/content/{volume})."""
        storage = volid.partition(":")[0]
        params = {"notes": notes, "protected": protected}
        self._call("put", f"nodes/{node}/storage/{storage}/content/{quote(volid, safe='')}", op="update_backup",
                   node=node, params={k: v for k, v in params.items() if v is not None})

    def delete_backup(self, node: str, volid: str) -> str:
        """Remove a backup volume (task ``imgdel``; DELETE nodes/{node}/storage/{storage}/content/{volume}).

        A protected volume fails inside the task (``cannot remove protected volume …``).
        """
        storage = volid.partition(":")[0]
        answer = self._call("delete", f"nodes/{node}/storage/{storage}/content/{quote(volid, safe='')}",
                            op="delete_backup", node=node)
        return _expect_upid(answer, "delete_backup", node, 0)

    def restore(self, node: str, vmid: int, archive: str, *, storage: str | None = None, force: bool = False,
                unique: bool = False, start: bool = False) -> str:
        """Restore a backup as CT ``vmid`` (task ``vzcreate``; POST nodes/{node}/lxc with ``restore=1``).

        ``force`` overwrites an existing, stopped container; ``storage`` places the root disk (default: where
        the backup's config says); ``unique`` gives new MAC addresses.
        """
        params = {"vmid": vmid, "ostemplate": archive, "restore": True, "force": force or None,
                  "storage": storage, "unique": unique or None, "start": start or None}
        try:
            answer = self._call("post", f"nodes/{node}/lxc", op="restore", node=node, vmid=vmid, params=params)
        finally:
            self._cache.invalidate()
        return _expect_upid(answer, "restore", node, vmid)

    def backup_jobs(self) -> tuple[BackupJob, ...]:
        """Scheduled backup jobs (GET /cluster/backup), by id."""

        def load() -> tuple[BackupJob, ...]:
            raws = self._call("get", "cluster/backup", op="backup_jobs")
            return tuple(sorted((parse.backup_job(r) for r in raws or () if isinstance(r, Mapping)),
                                key=lambda job: job.id))

        return self._cached(("backup-jobs",), load)

    def not_backed_up(self) -> tuple[int, ...]:
        """VMIDs of the containers no backup job selects (GET /cluster/backup-info/not-backed-up), sorted.

        Proxmox counts a disabled job as covering its guests.
        """

        def load() -> tuple[int, ...]:
            raws = self._call("get", "cluster/backup-info/not-backed-up", op="not_backed_up")
            return tuple(sorted(parse.as_int(r.get("vmid")) for r in raws or ()
                                if isinstance(r, Mapping) and r.get("type") == "lxc"))

        return self._cached(("not-backed-up",), load)

    def backup_index(self, *, wait: bool = False) -> BackupIndex | None:
        """The newest backup of every guest, from a sweep of every backup storage of the cluster.

        Served from its own cache (``backup_cache``); once older than that cache's interval, a
        background thread sweeps again while the old index is still served. With no index yet,
        returns None at once unless ``wait`` (then waits for the sweep, raising ProxmoxError if it
        fails). One sweep per interval however many readers: dogpile elects the loader, across
        processes when the cache lives in Redis.
        """
        index = self._backup_cache.peek(BACKUP_INDEX_KEY)
        stale = index is None or time.time() - index.loaded_at >= self._backup_cache.ttl
        if index is None and wait:
            return self._backup_cache.get_or_load(BACKUP_INDEX_KEY, lambda: self._sweep_backups(None))
        if stale:
            self._sweep_in_background(index)
        return index

    def refresh_backup_index(self) -> None:
        """Sweep again now, in the background (after Proxboard made or removed a backup)."""
        self._sweep_in_background(self._backup_cache.peek(BACKUP_INDEX_KEY), force=True)

    def _sweep_in_background(self, previous: BackupIndex | None, force: bool = False) -> None:
        if not force and time.monotonic() - self._backup_sweep_failed < SWEEP_RETRY_SECONDS:
            return  # Proxmox failed the last sweep a moment ago: every page render need not try again
        if not self._backup_sweep.acquire(blocking=False):
            return  # this process is sweeping already

        def run() -> None:
            try:
                if force:
                    self._backup_cache.put(BACKUP_INDEX_KEY, self._sweep_backups(previous))
                else:
                    self._backup_cache.get_or_load(BACKUP_INDEX_KEY, lambda: self._sweep_backups(previous))
            except ProxmoxError as exc:
                self._backup_sweep_failed = time.monotonic()
                logger.warning("backup index not refreshed: %s", exc.message)
            except Exception:  # noqa: BLE001 - a background thread has nobody else to tell
                self._backup_sweep_failed = time.monotonic()
                logger.exception("backup index not refreshed")
            finally:
                self._backup_sweep.release()

        # A fresh context: no request deadline applies to the sweep, only each call's own timeout.
        threading.Thread(target=contextvars.Context().run, args=(run,), name="proxboard-backup-index",
                         daemon=True).start()

    def _sweep_backups(self, previous: BackupIndex | None) -> BackupIndex:
        """Read every active backup storage once (a shared one on one node only), in parallel."""
        storages: dict[str, tuple[str, str]] = {}
        for store in self.cluster_snapshot().storages:
            if not store.active or not store.holds("backup") or not store.node:
                continue
            key = store.storage if store.shared else f"{store.storage}@{store.node}"
            storages.setdefault(key, (store.node, store.storage))
        failed: list[str] = []
        entries: dict[str, tuple[tuple[int, int], ...]] = {}

        def read(key: str) -> tuple[tuple[int, int], ...]:
            node, storage = storages[key]
            return tuple((b.vmid, b.ctime or 0) for b in self.backups(node, storage) if b.vmid is not None)

        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="proxboard-backup-sweep") as pool:
            futures = {key: pool.submit(read, key) for key in storages}
            for key, future in futures.items():
                try:
                    entries[key] = future.result()
                except ProxmoxError as exc:
                    failed.append(key)
                    logger.warning("backups on %s not read: %s", key, exc.message)
                    if previous is not None and key in previous.entries:
                        entries[key] = previous.entries[key]
        return BackupIndex.build(entries, time.time(), tuple(failed))

    @property
    def _pinned_node(self) -> str | None:
        return self.settings.node if self.settings else None


# -- helpers ----------------------------------------------------------------------


class _TimeoutSession:
    """Wraps proxmoxer's session to give one request its own timeout."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        self._session = session
        self._timeout = timeout

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs["timeout"] = self._timeout
        return self._session.request(method, url, **kwargs)


def _with_timeout(api: ProxmoxAPI, timeout: float) -> ProxmoxResource:
    store = api._store
    return ProxmoxResource(
        base_url=store["base_url"],
        session=_TimeoutSession(store["session"], timeout),
        serializer=store["serializer"],
    )


def _close(api: ProxmoxAPI | None) -> None:
    if api is not None:
        api._store["session"].close()


def _expect_upid(value: object, op: str, node: str, vmid: int) -> str:
    if isinstance(value, str) and value.startswith("UPID:"):
        return value
    error = ProxmoxAPIError(
        f"Proxmox did not return a task id for {op}",
        status_code=200,
        pve_message=f"unexpected answer {value!r:.80}",
        operation=op,
        node=node,
        vmid=vmid,
    )
    _log_error(error, time.monotonic())
    raise error


def _clean_errors(errors: object) -> dict[str, str]:
    # proxmoxer turns an empty/non-JSON error body into {"errors": b""}; that is no information.
    if not isinstance(errors, Mapping):
        return {}
    return {
        str(k): str(v).strip()
        for k, v in errors.items()
        if not isinstance(v, (bytes, bytearray)) and v not in (None, "")
    }


def _from_resource_exception(
    exc: ResourceException, settings: ProxmoxSettings | None, context: dict[str, Any]
) -> ProxmoxError:
    status = int(exc.status_code)
    pve_message = str(exc.content or exc.status_message or "").strip()
    if status == 403:
        return _permission_denied(pve_message, settings, context)
    if status == 401:
        return _auth_failed(settings, pve_message, status, context)
    errors = _clean_errors(exc.errors)
    message = pve_message or f"HTTP {status}"
    if errors:
        message += " (" + "; ".join(f"{k}: {v}" for k, v in errors.items()) + ")"
    return ProxmoxAPIError(
        message, status_code=status, pve_message=pve_message, errors=errors, **context
    )


_PERMISSION_RE = re.compile(r"Permission check failed \((/[^,]*),\s*([^)]+)\)")


def _permission_denied(
    pve_message: str, settings: ProxmoxSettings | None, context: dict[str, Any]
) -> ProxmoxPermissionError:
    match = _PERMISSION_RE.search(pve_message)
    who = "API token" if settings is not None and settings.auth_method == "token" else "user"
    if match:
        path, privilege = match.group(1), match.group(2).strip()
        message = f"The Proxmox {who} lacks {privilege} on {path}."
    else:
        path = privilege = None
        message = f"Proxmox refused permission: {pve_message or 'HTTP 403'}"
    return ProxmoxPermissionError(message, path=path, privilege=privilege, pve_message=pve_message, **context)


def _auth_failed(
    settings: ProxmoxSettings | None, reason: str, status: int, context: dict[str, Any]
) -> ProxmoxAuthError:
    who = settings.describe() if settings else "Proxmox"
    if status == 403:
        message = f"Proxmox denied permission: {reason}"
    else:
        message = f"Proxmox rejected the credentials ({who}): {reason}"
    return ProxmoxAuthError(message, status_code=status, **context)


def _unreachable(
    exc: OSError,
    settings: ProxmoxSettings | None,
    timeout: float | None,
    context: dict[str, Any],
) -> ProxmoxUnreachable:
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        reason = "TLS handshake failed (certificate not trusted? check PVE_VERIFY_SSL)"
    elif "CA certificate bundle" in text:
        reason = "the CA certificate file PVE_VERIFY_SSL names cannot be read"
    elif isinstance(exc, requests.exceptions.Timeout):
        seconds = timeout or (settings.timeout if settings else 0)
        reason = f"no answer within {seconds:g} s"
    elif re.search(r"NameResolution|Name or service not known|name resolution|nodename nor servname", text):
        reason = "DNS lookup failed"
    elif "refused" in text.lower():
        reason = "connection refused"
    else:
        reason = f"connection failed ({type(exc).__name__})"
    where = settings.address if settings else "Proxmox"
    return ProxmoxUnreachable(f"Cannot reach Proxmox at {where}: {reason}", **context)


def _log_error(error: ProxmoxError, started: float, level: int | None = None) -> None:
    """The single log line for a failure: operation, node, vmid, status, message, elapsed."""
    status = getattr(error, "status_code", None)
    pve_message = getattr(error, "pve_message", None) or error.message
    elapsed_ms = int((time.monotonic() - started) * 1000)
    if level is None:
        level = logging.WARNING if isinstance(error, (ProxmoxAPIError, TaskFailed)) else logging.ERROR
    logger.log(
        level,
        "Proxmox call failed (%s): op=%s node=%s vmid=%s status=%s message=%r elapsed_ms=%d",
        type(error).__name__,
        error.operation,
        error.node or "-",
        error.vmid if error.vmid is not None else "-",
        status if status is not None else "-",
        pve_message,
        elapsed_ms,
        extra={
            "pve_operation": error.operation,
            "pve_node": error.node,
            "pve_vmid": error.vmid,
            "pve_status": status,
            "pve_message": pve_message,
            "elapsed_ms": elapsed_ms,
        },
    )


class _RedactWireLog(logging.Filter):
    """proxmoxer logs request bodies (container passwords) at INFO and responses at DEBUG."""

    _REQUEST = re.compile(r"^(GET|POST|PUT|DELETE) (\S+)")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        match = self._REQUEST.match(message)
        if match:
            record.msg, record.args = f"{match.group(1)} {match.group(2)} [parameters hidden]", ()
        elif message.startswith("Status code:"):
            record.msg, record.args = message.split(",", 1)[0] + ", [body hidden]", ()
        return True


_wire_filter = _RedactWireLog()


def _protect_wire_logs() -> None:
    # Filters attach to the logger that creates the record, so add ours to proxmoxer.core itself.
    core = logging.getLogger("proxmoxer.core")
    if _wire_filter not in core.filters:
        core.addFilter(_wire_filter)
