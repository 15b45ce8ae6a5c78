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
import weakref

from flask import Flask, current_app

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
    if app.config.get("PVE_HOST"):
        settings = ProxmoxSettings.from_config(app.config)
        prefix = app.config.get("PVE_CACHE_PREFIX") or f"proxboard:pve:{settings.address}"
        cache = ReadCache(settings.cache_seconds, redis_url=app.config.get("REDIS_URL") or None, prefix=prefix,
                          lock_timeout=settings.timeout * 2 + 5)
        backup_cache = ReadCache(float(app.config.get("PVE_BACKUP_INDEX_SECONDS") or BACKUP_INDEX_SECONDS),
                                 redis_url=app.config.get("REDIS_URL") or None, prefix=f"{prefix}:backups",
                                 lock_timeout=settings.timeout * 4 + 5)
        rrd_cache = ReadCache(RRD_KEEP_SECONDS if app.config.get("PVE_RRD_CACHE", True) else 0,
                              redis_url=app.config.get("REDIS_URL") or None, prefix=f"{prefix}:rrd",
                              lock_timeout=settings.timeout * 2 + 5)
        client = ProxmoxClient(settings, cache=cache, backup_cache=backup_cache, rrd_cache=rrd_cache)
    else:
        logging.getLogger("app.proxmox").warning("PVE_HOST is not set: Proxmox features are off")
        client = ProxmoxClient(None)
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


def get_proxmox() -> ProxmoxClient:
    """The current app's ProxmoxClient (needs an app context)."""
    return current_app.extensions[EXTENSION_KEY]
