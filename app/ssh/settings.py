"""SSH connection settings, read from the Flask config (``PROXBOARD_SSH_*`` env vars)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SSHConfigError


@dataclass(frozen=True, slots=True)
class SSHSettings:
    """How to reach the Proxmox nodes over SSH. The password stays out of ``repr``."""

    default_host: str | None
    known_hosts: str
    hosts: Mapping[str, str] = field(default_factory=dict)
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    password: str | None = field(default=None, repr=False)
    connect_timeout: float = 10.0
    command_timeout: float = 120.0
    keepalive: int = 30
    remote_tmp: str = "/tmp"

    def __post_init__(self) -> None:
        if not self.key_file and not self.password:
            raise SSHConfigError("no SSH credentials: set SSH_KEY_FILE (preferred) or SSH_PASSWORD")
        if self.key_file and not Path(self.key_file).is_file():
            raise SSHConfigError(f"SSH_KEY_FILE {self.key_file!r} does not exist")
        if self.connect_timeout <= 0 or self.command_timeout <= 0:
            raise SSHConfigError("SSH timeouts must be positive numbers of seconds")

    def host_for(self, node: str) -> str:
        """The address to SSH to for ``node``: its SSH_HOSTS entry, else PVE_HOST."""
        host = self.hosts.get(node) or self.default_host
        if not host:
            raise SSHConfigError(f"no SSH host for node {node!r}: set SSH_HOSTS or PVE_HOST", node=node)
        return host

    @classmethod
    def from_config(cls, config: Mapping[str, Any], instance_path: str) -> SSHSettings:
        """Build settings from Flask config keys, coercing strings from the environment."""
        known_hosts = config.get("SSH_KNOWN_HOSTS") or str(Path(instance_path) / "known_hosts")
        return cls(
            default_host=config.get("SSH_DEFAULT_HOST") or config.get("PVE_HOST") or None,
            known_hosts=str(known_hosts),
            hosts=parse_hosts(config.get("SSH_HOSTS")),
            port=int(config.get("SSH_PORT") or 22),
            user=str(config.get("SSH_USER") or "root"),
            key_file=config.get("SSH_KEY_FILE") or None,
            password=config.get("SSH_PASSWORD") or None,
            connect_timeout=float(config.get("SSH_CONNECT_TIMEOUT") or 10),
            command_timeout=float(config.get("SSH_COMMAND_TIMEOUT") or 120),
            keepalive=int(config.get("SSH_KEEPALIVE_SECONDS") or 0),
            remote_tmp=str(config.get("SSH_REMOTE_TMP") or "/tmp"),
        )


def parse_hosts(value: object) -> dict[str, str]:
    """``"pve1=10.0.0.11,pve2=10.0.0.12"`` or a dict, as ``{node: host}``."""
    if not value:
        return {}
    if isinstance(value, Mapping):
        return {str(node): str(host) for node, host in value.items()}
    hosts: dict[str, str] = {}
    for item in str(value).split(","):
        if not item.strip():
            continue
        node, sep, host = item.partition("=")
        if not sep or not node.strip() or not host.strip():
            raise SSHConfigError(f"SSH_HOSTS entry {item.strip()!r} is not NODE=HOST")
        hosts[node.strip()] = host.strip()
    return hosts


@dataclass(frozen=True, slots=True)
class SSHProblem:
    """Why SSH to a node cannot work yet, found without connecting, and what the operator does about it.

    ``kind`` is ``"settings"`` (no credentials, no host, an invalid value) or ``"host_key"`` (the
    node's key is not in the known-hosts file yet).
    """

    node: str
    kind: str
    reason: str
    fix: str

    def __str__(self) -> str:
        return f"{self.reason}. {self.fix}"


SETTINGS_FIX = ("Set PROXBOARD_SSH_KEY_FILE (a private key root on the node accepts; preferred) or "
                "PROXBOARD_SSH_PASSWORD, and PROXBOARD_SSH_HOSTS (pve1=10.0.0.11,…) for nodes not reached at "
                "PROXBOARD_PVE_HOST, then restart Proxboard and its worker")


def ssh_problem(config: Mapping[str, Any], instance_path: str, node: str) -> SSHProblem | None:
    """What keeps SSH to ``node`` from working with these settings, or None when it is configured.

    Configured means: credentials (key file that exists, or password), an address for the node
    (SSH_HOSTS entry or PVE_HOST) and its host key recorded in SSH_KNOWN_HOSTS. Reads the config
    and the known-hosts file only; never opens a connection, so a wrong key or a node that is
    down still shows up only when connecting.
    """
    from .known_hosts import recorded_key

    try:
        settings = SSHSettings.from_config(config, instance_path)
        host = settings.host_for(node)
    except SSHConfigError as exc:
        return SSHProblem(node, "settings", f"SSH to node {node} is not configured ({exc})", SETTINGS_FIX)
    except (TypeError, ValueError) as exc:  # e.g. PROXBOARD_SSH_PORT=abc
        return SSHProblem(node, "settings", f"the SSH settings are invalid ({exc})", SETTINGS_FIX)
    try:
        known = recorded_key(settings.known_hosts, host, settings.port) is not None
    except (OSError, ValueError) as exc:  # unreadable or garbled known-hosts file
        return SSHProblem(node, "host_key", f"the SSH known-hosts file {settings.known_hosts} cannot be read ({exc})",
                          f"Fix or remove it, then run `flask ssh trust {node}`")
    if not known:
        return SSHProblem(node, "host_key", f"the SSH host key of node {node} ({host}) is not trusted yet",
                          f"Compare its fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the "
                          f"node and run `flask ssh trust {node}` on the Proxboard host")
    return None
