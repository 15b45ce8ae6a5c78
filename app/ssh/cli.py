"""``flask ssh …``: trust a node's host key, check a node's SSH access."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from . import SSHError, open_pool, ssh_settings
from .known_hosts import fetch_host_key, record_host_key, recorded_key, fingerprint

ssh_cli = AppGroup("ssh", help="SSH access to the Proxmox nodes.")


@ssh_cli.command("trust")
@click.argument("node")
@click.option("--yes", is_flag=True, help="Record the key without asking (for scripts).")
def trust_command(node: str, yes: bool) -> None:
    """Show NODE's SSH host key fingerprint and record it in SSH_KNOWN_HOSTS after confirmation.

    Compare the fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` run on
    the node itself before confirming.
    """
    try:
        settings = ssh_settings()
        host = settings.host_for(node)
        presented = fetch_host_key(host, settings.port, settings.connect_timeout)
    except SSHError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Node {node} ({host}:{settings.port}) presents {presented.key_type} {presented.fingerprint}")
    previous = recorded_key(settings.known_hosts, host, settings.port)
    if previous is not None:
        if previous == presented.key:
            click.echo(f"This key is already trusted ({settings.known_hosts}).")
            return
        click.echo(f"WARNING: the recorded key differs: {previous.get_name()} {fingerprint(previous)}")
    if not yes and not click.confirm("Trust this key?", default=False):
        raise click.ClickException("not trusted; nothing was recorded")
    record_host_key(settings.known_hosts, presented)
    click.echo(f"Recorded in {settings.known_hosts}.")


@ssh_cli.command("check")
@click.argument("node")
def check_command(node: str) -> None:
    """Log in to NODE and run `pct list`, reporting what goes wrong."""
    try:
        with open_pool() as pool:
            result = pool.node(node).run("pct list", label="pct list", timeout=30)
    except SSHError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"SSH to {node} works; pct lists {max(len(result.stdout.splitlines()) - 1, 0)} containers.")
