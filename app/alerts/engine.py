"""The evaluation pass: every enabled rule against what Proxboard already knows, once per interval.

``gather_facts`` is the only step that may reach Proxmox (one ``cluster_snapshot`` through the
inventory, which also stores each container's snapshot; the backup index from its own cache).
``evaluate`` then reads the database only: containers' stored snapshots, service health rows,
Operations and credentials, each loaded at most once per pass whatever the number of rules.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.clusters import UnknownCluster, clusters, use_cluster
from app.containers.inventory import load_inventory, tracker
from app.credentials.vault import decrypt
from app.extensions import db
from app.models import (
    DEFAULT_CLUSTER,
    AlertChannel,
    AlertDelivery,
    AlertIncident,
    AlertMute,
    AlertObservation,
    AlertRule,
    Cluster,
    Container,
    Credential,
    MaintenanceWindow,
    Operation,
    Service,
    qualified,
    utcnow,
)
from app.proxmox import BackupIndex, ProxmoxError, get_proxmox

from . import delivery

log = logging.getLogger("app.alerts")

RATE_WINDOW = timedelta(hours=1)
DEFAULT_THRESHOLDS = {"cpu_high": 90.0, "memory_high": 90.0, "disk_high": 90.0, "backup_stale": 7.0}
LIFECYCLE_ACTIONS = ("start", "stop", "shutdown", "reboot")
SERVICE_BAD = ("failed", "degraded", "stopped")


@dataclass(frozen=True)
class Facts:
    """What the pass knows besides the database: offline nodes (name -> since), since when Proxmox has
    been unreachable (None: it answered), and the cluster's backup index (None: not swept yet), of the default
    cluster; ``others`` holds the same of every other cluster, by name."""

    offline_nodes: dict[str, datetime] = field(default_factory=dict)
    unreachable_since: datetime | None = None
    unreachable_reason: str | None = None
    backup_index: BackupIndex | None = None
    others: dict[str, Facts] = field(default_factory=dict)

    def of(self, cluster: str) -> Facts:
        """The facts of ``cluster`` (empty for one the pass did not ask)."""
        return self if cluster == DEFAULT_CLUSTER else self.others.get(cluster, Facts())


@dataclass(frozen=True)
class Condition:
    """One subject a rule's condition holds for: what to say, about what, since when (None: unknown)."""

    subject: str
    title: str
    text: str
    since: datetime | None = None
    container_id: int | None = None
    node: str | None = None  # as subjects give it: "pve1", or "lab/lab1" in another cluster
    vmid: int | None = None
    cluster: str = DEFAULT_CLUSTER


@dataclass
class PassResult:
    """What one pass did: incidents opened and resolved, messages sent, failed, dropped by a rate limit,
    and open incidents kept silent (mute or maintenance window)."""

    opened: int = 0
    resolved: int = 0
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    silenced: int = 0


def gather_facts() -> Facts:
    """Refresh every cluster's inventory (one ``GET /cluster/resources`` each via ``load_inventory``, which stores
    each container's snapshot) and collect what the pass needs besides the database. Never raises for
    Proxmox trouble: an unreachable Proxmox is itself a fact."""
    others = {}
    for info in clusters():
        if not info.is_default:
            with use_cluster(info.name):
                try:
                    others[info.name] = _cluster_facts()
                except UnknownCluster:  # removed by another process since the list was read
                    continue
    return replace(_cluster_facts(), others=others)


def _cluster_facts() -> Facts:
    """The facts of the current cluster."""
    inventory = load_inventory(record=True)  # the pass reads the stored statuses: they must be this answer's
    db.session.commit()
    state = tracker()
    try:
        index = get_proxmox().backup_index()
    except ProxmoxError:
        index = None
    return Facts(offline_nodes=dict(inventory.offline_nodes) or dict(state.nodes_offline),
                 unreachable_since=None if inventory.reachable else (inventory.unreachable_since or state.since),
                 unreachable_reason=inventory.error, backup_index=index)


# -- the data a pass reads, each piece loaded once -----------------------------------------------

