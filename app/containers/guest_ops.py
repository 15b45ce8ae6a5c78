"""``/containers/<vmid>/clone``, ``/migrate`` and ``/template``: the header's "More" menu and its dialogs.

Each dialog is a modal for htmx and a plain page without JavaScript; ``guest_op_services`` holds the rules.
A render of a dialog costs the calls its choices need (nodes, storages, snapshots; the migration preconditions
on PVE 9.x). A started migration or conversion answers with the header, whose spinner follows the task to its
toast; a started clone goes to the dashboard, where the new guest's card carries the spinner.
"""
from __future__ import annotations

from flask import flash, g, make_response, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import IntegerField, RadioField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Optional

from app.container_templates.validators import dns_name
from app.containers import bp
from app.containers import guest_op_services as ops
from app.containers.detail import _load, header_context
from app.containers.inventory import ContainerView
from app.containers.services import ActionRefused, settle_within
from app.forms import pve_range, strip
from app.htmx import is_htmx, trigger, varies
from app.models import Operation
from app.proxmox import ProxmoxError, get_proxmox

MODAL_CONTENT = "#confirm-modal .modal-content"
NO_SCRIPT_WAIT_SECONDS = 5  # how long a plain form POST waits to tell the task's result after the redirect
TITLES = {"clone": "Clone {name}", "migrate": "Migrate {name}", "template": "Convert {name} to a template"}


class CloneForm(FlaskForm):
    """Clone a container: new VMID and hostname, linked or full, target node, storage, snapshot."""

    vmid = IntegerField("New VMID", validators=[InputRequired("Give the VMID of the clone."),
                                               pve_range("vmid", "A VMID is a number from 100 to 999999999.")])
    hostname = StringField("Hostname", filters=[strip], validators=[Optional(), dns_name])
    mode = RadioField("Clone", default="full", choices=[
        SelectChoice("linked", "Linked: shares the template's disks (fast, small)"),
        SelectChoice("full", "Full: an independent copy of every disk")])
    target = SelectField("Target node")
    storage = SelectField("Target storage (full clones)", default="")
    snapname = SelectField("Copy from", default="")


class MigrateForm(FlaskForm):
    """Migrate a container: the target node."""

    target = SelectField("Target node")


class TemplateForm(FlaskForm):
    """Convert a container to a template: the hostname typed confirms it."""

    hostname = StringField("Type the container's hostname to confirm", filters=[strip],
                           validators=[InputRequired("Type the hostname to confirm.")])


def guest_op_reasons(view: ContainerView) -> dict[str, str | None]:
    """Why each item of the "More" menu is unavailable for ``view`` (None: available)."""
    busy = ops.clone_reason(view)
    return {"clone": busy, "migrate": busy, "template": ops.template_reason(view)}


@bp.app_context_processor
def guest_op_helpers():
    """``guest_op_reasons`` for the header's menu."""
    return {"guest_op_reasons": guest_op_reasons}


def _dialog(view: ContainerView, kind: str, form: FlaskForm, status: int = 200, **context):
    """The ``kind`` dialog: a modal body for htmx, else a page."""
    template = "containers/_guest_op_dialog.html" if is_htmx() else "containers/guest_op_dialog.html"
    body = render_template(template, ct=view, kind=kind, form=form, modal=is_htmx(),
                           title=TITLES[kind].format(name=view.name), **context)
    return varies(make_response(body, status))


def _refused(view: ContainerView, kind: str, form: FlaskForm, message: str | None, **context):
    """The dialog again with the form's errors or the refusal; htmx swaps it into the open modal."""
    if message:
        form.form_errors.append(message)
    response = _dialog(view, kind, form, 200 if is_htmx() else 400, **context)
    if is_htmx():
        response.headers["HX-Retarget"] = MODAL_CONTENT
        response.headers["HX-Reswap"] = "innerHTML"
    return response


def _started(view: ContainerView, operation: Operation):
    """A migration or conversion started: the header (its spinner follows the task) with the dialog closed, or
    without JavaScript a redirect to the page with how it went."""
    if not is_htmx():
        if outcome := settle_within(operation, NO_SCRIPT_WAIT_SECONDS):
            flash(outcome.message, outcome.category)
        else:
            flash(f"{operation.params['what']} requested; it is still in progress: reload to see the result.", "info")
        return redirect(url_for("containers.detail", vmid=view.vmid))
    response = make_response(render_template("containers/_header.html", **header_context(_load(view.vmid))))
    return trigger(response, {"close-modal": True})


# -- clone ------------------------------------------------------------------------------------------------------

