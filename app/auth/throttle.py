"""Login throttling (Flask-Limiter): failed sign-ins counted per client address and per account name.

Only a failed password counts (``count_failure`` in the view, ``deduct_when`` here): a user who signs in
right is never slowed down, and the form's own errors (an empty field, an expired CSRF token) cost nothing.
A failed second step (an authenticator or recovery code, a passkey) counts too, under the account name of the
pending sign-in; a failed passkey-alone sign-in names no account and counts per address only.
Once a limit is reached, every POST to /login answers 429 with ``Retry-After`` before the password is
checked, so even the right password waits; two limits per key (a minute, an hour) make the delays grow.

The counters live in Redis when ``REDIS_URL`` (or ``RATELIMIT_STORAGE_URI``) is set, so every process and
host shares them, and in this process's memory otherwise. Each app gets its own ``Limiter``: Flask-Limiter
keeps the storage and the key prefix on the instance, so one instance bound to two apps would share (and
override) them.
"""
from __future__ import annotations

import logging
import math
import time

from flask import Flask, current_app, g, render_template, request
from flask_limiter import Limit, Limiter, RateLimitExceeded

from app.auth import pending
from app.auth.forms import LoginForm

logger = logging.getLogger(__name__)

LOGIN_ENDPOINT = "auth.login"
# The password form, the second step (code or passkey) and the passkey-alone sign-in (second_step.py).
SIGN_IN_ENDPOINTS = {LOGIN_ENDPOINT, "auth.verify", "auth.verify_passkey", "auth.passkey_sign_in"}


def client_address() -> str:
    """The client's address (``X-Forwarded-For`` counts only behind ``PROXY_FIX``, which rewrites ``remote_addr``)."""
    return request.remote_addr or "unknown"


def account_name() -> str:
    """The account name the sign-in form names, as the database compares it (spaces around it trimmed); for the
    second step, the pending sign-in's."""
    if request.endpoint != LOGIN_ENDPOINT:
        return "account:" + pending.account_name()
    return "account:" + request.form.get("username", "").strip()[:80]


def count_failure() -> None:
    """Mark this request as a failed sign-in, so the limits deduct it once the response is made."""
    g.login_failed = True


def _not_a_sign_in() -> bool:
    return request.endpoint not in SIGN_IN_ENDPOINTS


def _no_account() -> bool:
    return _not_a_sign_in() or account_name() == "account:"


def _failed(response) -> bool:
    return bool(g.get("login_failed"))


def init_app(app: Flask) -> None:
    """Give ``app`` its own limiter on POST /login and the 429 page."""
    storage = app.config.get("RATELIMIT_STORAGE_URI") or app.config.get("REDIS_URL") or "memory://"
    # shared: one bucket per address and per account across the password form and the second step.
    common = {"methods": ["POST"], "exempt_when": _not_a_sign_in, "deduct_when": _failed, "shared": True}
    limiter = Limiter(
        key_func=client_address,
        storage_uri=storage,
        # Redis unreachable: count in memory meanwhile (logged) rather than answer 500 on the login form.
        in_memory_fallback_enabled=True,
        default_limits=[
            Limit(app.config["LOGIN_LIMIT_PER_CLIENT"], key_function=client_address, scope="client", **common),
            Limit(app.config["LOGIN_LIMIT_PER_ACCOUNT"], key_function=account_name, scope="account",
                  **(common | {"exempt_when": _no_account})),
        ],
    )
    # Every other request is let through before Flask-Limiter resolves its limits: that was a tenth of the
    # server time of a dashboard refresh answered 304.
    limiter.request_filter(_not_a_sign_in)
    limiter.init_app(app)
    app.extensions["login_throttle"] = limiter
    app.register_error_handler(RateLimitExceeded, too_many_attempts)


def retry_after_seconds() -> int:
    """Seconds until the breached limit of this request lets one more attempt through (at least 1)."""
    breached = current_app.extensions["login_throttle"].current_limit
    if breached is None:
        return 60
    return max(1, math.ceil(breached.window.reset_time - time.time()))


def too_many_attempts(error: RateLimitExceeded):
    """The sign-in form again, status 429 with ``Retry-After``, saying how long to wait and why."""
    wait = retry_after_seconds()
    by_account = error.limit.scope == "account"
    logger.warning("Sign-in throttled (%s limit %s) for %r from %s: retry in %s s", error.limit.scope,
                   error.limit.limit, request.form.get("username", "")[:80], client_address(), wait)
    form = LoginForm()  # bound to the posted fields, so the name stays filled in
    minutes = math.ceil(wait / 60)
    when = f"{wait} seconds" if wait < 120 else f"{minutes} minutes"
    reason = ("Too many failed sign-ins for this account." if by_account
              else "Too many failed sign-ins from your address.")
    response = current_app.make_response(
        (render_template("auth/login.html", form=form, throttled=f"{reason} Try again in {when}."), 429))
    response.headers["Retry-After"] = str(wait)
    return response
