"""People who may sign in, their sign-in sessions and the record of sign-in attempts."""
from __future__ import annotations

from datetime import datetime

from flask import current_app, has_app_context
from flask_login import UserMixin
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, WriteOnlyMapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models.types import UTCDateTime, one_of, utcnow

# "auto" follows the browser's prefers-color-scheme.
THEMES = ("auto", "light", "dark")
# A throttled attempt is only logged: rows are written for what got past the throttle, so an attacker cannot
# grow this table faster than the limits allow.
LOGIN_OUTCOMES = ("succeeded", "failed")
# Lowest to highest: each role may do all that the ones before it may (app.auth.roles has the permission map).
ROLES = ("viewer", "operator", "admin")
# refused: the role (or a missing second factor) did not allow it, so nothing was attempted.
AUDIT_OUTCOMES = ("succeeded", "failed", "refused")
# How the actor reached Proxboard: a browser session, an API token, the command line, or the job worker.
AUDIT_CHANNELS = ("web", "token", "cli", "worker")


def password_hash_method() -> str:
    """The configured ``PASSWORD_HASH_METHOD`` (werkzeug method string), or the default outside an app."""
    default = "scrypt:32768:8:1"
    return current_app.config.get("PASSWORD_HASH_METHOD", default) if has_app_context() else default


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    theme: Mapped[str] = mapped_column(String(8), default="auto", server_default="auto")
    role: Mapped[str] = mapped_column(String(16), default="viewer", server_default="viewer")
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # set: cannot sign in, tokens refused
    require_2fa: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # set by an admin
    # The TOTP shared secret, encrypted with the credentials vault; enabled once a first code was confirmed.
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)  # last accepted time step: a code works once
    # Single sign-on: the provider's issuer and the stable ``sub`` claim identify the person, not the name.
    oidc_issuer: Mapped[str | None] = mapped_column(String(255))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    webauthn_user_id: Mapped[bytes | None] = mapped_column(LargeBinary(64))  # random user handle for passkeys

    sessions: WriteOnlyMapped[UserSession] = relationship(back_populates="user", passive_deletes=True)

    __table_args__ = (
        one_of("theme", THEMES, "theme_known"),
        one_of("role", ROLES, "role_known"),
        UniqueConstraint("oidc_issuer", "oidc_subject"),
    )

    # The raw id of the sign-in session this object was loaded for (set by app.auth.services, never stored).
    session_token = None

    def get_id(self) -> str | None:
        """What Flask-Login keeps in the cookie: the random id of this sign-in session, never the user's id,
        so ending the session on the server ends the cookie too (Flask-Login's "alternative token")."""
        return self.session_token

    def set_password(self, password: str) -> None:
        """Store a salted hash of ``password`` (``PASSWORD_HASH_METHOD``; the hash names its own parameters,
        so changing the setting leaves existing passwords valid)."""
        self.password_hash = generate_password_hash(password, method=password_hash_method())

    def check_password(self, password: str) -> bool:
        """Whether ``password`` matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    @property
    def is_active(self) -> bool:
        """Flask-Login's flag: a disabled user is signed out and cannot sign in."""
        return self.disabled_at is None

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


class RecoveryCode(db.Model):
    """A one-time code that stands in for the second factor (hashed like a password; used once)."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Passkey(db.Model):
    """A WebAuthn credential (passkey or security key) registered by a user."""

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1023), unique=True)  # WebAuthn caps it at 1023 bytes
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE-encoded
    sign_count: Mapped[int] = mapped_column(Integer, default=0)
    transports: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(db.Model):
    """A personal token for scripts: shown once, stored as a SHA-256, held to ``role`` (never above its owner's)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the first characters, to tell tokens apart in lists and logs
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_ip: Mapped[str | None] = mapped_column(String(45))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()

    __table_args__ = (
        one_of("role", ROLES, "role_known"),
    )


class AuditEntry(db.Model):
    """One line of the audit log: who did what, when, from where, on what, and how it ended.

    ``username`` is copied (the user may be deleted later); ``container_id``/``vmid`` let the log be filtered
    by container; ``detail`` holds what else identifies the action (never a secret).
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    username: Mapped[str | None] = mapped_column(String(80))
    ip: Mapped[str | None] = mapped_column(String(45))
    channel: Mapped[str] = mapped_column(String(8), default="web")
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(255))  # what it was done on, as a person reads it
    container_id: Mapped[int | None] = mapped_column(ForeignKey("containers.id", ondelete="SET NULL"), index=True)
    vmid: Mapped[int | None] = mapped_column(Integer, index=True)
    cluster: Mapped[str | None] = mapped_column(String(40))  # the VMID's cluster, copied (it may be removed later)
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (
        one_of("outcome", AUDIT_OUTCOMES, "outcome_known"),
        one_of("channel", AUDIT_CHANNELS, "channel_known"),
    )
