"""The Proxmox clusters (or standalone nodes) Proxboard watches, and which one the current work is about."""
from __future__ import annotations

import re
from datetime import datetime

from flask import g, has_app_context
from sqlalchemy import Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime, utcnow

DEFAULT_CLUSTER = "default"
DEFAULT_CLUSTER_ID = 1  # the migration that brought clusters made it, and moved every earlier record into it
# A cluster's name is part of its URLs (/clusters/<name>/containers/<vmid>): lower-case letters, digits, dashes.
NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


class Cluster(db.Model):
    """A Proxmox VE cluster or standalone node: how to reach its API and its nodes over SSH.

    The ``default`` cluster is the one the ``PROXBOARD_PVE_*`` and ``PROXBOARD_SSH_*`` environment describes:
    its row holds no connection settings. Every other cluster keeps its own here; the API token's secret and
    the SSH password are encrypted with the credentials key (``app.credentials.vault``).
    """

    __tablename__ = "clusters"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    host: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=8006)
    token_id: Mapped[str | None] = mapped_column(String(255))  # user@realm!name, as Proxmox shows it
    token_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    # As PROXBOARD_PVE_VERIFY_SSL: "true" (the system's CAs), "false" (no check), or the path of a CA bundle.
    verify_ssl: Mapped[str] = mapped_column(String(1024), default="true")
    ssh_user: Mapped[str] = mapped_column(String(64), default="root")
    ssh_port: Mapped[int] = mapped_column(Integer, default=22)
    ssh_hosts: Mapped[str | None] = mapped_column(String(1024))  # "pve1=10.0.0.11,pve2=10.0.0.12"
    ssh_password_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_CLUSTER

    def __repr__(self) -> str:
        return f"<Cluster {self.name} {self.host or '(environment)'}>"


def current_cluster_name() -> str:
    """The cluster the current request or job works on: ``g.cluster`` when set, else ``default``."""
    if has_app_context():
        return g.get("cluster") or DEFAULT_CLUSTER
    return DEFAULT_CLUSTER


def qualified(cluster: str | None, name: object) -> str:
    """``name`` (a guest's ``CT 101``, a node) as every list naming several clusters' gives it: as is in the default
    cluster, ``lab/…`` in another (two clusters may both have a CT 101 and a node pve1)."""
    return str(name) if cluster in (None, DEFAULT_CLUSTER) else f"{cluster}/{name}"


class UnknownCluster(LookupError):
    """No cluster has this name (any more): a page about it is a 404, a loop over the clusters skips it."""


def cluster_id_of(name: str) -> int:
    """The id of cluster ``name`` (read once per app context); raises UnknownCluster when there is none."""
    if name == DEFAULT_CLUSTER:
        return DEFAULT_CLUSTER_ID
    ids = g.setdefault("_cluster_ids", {}) if has_app_context() else {}
    if name not in ids:
        found = db.session.scalar(db.select(Cluster.id).where(Cluster.name == name))
        if found is None:
            raise UnknownCluster(f"no cluster named {name!r}")
        ids[name] = found
    return ids[name]


def current_cluster_id() -> int:
    """The id of the current cluster (``current_cluster_name``): new records are made in it."""
    return cluster_id_of(current_cluster_name())
