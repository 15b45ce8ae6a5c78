"""Clone, migrate and convert to template: actions on a whole guest, offered from the container page's header.

Each is one Proxmox task started through ``services.start_task`` and settled like the others (one pending
Operation per container, an event, the audit entry, the outcome's toast). What Proxmox refuses before it starts
the task (pve-container ``src/PVE/API2/LXC.pm``: ``clone_vm``, ``migrate_vm``, ``template``) is checked here
first, so a refused request changes nothing:

- clone: a linked clone only from a template (``Linked clone feature … is not available`` otherwise), no
  ``storage`` for it; a full clone of a running container only from a snapshot; another node only on shared
  storage. The new guest gets its record with the request (``backup_services.start_new_guest``) and carries
  the Operation, so the dashboard shows its card with a spinner at once; a failed clone archives it again.
- migrate: to an online node other than its own; a running container by restart migration (LXC has no live
  migration: ``can't migrate running container without --online or --restart``), a stopped one offline. On
  PVE 9.0 and later the preconditions (``GET …/migrate``) are read first: a node HA rules keep it from is
  refused. The record follows the guest to its new node once the task ended.
- convert to template: only a stopped container without snapshots; the hostname typed confirms it (it cannot be
  undone from Proxboard). Proxmox answers ``null`` and runs task ``vztemplate``: the client finds its UPID.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import select

from app.containers.backup_services import rootdir_storages, start_new_guest
from app.containers.inventory import ContainerView
from app.containers.services import ActionRefused, get_or_create_record, locate, start_task, task_busy_reason
from app.extensions import db
from app.models import Container, Operation
from app.proxmox import ContainerSummary, MigratePreconditions, ProxmoxError, Storage, get_proxmox

GUEST_OPS = ("clone", "migrate", "template")
RUNNING_WITHOUT_SNAPSHOT = ("It is running and has no snapshot: Proxmox copies a running container only from one of "
                            "its snapshots. Take one on the Snapshots tab, or stop it first.")
RUNNING_FULL_CLONE = ("A running container can only be copied from a snapshot (Proxmox's rule): choose one, "
                      "or stop the container first.")
LINKED_NEEDS_TEMPLATE = "Only a template can be cloned linked; other containers are copied in full."
TEMPLATE_RUNNING = "Stop the container first: Proxmox converts only a stopped container."
TEMPLATE_SNAPSHOTS = "Delete its snapshots first: Proxmox does not convert a container that has snapshots."


def _name(live: ContainerSummary) -> str:
    container = Container.current(live.vmid)
    return (container.hostname if container is not None else None) or live.name or f"CT {live.vmid}"


def _online_nodes() -> list[str]:
    """The online nodes, by name (GET /nodes); ActionRefused when Proxmox cannot say."""
    try:
        return sorted(n.name for n in get_proxmox().nodes() if n.is_online)
    except ProxmoxError as exc:
        raise ActionRefused(f"The nodes cannot be listed: {exc.message}") from exc


def _source_free(live: ContainerSummary) -> None:
    """ActionRefused when the guest is locked or another Proxboard operation runs on it."""
    container = get_or_create_record(live)
    pending = db.session.scalar(select(Operation).where(
        Operation.container_id == container.id, Operation.state.in_(("queued", "running"))))
    if pending is not None:
        db.session.rollback()
        raise ActionRefused(f"Another operation is in progress ({pending.action}).")
    if live.lock:
        raise ActionRefused(f"The container is locked ({live.lock}).")


# -- clone ------------------------------------------------------------------------------------------------------

@dataclass
class CloneOptions:
    """What the clone dialog offers: online ``nodes``, the source node's ``storages`` for root disks, the
    container's ``snapshots`` (a running one is copied from one of them); ``error`` when they cannot be read."""

    nodes: list[str] = field(default_factory=list)
    storages: list[Storage] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    error: str | None = None


def clone_options(view: ContainerView) -> CloneOptions:
    """The choices of the clone dialog for ``view`` (GET /nodes, …/storage?content=rootdir, …/snapshot)."""
    try:
        nodes = _online_nodes()
    except ActionRefused as exc:
        return CloneOptions(error=exc.message)
    pve = get_proxmox()
    try:
        storages = rootdir_storages(view.node)
        snapshots = [s.name for s in pve.snapshots(view.node, view.vmid) if not s.current]
    except ProxmoxError as exc:
        return CloneOptions(nodes=nodes, error=f"Proxmox did not list the storages or snapshots: {exc.message}")
    return CloneOptions(nodes=nodes, storages=storages, snapshots=snapshots)


