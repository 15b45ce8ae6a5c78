"""The wizard's steps as functions a bound form goes through, for the pages and for ``POST /api/v1/containers``.

Each step has a builder (the step's form with its choices, filled from the draft or from what was sent) and a
``save_…`` that validates it and saves it on the draft. The pages call them one step per request; the API calls
them all in one request (``create_container``). Either way a container is refused for the same reasons, with the
same messages, and created by the same ``services.submit``.
"""
from __future__ import annotations

from typing import Any

from werkzeug.datastructures import MultiDict
from wtforms.fields.choices import SelectChoice

from app.container_templates.services import list_templates
from app.containers.inventory import propose_vmid, vmid_available
from app.extensions import db
from app.models import Container, User
from app.proxmox import ProxmoxError

from . import services
from .forms import ConfigureForm, PackagesForm, ScriptsForm, TemplateForm, node_name

CONFIGURE_FIELDS = ("node", "ostemplate", "hostname", "vmid", "ssh_public_keys", "cores", "memory", "swap", "disk",
                    "storage", "bridge", "ip_mode", "ip_cidr", "gateway", "nameserver", "unprivileged", "nesting",
                    "keyctl", "fuse", "onboot", "tags")
NO_CSRF = {"csrf": False}  # the API's forms: CSRFProtect has already checked the request (or its token exempted it)


class StepInvalid(Exception):
    """A step's values did not validate; ``errors`` maps each field to its messages, nothing was created."""

    def __init__(self, step: str, errors: dict[str, list[str]]) -> None:
        super().__init__(f"The {services.STEP_LABELS[step]} step is not valid.")
        self.step, self.errors = step, errors


# -- step 1: template -------------------------------------------------------------------------


def template_form(templates: list | None = None, **kwargs) -> TemplateForm:
    """The Template step's form: "scratch" or the id of one of ``templates`` (default: every template)."""
    form = TemplateForm(**kwargs)
    form.template.choices = [SelectChoice("scratch", "Start from scratch")] + [
        SelectChoice(str(t.id), t.name) for t in (list_templates() if templates is None else templates)]
    return form


def save_template(draft, form: TemplateForm) -> bool:
    """Validate the choice and save it (a different choice resets the later steps); True when valid."""
    if not form.validate():
        return False
    services.choose_template(draft, form.template.data)
    return True


# -- step 2: configure ------------------------------------------------------------------------


def saved_configuration(draft) -> dict[str, Any]:
    """What the Configure step starts from: the template's defaults, then what was saved for the draft."""
    return {**services.configure_defaults(services.template_of(draft)), **services.step_data(draft, "configure")}


def fill_configure_choices(form: ConfigureForm, options: services.NodeOptions, saved: dict[str, Any],
                           repick: bool) -> ConfigureForm:
    """Offer ``options``' nodes, OS templates, storages and bridges; with ``repick`` (a form just opened, or the
    node changed) choose the node ``options`` settled on and the saved or template's OS template, storage and
    bridge where they are offered. A submitted choice is validated, never silently replaced."""
    form.node.choices = [SelectChoice(n.name, f"{n.name} — {n.free_cpus:g} CPUs, {n.free_mem / 1024**3:.1f} GiB free")
                         for n in options.nodes]
    if repick or form.node.data is None:
        form.node.data = options.node
    form.ostemplate.choices = [SelectChoice(t.volid, t.name) for t in options.ostemplates]
    form.storage.choices = [SelectChoice(s.storage, f"{s.storage} ({s.type}, {s.avail / 1024**3:.0f} GiB free)")
                            for s in options.storages]
    form.bridge.choices = [SelectChoice(b.iface, b.iface + (f" ({b.cidr})" if b.cidr else "")) for b in options.bridges]
    if repick:
        ostemplate = form.ostemplate.data or saved.get("ostemplate")
        form.ostemplate.data = services.pick(ostemplate, [c.value for c in form.ostemplate.choices], match_name=True)
        form.storage.data = services.pick(form.storage.data or saved.get("storage"),
                                          [c.value for c in form.storage.choices])
        form.bridge.data = services.pick(form.bridge.data or saved.get("bridge"),
                                         [c.value for c in form.bridge.choices])
    return form


def configure_values(form: ConfigureForm) -> dict[str, Any]:
    """What the draft keeps of the Configure form (never the password: see ``services.set_password``)."""
    return {name: form[name].data for name in CONFIGURE_FIELDS}


def vmid_free(form: ConfigureForm) -> bool:
    """Whether Proxmox (and Proxboard's own creations) leave the form's VMID free; adds the error if not."""
    vmid = form.vmid.data
    try:
        free = vmid_available(vmid)
    except ProxmoxError as exc:
        form.vmid.errors.append(f"Proxmox cannot check this VMID right now: {exc.message}")
        return False
    if not free:
        form.vmid.errors.append(f"VMID {vmid} is already in use.")
    return free


def save_configure(draft, form: ConfigureForm) -> bool:
    """Validate the Configure form (its fields, then whether the VMID is free), keep a typed password (also through
    other fields' errors), save the step; True when valid. Asks Proxmox (GET /cluster/nextid?vmid=N)."""
    valid = form.validate() and vmid_free(form)
    if form.password.data and not (form.password.errors or form.password_confirm.errors):
        services.set_password(draft, form.password.data)
    services.save_step(draft, "configure", configure_values(form), done=valid)
    return valid


