"""What the cluster looks like right now: Proxmox's live view merged with Proxboard's records.

One Proxmox call (``cluster_snapshot``) and a constant number of queries per render,
whatever the number of containers. When Proxmox cannot be reached, the last-known
snapshot stored on each container is used instead and marked stale.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import Text, cast, insert, select, update

from app import render_cache
from app.clusters import cluster_state, use_cluster
from app.events import record_event
from app.extensions import db
from app.models import Container, Operation, Service, current_cluster_name, utcnow
from app.proxmox import (
    ClusterSnapshot,
    ContainerSummary,
    ProxmoxAPIError,
    ProxmoxError,
    ProxmoxPermissionError,
    ProxmoxSlow,
    get_proxmox,
)
from app.proxmox.deadline import submit

log = logging.getLogger(__name__)

STATUS_FILTERS = ("all", "running", "stopped", "other")
FAILING = ("error", "gone", "unknown")  # display statuses that mean something went wrong
MAX_SETTLE_PER_RENDER = 5


def display_status(pve_status: str | None, lock: str | None = None, lifecycle: str | None = None,
                   template: bool = False) -> str:
    """The one status a person sees: creating/error/gone from Proxboard, locked, template, else Proxmox's."""
    if lifecycle in ("creating", "error", "gone"):
        return lifecycle
    if lock:
        return "locked"
    if template:
        return "template"
    if pve_status in ("running", "stopped", "paused"):
        return pve_status
    return "unknown"


def status_group(status: str) -> str:
    """Which filter pill a display status belongs to."""
    return status if status in ("running", "stopped") else "other"


@dataclass
class ContainerView:
    """One container as pages show it."""

    vmid: int
    node: str
    name: str
    pve_status: str
    status: str
    cpu: float = 0.0
    cpus: float = 0.0
    mem: int = 0
    maxmem: int = 0
    disk: int = 0
    maxdisk: int = 0
    swap: int | None = None  # only the detail page's status call reports swap
    maxswap: int | None = None
    uptime: int = 0
    tags: tuple[str, ...] = ()
    lock: str | None = None
    ha_managed: bool = False
    ha_state: str | None = None
    template: bool = False
    managed: bool = False
    lifecycle: str | None = None
    record_id: int | None = None
    stale: bool = False
    # Why the figures are last-known although Proxmox answered (node offline, not listed,
    # permission); None with ``stale`` means Proxmox itself could not be reached.
    stale_reason: str | None = None
    snapshot_at: datetime | None = None
    gone_at: datetime | None = None
    pending: Operation | None = None
    services: list[Service] = field(default_factory=list)
    cluster: str = field(default_factory=current_cluster_name)  # the cluster the guest lives in

    @property
    def cpu_percent(self) -> float:
        return round(self.cpu * 100.0, 1)


@dataclass
class Inventory:
    """Every container's status plus cluster-wide figures, and whether Proxmox answered.

    Full ``ContainerView``s are built only for the containers a page shows: with a
    thousand containers, building them all was a measurable share of the render.
    """

    entries: list[tuple[int, str, Any]]  # (vmid, display status, what ``build`` and ``describe`` need)
    build: Callable[[Any], ContainerView]
    describe: Callable[[Any], str]  # the text a search looks in (VMID, names, node, tags)
    reachable: bool
    error: str | None = None
    unreachable_since: datetime | None = None
    cpu_percent: float | None = None
    mem: int | None = None
    maxmem: int | None = None
    offline_nodes: dict[str, datetime] = field(default_factory=dict)  # node -> offline since
    hidden_hint: str | None = None  # Proxmox lists no guest although Proxboard knows some
    slow: bool = False  # Proxmox did not answer within the request's deadline (not down: slow)
    maxcpu: int | None = None  # CPUs of the online nodes (weighs this cluster's CPU figure in a sum of clusters)
    cluster: str = field(default_factory=current_cluster_name)
    # Several clusters in one view (``combine``): each cluster's own inventory, by name; empty for one cluster.
    parts: dict[str, Inventory] = field(default_factory=dict)

    @property
    def mem_percent_text(self) -> str:
        if not self.maxmem:
            return "–"
        return f"{(self.mem or 0) * 100 / self.maxmem:.0f}%"

    @property
    def total(self) -> int:
        return len(self.entries)

    def counts(self, entries: list[tuple[int, str, Any]] | None = None) -> dict[str, int]:
        """How many containers (of ``entries``, else all) fall in each status group."""
        entries = self.entries if entries is None else entries
        counts = dict.fromkeys((*STATUS_FILTERS, "failing"), 0)
        counts["all"] = len(entries)
        for status, number in Counter(entry[1] for entry in entries).items():  # a few distinct statuses
            counts[status_group(status)] += number
            if status in FAILING:  # "other" holds templates and locked guests too: no alarm for them
                counts["failing"] += number
        return counts

    def filtered(self, status: str, query: str = "") -> list[tuple[int, str, Any]]:
        """Entries in a status group whose VMID, name, hostname, node or tags contain every word of ``query``."""
        entries = self.entries if status == "all" else [e for e in self.entries if status_group(e[1]) == status]
        words = query.lower().split()
        if words:
            described = ((entry, self.describe(entry[2])) for entry in entries)
            entries = [entry for entry, text in described if all(word in text for word in words)]
        return entries

    def cluster_of(self, entry: tuple[int, str, Any]) -> str:
        """The cluster an entry of this inventory belongs to."""
        return entry[2][0] if self.parts else self.cluster

    def reachable_of(self, view: ContainerView) -> bool:
        """Whether the Proxmox of ``view``'s cluster answered (actions on its guests are possible)."""
        part = self.parts.get(view.cluster)
        return part.reachable if part is not None else self.reachable

    def views(self, entries: list[tuple[int, str, Any]]) -> list[ContainerView]:
        """Full views of the given entries, each knowing its cluster."""
        if self.parts:
            return [self.build(item) for _, _, item in entries]
        with use_cluster(self.cluster):
            views = [self.build(item) for _, _, item in entries]
        for view in views:
            view.cluster = self.cluster
        return views

    @property
    def containers(self) -> list[ContainerView]:
        """Every container as a full view."""
        return self.views(self.entries)


