"""A container's page: a header with every lifecycle action, and its Overview, Metrics, Config, Services, Snapshots,
Backups and Events tabs (the Metrics, Config, Snapshots and Backups tabs live in ``metrics.py``, ``config.py``,
``snapshots.py`` and ``backups.py``).

Each tab has its own URL and works as a plain page; htmx asks for ``#ct-live`` (header and
tab) when switching tabs or auto-refreshing, and for ``#ct-tab`` (the tab alone) when a
services refresh ends. A render costs one status and one config call to Proxmox (plus the
interfaces call for running DHCP containers) and a constant number of queries. The config and
interfaces calls start beside the status call (``_start_reads``), so a slow Proxmox costs one
answer time, not three, and all of them share the request's deadline.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from flask import abort, current_app, flash, g, make_response, redirect, render_template, url_for
from sqlalchemy import func, select
from werkzeug.exceptions import ServiceUnavailable

from app.containers import inventory
from app.containers.forms import EventsQuery
from app.containers.inventory import ContainerView
from app.containers.metrics import metrics_context
from app.containers.services import ACTIONS, shutdown_timed_out
from app.containers import bp
from app.credentials import reveal_service_credentials
from app.extensions import db
from app.metrics import MetricsQuery
from app.htmx import is_htmx, target as hx_target, trigger_toast, varies
from app.models import EVENT_TYPES, Container, Credential, Event, Operation, Service
from app.pagination import Page, bounds
from app.proxmox import (
    ContainerConfig,
    GuestNetwork,
    ProxmoxError,
    get_proxmox,
    guest_networks,
    needs_interfaces,
    primary_address,
)
from app.proxmox.deadline import submit
from app.guest_services import ACTION as REFRESH_ACTION
from app.guest_services import RefreshRefused, request_refresh

log = logging.getLogger(__name__)

TABS = {"overview": ("Overview", "bi-info-circle"), "metrics": ("Metrics", "bi-graph-up"),
        "config": ("Config", "bi-sliders"), "disks": ("Disks", "bi-device-hdd"),
        "services": ("Services", "bi-hdd-stack"), "snapshots": ("Snapshots", "bi-camera"),
        "backups": ("Backups", "bi-archive"), "events": ("Events", "bi-clock-history")}
# What the tabs other modules of this package own show (``config``, ``snapshots``…): tab -> context of a view.
TAB_CONTEXTS: dict[str, Callable[[ContainerView], dict]] = {"metrics": metrics_context}
# The creation wizard's progress view; until it exists, a container being created shows its events.
PROGRESS_ENDPOINT = "containers.progress"
EVENTS_PER_PAGE = 50
EVENT_FILTERS = ("all", *EVENT_TYPES)


@dataclass
class LiveConfig:
    """What the config (and, for DHCP or SLAAC, the interfaces) call says; ``config`` None when unknown."""

    config: ContainerConfig | None = None
    networks: list[GuestNetwork] = field(default_factory=list)
    error: str | None = None

    @property
    def ip(self) -> str | None:
        """The address to reach the container at (first IPv4, else first IPv6), without its prefix length."""
        return primary_address(self.networks)


def live_config(view: ContainerView) -> LiveConfig:
    """The container's config and addresses; empty while Proxmox (or the guest's node) cannot be reached."""
    if view.lifecycle == "gone":
        return LiveConfig(error="Proxmox no longer has this container.")
    if view.stale:
        return LiveConfig(error=view.stale_reason or "Proxmox cannot be reached.")
    pve = get_proxmox()
    config_read, interfaces_read = _started("config", view), _started("interfaces", view)
    try:
        config = config_read.result() if config_read else pve.container_config(view.node, view.vmid)
    except ProxmoxError as exc:
        log.warning("config of CT %s on %s unavailable: %s", view.vmid, view.node, exc.message)
        return LiveConfig(error=exc.message)
    interfaces = ()
    if view.pve_status == "running" and needs_interfaces(config):
        try:
            interfaces = (interfaces_read.result() if interfaces_read
                          else pve.container_interfaces(view.node, view.vmid))
        except ProxmoxError as exc:
            log.info("interfaces of CT %s on %s unavailable: %s", view.vmid, view.node, exc.message)
    return LiveConfig(config=config, networks=guest_networks(config, interfaces))


def page_config(view: ContainerView) -> ContainerConfig:
    """The container's config from the read this request started beside its status call (one call per render
    whoever asks), or a new read. Raises ProxmoxError."""
    read = _started("config", view)
    return read.result() if read else get_proxmox().container_config(view.node, view.vmid)


def _start_reads(node: str, record: Container) -> None:
    """Start the config call, and the interfaces call for a guest last seen running, beside the status call."""
    pve = get_proxmox()
    reads = {"config": submit(pve.container_config, node, record.vmid)}
    if (record.snapshot or {}).get("status") == "running":
        reads["interfaces"] = submit(pve.container_interfaces, node, record.vmid)
    g._ct_reads = (node, record.vmid, reads)


def _started(kind: str, view: ContainerView) -> Future | None:
    """The ``kind`` read ``_start_reads`` began for this view's guest on its node, if any."""
    node, vmid, reads = g.get("_ct_reads") or (None, None, {})
    return reads.get(kind) if (node, vmid) == (view.node, view.vmid) else None


