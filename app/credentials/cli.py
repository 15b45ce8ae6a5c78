"""``flask credentials …``: manage the key that encrypts stored credentials."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from .services import rotate_key
from .vault import get_vault

credentials_cli = AppGroup("credentials", help="Manage the credentials encryption key.")


@credentials_cli.command("rotate-key")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def rotate_key_command(yes: bool) -> None:
    """Re-encrypt every stored credential with a new key.

    With the key in instance/credentials_key the file is updated in place. With
    PROXBOARD_CREDENTIALS_KEY set, the new key is printed: set it (as "NEW,OLD" until every
    process has restarted) before restarting the web app and the worker.
    """
    source = get_vault().source
    if not yes and not click.confirm("Re-encrypt all credentials with a new key?", default=False):
        raise click.ClickException("nothing changed")
    rotation = rotate_key()
    click.echo(f"Re-encrypted {rotation.credentials} credentials and {rotation.drafts} wizard secrets.")
    if source == "file":
        click.echo("The new key is in instance/credentials_key.")
    else:
        click.echo("CREDENTIALS_KEY comes from the configuration: replace it with the new key now")
        click.echo("(keep the old one after a comma until the web app and the worker have restarted):")
        click.echo(f"PROXBOARD_CREDENTIALS_KEY={rotation.new_key}")