class ConnectivityTracker:
    """Remembers since when Proxmox has been failing, and since when each node is offline, for the banners."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.since: datetime | None = None
        self.reason: str | None = None
        self.nodes_offline: dict[str, datetime] = {}

    def ok(self) -> None:
        with self._lock:
            self.since, self.reason = None, None

    def failed(self, reason: str) -> datetime:
        with self._lock:
            if self.since is None:
                self.since = utcnow()
            self.reason = reason
            return self.since

    def node_offline(self, node: str) -> datetime:
        """Record ``node`` as offline; returns since when."""
        with self._lock:
            return self.nodes_offline.setdefault(node, utcnow())

    def nodes_seen(self, offline: frozenset[str] | set[str]) -> dict[str, datetime]:
        """Record the full set of offline nodes of an answer; returns node -> offline since."""
        with self._lock:
            now = utcnow()
            self.nodes_offline = {node: self.nodes_offline.get(node, now) for node in offline}
            return dict(self.nodes_offline)


def tracker() -> ConnectivityTracker:
    """The app's connectivity tracker (one per process)."""
    return cluster_state("proxmox_connectivity", ConnectivityTracker)


def stored_state(ct: ContainerSummary) -> dict[str, Any]:
    """The columns of a record that keep ``ct`` as last-known state: ``snapshot`` and its ``listed_name``."""
    return {"snapshot": snapshot_of(ct), "listed_name": ct.name}


def snapshot_of(ct: ContainerSummary) -> dict[str, Any]:
    """The part of a Proxmox summary kept as last-known state."""
    return {
        "name": ct.name, "node": ct.node, "status": ct.status, "cpu": ct.cpu, "cpus": ct.cpus,
        "mem": ct.mem, "maxmem": ct.maxmem, "disk": ct.disk, "maxdisk": ct.maxdisk,
        "uptime": ct.uptime, "tags": list(ct.tags), "lock": ct.lock, "ha_managed": ct.ha_managed,
        "ha_state": ct.ha_state, "template": ct.template,
    }


def offline_reason(node: str, since: datetime | None) -> str:
    """The sentence shown for a guest whose node is offline."""
    when = f" since {since.strftime('%H:%M')} UTC" if since else ""
    return f"Node {node} is offline{when}; showing the last known state."


def slow_reason(exc: ProxmoxSlow) -> str:
    """The sentence shown for a guest whose status Proxmox did not give within the request's deadline."""
    return f"Proxmox is slow ({exc.message[0].lower()}{exc.message[1:]}); showing the last known state."


NOT_LISTED = "Proxmox did not list this container in its last answer; showing the last known state."
HIDDEN_HINT = ("Proxmox lists no containers, although Proxboard knows {count}. The API token may lack "
               "VM.Audit (on /vms or on each guest); nothing is removed while they are hidden.")


def _listed_name(brief) -> str:
    """The name Proxmox lists for a guest (``CT<vmid>`` when it has no hostname, as Proxmox shows it)."""
    return brief.name or f"CT{brief.vmid}"


def _visible(brief, offline: frozenset[str]) -> bool:
    """Whether a cluster/resources entry carries real figures (its node answered)."""
    return brief.node not in offline and not (brief.status == "unknown" and not brief.name)


def load_inventory(settle: Callable[[Operation], object] | None = None, *, record: bool = False,
                   fetch: Future | None = None) -> Inventory:
    """The merged view of every container: one Proxmox call, constant queries.

    ``fetch``: this cluster's ``cluster_snapshot`` already asked for (``submit``), so that several clusters are
    asked at once and a slow one keeps only itself waiting (``listing.load_clusters``).

    ``record`` stores what Proxmox lists now, whatever ``SNAPSHOT_SECONDS`` says (the alert pass
    reads the stored statuses right after, once per its own interval).

    ``settle(operation)`` settles a pending action whose task may have ended while nobody was
    polling (pages without JavaScript; ``containers.services.refresh_operation``); the answer is
    then read again, so it shows the state the action left.

    Guests on offline nodes and guests missing from the answer keep their last known state
    (marked stale with the reason); a guest is only marked gone once Proxmox confirms it (see
    ``sync``), and a VMID that now belongs to another guest gets a record of its own.
    """
    # Proxmox answers while the database is read: the two waits overlap instead of adding up.
    # The fetch runs under this request's deadline (``submit``); past it, the records answer.
    try:
        pve = get_proxmox()
    except ProxmoxError as exc:  # a cluster whose stored settings no longer make a client (a CA bundle gone)
        since = tracker().failed(exc.message)
        return _stale_inventory(_current_rows(), pending_operations(), exc.message, since)
    fetch = fetch or submit(pve.cluster_snapshot)
    pending = pending_operations()
    if pending and settle is not None:
        before = len(pending)
        pending = _settle(pending, settle)
        if len(pending) != before:  # an action just ended: read the state it left
            fetch = submit(pve.cluster_snapshot)
    # With Proxmox's answers cached, the records are read only if this answer was not merged with them yet.
    memo = None if record else _Memo.of(pve)
    rows = _current_rows() if memo is None else None
    try:
        snapshot = fetch.result()
    except ProxmoxError as exc:
        since = tracker().failed(exc.message)
        inventory = _stale_inventory(rows if rows is not None else _current_rows(), pending, exc.message, since)
        inventory.slow = isinstance(exc, ProxmoxSlow)
        return inventory
    tracker().ok()
    offline = snapshot.offline_nodes
    offline_since = tracker().nodes_seen(offline)
    merged = memo.get(snapshot) if memo is not None else None
    if merged is None:
        generation = render_cache.generation()  # before reading: a commit meanwhile outdates this merge
        merged = _merge(snapshot, rows if rows is not None else _current_rows(), offline_since, record)
        if memo is not None:
            memo.put(snapshot, generation, merged)
    entries, hidden_hint = merged
    briefs = snapshot.briefs
    summaries = snapshot.containers

    def build(item) -> ContainerView:
        kind, row, ref, reason = item
        if kind == "live":
            return _live_view(summaries[ref], row, pending)
        if kind == "stale":
            return _stale_view(row, pending, reason, vmid=ref.vmid if ref is not None else None,
                               node=ref.node if ref is not None else None)
        return _record_view(row, pending)

    def describe(item) -> str:
        kind, row, ref, _ = item
        hostname = row.hostname if row is not None else None
        if kind == "live":
            brief = briefs[ref]
            return f"{brief.vmid} {brief.name} {hostname or ''} {brief.node} {brief.tags}".lower()
        snap = (row.snapshot or {}) if row is not None else {}
        vmid = row.vmid if row is not None else ref.vmid
        node = ref.node if ref is not None else row.node
        tags = ";".join(snap.get("tags", ()))
        return f"{vmid} {snap.get('name', '')} {hostname or ''} {node} {tags}".lower()

    return Inventory(entries, build, describe, reachable=True,
                     cpu_percent=snapshot.cpu_percent, mem=snapshot.mem, maxmem=snapshot.maxmem,
                     offline_nodes={n: offline_since[n] for n in sorted(offline) if n in offline_since},
                     hidden_hint=hidden_hint, maxcpu=snapshot.maxcpu)


