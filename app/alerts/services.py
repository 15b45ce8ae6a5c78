"""What the Alerts pages and the banners call: channels (their URL encrypted at rest), rules, mutes, maintenance
windows, the open incidents and the history. Every function that changes something commits."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.credentials.vault import decrypt, encrypt
from app.extensions import db
from app.models import (
    ALERT_KINDS,
    AlertChannel,
    AlertDelivery,
    AlertIncident,
    AlertMute,
    AlertRule,
    Container,
    MaintenanceWindow,
    utcnow,
)
from app.pagination import Page, bounds

from . import delivery

TEST_TITLE = "[Proxboard] Test message"
HISTORY_PER_PAGE = 50

# What each kind watches, in words, and what its threshold means (None: it has none).
KIND_LABELS: dict[str, str] = {
    "container_stopped": "Container stopped outside Proxboard",
    "container_gone": "Container gone from Proxmox",
    "node_offline": "Node offline",
    "proxmox_unreachable": "Proxmox unreachable",
    "service_failed": "Service failed or degraded",
    "cpu_high": "CPU above a threshold",
    "memory_high": "Memory above a threshold",
    "disk_high": "Disk above a threshold",
    "provisioning_failed": "Creating a container failed",
    "backup_stale": "No recent backup",
    "credentials_stale": "Credentials gone stale",
}
THRESHOLD_UNITS: dict[str, str] = {"cpu_high": "%", "memory_high": "%", "disk_high": "%", "backup_stale": "days"}


class NameTaken(ValueError):
    """Another channel already has this name."""


@dataclass(frozen=True)
class SendOutcome:
    """How a test message went: ``ok``, and a sentence for the person who pressed the button."""

    ok: bool
    message: str


def _check_channel(name: str, rate_limit: int, channel_id: int | None = None) -> str:
    name = name.strip()
    if not name:
        raise ValueError("A channel needs a name.")
    if rate_limit < 1:
        raise ValueError("The rate limit is at least one message per hour.")
    other = db.session.scalar(select(AlertChannel.id).where(func.lower(AlertChannel.name) == name.lower()))
    if other is not None and other != channel_id:
        raise NameTaken(f"There is already a channel named {name}.")
    return name


def create_channel(name: str, url: str, rate_limit: int = 20, enabled: bool = True) -> AlertChannel:
    """Record a channel; ``url`` (an Apprise URL) is checked, then stored encrypted. Commits.

    Raises ``delivery.ChannelURLError`` for a URL Apprise does not know, ``NameTaken`` for a name in
    use (case-insensitive), ValueError for an empty name or a rate limit below 1 (messages per hour).
    """
    name = _check_channel(name, rate_limit)
    delivery.check_url(url)
    channel = AlertChannel(name=name, url_encrypted=encrypt(url), rate_limit=rate_limit, enabled=enabled)
    db.session.add(channel)
    db.session.commit()
    return channel


def update_channel(channel: AlertChannel, name: str, url: str | None, rate_limit: int, enabled: bool) -> None:
    """Change a channel; ``url`` None or empty keeps the stored one (the page never shows it). Commits.

    Raises as ``create_channel``.
    """
    name = _check_channel(name, rate_limit, channel.id)
    if url:
        delivery.check_url(url)
        channel.url_encrypted = encrypt(url)
    channel.name, channel.rate_limit, channel.enabled = name, rate_limit, enabled
    db.session.commit()


def delete_channel(channel: AlertChannel) -> None:
    """Remove a channel; its rules stay, without it (a rule with no channel still records incidents). Commits."""
    db.session.delete(channel)
    db.session.commit()


def channel_service(channel: AlertChannel) -> str:
    """What kind of channel this is, from its URL's scheme (``ntfy``, ``mailto``, ``json``): not a secret."""
    try:
        return urlsplit(channel_url(channel)).scheme or "?"
    except Exception:  # noqa: BLE001 - a key rotated away: the page still lists the channel
        return "?"


def channel_url(channel: AlertChannel) -> str:
    """The channel's Apprise URL, decrypted (a secret: never log it, never put it in a page)."""
    return decrypt(channel.url_encrypted)


def send_test(channel: AlertChannel) -> SendOutcome:
    """Send a test message through ``channel`` now (outside its rate limit and any mute or window)."""
    try:
        ok = delivery.send(channel_url(channel), TEST_TITLE,
                           f"Channel {channel.name!r} works: Proxboard alerts will arrive here.")
    except delivery.ChannelURLError as exc:
        return SendOutcome(False, str(exc))
    if ok:
        return SendOutcome(True, f"A test message went to {channel.name}.")
    return SendOutcome(False, f"{channel.name} did not take the test message; the worker log says why "
                              f"(without the URL).")


