"""The creation wizard: /containers/create/<step>, one WTForms form per step, state in a WizardDraft."""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, session, url_for

from app import audit
from app.container_templates.services import all_tags, list_templates, split_tags
from app.containers.inventory import propose_vmid
from app.extensions import db
from app.forms import bound_to_query
from app.models import Container
from app.proxmox import ProxmoxError, get_proxmox
from app.proxmox.deadline import submit

from app.wizard import bp

from . import services, steps
from .services import STEP_LABELS, STEPS, DraftConsumed, SubmitRefused
from .forms import ConfigureForm, CreateForm, NodeQuery, TemplateQuery


def _draft():
    """The signed-in user's current draft (a new one when the session has none)."""
    draft = services.load_draft(session.get(services.session_key()), g.user.id)
    if draft is None:
        draft = services.new_draft(g.user.id)
        session[services.session_key()] = draft.id
    return draft


def _guard(draft, step: str):
    """A redirect to the first incomplete step when ``step`` cannot be opened yet, else None."""
    if services.may_open(draft, step):
        return None
    return redirect(url_for(f"wizard.{services.first_incomplete(draft)}"))


def _render(step: str, draft, **context):
    return render_template(f"wizard/{step}.html", step=step, steps=STEPS, labels=STEP_LABELS,
                           done=services.completed(draft), draft=draft, **context)


def _next_step(step: str) -> str:
    return url_for(f"wizard.{STEPS[STEPS.index(step) + 1]}")


def _previous_step(step: str) -> str:
    return url_for(f"wizard.{STEPS[STEPS.index(step) - 1]}")


@bp.get("", strict_slashes=False)
def start():
    """Continue the wizard where it stopped."""
    return redirect(url_for(f"wizard.{services.first_incomplete(_draft())}"))


@bp.post("/cancel")
def cancel():
    """Throw the draft (and its stored password) away."""
    draft = services.load_draft(session.pop(services.session_key(), None), g.user.id)
    if draft is not None:
        db.session.delete(draft)
        db.session.commit()
    flash("The creation wizard was reset.", "info")
    return redirect(url_for("wizard.template"))


@bp.route("/template", methods=["GET", "POST"])
def template():
    """Step 1: a template card, or start from scratch."""
    draft = _draft()
    templates = list_templates()
    form = steps.template_form(templates)
    if request.method == "GET":
        form.template.data = services.step_data(draft, "template").get("choice")
    elif steps.save_template(draft, form):
        return redirect(_next_step("template"))
    query = TemplateQuery()
    search = query.q.data or ""
    tags = split_tags(query.tag.data)
    shown = list_templates(search, tags) if (search or tags) else templates
    return _render("template", draft, form=form, templates=shown, search=search, tags=tags, all_tags=all_tags())


def _configure_form(draft, options, saved):
    """The Configure form with node-dependent choices; on GET, filled from ``saved``."""
    has_password = services.has_password(draft)
    if request.method == "POST":
        form = ConfigureForm(has_password=has_password)
    elif NodeQuery().node.data:  # htmx node change or a plain GET with ?node=
        form = bound_to_query(ConfigureForm, has_password=has_password)
    else:
        form = ConfigureForm(data=saved, has_password=has_password)
    return steps.fill_configure_choices(form, options, saved, request.method == "GET" or form.change_node.data)