def combine(parts: dict[str, Inventory]) -> Inventory:
    """One inventory of several clusters' (``{cluster name: its inventory}``, each loaded under its cluster):
    their entries one cluster after another (each by VMID), views that know their cluster, a search that also
    matches the cluster's name, summed memory and CPU-weighted CPU. ``reachable`` is True while any cluster
    answered: an unreachable one shows its own banner and last known state (``parts``)."""
    entries = [(vmid, status, (name, item)) for name, inventory in parts.items()
               for vmid, status, item in inventory.entries]

    def build(ref) -> ContainerView:
        name, item = ref
        with use_cluster(name):
            view = parts[name].build(item)
        view.cluster = name
        return view

    def describe(ref) -> str:
        name, item = ref
        return f"{parts[name].describe(item)} {name}"

    answered = [inventory for inventory in parts.values() if inventory.reachable]
    maxcpu = sum(inventory.maxcpu or 0 for inventory in answered)
    busy = sum((inventory.cpu_percent or 0) * (inventory.maxcpu or 0) for inventory in answered)
    return Inventory(entries, build, describe, reachable=bool(answered),
                     error=next((inventory.error for inventory in parts.values() if inventory.error), None),
                     cpu_percent=busy / maxcpu if maxcpu else None,
                     mem=sum(inventory.mem or 0 for inventory in answered) if answered else None,
                     maxmem=sum(inventory.maxmem or 0 for inventory in answered) if answered else None,
                     slow=all(inventory.slow for inventory in parts.values()), maxcpu=maxcpu, parts=parts)


def _merge(snapshot: ClusterSnapshot, rows: list[LightRow], offline_since: dict[str, datetime],
           record: bool) -> tuple[list[tuple[int, str, Any]], str | None]:
    """Proxmox's answer merged with the records (recorded first, see ``sync``): the inventory's entries sorted
    by VMID, and the hint shown when Proxmox lists no guest that Proxboard knows."""
    offline = snapshot.offline_nodes
    briefs = snapshot.briefs
    by_vmid = {row.vmid: row for row in rows}
    if sync(snapshot, by_vmid, force=record):
        rows = _current_rows()
        by_vmid = {row.vmid: row for row in rows}
    missing_notes: dict[int, str] = current_app.extensions.get("inventory_missing", {})
    known_ready = sum(1 for row in rows if row.lifecycle == "ready")
    hidden_hint = None
    if not briefs and known_ready and any(n.is_online for n in snapshot.nodes):
        hidden_hint = HIDDEN_HINT.format(count=known_ready)

    listed = {brief.vmid for brief in briefs if _visible(brief, offline)}
    preload_snapshots([row for row in rows if row.vmid not in listed])  # shown from what was stored
    entries: list[tuple[int, str, Any]] = []
    seen: set[int] = set()
    for index, brief in enumerate(briefs):
        row = by_vmid.get(brief.vmid)
        seen.add(brief.vmid)
        if row is not None and row.lifecycle == "gone":
            row = None  # not resolved yet (sync is throttled): show the live guest without the old history
        if not _visible(brief, offline):
            reason = offline_reason(brief.node, offline_since.get(brief.node))
            status = display_status((row.snapshot or {}).get("status", "unknown") if row is not None else "unknown",
                                    None, row.lifecycle if row else None)
            entries.append((brief.vmid, status, ("stale", row, brief, reason)))
            continue
        status = display_status(brief.status, brief.lock, row.lifecycle if row else None, brief.template)
        entries.append((brief.vmid, status, ("live", row, index, None)))
    for row in rows:  # records Proxmox did not list: being created, failed, gone, or hidden from us
        if row.vmid in seen:
            continue
        if row.lifecycle in ("creating", "error", "gone"):
            entries.append((row.vmid, row.lifecycle, ("record", row, None, None)))
        elif row.lifecycle == "ready":
            reason = hidden_hint or missing_notes.get(row.id, NOT_LISTED)
            snap = row.snapshot or {}
            status = display_status(snap.get("status", "unknown"), snap.get("lock"), row.lifecycle,
                                    snap.get("template", False))
            entries.append((row.vmid, status, ("stale", row, None, reason)))
    entries.sort(key=lambda entry: entry[0])
    return entries, hidden_hint


