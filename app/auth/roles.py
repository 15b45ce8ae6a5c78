"""Roles: who may do what, decided in one place (a map over every endpoint), checked before every view.

``viewer`` < ``operator`` < ``admin`` (``app.models.ROLES``); each role may do all that the ones before it may:

- viewer: sees everything (every page and fragment), no actions, no credentials;
- operator: lifecycle actions, services refresh, credential reveal, creating containers from existing templates;
- admin: everything, including templates, users, settings and deleting containers.

``PERMISSIONS`` maps each endpoint to the lowest role that may use it, with what it does in words for the
refusal ("Operators and admins can stop containers; you are a viewer."). One endpoint serving several actions
(``containers.run_action``) is split by its URL argument. ``PREFIXES`` covers whole blueprints with one rule
(``users.``, ``audit.``: admin; ``auth.``: the signed-in user's own account). Public endpoints
(``app.auth.PUBLIC_ENDPOINTS``) need no role. An endpoint in none of these is refused to everyone but
admins, and ``unclassified(app)`` names it (a test fails on it): a new view cannot slip in open.

A form that only leads to a refused action (the template editor, a confirmation page, the creation wizard)
needs that action's role, so nobody fills in a form the server will refuse. ``enforce`` (a ``before_request``
after the sign-in check) answers a refused request with a 403 page naming the role needed, or for htmx a 403
whose ``HX-Trigger`` toast says it, and records the refusal in the audit log. Templates ask ``can(endpoint,
**arguments)`` and ``refusal(endpoint, **arguments)`` (the reason for a disabled button's tooltip).
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, g, make_response, render_template, request
from werkzeug.exceptions import Forbidden

from app import audit, problems
from app.auth import PUBLIC_ENDPOINTS
from app.extensions import db
from app.htmx import is_htmx, toast, trigger, varies
from app.models import ROLES


@dataclass(frozen=True)
class Rule:
    """The lowest ``role`` that may use an endpoint, and what it ``does`` ("stop containers")."""

    role: str
    does: str


@dataclass(frozen=True)
class ByArgument:
    """A rule per value of the URL argument ``name``; ``default`` for a value not listed (the view 404s it)."""

    name: str
    rules: dict[str, Rule]
    default: Rule

    def pick(self, values: dict | None) -> Rule:
        """The rule for the URL arguments ``values``."""
        return self.rules.get(str((values or {}).get(self.name)), self.default)


def viewer(does: str = "see this page") -> Rule:
    """Open to every signed-in role."""
    return Rule("viewer", does)


def operator(does: str) -> Rule:
    """For operators and admins; ``does`` completes "Operators and admins can …"."""
    return Rule("operator", does)


def admin(does: str) -> Rule:
    """For admins only; ``does`` completes "Admins can …"."""
    return Rule("admin", does)


EDIT_TEMPLATES = admin("edit container templates")
EDIT_PACKAGES = admin("edit package lists")

PERMISSIONS: dict[str, Rule | ByArgument] = {
    # Seeing: every page and fragment, including what polls while an operator's action runs.
    "dashboard.index": viewer(),
    "about.index": viewer(),
    "nodes.index": viewer(),
    "nodes.detail": viewer(),
    "backups.index": viewer(),
    "containers.index": viewer(),
    "containers.detail": viewer(),
    "containers.detail_tab": viewer(),
    "containers.operation_status": viewer(),  # polled by every page showing the spinner, whoever started it
    "bulk.show": viewer(),  # a bulk action's progress, polled by every dashboard showing it
    "containers.progress": viewer(),
    "containers.progress_events": viewer(),
    "containers.refresh_services_status": viewer(),
    "containers.backup_task": viewer(),  # the Backups tab follows a task whoever started it
    "container_templates.index": viewer(),
    "container_templates.detail": viewer(),
    "container_templates.export": viewer(),  # a download: reading a template, not changing it
    "container_templates.buckets": viewer(),
    "wizard.static": viewer(),  # the provisioning progress page, open to viewers, uses its stylesheet
    "alerts.index": viewer(),
    "alerts.history": viewer(),
    # For other tools, with a viewer's API token: Prometheus, Homepage and Homarr read counts, never act.
    "observability.metrics": viewer("read the Prometheus metrics"),
    "observability.widget_summary": viewer("read the dashboard widget's counts"),

    # Operating: lifecycle actions, services, credentials, creating from existing templates.
    "containers.confirm_action": ByArgument("action", {
        "start": operator("start containers"), "shutdown": operator("shut down containers"),
        "stop": operator("stop containers"), "reboot": operator("restart containers"),
        "delete": admin("delete containers"),
    }, default=operator("run container actions")),
    "containers.run_action": ByArgument("action", {
        "start": operator("start containers"), "shutdown": operator("shut down containers"),
        "stop": operator("stop containers"), "reboot": operator("restart containers"),
        "delete": admin("delete containers"),
    }, default=operator("run container actions")),
    "containers.clear": operator("clear gone containers from the dashboard"),  # nothing changes in Proxmox
    "containers.refresh_services": operator("refresh services"),
    "containers.backup_form": operator("back up containers"),
    "containers.backup_now": operator("back up containers"),
    "containers.backup_protection": operator("protect backups"),
    "containers.backup_notes": operator("change the notes of backups"),
    # Restoring to a new VMID creates a container (as the wizard does); restoring over one destroys its disks.
    "containers.backup_restore_form": ByArgument("target", {
        "new": operator("restore backups as new containers"), "over": admin("restore backups over containers"),
    }, default=admin("restore backups over containers")),
    "containers.backup_restore": ByArgument("target", {
        "new": operator("restore backups as new containers"), "over": admin("restore backups over containers"),
    }, default=admin("restore backups over containers")),
    "containers.backup_delete_form": admin("delete backups"),
    "containers.backup_delete": admin("delete backups"),
    "containers.reveal_credentials": operator("see credentials"),
    "containers.progress_retry": operator("retry a failed creation"),
    "containers.progress_delete": admin("delete containers"),  # it deletes the guest in Proxmox
    "containers.snapshot_new": operator("take and roll back snapshots"),
    "containers.snapshot_create": operator("take and roll back snapshots"),
    "containers.snapshot_confirm_rollback": operator("take and roll back snapshots"),
    "containers.snapshot_rollback": operator("take and roll back snapshots"),
    "containers.snapshot_confirm_delete": operator("delete snapshots"),
    "containers.snapshot_delete": operator("delete snapshots"),
    "bulk.confirm": operator("act on many containers at once"),
    "bulk.create": operator("act on many containers at once"),
    "containers.config_edit": operator("edit the configuration of containers"),
    "containers.config_update": operator("edit the configuration of containers"),
    "containers.config_net_new": operator("edit the network of containers"),
    "containers.config_net_add": operator("edit the network of containers"),
    "containers.config_net_edit": operator("edit the network of containers"),
    "containers.config_net_save": operator("edit the network of containers"),
    "containers.config_net_confirm_remove": operator("edit the network of containers"),
    "containers.config_net_remove": operator("edit the network of containers"),
    # A shell in the guest is an action: the page too, since it exists only to open one.
    "containers.console": operator("open container consoles"),
    "containers.console_ws": operator("open container consoles"),
    "containers.clone_form": operator("clone containers"),
    "containers.clone": operator("clone containers"),
    "containers.migrate_form": operator("migrate containers"),
    "containers.migrate": operator("migrate containers"),
    # A template cannot be turned back into a container from Proxboard.
    "containers.template_form": admin("convert containers to templates"),
    "containers.convert_to_template": admin("convert containers to templates"),
    "containers.disk_grow_form": operator("grow disks"),
    "containers.disk_grow": operator("grow disks"),
    "containers.mount_point_form": operator("add mount points"),
    "containers.mount_point_add": operator("add mount points"),
    # Keeping alerts quiet is day-to-day work; what alerts exist and where they go (channel URLs hold tokens)
    # is the admins' (``alerts.`` below).
    "alerts.mute": operator("mute the alerts of containers"),
    "alerts.unmute": operator("mute the alerts of containers"),
    "alerts.add_maintenance": operator("plan maintenance windows"),
    "alerts.end_maintenance": operator("plan maintenance windows"),
    "wizard.start": operator("create containers"),
    "wizard.template": operator("create containers"),
    "wizard.configure": operator("create containers"),
    "wizard.node_fields": operator("create containers"),
    "wizard.packages": operator("create containers"),
    "wizard.scripts": operator("create containers"),
    "wizard.review": operator("create containers"),
    "wizard.create": operator("create containers"),
    "wizard.cancel": operator("create containers"),

    # Administering: templates and package lists (create, edit, import, delete).
    "container_templates.create": admin("create container templates"),
    "container_templates.edit": EDIT_TEMPLATES,
    "container_templates.duplicate": admin("create container templates"),
    "container_templates.delete": admin("delete container templates"),
    "container_templates.import_file": admin("import container templates"),
    "container_templates.discover": admin("import container templates"),
    "container_templates.add_script": EDIT_TEMPLATES,
    "container_templates.update_script": EDIT_TEMPLATES,
    "container_templates.script_action": EDIT_TEMPLATES,
    "container_templates.save_file": EDIT_TEMPLATES,
    "container_templates.add_package": EDIT_TEMPLATES,
    "container_templates.save_service": EDIT_TEMPLATES,
    "container_templates.delete_item": EDIT_TEMPLATES,
    "container_templates.attach_bucket": EDIT_TEMPLATES,
    "container_templates.detach_bucket": EDIT_TEMPLATES,
    "container_templates.create_bucket": EDIT_PACKAGES,
    "container_templates.rename_bucket": EDIT_PACKAGES,
    "container_templates.add_bucket_package": EDIT_PACKAGES,
    "container_templates.import_bucket_packages": EDIT_PACKAGES,
    "container_templates.remove_bucket_package": EDIT_PACKAGES,
    "container_templates.delete_bucket": EDIT_PACKAGES,
}

# The JSON API (/api/v1): each endpoint needs what the page or button it stands for needs, taken from above.
PERMISSIONS.update({
    "api.containers": viewer("list containers"),
    "api.container": viewer(),
    "api.container_status": viewer(),
    "api.container_services": viewer(),
    "api.container_events": viewer(),
    "api.operation": viewer(),
    "api.container_action": PERMISSIONS["containers.run_action"],
    "api.create": PERMISSIONS["wizard.create"],
    "api.templates": viewer(),
    "api.template_export": PERMISSIONS["container_templates.export"],
    "api.template_import": PERMISSIONS["container_templates.import_file"],
})

# Whole blueprints, longest prefix first. ``auth.`` holds only the signed-in user's own account (sign out,
# sessions, password, theme, two-factor, passkeys, API tokens); acting on other people lives in ``users.``.
PREFIXES: dict[str, Rule] = {
    "users.": admin("manage users"),
    "audit.": admin("read the audit log"),
    "settings.": admin("change settings"),
    "alerts.": admin("change alert rules and channels"),
    "auth.": viewer("manage their own account"),
}

UNCLASSIFIED = admin("use this page")  # an endpoint nobody placed in the map: admins only, and a test fails

ARTICLES = {"viewer": "a viewer", "operator": "an operator", "admin": "an admin"}
WHO = {"viewer": "Everyone", "operator": "Operators and admins", "admin": "Admins"}


def rule_for(endpoint: str, values: dict | None = None) -> Rule | None:
    """The rule for ``endpoint`` with URL arguments ``values``; None for a public endpoint (no sign-in)."""
    if endpoint in PUBLIC_ENDPOINTS:
        return None
    found = PERMISSIONS.get(endpoint)
    if found is None:
        found = next((rule for prefix, rule in sorted(PREFIXES.items(), key=lambda item: -len(item[0]))
                      if endpoint.startswith(prefix)), UNCLASSIFIED)
    return found.pick(values) if isinstance(found, ByArgument) else found


def classified(endpoint: str) -> bool:
    """Whether ``endpoint`` is public, in ``PERMISSIONS`` or under one of ``PREFIXES``."""
    return endpoint in PUBLIC_ENDPOINTS or endpoint in PERMISSIONS or endpoint.startswith(tuple(PREFIXES))


def unclassified(app: Flask) -> list[str]:
    """The endpoints of ``app`` that nobody placed in the map (they answer 403 to all but admins)."""
    return sorted({rule.endpoint for rule in app.url_map.iter_rules() if not classified(rule.endpoint)})


def current_role() -> str | None:
    """The role this request acts with: with an API token, the lower of the token's role and its owner's now
    (``g.api_token_role``, set by ``tokens``: a demoted owner takes their tokens down too), else the signed-in
    user's; None for a stranger."""
    user = g.get("user")
    token = g.get("api_token")
    if token is not None:
        role = g.get("api_token_role") or token.role
        if user is not None and role in ROLES and user.role in ROLES:
            role = min(role, user.role, key=ROLES.index)  # never above the owner, even without api_token_role
        return role
    return user.role if user is not None else None


