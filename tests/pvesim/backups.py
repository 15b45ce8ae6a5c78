"""Snapshots, backups (vzdump), backup volumes on storages, restores and backup jobs.

Behaviour follows the real sources:

- pve-container ``src/PVE/API2/LXC/Snapshot.pm`` and pve-guest-common ``AbstractConfig.pm``
  (``snapshot_create`` / ``snapshot_delete`` / ``snapshot_rollback``): the reserved names ``current`` and
  ``vzdump`` are refused before the task starts; everything else fails inside the task (``vzsnapshot``,
  ``vzdelsnapshot``, ``vzrollback``) with the config locked ``snapshot`` / ``snapshot-delete`` /
  ``rollback`` meanwhile. Lock errors read ``CT is locked (<lock>)`` (``check_lock`` with guest type CT).
  A rollback stops a running container first; ``start=1`` starts it afterwards.
- pve-manager ``PVE/API2/VZDump.pm`` and ``PVE/VZDump.pm``, pve-container ``src/PVE/VZDump/LXC.pm``:
  ``POST /nodes/{node}/vzdump`` answers ``"OK"`` (no task) when none of the given guests is on that node;
  one vzdump runs per node at a time (the others wait for the global lock); each guest is locked
  ``backup`` while it is saved; a guest that fails is logged ``ERROR: Backup of VM N failed - …`` and the
  task ends ``job errors``.
- pve-storage ``API2/Storage/Content.pm``, ``Plugin.pm`` and ``PBSPlugin.pm``: backup volumes
  ``<storage>:backup/vzdump-lxc-<vmid>-<YYYY_MM_DD-HH_MM_SS>.tar.zst`` on directory and NFS storages,
  ``pbs:backup/ct/<vmid>/<ISO time>Z`` (format ``pbs-ct``, with ``verification``) on Proxmox Backup
  Server; notes and ``protected``; deleting a protected volume fails in the ``imgdel`` task.
- pve-container ``API2/LXC.pm`` ``create_vm`` with ``restore=1``: over an existing CT only with
  ``force=1``, never over a running (``can't overwrite running container``) or protected one.
- pve-manager ``API2/Backup.pm`` and ``API2/Cluster/BackupInfo.pm``: ``/cluster/backup`` jobs (with
  ``next-run``) and ``/cluster/backup-info/not-backed-up`` (a disabled job still counts as covering).
"""
from __future__ import annotations

import re
import shlex
import time
import uuid
from datetime import UTC, datetime

from .schema import split_list
from .state import GiB, MiB, Container, PVEError, Task, new_mac, param_error

RESERVED_SNAPSHOT_NAMES = ("current", "vzdump")
COMPRESS_EXT = {"0": "", "gzip": ".gz", "1": ".lzo", "lzo": ".lzo", "zstd": ".zst"}
# storage types whose volumes can be snapshotted (PVE::Storage::volume_has_feature 'snapshot' for rootdir)
SNAPSHOT_STORAGE_TYPES = {"lvmthin", "zfspool", "rbd", "btrfs"}


def _b(v) -> bool:
    return str(v) == "1"


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y_%m_%d-%H_%M_%S")


def backup_volid(storage: str, storage_type: str, vmid: int, ctime: float, compress: str = "zstd") -> str:
    """The volume id vzdump gives a container backup on ``storage`` (see the module docstring)."""
    if storage_type == "pbs":
        return f"{storage}:backup/ct/{vmid}/{datetime.fromtimestamp(int(ctime), UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    return f"{storage}:backup/vzdump-lxc-{vmid}-{_stamp(ctime)}.tar{COMPRESS_EXT.get(compress, '.zst')}"


def backup_format(volid: str) -> str:
    if ":backup/ct/" in volid:
        return "pbs-ct"
    m = re.search(r"\.(tar(?:\.(?:gz|lzo|zst))?)$", volid)
    return m.group(1) if m else "tar"


def render_notes(template: str, ct: Container, node: str) -> str:
    """PVE::VZDump::Common notes-template: {{guestname}}, {{vmid}}, {{node}}, {{cluster}}."""
    values = {"guestname": ct.name, "vmid": str(ct.vmid), "node": node, "cluster": "pvesim"}
    out = re.sub(r"\{\{(\w+)\}\}", lambda m: values.get(m.group(1), m.group(0)), template)
    return out.replace("\\n", "\n")