class _Memo:
    """The last merge of Proxmox's cached answer with the records, for every request of this process while
    both hold: the same answer (the read cache serves one object per interval), no commit since to a table
    a page shows (``render_cache.generation``), and not older than the cache interval. At 10,000 containers
    the merge was most of a render; every filter, search and page of the interval shares one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: tuple[ClusterSnapshot, int, float, Any] | None = None

    @classmethod
    def of(cls, pve) -> _Memo | None:
        """This app's memo, or None when Proxmox's answers are not cached (every render reads afresh)."""
        if pve.cache.ttl <= 0:
            return None
        return cluster_state("inventory_memo", cls)

    def get(self, snapshot: ClusterSnapshot) -> Any:
        held = self._held
        if held is None:
            return None
        answer, generation, at, merged = held
        if answer is not snapshot or generation != render_cache.generation() \
                or time.monotonic() - at > get_proxmox().cache.ttl:
            return None
        return merged

    def put(self, snapshot: ClusterSnapshot, generation: int, merged: Any) -> None:
        with self._lock:
            self._held = (snapshot, generation, time.monotonic(), merged)


_ROW_COLUMNS = (Container.id, Container.vmid, Container.node, Container.hostname, Container.lifecycle,
                Container.managed, Container.listed_name, Container.fingerprint)
# What only a record shown from what was stored needs: read for those alone (``preload_snapshots``).
_STORED_COLUMNS = (cast(Container.snapshot, Text), Container.snapshot_at, Container.gone_at)


class LightRow:
    """A record as the inventory reads it: its columns, the last-known name among them (``listed_name``). The
    last-known snapshot and its dates are read (and decoded) only for the records shown from them
    (``preload_snapshots``): a render at 10,000 containers read and decoded every one, and the live ones
    never need them (two dates a row were a third of the read of 1,000 records on SQLite)."""

    __slots__ = ("id", "vmid", "node", "hostname", "lifecycle", "managed", "listed_name", "fingerprint",
                 "_stored", "_snapshot")

    def __init__(self, row) -> None:
        (self.id, self.vmid, self.node, self.hostname, self.lifecycle, self.managed, self.listed_name,
         self.fingerprint) = row
        self._stored = self._snapshot = _UNREAD

    def _read(self) -> tuple[str | None, datetime | None, datetime | None]:
        if self._stored is _UNREAD:
            found = db.session.execute(select(*_STORED_COLUMNS).where(Container.id == self.id)).first()
            self._stored = tuple(found) if found is not None else (None, None, None)
        return self._stored

    @property
    def snapshot(self) -> dict[str, Any] | None:
        """The stored last-known state (``snapshot_of``), or None; read now unless it was preloaded."""
        if self._snapshot is _UNREAD:
            text = self._read()[0]
            self._snapshot = json.loads(text) if text else None
        return self._snapshot

    @property
    def snapshot_at(self) -> datetime | None:
        """When the stored snapshot was taken (UTC)."""
        return self._read()[1]

    @property
    def gone_at(self) -> datetime | None:
        """When Proxboard noticed Proxmox no longer has the guest (UTC), or None."""
        return self._read()[2]


_UNREAD = object()
_PRELOAD_CHUNK = 500  # ids per query, well under every database's limit on bound parameters


def preload_snapshots(rows: list[LightRow]) -> None:
    """Read the stored snapshots and their dates of ``rows`` (those not read yet) in one query per 500."""
    wanted = {row.id: row for row in rows if row._stored is _UNREAD}
    ids = list(wanted)
    for start in range(0, len(ids), _PRELOAD_CHUNK):
        chunk = ids[start:start + _PRELOAD_CHUNK]
        for record_id, *stored in db.session.execute(select(Container.id, *_STORED_COLUMNS)
                                                     .where(Container.id.in_(chunk))):
            wanted[record_id]._stored = tuple(stored)
    for row in wanted.values():
        if row._stored is _UNREAD:  # archived meanwhile: nothing stored to show
            row._stored = (None, None, None)


def _light_rows(statement) -> list[LightRow]:
    return [LightRow(row) for row in db.session.execute(statement).all()]


def _current_rows() -> list[LightRow]:
    """Every record of the current cluster that holds its VMID (not archived), as light rows."""
    return _light_rows(select(*_ROW_COLUMNS).where(Container.in_cluster(), Container.lifecycle != "deleted"))


def _live_view(ct: ContainerSummary, row, pending: dict[int, Operation]) -> ContainerView:
    lifecycle = row.lifecycle if row is not None else None
    return ContainerView(
        vmid=ct.vmid, node=ct.node, name=(row.hostname if row is not None else None) or ct.name or f"CT {ct.vmid}",
        pve_status=ct.status, status=display_status(ct.status, ct.lock, lifecycle, ct.template),
        cpu=ct.cpu, cpus=ct.cpus, mem=ct.mem, maxmem=ct.maxmem, disk=ct.disk, maxdisk=ct.maxdisk,
        uptime=ct.uptime, tags=ct.tags, lock=ct.lock, ha_managed=ct.ha_managed, ha_state=ct.ha_state,
        template=ct.template, managed=bool(row is not None and row.managed), lifecycle=lifecycle,
        record_id=row.id if row is not None else None, pending=pending.get(row.id) if row is not None else None,
    )


def _record_view(row, pending: dict[int, Operation]) -> ContainerView:
    """A record Proxmox does not list: being created, failed, or gone."""
    snap = row.snapshot or {}
    return ContainerView(
        vmid=row.vmid, node=row.node, name=row.hostname or snap.get("name") or f"CT {row.vmid}", pve_status="unknown",
        status=row.lifecycle, tags=tuple(snap.get("tags", ())), managed=row.managed, lifecycle=row.lifecycle,
        record_id=row.id, pending=pending.get(row.id), snapshot_at=row.snapshot_at, gone_at=row.gone_at,
    )


def pending_operations() -> dict[int, Operation]:
    """Pending operations by container id (one query)."""
    ops = db.session.scalars(select(Operation).where(Operation.state.in_(("queued", "running")))).all()
    return {op.container_id: op for op in ops}


def _settle(pending: dict[int, Operation], settle: Callable[[Operation], object]) -> dict[int, Operation]:
    """Settle actions whose task ended while nobody was polling (pages without JavaScript)."""
    for operation in list(pending.values())[:MAX_SETTLE_PER_RENDER]:
        if operation.upid and (utcnow() - operation.started_at).total_seconds() > 1:
            settle(operation)
    return {cid: op for cid, op in pending.items() if op.pending}


class ServiceNow:
    """A service as a page shows it now: its last check, but status ``unknown`` while its container
    is not running (nothing inside a stopped container runs, whatever the last check found).
    Every other attribute is the stored ``Service``'s; read-only, nothing here is written back."""

    def __init__(self, service: Service, container_running: bool) -> None:
        self._service = service
        self.status = service.status if container_running else "unknown"

    def __getattr__(self, name: str):
        return getattr(self._service, name)


