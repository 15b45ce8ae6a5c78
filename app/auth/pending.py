"""What a sign-in keeps between requests: a sign-in between its two steps, and passkey challenges.

The pending sign-in (the password was right, the second factor or its enrolment is still due) is kept in Flask's signed session cookie as ``{"uid", "name", "at", "next", "enrol"}`` (readable by the browser,
so nothing secret: an id, a name, a time, a path), for ``PENDING_SECONDS`` at most. It opens no session:
``g.user`` stays None, so every page but the second-step ones still sends the browser to the login form.
Only ``finish_sign_in`` turns it into a sign-in, and it clears the cookie's contents first.
"""
from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from flask import session

from app.extensions import db
from app.models import User

PENDING_KEY = "pending_sign_in"
PENDING_SECONDS = 5 * 60


class PendingExpired(LookupError):
    """The pending sign-in is older than ``PENDING_SECONDS`` (it has been forgotten)."""


@dataclass(frozen=True)
class PendingSignIn:
    """The user who gave the right password, where to go afterwards, and whether they must enrol first."""

    user: User
    next_url: str | None
    enrol: bool


def start(user: User, next_url: str | None, *, enrol: bool = False) -> None:
    """Remember that ``user`` gave the right password (replacing any earlier pending sign-in)."""
    session[PENDING_KEY] = {"uid": user.id, "name": user.username, "at": int(time.time()),
                            "next": (next_url or "")[:500], "enrol": enrol}


def load(now: float | None = None) -> PendingSignIn | None:
    """The pending sign-in of this browser, or None when there is none (or its user is gone or disabled).

    Raises ``PendingExpired`` (after forgetting it) when it began more than ``PENDING_SECONDS`` ago.
    """
    state = session.get(PENDING_KEY)
    if not isinstance(state, dict):
        return None
    if (now or time.time()) - int(state.get("at", 0)) > PENDING_SECONDS:
        clear()
        raise PendingExpired()
    user = db.session.get(User, state.get("uid"))
    if user is None or not user.is_active:
        clear()
        return None
    return PendingSignIn(user=user, next_url=state.get("next") or None, enrol=bool(state.get("enrol")))


def account_name() -> str:
    """The account name of the pending sign-in ("" when none): the login throttle counts its failures there."""
    state = session.get(PENDING_KEY)
    return str(state.get("name", ""))[:80] if isinstance(state, dict) else ""


def clear() -> None:
    """Forget the pending sign-in."""
    session.pop(PENDING_KEY, None)


def keep_challenge(purpose: str, challenge: bytes) -> None:
    """Keep a passkey ceremony's ``challenge`` for ``purpose`` ("register", "sign_in", "second_step", "enrol")
    until ``take_challenge`` (not a secret: the signed cookie is fine, and it only needs to be single-use)."""
    session[f"webauthn_{purpose}"] = base64.urlsafe_b64encode(challenge).decode("ascii")


def take_challenge(purpose: str) -> bytes | None:
    """The challenge kept for ``purpose``, forgotten as it is read (a second answer to it finds none)."""
    value = session.pop(f"webauthn_{purpose}", None)
    try:
        return base64.urlsafe_b64decode(value) if isinstance(value, str) else None
    except ValueError:
        return None
