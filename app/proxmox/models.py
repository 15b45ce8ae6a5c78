"""Typed, immutable views of what Proxmox returns, plus the spec for creating a container.

Values here are already normalised (see ``parse.py``): ints are ints, flags are bools,
tags are tuples. Cached results are shared between threads, so everything is frozen.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, overload

from .wire import format_property_string

GIB = 1024**3


def _percent(used: float | None, total: float | None) -> float:
    if not used or not total:
        return 0.0
    return round(100.0 * used / total, 1)


@dataclass(frozen=True, slots=True)
class ContainerSummary:
    """One container as shown in lists (from cluster/resources or status/current)."""

    vmid: int
    node: str
    name: str
    status: str  # "running", "stopped" or "unknown"
    cpu: float = 0.0  # fraction of the container's CPUs, 0..1
    cpus: float = 0.0
    mem: int = 0
    maxmem: int = 0
    disk: int = 0
    maxdisk: int = 0
    swap: int | None = None  # not reported by cluster/resources
    maxswap: int | None = None
    uptime: int = 0
    netin: int = 0
    netout: int = 0
    tags: tuple[str, ...] = ()
    template: bool = False
    lock: str | None = None
    ha_managed: bool = False
    ha_state: str | None = None
    pool: str | None = None

    @property
    def is_running(self) -> bool:
        """True when Proxmox reports the container running."""
        return self.status == "running"

    @property
    def cpu_percent(self) -> float:
        """CPU use as a percentage of the container's own CPUs."""
        return round(100.0 * self.cpu, 1)

    @property
    def mem_percent(self) -> float:
        """Memory use as a percentage of its limit."""
        return _percent(self.mem, self.maxmem)

    @property
    def disk_percent(self) -> float:
        """Root disk use as a percentage of its size."""
        return _percent(self.disk, self.maxdisk)

    @property
    def swap_percent(self) -> float | None:
        """Swap use as a percentage, or None when Proxmox did not report swap."""
        if self.swap is None or self.maxswap is None:
            return None
        return _percent(self.swap, self.maxswap)


@dataclass(frozen=True, slots=True)
class NetInterface:
    """One ``netN`` entry of a container config."""

    index: int
    name: str
    bridge: str | None = None
    ip: str | None = None  # "dhcp", "manual" or CIDR
    gw: str | None = None
    ip6: str | None = None
    gw6: str | None = None
    hwaddr: str | None = None
    tag: int | None = None
    firewall: bool = False
    mtu: int | None = None
    rate: float | None = None
    link_down: bool = False
    type: str = "veth"
    host_managed: bool = False  # PVE 9.1: the host runs DHCP in the guest's network namespace


