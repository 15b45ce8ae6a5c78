"""What ``/metrics`` and the widget report: Proxboard's records, read with a few aggregate queries.

Nothing here calls Proxmox. Container statuses are the ones the inventory last recorded from
``GET /cluster/resources`` (each container's stored snapshot, written by the dashboard at most every
``SNAPSHOT_SECONDS`` and by every alert pass), turned into the dashboard's words by the inventory's own
``display_status``; ``recorded_at`` says how old that answer is. Every process reads the same database,
so several gunicorn workers report the same numbers.

Queries per call: ``container_counts`` 1, ``service_counts`` 1, ``operation_stats`` 1,
``incident_counts`` 1; ``queue_length`` asks the job queue's storage (SQLite file or Redis).
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, func, literal, select

from app.containers.inventory import FAILING, display_status, status_group
from app.extensions import db
from app.guest_services import STATUS_COLOURS, status_colour
from app.jobs import huey
from app.models import (
    ALERT_KINDS,
    AlertIncident,
    AlertRule,
    Cluster,
    Container,
    Operation,
    Service,
)

log = logging.getLogger("app.observability")

# Seconds; a lifecycle action takes seconds, a provisioning run minutes.
OPERATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
FINISHED = ("succeeded", "failed")
# What ``display_status`` can answer: each node reports every one (0 included), so a sum over them never goes
# missing when the last container of a status changes.
CONTAINER_STATUSES = ("running", "stopped", "paused", "locked", "template", "creating", "error", "gone", "unknown")


@dataclass
class ContainerCounts:
    """Containers by (cluster, node, dashboard status), and the newest recorded Proxmox answer (None: never
    recorded)."""

    by_node_status: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    recorded_at: datetime | None = None

    def groups(self) -> dict[str, int]:
        """The dashboard's summary: ``all``, ``running``, ``stopped``, ``other`` and ``failing``
        (as ``Inventory.counts`` gives them)."""
        counts = dict.fromkeys(("all", "running", "stopped", "other", "failing"), 0)
        for (_, _, status), number in self.by_node_status.items():
            counts["all"] += number
            counts[status_group(status)] += number
            counts["failing"] += number if status in FAILING else 0
        return counts


def _snapshot_text(key: str):
    return Container.snapshot[key].as_string()


def container_counts() -> ContainerCounts:
    """Every container Proxboard shows (records not archived), counted by cluster, node and dashboard status
    (``CONTAINER_STATUSES``, each node every one, 0 included): two clusters may both have a node ``pve1``. One
    grouped query."""
    # One object per expression, used in SELECT and GROUP BY alike: PostgreSQL matches them by their text.
    keys = (Cluster.name, Container.node, Container.lifecycle, _snapshot_text("status"),
            _snapshot_text("lock").is_not(None), Container.snapshot["template"].as_boolean())
    rows = db.session.execute(
        select(*keys, func.count(), func.max(Container.snapshot_at))
        .join(Cluster, Cluster.id == Container.cluster_id)
        .where(Container.lifecycle != "deleted").group_by(*keys)
    ).all()
    counts = ContainerCounts()
    for cluster, node in {(row[0], row[1]) for row in rows}:
        counts.by_node_status.update(dict.fromkeys(((cluster, node, status) for status in CONTAINER_STATUSES), 0))
    for cluster, node, lifecycle, status, locked, is_template, number, recorded in rows:
        shown = display_status(status or "unknown", "lock" if locked else None, lifecycle, bool(is_template))
        counts.by_node_status[(cluster, node, shown)] += number
        if recorded is not None and (counts.recorded_at is None or recorded > counts.recorded_at):
            counts.recorded_at = recorded
    return counts


def service_counts() -> Counter[str]:
    """Application services by the status the pages show: their last check while their container runs,
    ``unknown`` while it does not (``inventory.ServiceNow``); every status word, 0 included. One grouped query."""
    running = case(((Container.lifecycle == "ready") & (_snapshot_text("status") == "running"), literal(True)),
                   else_=literal(False))
    rows = db.session.execute(
        select(Service.status, running, func.count())
        .join(Container, Container.id == Service.container_id)
        .where(Service.kind == "application", Container.lifecycle != "deleted")
        .group_by(Service.status, running)
    ).all()
    counts: Counter[str] = Counter(dict.fromkeys(STATUS_COLOURS, 0))
    for status, container_running, number in rows:
        counts[status if container_running else "unknown"] += number
    return counts


def failing_services(counts: Counter[str]) -> int:
    """How many of ``counts`` show red on the pages (failed or stopped while their container runs)."""
    return sum(number for status, number in counts.items() if status_colour(status) == "red")


@dataclass
class OperationStats:
    """Operations of one ``action`` in one ``state``; for finished ones their durations in seconds:
    ``buckets`` holds how many took at most each of ``OPERATION_BUCKETS`` (cumulative), ``total`` their sum."""

    action: str
    state: str
    count: int
    total: float = 0.0
    buckets: tuple[int, ...] = ()


def _seconds_between(start, end):
    """``end - start`` in seconds, in the database's own arithmetic (SQLite has no interval type)."""
    if db.session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return func.extract("epoch", end - start)


