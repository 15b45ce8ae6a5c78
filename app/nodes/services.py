"""What the Nodes pages show: each node's state, versions, resources, storages and guests.

The list costs ONE /cluster/resources read (nodes, storages and guests in one answer, the
dashboard's cached read) plus one GET /nodes/{node}/status per online node, made in parallel
under the request's deadline, for the Proxmox version and kernel that only the node reports.
A node page reads the same answer, then that node's status, GET /nodes/{node}/storage and its RRD
statistics for the graphs (``app.metrics``: one rrddata call per consolidation, cached for the
frame's resolution), in parallel; no other page reads statistics.

An offline node answers nothing (Proxmox lists it with its status only, calls routed to it
answer 595): it is shown with the figures this process last saw of it, marked as such.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NamedTuple

from flask import current_app
from sqlalchemy import select

from app.clusters import cluster_state
from app.containers.inventory import tracker
from app.extensions import db
from app.metrics import DEFAULT_TIMEFRAME, NODE_CHARTS, Metrics, load_metrics
from app.models import Container, utcnow
from app.proxmox import (
    ClusterSnapshot,
    Node,
    NodeStatus,
    ProxmoxAPIError,
    ProxmoxError,
    Storage,
    get_proxmox,
)
from app.proxmox.deadline import settle

# Proxmox's node name format (pve-common ``pve-node``): anything else cannot be a node.
NODE_NAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$")


class NodeNotFound(LookupError):
    """Proxmox lists no node of that name."""


class Guest(NamedTuple):
    """A container or template on a node; ``stale`` when name and status are Proxboard's last record of it."""

    vmid: int
    name: str
    status: str  # Proxmox's status (``running``, ``stopped``, ``unknown`` on an offline node)
    template: bool
    stale: bool = False


@dataclass
class NodeView:
    """One node as the pages show it; figures are last known ones when ``stale``."""

    name: str
    status: str  # "online", "offline" or "unknown", as Proxmox lists it
    figures: Node  # CPU (fraction), memory and root disk (bytes), uptime (s), from /cluster/resources
    info: NodeStatus | None = None  # the node's own report (versions, load, swap)
    info_error: str | None = None  # why ``info`` is missing while the node is online
    storages: tuple[Storage, ...] = ()
    guests: tuple[Guest, ...] = ()  # containers and templates on the node, by VMID
    stale: bool = False
    seen_at: datetime | None = None  # when the shown figures were read (set when stale)
    offline_since: datetime | None = None
    error: str | None = None  # Proxmox itself did not answer

    @property
    def online(self) -> bool:
        """Whether Proxmox lists the node online (its figures are live)."""
        return self.status == "online"

    @property
    def containers(self) -> list[Guest]:
        """The node's containers, templates left out."""
        return [guest for guest in self.guests if not guest.template]

    @property
    def running(self) -> int:
        """How many of its containers run (meaningful while the node is online)."""
        return sum(1 for guest in self.containers if guest.status == "running")

    @property
    def templates(self) -> int:
        """How many templates the node holds."""
        return sum(1 for guest in self.guests if guest.template)

    @property
    def storage_used(self) -> int:
        """Bytes used on the node's active storages (shared ones included: the node uses them too)."""
        return sum(store.used for store in self.storages if store.active)

    @property
    def storage_total(self) -> int:
        """Bytes of the node's active storages."""
        return sum(store.total for store in self.storages if store.active)


@dataclass
class NodePage:
    """A node page: the node, and its graphs or why there are none."""

    node: NodeView
    metrics: Metrics | None = None
    metrics_error: str | None = None
    metrics_note: str | None = None  # said above graphs that are only history (an offline node's)


@dataclass
class NodesReport:
    """Every node, or the last known ones with ``error`` when Proxmox could not be asked."""

    nodes: list[NodeView] = field(default_factory=list)
    error: str | None = None

    @property
    def offline(self) -> list[NodeView]:
        """The nodes that are not online."""
        return [node for node in self.nodes if not node.online]


@dataclass(frozen=True)
class _Seen:
    """What one node showed, and when."""

    figures: Node
    info: NodeStatus | None
    storages: tuple[Storage, ...]
    at: datetime


class LastKnown:
    """The figures each node last showed, per process, for when it goes offline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, _Seen] = {}

    def remember(self, view: NodeView) -> None:
        """Keep an online node's figures (its info and storages only when it gave them)."""
        with self._lock:
            before = self._seen.get(view.name)
            self._seen[view.name] = _Seen(
                view.figures, view.info or (before.info if before else None),
                view.storages if any(store.active for store in view.storages) else (before.storages if before else ()),
                utcnow())

    def fill(self, view: NodeView) -> NodeView:
        """``view`` of a node that answers nothing, with the figures it showed last (if any)."""
        with self._lock:
            seen = self._seen.get(view.name)
        if seen is None:
            return replace(view, stale=True)
        return replace(view, figures=replace(seen.figures, status=view.status), info=view.info or seen.info,
                       storages=seen.storages or view.storages, stale=True, seen_at=seen.at)

    def names(self) -> list[str]:
        """Every node seen so far."""
        with self._lock:
            return sorted(self._seen)


def last_known() -> LastKnown:
    """The app's memory of node figures (one per process)."""
    return cluster_state("nodes_last_known", LastKnown)


