"""``flask users …``: the Users page from the command line, for scripts and for an admin locked out.

Every change goes through ``app.users.services`` (the same guards: the last active admin stays an active admin)
and is audited with ``channel="cli"`` and no user (whoever runs ``flask`` on the server).
"""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from app.extensions import db
from app.models import ROLES, User
from app.users import services

users_cli = AppGroup("users", help="Manage Proxboard users.")
CLI = "cli"


def _find(username: str) -> User:
    """The user ``username``, or a ClickException naming it (exit status 1)."""
    try:
        return services.find_user(username)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from exc


def _refused(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@users_cli.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default=None,
              help="viewer, operator or admin (default: admin for the first user, viewer after).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
def create_user_command(username: str, role: str | None, password_stdin: bool) -> None:
    """Create USERNAME, prompting for the password twice."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user, _ = services.create_account(username, role=role, password=password, channel=CLI)
    except ValueError as exc:  # UserExists, UserError, a password too short
        raise _refused(exc) from exc
    click.echo(f"Created user {user.username} ({user.role}).")


@users_cli.command("list")
def list_command() -> None:
    """List every user: name, role, state, second factor, last sign-in, sessions."""
    rows = services.list_users()
    if not rows:
        click.echo("No users yet (create one with `flask users create NAME`).")
        return
    table = [("NAME", "ROLE", "STATE", "2FA", "SIGNS IN", "LAST SIGN-IN", "SESSIONS")]
    for row in rows:
        factors = [name for name, on in (("totp", row.totp), (f"{row.passkeys} passkeys", row.passkeys)) if on]
        if row.user.require_2fa:
            factors.append("required")
        last = row.user.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if row.user.last_login_at else "never"
        table.append((row.user.username, row.user.role, "active" if row.user.is_active else "disabled",
                      ", ".join(factors) or "-", row.source, last, str(row.sessions)))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


@users_cli.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
def set_role_command(username: str, role: str) -> None:
    """Give USERNAME the role ROLE (the last active admin stays admin)."""
    user = _find(username)
    old = user.role
    try:
        changed = services.set_role(user, role, channel=CLI)
    except services.UserError as exc:
        raise _refused(exc) from exc
    click.echo(f"{user.username} is now {role} (was {old})." if changed else f"{user.username} already is {role}.")


@users_cli.command("disable")
@click.argument("username")
def disable_command(username: str) -> None:
    """Disable USERNAME: signed out everywhere at once, no sign-in, API tokens refused."""
    user = _find(username)
    if not user.is_active:
        click.echo(f"{user.username} already is disabled.")
        return
    try:
        ended = services.disable(user, channel=CLI)
    except services.UserError as exc:
        raise _refused(exc) from exc
    click.echo(f"Disabled {user.username}; {ended} session{'s' if ended != 1 else ''} ended.")


@users_cli.command("enable")
@click.argument("username")
def enable_command(username: str) -> None:
    """Let a disabled USERNAME sign in again."""
    user = _find(username)
    if services.enable(user, channel=CLI):
        click.echo(f"Enabled {user.username}: they may sign in again.")
    else:
        click.echo(f"{user.username} already is enabled.")


@users_cli.command("reset-2fa")
@click.argument("username")
def reset_2fa_command(username: str) -> None:
    """Remove USERNAME's authenticator app, recovery codes and passkeys (a lost phone); the password stays."""
    user = _find(username)
    removed = services.reset_2fa(user, channel=CLI)
    click.echo(f"Reset the second factor of {user.username}: "
               f"{'authenticator app, ' if removed['totp'] else ''}{removed['recovery_codes']} recovery codes and "
               f"{removed['passkeys']} passkeys removed. They sign in with their password"
               f"{' and enrol a new second factor' if user.require_2fa else ''}.")


@users_cli.command("reset-password")
@click.argument("username")
def reset_password_command(username: str) -> None:
    """Give USERNAME a new random password, printed once, and sign them out everywhere (a forgotten password)."""
    user = _find(username)
    password = services.reset_password(user, channel=CLI)
    click.echo(f"New password for {user.username}: {password} (shown only this once; their sessions have ended)")


@users_cli.command("ensure-admin")
def ensure_admin_command() -> None:
    """On an empty database, create ``admin`` with a random password and print it once."""
    if db.session.scalar(db.select(db.func.count()).select_from(User)):
        click.echo("Sign in with an existing user (create more with `flask users create NAME`).")
        return
    _, password = services.create_account("admin", role="admin", channel=CLI)
    click.echo(f"Created the first user. Sign in as admin with password {password} (shown only this once)")