def _clone_choices(view: ContainerView, form: CloneForm) -> ops.CloneOptions:
    options = ops.clone_options(view)
    form.target.choices = [SelectChoice(n, f"{n} (this node)" if n == view.node else n) for n in options.nodes]
    form.storage.choices = [SelectChoice("", "Same as now")] + [
        SelectChoice(s.storage, f"{s.storage} ({s.type}{', shared' if s.shared else ''})") for s in options.storages]
    form.snapname.choices = [SelectChoice("", "Its current state")] + [SelectChoice(s, f"Snapshot “{s}”")
                                                                       for s in options.snapshots]
    if not view.template:
        form.mode.choices = [c for c in form.mode.choices if c.value == "full"]
    return options


@bp.get("/<int:vmid>/clone")
def clone_form(vmid: int):
    """The clone dialog: Proxmox's next free VMID suggested, linked for a template, full otherwise."""
    view = _load(vmid)
    form = CloneForm(mode="linked" if view.template else "full", target=view.node)
    options = _clone_choices(view, form)
    error = options.error
    try:
        form.vmid.data = get_proxmox().next_vmid()
    except ProxmoxError as exc:
        error = error or f"Proxmox cannot suggest a free VMID: {exc.message}"
    if not form.hostname.data and view.name:
        candidate = f"{view.name}-clone"
        form.hostname.data = candidate if len(candidate) <= 63 and candidate.replace("-", "").isalnum() else ""
    if not error and view.pve_status == "running" and not view.template and not options.snapshots:
        error = ops.RUNNING_WITHOUT_SNAPSHOT
    return _dialog(view, "clone", form, error=error or ops.clone_reason(view))


@bp.post("/<int:vmid>/clone")
def clone(vmid: int):
    """Clone the container; the new guest's card appears on the dashboard with its spinner."""
    view = _load(vmid)
    form = CloneForm()
    options = _clone_choices(view, form)
    if options.error:
        return _refused(view, "clone", form, options.error)
    if not form.validate_on_submit():
        return _refused(view, "clone", form, None)
    full = form.mode.data == "full"
    try:
        operation = ops.clone(vmid, g.user.username, new_vmid=form.vmid.data, hostname=form.hostname.data or None,
                              target=form.target.data, full=full, storage=form.storage.data if full else None,
                              snapname=form.snapname.data or None)
    except (ActionRefused, ProxmoxError) as exc:
        return _refused(view, "clone", form, exc.message)
    flash(f"{operation.params['what']}: started.", "info")
    response = redirect(url_for("dashboard.index"))
    if is_htmx():
        response = make_response("")
        response.headers["HX-Redirect"] = url_for("dashboard.index")
    return response


# -- migrate ----------------------------------------------------------------------------------------------------

def _migrate_choices(view: ContainerView, form: MigrateForm) -> ops.MigrateOptions:
    options = ops.migrate_options(view.node, view.vmid)
    form.target.choices = [SelectChoice(n, n + (" (blocked by HA rules)" if options.blocked(n) else ""))
                           for n in options.targets]
    return options


@bp.get("/<int:vmid>/migrate")
def migrate_form(vmid: int):
    """The migration dialog: the other online nodes, how it will move, and on PVE 9.x what Proxmox reports."""
    view = _load(vmid)
    form = MigrateForm()
    options = _migrate_choices(view, form)
    reason = ops.clone_reason(view) or (None if options.targets or options.error else
                                        "There is no other online node to move it to.")
    return _dialog(view, "migrate", form, options=options, error=options.error or reason)


@bp.post("/<int:vmid>/migrate")
def migrate(vmid: int):
    """Migrate the container to the chosen node."""
    view = _load(vmid)
    form = MigrateForm()
    options = _migrate_choices(view, form)
    if not form.validate_on_submit():
        return _refused(view, "migrate", form, options.error, options=options)
    try:
        operation = ops.migrate(vmid, g.user.username, target=form.target.data)
    except (ActionRefused, ProxmoxError) as exc:
        return _refused(view, "migrate", form, exc.message, options=options)
    return _started(view, operation)


# -- convert to template ----------------------------------------------------------------------------------------

@bp.get("/<int:vmid>/template")
def template_form(vmid: int):
    """The conversion dialog: what changes for good, and the hostname to type."""
    view = _load(vmid)
    reason = ops.template_reason(view) or ops.snapshots_reason(view.node, view.vmid)
    return _dialog(view, "template", TemplateForm(), error=reason)


@bp.post("/<int:vmid>/template")
def convert_to_template(vmid: int):
    """Convert the (stopped) container to a template."""
    view = _load(vmid)
    form = TemplateForm()
    if not form.validate_on_submit():
        return _refused(view, "template", form, None)
    try:
        operation = ops.convert_to_template(vmid, g.user.username, hostname=form.hostname.data)
    except (ActionRefused, ProxmoxError) as exc:
        return _refused(view, "template", form, exc.message)
    return _started(view, operation)
