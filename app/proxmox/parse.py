"""What comes FROM Proxmox: normalise its quirks into the typed models.

Proxmox returns booleans as 0/1 or "0"/"1", numbers sometimes as strings (vmid was a
string before PVE 8.2), leaves optional fields out, and packs structured values into
strings (tags ``a;b``, property strings ``name=eth0,bridge=vmbr0``). This module is the
only place that knows.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .models import (
    GIB,
    BackupJob,
    BackupVolume,
    Bridge,
    ClusterSnapshot,
    ClusterVersion,
    RrdData,
    ContainerConfig,
    ContainerInterface,
    ContainerBrief,
    ContainerSummary,
    LazySummaries,
    MigratePreconditions,
    Features,
    MountPoint,
    NetInterface,
    Node,
    NodeStatus,
    OsTemplate,
    Snapshot,
    Storage,
    Task,
    TaskLogLine,
)

Raw = Mapping[str, Any]

_LIST_SPLIT = re.compile(r"[;,\s]+")
_NET_KEY = re.compile(r"^net(\d+)$")
_MP_KEY = re.compile(r"^mp\d+$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)\s*$", re.IGNORECASE)
_UNIT = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_CT_STATUSES = {"running", "stopped"}


def as_bool(value: Any) -> bool:
    """0/1, "0"/"1", true/false, yes/no -> bool; missing -> False."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return value != 0
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def as_int(value: Any, default: int = 0) -> int:
    """Int from int/float/str ("105", "1.0"); missing or garbage -> default."""
    if type(value) is int:  # the common case, checked first: a cluster snapshot parses thousands
        return value
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return default


def as_opt_int(value: Any) -> int | None:
    """Like ``as_int`` but missing/garbage -> None."""
    if value is None or value == "":
        return None
    sentinel = -(2**63)
    result = as_int(value, sentinel)
    return None if result == sentinel else result


def as_float(value: Any, default: float = 0.0) -> float:
    """Float from number or numeric string; missing or garbage -> default."""
    if type(value) is float:
        return value
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def as_opt_str(value: Any) -> str | None:
    """Non-empty string or None."""
    if value is None:
        return None
    text = str(value)
    return text or None


def split_list(value: Any) -> tuple[str, ...]:
    """Split a Proxmox ``-list`` value (``a;b``, ``a,b``, ``a b``) keeping order, no duplicates."""
    if not value:
        return ()
    if isinstance(value, (list, tuple)):
        items: Iterable[str] = (str(v).strip() for v in value)
    else:
        items = _LIST_SPLIT.split(str(value))  # the separators already absorb the white space
    return tuple(dict.fromkeys(item for item in items if item))


def parse_property_string(value: str | None, default_key: str | None = None) -> dict[str, str]:
    """``volume,size=8G`` / ``name=eth0,bridge=vmbr0`` -> dict; a bare first item goes to default_key."""
    result: dict[str, str] = {}
    if not value:
        return result
    for part in str(value).split(","):
        if not part:
            continue
        key, sep, val = part.partition("=")
        if sep:
            result[key.strip()] = val.strip()
        elif default_key and default_key not in result:
            result[default_key] = key.strip()
    return result


def size_to_gib(value: str | None) -> float | None:
    """Proxmox disk-size (``8G``, ``512M``, ``1T``, bytes if bare) -> GiB."""
    if not value:
        return None
    match = _SIZE.match(str(value))
    if not match:
        return None
    number, unit = match.groups()
    return round(float(number) * _UNIT[unit.upper()] / GIB, 3)


def size_to_bytes(value: str | None) -> int | None:
    """Proxmox disk-size (``8G``, ``512M``, bare bytes) -> bytes, None when missing or unreadable."""
    match = _SIZE.match(str(value)) if value else None
    if not match:
        return None
    number, unit = match.groups()
    return int(float(number) * _UNIT[unit.upper()])


