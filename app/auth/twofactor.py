"""Second factors other than passkeys: TOTP authenticator apps (RFC 6238, pyotp) and one-time recovery codes.

- The TOTP secret is stored encrypted with the credentials vault (``User.totp_secret``). Enrolment writes a new
  secret with ``totp_enabled_at`` empty; a first right code turns it on and hands out the recovery codes.
- A code is accepted once: the accepted time step is kept in ``User.totp_last_step`` and a code of the same or
  an earlier step is refused (one atomic UPDATE, so two requests racing with one code cannot both win). The
  window is one step either side (a clock 30 s off still works).
- Recovery codes are 80 random bits (16 characters of Crockford's base32), so a SHA-256 of the code (salted with
  the user id) is as safe to store as a slow password hash would be; each works once (atomic UPDATE too).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import pyotp
import segno
from flask import current_app
from sqlalchemy import or_

from app import audit
from app.credentials.vault import get_vault
from app.extensions import db
from app.models import User, utcnow
from app.models.user import Passkey, RecoveryCode

ISSUER = "Proxboard"
RECOVERY_CODE_COUNT = 10
# Crockford's base32: no I, L, O, U, so what is read aloud or written down is typed back right.
RECOVERY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
RECOVERY_GROUPS = 4
REQUIRED_CHOICES = ("none", "admins", "everyone")


class InvalidCode(ValueError):
    """The code is wrong, was already used, or there is nothing to check it against."""


class SecondFactorStillRequired(ValueError):
    """Removing this factor would leave a user who must use two-factor sign-in with none."""


# -- status -----------------------------------------------------------------------------------------------


def totp_enabled(user: User) -> bool:
    """Whether ``user`` signs in with an authenticator app code."""
    return user.totp_enabled_at is not None and user.totp_secret is not None


def passkey_count(user: User) -> int:
    """How many passkeys ``user`` has registered."""
    return db.session.scalar(db.select(db.func.count()).select_from(Passkey).filter_by(user_id=user.id)) or 0


def has_second_factor(user: User) -> bool:
    """Whether a sign-in of ``user`` asks for a second step (an authenticator code or a passkey)."""
    return totp_enabled(user) or passkey_count(user) > 0


def second_factor_required(user: User) -> bool:
    """Whether ``user`` must use two-factor sign-in: ``TWO_FACTOR_REQUIRED`` ("none", "admins", "everyone")
    or the per-user flag an admin sets (``User.require_2fa``). A setting that is none of those words (a typo)
    requires it of everyone: it fails closed, never silently open."""
    setting = str(current_app.config.get("TWO_FACTOR_REQUIRED") or "none").strip().lower()
    if setting not in REQUIRED_CHOICES:
        setting = "everyone"
    return bool(user.require_2fa) or setting == "everyone" or (setting == "admins" and user.role == "admin")


def recovery_codes_left(user: User) -> int:
    """How many unused recovery codes ``user`` has."""
    return db.session.scalar(db.select(db.func.count()).select_from(RecoveryCode)
                             .filter_by(user_id=user.id, used_at=None)) or 0


# -- TOTP ---------------------------------------------------------------------------------------------------


def start_totp(user: User) -> str:
    """Give ``user`` a new, not yet enabled TOTP secret (base32, 160 bits) and return it.

    Raises ``ValueError`` when an authenticator app is already enabled (turn it off first).
    """
    if totp_enabled(user):
        raise ValueError("An authenticator app is already set up; turn it off first to set up another.")
    secret = pyotp.random_base32(32)
    user.totp_secret = get_vault().encrypt(secret)
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.commit()
    return secret


def pending_totp_secret(user: User) -> str | None:
    """The secret ``start_totp`` gave ``user`` while it awaits its first code, else None."""
    if user.totp_secret is None or user.totp_enabled_at is not None:
        return None
    return get_vault().decrypt(user.totp_secret)


def discard_pending_totp(user: User) -> None:
    """Forget a secret ``start_totp`` made that was never confirmed (an enabled one stays)."""
    if user.totp_enabled_at is None and user.totp_secret is not None:
        user.totp_secret = None
        db.session.commit()


def provisioning_uri(user: User, secret: str) -> str:
    """The ``otpauth://totp/Proxboard:<name>?secret=…&issuer=Proxboard`` URI authenticator apps scan."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=ISSUER)


def qr_code_data_uri(text: str) -> str:
    """``text`` as a QR code: an SVG ``data:`` URI for an ``<img>`` (the CSP allows data: images)."""
    return segno.make(text, error="m").svg_data_uri(scale=5, border=2, dark="#000", light="#fff")


def _normalise_totp(code: str) -> str:
    return "".join(code.split())


