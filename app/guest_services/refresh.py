"""Refreshing the Service and Credential rows of containers from what discovery finds."""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app

from app.credentials import store_service_credentials
from app.events import record_event
from app.extensions import db
from app.models import Container, Event, Operation, Service
from app.models.types import utcnow
from app.proxmox import ProxmoxClient, ProxmoxError, get_proxmox, guest_networks, needs_interfaces, primary_address
from app.ssh import SSHError, SSHPool, open_pool

from .discovery import DeclaredService, Discovery, DiscoveryOutput, build_services, run_discovery

log = logging.getLogger("app.guest_services")

ACTION = "refresh-services"
GONE_MESSAGE = "not running or no longer installed at the last check"
UNSEEN_MESSAGE = "not seen at the last check (service states could not be checked)"
GAPS_EVENT = "Service check"


class UnknownContainer(LookupError):
    """Proxboard has no container with that id."""


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """The outcome of refreshing one container."""

    container_id: int
    vmid: int
    node: str
    ok: bool
    services: int = 0
    error: str | None = None
    seconds: float = 0.0


def declared_services(container: Container) -> list[DeclaredService]:
    """The services the container's template declares (empty without a template)."""
    if container.template is None:
        return []
    return [
        DeclaredService(name=item.name, unit=item.unit, port=item.port, scheme=item.scheme, web_path=item.web_path)
        for item in container.template.services
    ]


def container_ip(proxmox: ProxmoxClient, node: str, vmid: int, known_ip: str | None = None) -> str | None:
    """The address to reach the container at: its first IPv4 (static, else the DHCP lease), else its first
    IPv6 (static, else DHCPv6/SLAAC from /interfaces), else ``known_ip``."""
    try:
        config = proxmox.container_config(node, vmid)
        interfaces = proxmox.container_interfaces(node, vmid) if needs_interfaces(config) else ()
        return primary_address(guest_networks(config, interfaces)) or known_ip
    except ProxmoxError as exc:
        log.warning("no IP for CT %s from Proxmox: %s", vmid, exc)
    return known_ip


def apply_discovery(container: Container, discovery: Discovery, now: datetime) -> None:
    """Upsert Service rows by (container, name) and their credentials; mark vanished ones stopped.

    When the output was cut short, services missing from it are left as they were.
    """
    rows = {service.name: service for service in container.services}
    for found in discovery.services:
        row = rows.pop(found.name, None)
        if row is None:
            row = Service(container_id=container.id, name=found.name)
            container.services.append(row)
        row.unit = found.unit
        row.kind = found.kind
        row.status = found.status
        row.port = found.port
        row.protocol = found.protocol
        row.web_url = found.web_url
        row.last_error = found.last_error
        row.checked_at = now
        store_service_credentials(row, found.credentials)
    if not discovery.complete:
        return
    if not discovery.states_checked:  # no init system: absent from the output is not proof of stopped
        for row in rows.values():
            row.status, row.web_url, row.last_error, row.checked_at = "unknown", None, UNSEEN_MESSAGE, now
        return
    for row in rows.values():
        row.status = "stopped"
        row.web_url = None
        row.last_error = GONE_MESSAGE
        row.checked_at = now
        store_service_credentials(row, None)


def record_gaps(container: Container, gaps: list[dict[str, str]], now: datetime) -> None:
    """Keep what the last check could not verify where the Services tab reads it (no commit).

    ``gaps`` are ``{"key", "what", "why"}`` dicts (parse.Gap.as_dict). They go into the params of
    the container's latest "refresh-services" Operation (``params["gaps"]``, ``params["gaps_at"]``),
    whichever check ran (a periodic one updates the last requested refresh), and an Event is
    recorded when they change, so the timeline says when a guest lost or gained a tool.
    """
    operation = db.session.scalar(
        db.select(Operation).where(Operation.container_id == container.id, Operation.action == ACTION)
        .order_by(Operation.started_at.desc(), Operation.id.desc()).limit(1))
    if operation is not None:
        operation.params = {**(operation.params or {}), "gaps": gaps, "gaps_at": now.isoformat()}
    last = db.session.scalar(
        db.select(Event).where(Event.container_id == container.id, Event.type == "log",
                               Event.message.startswith(GAPS_EVENT))
        .order_by(Event.created_at.desc(), Event.id.desc()).limit(1))
    before = (last.meta or {}).get("gaps", []) if last is not None else []
    if gaps == before:
        return
    if gaps:
        listed = "; ".join(f"{gap['what']} ({gap['why']})" for gap in gaps)
        record_event(container.id, "log", f"{GAPS_EVENT}: could not check {listed}", {"gaps": gaps})
    else:
        record_event(container.id, "log", f"{GAPS_EVENT}: everything could be checked again", {"gaps": []})


def mark_all(container: Container, status: str | None, error: str, now: datetime) -> None:
    """Record ``error`` on every service of ``container`` (and ``status`` when given)."""
    for service in container.services:
        if status is not None:
            service.status = status
        service.last_error = error
        service.checked_at = now


@dataclass
class _Gathered:
    """What one container's check found, before anything is written."""

    output: DiscoveryOutput | None = None
    error: SSHError | None = None
    ip: str | None = None