def mount_point(key: str, value: str) -> MountPoint:
    """``rootfs`` or one ``mpN`` property string (pve-container ``parse_volume``, ``classify_mountpoint``)."""
    props = parse_property_string(value, default_key="volume")
    volume = props.get("volume", "")
    kind = ("device" if volume.startswith("/dev/") else "bind") if volume.startswith("/") else "volume"
    rootfs = key == "rootfs"
    return MountPoint(
        key=key, volume=volume, path="/" if rootfs else props.get("mp", ""), kind=kind,
        size=size_to_bytes(props.get("size")),
        # the root disk is always in a backup; a volume mount point only with backup=1, a bind mount never
        backup=rootfs or (kind == "volume" and as_bool(props.get("backup"))),
        read_only=as_bool(props.get("ro")),
    )


def mount_points(raw: Raw) -> tuple[MountPoint, ...]:
    """The root disk and every ``mpN`` of a container config, in that order."""
    found = [mount_point(key, str(value)) for key, value in raw.items()
             if value and (key == "rootfs" or _MP_KEY.match(key))]
    return tuple(sorted(found, key=lambda mp: mp.index))


def ct_status(value: Any) -> str:
    """``running``/``stopped`` as is; anything else (e.g. ``unknown`` before RRD data) -> unknown."""
    text = str(value or "").lower()
    return text if text in _CT_STATUSES else "unknown"


def _ha(raw: Raw) -> tuple[bool, str | None]:
    ha = raw.get("ha")
    if ha is not None and isinstance(ha, Mapping):
        managed = as_bool(ha.get("managed"))
        return managed, as_opt_str(ha.get("state")) if managed else None
    hastate = as_opt_str(raw.get("hastate"))  # cluster/resources form
    return hastate is not None, hastate


def container_summary(raw: Raw, node: str | None = None) -> ContainerSummary:
    """A container from cluster/resources, nodes/{node}/lxc or status/current."""
    vmid = as_int(raw.get("vmid"))
    ha_managed, ha_state = _ha(raw)
    has_swap = "maxswap" in raw or "swap" in raw
    return ContainerSummary(
        vmid=vmid,
        node=str(raw.get("node") or node or ""),
        name=str(raw.get("name") or f"CT{vmid}"),
        status=ct_status(raw.get("status")),
        cpu=as_float(raw.get("cpu")),
        cpus=as_float(raw.get("cpus", raw.get("maxcpu"))),
        mem=as_int(raw.get("mem")),
        maxmem=as_int(raw.get("maxmem")),
        disk=as_int(raw.get("disk")),
        maxdisk=as_int(raw.get("maxdisk")),
        swap=as_int(raw.get("swap")) if has_swap else None,
        maxswap=as_int(raw.get("maxswap")) if has_swap else None,
        uptime=as_int(raw.get("uptime")),
        netin=as_int(raw.get("netin")),
        netout=as_int(raw.get("netout")),
        tags=split_list(raw.get("tags")),
        template=as_bool(raw.get("template")),
        lock=as_opt_str(raw.get("lock")),
        ha_managed=ha_managed,
        ha_state=ha_state,
        pool=as_opt_str(raw.get("pool")),
    )


def node(raw: Raw) -> Node:
    """A node from /nodes or a ``type == node`` cluster resource."""
    return Node(
        name=str(raw.get("node") or raw.get("name") or ""),
        status=str(raw.get("status") or "unknown"),
        cpu=as_float(raw.get("cpu")),
        maxcpu=as_int(raw.get("maxcpu")),
        mem=as_int(raw.get("mem")),
        maxmem=as_int(raw.get("maxmem")),
        disk=as_int(raw.get("disk")),
        maxdisk=as_int(raw.get("maxdisk")),
        uptime=as_int(raw.get("uptime")),
    )


def storage(raw: Raw, node: str | None = None) -> Storage:
    """A storage from nodes/{node}/storage."""
    return Storage(
        storage=str(raw.get("storage") or ""),
        type=str(raw.get("type") or raw.get("plugintype") or ""),
        content=split_list(raw.get("content")),
        active=as_bool(raw.get("active")),
        enabled=as_bool(raw.get("enabled", 1)),
        shared=as_bool(raw.get("shared")),
        total=as_int(raw.get("total")),
        used=as_int(raw.get("used")),
        avail=as_int(raw.get("avail")),
        node=as_opt_str(raw.get("node")) or node,
    )