@bp.route("/configure", methods=["GET", "POST"])
def configure():
    """Step 2: node, OS template, identity, resources, network and features."""
    draft = _draft()
    if (blocked := _guard(draft, "configure")) is not None:
        return blocked
    template = services.template_of(draft)
    saved = steps.saved_configuration(draft)
    pve = get_proxmox()
    wanted = NodeQuery(source="form").node.data if request.method == "POST" else NodeQuery().node.data or saved.get("node")
    # Proxmox's next free VMID is asked beside the node's options, not after them.
    suggestion = submit(pve.next_vmid) if request.method == "GET" and not saved.get("vmid") else None
    options = services.node_options(pve, wanted)
    form = _configure_form(draft, options, saved)
    if request.method == "GET" and not form.vmid.data and not options.error:
        try:
            form.vmid.data = propose_vmid(suggestion.result if suggestion is not None else None)
        except ProxmoxError as exc:
            options.error = exc.message
    if request.method == "POST" and not form.change_node.data:
        valid = steps.save_configure(draft, form)
        if form.back.data:
            return redirect(_previous_step("configure"))
        if valid:
            return redirect(_next_step("configure"))
    return _render("configure", draft, form=form, options=options, template=template,
                   has_password=services.has_password(draft))


@bp.get("/configure/node-fields")
def node_fields():
    """htmx: the node-dependent selects (OS template, storage, bridge) for ``?node=``."""
    draft = _draft()
    saved = steps.saved_configuration(draft)
    options = services.node_options(get_proxmox(), NodeQuery().node.data)
    form = _configure_form(draft, options, saved)
    return render_template("wizard/_node_fields.html", form=form, options=options)


@bp.route("/packages", methods=["GET", "POST"])
def packages():
    """Step 3: the template's package groups and additional packages."""
    draft = _draft()
    if (blocked := _guard(draft, "packages")) is not None:
        return blocked
    form, groups = steps.packages_form(draft)
    if request.method == "POST":
        valid = steps.save_packages(draft, form)
        if form.back.data:
            return redirect(_previous_step("packages"))
        if valid:
            return redirect(_next_step("packages"))
    return _render("packages", draft, form=form, groups=groups)


@bp.route("/scripts", methods=["GET", "POST"])
def scripts():
    """Step 4: which of the template's scripts run, and in what order."""
    draft = _draft()
    if (blocked := _guard(draft, "scripts")) is not None:
        return blocked
    form, rows = steps.scripts_form(draft)
    if request.method == "POST":
        valid, moving = steps.save_scripts(draft, form, rows)
        if moving:
            return redirect(url_for("wizard.scripts"))
        if form.back.data:
            return redirect(_previous_step("scripts"))
        if valid:
            return redirect(_next_step("scripts"))
    return _render("scripts", draft, form=form, rows=rows)


@bp.get("/review")
def review():
    """Step 5: everything on one page, each section with an Edit link."""
    draft = _draft()
    if (blocked := _guard(draft, "review")) is not None:
        return blocked
    template = services.template_of(draft)
    plan = services.build_plan(draft, template)
    form = CreateForm()
    return _render("review", draft, form=form, plan=plan, template=template, ssh=services.ssh_need(plan),
                   has_password=services.has_password(draft),
                   rows=services.script_rows(draft, template), groups=services.package_groups(template))


@bp.post("/review")
def create():
    """Create: consume the draft once, queue the provisioning job, show its progress."""
    form = CreateForm()
    draft_id = form.draft_id.data or session.get(services.session_key())
    if not form.validate() or not draft_id:
        abort(400)
    draft = db.session.get(services.WizardDraft, draft_id)
    if draft is None or draft.user_id != g.user.id:
        abort(404)
    try:
        container = services.submit(draft_id, g.user.username, get_proxmox())
        audit.about(container)
    except DraftConsumed as done:
        if session.get(services.session_key()) == draft_id:
            session.pop(services.session_key())
        container = db.session.get(Container, done.container_id) if done.container_id else None
        if container is None:
            flash("This container was already submitted.", "info")
            return redirect(url_for("dashboard.index"))
        flash(f"CT {container.vmid} was already submitted; here is its progress.", "info")
        return redirect(url_for("containers.progress", vmid=container.vmid))
    except SubmitRefused as refused:
        flash(refused.message, "error")
        return redirect(url_for(f"wizard.{refused.step}"))
    session.pop(services.session_key(), None)
    return redirect(url_for("containers.progress", vmid=container.vmid))
