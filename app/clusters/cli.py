"""``flask clusters …``: the Settings page's clusters from the command line (add, list, check, remove).

The secrets are never arguments (they would stay in the shell's history and the process list): the API token's
secret and the SSH password are prompted for, or read from standard input with ``--secret-stdin``.
"""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from app.clusters import services

clusters_cli = AppGroup("clusters", help="Manage the Proxmox clusters Proxboard watches.")


@clusters_cli.command("add")
@click.argument("name")
@click.option("--host", required=True, help="The Proxmox API's host name or address.")
@click.option("--port", type=int, default=8006, show_default=True)
@click.option("--token-id", required=True, help="user@realm!tokenname, as the Proxmox GUI shows it.")
@click.option("--secret-stdin", is_flag=True, help="Read the API token's secret from standard input (for scripts).")
@click.option("--verify-ssl", default="true", show_default=True, help='"true", "false" or the path of a CA bundle.')
@click.option("--ssh-user", default="root", show_default=True)
@click.option("--ssh-port", type=int, default=22, show_default=True)
@click.option("--ssh-hosts", default="", help="node=address,… for nodes not reached at --host.")
@click.option("--ssh-password", is_flag=True, help="Prompt for an SSH password (else the default cluster's key).")
@click.option("--check/--no-check", default=True, show_default=True, help="Ask Proxmox for its version afterwards.")
@click.option("--update", is_flag=True, help="Change NAME's settings when it exists already (else refuse).")
def add_command(name: str, host: str, port: int, token_id: str, secret_stdin: bool, verify_ssl: str, ssh_user: str,
                ssh_port: int, ssh_hosts: str, ssh_password: bool, check: bool, update: bool) -> None:
    """Add cluster NAME (lower-case letters, digits and dashes), or with --update change its settings."""
    if secret_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = click.prompt("API token secret", hide_input=True)
    password = click.prompt("SSH password", hide_input=True, confirmation_prompt=True) if ssh_password else None
    settings = services.ClusterSettings(host, token_id, secret, port, verify_ssl, ssh_user, ssh_port, ssh_hosts,
                                        password)
    try:
        if update and name in {row.name for row in services.list_clusters()}:
            cluster, done = services.update_cluster(name, settings), "Updated"
        else:
            cluster, done = services.add_cluster(name, settings), "Added"
    except services.ClusterError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{done} cluster {cluster.name} (https://{cluster.host}:{cluster.port}).")
    if check:
        _check(cluster.name)


@clusters_cli.command("list")
def list_command() -> None:
    """List the clusters: name, address, API token, certificate check, container records."""
    table = [("NAME", "ADDRESS", "TOKEN", "VERIFY", "CONTAINERS")]
    for row in services.list_clusters():
        address = f"{row.host}:{row.port}" if row.host else "(not configured)"
        table.append((row.name + (" (environment)" if row.from_environment else ""), address, row.token_id or "-",
                      row.verify_ssl, str(row.containers)))
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    for line in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


@clusters_cli.command("check")
@click.argument("name")
def check_command(name: str) -> None:
    """Ask cluster NAME's Proxmox for its version."""
    _check(name)


@clusters_cli.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def remove_command(name: str, yes: bool) -> None:
    """Remove cluster NAME and Proxboard's records of its containers (the guests stay in Proxmox)."""
    try:
        services.find_cluster(name)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from exc
    if not yes:
        click.confirm(f"Remove cluster {name} and Proxboard's records of its containers?", abort=True)
    try:
        forgotten = services.remove_cluster(name)
    except (LookupError, services.ClusterError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Removed cluster {name} ({forgotten} container record{'s' if forgotten != 1 else ''} forgotten).")


def _check(name: str) -> None:
    from app.proxmox import ProxmoxError

    try:
        click.echo(f"{name}: {services.check_cluster(name)}")
    except LookupError as exc:
        raise click.ClickException(str(exc)) from exc
    except ProxmoxError as exc:
        raise click.ClickException(f"{name}: {exc.message}") from exc
