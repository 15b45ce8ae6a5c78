"""The Backups tab of a container's page: its backups on every backup storage of its node, "Back up now",
restore (to a new VMID, or over the container), delete and protect; ``backup_services`` holds the rules.

A render lists the node's backup storages (one call) and reads them in parallel (one call each); a storage
that fails shows its own error while the others list. While a backup task of the container runs (or a restore
of one of its backups as a new container), the tab shows its task log, polled once a second from
``backup_task``, which appends the new lines and, once the task has ended, swaps the updated tab in with a
toast. Each dialog (back up, restore, delete) is a modal for htmx and a plain page without JavaScript.
"""
from __future__ import annotations

from datetime import timedelta

from flask import abort, flash, g, make_response, redirect, render_template, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, HiddenField, IntegerField, RadioField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length

from app.containers import backup_services as backups
from app.containers import bp
from app.containers.detail import TAB_CONTEXTS, _load, render_detail
from app.containers.inventory import ContainerView
from app.containers.services import ActionRefused, refresh_operation, task_busy_reason
from app.extensions import db
from app.forms import IntegerField as QueryInteger
from app.forms import QueryForm, pve_range, strip
from app.forms import StringField as QueryString
from app.htmx import is_htmx, toast, trigger, varies
from app.models import Operation, utcnow
from app.proxmox import ProxmoxError, get_proxmox

MODAL_CONTENT = "#confirm-modal .modal-content"
LAST_TASK_SHOWN = timedelta(minutes=30)  # how long the tab keeps telling how its last backup task ended
NOTES_MAX = 1024  # the API's limit on notes-template (vzdump); edited notes are held to it too, as Proxboard's own cap


class BackupQuery(QueryForm):
    """``?volid=``: the backup a dialog is about."""

    volid = QueryString()


class TaskLogQuery(QueryForm):
    """``?after=``: the last task log line the tab already shows."""

    after = QueryInteger()


class BackupNowForm(FlaskForm):
    """Back up now: storage, vzdump mode, compression, notes template, protection."""

    storage = SelectField("Storage")
    mode = RadioField("Mode", choices=[SelectChoice(k, v) for k, v in backups.MODES.items()], default="snapshot")
    compress = SelectField("Compression", choices=[SelectChoice(k, v) for k, v in backups.COMPRESSIONS.items()],
                           default="zstd")
    notes = StringField("Notes", default="{{guestname}}", filters=[strip],
                        validators=[Length(max=NOTES_MAX, message="At most %(max)d characters.")])
    protected = BooleanField("Protected (cannot be deleted until the protection is removed)")


class RestoreNewForm(FlaskForm):
    """Restore a backup as a new container."""

    volid = HiddenField(validators=[InputRequired()])
    vmid = IntegerField("New VMID", validators=[InputRequired("Give the VMID of the new container."),
                                               pve_range("vmid", "A VMID is a number from 100 to 999999999.")])
    storage = SelectField("Root disk storage")
    start = BooleanField("Start after restore")
    unique = BooleanField("Unique: new MAC addresses (keep the original running beside it)", default=True)


class RestoreOverForm(FlaskForm):
    """Restore a backup over the container itself: the hostname typed confirms it."""

    volid = HiddenField(validators=[InputRequired()])
    hostname = StringField("Type the container's hostname to confirm", filters=[strip],
                           validators=[InputRequired("Type the hostname to confirm.")])
    storage = SelectField("Root disk storage")
    start = BooleanField("Start after restore")


class VolumeForm(FlaskForm):
    """A POST about one backup (delete)."""

    volid = HiddenField(validators=[InputRequired()])


class ProtectionForm(VolumeForm):
    """Protect a backup, or remove its protection."""

    protected = BooleanField()


class NotesForm(VolumeForm):
    """A backup's notes."""

    notes = StringField("Notes", filters=[strip],
                        validators=[Length(max=NOTES_MAX, message="Notes take at most %(max)d characters.")])


# -- the tab ---------------------------------------------------------------------------------------------------

