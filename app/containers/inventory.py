"""What the cluster looks like right now: Proxmox's live view merged with Proxboard's records.

One Proxmox call (``cluster_snapshot``) and a constant number of queries per render,
whatever the number of containers. When Proxmox cannot be reached, the last-known
snapshot stored on each container is used instead and marked stale.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Container, Operation, Service, utcnow
from app.proxmox import ClusterSnapshot, ContainerSummary, ProxmoxError, get_proxmox

log = logging.getLogger(__name__)

STATUS_FILTERS = ("all", "running", "stopped", "other")
MAX_SETTLE_PER_RENDER = 5
_FETCHER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="proxmox-fetch")


def display_status(pve_status: str | None, lock: str | None = None, lifecycle: str | None = None) -> str:
    """The one status a person sees: creating/error from Proxboard, locked, else Proxmox's."""
    if lifecycle in ("creating", "error"):
        return lifecycle
    if lock:
        return "locked"
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
    managed: bool = False
    lifecycle: str | None = None
    record_id: int | None = None
    stale: bool = False
    snapshot_at: datetime | None = None
    pending: Operation | None = None
    services: list[Service] = field(default_factory=list)

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
        counts = dict.fromkeys(STATUS_FILTERS, 0)
        counts["all"] = len(entries)
        for _, status, _ in entries:
            counts[status_group(status)] += 1
        return counts

    def filtered(self, status: str, query: str = "") -> list[tuple[int, str, Any]]:
        """Entries in a status group whose VMID, name, hostname, node or tags contain every word of ``query``."""
        entries = self.entries if status == "all" else [e for e in self.entries if status_group(e[1]) == status]
        words = query.lower().split()
        if words:
            described = ((entry, self.describe(entry[2])) for entry in entries)
            entries = [entry for entry, text in described if all(word in text for word in words)]
        return entries

    def views(self, entries: list[tuple[int, str, Any]]) -> list[ContainerView]:
        """Full views of the given entries."""
        return [self.build(item) for _, _, item in entries]

    @property
    def containers(self) -> list[ContainerView]:
        """Every container as a full view."""
        return self.views(self.entries)


class ConnectivityTracker:
    """Remembers since when Proxmox has been failing, for the banner."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.since: datetime | None = None
        self.reason: str | None = None

    def ok(self) -> None:
        with self._lock:
            self.since, self.reason = None, None

    def failed(self, reason: str) -> datetime:
        with self._lock:
            if self.since is None:
                self.since = utcnow()
            self.reason = reason
            return self.since


def tracker() -> ConnectivityTracker:
    """The app's connectivity tracker (one per process)."""
    return current_app.extensions.setdefault("proxmox_connectivity", ConnectivityTracker())


def snapshot_of(ct: ContainerSummary) -> dict[str, Any]:
    """The part of a Proxmox summary kept as last-known state."""
    return {
        "name": ct.name, "node": ct.node, "status": ct.status, "cpu": ct.cpu, "cpus": ct.cpus,
        "mem": ct.mem, "maxmem": ct.maxmem, "disk": ct.disk, "maxdisk": ct.maxdisk,
        "uptime": ct.uptime, "tags": list(ct.tags), "lock": ct.lock, "ha_managed": ct.ha_managed,
    }


def load_inventory() -> Inventory:
    """The merged view of every container: one Proxmox call, constant queries."""
    # Proxmox answers while the database is read: the two waits overlap instead of adding up.
    pve = get_proxmox()
    fetch = _FETCHER.submit(pve.cluster_snapshot)
    pending = pending_operations()
    if pending:
        before = len(pending)
        pending = _settle(pending)
        if len(pending) != before:  # an action just ended: read the state it left
            fetch = _FETCHER.submit(pve.cluster_snapshot)
    rows = db.session.execute(
        select(Container.id, Container.vmid, Container.node, Container.hostname, Container.lifecycle,
               Container.managed).where(Container.lifecycle != "deleted")
    ).all()
    by_vmid = {row.vmid: row for row in rows}
    try:
        snapshot = fetch.result()
    except ProxmoxError as exc:
        since = tracker().failed(exc.message)
        return _stale_inventory(by_vmid, pending, exc.message, since)
    tracker().ok()

    summaries = snapshot.containers
    live = [index for index, brief in enumerate(snapshot.briefs) if not brief.template]
    _remember(snapshot, live, by_vmid)
    entries: list[tuple[int, str, Any]] = []
    seen: set[int] = set()
    briefs = snapshot.briefs
    for index in live:
        brief = briefs[index]
        row = by_vmid.get(brief.vmid)
        seen.add(brief.vmid)
        status = display_status(brief.status, brief.lock, row.lifecycle if row else None)
        entries.append((brief.vmid, status, (index, row)))
    for row in rows:  # containers Proxboard is still creating, not yet (or no longer) in Proxmox
        if row.vmid not in seen and row.lifecycle in ("creating", "error"):
            entries.append((row.vmid, row.lifecycle, (None, row)))
    entries.sort(key=lambda entry: entry[0])

    def build(item) -> ContainerView:
        index, row = item
        return _live_view(summaries[index] if index is not None else None, row, pending)

    def describe(item) -> str:
        index, row = item
        hostname = row.hostname if row is not None else None
        if index is None:
            return f"{row.vmid} {hostname or ''} {row.node}".lower()
        brief = briefs[index]
        return f"{brief.vmid} {brief.name} {hostname or ''} {brief.node} {brief.tags}".lower()

    return Inventory(entries, build, describe, reachable=True,
                     cpu_percent=snapshot.cpu_percent, mem=snapshot.mem, maxmem=snapshot.maxmem)


