"""Sign-in: every page but the login form and the health check needs a signed-in user."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Flask, g, redirect, request, session, url_for

from app.extensions import db
from app.htmx import is_htmx

bp = Blueprint("auth", __name__, template_folder="templates")

PUBLIC_ENDPOINTS = {"auth.login", "health.healthz", "static"}


def init_app(app: Flask) -> None:
    """Load the signed-in user before each request and send strangers to the login form."""

    @app.before_request
    def require_login():
        from app.models import User

        user_id = session.get("user_id")
        g.user = db.session.get(User, user_id) if user_id is not None else None
        if g.user is None and request.endpoint not in PUBLIC_ENDPOINTS:
            if request.endpoint is None:
                return None  # let the 404 handler answer unknown URLs
            if is_htmx():
                response = app.response_class(status=401)
                response.headers["HX-Redirect"] = url_for("auth.login")
                return response
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return None

    @app.context_processor
    def inject_user():
        return {"current_user": g.get("user")}


def is_safe_next(target: str | None) -> bool:
    """Whether ``target`` is a path on this site (no scheme, no host, no protocol-relative URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


from app.auth import routes  # noqa: E402,F401  (registers the views on bp)
