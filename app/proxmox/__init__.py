"""The only package in Proxboard that talks to Proxmox VE.

Usage inside the app::

    from app.proxmox import get_proxmox
    snapshot = get_proxmox().cluster_snapshot()

and outside Flask (tests, scripts)::

    with ProxmoxClient(ProxmoxSettings(host=..., token_name=..., token_value=...)) as pve:
        pve.list_containers()
"""
from __future__ import annotations

import logging
import threading
import weakref

from flask import Flask, current_app

from app.clusters import DEFAULT_CLUSTER, UnknownCluster, cluster_config, clusters, current_cluster_name

from .cache import ReadCache
from .client import BACKUP_INDEX_SECONDS, RRD_CFS, RRD_KEEP_SECONDS, RRD_TIMEFRAMES, ProxmoxClient
from .errors import (
    ProxmoxAPIError,
    ProxmoxAuthError,
    ProxmoxConfigError,
    ProxmoxError,
    ProxmoxPermissionError,
    ProxmoxSlow,
    ProxmoxUnreachable,
    TaskFailed,
    TaskTimeout,
)
from .models import (
    BackupIndex,
    BackupJob,
    BackupVolume,
    Bridge,
    ClusterSnapshot,
    ClusterVersion,
    ContainerConfig,
    ContainerInterface,
    ContainerSpec,
    ContainerSummary,
    Features,
    GuestNetwork,
    MigratePreconditions,
    MountPoint,
    NetInterface,
    Node,
    NodeStatus,
    OsTemplate,
    RrdData,
    Snapshot,
    Storage,
    Task,
    TaskLogLine,
)
from .models import guest_networks, needs_interfaces, primary_address
from .settings import ProxmoxSettings

__all__ = [
    "guest_networks",
    "needs_interfaces",
    "primary_address",
    "BackupIndex",
    "BackupJob",
    "BackupVolume",
    "Bridge",
    "ClusterSnapshot",
    "ClusterVersion",
    "ContainerConfig",
    "ContainerInterface",
    "ContainerSpec",
    "ContainerSummary",
    "Features",
    "GuestNetwork",
    "MigratePreconditions",
    "MountPoint",
    "NetInterface",
    "Node",
    "NodeStatus",
    "OsTemplate",
    "RrdData",
    "ProxmoxAPIError",
    "ProxmoxPermissionError",
    "ProxmoxAuthError",
    "ProxmoxClient",
    "RRD_CFS",
    "RRD_TIMEFRAMES",
    "ProxmoxConfigError",
    "ProxmoxError",
    "ProxmoxSettings",
    "ProxmoxSlow",
    "ProxmoxUnreachable",
    "Snapshot",
    "Storage",
    "Task",
    "TaskFailed",
    "TaskLogLine",
    "TaskTimeout",
    "get_proxmox",
    "init_app",
]

EXTENSION_KEY = "proxmox"
CLUSTERS_KEY = "proxmox_clusters"  # name -> (settings' updated_at, ProxmoxClient), clusters other than default
_build_lock = threading.Lock()


def init_app(app: Flask) -> ProxmoxClient:
    """Attach a ProxmoxClient built from ``app.config`` as ``app.extensions["proxmox"]``.

    No connection is made here, so the app starts while Proxmox is down. Without
    ``PVE_HOST`` the client is registered unconfigured (every call raises
    ProxmoxConfigError, ``health()`` says "not configured"); other invalid PVE_*
    values raise ProxmoxConfigError now, at startup. With ``REDIS_URL`` the read cache lives in
    Redis under ``PVE_CACHE_PREFIX`` (default per Proxmox address), shared by every process;
    ``PVE_REQUEST_DEADLINE`` bounds all the Proxmox calls of one web request together;
    ``PVE_BACKUP_INDEX_SECONDS`` is how long the cluster-wide backup index is served before it is swept again;
    ``PVE_RRD_CACHE`` (on by default) keeps RRD statistics for their time frame's resolution.
    """
    client = build_client(app.config)
    app.extensions[EXTENSION_KEY] = client
    from flask import g

    from . import deadline

    @app.before_request
    def _start_proxmox_deadline() -> None:
        seconds = float(app.config.get("PVE_REQUEST_DEADLINE") or 0)
        if seconds:
            g._pve_deadline = deadline.start(seconds)

    @app.teardown_request
    def _stop_proxmox_deadline(_exc: BaseException | None) -> None:
        token = g.pop("_pve_deadline", None)
        if token is not None:
            try:
                deadline.stop(token)
            except ValueError:  # the request ran in another context (test clients do)
                pass

    app.add_template_global(proxmox_slow_notice)
    # Close pooled sockets when the app goes away (tests build many apps) instead of leaving
    # them to the garbage collector, which would emit ResourceWarning.
    weakref.finalize(app, client.close)
    return client