def services_now(services, container_running: bool) -> list[ServiceNow]:
    """``services`` as shown now (see ``ServiceNow``)."""
    return [ServiceNow(service, container_running) for service in services]


def attach_services(views: list[ContainerView]) -> None:
    """Load the application services of the given containers in one query.

    A container that is not running shows its services as they were last checked, but their
    status is unknown now: nothing inside a stopped container is running.
    """
    ids = [view.record_id for view in views if view.record_id is not None]
    if not ids:
        return
    services = db.session.scalars(
        select(Service).where(Service.container_id.in_(ids), Service.kind == "application").order_by(Service.name)
    ).all()
    by_container: dict[int, list[Service]] = {}
    for service in services:
        by_container.setdefault(service.container_id, []).append(service)
    for view in views:
        view.services = services_now(by_container.get(view.record_id, []), view.pve_status == "running")


def _stale_inventory(rows, pending, reason: str, since: datetime) -> Inventory:
    preload_snapshots(rows)
    entries = []
    for row in sorted(rows, key=lambda r: r.vmid):
        if row.lifecycle in ("creating", "error", "gone"):
            entries.append((row.vmid, row.lifecycle, row))
            continue
        snap = row.snapshot or {}
        status = display_status(snap.get("status", "unknown"), snap.get("lock"), row.lifecycle, snap.get("template", False))
        entries.append((row.vmid, status, row))

    def describe(row) -> str:
        snap = row.snapshot or {}
        tags = ";".join(snap.get("tags", ()))
        return f"{row.vmid} {snap.get('name', '')} {row.hostname or ''} {row.node} {tags}".lower()

    def build(row) -> ContainerView:
        if row.lifecycle in ("creating", "error", "gone"):
            view = _record_view(row, pending)
            view.stale = True
            return view
        return _stale_view(row, pending, None)

    return Inventory(entries, build, describe, reachable=False, error=reason, unreachable_since=since)


def _stale_view(row, pending: dict[int, Operation], reason: str | None, *, vmid: int | None = None,
                node: str | None = None) -> ContainerView:
    """Last-known state of a guest; ``reason`` says why (None: Proxmox cannot be reached)."""
    if row is None:  # a guest on an offline node that Proxboard has never seen
        return ContainerView(vmid=vmid or 0, node=node or "", name=f"CT {vmid}", pve_status="unknown",
                             status="unknown", stale=True, stale_reason=reason)
    snap = row.snapshot or {}
    last_status = snap.get("status", "unknown")
    return ContainerView(
        vmid=row.vmid, node=node or snap.get("node") or row.node, name=row.hostname or snap.get("name") or f"CT {row.vmid}",
        pve_status=last_status,
        status=display_status(last_status, snap.get("lock"), row.lifecycle, snap.get("template", False)),
        cpu=snap.get("cpu", 0.0), cpus=snap.get("cpus", 0.0), mem=snap.get("mem", 0), maxmem=snap.get("maxmem", 0),
        disk=snap.get("disk", 0), maxdisk=snap.get("maxdisk", 0), uptime=snap.get("uptime", 0),
        tags=tuple(snap.get("tags", ())), lock=snap.get("lock"), ha_managed=snap.get("ha_managed", False),
        ha_state=snap.get("ha_state"), template=snap.get("template", False),
        managed=row.managed, lifecycle=row.lifecycle, record_id=row.id, stale=True, stale_reason=reason,
        snapshot_at=row.snapshot_at, pending=pending.get(row.id),
    )


# -- sync: what Proxboard records of what Proxmox lists --------------------------------------------

_sync_lock = threading.Lock()
MAX_CONFIG_READS = 8  # per sync: identity checks and fingerprints learnt
MAX_CONFIRMATIONS = 5  # per sync: guests missing from the answer asked for directly


def _name_of(row) -> str | None:
    """The name Proxmox last reported for a record's guest (None: never seen, so nothing to compare)."""
    return row.listed_name


