"""Growing a container's disks: ``PUT /nodes/{node}/lxc/{vmid}/resize``.

Behaviour follows pve-container ``src/PVE/API2/LXC.pm`` ``resize_vm`` (the same on PVE 8.4 and 9.1): the size
is ``[+]N[KMGT]`` (``+``: added to the volume's size, else absolute; "invalid size string"); ``load_and_check``
runs before the task and again inside it: ``check_lock`` ("CT is locked (…)"), the digest, ``parse_volume`` of
the disk, ``PVE::Storage::parse_volname`` (a bind or device mount's path is no volume id: "unable to parse volume
ID '/srv/data'"), the owner ("can't resize mount point owned by another container (N)"),
``Datastore.AllocateSpace`` on the storage, then "unable to shrink disk size" / "disk is already at specified
size". The task (``resize``) holds the config's file lock, not a ``lock`` property; it asks the storage plugin
(pve-storage ``volume_resize``: an iSCSI, PBS or ESXi storage refuses, a directory storage only resizes raw
and qcow2 images) and writes ``size=`` into the config, which the status and cluster resources' ``maxdisk`` follow.
"""
from __future__ import annotations

import re

from .schema import format_size, parse_size
from .state import Container, PVEError, Task

VOLUME_ID = re.compile(r"^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$", re.IGNORECASE)
OWNER = re.compile(r"(?:^|/)(?:vm|base|subvol|basevol)-(\d+)-")
# pve-storage plugins whose volume_resize dies, and their messages
NO_RESIZE = {"iscsi": "volume resize is not possible on iscsi device",
             "iscsidirect": "volume resize is not possible on iscsi device",
             "pbs": "volume resize is not possible on pbs device",
             "esxi": "resizing volumes is not supported for PVE::Storage::ESXiPlugin"}


class Disks:
    """The handler; ``register`` adds it to the API's route table."""

    def __init__(self, api):
        self.api = api
        self.sim = api.sim
        self.cluster = api.cluster

    def register(self, routes: dict) -> None:
        routes[("PUT", "/nodes/{node}/lxc/{vmid}/resize")] = self.resize

    def _check(self, ctx, ct: Container, p: dict, extend: bool, request: int) -> tuple[str, int]:
        """``load_and_check``: the new config value of the disk and its new size (bytes)."""
        if ct.lock:
            raise PVEError(f"CT is locked ({ct.lock})")
        if p.get("digest") and p["digest"] != ct.digest():
            raise PVEError("detected modified configuration - file changed by other user? Try again.")
        disk = p["disk"]
        value = ct.config.get(disk)
        if value is None:
            raise PVEError("unable to parse volume ID ''")
        parts = value.split(",")
        volid = parts[0].removeprefix("volume=")
        match = VOLUME_ID.match(volid)
        if not match:
            raise PVEError(f"unable to parse volume ID '{volid}'")
        storage, volname = match.groups()
        if not self.cluster.storage_cfg(storage):
            raise PVEError(f"storage '{storage}' does not exist")
        owner = OWNER.search(volname)
        if owner and int(owner.group(1)) != ct.vmid:
            raise PVEError(f"can't resize mount point owned by another container ({owner.group(1)})")
        ctx.check(f"/storage/{storage}", ["Datastore.AllocateSpace"])
        sizes = [parse_size(part[5:]) for part in parts[1:] if part.startswith("size=")]
        size = sizes[0] if sizes and sizes[0] is not None else 4 * 1024 ** 3  # volume_size_info
        newsize = int(size + request if extend else request)
        if newsize < size:
            raise PVEError("unable to shrink disk size")
        if newsize == size:
            raise PVEError("disk is already at specified size")
        rest = [part for part in parts[1:] if not part.startswith("size=")]
        return ",".join([parts[0], *rest, f"size={format_size(newsize)}"]), newsize

    def resize(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        ctx.check(f"/vms/{ct.vmid}", ["VM.Config.Disk"])
        size = p["size"]
        extend = size.startswith("+")
        request = parse_size(size.removeprefix("+"))
        if request is None:
            raise PVEError("invalid size string")
        self._check(ctx, ct, p, extend, request)  # early checks before forking

        def worker(task: Task):
            with self.cluster.lock:
                value, newsize = self._check(ctx, ct, p, extend, request)
                volid = value.split(",")[0].removeprefix("volume=")
                storage, volname = VOLUME_ID.match(volid).groups()
                plugin = self.cluster.storage_cfg(storage)[1]
            if plugin in NO_RESIZE:
                raise PVEError(NO_RESIZE[plugin])
            if plugin == "dir" and not re.search(r"\.(raw|qcow2)$", volname):
                raise PVEError("can't resize this image format")
            task.log(f"  Size of logical volume {volname} changed to {format_size(newsize)}B.")
            task.log(f"  Logical volume {volname} successfully resized.")
            with self.cluster.lock:
                ct.config[p["disk"]] = value
            if ct.running:
                task.log(f"resize2fs: the filesystem on {volname} is now {newsize // 4096} (4k) blocks long.")

        return self.sim.tasks.spawn(ct.node, "resize", ct.vmid, ctx.user, worker)
