"""The one place requests are audited: an ``after_request`` hook that records what a request changed.

Recorded: every request that reached a view (``request.endpoint`` set) by a signed-in user with a method
other than GET, HEAD and OPTIONS, and every request made with an API token (``g.api_token``), reads
included. Not recorded: strangers (they never reach a view: the sign-in check sends them away), static
files, and ``SKIPPED`` endpoints (a colour theme, a wizard draft: they change nothing anyone else sees).
A request whose view recorded itself in more detail (``audit.record`` committed during the request: sign-in,
a role change, a refusal) is not recorded twice.

The outcome, as this codebase answers: a view redirects (or, for htmx, answers 200 with a fragment) when it
did what was asked, re-renders its form with the errors on a 200 (see ``container_templates.common.
invalid_page``: htmx swaps only 2xx) or flashes an error and redirects when it could not. So the status
alone cannot tell; the hook watches what the user is shown:

- 401, 403, 429: ``refused``; any other 4xx or 5xx: ``failed``;
- a flashed message or htmx toast of category error, danger or warning: ``failed`` (its text in detail);
- a rendered form holding errors (``template_rendered``): ``failed`` (the field names in detail);
- else ``succeeded``.

The hook never breaks the response: when the database fails, the entry is logged as lost and rolled back.
"""
from __future__ import annotations

import json
import logging

from flask import Flask, g, message_flashed, request, template_rendered
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import inspect
from wtforms import Form, StringField

from app.audit import record, record_request
from app.audit.naming import describe
from app.db_faults import is_db_fault, rollback_quietly
from app.extensions import db

log = logging.getLogger("app.audit")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Preferences and drafts: they change nothing another user sees; the container the wizard creates is recorded
# by its last step (wizard.review → container.create).
# WebAuthn options only hand out a challenge; the step that uses it is recorded.
SKIPPED = frozenset({"static", "auth.theme", "wizard.template", "wizard.configure", "wizard.node_fields",
                     "wizard.packages", "wizard.scripts", "wizard.cancel", "auth.passkey_options",
                     "auth.enrol_passkey_options", "auth.passkey_sign_in_options", "auth.verify_passkey_options"})
SIGN_IN = "auth.login"  # records its own successes and failures; only the throttle's 429 never reaches it
FAILURE_CATEGORIES = frozenset({"error", "danger", "warning"})
REFUSED_STATUSES = frozenset({401, 403, 429})
MESSAGE_LENGTH = 300


class _SignInName(FlaskForm):
    """The account name a throttled sign-in named (the form the login view would have read)."""

    class Meta:
        csrf = False

    username = StringField()


def _watching() -> bool:
    return request.method not in SAFE_METHODS


def _on_flash(_app, message: str, category: str, **_extra) -> None:
    if _watching() and category in FAILURE_CATEGORIES:
        g.setdefault("_audit_failures", []).append(str(message))


def _forms_in(value, depth: int = 0):
    if isinstance(value, Form):
        yield value
    elif isinstance(value, dict) and depth < 2:
        for item in value.values():
            yield from _forms_in(item, depth + 1)


def _on_render(_app, template, context, **_extra) -> None:
    if not _watching():
        return
    for value in context.values():
        for form in _forms_in(value):
            invalid = [field.name for field in form if field.errors]
            if invalid or getattr(form, "form_errors", None):
                g.setdefault("_audit_invalid", []).extend(invalid or ["form"])


def _toast_failure(response) -> str | None:
    """The message of a failure toast in the response's ``HX-Trigger``, else None."""
    header = response.headers.get("HX-Trigger")
    if not header:
        return None
    try:
        toast = json.loads(header).get("toast")
    except (ValueError, AttributeError):
        return None
    if isinstance(toast, dict) and toast.get("category") in FAILURE_CATEGORIES:
        return str(toast.get("message", ""))
    return None


def outcome_of(response) -> tuple[str, dict]:
    """``(outcome, detail)`` of this request's answer, by the rule in the module docstring."""
    status = response.status_code
    if status in REFUSED_STATUSES:
        return "refused", {}
    if status >= 400:
        return "failed", {}
    failures = list(g.get("_audit_failures", ()))
    if toast := _toast_failure(response):
        failures.append(toast)
    if failures:
        return "failed", {"message": failures[-1][:MESSAGE_LENGTH]}
    if invalid := g.get("_audit_invalid"):
        return "failed", {"invalid": sorted(set(invalid))}
    return "succeeded", {}


def recorded_itself() -> bool:
    """Whether this request already wrote (and committed) an audit entry of its own."""
    return any(inspect(entry).persistent for entry in g.get("_audit_entries", ()))


def acting_user():
    """The signed-in user of this request, also when a check before the sign-in's (the CSRF check) refused it."""
    if "user" in g:
        return g.user
    return current_user._get_current_object() if current_user and current_user.is_authenticated else None


def wanted() -> bool:
    """Whether the hook records this request (see the module docstring)."""
    endpoint = request.endpoint
    if endpoint is None or endpoint in SKIPPED or g.get("audit_nothing_done"):
        return False
    if g.get("api_token") is not None:
        return True
    if request.method in SAFE_METHODS:
        return False
    return endpoint == SIGN_IN or acting_user() is not None


def audit_response(response):
    """``after_request``: record this request when it changed something (or used a token); never fails."""
    try:
        if not wanted() or recorded_itself() or (request.endpoint == SIGN_IN and response.status_code != 429):
            return response
    except Exception as exc:  # loading the user of a refused request met a dead database
        rollback_quietly()
        log.warning("audit: %s %s not recorded: %s", request.method, request.path, type(exc).__name__,
                    exc_info=not is_db_fault(exc))
        return response
    outcome, detail = outcome_of(response)
    detail = {"method": request.method, "path": request.path, "status": response.status_code, **detail}
    # Whatever the view left uncommitted is not ours to commit (the teardown would roll it back anyway).
    rollback_quietly()
    try:
        if request.endpoint == SIGN_IN:
            name = (_SignInName().username.data or "").strip()
            record("auth.sign_in", outcome=outcome, username=name,
                   detail={"method": "password", "reason": "too many failed sign-ins", "status": 429})
        else:
            record_request(outcome=outcome, detail=detail, user=acting_user())
        db.session.commit()
    except Exception as exc:
        rollback_quietly()
        log.warning("audit entry for %s %s (%s) lost: %s", request.method, request.path, outcome,
                    type(exc).__name__, exc_info=not is_db_fault(exc))
    return response


def name_target() -> None:
    """``before_request``: name what a state-changing request acts on before its view runs, so an entry
    keeps the name of what the view deletes (``alert channel ops``, not ``alert channel 1``)."""
    if request.method in SAFE_METHODS or request.endpoint is None or request.endpoint in SKIPPED:
        return
    try:
        g.audit_target_before = describe(request.endpoint, request.view_args).target
    except Exception as exc:  # a dead database: the entry is named after the view instead
        rollback_quietly()
        log.debug("audit: target of %s not named before the view: %s", request.path, type(exc).__name__)


def init_app(app: Flask) -> None:
    """Watch flashes and rendered forms of state-changing requests, name their targets before the view, and
    audit each response."""
    message_flashed.connect(_on_flash, app)
    template_rendered.connect(_on_render, app)
    app.before_request(name_target)
    app.after_request(audit_response)