def sync(snapshot: ClusterSnapshot, by_vmid: dict[int, Any], *, force: bool = False) -> bool:
    """Record what Proxmox lists (throttled to ``SNAPSHOT_SECONDS``); True if records changed.

    The identity rule: a listed guest is the record's guest when their VMIDs match and, when
    both fingerprints are known (the guest's MAC addresses, see ``ContainerConfig.fingerprint``),
    they match; when one is unknown, their names must match. A different guest archives the old
    record (lifecycle ``deleted``, its events, services and credentials stay with it) and gets a
    record of its own. A guest the answer leaves out is asked for directly on its node, and only
    a "does not exist" answer marks it ``gone``; offline nodes, permission errors and an answer
    listing no guest at all (a token without VM.Audit) change nothing. A write that fails is
    rolled back and logged as a warning; the next sync starts again from what the database has.
    """
    interval = float(current_app.config.get("SNAPSHOT_SECONDS", 60))
    state = cluster_state("inventory_sync", lambda: {"at": 0.0})
    offline = snapshot.offline_nodes
    briefs = snapshot.briefs
    visible = [(index, brief) for index, brief in enumerate(briefs) if _visible(brief, offline)]
    urgent = any(
        brief.vmid not in by_vmid
        or by_vmid[brief.vmid].lifecycle == "gone"
        or (_name_of(by_vmid[brief.vmid]) not in (None, _listed_name(brief))
            and by_vmid[brief.vmid].lifecycle != "creating")
        for _, brief in visible
    )
    now = time.monotonic()
    if not force and not urgent and now - state["at"] < interval:
        return False
    if not _sync_lock.acquire(blocking=False):
        return False
    try:
        state["at"] = now
        return _sync(snapshot, by_vmid, visible, offline)
    except Exception as exc:  # noqa: BLE001 - the inventory must never get stuck on one bad write
        db.session.rollback()
        log.warning("inventory sync failed, the next sync retries: %s: %s", type(exc).__name__, exc, exc_info=True)
        state["at"] = 0.0
        return False
    finally:
        _sync_lock.release()


def _sync(snapshot: ClusterSnapshot, by_vmid: dict[int, Any], visible, offline: frozenset[str]) -> bool:
    pve = get_proxmox()
    summaries = snapshot.containers
    moment = utcnow()
    new, suspects, learn, verify_candidates = [], [], [], []
    for index, brief in visible:
        row = by_vmid.get(brief.vmid)
        if row is None:
            new.append(index)
        elif row.lifecycle == "creating":
            continue
        elif row.lifecycle == "gone" or _name_of(row) not in (None, _listed_name(brief)):
            suspects.append((index, row))
        elif row.fingerprint is None:
            learn.append((index, row))
        else:
            verify_candidates.append((index, row))
    # Config reads: every suspect (their history must not be shown on another guest), then the
    # fingerprints not known yet (new guests first), then a rotating few known ones re-checked, so a
    # guest destroyed and re-created under the same VMID and name is found within a few syncs.
    wanted = list(suspects)
    budget = max(MAX_CONFIG_READS - len(wanted), 0)
    wanted += [(index, None) for index in new[:budget]]
    budget = max(MAX_CONFIG_READS - len(wanted), 0)
    wanted += learn[:budget]
    budget = max(MAX_CONFIG_READS - len(wanted), 0)
    verify = _rotation(verify_candidates, budget)
    wanted += verify
    fingerprints = _read_fingerprints(pve, [(briefs_node(snapshot, i), snapshot.briefs[i].vmid) for i, _ in wanted])
    fp_of = {snapshot.briefs[i].vmid: fingerprints.get(snapshot.briefs[i].vmid) for i, _ in wanted}
    suspects += [(index, row) for index, row in verify
                 if fp_of.get(row.vmid) is not None and fp_of[row.vmid] != row.fingerprint]
    changed = False

    inserts = [index for index in new]
    for index, row in suspects:
        ct = summaries[index]
        fingerprint = fp_of.get(ct.vmid)
        if _same_guest(row, ct.name, fingerprint):
            values = {**stored_state(ct), "snapshot_at": moment, "node": ct.node}
            if fingerprint is not None:
                values["fingerprint"] = fingerprint
            if row.lifecycle == "gone":
                values.update(lifecycle="ready", gone_at=None)
                record_event(row.id, "log", f"CT {ct.vmid} ({ct.name}) is listed by Proxmox again.",
                             {"vmid": ct.vmid, "node": ct.node})
            db.session.execute(update(Container).where(Container.id == row.id).values(**values))
        else:
            old = _name_of(row) or row.hostname or f"CT {row.vmid}"
            db.session.execute(update(Container).where(Container.id == row.id)
                               .values(lifecycle="deleted", gone_at=row.gone_at or moment))
            record_event(row.id, "log",
                         f"{old} (CT {row.vmid}) no longer exists in Proxmox: VMID {row.vmid} now belongs to "
                         f"another guest ({ct.name}), which Proxboard records separately.",
                         {"vmid": row.vmid, "new_name": ct.name, "new_node": ct.node})
            inserts.append(index)
        changed = True
    if inserts:
        db.session.flush()
        db.session.execute(insert(Container), [
            {"vmid": summaries[i].vmid, "node": summaries[i].node, "hostname": None, "lifecycle": "ready",
             "managed": False, **stored_state(summaries[i]), "snapshot_at": moment,
             "fingerprint": fp_of.get(summaries[i].vmid), "created_at": moment, "updated_at": moment}
            for i in inserts
        ])
        changed = True
    handled = {row.id for _, row in suspects}
    known = [(index, by_vmid[brief.vmid]) for index, brief in visible
             if brief.vmid in by_vmid and by_vmid[brief.vmid].id not in handled
             and by_vmid[brief.vmid].lifecycle != "creating"]
    if known:
        db.session.execute(update(Container), [
            {"id": row.id, "node": summaries[index].node, **stored_state(summaries[index]),
             "snapshot_at": moment,
             **({"fingerprint": fp_of[row.vmid]} if fp_of.get(row.vmid) is not None else {})}
            for index, row in known
        ])
    changed |= _confirm_missing(pve, snapshot, by_vmid, offline, moment)
    db.session.commit()
    return changed


