"""Users and their sign-in sessions: creation, password checks, sessions kept on the server, preferences.

A sign-in session is a row of ``user_sessions``; the browser's cookie holds only a random id whose SHA-256
is that row's ``token_hash``. Ending a session deletes its row, so the cookie stops working in every
process at once (they all read the same database; nothing about sessions is cached in memory).
"""
from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy.orm import joinedload
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.forms import column_length
from app.models import ROLES, THEMES, User, utcnow
from app.models.user import LoginAttempt, UserSession, password_hash_method

logger = logging.getLogger(__name__)

# Compared against when the user does not exist, so both paths cost one hash check.
_DUMMY_HASHES: dict[str, str] = {}


def _dummy_hash() -> str:
    """A hash made like users' ones, checked for unknown names so that they take as long as known ones."""
    method = password_hash_method()
    if method not in _DUMMY_HASHES:
        _DUMMY_HASHES[method] = generate_password_hash("proxboard-dummy-password", method=method)
    return _DUMMY_HASHES[method]
MIN_PASSWORD_LENGTH = 8
# last_seen_at is written at most this often per session: the idle lifetime is in minutes, a write per page is waste.
TOUCH_SECONDS = 60


class UserExists(ValueError):
    """A user with that name already exists."""


class WrongPassword(ValueError):
    """The current password given does not match."""


class SessionExpired(LookupError):
    """The session existed but outlived its idle or absolute lifetime; it has been deleted."""


class SessionNotFound(LookupError):
    """No session with that id belongs to the user."""


