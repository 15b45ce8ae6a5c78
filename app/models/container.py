"""Containers Proxboard knows about, and what happened to them."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy import event
from sqlalchemy.orm import Mapped, WriteOnlyMapped, mapped_column, relationship

from app.extensions import db
from app.models.cluster import DEFAULT_CLUSTER_ID, current_cluster_id
from app.models.types import UTCDateTime, one_of, utcnow

if TYPE_CHECKING:
    from app.models.cluster import Cluster
    from app.models.template import ContainerTemplate

# gone: Proxmox confirmed the guest no longer exists (deleted outside Proxboard, or a failed
# creation it never kept); shown until someone clears it. deleted: archived, never shown, and
# no longer holding its VMID, so another guest with that VMID gets a record of its own.
# Each tuple is also a CHECK constraint on its column (one_of), so the database refuses other words.
LIFECYCLES = ("creating", "ready", "error", "gone", "deleted")
EVENT_TYPES = ("log", "step", "complete", "error")
OPERATION_STATES = ("queued", "running", "succeeded", "failed")


class Container(db.Model):
    """A container's local record; Proxmox stays the source of truth for live state."""

    __tablename__ = "containers"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The cluster the guest lives in: a VMID is unique only within its cluster. New records are made in the
    # cluster the request or job works on (``current_cluster_id``).
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"), default=current_cluster_id,
                                            server_default=str(DEFAULT_CLUSTER_ID))
    vmid: Mapped[int] = mapped_column(BigInteger)
    node: Mapped[str] = mapped_column(String(100))
    hostname: Mapped[str | None] = mapped_column(String(255))
    lifecycle: Mapped[str] = mapped_column(String(16), default="ready")
    managed: Mapped[bool] = mapped_column(Boolean, default=True)
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("container_templates.id", ondelete="SET NULL"), index=True
    )
    ip: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    snapshot_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The snapshot's "name", kept beside it: the identity check of every inventory read compares it with the
    # listed name, and extracting it from the JSON of 1,000 records cost a render more than the rest of the read.
    listed_name: Mapped[str | None] = mapped_column(String(255))
    # The guest's MAC addresses (sorted, ";"-joined): Proxmox draws them at random when it creates
    # a guest and keeps them across rename, migration and restart, so they tell two guests that
    # used the same VMID apart. "" = the guest has no NIC; None = not read yet.
    fingerprint: Mapped[str | None] = mapped_column(String(1024))
    gone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    cluster: Mapped[Cluster] = relationship()
    template: Mapped[ContainerTemplate | None] = relationship()
    services: Mapped[list[Service]] = relationship(
        back_populates="container", cascade="all, delete-orphan", order_by="Service.name"
    )
    credentials: Mapped[list[Credential]] = relationship(
        back_populates="container", cascade="all, delete-orphan", order_by="Credential.id"
    )
    # Write-only: a timeline can be long, so it is never loaded whole; read it with
    # ``db.session.scalars(container.events.select())``. ON DELETE CASCADE removes both.
    events: WriteOnlyMapped[Event] = relationship(
        back_populates="container", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Event.created_at.desc()",
    )
    operations: WriteOnlyMapped[Operation] = relationship(
        back_populates="container", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        one_of("lifecycle", LIFECYCLES, "lifecycle_known"),
        # A VMID names at most one current record per cluster; archived ("deleted") records keep their VMID
        # for history while a later guest with the same VMID gets a record of its own.
        Index(
            "uq_containers_cluster_vmid_current",
            "cluster_id",
            "vmid",
            unique=True,
            sqlite_where=text("lifecycle != 'deleted'"),
            postgresql_where=text("lifecycle != 'deleted'"),
        ),
    )

    def __init__(self, **kwargs: Any) -> None:
        # The cluster is the one current when the record is made, not when it is flushed (maybe outside the block).
        kwargs.setdefault("cluster_id", current_cluster_id())
        super().__init__(**kwargs)

    @classmethod
    def current(cls, vmid: int, cluster_id: int | None = None) -> Container | None:
        """The record that holds ``vmid`` now (any lifecycle but ``deleted``) in ``cluster_id`` (default: the
        current cluster, ``current_cluster_id``), or None."""
        return db.session.scalar(db.select(cls).where(cls.in_cluster(cluster_id), cls.vmid == vmid,
                                                      cls.lifecycle != "deleted"))

    @classmethod
    def in_cluster(cls, cluster_id: int | None = None):
        """The WHERE clause for records of ``cluster_id`` (default: the current cluster)."""
        return cls.cluster_id == (current_cluster_id() if cluster_id is None else cluster_id)

    def display_name(self) -> str:
        """Hostname, else the last name Proxmox reported, else ``CT <vmid>``."""
        return self.hostname or (self.snapshot or {}).get("name") or f"CT {self.vmid}"

    def __repr__(self) -> str:
        return f"<Container {self.vmid} {self.lifecycle}>"


