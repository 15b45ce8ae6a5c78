"""The Config tab of a container's page: resources and options, notes, network interfaces, and the changes
Proxmox holds until the next restart; ``config_services`` holds the rules.

A render costs one GET …/pending (current values, pending values and the digest in one answer). Each edit is a
dialog (a modal for htmx, a page without JavaScript) whose form carries the digest it was filled from; a
refusal (the container busy, the config changed meanwhile, Proxmox's message or the privilege it lacks) is
shown in the dialog above the form, the typed values kept, and nothing is sent.
"""
from __future__ import annotations

from flask import abort, flash, g, make_response, redirect, render_template, url_for
from flask_wtf import FlaskForm

from app import audit
from app.containers import bp
from app.containers import config_services as cfg
from app.containers.config_forms import InterfaceForm, RemoveInterfaceForm, ResourcesForm
from app.containers.detail import TAB_CONTEXTS, _load, render_detail
from app.containers.inventory import ContainerView
from app.containers.services import ActionRefused, view_reason
from app.db_faults import is_db_fault
from app.extensions import db
from app.htmx import is_htmx, toast, trigger, varies
from app.proxmox import ProxmoxError, get_proxmox

MODAL_CONTENT = "#confirm-modal .modal-content"


def config_context(view: ContainerView) -> dict:
    """What the Config tab shows (``cfg``: a ``ConfigTab``)."""
    return {"cfg": cfg.config_tab(view), "render_notes": cfg.render_notes,
            "restart_reason": view_reason("reboot", view)}


TAB_CONTEXTS["config"] = config_context


# -- filling the forms -----------------------------------------------------------------------------------------

def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _resources_form(tab: cfg.ConfigTab) -> ResourcesForm:
    values = tab.values
    startup = cfg.parse_properties(values.get("startup"), "order")
    return ResourcesForm(
        digest=tab.state.digest if tab.state else "", cores=_int(values.get("cores")),
        cpulimit=float(values.get("cpulimit") or 0), memory=_int(values.get("memory")) or 512,
        swap=_int(values.get("swap")) if "swap" in values else 512, onboot=cfg.is_on(values.get("onboot")),
        order=_int(startup.get("order")), up=_int(startup.get("up")), down=_int(startup.get("down")),
        tags=" ".join(t for t in (values.get("tags") or "").replace(",", ";").split(";") if t),
        notes=values.get("description") or "", **{flag: tab.feature(flag) for flag in cfg.FEATURE_FLAGS})


def _mode(value: str | None, modes: tuple[str, ...]) -> tuple[str, str]:
    """(radio choice, CIDR) of an ``ip``/``ip6`` value."""
    if value in modes:
        return value, ""
    return ("static", value) if value and "/" in value else ("manual", "")


def _interface_form(tab: cfg.ConfigTab, net: cfg.NetView | None) -> InterfaceForm:
    digest = tab.state.digest if tab.state else ""
    if net is None:
        names = {n.props.get("name") for n in tab.nets}
        name = next(f"eth{i}" for i in range(cfg.MAX_NETS + 1) if f"eth{i}" not in names)
        return InterfaceForm(digest=digest, name=name)
    props = net.props
    ip, cidr = _mode(props.get("ip"), ("dhcp", "manual"))
    ip6, cidr6 = _mode(props.get("ip6"), ("dhcp", "auto", "manual"))
    return InterfaceForm(digest=digest, name=props.get("name"), bridge=props.get("bridge"), tag=_int(props.get("tag")),
                         ip=ip, cidr=cidr, gateway=props.get("gw", ""), ip6=ip6, cidr6=cidr6,
                         gateway6=props.get("gw6", ""), firewall=cfg.is_on(props.get("firewall")))


