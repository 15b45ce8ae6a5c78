"""Sign-in: every page but the login form and the health check needs a signed-in user.

Flask-Login keeps, in Flask's signed cookie, only the random id of a server-side session (``user_sessions``,
see ``services``); each request looks that session up in the database, so a session ended anywhere (sign
out, sign out everywhere, a password change, its idle or absolute lifetime) stops working at once in every
process. ``g.user`` is the signed-in ``User`` (None for strangers), ``g.auth_session`` their ``UserSession``.
"""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, flash, g, redirect, request, session, url_for
from flask_login import current_user, logout_user

from app import problems
from app.auth import services, throttle
from app.extensions import login_manager
from app.htmx import is_htmx

bp = Blueprint("auth", __name__, template_folder="templates")

PUBLIC_ENDPOINTS = {"auth.login", "auth.oidc_login", "auth.oidc_callback", "health.healthz", "static"}
# A pending sign-in (password right, second factor due) is no session: its pages must be reachable without one.
PUBLIC_ENDPOINTS |= {"auth.verify", "auth.verify_passkey_options", "auth.verify_passkey", "auth.passkey_sign_in_options",
                     "auth.passkey_sign_in", "auth.enrol", "auth.enrol_passkey_options", "auth.enrol_passkey",
                     "auth.cancel_sign_in"}
# The API's description and its reader: what the API offers is no secret (every call still needs a token).
PUBLIC_ENDPOINTS |= {"api.openapi", "api.docs"}


def init_app(app: Flask) -> None:
    """Load the signed-in user before each request, send strangers to the login form, throttle sign-ins."""
    login_manager.init_app(app)
    # The server-side session is the protection; Flask-Login's address check would sign out a phone that
    # changes networks, or mark every session of a proxied deployment "not fresh".
    login_manager.session_protection = None
    login_manager.login_view = "auth.login"  # for views that use flask_login.login_required on their own
    app.permanent_session_lifetime = timedelta(hours=app.config["SESSION_MAX_HOURS"])
    throttle.init_app(app)
    tokens.init_app(app)

    @app.before_request
    def require_login():
        if request.endpoint == "static":
            g.user = None  # no session lookup (a query) per stylesheet and icon
            return None
        if tokens.bearer_secret() is not None:
            return tokens.sign_in_request()  # a script: its API token alone signs it in (or 401), never the cookie
        g.user = current_user._get_current_object() if current_user.is_authenticated else None
        if g.user is None and "_user_id" in session:
            logout_user()  # an ended or expired session: stop looking it up on every request
            if g.pop("session_expired", False) and request.endpoint not in PUBLIC_ENDPOINTS:
                flash("Your session has expired. Please sign in again.", "info")
        if g.user is None and request.endpoint not in PUBLIC_ENDPOINTS:
            if request.endpoint is None:
                return None  # let the 404 handler answer unknown URLs
            if tokens.for_scripts():  # a 401 a script can read, never the login form
                return problems.problem(401, "Send an API token: Authorization: Bearer pxb_…",
                                        headers={"WWW-Authenticate": 'Bearer realm="Proxboard"'})
            if is_htmx():
                response = app.response_class(status=401)
                response.headers["HX-Redirect"] = url_for("auth.login")
                return response
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return None

    @app.context_processor
    def inject_user():
        # After Flask-Login's own processor: templates test ``{% if current_user %}``, so a stranger is None.
        return {"current_user": g.get("user")}

    from app.auth import roles

    roles.init_app(app)  # after require_login: a stranger is sent to sign in, not refused


@login_manager.user_loader
def load_user(token: str):
    """Flask-Login's loader: the user of the live session whose random id the cookie carries, else None."""
    try:
        found = services.load_session(token, request.remote_addr, **session_lifetimes())
    except services.SessionExpired:
        g.session_expired = True
        return None
    if found is None or not found.user.is_active:
        return None  # a disabled user's sessions are ended too; this covers one opened in the same instant
    g.auth_session = found
    found.user.session_token = token
    return found.user


def session_lifetimes() -> dict[str, timedelta]:
    """``idle`` and ``max_age`` of a sign-in session, from the settings (as ``services`` takes them)."""
    config = current_app.config
    return {"idle": timedelta(minutes=config["SESSION_IDLE_MINUTES"]),
            "max_age": timedelta(hours=config["SESSION_MAX_HOURS"])}


def is_safe_next(target: str | None) -> bool:
    """Whether ``target`` is a path on this site (no scheme, no host, no protocol-relative URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return False
    if not target.isprintable():  # a line break would split the Location header
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


from app.auth import routes, token_pages, tokens  # noqa: E402,F401  (registers the views on bp)
from app.auth import account, second_step  # noqa: E402,F401  (two-factor sign-in and My account on bp)
from app.auth import oidc  # noqa: E402,F401  (single sign-on views on bp)
