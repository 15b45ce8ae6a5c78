"""``flask pve …`` commands for operators."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from . import get_proxmox
from .errors import ProxmoxError
from .permissions import check_requirements

pve_cli = AppGroup("pve", help="Inspect the Proxmox VE connection.")


@pve_cli.command("check")
def check_command() -> None:
    """Connect to Proxmox and report version, nodes and container count (exit 1 on failure)."""
    client = get_proxmox()
    settings = client.settings
    if settings is None:
        click.echo("Proxmox is not configured: set PROXBOARD_PVE_HOST and credentials.", err=True)
        raise SystemExit(1)
    click.echo(f"Connection: {settings.describe()}")
    verify = settings.verify_ssl
    click.echo(f"TLS verify: {'CA bundle ' + verify if isinstance(verify, str) else verify}")
    try:
        version = client.version()
        nodes = client.nodes()
        containers = client.list_containers(include_templates=True)
    except ProxmoxError as exc:
        click.echo(f"FAILED: {exc.message}", err=True)
        raise SystemExit(1) from None
    click.echo(f"Version: pve-manager {version.version} (release {version.release})")
    click.echo("Nodes: " + ", ".join(f"{n.name} ({n.status})" for n in nodes))
    templates = sum(1 for ct in containers if ct.template)
    click.echo(f"Containers: {len(containers) - templates} (+ {templates} template{'' if templates == 1 else 's'})")
    release = version.release or ""
    if not (release.startswith("9.") or release == "8.4"):
        click.echo(f"WARNING: Proxmox VE {release} is not a supported release (8.4 and 9.x are).")
    try:
        permissions = client.permissions()
    except ProxmoxError as exc:
        click.echo(f"Privileges: cannot be read: {exc.message}")
    else:
        click.echo("Privileges:")
        for check in check_requirements(permissions):
            req = check.requirement
            line = f"  [{check.state:>7}] {req.privilege} on {req.path}: {req.feature}"
            if check.state != "granted":
                line += f" (without it {req.without})"
            click.echo(line)
    click.echo("OK")