def _bridges(view: ContainerView, form: InterfaceForm, tab: cfg.ConfigTab) -> str | None:
    """Offer the node's bridges (and the interface's own, should the node no longer list it); why none, if so."""
    try:
        names = [b.iface for b in get_proxmox().bridges(view.node)]
    except ProxmoxError as exc:
        names, error = [], f"Proxmox did not list the bridges of {view.node}: {exc.message}"
    else:
        error = None if names else f"Node {view.node} has no bridge to attach an interface to."
    current = form.bridge.data or form.bridge.default
    if current and current not in names:
        names.append(current)
    form.bridge.choices = [(name, name) for name in names]
    return error


def _net(tab: cfg.ConfigTab, index: int) -> cfg.NetView:
    """Interface netN (a bare one while the config cannot be read: the dialog then says why); else the 404 page."""
    if tab.state is None:
        return cfg.NetView(f"net{index}", {})
    net = next((n for n in tab.nets if n.index == index), None)
    if net is None:
        abort(404, description=f"The container has no interface net{index}.")
    return net


# -- answers ---------------------------------------------------------------------------------------------------

TITLES = {"resources": "Resources and options of {name}", "add": "Add a network interface to {name}",
          "edit": "Edit {net} of {name}", "remove": "Remove {net} from {name}?"}


def _dialog(view: ContainerView, kind: str, form: FlaskForm, tab: cfg.ConfigTab, *, net: cfg.NetView | None = None,
            error: str | None = None):
    """A dialog (modal body for htmx, a page otherwise); ``error``: why the last try changed nothing."""
    if kind == "resources":
        action_url = url_for("containers.config_update", vmid=view.vmid)
    elif kind == "add":
        action_url = url_for("containers.config_net_add", vmid=view.vmid)
    else:
        action_url = url_for(f"containers.config_net_{'save' if kind == 'edit' else 'remove'}", vmid=view.vmid,
                             index=net.index)
    template = "containers/_config_dialog.html" if is_htmx() else "containers/config_dialog.html"
    title = TITLES[kind].format(name=view.name, net=net.key if net else "")
    return varies(make_response(render_template(
        template, ct=view, vmid=view.vmid, kind=kind, form=form, cfg=tab, net=net, error=error,
        reason=tab.busy or tab.error, title=title, action_url=action_url)))


def _again(view: ContainerView, kind: str, form: FlaskForm, tab: cfg.ConfigTab, *, net=None, error: str | None = None):
    """The dialog again with the form's errors or the refusal, in the open modal for htmx (which swaps only 2xx)."""
    if error:
        _audit("failed", {"result": error})
    response = _dialog(view, kind, form, tab, net=net, error=error)
    if is_htmx():
        response.headers["HX-Retarget"] = MODAL_CONTENT
        response.headers["HX-Reswap"] = "innerHTML"
    return response


def _audit(outcome: str, detail: dict) -> None:
    """This request's audit entry, with what changed (or why nothing did)."""
    try:
        audit.record_request(outcome=outcome, detail=detail)
        db.session.commit()
    except Exception as exc:
        if not is_db_fault(exc):
            raise
        db.session.rollback()  # the change is made in Proxmox; its event and this entry are what is lost


def _done(view: ContainerView, result: cfg.ConfigResult):
    """After a change: the tab with a toast (closing the dialog), or a redirect with a flash without JavaScript."""
    _audit("succeeded", result.audit_detail())
    if not is_htmx():
        flash(result.message, result.category)
        return redirect(url_for("containers.detail_tab", vmid=view.vmid, tab="config"))
    return trigger(render_detail(_load(view.vmid), "config"),
                   {"close-modal": True, "toast": toast(result.message, result.category)})


def _apply(view: ContainerView, kind: str, form: FlaskForm, tab: cfg.ConfigTab, wanted, *, net=None):
    """Ask ``update_config`` for ``wanted``; the dialog again with the refusal when it changed nothing."""
    try:
        result = cfg.update_config(view, wanted, form.digest.data or None, g.user.username)
    except ActionRefused as exc:
        return _again(view, kind, form, tab, net=net, error=exc.message)
    return _done(view, result)