def operation_stats() -> list[OperationStats]:
    """Every Operation (lifecycle actions, provisioning, services refreshes, backups…) counted by action and
    state, with the duration histogram of the finished ones. One grouped query."""
    finished = Operation.state.in_(FINISHED) & Operation.finished_at.is_not(None)
    seconds = _seconds_between(Operation.started_at, Operation.finished_at)
    rows = db.session.execute(
        select(Operation.action, Operation.state, func.count(),
               func.sum(case((finished, seconds), else_=0.0)),
               *(func.sum(case((finished & (seconds <= bound), 1), else_=0)) for bound in OPERATION_BUCKETS))
        .group_by(Operation.action, Operation.state)
        .order_by(Operation.action, Operation.state)
    ).all()
    return [OperationStats(action, state, count, max(float(total or 0.0), 0.0),
                           tuple(int(n or 0) for n in buckets) if state in FINISHED else ())
            for action, state, count, total, *buckets in rows]


def incident_counts() -> Counter[tuple[str, str]]:
    """Alert incidents not resolved yet, by (rule kind, state ``pending`` or ``open``), every kind and state 0
    included. One grouped query."""
    rows = db.session.execute(
        select(AlertRule.kind, AlertIncident.state, func.count())
        .join(AlertRule, AlertRule.id == AlertIncident.rule_id)
        .where(AlertIncident.state != "resolved")
        .group_by(AlertRule.kind, AlertIncident.state)
    ).all()
    counts: Counter[tuple[str, str]] = Counter({(kind, state): 0 for kind in ALERT_KINDS
                                                for state in ("pending", "open")})
    counts.update({(kind, state): number for kind, state, number in rows})
    return counts


def queue_length() -> int | None:
    """Jobs waiting in the queue for a worker (provisioning, services refreshes, bulk actions…); None when
    the queue's storage cannot be read (logged). Always 0 when jobs run inline (``JOBS_IMMEDIATE``)."""
    if huey.immediate:
        return 0
    try:
        return int(huey.pending_count())
    except Exception as exc:  # noqa: BLE001 - a queue away must not fail the scrape; the metric is left out
        log.warning("cannot read the job queue's length: %s: %s", type(exc).__name__, exc)
        return None


def summary() -> dict[str, int | str | None]:
    """The widget's flat JSON: the dashboard's container counts, services and open alerts.

    Keys: ``containers``, ``running``, ``stopped``, ``other``, ``failing`` (containers in error, gone or
    unknown), ``services``, ``services_failing``, ``alerts`` (open incidents), ``recorded_at`` (ISO 8601
    UTC time of the Proxmox answer the counts come from, None before the first).
    """
    containers = container_counts()
    groups = containers.groups()
    services = service_counts()
    incidents = incident_counts()
    return {
        "containers": groups["all"], "running": groups["running"], "stopped": groups["stopped"],
        "other": groups["other"], "failing": groups["failing"],
        "services": sum(services.values()), "services_failing": failing_services(services),
        "alerts": sum(number for (_, state), number in incidents.items() if state == "open"),
        "recorded_at": containers.recorded_at.isoformat() if containers.recorded_at else None,
    }