def record_of(view: ContainerView) -> Container | None:
    """Proxboard's record of the container (already in the session after ``load_one``)."""
    return db.session.get(Container, view.record_id) if view.record_id is not None else None


def latest_action(view: ContainerView) -> Operation | None:
    """The most recent lifecycle operation of the container."""
    if view.record_id is None:
        return None
    return db.session.scalar(
        select(Operation).where(Operation.container_id == view.record_id, Operation.action.in_(ACTIONS))
        .order_by(Operation.started_at.desc(), Operation.id.desc()).limit(1))


def creation_failure(record: Container | None) -> str | None:
    """Why the creation of ``record`` failed (its latest error event), or None when it did not fail."""
    if record is None or record.lifecycle != "error":
        return None
    message = db.session.scalar(select(Event.message).where(Event.container_id == record.id, Event.type == "error")
                                .order_by(Event.created_at.desc(), Event.id.desc()).limit(1))
    return message or "The creation failed."


def header_context(view: ContainerView, live: LiveConfig | None = None) -> dict:
    """Everything ``containers/_header.html`` shows."""
    live = live if live is not None else live_config(view)
    record = record_of(view)
    last = latest_action(view)
    return {
        "ct": view, "reachable": not view.stale, "live": live, "record": record,
        "failure": creation_failure(record),
        "progress_url": url_for(PROGRESS_ENDPOINT, vmid=view.vmid) if PROGRESS_ENDPOINT in current_app.view_functions else None,
        "ip": live.ip or (record.ip if record is not None else None),
        "timed_out": last if shutdown_timed_out(last) and view.pve_status == "running" and not view.pending else None,
        "next_url": url_for("containers.detail", vmid=view.vmid),
    }


def services_context(view: ContainerView) -> dict:
    """Application services first, system services apart, which have credentials, and the refresh state.

    While the container is not running every service's status is ``unknown`` (``inventory.ServiceNow``).
    """
    if view.record_id is None:
        return {"applications": [], "system": [], "with_credentials": set(), "refresh": None}
    services = inventory.services_now(db.session.scalars(
        select(Service).where(Service.container_id == view.record_id).order_by(Service.name)).all(),
        view.pve_status == "running")
    with_credentials = set(db.session.scalars(
        select(Credential.service_id).where(Credential.container_id == view.record_id,
                                            Credential.service_id.is_not(None)).distinct()))
    refresh = db.session.scalar(
        select(Operation).where(Operation.container_id == view.record_id, Operation.action == REFRESH_ACTION)
        .order_by(Operation.started_at.desc(), Operation.id.desc()).limit(1))
    return {
        "applications": [s for s in services if s.kind == "application"],
        "system": [s for s in services if s.kind != "application"],
        "with_credentials": with_credentials, "refresh": refresh,
    }


@dataclass
class EventPage(Page[Event]):
    """One page of a filtered timeline, with the count of each type for the filters, and who asked for what
    each event reports (``requested_by``: event id to user name, from its Operation)."""

    counts: dict[str, int]
    requested_by: dict[int, str] = field(default_factory=dict)