def _live_view(ct: ContainerSummary | None, row, pending: dict[int, Operation]) -> ContainerView:
    lifecycle = row.lifecycle if row is not None else None
    if ct is None:
        return ContainerView(
            vmid=row.vmid, node=row.node, name=row.hostname or f"CT {row.vmid}", pve_status="unknown",
            status=row.lifecycle, managed=row.managed, lifecycle=row.lifecycle, record_id=row.id,
            pending=pending.get(row.id),
        )
    return ContainerView(
        vmid=ct.vmid, node=ct.node, name=(row.hostname if row is not None else None) or ct.name or f"CT {ct.vmid}",
        pve_status=ct.status, status=display_status(ct.status, ct.lock, lifecycle),
        cpu=ct.cpu, cpus=ct.cpus, mem=ct.mem, maxmem=ct.maxmem, disk=ct.disk, maxdisk=ct.maxdisk,
        uptime=ct.uptime, tags=ct.tags, lock=ct.lock, ha_managed=ct.ha_managed,
        managed=bool(row is not None and row.managed), lifecycle=lifecycle,
        record_id=row.id if row is not None else None, pending=pending.get(row.id) if row is not None else None,
    )


def pending_operations() -> dict[int, Operation]:
    """Pending operations by container id (one query)."""
    ops = db.session.scalars(select(Operation).where(Operation.state.in_(("queued", "running")))).all()
    return {op.container_id: op for op in ops}


def _settle(pending: dict[int, Operation]) -> dict[int, Operation]:
    """Settle actions whose task ended while nobody was polling (pages without JavaScript)."""
    from app.containers.lifecycle import refresh_operation

    for operation in list(pending.values())[:MAX_SETTLE_PER_RENDER]:
        if operation.upid and (utcnow() - operation.started_at).total_seconds() > 1:
            refresh_operation(operation)
    return {cid: op for cid, op in pending.items() if op.pending}


def attach_services(views: list[ContainerView]) -> None:
    """Load the application services of the given containers in one query."""
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
        view.services = by_container.get(view.record_id, [])


def _stale_inventory(by_vmid, pending, reason: str, since: datetime) -> Inventory:
    saved = {row.id: row for row in db.session.execute(
        select(Container.id, Container.snapshot, Container.snapshot_at).where(Container.lifecycle != "deleted")
    ).all()}
    entries = []
    for vmid, row in sorted(by_vmid.items()):
        snap = saved[row.id].snapshot or {}
        status = display_status(snap.get("status", "unknown"), snap.get("lock"), row.lifecycle)
        entries.append((vmid, status, (row, saved[row.id])))
    def describe(item) -> str:
        row, saved_row = item
        snap = saved_row.snapshot or {}
        tags = ";".join(snap.get("tags", ()))
        return f"{row.vmid} {snap.get('name', '')} {row.hostname or ''} {row.node} {tags}".lower()

    return Inventory(entries, lambda item: _stale_view(*item, pending), describe, reachable=False, error=reason,
                     unreachable_since=since)


def _stale_view(row, saved, pending: dict[int, Operation]) -> ContainerView:
    snap = saved.snapshot or {}
    last_status = snap.get("status", "unknown")
    return ContainerView(
        vmid=row.vmid, node=snap.get("node") or row.node, name=row.hostname or snap.get("name") or f"CT {row.vmid}",
        pve_status=last_status, status=display_status(last_status, snap.get("lock"), row.lifecycle),
        cpu=snap.get("cpu", 0.0), cpus=snap.get("cpus", 0.0), mem=snap.get("mem", 0), maxmem=snap.get("maxmem", 0),
        disk=snap.get("disk", 0), maxdisk=snap.get("maxdisk", 0), uptime=snap.get("uptime", 0),
        tags=tuple(snap.get("tags", ())), lock=snap.get("lock"), ha_managed=snap.get("ha_managed", False),
        managed=row.managed, lifecycle=row.lifecycle, record_id=row.id, stale=True,
        snapshot_at=saved.snapshot_at, pending=pending.get(row.id),
    )


