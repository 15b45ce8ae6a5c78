"""Bulk actions: one request acting on many containers, and how it went for each of them."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.cluster import DEFAULT_CLUSTER_ID
from app.models.types import UTCDateTime, one_of, utcnow

if TYPE_CHECKING:
    from app.models.cluster import Cluster

# Each tuple is also a CHECK constraint on its column (one_of).
BULK_ACTIONS = ("start", "shutdown", "stop", "reboot", "tag-add", "tag-remove")
BULK_STATES = ("running", "finished")
BULK_ITEM_STATES = ("queued", "running", "succeeded", "failed", "skipped")


class BulkOperation(db.Model):
    """One bulk action over a set of containers of one cluster; ``items`` say how it went for each.

    A selection spanning several clusters is one bulk operation per cluster (its "part"), all sharing the
    ``group_id`` of the first: each cluster's Proxmox is asked on its own, so one that does not answer holds up
    only its own part. ``upid`` and ``node`` are the part's single Proxmox task of ``/cluster/bulk-action/guest/*``
    (PVE 9.1+), None when its containers are acted on one by one. ``lease_until`` lets one process at a time
    advance it.
    """

    __tablename__ = "bulk_operations"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Removing a cluster removes Proxboard's records of its guests, its bulk actions with them.
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), index=True,
                                            server_default=str(DEFAULT_CLUSTER_ID))
    # The first part of the request that started it (itself for that one): the parts are shown together.
    group_id: Mapped[int | None] = mapped_column(ForeignKey("bulk_operations.id", ondelete="SET NULL"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    tag: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="running", index=True)
    requested_by: Mapped[str | None] = mapped_column(String(80))
    selection: Mapped[str | None] = mapped_column(String(255))  # how they were chosen, in words
    upid: Mapped[str | None] = mapped_column(String(255))
    node: Mapped[str | None] = mapped_column(String(100))
    summary: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    cluster: Mapped[Cluster] = relationship()
    items: Mapped[list[BulkItem]] = relationship(back_populates="bulk", cascade="all, delete-orphan",
                                                 passive_deletes=True, order_by="BulkItem.position")

    __table_args__ = (
        one_of("action", BULK_ACTIONS, "action_known"),
        one_of("state", BULK_STATES, "state_known"),
    )

    @property
    def pending(self) -> bool:
        """Whether some container has not been dealt with yet."""
        return self.state == "running"


class BulkItem(db.Model):
    """One container of a bulk action: queued, running (its ``operation`` pending), then how it ended and why."""

    __tablename__ = "bulk_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    bulk_id: Mapped[int] = mapped_column(ForeignKey("bulk_operations.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    vmid: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str | None] = mapped_column(Text)
    operation_id: Mapped[int | None] = mapped_column(ForeignKey("operations.id", ondelete="SET NULL"), index=True)

    bulk: Mapped[BulkOperation] = relationship(back_populates="items")

    __table_args__ = (
        one_of("state", BULK_ITEM_STATES, "state_known"),
        UniqueConstraint("bulk_id", "vmid"),
    )

    @property
    def cluster(self) -> Cluster:
        """The cluster the container lives in (its bulk action's): ``container_url`` links it there."""
        return self.bulk.cluster

    @property
    def ended(self) -> bool:
        """Whether this container's part is over."""
        return self.state in ("succeeded", "failed", "skipped")
