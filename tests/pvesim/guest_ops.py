"""Clone, migrate and convert to template (pve-container ``src/PVE/API2/LXC.pm`` and ``src/PVE/LXC/Migrate.pm``).

- ``clone_vm``: the source is locked ``disk`` and the new config written locked ``create`` before the task
  (``vzclone``, its id the source VMID) starts, so the new VMID is taken at once; ``full`` defaults to "not a
  template"; ``storage`` only for full clones; a full clone of a running CT only from ``snapname``; a linked
  clone only of base volumes (a template's) or a snapshot; ``target`` only with shared volumes. Every NIC gets
  a new MAC; snapshots, ``parent``, ``template`` are dropped. The task copies (full) or clones (linked) each
  volume, unlocks both and moves the new config to ``target``. A failure removes the new guest.
- ``migrate_vm``: ``target is local node.`` (400); a running CT without ``online``/``restart`` is refused before
  the task; the task (``vzmigrate``) checks the lock, refuses ``online`` (no live migration for LXC), shuts a
  running CT down in restart mode, locks it ``migrate``, moves it and starts it on the target. An HA-managed
  CT gets a ``hamigrate`` task instead (here the HA stack moves it within that task).
- ``migrate_vm_precondition`` (GET, PVE 9.x only): ``running``, ``allowed-nodes`` (every other cluster node)
  and ``not-allowed-nodes`` keyed by node with the HA resources blocking it (a negative resource-affinity rule
  with a guest on that node).
- ``template``: refused before its task for a lock, snapshots, a template or a running CT; the task
  (``vztemplate``) renames each volume ``base-…`` and sets ``template: 1``. The API answers ``null``.
"""
from __future__ import annotations

import re

from .state import Container, PVEError, Task, new_mac, param_error

# storage types that clone a snapshot (volume_has_feature 'clone' with a snapname)
SNAPSHOT_CLONE_TYPES = {"lvmthin", "zfspool", "rbd", "btrfs"}


def _b(v) -> bool:
    return str(v) == "1"


def _volume_keys(config: dict) -> list[str]:
    return sorted(k for k in config if k == "rootfs" or re.match(r"^mp\d+$", k))