def _requesters(record_id: int, events: list[Event]) -> dict[int, str]:
    """Event id to the user who requested the Operation it belongs to (by its ``upid`` or ``operation_id``
    in the metadata, or a ``requested_by`` it names itself): one query for the page."""
    found: dict[int, str] = {}
    upids, operation_ids = {}, {}
    for event in events:
        meta = event.meta or {}
        if isinstance(meta.get("requested_by"), str):
            found[event.id] = meta["requested_by"]
        elif isinstance(meta.get("upid"), str):
            upids[event.id] = meta["upid"]
        elif isinstance(meta.get("operation_id"), int):
            operation_ids[event.id] = meta["operation_id"]
    if upids or operation_ids:
        rows = db.session.execute(select(Operation.id, Operation.upid, Operation.requested_by).where(
            Operation.container_id == record_id, Operation.requested_by.is_not(None),
            Operation.upid.in_(set(upids.values())) | Operation.id.in_(set(operation_ids.values())))).all()
        by_upid = {upid: who for _id, upid, who in rows if upid}
        by_id = {id_: who for id_, _upid, who in rows}
        found.update({event_id: by_upid[upid] for event_id, upid in upids.items() if upid in by_upid})
        found.update({event_id: by_id[op] for event_id, op in operation_ids.items() if op in by_id})
    return found


def events_page(view: ContainerView, kind: str, number: int, per_page: int = EVENTS_PER_PAGE) -> EventPage:
    """Newest first, ``per_page`` at a time, with the count per type for the filters."""
    counts = dict.fromkeys(EVENT_FILTERS, 0)
    if view.record_id is None:
        return EventPage([], 1, 1, counts)
    for type_, count in db.session.execute(
            select(Event.type, func.count()).where(Event.container_id == view.record_id).group_by(Event.type)):
        counts[type_] = count
    counts["all"] = sum(counts[t] for t in EVENT_TYPES)
    number, pages, offset = bounds(counts[kind], number, per_page)
    query = select(Event).where(Event.container_id == view.record_id)
    if kind != "all":
        query = query.where(Event.type == kind)
    items = db.session.scalars(query.order_by(Event.created_at.desc(), Event.id.desc())
                               .limit(per_page).offset(offset)).all()
    return EventPage(list(items), number, pages, counts, _requesters(view.record_id, list(items)))


def _progress_url(vmid: int) -> str:
    if PROGRESS_ENDPOINT in current_app.view_functions:
        return url_for(PROGRESS_ENDPOINT, vmid=vmid)
    return url_for("containers.detail_tab", vmid=vmid, tab="events")


def find_view(vmid: int) -> ContainerView | None:
    """The container's view as its page shows it (``inventory.load_one``, with the config and interfaces reads
    started beside the status call), also while it is being created and not in Proxmox yet; None when neither
    Proxmox nor Proxboard knows it. Raises ProxmoxError when Proxmox is down and there is no last-known state."""
    view = inventory.load_one(vmid, on_node=_start_reads)
    if view is None:
        record = Container.current(vmid)
        if record is None or record.lifecycle not in ("creating", "error"):
            return None
        # Being created (or failed to be) and not in Proxmox yet: its events still tell the story.
        view = ContainerView(vmid=vmid, node=record.node, name=record.display_name(), pve_status="unknown",
                             status=record.lifecycle, managed=record.managed, lifecycle=record.lifecycle,
                             record_id=record.id)
    return view


def _load(vmid: int) -> ContainerView:
    """The container's view, or the 404 page when neither Proxmox nor Proxboard knows it."""
    try:
        view = find_view(vmid)
    except ProxmoxError as exc:  # Proxmox is down and Proxboard has never seen this CT
        error = ServiceUnavailable(f"Proxmox cannot be reached ({exc.message}) and CT {vmid} has no last-known state.")
        abort(make_response(render_template("errors/error.html", error=error, code=503), 503))
    if view is None:
        abort(404, description=f"There is no container {vmid}.")
    return view


def _tab_context(view: ContainerView, tab: str) -> dict:
    if tab in TAB_CONTEXTS:
        return TAB_CONTEXTS[tab](view)
    if tab == "services":
        return services_context(view)
    if tab == "events":
        query = EventsQuery()
        kind = query.type.data if query.type.data in EVENT_FILTERS else "all"
        return {"kind": kind, "page": events_page(view, kind, query.page_number)}
    return {}


