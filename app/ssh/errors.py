"""The SSH exception family: every paramiko or socket failure is folded into one of these."""
from __future__ import annotations


class SSHError(Exception):
    """Base class; ``str()`` is a message an operator can act on and never holds secrets."""

    def __init__(self, message: str, *, node: str | None = None, vmid: int | None = None) -> None:
        super().__init__(message)
        self.node = node
        self.vmid = vmid


class SSHConfigError(SSHError):
    """The SSH settings are incomplete or invalid."""


class SSHUnreachable(SSHError):
    """The node did not answer, refused the connection, timed out or dropped it."""


class SSHAuthFailed(SSHError):
    """The node rejected the configured key or password."""


class HostKeyUnknown(SSHError):
    """The node's host key is not in the known-hosts file; ``flask ssh trust NODE`` records it."""

    def __init__(self, message: str, *, node: str, host: str, fingerprint: str) -> None:
        super().__init__(message, node=node)
        self.host = host
        self.fingerprint = fingerprint


class HostKeyChanged(SSHError):
    """The node presented a different host key than the one recorded: possible interception."""

    def __init__(self, message: str, *, node: str, host: str, expected: str, fingerprint: str) -> None:
        super().__init__(message, node=node)
        self.host = host
        self.expected = expected
        self.fingerprint = fingerprint


class CommandFailed(SSHError):
    """A command ran and exited non-zero."""

    def __init__(
        self, message: str, *, node: str, vmid: int | None, exit_code: int, stderr: str, stdout: str = ""
    ) -> None:
        super().__init__(message, node=node, vmid=vmid)
        self.exit_code = exit_code
        self.stderr = stderr
        self.stdout = stdout


class CommandTimeout(SSHError):
    """A command did not finish within its timeout (it was abandoned, its channel closed)."""

    def __init__(self, message: str, *, node: str, vmid: int | None, timeout: float) -> None:
        super().__init__(message, node=node, vmid=vmid)
        self.timeout = timeout
