"""Disks of one container: what the Disks tab lists, growing a volume, adding a mount point.

The rules are Proxmox's, checked before it is asked so a refused request changes nothing:

- Growing follows pve-container ``API2/LXC.pm`` ``resize_vm`` (PUT …/resize, task ``resize``): only a storage
  volume (the root disk or a volume mount point; a bind or device mount has no size Proxmox manages), only
  larger ("unable to shrink disk size", "disk is already at specified size"), not while the config is locked.
  The task is started through ``services.start_task`` and followed like a snapshot (an Operation, events, an
  audit entry when it ends). Proxmox holds the config's file lock while it resizes, not a ``lock`` property.
- Adding a mount point is one config change (PUT …/config ``mpN=<storage>:<GiB>,mp=<path>``): Proxmox
  allocates the volume at once and, for a running container, hot-plugs it (``LXC/Config.pm``
  ``vmconfig_hotplug_pending`` → ``apply_pending_mountpoint``); no task. It is refused while
  ``task_busy_reason`` says so, and the config digest read for the checks guards against a concurrent change.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from sqlalchemy import select

from app.containers.inventory import ContainerView
from app.containers.services import ActionRefused, get_or_create_record, locate, start_task, still_pending, \
    task_busy_reason
from app.events import record_event
from app.extensions import db
from app.models import Operation
from app.proxmox import ContainerConfig, MountPoint, ProxmoxError, Storage, get_proxmox
from app.proxmox.models import GIB

ACTION = "resize"
MAX_MOUNT_POINTS = 256  # pve-container LXC/Config.pm $MAX_MOUNT_POINTS: mp0 … mp255
MAX_GIB = 64 * 1024  # a guard against a typo (Proxmox itself stops at what the storage holds)
DISK_KEY = re.compile(r"^(rootfs|mp(\d{1,3}))$")
# pve-container verify_lxc_mp_string: no "/./", "/../", trailing "/." or "/..", leading "../"
ILLEGAL_PATH = re.compile(r"/\.\.?/|/\.\.?$|^\.\./")
NOT_GROWABLE = {"bind": "A bind mount is a host directory: Proxmox cannot resize it.",
                "device": "A device mount is a host block device: Proxmox cannot resize it."}


class NothingToGrow(ActionRefused):
    """The size asked for is not larger than the disk (Proxmox only grows)."""


class BadMountPoint(ActionRefused):
    """The mount point asked for cannot be added (``field`` names the form field at fault)."""

    def __init__(self, message: str, field_name: str) -> None:
        super().__init__(message)
        self.field = field_name


# -- the tab ----------------------------------------------------------------------------------------------------

@dataclass
class DisksTab:
    """What the Disks tab shows: the root disk and mount points (empty when ``error``), why nothing can change
    now (``busy``), the resize pending or last ended, and the root disk's use when Proxmox reports it."""

    mounts: list[MountPoint] = field(default_factory=list)
    error: str | None = None
    busy: str | None = None
    pending: Operation | None = None
    last: Operation | None = None
    used: int = 0
    total: int = 0

    @property
    def used_percent(self) -> float | None:
        """The root disk's use in percent, None when Proxmox does not report it (a stopped container)."""
        return round(100.0 * self.used / self.total, 1) if self.used and self.total else None

    def grow_refusal(self, mount: MountPoint) -> str | None:
        """Why ``mount`` cannot be grown now (the container is busy, or it is no volume), or None."""
        return self.busy or grow_reason(mount)


def grow_reason(mount: MountPoint) -> str | None:
    """Why Proxmox cannot grow ``mount`` at all (a bind or device mount, a size it does not know), or None."""
    if mount.kind != "volume":
        return NOT_GROWABLE[mount.kind]
    return None if mount.size is not None else "Proxmox does not say how large this volume is."


def _latest(view: ContainerView) -> Operation | None:
    if view.record_id is None:
        return None
    return db.session.scalar(select(Operation).where(
        Operation.container_id == view.record_id, Operation.action == ACTION)
        .order_by(Operation.started_at.desc(), Operation.id.desc()).limit(1))


