"""What a request did, in words: the audit action name of an endpoint and what it acted on.

``describe(endpoint, view_args)`` turns ``containers.run_action`` with ``{"vmid": 101, "action": "stop"}`` into
``Described(action="container.stop", target="CT 101 (web01)", container=<Container>, vmid=101)``. A small map
names the endpoints whose function name reads badly; any other endpoint is named ``<noun>.<function>`` from
its blueprint (``container_templates.add_script`` → ``template.add_script``), so a new view is named without
anyone editing this file. Targets are looked up by the URL's ids (a container by VMID, a template, a user…),
a few primary-key queries at most; an id that names nothing is kept as ``template 7``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import g, has_request_context

from app.extensions import db
from app.models import (
    DEFAULT_CLUSTER_ID,
    AlertChannel,
    AlertRule,
    ApiToken,
    Container,
    ContainerTemplate,
    PackageBucket,
    Passkey,
    Service,
    UnknownCluster,
    User,
    current_cluster_name,
    qualified,
)

# Endpoints whose readable name is not their function's.
ACTIONS: dict[str, str] = {
    "auth.logout": "auth.sign_out",
    "auth.end_session": "auth.session_ended",
    "auth.sign_out_everywhere": "auth.signed_out_everywhere",
    "auth.password": "auth.password_changed",
    "containers.clear": "container.clear",
    "containers.refresh_services": "container.services_refresh",
    "containers.reveal_credentials": "credential.reveal",
    "containers.progress_retry": "container.create_retry",
    "containers.progress_delete": "container.delete_failed_creation",
    "containers.backup_now": "container.backup",
    "containers.backup_restore": "container.restore",
    "containers.backup_delete": "container.backup-delete",
    "containers.backup_protection": "container.backup-protection",
    "containers.backup_notes": "container.backup-notes",
    # named like the worker's entry of how the task ended (``audit.record_result``: container.<Operation.action>)
    "containers.snapshot_create": "container.snapshot",
    "containers.snapshot_rollback": "container.rollback",
    "containers.snapshot_delete": "container.snapshot-delete",
    "containers.convert_to_template": "container.template",
    "containers.config_update": "container.config",
    "containers.config_net_add": "container.network-add",
    "containers.config_net_save": "container.network-edit",
    "containers.config_net_remove": "container.network-remove",
    "containers.console": "container.console",  # the sessions record themselves (containers.console)
    "containers.console_ws": "container.console",
    "containers.disk_grow": "container.resize",
    "containers.mount_point_add": "container.mount-point-add",
    "wizard.review": "container.create",
    "wizard.create": "container.create",
    "container_templates.create": "template.create",
    "container_templates.edit": "template.update",
    "container_templates.import_file": "template.import",
    "container_templates.create_bucket": "package_list.create",
    "container_templates.rename_bucket": "package_list.rename",
    "container_templates.add_bucket_package": "package_list.add_package",
    "container_templates.import_bucket_packages": "package_list.import_packages",
    "container_templates.remove_bucket_package": "package_list.remove_package",
    "container_templates.delete_bucket": "package_list.delete",
    # The Users page's views record their own entries under these names; a refused or invalid form, which
    # the hook records, is named the same so the log can be filtered by one action.
    "users.create": "user.created",
    "users.set_role": "user.role_changed",
    "users.disable": "user.disabled",
    "users.enable": "user.enabled",
    "users.delete": "user.deleted",
    "users.reset_password": "user.password_reset",
    "users.reset_2fa": "user.2fa_reset",
    "users.require_2fa": "user.2fa_required",
    "settings.add_cluster": "cluster.add",
    "settings.edit_cluster": "cluster.update",
    "settings.check_cluster": "cluster.check",
    "settings.remove_cluster": "cluster.remove",
}
# Blueprint to the noun of its actions (the default name is ``<noun>.<view function>``).
NOUNS: dict[str, str] = {
    "containers": "container",
    "container_templates": "template",
    "users": "user",
    "auth": "auth",
    "wizard": "wizard",
    "dashboard": "dashboard",
    "audit": "audit",
    "alerts": "alert",
}


@dataclass
class Described:
    """An action name, what it was done on (as a person reads it), the container it concerns, and the URL's
    other arguments (``detail``)."""

    action: str
    target: str | None = None
    container: Container | None = None
    vmid: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def action_name(endpoint: str, view_args: dict | None = None) -> str:
    """The audit action of ``endpoint``: ``container.<action>`` for the lifecycle endpoint, a mapped name, or
    ``<noun>.<function>`` (at most 64 characters, the column's length)."""
    args = view_args or {}
    if endpoint == "containers.run_action" and isinstance(args.get("action"), str):
        return f"container.{args['action']}"[:64]
    if endpoint in ACTIONS:
        return ACTIONS[endpoint]
    blueprint, _, function = endpoint.rpartition(".")
    if not blueprint:
        return endpoint[:64]
    return f"{NOUNS.get(blueprint, blueprint)}.{function}"[:64]


def container_target(container: Container) -> str:
    """``CT 101 (web01)``, or ``CT 101`` when it has no name yet; ``lab/CT 101 (web01)`` in a cluster other than the
    default one."""
    name = container.hostname or (container.snapshot or {}).get("name")
    target = f"CT {container.vmid} ({name})" if name else f"CT {container.vmid}"
    return qualified(container.cluster.name if container.cluster_id not in (None, DEFAULT_CLUSTER_ID) else None, target)


def _container(vmid: int) -> Container | None:
    """The current record of ``vmid``, else its latest archived one (a deleted guest's entry still links it);
    None in a cluster that does not exist (a URL naming one is a 404, which is still recorded)."""
    try:
        return Container.current(vmid) or db.session.scalar(db.select(Container).where(
            Container.in_cluster(), Container.vmid == vmid).order_by(Container.id.desc()).limit(1))
    except UnknownCluster:
        return None


def _named(model, key: int, attribute: str, noun: str) -> str:
    row = db.session.get(model, key)
    return f"{noun} {getattr(row, attribute)}" if row is not None else f"{noun} {key}"


def describe(endpoint: str, view_args: dict | None = None) -> Described:
    """The action name and target of a request to ``endpoint`` with the URL arguments ``view_args``.

    A container is found by ``vmid`` (target ``CT 101 (web01)``); its service (``service_id``) adds the service's
    name to ``detail``; a template, package list, user, API token or passkey id becomes its name (``template 7``
    once it is gone), and a Settings page's cluster ``cluster lab``. Other arguments go to ``detail`` as they are
    (ids and words from the URL: URLs carry no secret), a template's own ``service_id`` among them.
    """
    args = dict(view_args or {})
    described = Described(action_name(endpoint, args))
    vmid = args.pop("vmid", None)
    if isinstance(vmid, int):
        # A URL naming a cluster nobody added was refused (404); its guest is not the default cluster's of that VMID.
        refused = g.get("refused_cluster") if has_request_context() else None
        described.vmid = vmid
        described.container = None if refused else _container(vmid)
        described.target = (container_target(described.container) if described.container
                            else qualified(refused or current_cluster_name(), f"CT {vmid}"))
    if endpoint == "containers.run_action":
        args.pop("action", None)
    if described.vmid is not None and isinstance(service_id := args.pop("service_id", None), int):
        service = db.session.get(Service, service_id)
        described.detail["service"] = service.name if service is not None else service_id
        if service is not None and endpoint == "containers.reveal_credentials":
            # the labels shown, never the values: those stay encrypted and out of the log
            described.detail["labels"] = [credential.key for credential in service.credentials]
    lookups = (("template_id", ContainerTemplate, "name", "template"), ("bucket_id", PackageBucket, "name", "package list"),
               ("user_id", User, "username", "user"), ("token_id", ApiToken, "name", "API token"),
               ("passkey_id", Passkey, "name", "passkey"), ("rule_id", AlertRule, "name", "alert rule"),
               ("channel_id", AlertChannel, "name", "alert channel"))
    for key, model, attribute, noun in lookups:
        value = args.get(key)
        if isinstance(value, int) and described.target is None:
            described.target = _named(model, value, attribute, noun)
            args.pop(key)
    if endpoint.startswith("settings.") and isinstance(args.get("name"), str):  # /settings/clusters/<name>/…
        described.target = f"cluster {args.pop('name')}"
    described.detail.update(args)
    return described
