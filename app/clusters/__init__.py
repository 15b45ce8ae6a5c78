"""Several Proxmox clusters in one Proxboard: which cluster the current request or job is about, each cluster's
settings, and its URLs.

A guest is named by its cluster and VMID. Pages of one guest live under ``/clusters/<name>/containers/<vmid>``
(and so do the other cluster-scoped pages: nodes, backups, the wizard); the same paths without the prefix
are the ``default`` cluster's, the one the environment describes, so links made before clusters keep working.
``url_for`` adds the current cluster by itself; a page listing guests of several clusters passes ``cluster=``.

Usage::

    with use_cluster("lab"):
        get_proxmox().cluster_snapshot()   # lab's Proxmox
        Container.current(101)            # lab's CT 101
"""
from __future__ import annotations

import contextlib
import time
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from flask import Flask, abort, current_app, g
from werkzeug.exceptions import NotFound
from werkzeug.routing import Rule

from app.credentials.vault import get_vault
from app.extensions import db
from app.models import DEFAULT_CLUSTER, Cluster, Container, Operation, UnknownCluster, current_cluster_name

__all__ = ["ClusterInfo", "DEFAULT_CLUSTER", "UnknownCluster", "add_cluster_rules", "cluster_config", "cluster_state",
           "clusters", "current_cluster_name", "forget_clusters", "init_app", "use_cluster", "use_cluster_of_container"]

T = TypeVar("T")

# The URL prefix of a non-default cluster's pages; the rest of the path is the default cluster's.
PREFIX = "/clusters/<cluster>"
# How long a process keeps its list of clusters: another process's change on the Settings page is seen within
# this, its own at once (``forget_clusters``), and a cluster removed meanwhile is an ``UnknownCluster`` where it is
# used. Read afresh for every request, it was a tenth of the server time of a dashboard refresh answered from the
# shared render.
LIST_SECONDS = 2.0
# Blueprints whose pages are about one cluster (a guest, a node, a cluster's backups, a new guest).
SCOPED_BLUEPRINTS = ("containers", "nodes", "backups", "wizard")


# Cluster-scoped endpoints of other blueprints without a VMID: creating a guest through the API.
SCOPED_ENDPOINTS = frozenset({"api.create"})


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """A cluster as lists show it: its name, its id, and when its settings last changed."""

    id: int
    name: str
    host: str | None
    updated_at: datetime | None

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_CLUSTER


def clusters() -> list[ClusterInfo]:
    """Every cluster, ``default`` first then by name: the same list for the whole app context, read from the
    database at most every ``LIST_SECONDS`` in this process (one small query)."""
    if "_clusters" not in g:
        g._clusters = _cluster_list()
    return g._clusters


def _cluster_list() -> list[ClusterInfo]:
    held = current_app.extensions.get("cluster_list")
    now = time.monotonic()
    if held is not None and held[0] > now:
        return held[1]
    rows = db.session.execute(db.select(Cluster.id, Cluster.name, Cluster.host, Cluster.updated_at)).all()
    found = [ClusterInfo(*row) for row in rows]
    if not any(info.is_default for info in found):  # a database made before clusters, not upgraded yet
        found.append(ClusterInfo(1, DEFAULT_CLUSTER, None, None))
    listed = sorted(found, key=lambda info: (not info.is_default, info.name))
    current_app.extensions["cluster_list"] = (now + LIST_SECONDS, listed)
    return listed


def forget_clusters() -> None:
    """Read the cluster list again at the next ``clusters()`` (after adding, changing or removing one)."""
    g.pop("_clusters", None)
    g.pop("_cluster_ids", None)
    current_app.extensions.pop("cluster_list", None)


@contextlib.contextmanager
def use_cluster(name: str) -> Iterator[str]:
    """Work on cluster ``name`` inside the block (``get_proxmox``, records, SSH), then go back."""
    before = g.get("cluster")
    g.cluster = name
    try:
        yield name
    finally:
        if before is None:
            g.pop("cluster", None)
        else:
            g.cluster = before


def use_cluster_of_container(container_id: int | None = None, *, operation_id: int | None = None
                             ) -> contextlib.AbstractContextManager:
    """``use_cluster`` for the cluster of container record ``container_id``, or of operation ``operation_id``'s
    container: a job works on the cluster of the record it was given (the default one when it is gone)."""
    query = db.select(Cluster.name).join(Container, Container.cluster_id == Cluster.id)
    if container_id is not None:
        query = query.where(Container.id == container_id)
    else:
        query = query.join(Operation, Operation.container_id == Container.id).where(Operation.id == operation_id)
    return use_cluster(db.session.scalar(query) or DEFAULT_CLUSTER)