def disks_tab(view: ContainerView, config: ContainerConfig | None, config_error: str | None = None,
              settle: bool = False) -> DisksTab:
    """The tab's state for ``view`` from its ``config`` (the page's own read; None with ``config_error`` when
    Proxmox did not give it); with ``settle`` (a page without JavaScript, where no spinner polls) a pending
    resize whose task ended is settled first."""
    tab = DisksTab(last=_latest(view))
    tab.pending = still_pending(view, tab.last, settle)
    tab.busy = task_busy_reason(view)
    if view.lifecycle in ("gone", "creating") or view.stale:
        tab.error = tab.busy or "Proxmox does not have this container."
        return tab
    if config is None:
        tab.error = f"Proxmox did not give the container's configuration: {config_error}"
        return tab
    tab.mounts = list(config.mounts)
    if view.pve_status == "running":
        tab.used, tab.total = view.disk, view.maxdisk
    return tab


def mount_of(config: ContainerConfig, disk: str) -> MountPoint | None:
    """The root disk or mount point ``disk`` of ``config``, None when it has none of that name."""
    return next((mount for mount in config.mounts if mount.key == disk), None)


def valid_disk_key(disk: str) -> bool:
    """Whether ``disk`` could name a container volume (``rootfs``, ``mp0`` … ``mp255``)."""
    match = DISK_KEY.match(disk)
    return bool(match) and (match.group(2) is None or int(match.group(2)) < MAX_MOUNT_POINTS)


def disk_label(mount: MountPoint) -> str:
    """"the root disk" or "mount point mp0 (/data)"."""
    return "the root disk" if mount.key == "rootfs" else f"mount point {mount.key} ({mount.path})"


def gib(size: int | float) -> str:
    """A size in bytes as GiB for messages: ``8 GiB``, ``8.5 GiB``."""
    return f"{round(size / GIB, 2):g} GiB"


def storages_for_disks(node: str) -> tuple[Storage, ...]:
    """The active storages of ``node`` that hold container volumes (content ``rootdir``), as Proxmox lists them."""
    return tuple(s for s in get_proxmox().storages(node, content="rootdir")
                 if s.holds("rootdir") and s.active and s.enabled)


# -- growing ----------------------------------------------------------------------------------------------------

def new_size(mount: MountPoint, amount: int, mode: str) -> int:
    """The size in bytes ``mount`` would have: ``amount`` GiB as the new size (``mode`` "to") or on top ("by")."""
    return amount * GIB if mode == "to" else (mount.size or 0) + amount * GIB


def grow_disk(view: ContainerView, disk: str, amount: int, mode: str, username: str) -> Operation:
    """Start growing ``disk`` (``rootfs`` or ``mpN``) of the container to ``amount`` GiB (``mode`` "to") or by
    it ("by"): PUT nodes/{node}/lxc/{vmid}/resize, task ``resize``; returns the pending operation.

    Raises NothingToGrow when the new size is not larger (nothing is asked of Proxmox), ActionRefused when the
    disk is missing, a bind or device mount, the container busy or locked, or Proxmox refuses (nothing
    changed), ProxmoxError when the configuration cannot be read.
    """
    config = get_proxmox().container_config(view.node, view.vmid)
    mount = mount_of(config, disk)
    if mount is None:
        raise ActionRefused(f"CT {view.vmid} has no {disk} any more.")
    if reason := grow_reason(mount):
        raise ActionRefused(reason)
    target = new_size(mount, amount, mode)
    if target < mount.size:
        raise NothingToGrow(f"Proxmox cannot shrink a disk: {disk_label(mount)} is {gib(mount.size)}; "
                            f"give a larger size.")
    if target == mount.size:
        raise NothingToGrow(f"{disk_label(mount).capitalize()} is already {gib(mount.size)}; give a larger size.")
    # An increase is sent as one ("+2G") so a resize that slipped in between is not undone by an absolute size.
    size = f"+{amount}G" if mode == "by" else f"{amount}G"
    what = f"Growing {disk_label(mount)} of {view.name} (CT {view.vmid}) to {gib(target)}"
    done = f"{disk_label(mount).capitalize()} of {view.name} (CT {view.vmid}) grown to {gib(target)}."
    return start_task(view.vmid, ACTION, username, lambda live: get_proxmox().resize_disk(live.node, live.vmid,
                                                                                          disk, size),
                      what=what, done=done, params={"disk": disk, "size": size, "from": mount.size, "to": target})