def allows(role: str | None, rule: Rule | None) -> bool:
    """Whether ``role`` reaches ``rule`` (a public endpoint's None rule allows anyone)."""
    if rule is None:
        return True
    return role in ROLES and ROLES.index(role) >= ROLES.index(rule.role)


def can(endpoint: str, user=None, **values) -> bool:
    """Whether ``user`` (default: this request's role, see ``current_role``) may use ``endpoint`` with the URL
    arguments ``values``: ``can('containers.run_action', action='stop')``."""
    role = user.role if user is not None else current_role()
    return allows(role, rule_for(endpoint, values))


def refusal(endpoint: str, user=None, **values) -> str | None:
    """Why ``endpoint`` is refused ("Operators and admins can stop containers; you are a viewer."), or None
    when it is allowed: the tooltip of a disabled button and the first sentence of the 403."""
    rule = rule_for(endpoint, values)
    role = user.role if user is not None else current_role()
    if allows(role, rule):
        return None
    held = f"this API token is limited to {role}" if user is None and g.get("api_token") is not None \
        else f"you are {ARTICLES.get(role, 'signed out')}"
    return f"{WHO[rule.role]} can {rule.does}; {held}."


def enforce():
    """``before_request``: refuse (403) a request the current role may not make, and audit the refusal.

    Runs after the sign-in check, so a stranger was already sent to the login form (and would be refused here).
    """
    endpoint = request.endpoint
    if endpoint is None:
        return None  # the 404 handler answers unknown URLs
    values = request.view_args or {}
    rule = rule_for(endpoint, values)
    if allows(current_role(), rule):  # nobody signed in has no role: refused, should the sign-in check let one by
        return None
    message = f"{refusal(endpoint, **values)} Ask an admin."
    vmid = values.get("vmid")
    audit.record(endpoint, outcome="refused", target=request.path, vmid=vmid if isinstance(vmid, int) else None,
                 detail={"method": request.method, "needs": rule.role, "role": current_role()})
    db.session.commit()
    return refused_response(message, rule.role)


def refused_response(message: str, needs: str):
    """The 403 for a refused request: the error page, or for htmx its fragment with a ``toast``."""
    if problems.is_api_request():
        return problems.problem(403, message, needs=needs)
    error = Forbidden(description=message)
    if is_htmx():
        response = make_response(render_template("errors/_fragment.html", error=error, code=403), 403)
        return varies(trigger(response, {"toast": toast(message, "danger")}))
    return varies(make_response(render_template("errors/refused.html", error=error, code=403, needs=needs), 403))


def init_app(app: Flask) -> None:
    """Check every request against the map (call after the sign-in check) and give templates ``can`` and
    ``refusal``."""
    app.before_request(enforce)
    app.add_template_global(can, "can")
    app.add_template_global(refusal, "refusal")
    app.add_template_global(current_role, "current_role")
