"""Personal API tokens: a script sends ``Authorization: Bearer pxb_…`` and acts as the token's owner, held to
the token's role.

A token is ``pxb_`` and 43 random URL-safe characters (256 bits). The database keeps its SHA-256 and its first
``PREFIX_LENGTH`` characters (``prefix``, to tell tokens apart in lists and logs), so the whole token is shown
once, in the answer to the form that created it (never through a flash: Flask's session cookie is readable).

A request carrying a Bearer header is signed in by its token alone (``sign_in_request``, called by the sign-in
check in ``app.auth``): the session cookie is neither read nor written (``TokenAwareSessionInterface``: no
``Set-Cookie``), CSRF does not apply (``csrf_exempt``: a forged cross-site form cannot send that header), and a
token that is unknown, revoked or expired, or whose owner is disabled, gets a 401 with
``WWW-Authenticate: Bearer error="invalid_token"``, never the login page. Refused tokens are counted per client
address against the sign-in limit ``LOGIN_LIMIT_PER_CLIENT`` (then 429, whatever the token), logged with their
prefix only and kept in the audit log (``auth.token``, failed).

The pages (list, create, revoke) are in ``token_pages``. A token request acts with ``effective_role``: the lower of the token's role and its owner's current role (an
owner demoted after creating a token takes the token down too), also in ``g.api_token_role``. The account
pages (every ``auth.`` endpoint: password, sessions, second factors, tokens) refuse token requests with a 403.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import secrets
import time
from datetime import UTC, date, datetime, time as clock, timedelta

from flask import Flask, abort, current_app, g, request, session
from limits import parse_many
from sqlalchemy.orm import joinedload

from app import audit, problems
from app.extensions import csrf, db, login_manager
from app.models import ROLES, ApiToken, User, utcnow
from app.security_headers import HttpsAwareSessionInterface

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "pxb_"
PREFIX_LENGTH = 12  # "pxb_" and 8 random characters: enough to tell a user's tokens apart, useless to guess the rest
TOKEN_PATTERN = re.compile(r"pxb_[A-Za-z0-9_-]{43}")
# Read by scrapers and dashboards, never by a person: like the JSON API, a stranger gets a 401 asking for a token,
# not the login form (which Prometheus or Homepage would follow and fail to parse).
TOKEN_ENDPOINTS = {"observability.metrics", "observability.widget_summary"}
EXPIRY_CHOICES = {"30": "30 days", "90": "90 days", "365": "A year", "date": "On a date", "never": "Never"}
MAX_EXPIRY_DAYS = 5 * 365  # a chosen date further off is a typo (year 2962); "Never" says it on purpose
# The account itself (password, sessions, second factors, tokens) is a browser's business: a leaked token must
# not mint more tokens, end the owner's sessions or change their sign-in.
ACCOUNT_ENDPOINTS = ("auth.",)
ACCOUNT_REFUSAL = ("Your account (password, sessions, two-factor sign-in, API tokens) is managed from a signed-in "
                   "browser, not with an API token.")
REFUSALS = {
    "unknown": "The API token is not known.",
    "revoked": "The API token has been revoked.",
    "expired": "The API token has expired.",
    "owner_disabled": "The API token's owner is disabled.",
}


class TokenError(ValueError):
    """A token cannot be created as asked; ``field`` names the form field the sentence belongs to."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class TokenNotFound(LookupError):
    """No token with that id belongs to the user."""