class _Data:
    """The database rows the conditions need, loaded on first use and shared by every rule."""

    def __init__(self, now: datetime, facts: Facts) -> None:
        self.now, self.facts = now, facts
        self._cache: dict[str, Any] = {}
        self.cluster_names = dict(db.session.execute(select(Cluster.id, Cluster.name)).all())

    def _once(self, key: str, load: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]

    @property
    def containers(self) -> list[Any]:
        columns = (Container.id, Container.vmid, Container.node, Container.hostname, Container.lifecycle,
                   Container.snapshot, Container.gone_at, Container.cluster_id)
        return self._once("containers", lambda: [_Row(row, self.cluster_names.get(row.cluster_id, DEFAULT_CLUSTER))
                                                 for row in db.session.execute(select(*columns).where(
                                                     Container.lifecycle.in_(("ready", "error", "gone"))))])

    @property
    def by_id(self) -> dict[int, Any]:
        return self._once("by_id", lambda: {row.id: row for row in self.containers})

    @property
    def running(self) -> list[Any]:
        return self._once("running", lambda: [
            row for row in self.containers if row.lifecycle == "ready" and _snap(row).get("status") == "running"
            and not _snap(row).get("template")])

    @property
    def stopped_by_proxboard(self) -> set[int]:
        """Containers whose last lifecycle Operation stopped them, or with an Operation under way."""
        def load() -> set[int]:
            latest = (select(func.max(Operation.id)).where(Operation.action.in_(LIFECYCLE_ACTIONS))
                      .group_by(Operation.container_id))
            ids = {cid for cid, action, state in db.session.execute(
                select(Operation.container_id, Operation.action, Operation.state).where(Operation.id.in_(latest)))
                if action in ("stop", "shutdown") and state != "failed"}
            ids.update(db.session.scalars(select(Operation.container_id).where(
                Operation.state.in_(("queued", "running")))))
            return ids
        return self._once("stopped_by_proxboard", load)

    def observe(self) -> None:
        """Record each ready container's status where it changed since the last pass (with the one before)."""
        known = {obs.container_id: obs for obs in db.session.scalars(select(AlertObservation))}
        for row in self.containers:
            status = _snap(row).get("status")
            if row.lifecycle != "ready" or status not in ("running", "stopped"):
                continue
            obs = known.get(row.id)
            if obs is None:
                known[row.id] = obs = AlertObservation(container_id=row.id, status=status, since=self.now)
                db.session.add(obs)
            elif obs.status != status:
                obs.previous, obs.status, obs.since = obs.status, status, self.now
        self._cache["observations"] = known

    @property
    def observations(self) -> dict[int, AlertObservation]:
        return self._cache.get("observations", {})

    @property
    def bad_services(self) -> list[Any]:
        return self._once("bad_services", lambda: db.session.execute(
            select(Service.container_id, Service.name, Service.status, Service.checked_at, Service.last_error)
            .where(Service.kind == "application", Service.status.in_(SERVICE_BAD))).all())

    @property
    def stale_credentials(self) -> dict[int, list[str]]:
        def load() -> dict[int, list[str]]:
            keys: dict[int, list[str]] = {}
            for cid, key in db.session.execute(select(Credential.container_id, Credential.key)
                                               .where(Credential.stale.is_(True)).order_by(Credential.key)):
                keys.setdefault(cid, []).append(key)
            return keys
        return self._once("stale_credentials", load)


class _Row:
    """A container row and the name of its cluster."""

    __slots__ = ("id", "vmid", "node", "hostname", "lifecycle", "snapshot", "gone_at", "cluster")

    def __init__(self, row: Any, cluster: str) -> None:
        self.id, self.vmid, self.node, self.hostname, self.lifecycle, self.snapshot, self.gone_at, _ = row
        self.cluster = cluster


def _snap(row: Any) -> dict[str, Any]:
    return row.snapshot or {}


def _ct(row: Any) -> str:
    """A container's part of a subject: ``101``, or ``lab/101``."""
    return qualified(row.cluster, row.vmid)


def _name(row: Any) -> str:
    """How a message names a container: ``web1 (CT 101)``, ``web1 (lab/CT 101)`` in another cluster."""
    return f"{row.hostname or _snap(row).get('name') or 'CT ' + str(row.vmid)} ({qualified(row.cluster, f'CT {row.vmid}')})"


def _about(row: Any, subject: str, title: str, text: str, since: datetime | None = None) -> Condition:
    return Condition(subject, title, text, since, row.id, qualified(row.cluster, _snap(row).get("node") or row.node),
                     row.vmid, row.cluster)


def _percent(used: Any, total: Any) -> float | None:
    return used * 100.0 / total if isinstance(used, int | float) and total else None


# -- the conditions, one function per rule kind ------------------------------------------------

def _stopped(data: _Data, rule: AlertRule) -> Iterable[Condition]:
    """Containers seen running by an earlier pass and stopped now, with no Proxboard stop behind it."""
    skip = data.stopped_by_proxboard
    observations = data.observations
    for row in data.containers:
        snap, obs = _snap(row), observations.get(row.id)
        if obs is not None and obs.status == "stopped" and obs.previous == "running" and not snap.get("template") \
                and row.id not in skip:
            yield _about(row, f"ct:{_ct(row)}", f"{_name(row)} stopped",
                         f"{_name(row)} on {snap.get('node') or row.node} is stopped, and nobody stopped it "
                         f"through Proxboard.", obs.since)