_sync_lock = threading.Lock()


def _remember(snapshot: ClusterSnapshot, live: list[int], by_vmid) -> None:
    """Store last-known state (throttled): new containers become unmanaged records."""
    interval = float(current_app.config.get("SNAPSHOT_SECONDS", 60))
    state = current_app.extensions.setdefault("inventory_sync", {"at": 0.0})
    now = time.monotonic()
    briefs = snapshot.briefs
    vmids = [briefs[index].vmid for index in live]
    has_new = any(vmid not in by_vmid for vmid in vmids)
    if not has_new and now - state["at"] < interval:
        return
    if not _sync_lock.acquire(blocking=False):
        return
    try:
        state["at"] = now
        live_cts = [snapshot.containers[index] for index in live]
        new = [ct for ct in live_cts if ct.vmid not in by_vmid]
        moment = utcnow()
        if new:
            db.session.execute(insert(Container), [
                {"vmid": ct.vmid, "node": ct.node, "hostname": None, "lifecycle": "ready", "managed": False,
                 "snapshot": snapshot_of(ct), "snapshot_at": moment, "created_at": moment, "updated_at": moment}
                for ct in new
            ])
        known = [ct for ct in live_cts if ct.vmid in by_vmid]
        if known:
            db.session.execute(update(Container), [
                {"id": by_vmid[ct.vmid].id, "node": ct.node, "snapshot": snapshot_of(ct), "snapshot_at": moment}
                for ct in known
            ])
        live_ids = set(vmids)
        gone = [row.id for vmid, row in by_vmid.items() if vmid not in live_ids and row.lifecycle == "ready"]
        if gone:
            db.session.execute(update(Container).where(Container.id.in_(gone)).values(lifecycle="deleted"))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # another worker recorded the same new container first
        log.info("inventory sync raced with another worker; will retry on the next render")
    finally:
        _sync_lock.release()



def load_one(vmid: int) -> ContainerView | None:
    """One container's view (live status call + its record), or None if Proxmox has no such CT."""
    record = db.session.scalar(select(Container).where(Container.vmid == vmid))
    pending = None
    if record is not None:
        pending = db.session.scalar(select(Operation).where(
            Operation.container_id == record.id, Operation.state.in_(("queued", "running"))))
    try:
        node = record.node if record is not None else None
        pve = get_proxmox()
        if node is None:
            node = pve.find_container_node(vmid)
            if node is None:
                return None
        ct = pve.container_status(node, vmid)
    except ProxmoxError as exc:
        if getattr(exc, "not_found", False):
            return None
        if record is None:
            raise
        tracker().failed(exc.message)
        snap = record.snapshot or {}
        status = snap.get("status", "unknown")
        view = ContainerView(
            vmid=vmid, node=record.node, name=record.hostname or snap.get("name") or f"CT {vmid}",
            pve_status=status, status=display_status(status, snap.get("lock"), record.lifecycle),
            cpu=snap.get("cpu", 0.0), cpus=snap.get("cpus", 0.0), mem=snap.get("mem", 0),
            maxmem=snap.get("maxmem", 0), disk=snap.get("disk", 0), maxdisk=snap.get("maxdisk", 0),
            uptime=snap.get("uptime", 0), tags=tuple(snap.get("tags", ())), lock=snap.get("lock"),
            managed=record.managed, lifecycle=record.lifecycle, record_id=record.id, stale=True,
            snapshot_at=record.snapshot_at, pending=pending,
        )
        attach_services([view])
        return view
    lifecycle = record.lifecycle if record is not None else None
    view = ContainerView(
        vmid=vmid, node=ct.node, name=(record.hostname if record is not None and record.hostname else None) or ct.name or f"CT {vmid}",
        pve_status=ct.status, status=display_status(ct.status, ct.lock, lifecycle), cpu=ct.cpu, cpus=ct.cpus,
        mem=ct.mem, maxmem=ct.maxmem, disk=ct.disk, maxdisk=ct.maxdisk, swap=ct.swap, maxswap=ct.maxswap,
        uptime=ct.uptime, tags=ct.tags, lock=ct.lock, ha_managed=ct.ha_managed, managed=bool(record is not None and record.managed),
        lifecycle=lifecycle, record_id=record.id if record is not None else None, pending=pending,
    )
    attach_services([view])
    return view