# -- adding a mount point ---------------------------------------------------------------------------------------

def clean_path(path: str) -> str:
    """The mount path as Proxmox will keep it (no trailing or doubled slashes); BadMountPoint when Proxmox would
    refuse it or it cannot be a mount point (relative, ``/``, ``.``/``..`` parts, a comma or ``=``)."""
    if not path.startswith("/"):
        raise BadMountPoint("Give an absolute path inside the container, such as /data.", "path")
    if ILLEGAL_PATH.search(path) or "," in path or "=" in path or any(c.isspace() for c in path):
        raise BadMountPoint("The path cannot hold “.” or “..” parts, commas, “=” or spaces.", "path")
    cleaned = posixpath.normpath(path).replace("//", "/")
    if cleaned == "/":
        raise BadMountPoint("/ is the root disk; give a directory such as /data.", "path")
    return cleaned


def add_mount_point(view: ContainerView, storage: str, size_gib: int, path: str, backup: bool,
                    username: str) -> str:
    """Add a new ``size_gib`` GiB volume on ``storage`` mounted at ``path`` (PUT nodes/{node}/lxc/{vmid}/config
    ``mpN``); Proxmox hot-plugs it into a running container. Records an event; returns what to tell the user.

    Raises BadMountPoint (nothing asked of Proxmox) for a path that is taken or invalid, a storage that holds no
    container volumes, no free ``mpN``; ActionRefused when the container is busy, locked, gone or unreachable,
    or Proxmox refuses (then kept as an error event); ProxmoxError when the container cannot be read.
    """
    if reason := task_busy_reason(view):
        raise ActionRefused(reason)
    path = clean_path(path)
    if not 1 <= size_gib <= MAX_GIB:
        raise BadMountPoint(f"Give a size from 1 to {MAX_GIB} GiB.", "size")
    if storage not in {s.storage for s in storages_for_disks(view.node)}:
        raise BadMountPoint(f"Storage “{storage}” on {view.node} cannot hold container volumes.", "storage")
    pve = get_proxmox()
    pve.invalidate()  # the checks below must see the config as it is now, not as the page was drawn
    config = pve.container_config(view.node, view.vmid)
    if any(posixpath.normpath(mount.path) == path for mount in config.mounts if mount.path):
        raise BadMountPoint(f"{path} is already a mount point of this container.", "path")
    used = {mount.key for mount in config.mounts}
    key = next((f"mp{n}" for n in range(MAX_MOUNT_POINTS) if f"mp{n}" not in used), None)
    if key is None:
        raise BadMountPoint(f"The container already has {MAX_MOUNT_POINTS} mount points, Proxmox's limit.", "path")
    value = f"{storage}:{size_gib},mp={path}" + (",backup=1" if backup else "")
    record_id = view.record_id if view.record_id is not None else get_or_create_record(locate(view.vmid)).id
    meta = {"action": "mount-point-add", "key": key, "storage": storage, "size_gib": size_gib, "path": path,
            "backup": backup, "requested_by": username}
    try:
        pve.add_mount_point(view.node, view.vmid, key, value, digest=config.digest)
    except ProxmoxError as exc:
        message = f"Adding a mount point at {path} to {view.name} (CT {view.vmid}) failed: {exc.message}"
        record_event(record_id, "error", message, meta)
        db.session.commit()
        raise ActionRefused(message) from exc
    message = f"Mount point {key} ({size_gib} GiB on {storage}) added to {view.name} (CT {view.vmid}) at {path}."
    record_event(record_id, "complete", f"{message[:-1]} by {username}.", meta)
    db.session.commit()
    return message