def node_status(raw: Raw, node: str) -> NodeStatus:
    """GET /nodes/{node}/status (nested ``memory``, ``swap``, ``rootfs``, ``cpuinfo``, ``current-kernel``)."""
    memory, swap, rootfs = raw.get("memory") or {}, raw.get("swap") or {}, raw.get("rootfs") or {}
    cpuinfo, kernel = raw.get("cpuinfo") or {}, raw.get("current-kernel") or {}
    release = str(kernel.get("release") or "")
    if not release:  # before current-kernel existed: "Linux 6.8.12-4-pve #1 SMP ..."
        words = str(raw.get("kversion") or "").split()
        release = words[1] if len(words) > 1 else ""
    return NodeStatus(
        node=node,
        pveversion=str(raw.get("pveversion") or ""),
        kernel=release,
        cpu_model=str(cpuinfo.get("model") or ""),
        cpus=as_int(cpuinfo.get("cpus")),
        sockets=as_int(cpuinfo.get("sockets")),
        cpu=as_float(raw.get("cpu")),
        wait=as_float(raw["wait"]) if raw.get("wait") is not None else None,
        loadavg=tuple(as_float(value) for value in raw.get("loadavg") or ()),
        mem=as_int(memory.get("used")),
        maxmem=as_int(memory.get("total")),
        swap=as_int(swap.get("used")),
        maxswap=as_int(swap.get("total")),
        rootfs=as_int(rootfs.get("used")),
        maxrootfs=as_int(rootfs.get("total")),
        uptime=as_int(raw.get("uptime")),
        boot_mode=str((raw.get("boot-info") or {}).get("mode") or ""),
    )


def resource_storage(raw: Raw) -> Storage:
    """A ``type == storage`` cluster resource (disk/maxdisk, status ``available``)."""
    total, used = as_int(raw.get("maxdisk")), as_int(raw.get("disk"))
    return Storage(
        storage=str(raw.get("storage") or ""),
        type=str(raw.get("plugintype") or ""),
        content=split_list(raw.get("content")),
        active=raw.get("status") == "available",
        enabled=True,
        shared=as_bool(raw.get("shared")),
        total=total,
        used=used,
        avail=max(total - used, 0),
        node=as_opt_str(raw.get("node")),
    )


def cluster_snapshot(raws: Iterable[Raw], pinned_node: str | None = None) -> ClusterSnapshot:
    """Split one cluster/resources answer into containers (parsed lazily), nodes and storages."""
    containers, nodes, storages = [], [], []
    for raw in raws:
        kind = raw.get("type")
        if pinned_node and raw.get("node") != pinned_node:
            continue
        if kind == "lxc":
            containers.append(raw)
        elif kind == "node":
            nodes.append(node(raw))
        elif kind == "storage":
            storages.append(resource_storage(raw))
    briefs = [
        ContainerBrief(as_int(raw.get("vmid")), str(raw.get("node") or ""), ct_status(raw.get("status")),
                       as_opt_str(raw.get("lock")), as_bool(raw.get("template")), raw.get("name") or "",
                       raw.get("tags") or "")
        for raw in containers
    ]
    order = sorted(range(len(containers)), key=lambda i: briefs[i].vmid)
    nodes.sort(key=lambda n: n.name)
    storages.sort(key=lambda s: (s.node or "", s.storage))
    summaries = LazySummaries([containers[i] for i in order], [briefs[i] for i in order], container_summary)
    return ClusterSnapshot(summaries, tuple(nodes), tuple(storages))


