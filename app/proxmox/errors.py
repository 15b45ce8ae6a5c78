"""The small family of errors raised by the Proxmox client.

Every error carries ``message``, a sentence fit to show a user, plus the context
(operation, node, vmid) the client logged it with.
"""
from __future__ import annotations

from collections.abc import Mapping


class ProxmoxError(Exception):
    """Base class: something went wrong talking to Proxmox."""

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        node: str | None = None,
        vmid: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.node = node
        self.vmid = vmid


class ProxmoxConfigError(ProxmoxError, ValueError):
    """The PVE_* settings are missing or invalid."""


class ProxmoxUnreachable(ProxmoxError):
    """Proxmox could not be reached: refused, DNS, TLS or timeout."""


class ProxmoxSlow(ProxmoxUnreachable):
    """Proxmox did not answer within the request's deadline (see ``deadline.py``): slow, not down."""


class ProxmoxAuthError(ProxmoxError):
    """Proxmox rejected the credentials (HTTP 401) or the permission check (HTTP 403)."""

    def __init__(self, message: str, *, status_code: int = 401, **context) -> None:
        super().__init__(message, **context)
        self.status_code = status_code


class ProxmoxPermissionError(ProxmoxAuthError):
    """Proxmox answered 403: the token or user lacks a privilege; Proxmox itself is reachable.

    ``path`` and ``privilege`` come from Proxmox's text ``Permission check failed (/vms/101,
    VM.PowerMgmt)`` (pve-access-control ``PVE::RPCEnvironment::check``); either may be None
    when Proxmox gave another text.
    """

    def __init__(self, message: str, *, path: str | None = None, privilege: str | None = None,
                 pve_message: str = "", **context) -> None:
        super().__init__(message, status_code=403, **context)
        self.path = path
        self.privilege = privilege
        self.pve_message = pve_message


class ProxmoxAPIError(ProxmoxError):
    """Proxmox answered with an error status; ``pve_message`` is its own text."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        pve_message: str = "",
        errors: Mapping[str, str] | None = None,
        **context,
    ) -> None:
        super().__init__(message, **context)
        self.status_code = status_code
        self.pve_message = pve_message
        self.errors: dict[str, str] = dict(errors or {})

    @property
    def not_found(self) -> bool:
        """True when Proxmox says the container (or another object) does not exist."""
        return "does not exist" in self.pve_message or self.status_code == 404

    @property
    def node_unreachable(self) -> bool:
        """True when the API node answered but could not reach the node the call is for.

        pveproxy proxies a ``/nodes/{node}/...`` call to that node and answers 595 (596 for a
        TLS failure) when it cannot connect: the node is offline, not Proxmox.
        """
        return self.status_code in (595, 596)


class TaskFailed(ProxmoxError):
    """A Proxmox task finished with an exit status other than OK/WARNINGS."""

    def __init__(self, message: str, *, upid: str, exitstatus: str, **context) -> None:
        super().__init__(message, **context)
        self.upid = upid
        self.exitstatus = exitstatus


class TaskTimeout(ProxmoxError, TimeoutError):
    """A Proxmox task was still running when ``wait_task`` gave up."""

    def __init__(self, message: str, *, upid: str, **context) -> None:
        super().__init__(message, **context)
        self.upid = upid