class TokenRefused(Exception):
    """A Bearer token that signs nobody in: ``reason`` is a key of ``REFUSALS``, ``token`` the row when known."""

    def __init__(self, reason: str, token: ApiToken | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.token = token


# --- Service functions -------------------------------------------------------------------------------------

def hash_token(secret: str) -> str:
    """The SHA-256 (hex) of a token: what the database keeps (a 256-bit random token needs no slow hash)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def role_rank(role: str) -> int:
    """``role``'s place in ``ROLES`` (viewer 0 … admin 2)."""
    return ROLES.index(role)


def effective_role(token: ApiToken) -> str:
    """The role a request signed in by ``token`` acts with: the lower of the token's and its owner's now."""
    return min(token.role, token.user.role, key=role_rank)


def token_state(token: ApiToken, now: datetime | None = None) -> str:
    """``"revoked"``, ``"expired"`` or ``"active"``."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def expiry_for(choice: str, day: date | None, now: datetime | None = None) -> datetime | None:
    """When a token chosen to expire ``choice`` (a key of ``EXPIRY_CHOICES``) expires; None for ``"never"``.

    ``"date"`` takes ``day``: the token works through that day (UTC) and expires at the midnight after it.
    Raises ``TokenError`` (field ``expires_on``) for a missing or past day, or one more than
    ``MAX_EXPIRY_DAYS`` ahead; ``ValueError`` for an unknown ``choice``.
    """
    now = now or utcnow()
    if choice == "never":
        return None
    if choice.isdigit() and choice in EXPIRY_CHOICES:
        return now + timedelta(days=int(choice))
    if choice != "date":
        raise ValueError(f"unknown expiry {choice!r}")
    if day is None:
        raise TokenError("Choose the day the token expires.", "expires_on")
    if day < now.date():
        raise TokenError("That day has passed: choose today or a later day.", "expires_on")
    if day > now.date() + timedelta(days=MAX_EXPIRY_DAYS):
        raise TokenError(f"Choose a day within {MAX_EXPIRY_DAYS // 365} years, or Never.", "expires_on")
    return datetime.combine(day + timedelta(days=1), clock(), tzinfo=UTC)


def create_token(user: User, name: str, role: str | None = None, expires_at: datetime | None = None) -> tuple[
        ApiToken, str]:
    """Create a token for ``user`` and return it with its secret (the only time the secret exists outside the
    request that uses it); audited as ``token.created``.

    ``role`` defaults to ``user``'s own. Raises ``TokenError`` for an empty or too long name (field ``name``), a
    role unknown or above ``user``'s (``role``), or an ``expires_at`` already past (``expires_on``).
    """
    name = (name or "").strip()
    if not name:
        raise TokenError("Give the token a name, e.g. the script that will use it.", "name")
    if len(name) > 80:
        raise TokenError("At most 80 characters.", "name")
    role = role or user.role
    if role not in ROLES:
        raise TokenError(f"Unknown role {role!r}: choose one of {', '.join(ROLES)}.", "role")
    if role_rank(role) > role_rank(user.role):
        raise TokenError(f"A token's role cannot be above your own ({user.role}).", "role")
    if expires_at is not None and expires_at <= utcnow():
        raise TokenError("That moment has passed: choose a later expiry.", "expires_on")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=hash_token(secret), prefix=secret[:PREFIX_LENGTH],
                     role=role, expires_at=expires_at)
    db.session.add(token)
    audit.record("token.created", user=user, target=_label(token),
                 detail={"role": role, "expires_at": expires_at.isoformat() if expires_at else None})
    db.session.commit()
    logger.info("API token %s… (%s) created for %s", token.prefix, role, user.username)
    return token, secret


def list_tokens(user: User) -> list[ApiToken]:
    """``user``'s tokens, newest first (revoked and expired ones too: they say what a script was using)."""
    return list(db.session.scalars(db.select(ApiToken).filter_by(user_id=user.id)
                                   .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def get_token(user: User, token_id: int) -> ApiToken:
    """``user``'s token ``token_id``; raises ``TokenNotFound`` when there is none of theirs with that id."""
    token = db.session.scalar(db.select(ApiToken).filter_by(id=token_id, user_id=user.id))
    if token is None:
        raise TokenNotFound(token_id)
    return token


def revoke_token(user: User, token_id: int) -> ApiToken:
    """Revoke ``user``'s token ``token_id`` (audited as ``token.revoked``; a revoked one stays as it is).

    Raises ``TokenNotFound`` when it is not theirs.
    """
    token = get_token(user, token_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record("token.revoked", target=_label(token), detail={"owner": user.username})
        db.session.commit()
        logger.info("API token %s… of %s revoked", token.prefix, user.username)
    return token


def authenticate(secret: str, ip: str | None, now: datetime | None = None) -> ApiToken:
    """The live token whose secret is ``secret``, with its owner loaded; its last use (time, ``ip``) recorded.

    Raises ``TokenRefused`` for a token unknown (or not in the ``pxb_`` format), revoked, expired, or whose
    owner is disabled.
    """
    now = now or utcnow()
    if not TOKEN_PATTERN.fullmatch(secret):
        raise TokenRefused("unknown")
    token = db.session.scalar(db.select(ApiToken).options(joinedload(ApiToken.user))
                              .filter_by(token_hash=hash_token(secret)))
    if token is None:
        raise TokenRefused("unknown")
    if token.revoked_at is not None:
        raise TokenRefused("revoked", token)
    if token.expires_at is not None and token.expires_at <= now:
        raise TokenRefused("expired", token)
    if not token.user.is_active:
        raise TokenRefused("owner_disabled", token)
    token.last_used_at = now
    token.last_used_ip = ip.replace("\x00", "")[:45] if ip else None
    db.session.commit()
    return token


def _label(token: ApiToken) -> str:
    return f"{token.name} ({token.prefix}…)"


# --- Requests signed in by a token ------------------------------------------------------------------------

def bearer_secret() -> str | None:
    """The token of this request's ``Authorization: Bearer …`` header ("" when it names none), else None."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def sign_in_request():
    """For a request with a Bearer header: sign its token's owner in for this request only (``g.user``,
    ``g.api_token``, ``g.api_token_role``, Flask-Login's ``current_user``) and return None, or return the
    401 (429 while this address is throttled) that answers it instead."""
    result = _request_token()
    if not isinstance(result, ApiToken):
        return result
    g.user = result.user
    g.api_token = result
    g.api_token_role = effective_role(result)
    # Flask-Login's own setter of current_user for one request; login_user would open a session.
    login_manager._update_request_context_with_user(result.user)
    if (request.endpoint or "").startswith(ACCOUNT_ENDPOINTS):
        abort(403, description=ACCOUNT_REFUSAL)
    return None


def for_scripts() -> bool:
    """Whether this request is for scripts (the JSON API, ``TOKEN_ENDPOINTS``): a stranger gets a 401 asking for
    a token, never the login form."""
    return problems.is_api_request() or request.endpoint in TOKEN_ENDPOINTS


def csrf_exempt() -> bool:
    """The CSRF check's exemption (``csrf.exempt_when``): True for a request its valid Bearer token signs in;
    an invalid token is answered 401 right here, before the check could call it a CSRF failure. A script's
    request with neither a token nor a signed-in session is exempt too: it is refused with a 401 asking for a
    token (the sign-in check), which is what its author needs to read, not "CSRF token missing"."""
    if bearer_secret() is None:
        return for_scripts() and "_user_id" not in session
    result = _request_token()
    if not isinstance(result, ApiToken):
        abort(result)
    g.csrf_valid = True  # Flask-WTF's mark of a request CSRFProtect passed: FlaskForms then skip their own check
    return True


class TokenAwareSessionInterface(HttpsAwareSessionInterface):
    """The session cookie, left out of token requests: a script gets an empty session, and no ``Set-Cookie``
    whatever a view flashes or a page's CSRF token stores in it."""

    def open_session(self, app, request_):
        """An empty session for a token request (whatever cookie it carries), else the cookie's."""
        if bearer_secret() is not None:
            return self.session_class()
        return super().open_session(app, request_)

    def save_session(self, app, session, response) -> None:
        """Nothing for a token request, else the cookie as usual."""
        if bearer_secret() is not None:
            return None
        return super().save_session(app, session, response)


def _request_token():
    """This request's token, or the response refusing it (decided once per request)."""
    if "api_token_result" not in g:
        g.api_token_result = _check_request_token(bearer_secret() or "")
    return g.api_token_result


def _check_request_token(secret: str):
    address = request.remote_addr
    retry = _throttled_for()
    if retry:
        logger.warning("API token refused from %s: too many failed tokens, retry in %s s", address or "unknown", retry)
        return _error_response(429, "too_many_requests", f"Too many refused API tokens from your address. "
                                                         f"Try again in {retry} seconds.", {"Retry-After": str(retry)})
    try:
        return authenticate(secret, address)
    except TokenRefused as refused:
        _count_failure()
        shown = f"{secret[:PREFIX_LENGTH]}…" if TOKEN_PATTERN.fullmatch(secret) else "(not a Proxboard token)"
        owner = refused.token.user if refused.token is not None else None
        logger.warning("API token %s refused from %s: %s", shown, address or "unknown", refused.reason)
        audit.record("auth.token", outcome="failed", user=owner, channel="token", target=shown,
                     detail={"reason": refused.reason, "method": request.method, "path": request.path[:200]})
        db.session.commit()
        challenge = f'Bearer realm="Proxboard", error="invalid_token", error_description="{REFUSALS[refused.reason]}"'
        return _error_response(401, "invalid_token", REFUSALS[refused.reason], {"WWW-Authenticate": challenge})


def _error_response(status: int, error: str, description: str, headers: dict[str, str]):
    if problems.is_api_request():
        return problems.problem(status, description, headers=headers)
    response = current_app.response_class(json.dumps({"error": error, "error_description": description}),
                                          status=status, mimetype="application/json")
    response.headers.update(headers)
    response.headers["Cache-Control"] = "no-store"
    return response


# Refused tokens share the sign-in throttle's storage (Redis when set) and its per-address limit.
def _throttle_keys():
    limiter = current_app.extensions.get("login_throttle")
    if limiter is None:
        return None, [], ()
    return (limiter.limiter, parse_many(current_app.config["LOGIN_LIMIT_PER_CLIENT"]),
            (current_app.config.get("RATELIMIT_KEY_PREFIX") or "", "api-token", request.remote_addr or "unknown"))


def _throttled_for() -> int:
    """Seconds until this address may present a token again (0: now)."""
    strategy, limits, key = _throttle_keys()
    try:
        waits = [math.ceil(strategy.get_window_stats(limit, *key).reset_time - time.time())
                 for limit in limits if not strategy.test(limit, *key)]
    except Exception:  # the counters' storage (Redis) is away: refuse nothing for it, as Flask-Limiter does
        logger.exception("API token throttle unavailable")
        return 0
    return max([max(1, wait) for wait in waits], default=0)


def _count_failure() -> None:
    strategy, limits, key = _throttle_keys()
    try:
        for limit in limits:
            strategy.hit(limit, *key)
    except Exception:
        logger.exception("API token throttle unavailable")


def init_app(app: Flask) -> None:
    """Keep the session cookie out of token requests and exempt them from the CSRF check."""
    app.session_interface = TokenAwareSessionInterface()
    csrf.exempt_when(csrf_exempt)