def net_interface(index: int, value: str) -> NetInterface:
    """One ``netN`` property string."""
    props = parse_property_string(value, default_key="name")
    return NetInterface(
        index=index,
        name=props.get("name", f"eth{index}"),
        bridge=props.get("bridge"),
        ip=props.get("ip"),
        gw=props.get("gw"),
        ip6=props.get("ip6"),
        gw6=props.get("gw6"),
        hwaddr=props.get("hwaddr"),
        tag=as_opt_int(props.get("tag")),
        firewall=as_bool(props.get("firewall")),
        mtu=as_opt_int(props.get("mtu")),
        rate=as_float(props["rate"]) if "rate" in props else None,
        link_down=as_bool(props.get("link_down")),
        type=props.get("type", "veth"),
        host_managed=as_bool(props.get("host-managed")),
    )


def features(value: str | None) -> Features:
    """The ``features`` property string."""
    props = parse_property_string(value)
    return Features(
        nesting=as_bool(props.get("nesting")),
        keyctl=as_bool(props.get("keyctl")),
        fuse=as_bool(props.get("fuse")),
        mknod=as_bool(props.get("mknod")),
        force_rw_sys=as_bool(props.get("force_rw_sys")),
        mount=split_list(props.get("mount")),
    )


def container_config(raw: Raw, node: str, vmid: int) -> ContainerConfig:
    """GET .../lxc/{vmid}/config."""
    rootfs = parse_property_string(raw.get("rootfs"), default_key="volume")
    volume = rootfs.get("volume")
    nets = []
    for key, value in raw.items():
        match = _NET_KEY.match(key)
        if match and value:
            nets.append(net_interface(int(match.group(1)), value))
    nets.sort(key=lambda n: n.index)
    return ContainerConfig(
        vmid=vmid,
        node=node,
        hostname=str(raw.get("hostname") or f"CT{vmid}"),
        cores=as_opt_int(raw.get("cores")),
        memory=as_int(raw.get("memory"), 512),
        swap=as_int(raw.get("swap"), 512),
        rootfs_volume=volume,
        rootfs_storage=volume.split(":", 1)[0] if volume and ":" in volume else None,
        rootfs_size_gb=size_to_gib(rootfs.get("size")),
        nets=tuple(nets),
        features=features(raw.get("features")),
        unprivileged=as_bool(raw.get("unprivileged")),
        onboot=as_bool(raw.get("onboot")),
        protection=as_bool(raw.get("protection")),
        template=as_bool(raw.get("template")),
        ostype=as_opt_str(raw.get("ostype")),
        arch=str(raw.get("arch") or "amd64"),
        description=str(raw.get("description") or ""),
        tags=split_list(raw.get("tags")),
        nameserver=as_opt_str(raw.get("nameserver")),
        searchdomain=as_opt_str(raw.get("searchdomain")),
        cpulimit=as_float(raw.get("cpulimit")),
        lock=as_opt_str(raw.get("lock")),
        digest=as_opt_str(raw.get("digest")),
        entrypoint=as_opt_str(raw.get("entrypoint")),
        env_keys=env_keys(raw.get("env")),
        cmode=as_opt_str(raw.get("cmode")),
        mounts=mount_points(raw),
    )


def env_keys(value: Any) -> tuple[str, ...]:
    """The variable names of a PVE 9.1 ``env`` value (``KEY=val`` entries, NUL-separated)."""
    if not value:
        return ()
    return tuple(entry.split("=", 1)[0] for entry in str(value).split("\0") if "=" in entry)


def template_name(volid: str) -> str:
    """``local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`` -> ``debian-12-standard_12.7-1_amd64``."""
    filename = volid.split(":", 1)[-1].rsplit("/", 1)[-1]
    for suffix in (".tar.zst", ".tar.gz", ".tar.xz", ".tar.bz2", ".tgz", ".txz", ".tzst", ".tar"):
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return filename


def os_template(raw: Raw) -> OsTemplate:
    """One entry of storage content ``vztmpl``."""
    volid = str(raw.get("volid") or "")
    return OsTemplate(
        volid=volid,
        name=template_name(volid),
        storage=volid.split(":", 1)[0],
        format=str(raw.get("format") or ""),
        size=as_int(raw.get("size")),
        ctime=as_opt_int(raw.get("ctime")),
    )