def check_new_password(password: str) -> None:
    """Raise ``ValueError`` with a sentence for the user when ``password`` is too weak to set."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"Password must be at least {MIN_PASSWORD_LENGTH} characters.")


# A name people type at the sign-in form and read in logs and the audit log: no spaces, slashes or markup.
USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*")
USERNAME_RULE = "Usernames use letters, digits and . _ @ - and start with a letter or a digit."


def check_username(username: str) -> str:
    """``username`` without surrounding spaces; raises ``ValueError`` with a sentence for the user when it is
    empty, longer than the column takes, or outside ``USERNAME_RE`` (single sign-on names are kept as the
    provider gives them: this rule is for names chosen here)."""
    username = (username or "").strip()
    if not username:
        raise ValueError("Username must not be empty.")
    limit = column_length(User.username)
    if len(username) > limit:
        raise ValueError(f"Username must be at most {limit} characters.")
    if not USERNAME_RE.fullmatch(username):
        raise ValueError(USERNAME_RULE)
    return username


def create_user(username: str, password: str, role: str | None = None, *, commit: bool = True) -> User:
    """Create a user with ``role`` (one of ``ROLES``; by default ``admin`` for the first user, else ``viewer``).

    Raises ``UserExists`` when the name is taken, ``ValueError`` for a name outside ``check_username``, a weak
    password or an unknown role. ``commit=False`` only flushes, for a caller that commits it with its audit entry.
    """
    username = check_username(username)
    if role is not None and role not in ROLES:
        raise ValueError(f"Unknown role {role!r}: choose one of {', '.join(ROLES)}.")
    check_new_password(password)
    if db.session.scalar(db.select(User).filter_by(username=username)):
        raise UserExists(f"User {username!r} already exists.")
    if role is None:
        role = "viewer" if db.session.scalar(db.select(db.func.count()).select_from(User)) else "admin"
    user = User(username=username, role=role)
    user.set_password(password)
    db.session.add(user)
    if commit:
        db.session.commit()
    else:
        db.session.flush()
    return user


def authenticate(username: str, password: str, ip: str | None = None) -> User | None:
    """The user whose name and password match, else None; either way a ``LoginAttempt`` row records it,
    and a failure is logged (name as typed and address, never the password). A disabled user is refused
    like a wrong password (the form says nothing more; the log says why)."""
    username = username.strip()
    user = db.session.scalar(db.select(User).filter_by(username=username))
    if user is None:
        check_password_hash(_dummy_hash(), password)
    matches = user is not None and user.check_password(password)
    ok = matches and user.is_active
    db.session.add(LoginAttempt(username=username[:80], user_id=user.id if user else None, ip=_cut(ip, 45),
                                outcome="succeeded" if ok else "failed"))
    if ok:
        user.last_login_at = utcnow()
    else:
        logger.warning("Failed sign-in for %r from %s%s", username[:80], ip or "an unknown address",
                       ": the account is disabled" if matches else "")
    db.session.commit()
    return user if ok else None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _cut(text: str | None, length: int) -> str | None:
    """``text`` as a column takes it: NUL removed (PostgreSQL refuses it in text), at most ``length`` characters."""
    return text.replace("\x00", "")[:length] or None if text else None


def start_session(user: User, ip: str | None, user_agent: str | None, *, replaces: int | None = None,
                  idle: timedelta, max_age: timedelta) -> str:
    """Open a sign-in session for ``user`` and return its random id (only the cookie keeps it; the database
    keeps its SHA-256). Also sets ``user.session_token``, which Flask-Login's ``login_user`` stores.

    ``replaces``: the id of the session this browser had until now (signing in again over it), ended.
    Sessions past ``idle`` or ``max_age`` (anyone's) are deleted on the way: they can sign no one in.
    """
    if replaces is not None:
        db.session.execute(db.delete(UserSession).filter_by(id=replaces))
    end_expired_sessions(idle=idle, max_age=max_age, commit=False)
    token = secrets.token_urlsafe(32)
    db.session.add(UserSession(user_id=user.id, token_hash=_token_hash(token), ip=_cut(ip, 45),
                               user_agent=_cut(user_agent, 255)))
    db.session.commit()
    user.session_token = token
    return token


def load_session(token: str, ip: str | None, *, idle: timedelta, max_age: timedelta,
                 now: datetime | None = None) -> UserSession | None:
    """The live session whose id is ``token`` with its user loaded (one query), or None when there is none.

    Raises ``SessionExpired`` (after deleting the row) when it was unused for longer than ``idle`` or began
    more than ``max_age`` ago. Refreshes ``last_seen_at`` and ``ip`` at most every ``TOUCH_SECONDS``.
    """
    now = now or utcnow()
    found = db.session.scalar(db.select(UserSession).options(joinedload(UserSession.user))
                              .filter_by(token_hash=_token_hash(token)))
    if found is None:
        return None
    if now - found.last_seen_at > idle or now - found.created_at > max_age:
        db.session.delete(found)
        db.session.commit()
        raise SessionExpired(found.id)
    if (now - found.last_seen_at).total_seconds() >= TOUCH_SECONDS or (ip and found.ip != _cut(ip, 45)):
        found.last_seen_at = now
        found.ip = _cut(ip, 45)
        db.session.commit()
    return found


def list_sessions(user: User) -> list[UserSession]:
    """``user``'s sessions, most recently used first."""
    return list(db.session.scalars(user.sessions.select().order_by(UserSession.last_seen_at.desc(),
                                                                   UserSession.id.desc())))


def end_session(user: User, session_id: int) -> None:
    """End one of ``user``'s sessions; raises ``SessionNotFound`` when it is not theirs (or no longer exists)."""
    deleted = db.session.execute(db.delete(UserSession).filter_by(id=session_id, user_id=user.id)).rowcount
    db.session.commit()
    if not deleted:
        raise SessionNotFound(session_id)


def end_sessions(user: User, *, keep: int | None = None) -> int:
    """End all of ``user``'s sessions but ``keep`` (a session id, e.g. the current one); returns how many ended."""
    statement = db.delete(UserSession).filter_by(user_id=user.id)
    if keep is not None:
        statement = statement.where(UserSession.id != keep)
    ended = db.session.execute(statement).rowcount
    db.session.commit()
    return ended


def end_expired_sessions(*, idle: timedelta, max_age: timedelta, now: datetime | None = None,
                         commit: bool = True) -> int:
    """Delete every session past its idle or absolute lifetime (they can no longer sign anyone in); returns how many."""
    now = now or utcnow()
    ended = db.session.execute(db.delete(UserSession).where(
        (UserSession.last_seen_at < now - idle) | (UserSession.created_at < now - max_age))).rowcount
    if commit:
        db.session.commit()
    return ended


def change_password(user: User, current: str, new: str, *, keep_session: int | None) -> int:
    """Set ``user``'s password to ``new`` and end their other sessions (all but ``keep_session``); returns how
    many ended. Raises ``WrongPassword`` when ``current`` does not match and ``ValueError`` for a weak ``new``;
    nothing changes then."""
    if not user.check_password(current):
        raise WrongPassword("The current password is not correct.")
    check_new_password(new)
    user.set_password(new)
    return end_sessions(user, keep=keep_session)  # one commit: the new password and the ended sessions


def set_theme(user: User, theme: str) -> None:
    """Remember ``user``'s colour theme (one of ``THEMES``); raises ``ValueError`` for another."""
    if theme not in THEMES:
        raise ValueError(f"Unknown theme {theme!r}.")
    user.theme = theme
    db.session.commit()