def over_reason(view: ContainerView) -> str | None:
    """Why a backup cannot be restored over the container now (it must be stopped, as Proxmox requires), or None."""
    return task_busy_reason(view) or (backups.RUNNING_REASON if view.pve_status != "stopped" else None)


def last_task(vmid: int, record_id: int | None) -> Operation | None:
    """The backup task of this tab that ended last, if within ``LAST_TASK_SHOWN``."""
    since = utcnow() - LAST_TASK_SHOWN
    ended = db.session.scalars(select(Operation).where(
        Operation.action.in_(backups.BACKUP_TASKS), Operation.state.in_(("succeeded", "failed")),
        Operation.finished_at >= since).order_by(Operation.finished_at.desc(), Operation.id.desc()).limit(20)).all()
    return next((op for op in ended if op.container_id == record_id or (op.params or {}).get("source_vmid") == vmid),
                None)


def backups_context(view: ContainerView) -> dict:
    """What the Backups tab shows: the listing, the task being followed with its log so far, the last one ended
    with its log, and why the buttons are disabled."""
    if view.stale or view.lifecycle in ("gone", "creating"):
        listing = backups.Listing(error=task_busy_reason(view))
    else:
        listing = backups.list_backups(view.node, view.vmid)
    task, settled = backups.tab_task(view.vmid, view.record_id)
    if settled is not None and view.pending is not None and view.pending.state not in ("queued", "running"):
        view.pending = None  # it ended just now: the header and the buttons no longer wait for it
    lines = backups.task_lines(task) if task is not None else []
    last = last_task(view.vmid, view.record_id) if task is None else None
    return {"listing": listing, "task": task, "task_lines": lines, "after": lines[-1].n if lines else 0,
            "last_task": last, "last_lines": backups.task_lines(last) if last is not None else [],
            "busy": task_busy_reason(view), "over_reason": over_reason(view)}


TAB_CONTEXTS["backups"] = backups_context


# -- dialogs ---------------------------------------------------------------------------------------------------

def _dialog(view: ContainerView, kind: str, status: int = 200, **context):
    """The ``kind`` dialog (backup, restore-new, restore-over, delete): a modal body for htmx, else a page."""
    template = "containers/_backup_dialog.html" if is_htmx() else "containers/backup_dialog.html"
    body = render_template(template, ct=view, kind=kind, modal=is_htmx(),
                           tab_url=url_for("containers.detail_tab", vmid=view.vmid, tab="backups"), **context)
    return varies(make_response(body, status))


def _refused(view: ContainerView, kind: str, form: FlaskForm, message: str, **context):
    """The dialog again with Proxmox's or the rule's refusal; htmx swaps it into the open modal."""
    form.form_errors.append(message)
    return _invalid(view, kind, form, **context)


def _invalid(view: ContainerView, kind: str, form: FlaskForm, **context):
    response = _dialog(view, kind, 200 if is_htmx() else 400, form=form, **context)
    if is_htmx():
        response.headers["HX-Retarget"] = MODAL_CONTENT
        response.headers["HX-Reswap"] = "innerHTML"
    return response


def _started(vmid: int, operation: Operation):
    """After a task was started: the tab (htmx, the modal closed) or a redirect to it. A task that ended while
    the tab was rendered (its render settles it) is told at once."""
    message = f"{operation.params['what']}: started."
    if not is_htmx():
        flash(message, "info")
        return redirect(url_for("containers.detail_tab", vmid=vmid, tab="backups"))
    response = render_detail(_load(vmid), "backups")
    response.headers["HX-Retarget"] = "#ct-tab"
    response.headers["HX-Reswap"] = "innerHTML"
    if operation.state == "succeeded":
        done = operation.params.get("done") or message
        return trigger(response, {"close-modal": True, "toast": toast(done, "success")})
    if operation.state == "failed":
        return trigger(response, {"close-modal": True, "toast": toast(operation.error or message, "danger")})
    # No "started" toast: the tab shows the task running, and a toast would refresh the page at once (``toast
    # from:body``), whose render could end the task before the poller and swallow its outcome.
    return trigger(response, {"close-modal": True})