def bridge(raw: Raw) -> Bridge:
    """One bridge from nodes/{node}/network."""
    return Bridge(
        iface=str(raw.get("iface") or ""),
        active=as_bool(raw.get("active")),
        cidr=as_opt_str(raw.get("cidr")),
        comments=str(raw.get("comments") or "").strip(),
        autostart=as_bool(raw.get("autostart")),
        vlan_aware=as_bool(raw.get("bridge_vlan_aware")),
    )


def parse_upid(upid: str) -> dict[str, str]:
    """Split ``UPID:node:pid:pstart:starttime:type:id:user:`` into its fields."""
    parts = upid.split(":")
    if len(parts) != 9 or parts[0] != "UPID" or not parts[1]:
        raise ValueError(f"not a Proxmox task id: {upid!r}")
    user, _, tokenid = parts[7].partition("!")
    return {
        "upid": upid,
        "node": parts[1],
        "starttime": str(int(parts[4], 16)) if parts[4] else "",
        "type": parts[5],
        "id": parts[6],
        "user": user,
        "tokenid": tokenid,
    }


def task(raw: Raw, upid: str) -> Task:
    """GET nodes/{node}/tasks/{upid}/status."""
    fallback = parse_upid(upid)
    status = str(raw.get("status") or "running")
    return Task(
        upid=str(raw.get("upid") or upid),
        node=str(raw.get("node") or fallback["node"]),
        type=str(raw.get("type") or fallback["type"]),
        id=str(raw.get("id") if raw.get("id") is not None else fallback["id"]),
        user=str(raw.get("user") or fallback["user"]).partition("!")[0],
        status=status,
        exitstatus=as_opt_str(raw.get("exitstatus")) if status == "stopped" else None,
        starttime=as_opt_int(raw.get("starttime")),
        tokenid=as_opt_str(raw.get("tokenid")) or fallback["tokenid"] or None,
    )


def task_log(raws: Iterable[Raw]) -> tuple[TaskLogLine, ...]:
    """GET nodes/{node}/tasks/{upid}/log."""
    return tuple(TaskLogLine(n=as_int(r.get("n")), text=str(r.get("t") or "")) for r in raws)


def rrd_data(raws: Iterable[Raw], timeframe: str, cf: str) -> RrdData:
    """GET nodes/{node}[/lxc/{vmid}]/rrddata: points sorted by time, each source as one column."""
    points = sorted((r for r in raws if isinstance(r, Mapping) and r.get("time") is not None),
                    key=lambda r: as_int(r.get("time")))
    times = tuple(as_int(r["time"]) for r in points)
    sources = sorted({key for r in points for key, value in r.items() if key != "time" and value is not None})
    series = tuple((name, tuple(None if r.get(name) is None else as_float(r[name]) for r in points))
                   for name in sources)
    step = min((b - a for a, b in zip(times, times[1:])), default=0)
    return RrdData(timeframe=timeframe, cf=cf, step=step, times=times, series=series)


def version(raw: Raw) -> ClusterVersion:
    """GET /version."""
    return ClusterVersion(
        version=str(raw.get("version") or ""),
        release=str(raw.get("release") or ""),
        repoid=str(raw.get("repoid") or ""),
    )


def container_interface(raw: Raw) -> ContainerInterface:
    """One entry of GET .../lxc/{vmid}/interfaces."""
    ipv4, ipv6, cidrs6 = [], [], []
    for addr in raw.get("ip-addresses") or ():
        ip = addr.get("ip-address")
        if not ip:
            continue
        if addr.get("ip-address-type") == "inet6":
            ipv6.append(str(ip))
            if not str(ip).lower().startswith("fe80:") and str(ip) != "::1":
                cidrs6.append(f"{ip}/{as_int(addr.get('prefix'), 64)}")
        else:
            ipv4.append(str(ip))
    inet = as_opt_str(raw.get("inet"))
    if inet and not ipv4:
        ipv4.append(inet.split("/", 1)[0])
    return ContainerInterface(
        name=str(raw.get("name") or ""),
        hwaddr=as_opt_str(raw.get("hwaddr") or raw.get("hardware-address")),
        inet=inet,
        inet6=as_opt_str(raw.get("inet6")),
        ipv4=tuple(ipv4),
        ipv6=tuple(ipv6),
        ipv6_cidrs=tuple(cidrs6),
    )


