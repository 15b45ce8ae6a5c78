"""People who may sign in, their sign-in sessions and the record of sign-in attempts."""
from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, WriteOnlyMapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models.types import UTCDateTime, one_of, utcnow

# "auto" follows the browser's prefers-color-scheme.
THEMES = ("auto", "light", "dark")
# A throttled attempt is only logged: rows are written for what got past the throttle, so an attacker cannot
# grow this table faster than the limits allow.
LOGIN_OUTCOMES = ("succeeded", "failed")


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    theme: Mapped[str] = mapped_column(String(8), default="auto", server_default="auto")

    sessions: WriteOnlyMapped[UserSession] = relationship(back_populates="user", passive_deletes=True)

    __table_args__ = (
        one_of("theme", THEMES, "theme_known"),
    )

    # The raw id of the sign-in session this object was loaded for (set by app.auth.services, never stored).
    session_token = None

    def get_id(self) -> str | None:
        """What Flask-Login keeps in the cookie: the random id of this sign-in session, never the user's id,
        so ending the session on the server ends the cookie too (Flask-Login's "alternative token")."""
        return self.session_token

    def set_password(self, password: str) -> None:
        """Store a salted hash of ``password``."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Whether ``password`` matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class UserSession(db.Model):
    """One signed-in browser: the cookie carries a random id, the database only its SHA-256."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    ip: Mapped[str | None] = mapped_column(String(45))  # last address seen; 45 fits any IPv6 text form
    user_agent: Mapped[str | None] = mapped_column(String(255))  # at sign-in, cut to the column

    user: Mapped[User] = relationship(back_populates="sessions")

    def __repr__(self) -> str:
        return f"<UserSession {self.id} of user {self.user_id}>"


class LoginAttempt(db.Model):
    """A sign-in that got past the throttle: who was named, from where, and whether the password matched."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    username: Mapped[str] = mapped_column(String(80))  # as typed, so attempts on unknown names show too
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    ip: Mapped[str | None] = mapped_column(String(45))
    outcome: Mapped[str] = mapped_column(String(16))

    __table_args__ = (
        Index("ix_login_attempts_created_at", "created_at"),
        one_of("outcome", LOGIN_OUTCOMES, "outcome_known"),
    )
