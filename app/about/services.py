"""What the About page and ``flask pve check`` report about the Proxmox connection."""
from __future__ import annotations

from dataclasses import dataclass, field

from app.proxmox import ClusterVersion, Node, ProxmoxError, get_proxmox
from app.proxmox.deadline import settle
from app.proxmox.permissions import Check, check_requirements

SUPPORTED_RELEASES = ("8.4", "9.0", "9.1", "9.2")


@dataclass
class ConnectionReport:
    """Version, nodes and privilege checks; each part ``None`` with an error text when it could not be read."""

    describe: str | None = None
    version: ClusterVersion | None = None
    nodes: tuple[Node, ...] = ()
    checks: list[Check] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # part -> message

    @property
    def supported(self) -> bool | None:
        """Whether the Proxmox release is one Proxboard supports (None when unknown)."""
        if self.version is None:
            return None
        release = self.version.release or ""
        return release.startswith("9.") or release == "8.4"


def connection_report() -> ConnectionReport:
    """Ask Proxmox for its version, nodes and the token's permissions, in parallel (three GETs
    under the request's deadline).

    Never raises: a part Proxmox refuses or cannot answer is reported in ``errors``.
    """
    pve = get_proxmox()
    report = ConnectionReport(describe=pve.settings.describe() if pve.settings else None)
    if pve.settings is None:
        report.errors["connection"] = "Proxmox is not configured (set PROXBOARD_PVE_HOST and a token)."
        return report
    parts = ("version", "nodes", "permissions")
    for part, value in zip(parts, settle(pve.version, pve.nodes, pve.permissions)):
        if isinstance(value, ProxmoxError):
            report.errors[part] = value.message
            continue
        if isinstance(value, Exception):
            raise value
        if part == "version":
            report.version = value
        elif part == "nodes":
            report.nodes = value
        else:
            report.checks = check_requirements(value)
    return report
