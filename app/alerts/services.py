"""What the Alerts pages will call: channels (their URL encrypted at rest), rules, mutes, maintenance windows."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.credentials.vault import decrypt, encrypt
from app.extensions import db
from app.models import ALERT_KINDS, AlertChannel, AlertMute, AlertRule, MaintenanceWindow, utcnow

from . import delivery

TEST_TITLE = "[Proxboard] Test message"


@dataclass(frozen=True)
class SendOutcome:
    """How a test message went: ``ok``, and a sentence for the person who pressed the button."""

    ok: bool
    message: str


def create_channel(name: str, url: str, rate_limit: int = 20) -> AlertChannel:
    """Record a channel; ``url`` (an Apprise URL) is checked, then stored encrypted. Commits.

    Raises ``delivery.ChannelURLError`` for a URL Apprise does not know, ValueError for a rate
    limit below 1 (messages per hour).
    """
    delivery.check_url(url)
    if rate_limit < 1:
        raise ValueError("The rate limit is at least one message per hour.")
    channel = AlertChannel(name=name.strip(), url_encrypted=encrypt(url), rate_limit=rate_limit)
    db.session.add(channel)
    db.session.commit()
    return channel


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


def create_rule(kind: str, channels: list[AlertChannel], *, name: str | None = None, threshold: float | None = None,
                for_minutes: int = 5, repeat_minutes: int = 0, enabled: bool = True) -> AlertRule:
    """Record a rule of ``kind`` (one of ``ALERT_KINDS``) speaking through ``channels``. Commits.

    ``threshold`` is a percentage for cpu_high, memory_high and disk_high, days for backup_stale.
    Raises ValueError for an unknown kind or a negative delay.
    """
    if kind not in ALERT_KINDS:
        raise ValueError(f"Unknown alert kind {kind!r}.")
    if for_minutes < 0 or repeat_minutes < 0:
        raise ValueError("Delays are zero or more minutes.")
    rule = AlertRule(kind=kind, name=name or kind.replace("_", " ").capitalize(), threshold=threshold,
                     for_minutes=for_minutes, repeat_minutes=repeat_minutes, enabled=enabled, channels=list(channels))
    db.session.add(rule)
    db.session.commit()
    return rule


def mute_container(container_id: int, until: datetime, username: str | None = None) -> AlertMute:
    """Keep a container's alerts silent until ``until`` (UTC); its incidents are still recorded. Commits."""
    mute = AlertMute(container_id=container_id, until=until, created_by=username)
    db.session.add(mute)
    db.session.commit()
    return mute


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