def _matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step (this one or one either side) whose code ``code`` is, else None."""
    code = _normalise_totp(code)
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now if now is not None else time.time())
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _accept_step(user: User, step: int) -> bool:
    """Record ``step`` as the last used one unless it (or a later one) already was; True when recorded."""
    result = db.session.execute(
        db.update(User).where(User.id == user.id,
                              or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step).execution_options(synchronize_session=False))
    db.session.commit()
    db.session.refresh(user)
    return result.rowcount == 1


def confirm_totp(user: User, code: str, now: float | None = None) -> list[str]:
    """Enable the pending secret of ``user`` with its first right ``code``; return new recovery codes (shown
    once, stored hashed) and record ``auth.2fa.totp_enabled``.

    Raises ``InvalidCode`` (nothing changes) when there is no pending secret or the code does not match.
    """
    secret = pending_totp_secret(user)
    step = _matching_step(secret, code, now) if secret else None
    if step is None:
        raise InvalidCode("That code is not right. Check the time on your device and enter the current code.")
    user.totp_enabled_at = utcnow()
    user.totp_last_step = step
    codes = _replace_recovery_codes(user)
    audit.record("auth.2fa.totp_enabled", user=user, target=user.username)
    db.session.commit()
    return codes


def verify_totp(user: User, code: str, now: float | None = None) -> bool:
    """Whether ``code`` is ``user``'s current authenticator code, not used before (it is then used up)."""
    if not totp_enabled(user):
        return False
    step = _matching_step(get_vault().decrypt(user.totp_secret), code, now)
    return step is not None and _accept_step(user, step)


def disable_totp(user: User, *, password: str | None = None, code: str | None = None) -> None:
    """Turn off ``user``'s authenticator app, proven by their current ``password`` or a ``code`` (authenticator
    or recovery code); record ``auth.2fa.totp_disabled``. The recovery codes go too when no passkey is left.

    Raises ``InvalidCode`` when neither proof is right, ``SecondFactorStillRequired`` when two-factor sign-in
    is required of ``user`` and no passkey would be left; nothing changes then.
    """
    proven = bool(password) and user.check_password(password)
    if not proven and code:
        proven = verify_totp(user, code) or use_recovery_code(user, code)
    if not proven:
        raise InvalidCode("Enter your current password or a code from your authenticator app.")
    if second_factor_required(user) and passkey_count(user) == 0:
        raise SecondFactorStillRequired("Two-factor sign-in is required for your account: add a passkey "
                                        "before turning off the authenticator app.")
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    if passkey_count(user) == 0:
        db.session.execute(db.delete(RecoveryCode).filter_by(user_id=user.id))
    audit.record("auth.2fa.totp_disabled", user=user, target=user.username)
    db.session.commit()


# -- recovery codes -----------------------------------------------------------------------------------------


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(4 * RECOVERY_GROUPS))
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def normalise_recovery_code(code: str) -> str:
    """``code`` as stored: lower case, without spaces or dashes, with Crockford's look-alikes (i, l → 1, o → 0)."""
    cleaned = "".join(ch for ch in code.lower() if ch.isalnum())
    return cleaned.translate(str.maketrans("ilo", "110"))


def _recovery_hash(user: User, code: str) -> str:
    return hashlib.sha256(f"{user.id}:{normalise_recovery_code(code)}".encode()).hexdigest()


def _replace_recovery_codes(user: User) -> list[str]:
    db.session.execute(db.delete(RecoveryCode).filter_by(user_id=user.id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    db.session.add_all(RecoveryCode(user_id=user.id, code_hash=_recovery_hash(user, code)) for code in codes)
    return codes


def regenerate_recovery_codes(user: User) -> list[str]:
    """Replace ``user``'s recovery codes by ``RECOVERY_CODE_COUNT`` new ones (returned, shown once); the old ones
    stop working. Records ``auth.2fa.recovery_codes_regenerated``. Raises ``ValueError`` when ``user`` has no
    second factor (recovery codes stand in for one)."""
    if not has_second_factor(user):
        raise ValueError("Set up an authenticator app or a passkey first.")
    codes = _replace_recovery_codes(user)
    audit.record("auth.2fa.recovery_codes_regenerated", user=user, target=user.username)
    db.session.commit()
    return codes


def use_recovery_code(user: User, code: str) -> bool:
    """Whether ``code`` is one of ``user``'s unused recovery codes (it is then used up)."""
    if len(normalise_recovery_code(code)) != 4 * RECOVERY_GROUPS:
        return False
    result = db.session.execute(
        db.update(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None),
                                      RecoveryCode.code_hash == _recovery_hash(user, code))
        .values(used_at=utcnow()).execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount == 1


def looks_like_totp(code: str) -> bool:
    """Whether ``code`` has the shape of an authenticator code (six digits), not of a recovery code."""
    code = _normalise_totp(code)
    return code.isdigit() and len(code) == 6