def _gather(vmid: int, node: str, known_ip: str | None, pool: SSHPool, proxmox: ProxmoxClient,
            timeout: float | None) -> _Gathered:
    """SSH discovery and the IP lookup for one container: no database access, so it may run in a thread."""
    try:
        output = run_discovery(pool.node(node), vmid, timeout=timeout)
    except SSHError as exc:
        log.warning("service check failed node=%s vmid=%s: %s", node, vmid, exc)
        return _Gathered(error=exc)
    return _Gathered(output=output, ip=container_ip(proxmox, node, vmid, known_ip))


def _store(container: Container, node: str, gathered: _Gathered, declared: list[DeclaredService],
           started: float) -> RefreshResult:
    now = utcnow()
    if gathered.error is not None:
        mark_all(container, "unknown", f"could not check: {gathered.error}", now)
        db.session.commit()
        return RefreshResult(container.id, container.vmid, node, False, error=str(gathered.error),
                             seconds=time.monotonic() - started)
    discovery = build_services(gathered.output, declared, gathered.ip)
    apply_discovery(container, discovery, now)
    record_gaps(container, [gap.as_dict() for gap in discovery.gaps], now)
    db.session.commit()
    return RefreshResult(container.id, container.vmid, node, True, len(discovery.services),
                         seconds=time.monotonic() - started)


def refresh_container(
    container: Container, pool: SSHPool, proxmox: ProxmoxClient, *, node: str | None = None,
    running: bool | None = None,
) -> RefreshResult:
    """Discover ``container``'s services over ``pool`` and store them (commits).

    ``running`` skips asking Proxmox when the caller already knows; a stopped container's
    services are all marked stopped without any SSH.
    """
    started = time.monotonic()
    node = node or container.node
    try:
        if running is None:
            running = proxmox.container_status(node, container.vmid).is_running
    except ProxmoxError as exc:
        log.warning("cannot read status of CT %s from Proxmox (%s); trying SSH anyway", container.vmid, exc)
        running = True
    if not running:
        mark_all(container, "stopped", "the container is not running", utcnow())
        db.session.commit()
        return RefreshResult(container.id, container.vmid, node, True, len(container.services),
                             seconds=time.monotonic() - started)
    gathered = _gather(container.vmid, node, container.ip, pool, proxmox, _check_timeout())
    return _store(container, node, gathered, declared_services(container), started)


def refresh_node_batch(containers: list[Container], node: str, pool: SSHPool,
                       proxmox: ProxmoxClient) -> list[RefreshResult]:
    """Check running containers of one node over its one connection, several at a time.

    The checks wait on SSH and Proxmox, so they run in threads (each on its own SSH channel);
    the results are written here, on the caller's database session.
    """
    started = time.monotonic()
    declared = [declared_services(container) for container in containers]  # lazy loads stay on this thread
    workers = max(1, int(current_app.config.get("SERVICE_CHECK_CONCURRENCY") or 1))
    timeout = _check_timeout()
    with ThreadPoolExecutor(max_workers=min(workers, len(containers) or 1)) as executor:
        futures = [executor.submit(_gather, ct.vmid, node, ct.ip, pool, proxmox, timeout) for ct in containers]
        return [_store(ct, node, future.result(), declared[i], started)
                for i, (ct, future) in enumerate(zip(containers, futures))]


def _check_timeout() -> float | None:
    return current_app.config.get("SERVICE_CHECK_TIMEOUT")


def refresh_container_services(
    container_id: int, *, pool: SSHPool | None = None, proxmox: ProxmoxClient | None = None
) -> RefreshResult:
    """Refresh one container's services (opens its own SSH pool unless given one).

    Raises UnknownContainer when there is no container ``container_id``.
    """
    container = db.session.get(Container, container_id)
    if container is None:
        raise UnknownContainer(f"There is no container {container_id}.")
    proxmox = proxmox or get_proxmox()
    if pool is not None:
        return refresh_container(container, pool, proxmox)
    with open_pool() as own_pool:
        return refresh_container(container, own_pool, proxmox)


def due_for_check(container: Container, now: datetime, interval: float) -> bool:
    """True when the container's services were never checked or not within ``interval`` seconds."""
    checked = [service.checked_at for service in container.services if service.checked_at]
    return not checked or max(checked) <= now - timedelta(seconds=interval * 0.9)


def refresh_running_containers(
    *, pool: SSHPool | None = None, proxmox: ProxmoxClient | None = None, due_only: bool = False
) -> list[RefreshResult]:
    """Refresh every running container Proxboard knows, node by node over one connection each.

    With ``due_only``, containers checked within SERVICE_CHECK_SECONDS are skipped.
    """
    proxmox = proxmox or get_proxmox()
    running = {summary.vmid: summary.node for summary in proxmox.list_containers() if summary.is_running}
    interval = float(current_app.config.get("SERVICE_CHECK_SECONDS") or 300)
    now = utcnow()
    by_node: dict[str, list[Container]] = defaultdict(list)
    query = db.select(Container).where(Container.in_cluster(), Container.lifecycle == "ready").order_by(Container.vmid)
    for container in db.session.scalars(query):
        if container.vmid in running and (not due_only or due_for_check(container, now, interval)):
            by_node[running[container.vmid]].append(container)
    results: list[RefreshResult] = []
    own_pool = pool is None
    pool = pool or open_pool()
    try:
        for node, containers in sorted(by_node.items()):
            results.extend(refresh_node_batch(containers, node, pool, proxmox))
    finally:
        if own_pool:
            pool.close()
    return results