def _gone(data: _Data, rule: AlertRule) -> Iterable[Condition]:
    for row in data.containers:
        if row.lifecycle == "gone":
            yield _about(row, f"ct:{_ct(row)}", f"{_name(row)} is gone",
                         f"{_name(row)} no longer exists in Proxmox (deleted outside Proxboard?).", row.gone_at)


def _provisioning_failed(data: _Data, rule: AlertRule) -> Iterable[Condition]:
    for row in data.containers:
        if row.lifecycle == "error":
            yield _about(row, f"ct:{_ct(row)}", f"Creating {_name(row)} failed",
                         f"Proxboard could not create {_name(row)}; its page says why.")


def _clusters(data: _Data) -> Iterable[tuple[str, Facts]]:
    yield DEFAULT_CLUSTER, data.facts
    yield from sorted(data.facts.others.items())


def _node_offline(data: _Data, rule: AlertRule) -> Iterable[Condition]:
    for cluster, facts in _clusters(data):
        for node, since in sorted(facts.offline_nodes.items()):
            named = qualified(cluster, node)
            yield Condition(f"node:{named}", f"Node {named} is offline", f"Proxmox reports node {named} offline.",
                            since, node=named, cluster=cluster)


def _unreachable(data: _Data, rule: AlertRule) -> Iterable[Condition]:
    for cluster, facts in _clusters(data):
        if facts.unreachable_since is not None:
            reason = f" ({facts.unreachable_reason})" if facts.unreachable_reason else ""
            if cluster == DEFAULT_CLUSTER:
                yield Condition("pve", "Proxmox is unreachable", f"Proxboard cannot reach Proxmox{reason}.",
                                facts.unreachable_since)
            else:
                yield Condition(f"pve:{cluster}", f"Proxmox of cluster {cluster} is unreachable",
                                f"Proxboard cannot reach the Proxmox of cluster {cluster}{reason}.",
                                facts.unreachable_since, cluster=cluster)


def _service_failed(data: _Data, rule: AlertRule) -> Iterable[Condition]:
    running = {row.id: row for row in data.running}
    for cid, name, status, checked_at, error in data.bad_services:
        row = running.get(cid)
        if row is not None:
            detail = f": {error}" if error else ""
            yield _about(row, f"svc:{_ct(row)}:{name}", f"{name} on {_name(row)} is {status}",
                         f"Service {name} on {_name(row)} is {status}{detail}.")


def _usage(kind: str, used: str, total: str, label: str) -> Callable[[_Data, AlertRule], Iterable[Condition]]:
    def conditions(data: _Data, rule: AlertRule) -> Iterable[Condition]:
        limit = rule.threshold if rule.threshold is not None else DEFAULT_THRESHOLDS[kind]
        for row in data.running:
            snap = _snap(row)
            value = snap.get(used, 0) * 100.0 if used == "cpu" else _percent(snap.get(used), snap.get(total))
            if isinstance(value, int | float) and value >= limit:
                yield _about(row, f"ct:{_ct(row)}", f"{label} of {_name(row)} at {value:.0f}%",
                             f"{label} of {_name(row)} is at {value:.0f}% (alert at {limit:.0f}%).")
    return conditions


def _backup_stale(data: _Data, rule: AlertRule) -> Iterable[Condition]:
    days = rule.threshold if rule.threshold is not None else DEFAULT_THRESHOLDS["backup_stale"]
    limit = data.now.timestamp() - days * 86400
    for row in data.containers:
        index = data.facts.of(row.cluster).backup_index
        if index is None or row.lifecycle != "ready" or _snap(row).get("template"):
            continue
        unread = any(key not in index.entries for key in index.failed)
        newest = index.newest.get(row.vmid)
        if newest is None and not unread:
            yield _about(row, f"ct:{_ct(row)}", f"{_name(row)} has no backup",
                         f"{_name(row)} has no backup on any backup storage.")
        elif newest is not None and newest < limit:
            when = datetime.fromtimestamp(newest, UTC)
            yield _about(row, f"ct:{_ct(row)}", f"{_name(row)}: no backup for {days:g} days",
                         f"The newest backup of {_name(row)} is from {_when(when)}.", when)