def _save_interface(view: ContainerView, tab: cfg.ConfigTab, kind: str, net: cfg.NetView | None = None):
    """Add (``net`` None: as the first free netN) or change an interface from the posted form."""
    form = InterfaceForm()
    _bridges(view, form, tab)
    valid = form.validate()
    if valid and cfg.name_taken(tab.values, net.key if net else "", form.name.data):
        form.name.errors = [*form.name.errors, f"Another interface is already named {form.name.data}."]
        valid = False
    if not valid:
        return _again(view, kind, form, tab, net=net)
    if tab.state is None:
        return _again(view, kind, form, tab, net=net, error=tab.error)
    try:
        key = net.key if net else cfg.free_net_key(tab.values)
    except ActionRefused as exc:
        return _again(view, kind, form, tab, error=exc.message)
    return _apply(view, kind, form, tab, {key: cfg.interface_value(form.values(), tab.values.get(key))}, net=net)


# -- views -----------------------------------------------------------------------------------------------------

@bp.get("/<int:vmid>/config/edit")
def config_edit(vmid: int):
    """The resources-and-options form, filled from the config (pending changes applied)."""
    view = _load(vmid)
    tab = cfg.config_tab(view)
    return _dialog(view, "resources", _resources_form(tab), tab)


@bp.post("/<int:vmid>/config")
def config_update(vmid: int):
    """Change resources and options: only what differs is sent."""
    view = _load(vmid)
    tab = cfg.config_tab(view)
    form = ResourcesForm()
    if not form.validate():
        return _again(view, "resources", form, tab)
    if tab.state is None:
        return _again(view, "resources", form, tab, error=tab.error)
    return _apply(view, "resources", form, tab, cfg.resource_values(form.values(), tab.values))


@bp.get("/<int:vmid>/config/net/new")
def config_net_new(vmid: int):
    """The form to add a network interface."""
    view = _load(vmid)
    tab = cfg.config_tab(view)
    form = _interface_form(tab, None)
    error = _bridges(view, form, tab)
    return _dialog(view, "add", form, tab, error=error)


@bp.post("/<int:vmid>/config/net")
def config_net_add(vmid: int):
    """Add a network interface as the first free netN."""
    view = _load(vmid)
    return _save_interface(view, cfg.config_tab(view), "add")


@bp.get("/<int:vmid>/config/net/<int:index>")
def config_net_edit(vmid: int, index: int):
    """The form to edit network interface netN."""
    view = _load(vmid)
    tab = cfg.config_tab(view)
    net = _net(tab, index)
    form = _interface_form(tab, net)
    error = _bridges(view, form, tab)
    return _dialog(view, "edit", form, tab, net=net, error=error)


@bp.post("/<int:vmid>/config/net/<int:index>")
def config_net_save(vmid: int, index: int):
    """Change network interface netN, keeping its MAC address and the settings the form does not show."""
    view = _load(vmid)
    tab = cfg.config_tab(view)
    return _save_interface(view, tab, "edit", _net(tab, index))


@bp.get("/<int:vmid>/config/net/<int:index>/remove")
def config_net_confirm_remove(vmid: int, index: int):
    """Confirm the removal of network interface netN."""
    view = _load(vmid)
    tab = cfg.config_tab(view)
    net = _net(tab, index)
    return _dialog(view, "remove", RemoveInterfaceForm(digest=tab.state.digest if tab.state else ""), tab, net=net)


@bp.post("/<int:vmid>/config/net/<int:index>/remove")
def config_net_remove(vmid: int, index: int):
    """Remove network interface netN (``delete=netN``)."""
    view = _load(vmid)
    tab = cfg.config_tab(view)
    net = _net(tab, index)
    form = RemoveInterfaceForm()
    if not form.validate():
        return _again(view, "remove", form, tab, net=net, error="The form expired; please try again.")
    return _apply(view, "remove", form, tab, {net.key: None}, net=net)
