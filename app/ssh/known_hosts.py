"""Host-key verification: the known-hosts file and the explicit trust step."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import paramiko

from .errors import HostKeyUnknown, SSHUnreachable


def host_entry(host: str, port: int) -> str:
    """The name a host is filed under in known_hosts (``[host]:port`` off port 22)."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:…`` fingerprint of a host key."""
    return key.fingerprint


def load_known_hosts(path: str) -> paramiko.HostKeys:
    """The recorded host keys (empty when the file does not exist yet)."""
    keys = paramiko.HostKeys()
    if Path(path).exists():
        keys.load(path)
    return keys


def recorded_key(path: str, host: str, port: int) -> paramiko.PKey | None:
    """The first key recorded for ``host:port``, if any."""
    entry = load_known_hosts(path).lookup(host_entry(host, port))
    if not entry:
        return None
    return next(iter(entry.values()))


@dataclass(frozen=True, slots=True)
class PresentedKey:
    """The host key a server presents, before anything trusts it."""

    host: str
    port: int
    key: paramiko.PKey

    @property
    def fingerprint(self) -> str:
        """``SHA256:…`` as ``ssh-keygen -lf`` shows it."""
        return fingerprint(self.key)

    @property
    def key_type(self) -> str:
        """``ssh-ed25519``, ``ssh-rsa``…"""
        return self.key.get_name()


def fetch_host_key(host: str, port: int, timeout: float) -> PresentedKey:
    """Connect, complete the key exchange and return the server's host key; no login happens."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise SSHUnreachable(f"cannot connect to {host}:{port}: {exc}") from exc
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    try:
        transport.start_client(timeout=timeout)
        return PresentedKey(host, port, transport.get_remote_server_key())
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise SSHUnreachable(f"no SSH key exchange with {host}:{port}: {exc}") from exc
    finally:
        transport.close()


def record_host_key(path: str, presented: PresentedKey) -> None:
    """Store ``presented`` as the only key of its host in ``path`` (created with mode 0600)."""
    keys = load_known_hosts(path)
    name = host_entry(presented.host, presented.port)
    if name in keys:
        del keys[name]
    keys.add(name, presented.key_type, presented.key)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    keys.save(tmp)
    os.replace(tmp, path)


class RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    """Like paramiko's RejectPolicy, but the error carries the fingerprint and the fix."""

    def __init__(self, node: str) -> None:
        self.node = node

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        """Refuse the connection: unknown keys are only trusted through ``flask ssh trust``."""
        print_fp = fingerprint(key)
        raise HostKeyUnknown(
            f"host key of node {self.node} ({hostname}) is not trusted yet: {key.get_name()} {print_fp}. "
            f"Check it on the node (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) and run "
            f"`flask ssh trust {self.node}` to record it",
            node=self.node,
            host=hostname,
            fingerprint=print_fp,
        )
