"""The only package in Proxboard that opens SSH connections (to Proxmox nodes, via paramiko).

Usage inside the app::

    from app.ssh import open_pool
    with open_pool() as pool:
        pool.node("pve1").pct_exec(101, ["systemctl", "is-active", "nginx"])

Host keys are checked against ``SSH_KNOWN_HOSTS``; unknown keys are refused until an
operator runs ``flask ssh trust NODE``.
"""
from __future__ import annotations

from flask import Flask, current_app

from app.clusters import cluster_config

from .client import CommandResult, NodeConnection, pct_exec_command
from .errors import (
    CommandFailed,
    CommandTimeout,
    HostKeyChanged,
    HostKeyUnknown,
    SSHAuthFailed,
    SSHConfigError,
    SSHError,
    SSHUnreachable,
)
from .pool import SSHPool
from .settings import SSHSettings

__all__ = [
    "CommandFailed",
    "CommandResult",
    "CommandTimeout",
    "HostKeyChanged",
    "HostKeyUnknown",
    "NodeConnection",
    "SSHAuthFailed",
    "SSHConfigError",
    "SSHError",
    "SSHPool",
    "SSHSettings",
    "SSHUnreachable",
    "open_pool",
    "pct_exec_command",
    "ssh_settings",
]


def ssh_settings(app: Flask | None = None) -> SSHSettings:
    """SSH settings of the current cluster (``app.clusters.cluster_config``) in ``app`` (default: the current
    app), read when needed, not at startup."""
    app = app or current_app
    return SSHSettings.from_config(cluster_config(app=app), app.instance_path)


def open_pool(app: Flask | None = None) -> SSHPool:
    """A new SSHPool for the current app's settings; use it as a context manager."""
    return SSHPool(ssh_settings(app))
