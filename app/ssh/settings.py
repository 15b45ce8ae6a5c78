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