@dataclass(frozen=True, slots=True)
class Features:
    """The ``features`` property string of a container config."""

    nesting: bool = False
    keyctl: bool = False
    fuse: bool = False
    mknod: bool = False
    force_rw_sys: bool = False
    mount: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MountPoint:
    """The root disk (``rootfs``) or one mount point (``mpN``) of a container config.

    ``kind`` is Proxmox's ``classify_mountpoint``: ``volume`` (a storage volume, ``local-lvm:vm-101-disk-1``),
    ``bind`` (a host directory, ``/srv/data``) or ``device`` (a host block device under ``/dev/``); only a
    volume has a storage and a size Proxmox can grow.
    """

    key: str  # "rootfs" or "mpN"
    volume: str
    path: str  # where the container sees it ("/" for the root disk)
    kind: str = "volume"
    size: int | None = None  # bytes, as the config's ``size=`` says
    backup: bool = False
    read_only: bool = False

    @property
    def storage(self) -> str | None:
        """The storage of a volume (``local-lvm``), None for a bind or device mount."""
        return self.volume.split(":", 1)[0] if self.kind == "volume" and ":" in self.volume else None

    @property
    def size_gib(self) -> float | None:
        """The size in GiB, None when the config does not say."""
        return self.size / GIB if self.size is not None else None

    @property
    def index(self) -> int:
        """The N of ``mpN`` (-1 for the root disk), to list the root disk first and mount points in order."""
        return int(self.key[2:]) if self.key.startswith("mp") else -1


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """A container's configuration (GET .../lxc/{vmid}/config)."""

    vmid: int
    node: str
    hostname: str
    cores: int | None  # None: may use all host cores
    memory: int  # MiB
    swap: int  # MiB
    rootfs_volume: str | None
    rootfs_storage: str | None
    rootfs_size_gb: float | None
    nets: tuple[NetInterface, ...] = ()
    features: Features = field(default_factory=Features)
    unprivileged: bool = False
    onboot: bool = False
    protection: bool = False
    template: bool = False
    ostype: str | None = None
    arch: str = "amd64"
    description: str = ""
    tags: tuple[str, ...] = ()
    nameserver: str | None = None
    searchdomain: str | None = None
    cpulimit: float = 0.0
    lock: str | None = None
    digest: str | None = None
    entrypoint: str | None = None  # PVE 9.1 application (OCI) containers; None: /sbin/init
    env_keys: tuple[str, ...] = ()  # names only: the values may be secrets
    cmode: str | None = None
    mounts: tuple[MountPoint, ...] = ()  # the root disk first, then mp0, mp1…

    @property
    def fingerprint(self) -> str:
        """The guest's MAC addresses, lower-cased, sorted, ``;``-joined ("" without NICs).

        Proxmox draws a random MAC (``PVE::Tools::random_ether_addr``) for each NIC a create
        or clone adds and keeps it across rename, migration, restart and restore, so two guests
        that used one VMID in turn have different fingerprints.
        """
        return ";".join(sorted(net.hwaddr.lower() for net in self.nets if net.hwaddr))

    @property
    def is_application(self) -> bool:
        """True for a PVE 9.1 application container (an OCI image with its own entrypoint)."""
        return bool(self.entrypoint) and self.entrypoint != "/sbin/init"