def cluster_config(name: str | None = None, app: Flask | None = None) -> Mapping[str, Any]:
    """The configuration the ``proxmox`` and ``ssh`` packages read for cluster ``name`` (default: the current one):
    ``app.config`` itself for ``default``, else the cluster's own ``PVE_*`` and ``SSH_*`` settings over it.

    Raises UnknownCluster for a cluster no row names (removed by another process while this one's list still
    held it: the list is read again next time). The secrets are decrypted here, on demand, never stored.
    """
    app = app or current_app
    name = name or current_cluster_name()
    if name == DEFAULT_CLUSTER:
        return app.config
    row = db.session.scalar(db.select(Cluster).where(Cluster.name == name))
    if row is None:
        forget_clusters()
        raise UnknownCluster(f"no cluster named {name!r}")
    vault = get_vault()
    token_user, _, token_name = (row.token_id or "").partition("!")
    own: dict[str, Any] = {
        "PVE_HOST": row.host, "PVE_PORT": row.port, "PVE_USER": token_user or None, "PVE_TOKEN_NAME": token_name or None,
        "PVE_TOKEN_VALUE": vault.decrypt(row.token_secret_encrypted) if row.token_secret_encrypted else None,
        "PVE_PASSWORD": None, "PVE_NODE": None, "PVE_VERIFY_SSL": row.verify_ssl,
        "PVE_CACHE_PREFIX": f"{app.config.get('PVE_CACHE_PREFIX') or 'proxboard:pve'}:{name}",
        "SSH_DEFAULT_HOST": row.host, "SSH_HOSTS": row.ssh_hosts or None, "SSH_PORT": row.ssh_port,
        "SSH_USER": row.ssh_user,
        "SSH_PASSWORD": vault.decrypt(row.ssh_password_encrypted) if row.ssh_password_encrypted else None,
    }
    if own["SSH_PASSWORD"]:  # its own password, not the default cluster's key
        own["SSH_KEY_FILE"] = None
    return ChainMap(own, app.config)


def init_app(app: Flask) -> None:
    """Read the cluster from ``/clusters/<name>/…`` URLs into ``g.cluster`` (``add_cluster_rules`` refuses an
    unknown one) and add the current cluster to ``url_for`` of the cluster-scoped pages."""

    app.add_template_global(lambda: [info.name for info in clusters()], "cluster_names")
    app.add_template_global(current_cluster_name, "current_cluster")

    @app.errorhandler(UnknownCluster)
    def _removed(exc: UnknownCluster):
        """A page of a cluster removed while it was being drawn: not found, as for any name nobody added."""
        return current_app.handle_user_exception(NotFound(f"There is no cluster {current_cluster_name()!r}."))

    @app.url_value_preprocessor
    def _pull_cluster(endpoint: str | None, values: dict | None) -> None:
        if values and "cluster" in values:
            g.cluster = values.pop("cluster")  # checked by ``_known_cluster``, once the sign-in has been

    @app.url_defaults
    def _push_cluster(endpoint: str, values: dict) -> None:
        if endpoint not in app.extensions.get("cluster_endpoints", ()):
            return  # not a cluster's page: ``cluster`` is whatever the page makes of it (the dashboard's filter)
        name = values.get("cluster", current_cluster_name())
        if name == DEFAULT_CLUSTER:
            values.pop("cluster", None)
        else:
            values["cluster"] = name


def add_cluster_rules(app: Flask) -> None:
    """Give every cluster-scoped page (``SCOPED_BLUEPRINTS``, and any other with a VMID in its path) a
    ``/clusters/<cluster>`` address beside its default-cluster one. Call after registering the blueprints."""
    endpoints: set[str] = set()
    for rule in list(app.url_map.iter_rules()):
        scoped = rule.endpoint.partition(".")[0] in SCOPED_BLUEPRINTS and not rule.endpoint.endswith("static")
        if not (scoped or "vmid" in rule.arguments or rule.endpoint in SCOPED_ENDPOINTS):
            continue
        path = rule.rule
        at = path.find("/containers/<int:vmid>")
        if at < 0 and rule.endpoint in SCOPED_ENDPOINTS:
            at = path.rfind("/containers")
        path = path[:at] + PREFIX + path[at:] if at >= 0 else PREFIX + path
        app.url_map.add(Rule(path, endpoint=rule.endpoint, methods=rule.methods, defaults=rule.defaults,
                             strict_slashes=rule.strict_slashes, websocket=rule.websocket))
        endpoints.add(rule.endpoint)
    app.extensions["cluster_endpoints"] = frozenset(endpoints)

    @app.before_request
    def _known_cluster() -> None:
        """404 for a cluster nobody added, and for ``default`` (its pages have one address, without the prefix).
        Registered last, after the sign-in and role checks: an anonymous visitor learns no cluster's name. The
        name is kept as ``g.refused_cluster`` (the audit entry of the refused request names it), the request
        itself goes on in the default cluster (its 404 page)."""
        name = g.get("cluster")
        if name is not None and (name == DEFAULT_CLUSTER or not any(info.name == name for info in clusters())):
            g.refused_cluster = g.pop("cluster")
            abort(404)


def cluster_state(key: str, factory: Callable[[], T]) -> T:
    """This process's ``key`` state of the current cluster (a tracker, a memo, a last-known answer), made by
    ``factory`` the first time: what one Proxmox answered must never stand for another's."""
    per_cluster = current_app.extensions.setdefault(key, {})
    name = current_cluster_name()
    state = per_cluster.get(name)
    if state is None:
        state = per_cluster.setdefault(name, factory())
    return state