def _tab_url(vmid: int, tab: str) -> str:
    """The URL of ``tab`` with the current filter and page, for the auto-refresh."""
    args = EventsQuery().given("type", "page") if tab == "events" else {}
    if tab == "metrics":
        args = MetricsQuery().args()
    return url_for("containers.detail_tab", vmid=vmid, tab=tab, **args)


def render_detail(view: ContainerView, tab: str, status: int = 200, **extra):
    """The page, ``#ct-live`` or ``#ct-tab``, depending on who asks."""
    target = hx_target()
    context = {"tab": tab, "tabs": TABS, "refresh_url": _tab_url(view.vmid, tab), **_tab_context(view, tab), **extra}
    if target == "ct-tab":
        template = f"containers/_tab_{tab}.html"
        context.update(ct=view, record=record_of(view), live=live_config(view) if tab == "overview" else None,
                       reachable=not view.stale)
    else:
        template = "containers/_live.html" if target else "containers/detail.html"
        context.update(header_context(view))
        if view.stale and not view.stale_reason:
            tracker = inventory.tracker()
            context.update(unreachable_reason=tracker.reason or "connection failed", unreachable_since=tracker.since)
    response = varies(make_response(render_template(template, **context), status))
    response.vary.add("HX-Target")
    return response


@bp.get("/<int:vmid>")
def detail(vmid: int):
    """A container's page (its Overview tab)."""
    return detail_tab(vmid, "overview")


@bp.get("/<int:vmid>/<any(overview, config, disks, services, snapshots, backups, events, metrics):tab>")
def detail_tab(vmid: int, tab: str):
    """A container's page on one of its tabs."""
    view = _load(vmid)
    if view.lifecycle == "creating" and (tab != "events" or PROGRESS_ENDPOINT in current_app.view_functions):
        return redirect(_progress_url(vmid))
    return render_detail(view, tab)


@bp.post("/<int:vmid>/services/refresh")
def refresh_services(vmid: int):
    """Queue the SSH check of the container's services; the tab then polls its operation."""
    view = _load(vmid)
    htmx = is_htmx()
    toast = None
    if view.record_id is None:
        toast = ("Proxboard has no record of this container yet; reload the page and try again.", "warning")
    else:
        try:
            request_refresh(view.record_id, g.user.username)
        except RefreshRefused as exc:
            toast = (str(exc), "warning")
    if not htmx:
        if toast:
            flash(*toast)
        return redirect(url_for("containers.detail_tab", vmid=vmid, tab="services"))
    response = render_detail(view, "services")
    if toast:
        trigger_toast(response, *toast)
    return response


@bp.get("/<int:vmid>/services/refresh/<int:operation_id>")
def refresh_services_status(vmid: int, operation_id: int):
    """Polled while services are checked: 204 until the operation ends, then the updated tab."""
    operation = db.session.get(Operation, operation_id)
    if operation is None or operation.action != REFRESH_ACTION or operation.container.vmid != vmid:
        abort(404)
    if operation.pending:
        return "", 204
    response = render_detail(_load(vmid), "services")
    if operation.state == "succeeded":
        return trigger_toast(response, f"Services of CT {vmid} checked.", "success")
    return trigger_toast(response, f"Checking the services of CT {vmid} failed: {operation.error}", "danger")


@bp.post("/<int:vmid>/services/<int:service_id>/credentials")
def reveal_credentials(vmid: int, service_id: int):
    """Show a service's credentials (a POST, recorded as an event, never cached)."""
    service = db.session.scalar(
        select(Service).join(Container).where(Service.id == service_id, Container.in_cluster(), Container.vmid == vmid))
    if service is None:
        abort(404)
    credentials = reveal_service_credentials(service.id, g.user.username)
    if is_htmx():
        response = varies(make_response(render_template(
            "containers/_credentials.html", vmid=vmid, service=service, credentials=credentials)))
    else:
        response = render_detail(_load(vmid), "services", revealed={service.id: credentials})
    response.headers["Cache-Control"] = "no-store"
    return response