def _credentials_stale(data: _Data, rule: AlertRule) -> Iterable[Condition]:
    for cid, keys in data.stale_credentials.items():
        row = data.by_id.get(cid)
        if row is not None and row.lifecycle == "ready":
            yield _about(row, f"cred:{_ct(row)}", f"Stale credentials on {_name(row)}",
                         f"Credentials of {_name(row)} may no longer be valid: {', '.join(keys)}.")


CONDITIONS: dict[str, Callable[[_Data, AlertRule], Iterable[Condition]]] = {
    "container_stopped": _stopped,
    "container_gone": _gone,
    "node_offline": _node_offline,
    "proxmox_unreachable": _unreachable,
    "service_failed": _service_failed,
    "cpu_high": _usage("cpu_high", "cpu", "", "CPU"),
    "memory_high": _usage("memory_high", "mem", "maxmem", "Memory"),
    "disk_high": _usage("disk_high", "disk", "maxdisk", "Disk"),
    "provisioning_failed": _provisioning_failed,
    "backup_stale": _backup_stale,
    "credentials_stale": _credentials_stale,
}


# -- silence: mutes and maintenance windows ---------------------------------------------------

class _Silence:
    """Which subjects stay quiet now: muted containers, and the scopes of the maintenance windows open now."""

    def __init__(self, now: datetime) -> None:
        self.muted = set(db.session.scalars(select(AlertMute.container_id).where(AlertMute.until > now)))
        self.scopes = [scope for (scope,) in db.session.execute(select(MaintenanceWindow.scope).where(
            MaintenanceWindow.starts_at <= now, MaintenanceWindow.ends_at > now))]

    def covers(self, subject: str, container_id: int | None, node: str | None, vmid: int | None,
               cluster: str = DEFAULT_CLUSTER) -> bool:
        """Whether a mute or an open window covers the subject: ``node`` as subjects give it (``lab/lab1`` in
        another cluster), ``vmid`` of ``cluster``."""
        if container_id is not None and container_id in self.muted:
            return True
        for scope in self.scopes:
            if not scope or scope == subject or (node and scope == f"node:{node}") \
                    or (vmid is not None and scope == f"ct:{qualified(cluster, vmid)}"):
                return True
        return False


# -- sending ----------------------------------------------------------------------------------

class _Outbox:
    """Sends through each channel, keeping its rate limit (messages in the last hour) as it goes."""

    def __init__(self, now: datetime, result: PassResult) -> None:
        self.now, self.result = now, result
        self.counts = dict(db.session.execute(
            select(AlertDelivery.channel_id, func.count()).where(AlertDelivery.sent_at > now - RATE_WINDOW)
            .group_by(AlertDelivery.channel_id)).all())
        self.base_url = (current_app.config.get("BASE_URL") or "").rstrip("/")
        self.queued: list[tuple[list[AlertChannel], AlertIncident, str, str]] = []

    def link(self, vmid: int | None, cluster: str = DEFAULT_CLUSTER) -> str:
        """The container's page at ``BASE_URL`` (none without one)."""
        if vmid is None or not self.base_url:
            return ""
        prefix = "" if cluster == DEFAULT_CLUSTER else f"/clusters/{cluster}"
        return f"{self.base_url}{prefix}/containers/{vmid}"

    def queue(self, channels: list[AlertChannel], incident: AlertIncident, title: str, body: str) -> None:
        """Keep a message for ``send_all`` (sent once the pass's incidents are flushed)."""
        if any(channel.enabled for channel in channels):
            self.queued.append((channels, incident, title, body))

    def send_all(self) -> None:
        for channels, incident, title, body in self.queued:
            self.send(channels, incident, title, body)
        self.queued.clear()

    def send(self, channels: list[AlertChannel], incident: AlertIncident, title: str, body: str) -> None:
        for channel in channels:
            if not channel.enabled:
                continue
            if self.counts.get(channel.id, 0) >= channel.rate_limit:
                channel.dropped = (channel.dropped or 0) + 1
                self.result.dropped += 1
                log.warning("alert channel %r is over its rate limit (%d per hour); dropped: %s",
                            channel.name, channel.rate_limit, title)
                continue
            self.counts[channel.id] = self.counts.get(channel.id, 0) + 1
            try:
                ok = delivery.send(decrypt(channel.url_encrypted), f"[Proxboard] {title}", body)
            except Exception as exc:  # noqa: BLE001 - a bad key or URL on one channel must not stop the pass
                log.warning("alert channel %r could not be used: %s", channel.name, type(exc).__name__)
                ok = False
            db.session.add(AlertDelivery(channel_id=channel.id, incident_id=incident.id, sent_at=self.now, ok=ok,
                                         title=title[:255]))
            if ok:
                self.result.sent += 1
            else:
                self.result.failed += 1
                log.warning("alert channel %r did not take the message: %s", channel.name, title)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "an unknown time"