def clone_reason(view: ContainerView) -> str | None:
    """Why the container cannot be cloned or migrated now (busy, locked, gone, unreachable), or None."""
    if view.lifecycle == "error":
        return "Its creation failed: retry or delete it first."
    return task_busy_reason(view)


def clone(vmid: int, username: str, *, new_vmid: int, hostname: str | None, target: str, full: bool,
          storage: str | None, snapname: str | None) -> Operation:
    """Clone CT ``vmid`` as ``new_vmid`` (task ``vzclone``); the Operation belongs to the new guest's record.

    ``storage`` (full clones only; None: where the source's volumes are) must hold root disks on the source's
    node; ``target`` is the node the clone ends on. Raises ActionRefused (nothing changed) for a rule of the
    module docstring, a VMID in use, a busy source, or Proxmox's refusal; ProxmoxError when the container
    cannot be looked up.
    """
    live = locate(vmid)
    _source_free(live)
    if not full and not live.template:
        raise ActionRefused(LINKED_NEEDS_TEMPLATE)
    pve = get_proxmox()
    if snapname and snapname not in {s.name for s in pve.snapshots(live.node, vmid) if not s.current}:
        raise ActionRefused(f"There is no snapshot “{snapname}” any more.")
    if full and live.status == "running" and not snapname:
        raise ActionRefused(RUNNING_FULL_CLONE)
    if target not in _online_nodes():
        raise ActionRefused(f"Node {target} is not an online node of the cluster.")
    chosen = None
    if full and storage:
        try:
            chosen = next((s for s in rootdir_storages(live.node) if s.storage == storage), None)
        except ProxmoxError as exc:
            raise ActionRefused(f"The storages of node {live.node} cannot be listed: {exc.message}") from exc
        if chosen is None:
            raise ActionRefused(f"{storage} cannot hold container disks on node {live.node}.")
        if target != live.node and not chosen.shared:
            raise ActionRefused(f"{storage} is not shared: a clone can go to another node only on shared storage.")
    if target != live.node and chosen is None:
        _volumes_shared(live)  # the clone's volumes stay on the source's storages
    name = _name(live)
    kind = "Full clone" if full else "Linked clone"
    what = f"{kind} of {name} (CT {vmid}) as CT {new_vmid}" + (f" on {target}" if target != live.node else "")
    return start_new_guest(
        live, new_vmid, "clone", username,
        lambda ct: pve.clone(ct.node, vmid, new_vmid, hostname=hostname, full=full, storage=chosen and storage,
                             target=target, snapname=snapname),
        what=what, done=f"{name} (CT {vmid}) is cloned as CT {new_vmid}" + (f" ({hostname})." if hostname else "."),
        params={"full": full, "storage": chosen and storage, "snapname": snapname, "hostname": hostname,
                "target_node": target if target != live.node else None})


# -- migrate ----------------------------------------------------------------------------------------------------

@dataclass
class MigrateOptions:
    """Where the container may go: the online ``targets`` besides its own node, and on PVE 9.0+ what Proxmox
    reports first (``preconditions``; None on 8.x). ``error`` when the nodes cannot be read."""

    targets: list[str] = field(default_factory=list)
    preconditions: MigratePreconditions | None = None
    error: str | None = None

    def blocked(self, node: str) -> tuple[str, ...]:
        """The HA resources keeping the container from ``node`` (empty when nothing does)."""
        return tuple(self.preconditions.blocked.get(node, ())) if self.preconditions else ()


def migrate_options(node: str, vmid: int) -> MigrateOptions:
    """The targets of CT ``vmid`` on ``node`` and, on PVE 9.0 and later, its preconditions (GET /version,
    GET /nodes, GET nodes/{node}/lxc/{vmid}/migrate). Never raises: what fails is in ``error``."""
    try:
        targets = [n for n in _online_nodes() if n != node]
    except ActionRefused as exc:
        return MigrateOptions(error=exc.message)
    pve = get_proxmox()
    try:
        preconditions = pve.migrate_preconditions(node, vmid) if pve.version().at_least(9) else None
    except ProxmoxError as exc:
        return MigrateOptions(targets=targets, error=f"Proxmox refuses to migrate it: {exc.message}")
    return MigrateOptions(targets=targets, preconditions=preconditions)


