"""Users: creation, password checks and display preferences."""
from __future__ import annotations

from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models import THEMES, User, utcnow

# Compared against when the user does not exist, so both paths cost one hash check.
_DUMMY_HASH = generate_password_hash("proxboard-dummy-password")


class UserExists(ValueError):
    """A user with that name already exists."""


def create_user(username: str, password: str) -> User:
    """Create a user; raises ``UserExists`` when the name is taken."""
    username = username.strip()
    if not username:
        raise ValueError("Username must not be empty.")
    if len(password) < 8:
        raise ValueError("Password must be at least 8 characters.")
    if db.session.scalar(db.select(User).filter_by(username=username)):
        raise UserExists(f"User {username!r} already exists.")
    user = User(username=username)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


def authenticate(username: str, password: str) -> User | None:
    """The user whose name and password match, recording the login; else None."""
    user = db.session.scalar(db.select(User).filter_by(username=username.strip()))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not user.check_password(password):
        return None
    user.last_login_at = utcnow()
    db.session.commit()
    return user


def set_theme(user: User, theme: str) -> None:
    """Remember ``user``'s colour theme (one of ``THEMES``); raises ``ValueError`` for another."""
    if theme not in THEMES:
        raise ValueError(f"Unknown theme {theme!r}.")
    user.theme = theme
    db.session.commit()