def _rotation(candidates: list[tuple[int, Any]], count: int) -> list[tuple[int, Any]]:
    """``count`` candidates after the last one re-checked (by VMID), wrapping around."""
    if count <= 0 or not candidates:
        return []
    state = cluster_state("inventory_sync", lambda: {"at": 0.0})
    after = state.get("verified_vmid", 0)
    ordered = sorted(candidates, key=lambda item: item[1].vmid)
    start = next((i for i, (_, row) in enumerate(ordered) if row.vmid > after), 0)
    chosen = (ordered[start:] + ordered[:start])[:count]
    state["verified_vmid"] = chosen[-1][1].vmid
    return chosen


def briefs_node(snapshot: ClusterSnapshot, index: int) -> str:
    """The node of the ``index``-th container of a snapshot."""
    return snapshot.briefs[index].node


def _same_guest(row, name: str, fingerprint: str | None) -> bool:
    if fingerprint is not None and row.fingerprint is not None:
        if fingerprint or row.fingerprint:
            return fingerprint == row.fingerprint
    return _name_of(row) in (None, name)


def _read_fingerprints(pve, targets: list[tuple[str, int]]) -> dict[int, str]:
    """Fingerprints of the given (node, vmid) guests, read in parallel; unreadable ones are left out."""
    if not targets:
        return {}

    def read(target):
        node, vmid = target
        try:
            return vmid, pve.container_config(node, vmid).fingerprint
        except ProxmoxError as exc:
            log.info("cannot read the config of CT %s on %s to tell it apart: %s", vmid, node, exc.message)
            return vmid, None

    futures = [submit(read, target) for target in targets]
    return {vmid: fp for vmid, fp in (future.result() for future in futures) if fp is not None}


def _confirm_missing(pve, snapshot: ClusterSnapshot, by_vmid, offline: frozenset[str], moment) -> bool:
    """Ask Proxmox about records its answer left out; mark ``gone`` only those it says do not exist."""
    listed = {brief.vmid for brief in snapshot.briefs}
    missing = [row for vmid, row in by_vmid.items() if vmid not in listed and row.lifecycle in ("ready", "error")]
    notes: dict[int, str] = current_app.extensions.setdefault("inventory_missing", {})
    for key in [key for key in notes if key not in {row.id for row in missing}]:
        notes.pop(key, None)
    if not missing:
        return False
    if not snapshot.briefs and any(row.lifecycle == "ready" for row in missing):
        return False  # nothing visible at all: a token without VM.Audit, not a cluster without guests
    changed = False
    for row in missing[:MAX_CONFIRMATIONS]:
        if row.node in offline:
            notes[row.id] = offline_reason(row.node, tracker().nodes_offline.get(row.node))
            continue
        if row.lifecycle == "error" and not _failed_after_create(row.id):
            continue  # Proxmox never had it: the failed creation keeps its Retry
        try:
            pve.container_status(row.node, row.vmid)
        except ProxmoxPermissionError as exc:
            notes[row.id] = f"Proxmox does not let Proxboard see this container: {exc.message}"
            continue
        except ProxmoxAPIError as exc:
            if not exc.not_found:
                notes[row.id] = f"Proxmox did not list this container and could not be asked: {exc.message}"
                continue
        except ProxmoxError as exc:
            notes[row.id] = f"Proxmox did not list this container and could not be asked: {exc.message}"
            continue
        else:
            notes[row.id] = NOT_LISTED
            continue
        name = row.hostname or _name_of(row) or f"CT {row.vmid}"
        db.session.execute(update(Container).where(Container.id == row.id).values(lifecycle="gone", gone_at=moment))
        record_event(row.id, "log", f"{name} (CT {row.vmid}) no longer exists in Proxmox "
                     f"(deleted outside Proxboard?). Clear it to remove it from the dashboard.",
                     {"vmid": row.vmid, "node": row.node})
        notes.pop(row.id, None)
        changed = True
    return changed


def _failed_after_create(container_id: int) -> bool:
    """Whether the container's failed creation got past Proxmox's create step (so Proxmox had it)."""
    step = db.session.scalar(select(Operation.step).where(
        Operation.container_id == container_id, Operation.action == "provision")
        .order_by(Operation.started_at.desc(), Operation.id.desc()).limit(1))
    return step not in (None, "create")


def record_for(ct: ContainerSummary) -> Container | None:
    """Proxboard's record of the guest Proxmox reports as ``ct``, or None.

    When the record holding the VMID may belong to another guest (it is ``gone``, or its name
    differs), the identity rule of ``sync`` decides first, so that a new guest never shows an
    old one's history.
    """
    record = Container.current(ct.vmid)
    if record is None or record.lifecycle == "creating":
        return record
    if record.lifecycle == "gone" or _name_of(record) not in (None, ct.name):
        sync(ClusterSnapshot((ct,), ()), {ct.vmid: _light(record)}, force=True)
        db.session.expire_all()
        record = Container.current(ct.vmid)
        if record is not None and record.lifecycle == "gone":
            return None
    return record