@dataclass(frozen=True, slots=True)
class Node:
    """A cluster node."""

    name: str
    status: str  # "online", "offline" or "unknown"
    cpu: float = 0.0  # fraction, 0..1
    maxcpu: int = 0
    mem: int = 0
    maxmem: int = 0
    disk: int = 0
    maxdisk: int = 0
    uptime: int = 0

    @property
    def is_online(self) -> bool:
        """True when the node is online."""
        return self.status == "online"

    @property
    def cpu_percent(self) -> float:
        """CPU use as a percentage of all host CPUs."""
        return round(100.0 * self.cpu, 1)

    @property
    def mem_percent(self) -> float:
        """Memory use as a percentage of host memory."""
        return _percent(self.mem, self.maxmem)

    @property
    def free_mem(self) -> int:
        """Unused memory in bytes."""
        return max(self.maxmem - self.mem, 0)

    @property
    def free_cpus(self) -> float:
        """Idle CPUs (maxcpu scaled by idle fraction)."""
        return round(self.maxcpu * (1.0 - self.cpu), 2)


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node's own report (GET /nodes/{node}/status): versions, load, memory, swap, root disk.

    Sizes in bytes, ``cpu`` and ``wait`` (IO delay) as fractions 0..1, ``uptime`` in seconds.
    """

    node: str
    pveversion: str = ""  # "pve-manager/9.1.1/42db4a6cf33dac83"
    kernel: str = ""  # release, "6.17.2-1-pve"
    cpu_model: str = ""
    cpus: int = 0
    sockets: int = 0
    cpu: float = 0.0
    wait: float | None = None
    loadavg: tuple[float, ...] = ()  # 1, 5 and 15 minutes
    mem: int = 0
    maxmem: int = 0
    swap: int = 0
    maxswap: int = 0
    rootfs: int = 0
    maxrootfs: int = 0
    uptime: int = 0
    boot_mode: str = ""  # "efi" or "legacy-bios"

    @property
    def version(self) -> str:
        """The pve-manager version alone ("9.1.1"), or "" when Proxmox did not say."""
        parts = self.pveversion.split("/")
        return parts[1] if len(parts) > 1 else self.pveversion


@dataclass(frozen=True, slots=True)
class Storage:
    """A storage as seen from one node."""

    storage: str
    type: str
    content: tuple[str, ...] = ()
    active: bool = False
    enabled: bool = True
    shared: bool = False
    total: int = 0
    used: int = 0
    avail: int = 0
    node: str | None = None

    @property
    def used_percent(self) -> float:
        """Used space as a percentage of total."""
        return _percent(self.used, self.total)

    def holds(self, content: str) -> bool:
        """True if this storage accepts the content type (``rootdir``, ``vztmpl``...)."""
        return content in self.content


@dataclass(frozen=True, slots=True)
class OsTemplate:
    """A container template volume (``vztmpl`` content)."""

    volid: str  # e.g. "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
    name: str  # e.g. "debian-12-standard_12.7-1_amd64"
    storage: str
    format: str = ""
    size: int = 0
    ctime: int | None = None


@dataclass(frozen=True, slots=True)
class Bridge:
    """A Linux/OVS bridge containers can attach to."""

    iface: str
    active: bool = False
    cidr: str | None = None
    comments: str = ""
    autostart: bool = False
    vlan_aware: bool = False


@dataclass(frozen=True, slots=True)
class Task:
    """A Proxmox task (worker) and how it ended."""

    upid: str
    node: str
    type: str
    id: str
    user: str
    status: str  # "running" or "stopped"
    exitstatus: str | None = None
    starttime: int | None = None
    tokenid: str | None = None

    @property
    def running(self) -> bool:
        """True while the task is still running."""
        return self.status == "running"

    @property
    def ok(self) -> bool:
        """True when the task finished with OK or only warnings."""
        return (
            self.status == "stopped"
            and self.exitstatus is not None
            and (self.exitstatus == "OK" or self.exitstatus.startswith("WARNINGS"))
        )

    @property
    def failed(self) -> bool:
        """True when the task finished with an error."""
        return self.status == "stopped" and not self.ok


@dataclass(frozen=True, slots=True)
class TaskLogLine:
    """One line of a task log."""

    n: int
    text: str


@dataclass(frozen=True, slots=True)
class RrdData:
    """A guest's or node's RRD statistics for one time frame and consolidation (GET .../rrddata).

    ``times``: Unix seconds, oldest first, each the end of the interval its point consolidates; ``step``: seconds
    between points (0 when fewer than two). ``series``: (source, one value per time) for each source Proxmox sent
    (cpu, maxcpu, mem, netin, pressurecpusome…), None where a point lacks it (a stopped guest, a gap). Units as
    Proxmox sends them: cpu a fraction of the ``maxcpu`` cores, sizes in bytes, net and disk IO in bytes per
    second, pressure in percent.
    """

    timeframe: str
    cf: str
    step: int
    times: tuple[int, ...] = ()
    series: tuple[tuple[str, tuple[float | None, ...]], ...] = ()

    def values(self, source: str) -> tuple[float | None, ...] | None:
        """The values of ``source``, or None when no point has it."""
        return next((values for name, values in self.series if name == source), None)


@dataclass(frozen=True, slots=True)
class ClusterVersion:
    """The pve-manager version answering the API."""

    version: str
    release: str
    repoid: str = ""

    def at_least(self, major: int, minor: int = 0) -> bool:
        """Whether this release is ``major.minor`` or later (an unreadable release counts as older)."""
        parts = re.findall(r"\d+", self.release or self.version)[:2]
        return len(parts) == 2 and (int(parts[0]), int(parts[1])) >= (major, minor)


@dataclass(frozen=True, slots=True)
class ContainerInterface:
    """A network interface inside a running container."""

    name: str
    hwaddr: str | None = None
    inet: str | None = None  # first IPv4 CIDR
    inet6: str | None = None
    ipv4: tuple[str, ...] = ()  # plain addresses
    ipv6: tuple[str, ...] = ()
    ipv6_cidrs: tuple[str, ...] = ()  # global (not link-local) IPv6 addresses with their prefix length


@dataclass(frozen=True, slots=True)
class GuestNetwork:
    """One NIC of a container as a person reads it: how each family is configured and the address it has now."""

    name: str
    bridge: str | None
    mode: str  # IPv4: "static", "dhcp", "manual" (none configured)
    address: str | None  # IPv4 CIDR: configured, or the DHCP lease Proxmox reports
    gateway: str | None
    mode6: str  # IPv6: "static", "dhcp", "auto" (SLAAC), "manual" (none configured)
    address6: str | None  # IPv6 CIDR: configured, or what DHCPv6/SLAAC gave (from /interfaces)
    gateway6: str | None
    hwaddr: str | None
    tag: int | None = None
    firewall: bool = False
    link_down: bool = False
    host_managed: bool = False


def _mode(value: str | None, dynamic: tuple[str, ...]) -> str:
    if value in dynamic:
        return value
    return "manual" if value in (None, "", "manual") else "static"


def guest_networks(config: ContainerConfig, interfaces: Sequence[ContainerInterface] = ()) -> list[GuestNetwork]:
    """The container's NICs with their current addresses (PVE config ``netN`` + GET .../interfaces).

    Addresses are never invented: DHCP and SLAAC ones come only from what the running guest reports
    (``/interfaces``), a static one from the config, and a NIC configured ``manual`` has none.
    """
    by_name = {iface.name: iface for iface in interfaces}
    networks = []
    for net in config.nets:
        mode, mode6 = _mode(net.ip, ("dhcp",)), _mode(net.ip6, ("dhcp", "auto"))
        iface = by_name.get(net.name)
        address = net.ip if mode == "static" else (iface.inet if iface and mode == "dhcp" else None)
        address6 = net.ip6 if mode6 == "static" else (
            iface.ipv6_cidrs[0] if iface and iface.ipv6_cidrs and mode6 in ("dhcp", "auto") else None)
        networks.append(GuestNetwork(net.name, net.bridge, mode, address, net.gw, mode6, address6, net.gw6,
                                     net.hwaddr, net.tag, net.firewall, net.link_down, net.host_managed))
    return networks


def needs_interfaces(config: ContainerConfig) -> bool:
    """True when some address is dynamic (DHCP, SLAAC) and only the running guest can tell it."""
    return any(net.ip == "dhcp" or net.ip6 in ("dhcp", "auto") for net in config.nets)


def primary_address(networks: Sequence[GuestNetwork]) -> str | None:
    """The address to reach the container at: the first IPv4, else the first IPv6 (no prefix length)."""
    for attr in ("address", "address6"):
        for net in networks:
            value = getattr(net, attr)
            if value:
                return value.split("/", 1)[0]
    return None


class ContainerBrief(NamedTuple):
    """What a list needs to count and filter a container, without its full summary.

    A named tuple rather than a frozen dataclass: a snapshot builds one per container,
    and a tuple is several times cheaper to build.
    """

    vmid: int
    node: str
    status: str
    lock: str | None
    template: bool
    name: str = ""
    tags: str = ""  # as Proxmox sends them (``a;b``): only searched, never shown


class LazySummaries(Sequence[ContainerSummary]):
    """Container summaries parsed on first access, in vmid order.

    A snapshot of a thousand containers is mostly counted and filtered (``briefs``),
    and only a page of it shown; parsing every summary up front was a fifth of a
    dashboard render. Read-only: concurrent first accesses parse the same value twice.
    """

    __slots__ = ("briefs", "_raws", "_parse", "_parsed")

    def __init__(self, raws: Sequence[Any], briefs: Sequence[ContainerBrief],
                 parse: Callable[[Any], ContainerSummary]) -> None:
        self.briefs: tuple[ContainerBrief, ...] = tuple(briefs)
        self._raws = tuple(raws)
        self._parse = parse
        self._parsed: list[ContainerSummary | None] = [None] * len(self._raws)

    def __len__(self) -> int:
        return len(self._raws)

    @overload
    def __getitem__(self, index: int) -> ContainerSummary: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[ContainerSummary, ...]: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        summary = self._parsed[index]
        if summary is None:
            summary = self._parsed[index] = self._parse(self._raws[index])
        return summary

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(self.briefs)


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """Containers, nodes and storages from ONE GET /cluster/resources call."""

    containers: Sequence[ContainerSummary]
    nodes: tuple[Node, ...]
    storages: tuple[Storage, ...] = ()

    @property
    def briefs(self) -> tuple[ContainerBrief, ...]:
        """Every container's vmid, node, status, lock and template flag (cheap)."""
        if isinstance(self.containers, LazySummaries):
            return self.containers.briefs
        return tuple(ContainerBrief(ct.vmid, ct.node, ct.status, ct.lock, ct.template, ct.name, ";".join(ct.tags))
                     for ct in self.containers)

    @property
    def offline_nodes(self) -> frozenset[str]:
        """Nodes Proxmox lists as not online (``offline`` or ``unknown``)."""
        return frozenset(n.name for n in self.nodes if not n.is_online)

    @property
    def running_count(self) -> int:
        """Number of running containers."""
        return sum(1 for ct in self.briefs if ct.status == "running")

    @property
    def maxcpu(self) -> int:
        """CPUs of all online nodes."""
        return sum(n.maxcpu for n in self.nodes if n.is_online)

    @property
    def cpu_percent(self) -> float:
        """Cluster CPU use, weighted by each online node's CPU count."""
        busy = sum(n.cpu * n.maxcpu for n in self.nodes if n.is_online)
        return _percent(busy, self.maxcpu)

    @property
    def mem(self) -> int:
        """Memory used on online nodes, bytes."""
        return sum(n.mem for n in self.nodes if n.is_online)

    @property
    def maxmem(self) -> int:
        """Memory of online nodes, bytes."""
        return sum(n.maxmem for n in self.nodes if n.is_online)

    @property
    def mem_percent(self) -> float:
        """Cluster memory use as a percentage."""
        return _percent(self.mem, self.maxmem)


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """What to create: turned into POST /nodes/{node}/lxc parameters by ``to_params``."""

    node: str
    vmid: int
    ostemplate: str
    hostname: str
    cores: int = 1
    memory: int = 512  # MiB
    swap: int = 512  # MiB
    storage: str = "local-lvm"
    disk_gb: int = 8
    bridge: str = "vmbr0"
    ip: str = "dhcp"  # "dhcp" or CIDR like 10.0.0.5/24
    gateway: str | None = None
    nameserver: str | None = None
    vlan_tag: int | None = None
    firewall: bool = False
    nesting: bool = False
    keyctl: bool = False
    fuse: bool = False
    unprivileged: bool = True
    password: str | None = field(default=None, repr=False)
    ssh_public_keys: str | None = None
    tags: tuple[str, ...] = ()
    onboot: bool = False
    start: bool = False
    description: str | None = None
    pool: str | None = None

    def to_params(self) -> dict[str, object]:
        """Proxmox parameters; booleans stay Python bools (the client sends them as 1/0)."""
        net0: dict[str, object] = {"name": "eth0", "bridge": self.bridge, "ip": self.ip}
        if self.gateway and self.ip not in ("dhcp", "manual"):
            net0["gw"] = self.gateway
        if self.vlan_tag is not None:
            net0["tag"] = self.vlan_tag
        if self.firewall:
            net0["firewall"] = True
        features = {
            key: True for key in ("nesting", "keyctl", "fuse") if getattr(self, key)
        }
        return {
            "vmid": self.vmid,
            "ostemplate": self.ostemplate,
            "hostname": self.hostname,
            "cores": self.cores,
            "memory": self.memory,
            "swap": self.swap,
            "rootfs": f"{self.storage}:{self.disk_gb}",
            "net0": format_property_string(net0),
            "nameserver": self.nameserver,
            "features": format_property_string(features) if features else None,
            "unprivileged": self.unprivileged,
            "password": self.password,
            "ssh-public-keys": self.ssh_public_keys,
            "tags": ";".join(self.tags) if self.tags else None,
            "onboot": self.onboot,
            "start": self.start,
            "description": self.description,
            "pool": self.pool,
        }


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One snapshot of a container, or (``current``) the container's present state.

    ``parent`` names the snapshot this one was taken on top of; following parents gives the tree.
    ``snapstate`` is ``prepare`` or ``delete`` while a snapshot task is working on it.
    """

    name: str
    description: str = ""
    snaptime: int | None = None  # epoch seconds
    parent: str | None = None
    current: bool = False
    running: bool = False  # only for ``current``
    snapstate: str | None = None


@dataclass(frozen=True, slots=True)
class BackupVolume:
    """A backup (``vzdump``) volume of a guest on a storage (GET …/storage/{storage}/content?content=backup)."""

    volid: str  # "local:backup/vzdump-lxc-101-2026_11_30-01_00_00.tar.zst", "pbs:backup/ct/101/2026-11-30T01:00:00Z"
    storage: str
    vmid: int | None
    ctime: int | None  # epoch seconds
    size: int = 0  # bytes
    format: str = ""  # "tar.zst", "pbs-ct", …
    notes: str = ""
    protected: bool = False
    verification: str | None = None  # "ok" or "failed" where the storage verifies (PBS), else None
    encrypted: bool = False
    node: str | None = None  # the node the storage was read on (None only for unknown)

    @property
    def subtype_ct(self) -> bool:
        """True for a container backup (``vzdump-lxc-…`` or PBS ``ct/…``), False for a VM's."""
        name = self.volid.partition(":")[2]
        return "vzdump-lxc-" in name or name.startswith("backup/ct/")


