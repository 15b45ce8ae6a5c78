"""Managing other people's accounts (the admin's Users page and ``flask users``): create, disable and enable,
delete, set the role, reset the password or the second factor, require a second factor.

Every change writes its audit entry (``app.audit.record``) and commits it with the change; a refusal by one
of the guards below is recorded as ``refused`` and committed alone. The guards:

- there is always at least one *active admin*: the last one cannot be demoted, disabled or deleted;
- nobody disables or deletes their own account, and demoting oneself needs ``confirmed=True``.

The admin counts lock every active admin's row (``FOR UPDATE`` on PostgreSQL), so two admins demoting each
other at the same moment cannot both succeed; SQLite runs one writer at a time anyway.

``actor`` is the admin doing it (None on the command line); ``channel`` is passed to the audit log
(``"cli"`` from ``flask users``, the default otherwise).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from app import audit
from app.auth import services as auth_services
from app.extensions import db
from app.models import ROLES, Passkey, RecoveryCode, User, utcnow
from app.models.user import UserSession

UserExists = auth_services.UserExists


class UserError(ValueError):
    """A change that cannot be made as asked; ``str(error)`` is a sentence for the person asking."""


class UserRefused(UserError):
    """A guard refused the change (the last active admin, one's own account); the refusal is in the audit log."""


class SelfDemotion(UserError):
    """The actor is lowering their own role: allowed only with ``confirmed=True``."""


@dataclass(frozen=True)
class UserRow:
    """One line of the Users page: the user and what is counted about them."""

    user: User
    passkeys: int
    sessions: int

    @property
    def totp(self) -> bool:
        """Whether an authenticator app (TOTP) is enrolled and confirmed."""
        return self.user.totp_enabled_at is not None

    @property
    def source(self) -> str:
        """How they sign in: ``"SSO"`` once linked to an OpenID Connect identity, else ``"local"``."""
        return "SSO" if self.user.oidc_subject else "local"


def generate_password() -> str:
    """A random password of 16 URL-safe characters (shown once, never stored in the clear)."""
    return secrets.token_urlsafe(12)


def list_users() -> list[UserRow]:
    """Every user by name (case-insensitive), with their passkey and live-session counts, in one query."""
    passkeys = (db.select(db.func.count(Passkey.id)).where(Passkey.user_id == User.id)
                .correlate(User).scalar_subquery())
    sessions = (db.select(db.func.count(UserSession.id)).where(UserSession.user_id == User.id)
                .correlate(User).scalar_subquery())
    rows = db.session.execute(db.select(User, passkeys, sessions).order_by(db.func.lower(User.username), User.id))
    return [UserRow(user, passkey_count, session_count) for user, passkey_count, session_count in rows]


def get_user(user_id: int) -> User:
    """The user with id ``user_id``; raises ``LookupError`` when there is none."""
    user = db.session.get(User, user_id)
    if user is None:
        raise LookupError(f"There is no user {user_id}.")
    return user


def find_user(username: str) -> User:
    """The user named ``username`` (exactly, surrounding spaces ignored); raises ``LookupError`` naming it."""
    user = db.session.scalar(db.select(User).filter_by(username=username.strip()))
    if user is None:
        raise LookupError(f"There is no user {username.strip()!r}.")
    return user


def row_for(user: User) -> UserRow:
    """``user`` with their counts, as ``list_users`` gives them."""
    passkeys = db.session.scalar(db.select(db.func.count(Passkey.id)).filter_by(user_id=user.id))
    sessions = db.session.scalar(db.select(db.func.count(UserSession.id)).filter_by(user_id=user.id))
    return UserRow(user, passkeys, sessions)


def check_username(username: str) -> str:
    """``username`` without surrounding spaces; raises ``UserError`` with the rule it breaks (see
    ``app.auth.services.check_username``: not empty, fits the column, letters, digits and . _ @ -)."""
    try:
        return auth_services.check_username(username)
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def check_role(role: str) -> str:
    """``role`` when it is one of ``ROLES``; raises ``UserError`` naming the choices otherwise."""
    if role not in ROLES:
        raise UserError(f"Unknown role {role!r}: choose one of {', '.join(ROLES)}.")
    return role


def create_account(username: str, *, role: str | None = None, password: str | None = None,
                   actor: User | None = None, channel: str | None = None) -> tuple[User, str | None]:
    """Create a user and return ``(user, generated)``: ``generated`` is the random password made when
    ``password`` is None or empty (to show once), else None.

    ``role`` None follows ``create_user``: admin for the very first user, viewer afterwards. Audited as
    ``user.created`` with ``{"role": ...}``. Raises ``UserError`` for a bad name or role, ``UserExists``
    for a taken name, ``ValueError`` for a password too short; nothing is saved then.
    """
    username = check_username(username)
    if role is not None:
        check_role(role)
    generated = None if password else generate_password()
    try:
        user = auth_services.create_user(username, password or generated, role=role, commit=False)
        audit.record("user.created", user=actor, target=_target(user), detail={"role": user.role}, channel=channel)
        db.session.commit()
    except IntegrityError as exc:  # the same name created in the same instant elsewhere
        db.session.rollback()
        raise UserExists(f"User {username!r} already exists.") from exc
    except Exception:
        db.session.rollback()
        raise
    return user, generated


def set_role(user: User, role: str, *, actor: User | None = None, confirmed: bool = False,
             channel: str | None = None) -> bool:
    """Give ``user`` the role ``role``; returns False when they already had it (nothing recorded).

    Audited as ``user.role_changed`` with ``{"from": old, "to": new}``. Raises ``UserError`` for an unknown
    role, ``UserRefused`` when it would leave no active admin, ``SelfDemotion`` when ``actor`` lowers their
    own role without ``confirmed``.
    """
    check_role(role)
    old = user.role
    if role == old:
        return False
    if is_last_active_admin(user):
        _refuse("user.role_changed", user, actor, channel,
                f"{user.username} is the last active admin: make someone else admin first.", {"from": old, "to": role})
    if actor is not None and actor.id == user.id and ROLES.index(role) < ROLES.index(old) and not confirmed:
        raise SelfDemotion(f"Confirm to make yourself {role}.")
    user.role = role
    audit.record("user.role_changed", user=actor, target=_target(user), detail={"from": old, "to": role},
                 channel=channel)
    db.session.commit()
    return True


def disable(user: User, *, actor: User | None = None, channel: str | None = None) -> int:
    """Disable ``user``: they cannot sign in, their sessions end at once (the count is returned) and their API
    tokens are refused. Already disabled: nothing happens, 0 is returned.

    Audited as ``user.disabled``. Raises ``UserRefused`` for one's own account or the last active admin.
    """
    if not user.is_active:
        return 0
    if actor is not None and actor.id == user.id:
        _refuse("user.disabled", user, actor, channel, "You cannot disable your own account.")
    if is_last_active_admin(user):
        _refuse("user.disabled", user, actor, channel,
                f"{user.username} is the last active admin: make someone else admin first.")
    user.disabled_at = utcnow()
    ended = _end_sessions(user)
    audit.record("user.disabled", user=actor, target=_target(user), detail={"sessions_ended": ended}, channel=channel)
    db.session.commit()
    return ended


def enable(user: User, *, actor: User | None = None, channel: str | None = None) -> bool:
    """Let a disabled ``user`` sign in again (their password and second factor are unchanged); returns False
    when they were not disabled. Audited as ``user.enabled``."""
    if user.is_active:
        return False
    user.disabled_at = None
    audit.record("user.enabled", user=actor, target=_target(user), channel=channel)
    db.session.commit()
    return True


def delete(user: User, *, actor: User | None = None, channel: str | None = None) -> None:
    """Delete ``user`` with their sessions, second factors and API tokens (the database cascades); audit
    entries keep their name. Audited as ``user.deleted`` with their role.

    Raises ``UserRefused`` for one's own account or the last active admin.
    """
    if actor is not None and actor.id == user.id:
        _refuse("user.deleted", user, actor, channel, "You cannot delete your own account.")
    if is_last_active_admin(user):
        _refuse("user.deleted", user, actor, channel,
                f"{user.username} is the last active admin: make someone else admin first.")
    audit.record("user.deleted", user=actor, target=_target(user), detail={"role": user.role}, channel=channel)
    db.session.delete(user)
    db.session.commit()


def reset_password(user: User, *, actor: User | None = None, channel: str | None = None) -> str:
    """Give ``user`` a new random password and return it (to show once); all their sessions end.

    Audited as ``user.password_reset`` (without the password). Raises ``UserRefused`` for one's own account
    (that is what *Change password* is for: it asks the current one and keeps this session).
    """
    if actor is not None and actor.id == user.id:
        _refuse("user.password_reset", user, actor, channel,
                "Change your own password under Change password in the user menu.")
    password = generate_password()
    user.set_password(password)
    ended = _end_sessions(user)
    audit.record("user.password_reset", user=actor, target=_target(user), detail={"sessions_ended": ended},
                 channel=channel)
    db.session.commit()
    return password


def set_require_2fa(user: User, required: bool, *, actor: User | None = None, channel: str | None = None) -> bool:
    """Require (or stop requiring) a second factor for ``user`` at sign-in; returns False when nothing changed.

    Audited as ``user.2fa_required`` or ``user.2fa_not_required``.
    """
    if user.require_2fa == required:
        return False
    user.require_2fa = required
    audit.record("user.2fa_required" if required else "user.2fa_not_required", user=actor, target=_target(user),
                 channel=channel)
    db.session.commit()
    return True


def reset_2fa(user: User, *, actor: User | None = None, channel: str | None = None) -> dict[str, int | bool]:
    """Remove ``user``'s authenticator app (TOTP), recovery codes and passkeys, for someone who lost their
    phone or key; returns what was removed: ``{"totp": bool, "recovery_codes": n, "passkeys": n}``.

    Their password stays; with ``require_2fa`` they enrol again at their next sign-in. Audited as
    ``user.2fa_reset`` with those counts.
    """
    removed = {
        "totp": user.totp_secret is not None or user.totp_enabled_at is not None,
        "recovery_codes": db.session.execute(db.delete(RecoveryCode).filter_by(user_id=user.id)).rowcount,
        "passkeys": db.session.execute(db.delete(Passkey).filter_by(user_id=user.id)).rowcount,
    }
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    audit.record("user.2fa_reset", user=actor, target=_target(user), detail=removed, channel=channel)
    db.session.commit()
    return removed


def is_last_active_admin(user: User) -> bool:
    """Whether ``user`` is an active admin and no one else is (so they must stay one)."""
    return user.role == "admin" and user.is_active and _other_active_admins(user) == 0


def _target(user: User) -> str:
    return f"user {user.username}"


def _end_sessions(user: User) -> int:
    """End every session of ``user`` in the current transaction (the caller commits)."""
    return db.session.execute(db.delete(UserSession).filter_by(user_id=user.id)).rowcount


def _other_active_admins(user: User) -> int:
    """How many active admins there are besides ``user``. Every active admin's row, ``user``'s too, stays locked
    until commit on PostgreSQL (in id order, so two callers never deadlock): a second caller waits, then counts
    what the first one left."""
    ids = db.session.scalars(db.select(User.id).where(User.role == "admin", User.disabled_at.is_(None))
                             .order_by(User.id).with_for_update())
    return sum(1 for user_id in ids if user_id != user.id)


def _refuse(action: str, user: User, actor: User | None, channel: str | None, message: str,
            detail: dict | None = None) -> None:
    """Record ``action`` as refused (committed on its own) and raise ``UserRefused(message)``."""
    db.session.rollback()
    audit.record(action, outcome="refused", user=actor, target=_target(user),
                 detail={**(detail or {}), "reason": message}, channel=channel)
    db.session.commit()
    raise UserRefused(message)
