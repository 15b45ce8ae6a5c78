"""The Disks tab of a container's page: its root disk and mount points, growing a volume, adding a mount point.

A render costs no Proxmox call beside the page's own: the tab reads the config call the page starts anyway.
Growing is a Proxmox task started through ``services.start_task`` and followed like a snapshot: the tab shows it
in progress while the header's spinner polls ``containers.operation_status``, which settles it and shows the outcome's
toast; the toast refreshes the page's live part, tab included. A page without JavaScript settles it when it
renders the tab. Adding a mount point is a config change Proxmox makes at once: the answer is the updated tab
and a toast. Each dialog is a modal for htmx and a page without JavaScript; a refusal (a shrink, a path in
use, Proxmox's own) comes back in the dialog and nothing is asked of Proxmox unless it is Proxmox's.
``disk_services`` holds the rules.
"""
from __future__ import annotations

from flask import abort, flash, g, make_response, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, RadioField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from app.containers import bp
from app.containers import disk_services as disks
from app.containers.detail import TAB_CONTEXTS, _load, page_config, render_detail
from app.containers.inventory import ContainerView
from app.containers.services import ActionRefused, settle_within, task_busy_reason
from app.forms import strip
from app.htmx import is_htmx, toast, trigger, varies
from app.models import Operation
from app.proxmox import ProxmoxError, get_proxmox

MODAL_CONTENT = "#confirm-modal .modal-content"
NO_SCRIPT_WAIT_SECONDS = 5  # how long a plain form POST waits to tell the task's result after the redirect
PATH_MAX = 255  # a mount path is one config value; Proxboard's own cap keeps it readable
SIZE_RANGE = NumberRange(1, disks.MAX_GIB, f"Give a whole number of GiB from 1 to {disks.MAX_GIB}.")


def disks_context(view: ContainerView) -> dict:
    """What the Disks tab shows (``disks``: a ``DisksTab``), from the config call the page started beside its
    status call."""
    config, error = None, None
    if not view.stale and view.lifecycle not in ("gone", "creating"):
        try:
            config = page_config(view)
        except ProxmoxError as exc:
            error = exc.message
    return {"disks": disks.disks_tab(view, config, error, settle=not is_htmx())}


TAB_CONTEXTS["disks"] = disks_context


# -- forms ----------------------------------------------------------------------------------------------------

class GrowForm(FlaskForm):
    """Grow a disk: by how many GiB, or to which size (Proxmox only grows)."""

    mode = RadioField("Grow", choices=[SelectChoice("by", "Increase by"), SelectChoice("to", "New size")],
                      default="by")
    amount = IntegerField("GiB", validators=[InputRequired("Give a size in GiB."), SIZE_RANGE])


class MountPointForm(FlaskForm):
    """A new volume mount point: storage, size, path inside the container, whether backups include it."""

    storage = SelectField("Storage", validate_choice=False)  # the service says why a storage is refused
    size = IntegerField("Size (GiB)", default=8, validators=[InputRequired("Give a size in GiB."), SIZE_RANGE])
    path = StringField("Path in the container", filters=[strip], validators=[
        DataRequired("Give the path inside the container, such as /data."),
        Length(max=PATH_MAX, message=f"At most {PATH_MAX} characters.")])
    backup = BooleanField("Include in backups", default=True)


# -- dialogs --------------------------------------------------------------------------------------------------

def _dialog(view: ContainerView, kind: str, form: FlaskForm, status: int = 200, **context):
    """The grow / add dialog: a modal body for htmx, a page otherwise."""
    template = "containers/_disk_dialog.html" if is_htmx() else "containers/disk_dialog.html"
    body = render_template(template, ct=view, vmid=view.vmid, kind=kind, form=form,
                           tab_url=url_for("containers.detail_tab", vmid=view.vmid, tab="disks"), **context)
    return varies(make_response(body, status))


def _invalid(view: ContainerView, kind: str, form: FlaskForm, message: str | None = None, field: str | None = None,
             **context):
    """The dialog again with its errors (``message`` beside ``field``, or above the form); htmx swaps it into the
    open modal (it swaps only 2xx answers)."""
    if message:
        (getattr(form, field).errors.append(message) if field else form.form_errors.append(message))
    response = _dialog(view, kind, form, 200 if is_htmx() else 400, **context)
    if is_htmx():
        response.headers["HX-Retarget"] = MODAL_CONTENT
        response.headers["HX-Reswap"] = "innerHTML"
    return response