def _body(text: str, since: datetime | None, link: str, tail: str = "") -> str:
    lines = [text, f"Since {_when(since)}.{tail}"]
    if link:
        lines.append(link)
    return "\n".join(lines)


# -- the pass ---------------------------------------------------------------------------------

def evaluate(facts: Facts | None = None, now: datetime | None = None) -> PassResult:
    """One evaluation pass over every enabled rule; commits and returns what it did.

    Opens an incident once a condition has held ``for_minutes`` (since the moment the condition
    itself reports, else since the pass first saw it), sends one message on open and one on resolve
    (only for incidents someone was told about), repeats an open one every ``repeat_minutes`` (0:
    never), and keeps silent (incidents still recorded) for muted containers and inside maintenance
    windows. Reads the database only; ``facts`` (``gather_facts``) carries the rest.
    """
    facts = facts or Facts()
    now = now or utcnow()
    data = _Data(now, facts)
    data.observe()
    result = PassResult()
    rules = db.session.scalars(select(AlertRule).where(AlertRule.enabled.is_(True))
                               .options(selectinload(AlertRule.channels))).all()
    live = db.session.scalars(select(AlertIncident).where(AlertIncident.state.in_(("pending", "open")))).all()
    existing: dict[tuple[int, str], AlertIncident] = {(inc.rule_id, inc.subject): inc for inc in live}
    silence = _Silence(now)
    outbox = _Outbox(now, result)
    for rule in rules:
        wait = timedelta(minutes=max(rule.for_minutes or 0, 0))
        for cond in CONDITIONS[rule.kind](data, rule):
            incident = existing.pop((rule.id, cond.subject), None)
            if incident is None:
                incident = AlertIncident(rule_id=rule.id, subject=cond.subject, container_id=cond.container_id,
                                         state="pending", first_seen_at=now, message=cond.text, notified=False)
                db.session.add(incident)
            if incident.message != cond.text:  # unchanged incidents stay clean: the flush skips them
                incident.message = cond.text
            since = cond.since or incident.first_seen_at
            if incident.state == "pending" and now - since >= wait:
                incident.state, incident.opened_at = "open", now
                result.opened += 1
            if incident.state != "open":
                continue
            if silence.covers(cond.subject, cond.container_id, cond.node, cond.vmid, cond.cluster):
                result.silenced += 1
                continue
            link = outbox.link(cond.vmid, cond.cluster)
            if not incident.notified:
                outbox.queue(rule.channels, incident, cond.title, _body(cond.text, since, link))
                incident.notified, incident.last_sent_at = True, now
            elif rule.repeat_minutes and now - (incident.last_sent_at or now) >= timedelta(minutes=rule.repeat_minutes):
                outbox.queue(rule.channels, incident, f"Still: {cond.title}", _body(cond.text, since, link))
                incident.last_sent_at = now
    enabled = {rule.id: rule for rule in rules}
    for (rule_id, subject), incident in existing.items():  # the condition cleared, or its rule was turned off
        if incident.state == "pending":
            db.session.delete(incident)
            continue
        incident.state, incident.resolved_at = "resolved", now
        result.resolved += 1
        rule = enabled.get(rule_id)
        row = data.by_id.get(incident.container_id) if incident.container_id is not None else None
        cluster = row.cluster if row is not None else DEFAULT_CLUSTER
        node = qualified(cluster, _snap(row).get("node") or row.node) if row is not None else None
        vmid = row.vmid if row is not None else None
        if rule is None or not incident.notified or silence.covers(subject, incident.container_id, node, vmid,
                                                                    cluster):
            continue
        title = f"Resolved: {rule.name} ({_name(row) if row is not None else subject})"
        body = (f"No longer true: {incident.message}\nOpened {_when(incident.opened_at)}, "
                f"resolved {_when(now)}.")
        link = outbox.link(vmid, cluster)
        outbox.queue(rule.channels, incident, title[:200], body + (f"\n{link}" if link else ""))
        incident.last_sent_at = now
    db.session.commit()  # before any network wait: a slow channel must not hold the database's write lock
    if outbox.queued:
        outbox.send_all()
        db.session.commit()
    if result.opened or result.resolved or result.dropped or result.failed:
        log.info("alert pass: %d opened, %d resolved, %d sent, %d failed, %d dropped by rate limits, %d silenced",
                 result.opened, result.resolved, result.sent, result.failed, result.dropped, result.silenced)
    return result
