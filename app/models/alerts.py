"""Alerts: rules, the channels they speak through, the incidents they open, and what keeps them quiet."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Column, Float, ForeignKey, Index, Integer, LargeBinary, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import UTCDateTime, one_of, utcnow

# Each tuple is also a CHECK constraint on its column (one_of).
ALERT_KINDS = (
    "container_stopped", "container_gone", "node_offline", "proxmox_unreachable", "service_failed",
    "cpu_high", "memory_high", "disk_high", "provisioning_failed", "backup_stale", "credentials_stale",
)
# pending: the condition holds but not yet for ``for_minutes``; open: announced (or silenced); resolved: cleared.
INCIDENT_STATES = ("pending", "open", "resolved")

alert_rule_channels = Table(
    "alert_rule_channels",
    db.metadata,
    Column("rule_id", ForeignKey("alert_rules.id", ondelete="CASCADE"), primary_key=True),
    Column("channel_id", ForeignKey("alert_channels.id", ondelete="CASCADE"), primary_key=True),
)


class AlertChannel(db.Model):
    """Where messages go: one Apprise URL, kept encrypted (it holds tokens and passwords).

    ``rate_limit`` is the most messages sent in any hour; the ones beyond it are dropped and
    counted in ``dropped``, never queued.
    """

    __tablename__ = "alert_channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    url_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    rate_limit: Mapped[int] = mapped_column(Integer, default=20)
    dropped: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    rules: Mapped[list[AlertRule]] = relationship(secondary=alert_rule_channels, back_populates="channels")

    def __repr__(self) -> str:  # never the URL
        return f"<AlertChannel {self.id} {self.name!r}>"


class AlertRule(db.Model):
    """One condition watched: ``kind``, its ``threshold`` (percent, or days for backup_stale), how long it
    must hold before an incident opens (``for_minutes``) and how often an open one is repeated
    (``repeat_minutes``, 0: never)."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    threshold: Mapped[float | None] = mapped_column(Float)
    for_minutes: Mapped[int] = mapped_column(Integer, default=5)
    repeat_minutes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    channels: Mapped[list[AlertChannel]] = relationship(secondary=alert_rule_channels, back_populates="rules",
                                                        order_by="AlertChannel.id")

    __table_args__ = (one_of("kind", ALERT_KINDS, "kind_known"),)


class AlertIncident(db.Model):
    """One rule's condition on one subject (``ct:101``, ``node:pve2``, ``svc:101:nginx``, ``pve``).

    ``first_seen_at`` is when the pass first saw the condition; ``notified`` says the opening message
    went out (so a recovery is only sent for an incident someone was told about).
    """

    __tablename__ = "alert_incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"))
    container_id: Mapped[int | None] = mapped_column(ForeignKey("containers.id", ondelete="SET NULL"), index=True)
    subject: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    message: Mapped[str] = mapped_column(Text, default="")
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notified: Mapped[bool] = mapped_column(Boolean, default=False)

    rule: Mapped[AlertRule] = relationship()

    __table_args__ = (
        one_of("state", INCIDENT_STATES, "state_known"),
        Index("ix_alert_incidents_state_rule", "state", "rule_id"),
    )


class AlertMute(db.Model):
    """A container whose alerts stay silent until ``until`` (incidents are still recorded)."""

    __tablename__ = "alert_mutes"

    id: Mapped[int] = mapped_column(primary_key=True)
    container_id: Mapped[int] = mapped_column(ForeignKey("containers.id", ondelete="CASCADE"), index=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MaintenanceWindow(db.Model):
    """A time when alerts stay silent: everywhere, or only for ``scope`` (``node:pve2``, ``ct:101``)."""

    __tablename__ = "maintenance_windows"

    id: Mapped[int] = mapped_column(primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    scope: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(String(255))
    created_by: Mapped[str | None] = mapped_column(String(80))


class AlertObservation(db.Model):
    """The status each pass last saw a container in, and the one before: a container stopped behind
    Proxboard's back is one seen running, then stopped (not one that was stopped before anyone looked)."""

    __tablename__ = "alert_observations"

    container_id: Mapped[int] = mapped_column(ForeignKey("containers.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    previous: Mapped[str | None] = mapped_column(String(16))
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertDelivery(db.Model):
    """One message handed to a channel (or dropped by its rate limit): the history and the rate limit's count."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("alert_channels.id", ondelete="CASCADE"))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("alert_incidents.id", ondelete="SET NULL"), index=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean, default=True)
    title: Mapped[str] = mapped_column(String(255), default="")

    __table_args__ = (Index("ix_alert_deliveries_channel_sent", "channel_id", "sent_at"),)
