"""Backups of one container: list them across its node's backup storages, back up now, restore (to a new
VMID or over the container), delete, protect.

Every task goes through ``services.start_task`` (one pending Operation per container, an event, the audit
entry once ``refresh_operation`` settles it). Checks that need Proxmox (is the backup this container's, is
the VMID free, is the container stopped) run before anything is asked of it, so a refused request changes
nothing. A restore to a new VMID gets a record of its own for the new guest, created with the request and
carrying the restore Operation: the dashboard shows the new card with its spinner at once, and a restore
that fails archives that record again (``services._end_task``).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from app.containers.services import ActionRefused, Outcome, locate, refresh_operation, start_task
from app.events import record_event
from app.extensions import db
from app.models import Container, Operation
from app.proxmox import BackupVolume, ContainerSummary, ProxmoxError, Storage, TaskLogLine, get_proxmox
from app.proxmox.deadline import settle

log = logging.getLogger(__name__)

# vzdump's modes (pve-manager PVE/VZDump.pm) and compressions (``compress``: 0, gzip, lzo, zstd).
MODES = {"snapshot": "Snapshot", "suspend": "Suspend", "stop": "Stop"}
COMPRESSIONS = {"zstd": "ZSTD (fast, small)", "gzip": "GZIP", "lzo": "LZO", "0": "None"}
BACKUP_TASKS = ("backup", "restore", "backup-delete")
PROTECTED_REASON = "Protected: remove the protection first."
RUNNING_REASON = ("It is running, and Proxmox can't overwrite a running container: "
                  "stop it first, then restore over it.")


@dataclass(frozen=True)
class BackupRow:
    """A backup as the tab shows it: the volume and its creation time (UTC; None when Proxmox gives none)."""

    volume: BackupVolume
    created: datetime | None

    @property
    def label(self) -> str:
        """The volume's name without its storage (``vzdump-lxc-101-2026_11_30-01_00_00.tar.zst``)."""
        name = self.volume.volid.partition(":")[2]
        return name.rpartition("/")[2] if not name.startswith("backup/ct/") else name.removeprefix("backup/")


@dataclass
class Listing:
    """Every backup of one container on its node's backup storages, newest first.

    ``storages`` are the active storages holding ``backup`` content; ``failures`` maps a storage that could not
    be read to Proxmox's message (the others still list); ``error`` says why not even the storages could be
    listed (then nothing is known, which is not "no backups").
    """

    backups: list[BackupRow] = field(default_factory=list)
    storages: list[Storage] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def backup_storages(node: str) -> list[Storage]:
    """The active storages of ``node`` that hold backups (GET nodes/{node}/storage?content=backup), by name.

    Raises ProxmoxError when Proxmox cannot say.
    """
    return [s for s in get_proxmox().storages(node, content="backup") if s.active and s.holds("backup")]


def rootdir_storages(node: str) -> list[Storage]:
    """The active storages of ``node`` that can hold a container's root disk (``rootdir`` content)."""
    return [s for s in get_proxmox().storages(node, content="rootdir") if s.active and s.holds("rootdir")]


def list_backups(node: str, vmid: int) -> Listing:
    """Every backup of CT ``vmid`` on the backup storages of ``node`` (shared ones included), read in parallel
    (GET nodes/{node}/storage/{storage}/content?content=backup&vmid=…). Never raises: failures are in the listing."""
    pve = get_proxmox()
    try:
        storages = backup_storages(node)
    except ProxmoxError as exc:
        return Listing(error=f"The backup storages of node {node} cannot be listed: {exc.message}")
    outcomes = settle(*(lambda s=s: pve.backups(node, s.storage, vmid) for s in storages))
    listing = Listing(storages=storages)
    for store, outcome in zip(storages, outcomes):
        if isinstance(outcome, ProxmoxError):
            listing.failures[store.storage] = outcome.message
        elif isinstance(outcome, Exception):
            raise outcome
        else:
            listing.backups += [BackupRow(b, datetime.fromtimestamp(b.ctime, UTC) if b.ctime else None)
                                for b in outcome if b.subtype_ct]
    listing.backups.sort(key=lambda row: (row.volume.ctime or 0, row.volume.volid), reverse=True)
    return listing


def find_backup(node: str, vmid: int, volid: str) -> BackupVolume:
    """The backup ``volid`` of CT ``vmid`` as ``node`` sees it; ActionRefused when it is not one of its backups."""
    storage = volid.partition(":")[0]
    try:
        storages = {s.storage for s in backup_storages(node)}
        found = get_proxmox().backups(node, storage, vmid) if storage in storages else ()
    except ProxmoxError as exc:
        raise ActionRefused(f"The backups on {storage} cannot be read: {exc.message}") from exc
    for backup in found:
        if backup.volid == volid:
            return backup
    raise ActionRefused(f"{volid} is not a backup of CT {vmid} on node {node}.")


def _name(live: ContainerSummary, container: Container | None = None) -> str:
    return (container.hostname if container is not None else None) or live.name or f"CT {live.vmid}"


