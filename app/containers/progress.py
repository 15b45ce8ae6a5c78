"""The provisioning progress page, /containers/<vmid>/progress, live through 1 s htmx polling.

These views belong to the ``containers`` blueprint (their URLs are a container's), so the
detail page can redirect to ``containers.progress`` while a container is being created.
"""
from __future__ import annotations

from flask import abort, flash, g, make_response, redirect, render_template, url_for

from app.containers import bp
from app.containers.forms import ProgressQuery
from app.containers.services import discard
from app.models import Container
from app.provisioning import (
    ProvisioningRefused,
    events_after,
    latest_operation,
    retry,
    retry_reason,
    step_states,
)


def _container(vmid: int) -> Container:
    container = Container.current(vmid)
    if container is None:
        abort(404, description=f"Proxboard did not create a container {vmid}.")
    return container


def _context(container: Container, after: int = 0) -> dict:
    operation = latest_operation(container)
    events = events_after(container.id, after)
    progress = 100 if container.lifecycle == "ready" else (operation.progress if operation else 0)
    return {"ct": container, "operation": operation, "events": events,
            "last_id": events[-1].id if events else after, "steps": step_states(operation, container.lifecycle),
            "progress": progress, "retry_reason": retry_reason(container, operation),
            "live": container.lifecycle == "creating"}


@bp.get("/<int:vmid>/progress")
def progress(vmid: int):
    """Steps, progress bar and log of the container's creation."""
    container = _container(vmid)
    if latest_operation(container) is None:
        return redirect(url_for("containers.detail", vmid=vmid))
    return render_template("containers/progress.html", **_context(container))


@bp.get("/<int:vmid>/progress/events")
def progress_events(vmid: int):
    """htmx, every second: events after ``?after=`` plus the current steps and progress."""
    container = _container(vmid)
    context = _context(container, ProgressQuery().after.data or 0)
    response = make_response(render_template("containers/_progress_update.html", **context))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<int:vmid>/progress/retry")
def progress_retry(vmid: int):
    """Queue the failed creation again from its failed step."""
    try:
        retry(_container(vmid), g.user.username)
    except ProvisioningRefused as exc:
        flash(exc.message, "error")
    return redirect(url_for("containers.progress", vmid=vmid))


@bp.post("/<int:vmid>/progress/delete")
def progress_delete(vmid: int):
    """Delete a container whose creation failed (in Proxmox if it got that far)."""
    container = _container(vmid)
    try:
        operation = discard(container, g.user.username)
    except ProvisioningRefused as exc:
        flash(exc.message, "error")
        return redirect(url_for("containers.progress", vmid=vmid))
    if operation is None:
        flash(f"CT {vmid} was removed; it never existed in Proxmox.", "success")
    else:
        flash(f"Deleting CT {vmid} in Proxmox.", "info")
    return redirect(url_for("dashboard.index"))
