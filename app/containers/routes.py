"""``/containers/<vmid>/actions/…``: lifecycle confirmations and actions, operation polling, clearing a gone container."""
from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlencode

from flask import abort, flash, g, make_response, redirect, render_template, request, url_for

from app.auth import is_safe_next
from app.auth.roles import refusal
from app.containers import bp
from app.containers import inventory
from app.containers.detail import header_context
from app.containers.forms import ConfirmQuery, TargetQuery
from app.containers.services import (
    ACTIONS,
    ActionRefused,
    action_reasons,
    clear_gone,
    refresh_operation,
    request_action,
    settle_within,
    view_reason,
)
from app.extensions import db
from app.htmx import is_htmx, toast, trigger, varies
from app.models import DEFAULT_CLUSTER, Operation, current_cluster_name
from app.proxmox import ProxmoxError

@bp.app_template_global()
def container_url(guest, *parts: str, **query) -> str:
    """``[/clusters/<cluster>]/containers/<vmid>/<parts…>?<query>`` of ``guest`` (a view or record with ``vmid``
    and ``cluster``, or a VMID of the current cluster), built by hand: a dashboard page links each card's
    actions, and url_for for every one of them was a measurable share of the render."""
    vmid = getattr(guest, "vmid", guest)
    cluster = getattr(guest, "cluster", None) or current_cluster_name()
    if not isinstance(cluster, str):  # a record: its cluster's name
        cluster = cluster.name
    prefix = "" if cluster == DEFAULT_CLUSTER else f"/clusters/{cluster}"
    path = f"{request.script_root}{prefix}/containers/{vmid}" + "".join(f"/{part}" for part in parts)
    query = {key: value for key, value in query.items() if value is not None}
    return f"{path}?{urlencode(query)}" if query else path


@bp.app_template_global()
def card_id(guest) -> str:
    """The HTML id of ``guest``'s dashboard card (a view, or a VMID of the current cluster): ``ct-<vmid>`` in the
    default cluster, ``ct-<cluster>-<vmid>`` in another, so two clusters' guests with one VMID never share it."""
    vmid = getattr(guest, "vmid", guest)
    cluster = getattr(guest, "cluster", None) or current_cluster_name()
    return f"ct-{vmid}" if cluster == DEFAULT_CLUSTER else f"ct-{cluster}-{vmid}"


@bp.app_template_global()
def url_query(**query) -> str:
    """A query string from keyword arguments (None values left out)."""
    return _query_string(tuple((key, value) for key, value in query.items() if value is not None))


@lru_cache(maxsize=256)
def _query_string(pairs: tuple[tuple[str, object], ...]) -> str:
    return urlencode(pairs)  # every card of a page asks the same one


@bp.app_template_global()
def action_refusals() -> dict[str, str | None]:
    """For each lifecycle action, why this request's role may not run it (``roles.refusal``; None: it may),
    worked out once per request: a dashboard page asked it for every action of every card."""
    refusals = g.get("_action_refusals")
    if refusals is None:
        refusals = g._action_refusals = {name: refusal("containers.run_action", action=name) for name in ACTIONS}
    return refusals


# Globals, not a context processor: the card macro, imported once per page, sees globals only.
bp.add_app_template_global(ACTIONS, "ACTIONS")
bp.add_app_template_global(action_reasons, "action_reasons")


PARTIALS = {"card": "dashboard/_card.html", "header": "containers/_header.html"}
NO_SCRIPT_WAIT_SECONDS = 5  # how long a plain form POST waits to tell the action's result after the redirect


@bp.get("")
@bp.get("/")
def index():
    """There is no separate container list: the dashboard is it."""
    return redirect(url_for("dashboard.index"), code=301)


def _back_url(vmid: int) -> str:
    target = TargetQuery().next.data
    return target if is_safe_next(target) else url_for("dashboard.index")


def _view_name() -> str:
    view = TargetQuery().view.data
    return view if view in PARTIALS else "card"