# -- steps 3 and 4: packages, scripts ---------------------------------------------------------


def packages_form(draft, **kwargs) -> tuple[PackagesForm, dict[str, list[str]]]:
    """The Packages step's form (the template's groups, all chosen until saved otherwise) and those groups."""
    groups = services.package_groups(services.template_of(draft))
    saved = services.step_data(draft, "packages")
    form = PackagesForm(data={"groups": saved.get("groups", list(groups)), "additional": saved.get("additional", "")},
                        **kwargs)
    form.groups.choices = [SelectChoice(manager) for manager in groups]
    return form, groups


def save_packages(draft, form: PackagesForm) -> bool:
    """Validate and save the chosen package groups and additional packages; True when valid."""
    valid = form.validate()
    services.save_step(draft, "packages", {"groups": form.groups.data or [], "additional": form.additional.data or ""},
                       done=valid)
    return valid


def scripts_form(draft, **kwargs) -> tuple[ScriptsForm, list]:
    """The Scripts step's form and its rows (each template script with whether it runs), in the chosen order."""
    rows = services.script_rows(draft, services.template_of(draft))
    form = ScriptsForm(data={"enabled": [str(s.id) for s, run in rows if run],
                             "order": ",".join(str(s.id) for s, _run in rows)}, **kwargs)
    form.enabled.choices = [SelectChoice(str(s.id), s.name) for s, _run in rows]
    return form, rows


def save_scripts(draft, form: ScriptsForm, rows: list) -> tuple[bool, bool]:
    """Validate and save which scripts run and their order (a ``move`` swaps one with its neighbour first).

    Returns ``(valid, moving)``: a move saves the order without completing the step unless it was complete.
    """
    valid = form.validate()
    known = [str(s.id) for s, _run in rows]
    order = [sid for sid in (form.order.data or "").split(",") if sid in known]
    order += [sid for sid in known if sid not in order]
    if form.move.data and ":" in form.move.data:
        script_id, direction = form.move.data.split(":", 1)
        order = services.move(order, script_id, direction)
    moving = bool(form.move.data)
    services.save_step(draft, "scripts", {"order": order, "enabled": form.enabled.data or []},
                       done=valid and (not moving or "scripts" in services.completed(draft)))
    return valid, moving


# -- all steps at once (the API) --------------------------------------------------------------


def create_container(user: User, values: MultiDict, pve) -> Container:
    """Walk every step with ``values`` (the wizard's field names; what is left out takes the value the wizard
    would have filled in) on a draft of its own, then submit it as the Create button does.

    ``values``: ``template`` ("scratch", the default, or a template id); the Configure fields (``node``,
    ``ostemplate``, ``storage`` and ``bridge`` default to what the wizard preselects, ``vmid`` to the one it
    proposes, ``password_confirm`` to ``password``); ``groups`` and ``additional`` (packages); ``enabled``
    and ``order`` (scripts). Returns the container being created (its provisioning operation is queued).

    Raises ``StepInvalid`` (with the wizard's messages per field), ``services.SubmitRefused`` and ProxmoxError
    (Proxmox cannot be asked for the node's options or a VMID); the draft is deleted whatever happens.
    """
    draft = services.new_draft(user.id)
    try:
        return _walk(draft, values, pve, user.username)
    finally:
        if draft.consumed_at is None and db.session.get(type(draft), draft.id) is not None:
            db.session.delete(draft)
            db.session.commit()


def _walk(draft, values: MultiDict, pve, username: str) -> Container:
    values = MultiDict(values)
    values.setdefault("template", "scratch")
    form = template_form(formdata=values, meta=NO_CSRF)
    if not save_template(draft, form):
        raise StepInvalid("template", form.errors)

    saved = saved_configuration(draft)
    options = services.node_options(pve, node_name(values.get("node")))  # never "../x" into Proxmox's paths
    if options.error:
        raise ProxmoxError(options.error)
    preset = ConfigureForm(formdata=None, data=saved, meta=NO_CSRF)
    fill_configure_choices(preset, options, saved, repick=True)
    for name in CONFIGURE_FIELDS:
        if name not in values and preset[name].data is not None and preset[name].data is not False \
                and preset[name].data != "":
            values[name] = "y" if preset[name].data is True else str(preset[name].data)
    if "vmid" not in values:
        values["vmid"] = str(propose_vmid())
    if "password" in values and "password_confirm" not in values:
        values["password_confirm"] = values["password"]
    form = fill_configure_choices(ConfigureForm(formdata=values, meta=NO_CSRF, has_password=False), options, saved,
                                  repick=False)
    if not save_configure(draft, form):
        raise StepInvalid("configure", form.errors)

    groups_given = "groups" in values
    form, groups = packages_form(draft, formdata=values if groups_given or "additional" in values else None,
                                 meta=NO_CSRF)
    if not groups_given:
        form.groups.data = list(groups)  # left out: every group, as the wizard preselects
    if not save_packages(draft, form):
        raise StepInvalid("packages", form.errors)

    scripts_given = "enabled" in values or "order" in values
    form, rows = scripts_form(draft, formdata=values if scripts_given else None, meta=NO_CSRF)
    valid, _moving = save_scripts(draft, form, rows)
    if not valid:
        raise StepInvalid("scripts", form.errors)
    return services.submit(draft.id, username, pve)