class SnapshotsAndBackups:
    """The handlers; ``register`` adds them to the API's route table."""

    def __init__(self, api):
        self.api = api
        self.sim = api.sim
        self.cluster = api.cluster

    def register(self, routes: dict) -> None:
        R = routes
        base = "/nodes/{node}/lxc/{vmid}/snapshot"
        R[("GET", base)] = self.snapshot_list
        R[("POST", base)] = self.snapshot_create
        R[("GET", base + "/{snapname}")] = self.snapshot_index
        R[("DELETE", base + "/{snapname}")] = self.snapshot_delete
        R[("POST", base + "/{snapname}/rollback")] = self.snapshot_rollback
        R[("GET", base + "/{snapname}/config")] = self.snapshot_config
        R[("PUT", base + "/{snapname}/config")] = self.snapshot_update
        R[("GET", "/nodes/{node}/lxc/{vmid}/feature")] = self.feature
        R[("POST", "/nodes/{node}/vzdump")] = self.vzdump
        R[("GET", "/nodes/{node}/vzdump/defaults")] = self.vzdump_defaults
        R[("GET", "/nodes/{node}/storage/{storage}/content/{volume}")] = self.volume_info
        R[("PUT", "/nodes/{node}/storage/{storage}/content/{volume}")] = self.volume_update
        R[("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}")] = self.volume_delete
        R[("GET", "/cluster/backup")] = self.jobs
        R[("POST", "/cluster/backup")] = self.job_create
        R[("GET", "/cluster/backup/{id}")] = self.job_read
        R[("DELETE", "/cluster/backup/{id}")] = self.job_delete
        R[("GET", "/cluster/backup-info/not-backed-up")] = self.not_backed_up

    # --- snapshots ---------------------------------------------------------------------------
    def snapshot_list(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        ctx.check(f"/vms/{ct.vmid}", ["VM.Audit"])
        out = []
        for name, snap in ct.snapshots.items():
            item = {"name": name, "snaptime": snap.get("snaptime") or 0, "description": snap.get("description") or ""}
            if snap.get("parent") is not None:
                item["parent"] = snap["parent"]
            if snap.get("snapstate"):
                item["snapstate"] = snap["snapstate"]
            out.append(item)
        current = {"name": "current", "digest": ct.digest(), "running": 1 if ct.running else 0,
                   "description": "You are here!"}
        if ct.config.get("parent") is not None:
            current["parent"] = ct.config["parent"]
        out.append(current)
        return out

    def snapshot_index(self, ctx, p):
        self.cluster.get_ct(p["node"], p["vmid"])
        return [{"cmd": "rollback"}, {"cmd": "config"}]

    def _snapshot_feature(self, ct: Container, config: dict | None = None) -> bool:
        for key, value in (ct.config if config is None else config).items():
            if key == "rootfs" or re.match(r"^mp\d+$", key):
                volume = value.split(",")[0]
                if ":" not in volume:  # a bind mount: no snapshot support
                    return False
                cfg = self.cluster.storage_cfg(volume.split(":", 1)[0])
                if cfg is None or cfg[1] not in SNAPSHOT_STORAGE_TYPES:
                    return False
        return True

    def feature(self, ctx, p):
        """API2/LXC.pm ``vm_feature``: ``has_feature`` over the config's volumes, and the nodes sharing them."""
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        ctx.check(f"/vms/{ct.vmid}", ["VM.Audit"])
        config = ct.config
        if p.get("snapname"):
            if p["snapname"] not in ct.snapshots:
                raise PVEError(f"snapshot '{p['snapname']}' does not exist")
            config = ct.snapshots[p["snapname"]]
        has = self._snapshot_feature(ct, config) if p["feature"] == "snapshot" else True
        shared = all(self._shared(str(v).split(",")[0].split(":", 1)[0]) for k, v in config.items()
                     if (k == "rootfs" or re.match(r"^mp\d+$", k)) and ":" in str(v).split(",")[0])
        nodes = [n for n in self.cluster.nodes if n != ct.node] if shared else []
        return {"hasFeature": 1 if has else 0, "nodes": nodes}

    def _take_snapshot(self, ct: Container, name: str, description: str | None, task: Task | None) -> None:
        """AbstractConfig::snapshot_create with the config lock held by the caller's thread."""
        with self.cluster.lock:
            if ct.template:
                raise PVEError("you can't take a snapshot if it's a template")
            if ct.lock:
                raise PVEError(f"CT is locked ({ct.lock})")
            if name in ct.snapshots:
                raise PVEError(f"snapshot name '{name}' already used")
            if not self._snapshot_feature(ct):
                raise PVEError("snapshot feature is not available")
            ct.lock = "snapshot"
            for other in ct.snapshots.values():
                if other.get("parent") == name:
                    if task is not None:
                        task.log(f"deleting parent '{name}' reference from '{other}' to avoid bogus snapshot cycle.")
                    other.pop("parent", None)
            snap = {k: v for k, v in ct.config.items()
                    if k not in ("lock", "description", "digest") and not re.match(r"^unused\d+$", k)}
            snap.update(snapstate="prepare", snaptime=int(time.time()))
            if description:
                snap["description"] = description
            ct.snapshots[name] = snap
        if task is not None:
            for key, value in sorted(ct.config.items()):
                if key == "rootfs" or re.match(r"^mp\d+$", key):
                    volname = value.split(",")[0].split(":", 1)[-1]
                    task.log(f'  Logical volume "snap_{volname}_{name}" created.')
            self.sim.tasks.sleep(self.sim.task_delay, task)
        with self.cluster.lock:
            snap.pop("snapstate", None)
            ct.lock = None
            ct.config["parent"] = name

    def snapshot_create(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        ctx.check(f"/vms/{ct.vmid}", ["VM.Snapshot"])
        name = p["snapname"]
        if name in RESERVED_SNAPSHOT_NAMES:
            raise PVEError(f"unable to use snapshot name '{name}' (reserved name)")

        def worker(task: Task):
            self._take_snapshot(ct, name, p.get("description"), task)

        return self.sim.tasks.spawn(ct.node, "vzsnapshot", ct.vmid, ctx.user, worker)

    def _drop_snapshot(self, ct: Container, name: str, task: Task | None, force: bool = False) -> None:
        """AbstractConfig::snapshot_delete: lock ``snapshot-delete``, relink children, drop the section."""
        with self.cluster.lock:
            snap = ct.snapshots.get(name)
            if snap is None:
                raise PVEError(f"snapshot '{name}' does not exist")
            if ct.lock and not force:
                raise PVEError(f"CT is locked ({ct.lock})")
            if ct.template:
                raise PVEError("you can't delete a snapshot if vm is a template")
            if not force:
                ct.lock = "snapshot-delete"
            snap["snapstate"] = "delete"
        if task is not None:
            for key, value in sorted(snap.items()):
                if key == "rootfs" or re.match(r"^mp\d+$", key):
                    volname = str(value).split(",")[0].split(":", 1)[-1]
                    task.log(f'  Logical volume "snap_{volname}_{name}" successfully removed.')
            self.sim.tasks.sleep(self.sim.task_delay, task)
        with self.cluster.lock:
            parent = snap.get("parent")
            for holder in [ct.config, *ct.snapshots.values()]:
                if holder.get("parent") == name:
                    if parent:
                        holder["parent"] = parent
                    else:
                        holder.pop("parent", None)
            ct.snapshots.pop(name, None)
            if not force:
                ct.lock = None

    def snapshot_delete(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        ctx.check(f"/vms/{ct.vmid}", ["VM.Snapshot"])
        name, force = p["snapname"], _b(p.get("force", "0"))

        def worker(task: Task):
            self._drop_snapshot(ct, name, task, force=force)

        return self.sim.tasks.spawn(ct.node, "vzdelsnapshot", ct.vmid, ctx.user, worker)

    def snapshot_rollback(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        ctx.check(f"/vms/{ct.vmid}", ["VM.Snapshot", "VM.Snapshot.Rollback"], True)
        name, start = p["snapname"], _b(p.get("start", "0"))

        def worker(task: Task):
            with self.cluster.lock:
                if ct.template:
                    raise PVEError("you can't rollback if vm is a template")
                snap = ct.snapshots.get(name)
                if snap is None:
                    raise PVEError(f"snapshot '{name}' does not exist")
                if snap.get("snapstate"):
                    raise PVEError(f"unable to rollback to incomplete snapshot (snapstate = {snap['snapstate']})")
                if ct.lock:
                    raise PVEError(f"CT is locked ({ct.lock})")
                if ct.running:  # __snapshot_rollback_vm_stop
                    self.cluster._set_stopped(ct)
                ct.lock = "rollback"
            for key, value in sorted(snap.items()):
                if key == "rootfs" or re.match(r"^mp\d+$", key):
                    volname = str(value).split(",")[0].split(":", 1)[-1]
                    task.log(f'  Logical volume "{volname}" successfully removed.')
                    task.log(f'  Logical volume "{volname}" created.')
            self.sim.tasks.sleep(self.sim.task_delay, task)
            with self.cluster.lock:
                restored = {k: v for k, v in snap.items() if k not in ("snaptime", "description", "snapstate",
                                                                        "parent")}
                restored["parent"] = name
                ct.config = restored  # the lock goes with the old config
            if start:
                task.log(f"starting CT {ct.vmid}")
                with self.cluster.lock:
                    self.cluster._set_running(ct)

        return self.sim.tasks.spawn(ct.node, "vzrollback", ct.vmid, ctx.user, worker)

    def snapshot_config(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        ctx.check(f"/vms/{ct.vmid}", ["VM.Audit"])
        snap = ct.snapshots.get(p["snapname"])
        if snap is None:
            raise PVEError(f"snapshot '{p['snapname']}' does not exist")
        return dict(snap)

    def snapshot_update(self, ctx, p):
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        ctx.check(f"/vms/{ct.vmid}", ["VM.Snapshot"])
        name = p["snapname"]
        if "description" not in p:
            return None
        if ct.lock:
            raise PVEError(f"CT is locked ({ct.lock})")
        snap = ct.snapshots.get(name)
        if snap is None:
            raise PVEError(f"snapshot '{name}' does not exist")
        snap["description"] = p["description"]
        return None

    def snapshot_config_of(self, ct: Container, name: str) -> dict:
        """``GET /config?snapshot=NAME``: the snapshot's copy of the config (load_snapshot_config)."""
        snap = ct.snapshots.get(name)
        if snap is None:
            raise PVEError(f"snapshot '{name}' does not exist")
        out = dict(snap)
        out["digest"] = ct.digest()
        return out

    # --- storages -----------------------------------------------------------------------------
    def _storage_type(self, sid: str) -> str:
        cfg = self.cluster.storage_cfg(sid)
        if cfg is None:
            raise PVEError(f"storage '{sid}' does not exist")
        return cfg[1]

    def _real_volid(self, p) -> tuple[str, str]:
        """API2/Storage/Content.pm real_volume_id: ``volume`` is a volid, or a name on ``storage``."""
        volume, storage = p["volume"], p.get("storage")
        if ":" in volume:
            sid = volume.split(":", 1)[0]
            if storage and storage != sid:
                raise PVEError(f"storage ID mismatch ({sid} != {storage})")
            return volume, sid
        if not storage:
            raise param_error({"volume": "no storage specified - incomplete volume ID"})
        return f"{storage}:{volume}", storage

    def _backup_on(self, node: str, volid: str) -> dict:
        entry = self.cluster.backups.get(volid)
        if entry is None or (entry["node"] is not None and entry["node"] != node):
            sid, _, volname = volid.partition(":")
            if self._storage_type(sid) == "pbs":
                raise PVEError(f"unable to get snapshot info - backup '{volname}' does not exist")
            raise PVEError(f"volume '{volid}' does not exist")
        return entry

    def volume_info(self, ctx, p):
        volid, sid = self._real_volid(p)
        entry = self._backup_on(p["node"], volid)
        out = {"path": entry["path"], "size": entry["size"], "used": entry["size"], "format": entry["format"]}
        if entry.get("notes"):
            out["notes"] = entry["notes"]
        out["protected"] = 1 if entry.get("protected") else 0
        return out

    def volume_update(self, ctx, p):
        volid, sid = self._real_volid(p)
        entry = self._backup_on(p["node"], volid)
        if "notes" in p:
            entry["notes"] = p["notes"] or None
        if "protected" in p:
            entry["protected"] = _b(p["protected"])
        return None

    def volume_delete(self, ctx, p):
        volid, sid = self._real_volid(p)
        entry = self._backup_on(p["node"], volid)
        ctx.check(f"/storage/{sid}", ["Datastore.AllocateSpace"])
        ctx.check(f"/vms/{entry['vmid']}", ["VM.Backup"])
        volname = volid.split(":", 1)[1]

        def worker(task: Task):
            with self.cluster.lock:
                if entry.get("protected"):
                    if self._storage_type(sid) == "pbs":
                        raise PVEError("removing backup snapshot failed: backup is protected")
                    raise PVEError(f"cannot remove protected volume '{volname}' on '{sid}'")
                self.cluster.backups.pop(volid, None)
            task.log(f"Removed volume '{volid}'")

        return self.sim.tasks.spawn(p["node"], "imgdel", f"{entry['vmid']}@{sid}", ctx.user, worker)

    # --- vzdump -------------------------------------------------------------------------------
    def vzdump_defaults(self, ctx, p):
        out = {"mode": "snapshot", "compress": "0", "ionice": 7, "lockwait": 180, "stopwait": 10,
               "tmpdir": "/var/tmp", "notes-template": "{{guestname}}"}
        if p.get("storage"):
            out["storage"] = p["storage"]
        else:
            out["storage"] = "local"
        return out

    def vzdump(self, ctx, p):
        node = p["node"]
        storage = p.get("storage", "local")
        stype = self._storage_type(storage)
        cfg = self.cluster.storage_cfg(storage)
        if "backup" not in cfg[2].split(","):
            raise PVEError(f"storage '{storage}' does not support backups")
        if p.get("stdout"):
            raise param_error({"stdout": "option is only allowed on the command line interface."})
        wanted = [int(v) for v in split_list(p.get("vmid", ""))]
        if _b(p.get("all", "0")):
            exclude = {int(v) for v in split_list(p.get("exclude", ""))}
            wanted = [c.vmid for c in self.cluster.containers.values() if c.vmid not in exclude]
        elif not wanted and not p.get("pool"):
            raise param_error({"vmid": "property is missing and it is not optional"})
        local = sorted(v for v in wanted if v in self.cluster.containers and self.cluster.containers[v].node == node)
        orphaned = [v for v in wanted if v not in self.cluster.containers]
        vmids = local + orphaned
        for vmid in vmids:
            ctx.check(f"/vms/{vmid}", ["VM.Backup"])
        if not vmids and not _b(p.get("all", "0")):
            return "OK"  # silent exit if the given guests run on other nodes
        ctx.check(f"/storage/{storage}", ["Datastore.AllocateSpace"])
        mode = p.get("mode", "snapshot")
        compress = p.get("compress", "0")
        notes_template = p.get("notes-template")
        protected = _b(p.get("protected", "0"))
        options = "".join(f" --{k} {shlex.quote(v)}" for k, v in sorted(p.items()) if k not in ("node", "vmid"))
        cmdline = f"vzdump {' '.join(map(str, vmids))}{options} --node {node}"

        def worker(task: Task):
            task.log(f"INFO: starting new backup job: {cmdline}")
            gate = self.cluster.vzdump_gate(node)
            if not gate.acquire(blocking=False):
                task.log("INFO: trying to get global lock - waiting...")
                while not gate.acquire(timeout=0.05):
                    if task.cancelled or self.sim.tasks._stop.is_set():
                        raise PVEError("can't acquire lock '/var/run/vzdump.lock' - interrupted by signal")
                task.log("INFO: got global lock")
            errors = 0
            try:
                for vmid in vmids:
                    try:
                        self._backup_one(task, vmid, node, storage, stype, mode, compress, notes_template, protected)
                    except PVEError as exc:
                        errors += 1
                        task.log(f"ERROR: Backup of VM {vmid} failed - {exc.message}")
                task.log("INFO: Backup job finished with errors" if errors else "INFO: Backup job finished successfully")
            finally:
                gate.release()
            if errors:
                raise PVEError("job errors")

        return self.sim.tasks.spawn(node, "vzdump", vmids[0] if len(vmids) == 1 else "", ctx.user, worker)

    def _backup_one(self, task, vmid, node, storage, stype, mode, compress, notes_template, protected):
        started = time.time()
        ct = self.cluster.containers.get(vmid)
        if ct is None:
            raise PVEError(f"unable to find VM {vmid}")  # vzdump on a deleted guest
        task.log(f"INFO: Starting Backup of VM {vmid} (lxc)")
        task.log(f"INFO: Backup started at {datetime.now().strftime('%Y-%m-%d %H:%M:%S')}")
        with self.cluster.lock:
            if ct.lock:
                raise PVEError(f"CT is locked ({ct.lock})")
            ct.lock = "backup"
        try:
            was_running = ct.running
            task.log(f"INFO: status = {'running' if was_running else 'stopped'}")
            if ct.hostname:
                task.log(f"INFO: CT Name: {ct.hostname}")
            task.log("INFO: including mount point rootfs ('/') in backup")
            effective = mode if was_running else "stop"
            if effective == "snapshot" and not self._snapshot_feature(ct):
                task.log("INFO: mode failure - some volumes do not support snapshots")
                task.log("INFO: trying 'suspend' mode instead")
                effective = "suspend"
            task.log(f"INFO: backup mode: {effective}")
            task.log("INFO: ionice priority: 7")
            if effective == "stop" and was_running:
                task.log("INFO: stopping virtual guest")
                with self.cluster.lock:
                    self.cluster._set_stopped(ct)
            if effective == "snapshot":
                task.log("INFO: create storage snapshot 'vzdump'")
                with self.cluster.lock:
                    ct.snapshots["vzdump"] = {**{k: v for k, v in ct.config.items() if k != "lock"},
                                              "snaptime": int(time.time())}
            if effective == "suspend":
                task.log("INFO: starting first sync /proc/1234/root/ to /var/tmp/vzdumptmp1234_" + str(vmid))
                task.log("INFO: suspending guest")
            ctime = time.time()
            volid = backup_volid(storage, stype, vmid, ctime, compress if stype != "pbs" else "zstd")
            while volid in self.cluster.backups:  # two backups within one second
                ctime += 1
                volid = backup_volid(storage, stype, vmid, ctime, compress if stype != "pbs" else "zstd")
            if stype == "pbs":
                task.log(f"INFO: creating Proxmox Backup Server archive 'ct/{vmid}/"
                         f"{datetime.fromtimestamp(int(ctime), UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}'")
            else:
                task.log(f"INFO: creating vzdump archive '{self._path(storage, volid)}'")
            self.sim.tasks.sleep(self.sim.task_delay, task)
            if task.cancelled:
                raise PVEError("interrupted by signal")
            used = int(ct.maxdisk * (0.2 + (vmid % 50) / 100))
            size = max(int(used * (0.35 if compress != "0" else 1.0)), 1 * MiB)
            task.log(f"INFO: Total bytes written: {used} ({used / GiB:.1f}GiB, 180MiB/s)")
            task.log(f"INFO: archive file size: {size / GiB:.2f}GB")
            entry = {"volid": volid, "storage": storage, "node": None if self._shared(storage) else node,
                     "vmid": vmid, "ctime": int(ctime), "size": size, "format": backup_format(volid),
                     "subtype": "lxc", "notes": None, "protected": protected,
                     "path": self._path(storage, volid),
                     "config": {k: v for k, v in ct.config.items() if k not in ("lock", "parent")}}
            if notes_template:
                task.log("INFO: adding notes to backup")
                entry["notes"] = render_notes(notes_template, ct, node)
            if protected:
                task.log("INFO: marking backup as protected")
            if effective == "snapshot":
                task.log("INFO: cleanup temporary 'vzdump' snapshot")
                with self.cluster.lock:
                    ct.snapshots.pop("vzdump", None)
            if effective == "suspend":
                task.log("INFO: resume vm")
            if effective == "stop" and was_running:
                task.log("INFO: restarting vm")
                with self.cluster.lock:
                    self.cluster._set_running(ct)
            with self.cluster.lock:
                self.cluster.backups[volid] = entry
            elapsed = int(time.time() - started)
            task.log(f"INFO: Finished Backup of VM {vmid} ({elapsed // 3600:02d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d})")
            task.log(f"INFO: Backup finished at {datetime.now().strftime('%Y-%m-%d %H:%M:%S')}")
        finally:
            with self.cluster.lock:
                if ct.lock == "backup":
                    ct.lock = None

    def _shared(self, sid: str) -> bool:
        cfg = self.cluster.storage_cfg(sid)
        return bool(cfg and cfg[3])

    def _path(self, sid: str, volid: str) -> str:
        volname = volid.split(":", 1)[1]
        if self._storage_type(sid) == "pbs":
            return volid
        root = "/var/lib/vz" if sid == "local" else f"/mnt/pve/{sid}"
        return f"{root}/dump/{volname.split('/', 1)[1]}"

    # --- restore (called by lxc_create when restore=1) ----------------------------------------
    def restore_source(self, node: str, volid: str) -> dict:
        """The backup entry ``volid`` as seen from ``node``; raises PVEError when it is not there."""
        return self._backup_on(node, volid)

    def restored_config(self, entry: dict, vmid: int, given: dict, unique: bool) -> dict:
        """restore_configuration: the backed-up config, the given options merged over it, disks renamed
        to the new VMID, MAC addresses kept unless ``unique``."""
        cfg = {k: v for k, v in entry["config"].items() if k not in ("lock", "parent")}
        old = entry["vmid"]
        for key, value in list(cfg.items()):
            if key == "rootfs" or re.match(r"^mp\d+$", key):
                cfg[key] = re.sub(rf"vm-{old}-disk-", f"vm-{vmid}-disk-", str(value))
            elif re.match(r"^net\d+$", key) and unique:
                cfg[key] = re.sub(r"hwaddr=[0-9A-Fa-f:]+", f"hwaddr={new_mac(vmid, int(key[3:]))}", str(value))
        cfg.update(given)
        return cfg

    # --- jobs ---------------------------------------------------------------------------------
    def jobs(self, ctx, p):
        ctx.check("/", ["Sys.Audit"])
        out = []
        for job_id, job in self.cluster.backup_jobs.items():
            item = {"id": job_id, "type": "vzdump", **job}
            if job.get("schedule"):
                item["next-run"] = self._next_run(job["schedule"])
            out.append(item)
        return out

    @staticmethod
    def _next_run(schedule: str) -> int:
        """A plausible next run for the simple calendar events the simulator seeds (``HH:MM``,
        ``<dow> HH:MM``): the next such minute from now, in UTC."""
        m = re.search(r"(\d{1,2}):(\d{2})", schedule)
        now = int(time.time())
        if not m:
            return now + 3600
        day = now - now % 86400
        at = day + int(m.group(1)) * 3600 + int(m.group(2)) * 60
        return at if at > now else at + 86400

    def job_read(self, ctx, p):
        ctx.check("/", ["Sys.Audit"])
        job = self.cluster.backup_jobs.get(p["id"])
        if job is None:
            raise PVEError(f"Job '{p['id']}' does not exist", 404)
        return {"id": p["id"], "type": "vzdump", **job}

    def job_create(self, ctx, p):
        ctx.check("/", ["Sys.Modify"])
        job_id = p.get("id") or f"backup-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:4]}"
        if job_id in self.cluster.backup_jobs:
            raise PVEError(f"Job '{job_id}' already exists")
        if not (p.get("vmid") or _b(p.get("all", "0")) or p.get("pool")):
            raise PVEError("no guests selected")
        job = {k: v for k, v in p.items() if k != "id"}
        for key in ("all", "enabled", "protected", "repeat-missed"):
            if key in job:
                job[key] = int(job[key])
        job.setdefault("enabled", 1)
        job.setdefault("schedule", "00:00")
        self.cluster.backup_jobs[job_id] = job
        return None

    def job_delete(self, ctx, p):
        ctx.check("/", ["Sys.Modify"])
        if self.cluster.backup_jobs.pop(p["id"], None) is None:
            raise PVEError(f"Job '{p['id']}' does not exist", 404)
        return None

    def covered_vmids(self) -> set[int]:
        """BackupInfo::get_included_vmids: every guest some job names (enabled or not)."""
        covered: set[int] = set()
        for job in self.cluster.backup_jobs.values():
            if job.get("pool"):
                continue  # the simulator's pools hold no guests
            if job.get("vmid"):
                vmids = {int(v) for v in split_list(str(job["vmid"]))}
            elif int(job.get("all", 0)):
                exclude = {int(v) for v in split_list(str(job.get("exclude", "")))}
                vmids = {v for v in self.cluster.containers if v not in exclude}
            else:
                vmids = set()
            if job.get("node"):
                vmids = {v for v in vmids if v in self.cluster.containers
                         and self.cluster.containers[v].node == job["node"]}
            covered |= vmids
        return covered

    def not_backed_up(self, ctx, p):
        ctx.check("/", ["Sys.Audit"])
        covered = self.covered_vmids()
        out = []
        for vmid, ct in sorted(self.cluster.containers.items()):
            if vmid in covered or not ctx.has(f"/vms/{vmid}", ["VM.Audit"]):
                continue
            entry = {"vmid": vmid, "type": "lxc"}
            if ct.hostname:
                entry["name"] = ct.hostname
            out.append(entry)
        return out


def seed_backups(cluster, now: float) -> None:
    """Backups and jobs of the seeded cluster, deterministic per VMID: most containers have a nightly
    backup on the Backup Server (some older, some verified), every third one also a weekly archive on
    the NFS share, a few only a local archive, and every tenth none at all (VMID ends in 9)."""
    day = 86400
    for vmid, ct in sorted(cluster.containers.items()):
        if vmid % 10 == 9:
            continue
        config = {k: v for k, v in ct.config.items() if k not in ("lock", "parent")}
        age = (vmid % 6) * day + 2 * 3600  # 0 to 5 days old, 02:00-ish
        placements = []
        if vmid % 10 != 5:
            placements.append(("pbs", "pbs", now - age))
            placements.append(("pbs", "pbs", now - age - 7 * day))
        if vmid % 3 == 0:
            placements.append(("backup-nfs", "nfs", now - age - 3 * day))
        if vmid % 10 == 5:
            placements.append(("local", "dir", now - 40 * day))
        for i, (sid, stype, ctime) in enumerate(placements):
            volid = backup_volid(sid, stype, vmid, ctime)
            size = max(int(ct.maxdisk * 0.12), 64 * MiB)
            entry = {"volid": volid, "storage": sid, "node": None if sid != "local" else ct.node,
                     "vmid": vmid, "ctime": int(ctime), "size": size, "format": backup_format(volid),
                     "subtype": "lxc", "notes": ct.name if i == 0 else None, "protected": vmid % 8 == 0 and i == 0,
                     "path": volid if stype == "pbs" else f"/mnt/pve/{sid}/dump/{volid.split('/', 1)[1]}"
                     if sid != "local" else f"/var/lib/vz/dump/{volid.split('/', 1)[1]}",
                     "config": config}
            if stype == "pbs":
                state = "ok" if vmid % 4 else ("failed" if vmid % 8 == 4 else None)
                if state:
                    entry["verification"] = {"state": state, "upid": f"UPID:pbs:0000{vmid:04X}:00A0B0C0:"
                                             f"{int(ctime) + 3600:08X}:verificationjob:pbs\\x3av-{vmid}:root@pam:"}
            cluster.backups[volid] = entry
    cluster.backup_jobs = {
        "backup-nightly": {"schedule": "02:00", "storage": "pbs", "mode": "snapshot", "enabled": 1, "all": 1,
                           "exclude": ",".join(str(v) for v in sorted(cluster.containers) if v % 10 in (5, 9)),
                           "notes-template": "{{guestname}}", "compress": "zstd",
                           "comment": "Nightly to the Backup Server"},
        "backup-weekly": {"schedule": "sun 03:30", "storage": "backup-nfs", "mode": "snapshot", "enabled": 0,
                          "vmid": ",".join(str(v) for v in sorted(cluster.containers) if v % 10 == 5),
                          "compress": "zstd", "comment": "Weekly archive (paused)"},
    }


def backup_entry_for_listing(entry: dict) -> dict:
    """One ``storage/{storage}/content`` item of a backup volume, as the storage plugin lists it."""
    out = {"volid": entry["volid"], "content": "backup", "ctime": entry["ctime"], "format": entry["format"],
           "size": entry["size"], "subtype": entry["subtype"], "vmid": entry["vmid"]}
    if entry.get("notes"):
        out["notes"] = entry["notes"].split("\n")[0]
    if entry.get("protected"):
        out["protected"] = 1
    if entry.get("verification"):
        out["verification"] = dict(entry["verification"])
    return out