def migrate(vmid: int, username: str, *, target: str) -> Operation:
    """Migrate CT ``vmid`` to node ``target`` (task ``vzmigrate``): by restart migration when it runs (its
    shutdown bounded by SHUTDOWN_TIMEOUT), offline otherwise. Raises ActionRefused (nothing changed) when
    ``target`` is not another online node, HA rules block it (PVE 9.x), the container is busy or Proxmox
    refuses; ProxmoxError when it cannot be looked up."""
    live = locate(vmid)
    _source_free(live)
    options = migrate_options(live.node, vmid)
    if options.error:
        raise ActionRefused(options.error)
    if target not in options.targets:
        raise ActionRefused(f"Node {target} is not another online node of the cluster.")
    if blocking := options.blocked(target):
        raise ActionRefused(f"HA rules keep it from node {target}: {', '.join(blocking)}.")
    restart = live.status == "running"
    timeout = int(current_app.config["SHUTDOWN_TIMEOUT"])
    name = _name(live)
    how = "restart migration" if restart else "offline"
    done = (f"{name} (CT {vmid}): the HA manager moves it to {target}." if live.ha_managed
            else f"{name} (CT {vmid}) is on {target} now" + (" and running again." if restart else "."))
    return start_task(
        vmid, "migrate", username,
        lambda ct: get_proxmox().migrate(ct.node, vmid, target, restart=restart, timeout=timeout),
        what=f"Migration of {name} (CT {vmid}) from {live.node} to {target} ({how})", done=done,
        # an HA-managed guest moves when the HA manager gets to it: the inventory follows it then
        params={"target": target, "restart": restart, "timeout": timeout,
                "target_node": None if live.ha_managed else target}, live=live)


# -- convert to template ----------------------------------------------------------------------------------------

def template_reason(view: ContainerView) -> str | None:
    """Why the container cannot be converted to a template now (from its view alone), or None."""
    if reason := clone_reason(view):
        return reason
    if view.template:
        return "It is already a template."
    return None if view.pve_status == "stopped" else TEMPLATE_RUNNING


def _volumes_shared(live: ContainerSummary) -> None:
    """Refuse (ActionRefused) a clone to another node while a volume of ``live`` is on storage local to its node:
    Proxmox refuses it too ("can't clone CT to node … (CT uses local storage)", pve-container ``clone_vm``)."""
    pve = get_proxmox()
    try:
        mounts = pve.container_config(live.node, live.vmid).mounts
        shared = {s.storage for s in pve.storages(live.node) if s.shared}
    except ProxmoxError as exc:
        raise ActionRefused(f"The storages of CT {live.vmid} cannot be checked: {exc.message}") from exc
    local = sorted({m.storage for m in mounts if m.storage and m.storage not in shared})
    if local:
        raise ActionRefused(f"{', '.join(local)} is local to node {live.node}: a clone can go to another node only "
                            "when its disks are on shared storage. Clone it on this node, or in full to a shared "
                            "storage.")


def snapshots_reason(node: str, vmid: int) -> str | None:
    """``TEMPLATE_SNAPSHOTS`` when the container has snapshots, the error when they cannot be listed, or None."""
    try:
        has = any(not s.current for s in get_proxmox().snapshots(node, vmid))
    except ProxmoxError as exc:
        return f"Proxmox did not list the snapshots: {exc.message}"
    return TEMPLATE_SNAPSHOTS if has else None


def convert_to_template(vmid: int, username: str, *, hostname: str) -> Operation:
    """Convert stopped CT ``vmid`` into a template (task ``vztemplate``); ``hostname`` is what the person typed
    to confirm. Raises ActionRefused (nothing changed) when it does not match, the container runs, is a
    template already, has snapshots, is busy, or Proxmox refuses; ProxmoxError when it cannot be looked up."""
    live = locate(vmid)
    name = _name(live)
    if hostname.strip() not in {n for n in (live.name, name) if n}:
        raise ActionRefused(f"The hostname typed does not match: type {name} to confirm.")
    _source_free(live)
    if live.template:
        raise ActionRefused("It is already a template.")
    if live.status != "stopped":
        raise ActionRefused(TEMPLATE_RUNNING)
    if reason := snapshots_reason(live.node, vmid):
        raise ActionRefused(reason)
    return start_task(
        vmid, "template", username, lambda ct: get_proxmox().convert_to_template(ct.node, vmid),
        what=f"Conversion of {name} (CT {vmid}) to a template",
        done=f"{name} (CT {vmid}) is a template now: clone it to make containers.", live=live)