class Service(db.Model):
    """A systemd service found inside a container, with its last health check."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(primary_key=True)
    container_id: Mapped[int] = mapped_column(ForeignKey("containers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    unit: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16), default="application")
    port: Mapped[int | None] = mapped_column(Integer)
    protocol: Mapped[str | None] = mapped_column(String(8))
    web_url: Mapped[str | None] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)

    container: Mapped[Container] = relationship(back_populates="services")
    credentials: Mapped[list[Credential]] = relationship(back_populates="service", order_by="Credential.id")

    __table_args__ = (UniqueConstraint("container_id", "name"),)


class Credential(db.Model):
    """A secret belonging to a service (or to the container itself), encrypted at rest."""

    __tablename__ = "credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    container_id: Mapped[int] = mapped_column(ForeignKey("containers.id", ondelete="CASCADE"), index=True)
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id", ondelete="SET NULL"), index=True)
    key: Mapped[str] = mapped_column(String(255))
    value_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    stale: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    container: Mapped[Container] = relationship(back_populates="credentials")
    service: Mapped[Service | None] = relationship(back_populates="credentials")

    def __repr__(self) -> str:
        return f"<Credential {self.key}>"


class Event(db.Model):
    """One line of a container's timeline: a log line, a step, completion or an error."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    container_id: Mapped[int] = mapped_column(ForeignKey("containers.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    container: Mapped[Container] = relationship(back_populates="events")

    __table_args__ = (
        Index("ix_events_container_id_created_at", "container_id", "created_at"),
        one_of("type", EVENT_TYPES, "type_known"),
    )


class Operation(db.Model):
    """A lifecycle action or provisioning job, pending on the server until it ends."""

    __tablename__ = "operations"

    id: Mapped[int] = mapped_column(primary_key=True)
    container_id: Mapped[int] = mapped_column(ForeignKey("containers.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    upid: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    requested_by: Mapped[str | None] = mapped_column(String(80))
    step: Mapped[str | None] = mapped_column(String(64))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)

    container: Mapped[Container] = relationship(back_populates="operations")

    # At most one pending operation per container, enforced by the database so that two
    # concurrent requests cannot both start an action.
    __table_args__ = (
        one_of("state", OPERATION_STATES, "state_known"),
        Index(
            "uq_operations_one_pending_per_container",
            "container_id",
            unique=True,
            sqlite_where=text("state IN ('queued', 'running')"),
            postgresql_where=text("state IN ('queued', 'running')"),
        ),
    )

    @property
    def pending(self) -> bool:
        """Whether the operation has not ended yet."""
        return self.state in ("queued", "running")


class WizardDraft(db.Model):
    """Server-side state of one run of the creation wizard; only its id lives in the session."""

    __tablename__ = "wizard_drafts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    template_id: Mapped[int | None] = mapped_column(ForeignKey("container_templates.id", ondelete="SET NULL"))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    container_id: Mapped[int | None] = mapped_column(ForeignKey("containers.id", ondelete="SET NULL"))


@event.listens_for(Container.snapshot, "set")
def _keep_listed_name(target: Container, value: Any, _old: Any, _initiator: Any) -> None:
    """Every write of a record's snapshot through the ORM writes its ``listed_name`` too (``inventory.stored_state``
    does it for the inventory's bulk writes)."""
    target.listed_name = value.get("name") if isinstance(value, dict) else None