def load_one(vmid: int, on_node: Callable[[str, Container], None] | None = None) -> ContainerView | None:
    """One container's view (live status call + its record), or None if neither knows the CT.

    ``on_node(node, record)`` is called, when the record says where the guest is, just before
    the status call: a page starts the calls it will need next there, so they run in parallel.

    The record is only used when the guest Proxmox reports is the record's guest (see ``sync``);
    a node that is offline or a status call the token may not make gives the last known state
    with the reason instead of an error; a record whose guest is gone gives the gone view.
    Raises ProxmoxError when Proxmox cannot be reached and Proxboard has no record.
    """
    record = Container.current(vmid)
    gone = record is not None and record.lifecycle == "gone"
    pve = get_proxmox()
    try:
        node = record.node if record is not None and not gone else None
        if node is not None and on_node is not None:
            on_node(node, record)
        if node is None:
            ct = pve.locate_container(vmid)
        else:
            try:
                ct = pve.container_status(node, vmid)
            except ProxmoxAPIError as exc:
                if not exc.not_found:
                    raise
                ct = pve.locate_container(vmid)  # migrated or destroyed since the record was written
    except ProxmoxError as exc:
        if record is None or gone:
            if isinstance(exc, ProxmoxAPIError) and exc.not_found:
                return _record_view(record, _pending_of(record)) if gone else None
            if gone:
                return _record_view(record, _pending_of(record))
            raise
        if isinstance(exc, ProxmoxAPIError) and exc.node_unreachable:
            reason = offline_reason(record.node, tracker().node_offline(record.node))
        elif isinstance(exc, ProxmoxPermissionError):
            reason = f"Proxboard may not read this container's status: {exc.message}"
        elif isinstance(exc, ProxmoxSlow):
            reason = slow_reason(exc)
        else:
            tracker().failed(exc.message)
            reason = None
        view = _stale_view(record, _pending_of(record), reason)
        attach_services([view])
        return view
    if ct is None:
        if record is not None and record.lifecycle == "ready":
            _mark_gone(record)  # Proxmox, asked directly, has it nowhere: a confirmed deletion
        return _record_view(record, _pending_of(record)) if record is not None else None
    record = record_for(ct)
    pending = _pending_of(record).get(record.id) if record is not None else None
    lifecycle = record.lifecycle if record is not None else None
    view = ContainerView(
        vmid=vmid, node=ct.node, name=(record.hostname if record is not None and record.hostname else None) or ct.name or f"CT {vmid}",
        pve_status=ct.status, status=display_status(ct.status, ct.lock, lifecycle, ct.template), cpu=ct.cpu, cpus=ct.cpus,
        mem=ct.mem, maxmem=ct.maxmem, disk=ct.disk, maxdisk=ct.maxdisk, swap=ct.swap, maxswap=ct.maxswap,
        uptime=ct.uptime, tags=ct.tags, lock=ct.lock, ha_managed=ct.ha_managed, ha_state=ct.ha_state,
        template=ct.template, managed=bool(record is not None and record.managed),
        lifecycle=lifecycle, record_id=record.id if record is not None else None, pending=pending,
    )
    attach_services([view])
    return view


def _mark_gone(record: Container) -> None:
    """Record that Proxmox no longer has ``record``'s guest (lifecycle ``gone``, with an event)."""
    record.lifecycle, record.gone_at = "gone", utcnow()
    name = record.hostname or _name_of(record) or f"CT {record.vmid}"
    record_event(record.id, "log", f"{name} (CT {record.vmid}) no longer exists in Proxmox "
                 f"(deleted outside Proxboard?). Clear it to remove it from the dashboard.",
                 {"vmid": record.vmid, "node": record.node})
    db.session.commit()


def _pending_of(record: Container | None) -> dict[int, Operation]:
    """The record's pending operation, keyed like ``pending_operations``."""
    if record is None:
        return {}
    operation = db.session.scalar(select(Operation).where(
        Operation.container_id == record.id, Operation.state.in_(("queued", "running"))))
    return {record.id: operation} if operation is not None else {}


def _light(record: Container):
    """A record as the light row ``sync`` works on."""
    return _light_rows(select(*_ROW_COLUMNS).where(Container.id == record.id))[0]


# -- VMIDs -----------------------------------------------------------------------------------------

def reserved_vmids() -> set[int]:
    """VMIDs Proxboard holds although Proxmox may not list them: containers being created or whose creation failed."""
    return set(db.session.scalars(select(Container.vmid).where(Container.in_cluster(), Container.lifecycle.in_(("creating", "error")))))


def vmid_available(vmid: int) -> bool:
    """True when a new container may take ``vmid``: Proxmox has no guest with it and Proxboard holds no
    creation for it. A record of a guest that is gone (or not confirmed yet) does not hold it.

    Raises ProxmoxError when Proxmox cannot be asked (GET /cluster/nextid?vmid=N).
    """
    if vmid in reserved_vmids():
        return False
    return get_proxmox().is_vmid_free(vmid)


def propose_vmid(next_vmid: Callable[[], int] | None = None) -> int:
    """The lowest VMID a new container can take: Proxmox's next free one (GET /cluster/nextid), skipping
    those Proxboard holds for creations (``reserved_vmids``), so the wizard never proposes a VMID it
    would then refuse. ``next_vmid`` gives Proxmox's answer when the caller already asked for it.
    Raises ProxmoxError when Proxmox cannot be asked.
    """
    pve = get_proxmox()
    vmid = (next_vmid or pve.next_vmid)()
    reserved = reserved_vmids()
    if vmid not in reserved:
        return vmid
    used = {ct.vmid for ct in pve.list_containers(include_templates=True)} | reserved
    while vmid in used or not pve.is_vmid_free(vmid):
        vmid += 1
        while vmid in used:
            vmid += 1
    return vmid


def release_vmid(vmid: int) -> None:
    """Archive the record that holds ``vmid`` for a guest Proxmox no longer has (``gone``, or ``ready``
    while Proxmox says the VMID is free), so a new container can be recorded under it. The caller
    commits; the old record keeps its history.
    """
    record = Container.current(vmid)
    if record is not None and record.lifecycle in ("gone", "ready"):
        record.lifecycle = "deleted"
        record.gone_at = record.gone_at or utcnow()
        record_event(record.id, "log", f"VMID {vmid} was reused for a new container; this record is archived.",
                     {"vmid": vmid})
        db.session.flush()
