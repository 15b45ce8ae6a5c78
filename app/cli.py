"""``flask users …``: manage who may sign in."""
from __future__ import annotations

import secrets
import sys

import click
from flask.cli import AppGroup

from app.auth.services import UserExists, create_user

users_cli = AppGroup("users", help="Manage Proxboard users.")


@users_cli.command("create")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
def create_user_command(username: str, password_stdin: bool) -> None:
    """Create USERNAME, prompting for the password twice."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        create_user(username, password)
    except (UserExists, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Created user {username}.")


@users_cli.command("ensure-admin")
def ensure_admin_command() -> None:
    """On an empty database, create ``admin`` with a random password and print it once."""
    from app.extensions import db
    from app.models import User

    if db.session.scalar(db.select(db.func.count()).select_from(User)):
        click.echo("Sign in with an existing user (create more with `flask users create NAME`).")
        return
    password = secrets.token_urlsafe(12)
    create_user("admin", password)
    click.echo(f"Created the first user. Sign in as admin with password {password} (shown only this once)")