def snapshot(raw: Raw) -> Snapshot:
    """One entry of GET nodes/{node}/lxc/{vmid}/snapshot (``current`` is the present state)."""
    name = str(raw.get("name") or "")
    return Snapshot(
        name=name,
        description="" if name == "current" else str(raw.get("description") or "").strip(),
        snaptime=as_opt_int(raw.get("snaptime")),
        parent=as_opt_str(raw.get("parent")),
        current=name == "current",
        running=as_bool(raw.get("running")),
        snapstate=as_opt_str(raw.get("snapstate")),
    )


_BACKUP_VMID = re.compile(r"^(?:backup/)?(?:vzdump-(?:lxc|qemu|openvz)-(\d+)-|ct/(\d+)/|vm/(\d+)/)")


def backup_volume(raw: Raw, node: str | None = None) -> BackupVolume:
    """One entry of GET nodes/{node}/storage/{storage}/content?content=backup.

    ``vmid`` comes from the entry, else from the volume name (``vzdump-lxc-<vmid>-…``, ``ct/<vmid>/…``).
    """
    volid = str(raw.get("volid") or "")
    vmid = as_opt_int(raw.get("vmid"))
    if vmid is None and (match := _BACKUP_VMID.match(volid.partition(":")[2])):
        vmid = int(next(group for group in match.groups() if group))
    verification = raw.get("verification")
    state = verification.get("state") if isinstance(verification, dict) else None
    return BackupVolume(
        volid=volid,
        storage=volid.partition(":")[0],
        vmid=vmid,
        ctime=as_opt_int(raw.get("ctime")),
        size=as_int(raw.get("size")),
        format=str(raw.get("format") or ""),
        notes=str(raw.get("notes") or ""),
        protected=as_bool(raw.get("protected")),
        verification=str(state) if state else None,
        encrypted=bool(raw.get("encrypted")),
        node=node,
    )


def _vmid_list(value: Any) -> tuple[int, ...]:
    return tuple(int(part) for part in split_list(value) if part.isdigit())


def backup_job(raw: Raw) -> BackupJob:
    """One entry of GET /cluster/backup."""
    return BackupJob(
        id=str(raw.get("id") or ""),
        schedule=str(raw.get("schedule") or raw.get("starttime") or ""),
        enabled=as_bool(raw.get("enabled", 1)),
        storage=as_opt_str(raw.get("storage")),
        all=as_bool(raw.get("all")),
        vmids=_vmid_list(raw.get("vmid")),
        exclude=_vmid_list(raw.get("exclude")),
        pool=as_opt_str(raw.get("pool")),
        node=as_opt_str(raw.get("node")),
        mode=str(raw.get("mode") or "snapshot"),
        compress=as_opt_str(raw.get("compress")),
        comment=str(raw.get("comment") or ""),
        next_run=as_opt_int(raw.get("next-run")),
        notes_template=as_opt_str(raw.get("notes-template")),
    )


def migrate_preconditions(raw: Raw) -> MigratePreconditions:
    """GET nodes/{node}/lxc/{vmid}/migrate (PVE 9.0+): ``not-allowed-nodes`` is keyed by node, each with its
    ``blocking-ha-resources`` (pve-container API2/LXC.pm ``migrate_vm_precondition``)."""
    blocked = {}
    for node, info in (raw.get("not-allowed-nodes") or {}).items():
        resources = (info or {}).get("blocking-ha-resources") or () if isinstance(info, Mapping) else ()
        blocked[str(node)] = tuple(f"{r.get('sid')} ({r.get('cause')})" for r in resources if isinstance(r, Mapping))
    return MigratePreconditions(
        running=as_bool(raw.get("running")),
        allowed=tuple(str(n) for n in raw.get("allowed-nodes") or ()),
        blocked=blocked,
        dependent=tuple(str(r) for r in raw.get("dependent-ha-resources") or ()),
    )