def _check_rule(kind: str, threshold: float | None, for_minutes: int, repeat_minutes: int) -> float | None:
    if kind not in ALERT_KINDS:
        raise ValueError(f"Unknown alert kind {kind!r}.")
    if for_minutes < 0 or repeat_minutes < 0:
        raise ValueError("Delays are zero or more minutes.")
    if kind not in THRESHOLD_UNITS:
        return None
    if threshold is not None and THRESHOLD_UNITS[kind] == "%" and not 0 < threshold <= 100:
        raise ValueError("A percentage threshold is above 0 and at most 100.")
    if threshold is not None and THRESHOLD_UNITS[kind] == "days" and threshold <= 0:
        raise ValueError("The number of days is above 0.")
    return threshold


def create_rule(kind: str, channels: list[AlertChannel], *, name: str | None = None, threshold: float | None = None,
                for_minutes: int = 5, repeat_minutes: int = 0, enabled: bool = True) -> AlertRule:
    """Record a rule of ``kind`` (one of ``ALERT_KINDS``) speaking through ``channels``. Commits.

    ``threshold`` is a percentage for cpu_high, memory_high and disk_high, days for backup_stale
    (None: the engine's default), and is dropped for kinds without one. Raises ValueError for an
    unknown kind, a negative delay or a threshold out of its range.
    """
    threshold = _check_rule(kind, threshold, for_minutes, repeat_minutes)
    rule = AlertRule(kind=kind, name=(name or "").strip() or KIND_LABELS[kind], threshold=threshold,
                     for_minutes=for_minutes, repeat_minutes=repeat_minutes, enabled=enabled, channels=list(channels))
    db.session.add(rule)
    db.session.commit()
    return rule


def update_rule(rule: AlertRule, channels: list[AlertChannel], *, name: str | None, kind: str,
                threshold: float | None, for_minutes: int, repeat_minutes: int, enabled: bool) -> None:
    """Change a rule (its open incidents resolve on the next pass if they no longer hold). Commits.

    Raises as ``create_rule``.
    """
    threshold = _check_rule(kind, threshold, for_minutes, repeat_minutes)
    rule.kind, rule.threshold, rule.for_minutes, rule.repeat_minutes = kind, threshold, for_minutes, repeat_minutes
    rule.name = (name or "").strip() or KIND_LABELS[kind]
    rule.enabled, rule.channels = enabled, list(channels)
    db.session.commit()


def set_rule_enabled(rule: AlertRule, enabled: bool) -> None:
    """Turn a rule on or off; off, its open incidents resolve on the next pass without a message. Commits."""
    rule.enabled = enabled
    db.session.commit()


def delete_rule(rule: AlertRule) -> None:
    """Remove a rule and its incidents (their history goes with it). Commits."""
    db.session.delete(rule)
    db.session.commit()


def get_rule(rule_id: int) -> AlertRule:
    """The rule ``rule_id``; raises LookupError when there is none."""
    rule = db.session.get(AlertRule, rule_id)
    if rule is None:
        raise LookupError(f"There is no alert rule {rule_id}.")
    return rule


def get_channel(channel_id: int) -> AlertChannel:
    """The channel ``channel_id``; raises LookupError when there is none."""
    channel = db.session.get(AlertChannel, channel_id)
    if channel is None:
        raise LookupError(f"There is no alert channel {channel_id}.")
    return channel


def rules() -> list[AlertRule]:
    """Every rule with its channels, by name."""
    return list(db.session.scalars(select(AlertRule).options(selectinload(AlertRule.channels))
                                   .order_by(AlertRule.name, AlertRule.id)))


def channels() -> list[AlertChannel]:
    """Every channel, by name."""
    return list(db.session.scalars(select(AlertChannel).order_by(AlertChannel.name)))


@dataclass(frozen=True)
class ChannelRow:
    """A channel as the page lists it: its service (URL scheme), messages sent in the last hour, and its
    last delivery (``None``: never used)."""

    channel: AlertChannel
    service: str
    last_hour: int
    last: AlertDelivery | None


def channel_rows(now: datetime | None = None) -> list[ChannelRow]:
    """``channels()`` with what the page shows of each; two queries whatever the number of channels."""
    now = now or utcnow()
    found = channels()
    counts = dict(db.session.execute(select(AlertDelivery.channel_id, func.count()).where(
        AlertDelivery.sent_at > now - timedelta(hours=1)).group_by(AlertDelivery.channel_id)).all())
    newest = select(func.max(AlertDelivery.id)).group_by(AlertDelivery.channel_id)
    last = {row.channel_id: row for row in db.session.scalars(select(AlertDelivery).where(AlertDelivery.id.in_(newest)))}
    return [ChannelRow(channel, channel_service(channel), counts.get(channel.id, 0), last.get(channel.id))
            for channel in found]