class GuestOps:
    """The handlers; ``register`` adds them to the API's route table."""

    def __init__(self, api):
        self.api = api
        self.sim = api.sim
        self.cluster = api.cluster

    def register(self, routes: dict) -> None:
        base = "/nodes/{node}/lxc/{vmid}"
        routes[("POST", base + "/clone")] = self.clone
        routes[("POST", base + "/migrate")] = self.migrate
        routes[("POST", base + "/template")] = self.template
        if self.api.v9:
            routes[("GET", base + "/migrate")] = self.migrate_preconditions

    # --- helpers -----------------------------------------------------------------------------
    def _shared(self, sid: str) -> bool:
        cfg = self.cluster.storage_cfg(sid)
        return bool(cfg and cfg[3])

    def _new_volid(self, sid: str, vmid: int, idx: int) -> str:
        cfg = self.cluster.storage_cfg(sid)
        return f"{sid}:{vmid}/vm-{vmid}-disk-{idx}.raw" if cfg and cfg[1] == "dir" else f"{sid}:vm-{vmid}-disk-{idx}"

    # --- clone -------------------------------------------------------------------------------
    def clone(self, ctx, p):
        node, vmid, newid = p["node"], int(p["vmid"]), int(p["newid"])
        ct = self.cluster.get_ct(node, vmid)
        ctx.check(f"/vms/{vmid}", ["VM.Clone"])
        pool = p.get("pool")
        if not ctx.has(f"/vms/{newid}", ["VM.Allocate"]) and not (pool and ctx.has(f"/pool/{pool}", ["VM.Allocate"])):
            ctx.check(f"/vms/{newid}", ["VM.Allocate"])
        target = p.get("target")
        if target in (node, "localhost"):
            target = None
        if target and target not in self.cluster.nodes:
            raise PVEError(f"no such cluster node '{target}'")
        storage = p.get("storage")
        if storage:
            if not self.cluster.storage_cfg(storage):
                raise PVEError(f"storage '{storage}' does not exist")
            if target and not self._shared(storage):
                raise PVEError(f"can't clone to non-shared storage '{storage}'")
        if ct.lock:  # set_lock($vmid, 'disk') checks the lock first
            raise PVEError(f"CT is locked ({ct.lock})")
        if newid in self.cluster.containers:
            raise PVEError(f"CT {newid} already exists on node '{self.cluster.containers[newid].node}'")
        full = _b(p["full"]) if "full" in p else not ct.template
        if storage and not full:
            raise PVEError("parameter 'storage' not allowed for linked clones")
        snapname = p.get("snapname")
        if snapname and snapname not in ct.snapshots:
            raise PVEError(f"snapshot '{snapname}' does not exist")
        source = ct.snapshots[snapname] if snapname else ct.config
        running = ct.running
        config, volumes, shared = {}, {}, True
        for key, value in sorted(source.items()):
            if re.match(r"^unused\d+$", key) or key in ("snaptime", "description", "snapstate"):
                continue
            if key == "rootfs" or re.match(r"^mp\d+$", key):
                volid = str(value).split(",")[0]
                if ":" not in volid:
                    raise PVEError(f"unable to clone mountpoint '{key}' (type bind)")
                sid = storage or volid.split(":", 1)[0]
                shared = shared and self._shared(sid)
                ctx.check(f"/storage/{sid}", ["Datastore.AllocateSpace"])
                if full:
                    if running and not snapname:  # the wording changed in pve-container for PVE 9
                        raise PVEError("Full clone of a running container is only possible from a snapshot"
                                       if self.api.v9 else "Cannot do full clones on a running container without snapshots")
                else:
                    volname = volid.split(":", 1)[1]
                    stype = (self.cluster.storage_cfg(volid.split(":", 1)[0]) or ("", ""))[1]
                    # a template's volumes are base volumes (the seeded template keeps its vm- name)
                    if not (ct.template or volname.split("/")[-1].startswith("base-") or
                            (snapname and stype in SNAPSHOT_CLONE_TYPES)):
                        raise PVEError(f"Linked clone feature for '{volid}' is not available")
                volumes[key] = str(value)
            elif re.match(r"^net\d+$", key):
                config[key] = re.sub(r"hwaddr=[0-9A-Fa-f:]+", f"hwaddr={new_mac(newid, int(key[3:]))}", str(value))
            else:
                config[key] = value
        if target and not shared:
            raise PVEError(f"can't clone CT to node '{target}' (CT uses local storage)")
        for key in ("snapshots", "parent", "lock", "template", "pending", "digest"):
            config.pop(key, None)
        config.update({k: str(v) for k, v in volumes.items()})
        config["lock"] = "create"
        if p.get("hostname"):
            config["hostname"] = p["hostname"]
        if p.get("description"):
            config["description"] = p["description"]
        clone = Container(vmid=newid, node=node, config=config, pool=pool)
        self.cluster.containers[newid] = clone
        ct.lock = "disk"

        def worker(task: Task):
            task.log(f"creating a clone of container {vmid} with ID {newid}")
            if ct.running != running:
                raise PVEError("unexpected state change")
            for idx, key in enumerate(sorted(volumes, key=lambda k: (k != "rootfs", k))):
                volid, _, rest = volumes[key].partition(",")
                if full:
                    task.log(f"create full clone of mountpoint {key} ({volid})")
                    new = self._new_volid(storage or volid.split(":", 1)[0], newid, idx)
                else:
                    task.log(f"create linked clone of mount point {key} ({volid})")
                    new = self._new_volid(volid.split(":", 1)[0], newid, idx)
                with self.cluster.lock:
                    clone.config[key] = ",".join([new, rest] if rest else [new])
            self.sim.tasks.sleep(self.sim.task_delay, task)
            with self.cluster.lock:
                ct.lock = None if ct.lock == "disk" else ct.lock
                clone.lock = None
                if target:
                    clone.node = target

        def on_error(task: Task):
            with self.cluster.lock:
                if ct.lock == "disk":
                    ct.lock = None
                if self.cluster.containers.get(newid) is clone:
                    del self.cluster.containers[newid]

        return self.sim.tasks.spawn(node, "vzclone", vmid, ctx.user, worker, on_error=on_error)

    # --- migrate -----------------------------------------------------------------------------
    def migrate(self, ctx, p):
        node, vmid, target = p["node"], int(p["vmid"]), p["target"]
        ctx.check(f"/vms/{vmid}", ["VM.Migrate"])
        if target == node:
            raise param_error({"target": "target is local node."})
        if target not in self.cluster.nodes:
            raise PVEError(f"no such cluster node '{target}'")
        ct = self.cluster.get_ct(node, vmid)
        online, restart = _b(p.get("online", "0")), _b(p.get("restart", "0"))
        if ct.running and not online and not restart:
            raise PVEError("can't migrate running container without --online or --restart")
        if ct.ha:
            def ha_worker(task: Task):
                task.log(f"Requesting HA migration for CT {vmid} to node {target}")
                with self.cluster.lock:
                    ct.node = target

            return self.sim.tasks.spawn(node, "hamigrate", vmid, ctx.user, ha_worker)

        def worker(task: Task):
            with self.cluster.lock:
                if ct.lock:
                    raise PVEError(f"CT is locked ({ct.lock})")
                was_running = ct.running
                if was_running and online:
                    raise PVEError("lxc live migration is currently not implemented")
                if was_running and not restart:
                    raise PVEError("running container can only be migrated in restart mode")
            if not self.sim.node_online(target):
                raise PVEError("Can't connect to destination address using public key")
            if was_running:
                task.log(f"shutdown CT {vmid}")
                with self.cluster.lock:
                    self.cluster._set_stopped(ct)
            idx = list(self.cluster.nodes).index(target) + 1
            task.log(f"starting migration of CT {vmid} to node '{target}' (192.168.1.{10 + idx})")
            with self.cluster.lock:
                ct.lock = "migrate"
            for key in _volume_keys(ct.config):
                volid = ct.config[key].split(",")[0]
                task.log(f"found local volume '{volid}' (in current VM config)")
                task.log(f"volume '{volid}' is '{volid}' on the target")
            self.sim.tasks.sleep(self.sim.task_delay, task)
            task.log("start final cleanup")
            with self.cluster.lock:
                ct.lock = None
                ct.node = target
            if was_running:
                task.log("start container on target node")
                with self.cluster.lock:
                    self.cluster._set_running(ct)
            task.log("migration finished successfully (duration 00:00:01)")

        return self.sim.tasks.spawn(node, "vzmigrate", vmid, ctx.user, worker)

    def _unlocked(self, ctx, p, privilege: str) -> Container:
        """The CT of the request once the privilege is checked; ``check_lock`` refuses a locked one."""
        ctx.check(f"/vms/{p['vmid']}", [privilege])
        ct = self.cluster.get_ct(p["node"], p["vmid"])
        if ct.lock:
            raise PVEError(f"CT is locked ({ct.lock})")
        return ct

    def migrate_preconditions(self, ctx, p):
        ct = self._unlocked(ctx, p, "VM.Migrate")
        node = ct.node
        out = {"running": 1 if ct.running else 0, "allowed-nodes": [], "not-allowed-nodes": {}}
        blocking = self._blocking_ha_resources(ct) if ct.ha else {}
        if ct.ha:
            out["dependent-ha-resources"] = self._dependent_ha_resources(ct)
        for other in self.cluster.nodes:
            if other == node:
                continue
            if blocking.get(other):
                out["not-allowed-nodes"][other] = {"blocking-ha-resources": blocking[other]}
            else:
                out["allowed-nodes"].append(other)
        return out

    def _affinity_rules(self, ct: Container, affinity: str):
        sid = f"ct:{ct.vmid}"
        for name, rule in sorted(self.cluster.ha_rules.items()):
            if rule.get("type") != "resource-affinity" or rule.get("disable"):
                continue
            if rule.get("affinity") != affinity:
                continue
            resources = [r.strip() for r in str(rule.get("resources", "")).split(",") if r.strip()]
            if sid in resources:
                yield [r for r in resources if r != sid]

    def _blocking_ha_resources(self, ct: Container) -> dict:
        """PVE::HA::Config::get_resource_motion_info: a guest in negative affinity blocks the node it is on."""
        blocked: dict[str, list] = {}
        for others in self._affinity_rules(ct, "negative"):
            for other in others:
                guest = self.cluster.containers.get(int(other.split(":")[1])) if ":" in other else None
                if guest is not None and guest.ha:
                    blocked.setdefault(guest.node, []).append({"sid": other, "cause": "resource-affinity"})
        return blocked

    def _dependent_ha_resources(self, ct: Container) -> list:
        return sorted({other for others in self._affinity_rules(ct, "positive") for other in others})

    # --- template ----------------------------------------------------------------------------
    def template(self, ctx, p):
        ct = self._unlocked(ctx, p, "VM.Allocate")
        node, vmid = ct.node, ct.vmid
        if ct.snapshots:
            raise PVEError("unable to create template, because CT contains snapshots")
        if ct.template:
            raise PVEError("you can't convert a template to a template")
        if ct.running:
            raise PVEError("you can't convert a CT to template if the CT is running")

        def worker(task: Task):
            with self.cluster.lock:
                for key in _volume_keys(ct.config):
                    volid, _, rest = ct.config[key].partition(",")
                    sid, volname = volid.split(":", 1)
                    base = re.sub(r"(^|/)vm-", r"\1base-", volname)
                    task.log(f'  Renamed "{volname}" to "{base}" in volume group')
                    ct.config[key] = f"{sid}:{base}" + (f",{rest}" if rest else "")
                ct.template = True

        self.sim.tasks.spawn(node, "vztemplate", vmid, ctx.user, worker)
        return None