def _partial(view, vmid: int, toast_: tuple[str, str] | None = None, status: int = 200):
    """The card or detail header of CT ``vmid``, with an optional toast for htmx to show.

    ``containers-changed`` tells the dashboard to refresh its body at once: its counts and pills,
    and a card that no longer matches the filter leaves the grid.
    """
    body = ""
    if view is not None and _view_name() == "header":
        body = render_template(PARTIALS["header"], **header_context(view))
    elif view is not None:
        body = render_template(PARTIALS[_view_name()], ct=view, reachable=not view.stale, next_url=_back_url(vmid))
    response = make_response(body, status)
    triggers = {"close-modal": True, "containers-changed": True}
    if toast_:
        triggers["toast"] = toast(*toast_)
    return trigger(response, triggers)


@bp.get("/<int:vmid>/actions/<action>")
def confirm_action(vmid: int, action: str):
    """A confirmation page (or dialog body for htmx) that POSTs the action."""
    if action not in ACTIONS:
        abort(404)
    try:
        view = inventory.load_one(vmid)
    except ProxmoxError as exc:
        view, error = None, exc.message
    else:
        error = None
    if view is None and error is None:
        abort(404, description=f"There is no container {vmid}.")
    reason = error or view_reason(action, view)
    template = "containers/_confirm.html" if is_htmx() else "containers/confirm.html"
    return varies(make_response(render_template(template, ct=view, vmid=vmid, action=ACTIONS[action], reason=reason,
                           next_url=_back_url(vmid), view_name=_view_name(),
                           shutdown_timeout=ConfirmQuery().timeout.data or None)))


@bp.post("/<int:vmid>/actions/<action>")
def run_action(vmid: int, action: str):
    """Start a lifecycle action; htmx gets the updated card/header, plain forms a redirect."""
    if action not in ACTIONS:
        abort(404)
    htmx = is_htmx()
    try:
        operation = request_action(vmid, action, g.user.username)
    except (ActionRefused, ProxmoxError) as exc:
        message = exc.message
        if not htmx:
            flash(message, "error")
            return redirect(_back_url(vmid))
        try:
            view = inventory.load_one(vmid)
        except ProxmoxError:
            view = None
        response = _partial(view, vmid, (message, "danger"))
        if view is None:
            response.headers["HX-Reswap"] = "none"
        return response
    if not htmx:
        if outcome := settle_within(operation, NO_SCRIPT_WAIT_SECONDS):
            flash(outcome.message, outcome.category)
        else:
            flash(f"{ACTIONS[action].label} of CT {vmid} requested; it is still in progress: refresh to see the result.",
                  "info")
        return redirect(url_for("dashboard.index") if action == "delete" else _back_url(vmid))
    return _partial(inventory.load_one(vmid), vmid)


@bp.post("/<int:vmid>/clear")
def clear(vmid: int):
    """Remove a container Proxmox no longer has from the dashboard (its history is kept)."""
    try:
        container = clear_gone(vmid, g.user.username)
    except ActionRefused as exc:
        flash(exc.message, "error")
        return redirect(_back_url(vmid))
    flash(f"{container.display_name()} (CT {vmid}) was cleared.", "success")
    target = _back_url(vmid)
    return redirect(url_for("dashboard.index") if target.rstrip("/").endswith(f"/containers/{vmid}") else target)


@bp.get("/<int:vmid>/operations/<int:operation_id>")
def operation_status(vmid: int, operation_id: int):
    """Polled while an action runs: settles it when its Proxmox task has ended."""
    operation = db.session.get(Operation, operation_id)
    if operation is None or operation.container.vmid != vmid:
        abort(404)
    outcome = refresh_operation(operation)
    if outcome is None and operation.pending:
        response = make_response("", 204)  # still running: htmx keeps the spinner and polls again
        return response
    if operation.action == "delete" and operation.state == "succeeded":
        if _view_name() == "header":  # the page is gone: the dashboard shows the toast after the redirect
            if outcome:
                flash(outcome.message, "success")
            response = _partial(None, vmid)
            response.headers["HX-Redirect"] = url_for("dashboard.index")
            return response
        return _partial(None, vmid, (outcome.message, outcome.category) if outcome else None)
    try:
        view = inventory.load_one(vmid)
    except ProxmoxError:
        view = None
    response = _partial(view, vmid, (outcome.message, outcome.category) if outcome else None)
    if view is None:
        response.headers["HX-Reswap"] = "none"
    return response