def backup_now(vmid: int, username: str, *, storage: str, mode: str, compress: str, notes: str | None,
               protected: bool) -> Operation:
    """Back up CT ``vmid`` now (task ``vzdump``); returns the pending Operation.

    Raises ActionRefused (nothing changed) when ``storage`` is not a backup storage of its node, the mode or
    compression is unknown, another operation is pending, or Proxmox refuses; ProxmoxError when the
    container cannot be looked up.
    """
    if mode not in MODES or compress not in COMPRESSIONS:
        raise ActionRefused("Unknown backup mode or compression.")
    live = locate(vmid)
    try:
        names = [s.storage for s in backup_storages(live.node)]
    except ProxmoxError as exc:
        raise ActionRefused(f"The backup storages of node {live.node} cannot be listed: {exc.message}") from exc
    if storage not in names:
        raise ActionRefused(f"{storage} is not a backup storage of node {live.node}.")
    if live.lock:
        raise ActionRefused(f"The container is locked ({live.lock}).")
    name = _name(live)
    return start_task(
        vmid, "backup", username,
        lambda ct: get_proxmox().backup_now(ct.node, vmid, storage, mode=mode, compress=compress,
                                            notes_template=notes or None, protected=protected),
        what=f"Backup of {name} (CT {vmid}) to {storage} ({mode} mode)",
        done=f"{name} (CT {vmid}) is backed up to {storage}.",
        params={"storage": storage, "mode": mode, "compress": compress, "protected": protected}, live=live)


def restore_new(vmid: int, username: str, *, volid: str, new_vmid: int, storage: str, start: bool,
                unique: bool) -> Operation:
    """Restore a backup of CT ``vmid`` as a new container ``new_vmid`` (task ``vzrestore``); the Operation
    belongs to the new guest's record, created here (see the module docstring).

    Raises ActionRefused (nothing changed) when the backup is not this container's, ``new_vmid`` is in use
    (in Proxmox, or by a Proxboard record still holding it), ``storage`` cannot hold root disks, or Proxmox refuses.
    """
    live = locate(vmid)
    backup = find_backup(live.node, vmid, volid)
    _check_rootdir(live.node, storage)
    pve = get_proxmox()
    name = _name(live)
    source = BackupRow(backup, None).label
    return start_new_guest(
        live, new_vmid, "restore", username,
        lambda ct: pve.restore(ct.node, new_vmid, volid, storage=storage, unique=unique, start=start),
        what=f"Restore of {name}'s backup {source} as CT {new_vmid}",
        done=f"The backup {source} of {name} (CT {vmid}) is restored as CT {new_vmid}.",
        params={"volid": volid, "storage": storage, "start": start, "unique": unique})


def start_new_guest(live: ContainerSummary, new_vmid: int, action: str, username: str,
                    call: Callable[[ContainerSummary], str], *, what: str, done: str, params: dict) -> Operation:
    """Start a task (a restore or a clone) that makes guest ``new_vmid`` from ``live``'s container or backup.

    The new guest gets its record now and carries the Operation (``new_guest``: a failed task archives the record
    again, see ``services._end_task``); the source's timeline tells who asked. Raises ActionRefused (nothing
    changed) when ``new_vmid`` is in use in Proxmox (GET /cluster/nextid?vmid=…) or still held by a Proxboard
    record whose guest is not gone, or when ``start_task`` refuses.
    """
    try:
        free = get_proxmox().is_vmid_free(new_vmid)
    except ProxmoxError as exc:
        raise ActionRefused(f"Cannot check that VMID {new_vmid} is free: {exc.message}") from exc
    if not free:
        raise ActionRefused(f"VMID {new_vmid} is already in use.")
    held = Container.current(new_vmid)
    if held is not None and held.lifecycle != "gone":
        raise ActionRefused(f"VMID {new_vmid} is still held by Proxboard's record of {held.display_name()} "
                            f"({held.lifecycle}); clear or delete it first.")
    if held is not None:  # its guest is gone: the VMID passes to the new one
        held.lifecycle = "deleted"
    record = Container(vmid=new_vmid, node=live.node, managed=False, lifecycle="ready")
    db.session.add(record)
    db.session.flush()
    try:
        operation = start_task(new_vmid, action, username, call, what=what, done=done, container=record, live=live,
                               params={**params, "source_vmid": live.vmid, "new_guest": True})
    except ActionRefused:
        record.lifecycle = "deleted"  # Proxmox made nothing: the VMID is free again
        db.session.commit()
        raise
    source = Container.current(live.vmid)
    if source is not None:
        record_event(source.id, "step", f"{what} requested by {username}",
                     {"action": action, "upid": operation.upid, "new_vmid": new_vmid, **params})
        db.session.commit()
    return operation


