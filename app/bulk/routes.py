"""``/bulk/confirm`` (GET: what would be done), ``/bulk`` (POST: do it) and ``/bulk/<id>`` (its progress, polled)."""
from __future__ import annotations

from flask import abort, flash, g, make_response, redirect, render_template, url_for

from app.bulk import bp
from app.bulk.forms import BulkForm
from app.bulk.selection import BulkRefused, names, resolve, several_clusters
from app.bulk.services import (BULK_ACTIONS, advance, advance_each, check_tag, get, group_of, on_dashboard, start_bulk,
                               summarize_ended)
from app.htmx import is_htmx, toast, trigger, varies
from app.proxmox import ProxmoxError


@bp.app_context_processor
def bulk_helpers() -> dict:
    """The bulk actions' names and icons, for the dashboard's action bar."""
    return {"BULK_ACTIONS": BULK_ACTIONS}


@bp.app_template_global()
def bulk_title(bulk) -> str:
    """A bulk action's heading: "Stop 3 containers", "Stop 3 containers on lab" when there are several clusters."""
    return BULK_ACTIONS[bulk.action].phrase(len(bulk.items), bulk.tag, bulk.cluster.name if several_clusters() else None)


@bp.app_template_global()
def bulk_panels() -> list:
    """The bulk actions the dashboard shows (running ones, and the signed-in user's recent ones)."""
    user = g.get("user")
    return on_dashboard(user.username if user is not None else None)


def _refuse(message: str, status: int = 200):
    """A refused bulk action: a toast for htmx (nothing swapped), else back to the dashboard with the reason."""
    if is_htmx():
        response = make_response("", status)
        response.headers["HX-Reswap"] = "none"
        return trigger(response, {"toast": toast(message, "danger")})
    flash(message, "error")
    return redirect(url_for("dashboard.index"))


@bp.get("/confirm")
def confirm():
    """What the bulk action would do, to which containers (named), with the button that does it."""
    form = BulkForm.confirming()
    if not form.validate():
        return _refuse(form.first_error())
    try:
        tag = check_tag(form.action.data, form.tag.data)
        resolved = resolve(form.selection)
    except (BulkRefused, ProxmoxError) as exc:
        return _refuse(exc.message)
    template = "bulk/_confirm.html" if is_htmx() else "bulk/confirm.html"
    return varies(make_response(render_template(template, form=form, action=BULK_ACTIONS[form.action.data], tag=tag,
                                                resolved=resolved, listed=names(resolved.views))))


@bp.post("")
def create():
    """Start the bulk action (a part per cluster); htmx gets their progress panels, a plain form the progress page."""
    form = BulkForm()
    if not form.validate():
        return _refuse(form.first_error())
    try:
        bulks = start_bulk(form.action.data, form.selection, g.user.username, tag=form.tag.data)
    except (BulkRefused, ProxmoxError) as exc:
        return _refuse(exc.message)
    if not is_htmx():
        return redirect(url_for("bulk.show", bulk_id=bulks[0].id))
    response = make_response(render_template("bulk/_parts.html", bulks=bulks))
    events = {"close-modal": True, "containers-changed": True, "bulk-started": True}
    if ended := summarize_ended(bulks):  # at once: tags on a few containers, a cluster that does not answer
        events["toast"] = toast(*ended)
    return trigger(response, events)


@bp.get("/<int:bulk_id>")
def show(bulk_id: int):
    """A bulk action's progress per container; each request moves it one step. Polled by its panel, which
    gets the one summary toast when it ends; without JavaScript the page shows every part of the request
    (one per cluster) and reloads itself until they end."""
    bulk = get(bulk_id)
    if bulk is None:
        abort(404, description=f"There is no bulk action {bulk_id}.")
    if not is_htmx():
        bulks = group_of(bulk)
        for ended in advance_each(bulks):
            flash(ended.message, ended.category)
        return varies(make_response(render_template("bulk/show.html", bulks=bulks)))
    before = [item.state for item in bulk.items]
    try:
        outcome = advance(bulk)
    except ProxmoxError:
        outcome = None  # Proxmox cannot be asked now: the panel keeps polling
    response = varies(make_response(render_template("bulk/_panel.html", bulk=bulk)))
    events = {}
    if before != [item.state for item in bulk.items] or outcome:
        events["containers-changed"] = True
    if outcome:
        events["toast"] = toast(outcome.message, outcome.category)
    return trigger(response, events) if events else response