def _to_tab(view: ContainerView, message: str, category: str):
    """After a change: the page's live part with the dialog closed and a toast (htmx), else a redirect with a
    flash."""
    if not is_htmx():
        flash(message, "error" if category == "danger" else category)
        return redirect(url_for("containers.detail_tab", vmid=view.vmid, tab="disks"))
    return trigger(render_detail(_load(view.vmid), "disks"), {"close-modal": True, "toast": toast(message, category)})


def _grown(view: ContainerView, operation: Operation):
    """A resize started: for htmx the page's live part (the header's spinner follows the task) with the dialog
    closed; without JavaScript a redirect to the tab telling the result if the task ended within a few seconds."""
    if not is_htmx():
        outcome = settle_within(operation, NO_SCRIPT_WAIT_SECONDS)
        message, category = ((outcome.message, outcome.category) if outcome else
                             (f"{operation.params['what']}: still in progress; reload to see the result.", "info"))
        return _to_tab(view, message, category)
    return trigger(render_detail(_load(view.vmid), "disks"), {"close-modal": True})


def _mount(view: ContainerView, disk: str):
    """The root disk or mount point ``disk`` and why it cannot be grown now, or None and why not."""
    if not disks.valid_disk_key(disk):
        abort(404, description="There is no such disk.")
    try:
        config = get_proxmox().container_config(view.node, view.vmid)
    except ProxmoxError as exc:
        return None, f"Proxmox did not give the container's configuration: {exc.message}"
    mount = disks.mount_of(config, disk)
    if mount is None:
        return None, f"CT {view.vmid} has no {disk}."
    return mount, task_busy_reason(view) or disks.grow_reason(mount)


@bp.get("/<int:vmid>/disks/<disk>/grow")
def disk_grow_form(vmid: int, disk: str):
    """The dialog to grow the root disk or a mount point."""
    view = _load(vmid)
    mount, reason = _mount(view, disk)
    return _dialog(view, "grow", GrowForm(), mount=mount, disk=disk, reason=reason)


@bp.post("/<int:vmid>/disks/<disk>/grow")
def disk_grow(vmid: int, disk: str):
    """Grow a disk; a size that is not larger comes back beside its field and nothing is asked of Proxmox."""
    view = _load(vmid)
    mount, reason = _mount(view, disk)
    form = GrowForm()
    if not form.validate():
        return _invalid(view, "grow", form, mount=mount, disk=disk, reason=reason)
    try:
        operation = disks.grow_disk(view, disk, form.amount.data, form.mode.data, g.user.username)
    except disks.NothingToGrow as exc:
        return _invalid(view, "grow", form, exc.message, "amount", mount=mount, disk=disk)
    except (ActionRefused, ProxmoxError) as exc:
        return _invalid(view, "grow", form, exc.message, mount=mount, disk=disk)
    return _grown(view, operation)


def _storage_choices(view: ContainerView, form: MountPointForm) -> str | None:
    """Fill ``form.storage`` with the node's storages for container volumes; the error when they cannot be listed."""
    try:
        storages = disks.storages_for_disks(view.node)
    except ProxmoxError as exc:
        form.storage.choices = []
        return f"The storages of node {view.node} cannot be listed: {exc.message}"
    form.storage.choices = [SelectChoice(s.storage, f"{s.storage} ({s.type}, {disks.gib(s.avail)} free)")
                            for s in storages]
    return None if storages else f"Node {view.node} has no storage that holds container volumes."


@bp.get("/<int:vmid>/disks/new")
def mount_point_form(vmid: int):
    """The dialog to add a mount point."""
    view = _load(vmid)
    form = MountPointForm()
    error = _storage_choices(view, form)
    return _dialog(view, "add", form, reason=task_busy_reason(view) or error)


@bp.post("/<int:vmid>/disks")
def mount_point_add(vmid: int):
    """Add a mount point (a new volume); bad input comes back beside its field and nothing is asked of Proxmox."""
    view = _load(vmid)
    form = MountPointForm()
    error = _storage_choices(view, form)
    if not form.validate():
        return _invalid(view, "add", form, reason=error)
    try:
        message = disks.add_mount_point(view, form.storage.data or "", form.size.data, form.path.data,
                                        bool(form.backup.data), g.user.username)
    except disks.BadMountPoint as exc:
        return _invalid(view, "add", form, exc.message, exc.field)
    except (ActionRefused, ProxmoxError) as exc:
        return _invalid(view, "add", form, exc.message)
    return _to_tab(view, message, "success")