def _storage_choices(view: ContainerView, form: FlaskForm, loader) -> str | None:
    """Fill ``form.storage`` from ``loader(node)``; the error when the storages cannot be listed."""
    try:
        storages = loader(view.node)
    except ProxmoxError as exc:
        form.storage.choices = []
        return f"The storages of node {view.node} cannot be listed: {exc.message}"
    form.storage.choices = [
        SelectChoice(s.storage, f"{s.storage} ({'Proxmox Backup Server' if s.type == 'pbs' else s.type}"
                                f"{', shared' if s.shared else ''})") for s in storages]
    return None


def _current_storage(view: ContainerView, form: FlaskForm) -> str | None:
    """The storage of the container's root disk when it is offered, else the first offered (the restore default)."""
    offered = [choice.value for choice in form.storage.choices]
    try:
        current = get_proxmox().container_config(view.node, view.vmid).rootfs_storage
    except ProxmoxError:
        current = None
    return current if current in offered else (offered[0] if offered else None)


@bp.get("/<int:vmid>/backups/new")
def backup_form(vmid: int):
    """The "Back up now" dialog."""
    view = _load(vmid)
    form = BackupNowForm()
    error = _storage_choices(view, form, backups.backup_storages)
    return _dialog(view, "backup", form=form, error=error or task_busy_reason(view))


@bp.post("/<int:vmid>/backups")
def backup_now(vmid: int):
    """Start a backup (vzdump) of the container; the tab then follows its task log."""
    view = _load(vmid)
    form = BackupNowForm()
    error = _storage_choices(view, form, backups.backup_storages)
    if error:
        return _refused(view, "backup", form, error)
    if not form.validate_on_submit():
        return _invalid(view, "backup", form)
    try:
        operation = backups.backup_now(vmid, g.user.username, storage=form.storage.data, mode=form.mode.data,
                                       compress=form.compress.data, notes=form.notes.data,
                                       protected=form.protected.data)
    except (ActionRefused, ProxmoxError) as exc:
        return _refused(view, "backup", form, exc.message)
    return _started(vmid, operation)


def _backup_for(view: ContainerView, volid: str | None):
    """The backup a dialog is about, or the reason it cannot be shown."""
    if not volid:
        return None, "No backup was given."
    try:
        return backups.find_backup(view.node, view.vmid, volid), None
    except ActionRefused as exc:
        return None, exc.message


@bp.get("/<int:vmid>/backups/restore/<any(new, over):target>")
def backup_restore_form(vmid: int, target: str):
    """The restore dialog: to a new VMID, or over this container (``target``)."""
    view = _load(vmid)
    volid = BackupQuery().volid.data
    backup, error = _backup_for(view, volid)
    if target == "new":
        form = RestoreNewForm(volid=volid)
        try:
            form.vmid.data = get_proxmox().next_vmid()
        except ProxmoxError as exc:
            error = error or f"Proxmox cannot suggest a free VMID: {exc.message}"
    else:
        form = RestoreOverForm(volid=volid)
    error = _storage_choices(view, form, backups.rootdir_storages) or error
    form.storage.data = _current_storage(view, form)
    reason = task_busy_reason(view) if target == "new" else over_reason(view)
    return _dialog(view, f"restore-{target}", form=form, backup=backup, error=error or reason)


@bp.post("/<int:vmid>/backups/restore/<any(new, over):target>")
def backup_restore(vmid: int, target: str):
    """Restore a backup to a new VMID, or over this container (``force``; the hostname typed confirms it)."""
    view = _load(vmid)
    form = RestoreNewForm() if target == "new" else RestoreOverForm()
    kind = f"restore-{target}"
    error = _storage_choices(view, form, backups.rootdir_storages)
    backup, _ = _backup_for(view, form.volid.data)
    if error:
        return _refused(view, kind, form, error, backup=backup)
    if not form.validate_on_submit():
        return _invalid(view, kind, form, backup=backup)
    try:
        if target == "new":
            operation = backups.restore_new(vmid, g.user.username, volid=form.volid.data, new_vmid=form.vmid.data,
                                            storage=form.storage.data, start=form.start.data,
                                            unique=form.unique.data)
        else:
            operation = backups.restore_over(vmid, g.user.username, volid=form.volid.data,
                                             hostname=form.hostname.data, storage=form.storage.data,
                                             start=form.start.data)
    except (ActionRefused, ProxmoxError) as exc:
        return _refused(view, kind, form, exc.message, backup=backup)
    return _started(vmid, operation)


