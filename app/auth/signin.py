"""The last step of every way in (password, second factor, single sign-on): one server-side session opened,
the cookie set, the audit log told."""
from __future__ import annotations

from flask import g, request, session, url_for
from flask_login import login_user

from app import audit
from app.auth import is_safe_next, services, session_lifetimes
from app.extensions import db
from app.models import User


def finish_sign_in(user: User, *, method: str, next_url: str | None = None) -> str:
    """Sign ``user`` in in this browser and return where to send them (``next_url`` when it is a local path,
    else the dashboard).

    ``method``: how they proved who they are (``"password"``, ``"totp"``, ``"recovery_code"``, ``"passkey"``,
    ``"oidc"``), kept in the audit entry ``auth.sign_in``. Replaces any session this browser had.
    """
    current = g.get("auth_session")
    session.clear()
    services.start_session(user, request.remote_addr, request.user_agent.string,
                           replaces=current.id if current is not None else None, **session_lifetimes())
    login_user(user)
    session.permanent = True
    g.user = user
    audit.record("auth.sign_in", user=user, detail={"method": method})
    db.session.commit()
    return next_url if is_safe_next(next_url) else url_for("dashboard.index")