@dataclass(frozen=True, slots=True)
class BackupJob:
    """A scheduled backup job from GET /cluster/backup (pve-manager ``API2/Backup.pm``)."""

    id: str
    schedule: str
    enabled: bool = True
    storage: str | None = None
    all: bool = False
    vmids: tuple[int, ...] = ()
    exclude: tuple[int, ...] = ()
    pool: str | None = None
    node: str | None = None  # only guests on this node, when set
    mode: str = "snapshot"
    compress: str | None = None
    comment: str = ""
    next_run: int | None = None  # epoch seconds
    notes_template: str | None = None

    def selects(self, vmid: int, node: str | None, pool: str | None) -> bool:
        """Whether this job backs up the guest (whatever ``enabled`` says).

        Follows ``PVE::VZDump::get_included_guests``: ``all`` minus ``exclude``, else the listed
        VMIDs, else the pool's members; a job with ``node`` set only takes guests on that node.
        """
        if self.node and node and self.node != node:
            return False
        if self.all:
            return vmid not in self.exclude
        if self.vmids:
            return vmid in self.vmids
        return bool(self.pool) and pool == self.pool


@dataclass(frozen=True, slots=True)
class BackupIndex:
    """The newest backup of every guest on every backup storage of the cluster, from one sweep.

    ``entries`` maps a storage key (``"<storage>"`` for a shared storage, ``"<storage>@<node>"`` for a
    node-local one) to its backups as ``(vmid, ctime)`` pairs. A storage that could not be read this
    time is listed in ``failed`` and keeps the entries of the previous sweep.
    """

    entries: dict[str, tuple[tuple[int, int], ...]]
    loaded_at: float  # epoch seconds
    failed: tuple[str, ...] = ()
    newest: dict[int, int] = field(default_factory=dict)  # vmid -> ctime of its newest backup
    count: dict[int, int] = field(default_factory=dict)  # vmid -> number of backups

    @classmethod
    def build(cls, entries: dict[str, tuple[tuple[int, int], ...]], loaded_at: float,
              failed: tuple[str, ...] = ()) -> BackupIndex:
        """An index with ``newest`` and ``count`` worked out from ``entries``."""
        newest: dict[int, int] = {}
        count: dict[int, int] = {}
        for pairs in entries.values():
            for vmid, ctime in pairs:
                count[vmid] = count.get(vmid, 0) + 1
                if ctime > newest.get(vmid, -1):
                    newest[vmid] = ctime
        return cls(entries=entries, loaded_at=loaded_at, failed=failed, newest=newest, count=count)

    def newest_of(self, vmid: int) -> int | None:
        """Epoch seconds of the guest's newest backup anywhere, or None when it has none."""
        return self.newest.get(vmid)


@dataclass(frozen=True, slots=True)
class MigratePreconditions:
    """What PVE 9.x says before a container migrates (GET nodes/{node}/lxc/{vmid}/migrate).

    ``blocked`` maps a node the guest may not go to, to the HA resources blocking it (``sid (cause)``);
    ``dependent`` are HA resources that would move along (positive resource affinity).
    """

    running: bool
    allowed: tuple[str, ...] = ()
    blocked: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    dependent: tuple[str, ...] = ()