def build_client(config) -> ProxmoxClient:
    """A ProxmoxClient and its read caches for the ``PVE_*`` settings in ``config`` (an app's config, or a
    cluster's settings over it, ``app.clusters.cluster_config``); unconfigured without ``PVE_HOST``.

    Raises ProxmoxConfigError for invalid settings.
    """
    if not config.get("PVE_HOST"):
        logging.getLogger("app.proxmox").warning("PVE_HOST is not set: Proxmox features are off")
        return ProxmoxClient(None)
    settings = ProxmoxSettings.from_config(config)
    prefix = config.get("PVE_CACHE_PREFIX") or f"proxboard:pve:{settings.address}"
    redis_url = config.get("REDIS_URL") or None
    cache = ReadCache(settings.cache_seconds, redis_url=redis_url, prefix=prefix,
                      lock_timeout=settings.timeout * 2 + 5)
    backup_cache = ReadCache(float(config.get("PVE_BACKUP_INDEX_SECONDS") or BACKUP_INDEX_SECONDS),
                             redis_url=redis_url, prefix=f"{prefix}:backups", lock_timeout=settings.timeout * 4 + 5)
    rrd_cache = ReadCache(RRD_KEEP_SECONDS if config.get("PVE_RRD_CACHE", True) else 0,
                          redis_url=redis_url, prefix=f"{prefix}:rrd", lock_timeout=settings.timeout * 2 + 5)
    return ProxmoxClient(settings, cache=cache, backup_cache=backup_cache, rrd_cache=rrd_cache)


def proxmox_slow_notice() -> float | None:
    """The deadline (s) this request's Proxmox calls missed, the first time a template asks, else None.

    Both the page layout and htmx fragments include the banner (``_slow_banner.html``); this
    shows it once per response.
    """
    from flask import g

    from . import deadline

    seconds = deadline.missed()
    if seconds is None or g.get("_pve_slow_shown"):
        return None
    g._pve_slow_shown = True
    return seconds


def get_proxmox(cluster: str | None = None) -> ProxmoxClient:
    """The ProxmoxClient of ``cluster`` (default: the one the request or job works on, ``current_cluster_name``).

    The default cluster's is built at startup from the app's config; another cluster's is built from its
    settings when first asked for, and again after they change (``clusters.updated_at``). Raises UnknownCluster
    (a LookupError) for a cluster no one added or one removed meanwhile, ProxmoxConfigError for a cluster whose
    stored settings are invalid. Needs an app context.
    """
    name = cluster or current_cluster_name()
    if name == DEFAULT_CLUSTER:
        return current_app.extensions[EXTENSION_KEY]
    info = next((info for info in clusters() if info.name == name), None)
    if info is None:
        raise UnknownCluster(f"no cluster named {name!r}")
    built = current_app.extensions.setdefault(CLUSTERS_KEY, {})
    held = built.get(name)
    if held is None or held[0] != info.updated_at:
        with _build_lock:
            held = built.get(name)
            if held is None or held[0] != info.updated_at:
                client = build_client(cluster_config(name))
                weakref.finalize(current_app._get_current_object(), client.close)
                if held is not None:
                    held[1].close()
                built[name] = held = (info.updated_at, client)
    return held[1]


def forget_cluster(name: str) -> None:
    """Close and drop the client of cluster ``name`` (it was removed)."""
    held = current_app.extensions.get(CLUSTERS_KEY, {}).pop(name, None)
    if held is not None:
        held[1].close()