@bp.get("/<int:vmid>/backups/delete")
def backup_delete_form(vmid: int):
    """The confirmation of a backup's deletion (refused, with the reason, for a protected one)."""
    view = _load(vmid)
    volid = BackupQuery().volid.data
    backup, error = _backup_for(view, volid)
    if backup is not None and backup.protected:
        error = backups.PROTECTED_REASON
    return _dialog(view, "delete", form=VolumeForm(volid=volid), backup=backup, error=error or task_busy_reason(view))


@bp.post("/<int:vmid>/backups/delete")
def backup_delete(vmid: int):
    """Delete a backup (never a protected one)."""
    view = _load(vmid)
    form = VolumeForm()
    backup, _ = _backup_for(view, form.volid.data)
    if not form.validate_on_submit():
        return _invalid(view, "delete", form, backup=backup)
    try:
        operation = backups.delete_backup(vmid, g.user.username, volid=form.volid.data)
    except (ActionRefused, ProxmoxError) as exc:
        return _refused(view, "delete", form, exc.message, backup=backup)
    return _started(vmid, operation)


def _updated(vmid: int, form: FlaskForm, **change):
    """Change a backup's protection or notes; the tab again with a toast (a redirect with a flash without htmx)."""
    if not form.validate_on_submit():
        errors = [e for field_errors in form.errors.values() for e in field_errors]
        message, category = errors[0] if errors else "The form named no backup.", "danger"
    else:
        try:
            message, category = backups.update_backup(vmid, g.user.username, volid=form.volid.data,
                                                      **change), "success"
        except (ActionRefused, ProxmoxError) as exc:
            message, category = exc.message, "danger"
    if not is_htmx():
        flash(message, category)
        return redirect(url_for("containers.detail_tab", vmid=vmid, tab="backups"))
    return trigger(render_detail(_load(vmid), "backups"), {"toast": toast(message, category)})


@bp.post("/<int:vmid>/backups/protection")
def backup_protection(vmid: int):
    """Protect a backup from deletion, or remove its protection."""
    form = ProtectionForm()
    return _updated(vmid, form, protected=form.protected.data)


@bp.post("/<int:vmid>/backups/notes")
def backup_notes(vmid: int):
    """Change a backup's notes (empty: none)."""
    form = NotesForm()
    return _updated(vmid, form, notes=form.notes.data or "")


@bp.get("/<int:vmid>/backups/tasks/<int:operation_id>")
def backup_task(vmid: int, operation_id: int):
    """Polled each second while a backup task runs: its new log lines (``?after=``), then, once it has ended,
    the updated tab with a toast of the outcome."""
    operation = db.session.get(Operation, operation_id)
    if operation is None or not backups.belongs_to_tab(operation, vmid):
        abort(404)
    after = TaskLogQuery().after.data or 0
    outcome = refresh_operation(operation)
    if operation.pending:
        lines = backups.task_lines(operation, after)
        response = make_response(render_template("containers/_backup_task_update.html", ct_vmid=vmid, task=operation,
                                                 task_lines=lines, after=lines[-1].n if lines else after))
        response.headers["Cache-Control"] = "no-store"
        return response
    response = render_detail(_load(vmid), "backups")
    response.headers["HX-Reswap"] = "innerHTML"
    response.headers["Cache-Control"] = "no-store"
    if outcome is not None:
        trigger(response, {"toast": toast(outcome.message, outcome.category)})
    return response