def nodes_report() -> NodesReport:
    """Every node with its figures, versions, storages and guests: GET /cluster/resources (cached)
    and GET /nodes/{node}/status per online node, in parallel. Never raises for Proxmox errors:
    when Proxmox cannot be asked, the last known nodes come back with ``error``.
    """
    pve = get_proxmox()
    try:
        snapshot = pve.cluster_snapshot()
    except ProxmoxError as exc:
        memory = last_known()
        views = [memory.fill(NodeView(name, "unknown", Node(name, "unknown"), error=exc.message))
                 for name in memory.names()]
        return NodesReport(views, exc.message)
    views = _views(snapshot)
    online = [view for view in views if view.online]
    outcomes = settle(*(lambda name=view.name: pve.node_status(name) for view in online))
    for view, outcome in zip(online, outcomes):
        _take_status(view, outcome)
    return NodesReport([_settled(view) for view in views])


def node_page(name: str, timeframe: str = DEFAULT_TIMEFRAME, cf: str | None = None) -> NodePage:
    """One node with its own report, its storages as the node lists them and its graphs over ``timeframe``
    (``cf``: only ``AVERAGE`` or ``MAX``): GET /cluster/resources, then GET /nodes/{node}/status,
    GET /nodes/{node}/storage and GET /nodes/{node}/rrddata in parallel.

    When Proxmox cannot be asked, the node's last known figures come back with ``error`` (none
    when this process never saw it: then whether it exists is unknown, too).

    :raise NodeNotFound: Proxmox lists no such node (or the name cannot be one).
    """
    if not NODE_NAME.match(name):
        raise NodeNotFound(name)
    pve = get_proxmox()
    try:
        snapshot = pve.cluster_snapshot()
    except ProxmoxError as exc:
        view = last_known().fill(NodeView(name, "unknown", Node(name, "unknown"), error=exc.message))
        return NodePage(view, metrics_error=exc.message)
    view = next((view for view in _views(snapshot) if view.name == name), None)
    if view is None:
        raise NodeNotFound(name)
    view.guests = _with_records(view.guests)
    page = NodePage(view)
    if view.online:
        status, storages, metrics = settle(lambda: pve.node_status(name), lambda: pve.storages(name),
                                           lambda: load_metrics(pve, name, timeframe, cf=cf, specs=NODE_CHARTS))
        _take_status(view, status)
        for outcome in (storages, metrics):
            if isinstance(outcome, Exception) and not isinstance(outcome, ProxmoxError):
                raise outcome
            if _unreachable(outcome):
                _gone_offline(view)
        if not isinstance(storages, Exception):
            view.storages = storages
        if isinstance(metrics, Metrics):
            page.metrics = metrics
        elif not _unreachable(metrics):
            page.metrics_error = metrics.message
    if not view.online:
        # rrddata is answered by the node asked, from the cluster-wide RRD files (no proxyto): the history
        # up to the moment the node went down is still there.
        try:
            page.metrics = load_metrics(pve, name, timeframe, cf=cf, specs=NODE_CHARTS)
            page.metrics_note = f"Node {name} is offline: its graphs stop when it went down."
        except ProxmoxError as exc:
            page.metrics_error = f"Node {name} is offline, and its history cannot be read: {exc.message}"
    page.node = _settled(view)
    return page


def _views(snapshot: ClusterSnapshot) -> list[NodeView]:
    """Each node of one /cluster/resources answer with its storages and guests."""
    offline_since = tracker().nodes_seen(snapshot.offline_nodes)
    guests: dict[str, list[Guest]] = {}
    for brief in snapshot.briefs:
        guests.setdefault(brief.node, []).append(Guest(brief.vmid, brief.name, brief.status, brief.template))
    storages: dict[str, list[Storage]] = {}
    for store in snapshot.storages:
        storages.setdefault(store.node or "", []).append(store)
    return [NodeView(node.name, node.status, node, storages=tuple(storages.get(node.name, ())),
                     guests=tuple(sorted(guests.get(node.name, ()), key=lambda guest: guest.vmid)),
                     offline_since=offline_since.get(node.name))
            for node in snapshot.nodes]


def _with_records(guests: tuple[Guest, ...]) -> tuple[Guest, ...]:
    """Guests named as the dashboard names them (Proxboard's hostname first); a guest Proxmox lists without
    figures (its node is offline) gets its name and status from its record's last known state. One query."""
    records = {row.vmid: row for row in db.session.execute(
        select(Container.vmid, Container.hostname, Container.snapshot)
        .where(Container.in_cluster(), Container.vmid.in_([guest.vmid for guest in guests]),
               Container.lifecycle != "deleted"))}
    named = []
    for guest in guests:
        row = records.get(guest.vmid)
        snap = (row.snapshot or {}) if row is not None else {}
        name = (row.hostname if row is not None else None) or guest.name or snap.get("name") or f"CT {guest.vmid}"
        if guest.status == "unknown" and snap.get("status"):
            guest = guest._replace(status=snap["status"], template=snap.get("template", guest.template), stale=True)
        named.append(guest._replace(name=name))
    return tuple(named)


def _take_status(view: NodeView, outcome: NodeStatus | Exception) -> None:
    """Attach a node's own report, or why there is none (a node gone offline since the list)."""
    if isinstance(outcome, NodeStatus):
        view.info = outcome
    elif _unreachable(outcome):
        _gone_offline(view)
    elif isinstance(outcome, ProxmoxError):
        view.info_error = outcome.message
    else:
        raise outcome


def _gone_offline(view: NodeView) -> None:
    """Mark a node offline that Proxmox listed online but that no longer answers (595)."""
    view.status = "offline"
    view.offline_since = tracker().node_offline(view.name)


def _settled(view: NodeView) -> NodeView:
    """Remember an online node's figures; give an offline one its last known figures."""
    if view.online:
        last_known().remember(view)
        return view
    return last_known().fill(view)


def _unreachable(outcome: object) -> bool:
    """Whether a call failed because its node is down (Proxmox's 595)."""
    return isinstance(outcome, ProxmoxAPIError) and outcome.node_unreachable