def restore_over(vmid: int, username: str, *, volid: str, hostname: str, storage: str,
                 start: bool) -> Operation:
    """Restore a backup over CT ``vmid`` itself (``force=1``: its disks and snapshots are replaced).

    ``hostname`` is what the person typed to confirm; it must be the container's name. Raises ActionRefused
    (nothing changed) when it is not, when the container is not stopped, the backup is not its own, or
    Proxmox refuses.
    """
    live = locate(vmid)
    container = Container.current(vmid)
    name = _name(live, container)
    if hostname.strip() not in {n for n in (live.name, container.hostname if container else None) if n}:
        raise ActionRefused(f"The hostname typed does not match: type {name} to confirm.")
    if live.status != "stopped":
        raise ActionRefused(RUNNING_REASON)
    if live.lock:
        raise ActionRefused(f"The container is locked ({live.lock}).")
    backup = find_backup(live.node, vmid, volid)
    _check_rootdir(live.node, storage)
    source = BackupRow(backup, None).label
    return start_task(
        vmid, "restore", username,
        lambda ct: get_proxmox().restore(ct.node, vmid, volid, storage=storage, force=True, start=start),
        what=f"Restore of {name} (CT {vmid}) from its backup {source}",
        done=f"{name} (CT {vmid}) is restored from its backup {source}.",
        params={"volid": volid, "over": True, "storage": storage, "start": start}, live=live)


def _check_rootdir(node: str, storage: str) -> None:
    """ActionRefused unless ``storage`` holds container disks on ``node`` (Proxmox puts every restored volume there)."""
    try:
        names = [s.storage for s in rootdir_storages(node)]
    except ProxmoxError as exc:
        raise ActionRefused(f"The storages of node {node} cannot be listed: {exc.message}") from exc
    if storage not in names:
        raise ActionRefused(f"{storage} cannot hold container disks on node {node}.")


def delete_backup(vmid: int, username: str, *, volid: str) -> Operation:
    """Delete a backup of CT ``vmid`` (task ``imgdel``). Raises ActionRefused (nothing changed) when it is
    protected (``PROTECTED_REASON``), not this container's, or Proxmox refuses."""
    live = locate(vmid)
    backup = find_backup(live.node, vmid, volid)
    if backup.protected:
        raise ActionRefused(PROTECTED_REASON)
    name, label = _name(live), BackupRow(backup, None).label
    return start_task(
        vmid, "backup-delete", username, lambda ct: get_proxmox().delete_backup(ct.node, volid),
        what=f"Deletion of the backup {label} of {name} (CT {vmid})",
        done=f"The backup {label} of {name} (CT {vmid}) is deleted.", params={"volid": volid}, live=live)


def update_backup(vmid: int, username: str, *, volid: str, protected: bool | None = None,
                  notes: str | None = None) -> str:
    """Protect a backup of CT ``vmid`` from deletion or remove the protection, or change its notes (PUT
    nodes/{node}/storage/{storage}/content/{volume}; None leaves a field as it is); the message to show.
    Raises ActionRefused when it is not this container's backup or Proxmox refuses."""
    live = locate(vmid)
    backup = find_backup(live.node, vmid, volid)
    label = BackupRow(backup, None).label
    try:
        get_proxmox().update_backup(live.node, volid, protected=protected, notes=notes)
    except ProxmoxError as exc:
        raise ActionRefused(f"Proxmox refused to change the backup {label}: {exc.message}") from exc
    if protected is not None:
        message = f"The backup {label} is {'protected' if protected else 'no longer protected'} ({username})."
    else:
        message = f"The notes of the backup {label} are {'changed' if notes else 'removed'} ({username})."
    container = Container.current(vmid)
    if container is not None:
        record_event(container.id, "log", message, {"action": "backup-update", "volid": volid, "protected": protected,
                                                    "notes": notes})
        db.session.commit()
    return message


def tab_task(vmid: int, record_id: int | None) -> tuple[Operation | None, Outcome | None]:
    """The backup task to follow on CT ``vmid``'s Backups tab: its pending backup, restore or deletion, else a
    pending restore of one of its backups as a new container; settled first if its task has ended meanwhile.
    Returns (the task still running or None, the outcome when this call settled it)."""
    candidates = db.session.scalars(select(Operation).where(
        Operation.action.in_(BACKUP_TASKS), Operation.state.in_(("queued", "running")))).all()
    for operation in candidates:
        if operation.container_id == record_id or (operation.params or {}).get("source_vmid") == vmid:
            outcome = refresh_operation(operation)
            return (operation if operation.pending else None), outcome
    return None, None


def belongs_to_tab(operation: Operation, vmid: int) -> bool:
    """Whether the Backups tab of CT ``vmid`` follows ``operation``."""
    return operation.action in BACKUP_TASKS and (
        operation.container.vmid == vmid or (operation.params or {}).get("source_vmid") == vmid)


def task_lines(operation: Operation, after: int = 0) -> list[TaskLogLine]:
    """The task log lines numbered above ``after`` (GET nodes/{node}/tasks/{upid}/log); empty while Proxmox
    cannot be asked (the next poll tries again)."""
    if not operation.upid:
        return []
    node = (operation.params or {}).get("node") or operation.container.node
    try:
        return [line for line in get_proxmox().task_log(node, operation.upid, start=after, limit=500) if line.n > after]
    except ProxmoxError as exc:
        log.info("log of %s not read: %s", operation.upid, exc.message)
        return []