def open_incidents(container_id: int | None = None) -> list[AlertIncident]:
    """Incidents open now (announced or silenced, not pending), newest first; only one container's with
    ``container_id``. One indexed query (the banners call it on every render)."""
    query = (select(AlertIncident).where(AlertIncident.state == "open").options(selectinload(AlertIncident.rule))
             .order_by(AlertIncident.opened_at.desc(), AlertIncident.id.desc()))
    if container_id is not None:
        query = query.where(AlertIncident.container_id == container_id)
    return list(db.session.scalars(query))


def history(number: int, per_page: int = HISTORY_PER_PAGE) -> Page[AlertIncident]:
    """Page ``number`` of every incident that opened (open and resolved), newest first."""
    opened = select(AlertIncident).where(AlertIncident.state != "pending")
    total = db.session.scalar(select(func.count()).select_from(opened.subquery())) or 0
    number, pages, offset = bounds(total, number, per_page)
    items = db.session.scalars(opened.options(selectinload(AlertIncident.rule))
                               .order_by(AlertIncident.opened_at.desc(), AlertIncident.id.desc())
                               .offset(offset).limit(per_page))
    return Page(list(items), number, pages)


def deliveries_for(incidents: list[AlertIncident]) -> dict[int, tuple[int, int]]:
    """Per incident id: (messages delivered, messages that failed or were dropped)."""
    ids = [incident.id for incident in incidents]
    if not ids:
        return {}
    out: dict[int, tuple[int, int]] = {}
    for incident_id, ok, count in db.session.execute(
            select(AlertDelivery.incident_id, AlertDelivery.ok, func.count()).where(AlertDelivery.incident_id.in_(ids))
            .group_by(AlertDelivery.incident_id, AlertDelivery.ok)):
        good, bad = out.get(incident_id, (0, 0))
        out[incident_id] = (good + count, bad) if ok else (good, bad + count)
    return out


def containers_by_id(incidents: list[AlertIncident]) -> dict[int, Container]:
    """The containers the incidents name, by id (for their links and names)."""
    ids = {incident.container_id for incident in incidents if incident.container_id is not None}
    if not ids:
        return {}
    return {row.id: row for row in db.session.scalars(select(Container).where(Container.id.in_(ids)))}


def mute_container(container_id: int, until: datetime, username: str | None = None) -> AlertMute:
    """Keep a container's alerts silent until ``until`` (UTC); its incidents are still recorded. A new mute
    replaces the container's earlier ones. Commits."""
    db.session.execute(db.delete(AlertMute).where(AlertMute.container_id == container_id))
    mute = AlertMute(container_id=container_id, until=until, created_by=username)
    db.session.add(mute)
    db.session.commit()
    return mute


def unmute_container(container_id: int) -> bool:
    """End a container's mute now; False when it had none in force. Commits."""
    found = db.session.execute(db.delete(AlertMute).where(AlertMute.container_id == container_id,
                                                          AlertMute.until > utcnow()))
    db.session.commit()
    return bool(found.rowcount)


def muted_until(container_id: int, now: datetime | None = None) -> datetime | None:
    """When the container's mute ends (UTC), None when it is not muted."""
    return db.session.scalar(select(func.max(AlertMute.until)).where(
        AlertMute.container_id == container_id, AlertMute.until > (now or utcnow())))


def add_maintenance(starts_at: datetime, ends_at: datetime, scope: str | None = None, note: str | None = None,
                    username: str | None = None) -> MaintenanceWindow:
    """A window in which alerts stay silent: everywhere, or for ``scope`` (``node:pve2``, ``ct:101``). Commits.

    Raises ValueError when it ends before it starts.
    """
    if ends_at <= starts_at:
        raise ValueError("A maintenance window ends after it starts.")
    window = MaintenanceWindow(starts_at=starts_at, ends_at=ends_at, scope=scope or None, note=note,
                               created_by=username)
    db.session.add(window)
    db.session.commit()
    return window


def active_windows(now: datetime | None = None) -> list[MaintenanceWindow]:
    """Maintenance windows open now (for the pages' banner)."""
    now = now or utcnow()
    return list(db.session.scalars(db.select(MaintenanceWindow).where(
        MaintenanceWindow.starts_at <= now, MaintenanceWindow.ends_at > now)))


def current_and_coming_windows(now: datetime | None = None) -> list[MaintenanceWindow]:
    """Windows open now or still to come, soonest first."""
    return list(db.session.scalars(select(MaintenanceWindow).where(MaintenanceWindow.ends_at > (now or utcnow()))
                                   .order_by(MaintenanceWindow.starts_at, MaintenanceWindow.id)))


def end_window(window_id: int, now: datetime | None = None) -> MaintenanceWindow:
    """End a window now (one still to come is removed). Raises LookupError for an unknown or past window.
    Commits."""
    now = now or utcnow()
    window = db.session.get(MaintenanceWindow, window_id)
    if window is None or window.ends_at <= now:
        raise LookupError(f"There is no current or coming maintenance window {window_id}.")
    if window.starts_at > now:
        db.session.delete(window)
    else:
        window.ends_at = now
    db.session.commit()
    return window
