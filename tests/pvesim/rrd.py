"""RRD statistics: ``GET /nodes/{node}/rrddata``, ``/nodes/{node}/lxc/{vmid}/rrddata`` and their PNG twins ``rrd``.

Contract: one answer is computed from the cluster's current state and the request's time alone (no cache, nothing
kept between requests); the same container or node, frame, ``cf`` and point time always give the same point.

What real Proxmox does, and where it is written:

- Handlers: pve-manager ``PVE/API2/Nodes.pm`` (``rrd``/``rrddata``) and pve-container ``src/PVE/API2/LXC.pm``
  (``rrd``/``rrddata``) call pve-cluster ``src/PVE/RRD.pm`` on ``pve2-node/<node>`` / ``pve2-vm/<vmid>`` (8.x,
  ``stable-bookworm``) or ``pve-node-9.0/<node>`` / ``pve-vm-9.0/<vmid>`` (9.x). Neither handler has ``proxyto``
  and neither reads the guest's config: every node holds every guest's RRD file, a vmid without one fails inside
  ``RRDs::fetch`` (via rrdcached: 500 ``RRD error: rrdcached: rrd_fetch_r failed: opening '<file>': No such file
  or directory``, rrdtool ``rrd_client.c``/``rrd_daemon.c``).
- Frames (``create_rrd_data`` ``$setup``, step in seconds and point count): 8.4 every frame 70 points, hour 60 s,
  day 30 min, week 3 h, month 12 h, year 1 week (pmxcfs ``status.c`` RRAs ``1:70 30:70 180:70 720:70 10080:70``);
  9.x hour 60 x 60 s, day 1440 x 60 s, week 336 x 30 min, month 1440 x 30 min, year 1440 x 6 h, and for nodes
  only ``decade`` 570 x 1 week (RRAs ``1:1440 30:1440 360:1440 10080:570``; pve-cluster af3f945, in 9.0.7).
- Point times: ``ctime = step * int(now / step)``, fetch from ``ctime - step * count`` to ``ctime - 1``; RRDs.xs
  returns rows from ``start + step`` to the end rounded up, so the points are ``ctime - (count-1)*step .. ctime``,
  each the consolidation of the interval ending at its time. Undefined values are left out of a point
  (``$get_rrd_data``); 9.x drops a newest point left with only ``time`` (pve-cluster 6126f5d, fix #6615), which
  the simulator never has: its newest interval is always written.
- Sources (pmxcfs ``status.c`` ``rrd_def_vm``/``rrd_def_node``; pve-manager ``PVE/Service/pvestatd.pm``):
  guests maxcpu cpu maxmem mem maxdisk disk netin netout diskread diskwrite, 9.x adds memhost (never set for
  containers: pvestatd sends ``undef``) and pressure{cpu,io,memory}{some,full} (avg10, percent). Nodes loadavg
  maxcpu cpu iowait memtotal memused swaptotal swapused roottotal rootused netin netout, 9.x adds memavailable
  (``memtotal - memused``, pve-common ``read_meminfo``), arcsize (0 without ZFS) and pressure cpusome, iosome,
  iofull, memorysome, memoryfull (no cpufull for nodes). A stopped guest sends only maxcpu, maxmem, maxdisk and
  disk (0); the rest is unknown. netin/netout/diskread/diskwrite are DERIVE: bytes per second.
- Consolidation: CDPs of 1-minute PDPs with xff 0.5 (unknown when more than half of the interval is unknown);
  where a frame's step is one PDP (8.4 hour, 9.x hour and day) MAX equals AVERAGE.

The simulated history: a running container ran since it started (``started_at``); a stopped one ran until its
last successful ``vzstop``/``vzshutdown`` task, from its ``vzstart`` before that (else from its node's boot), or
never. Values follow the live figures of ``state.Container.metrics``: the same 94 s wave averaged over each
interval, scaled by a slow, seeded daily swing and per-point noise, so the newest point stays inside the range
the live value moves in. Nodes sum their running containers' mean load the same way.
"""
from __future__ import annotations

import math
import time

from .schema import split_list
from .state import Container, GiB, MiB, PVEError

RRD_DIR = "/var/lib/rrdcached/db"

# (step seconds, points) per timeframe: pve-cluster RRD.pm create_rrd_data $setup
FRAMES = {
    "8.4": {"hour": (60, 70), "day": (1800, 70), "week": (10800, 70), "month": (43200, 70),
            "year": (604800, 70)},
    "9.1": {"hour": (60, 60), "day": (60, 1440), "week": (1800, 336), "month": (1800, 1440),
            "year": (21600, 1440), "decade": (604800, 570)},
}
PDP_STEP = 60  # pmxcfs creates every RRD file with a 60 s step

VM_SOURCES = {
    "8.4": ("maxcpu", "cpu", "maxmem", "mem", "maxdisk", "disk", "netin", "netout", "diskread", "diskwrite"),
}
VM_SOURCES["9.1"] = VM_SOURCES["8.4"] + ("memhost", "pressurecpusome", "pressurecpufull", "pressureiosome",
                                         "pressureiofull", "pressurememorysome", "pressurememoryfull")
NODE_SOURCES = {
    "8.4": ("loadavg", "maxcpu", "cpu", "iowait", "memtotal", "memused", "swaptotal", "swapused", "roottotal",
            "rootused", "netin", "netout"),
}
NODE_SOURCES["9.1"] = NODE_SOURCES["8.4"] + ("memavailable", "arcsize", "pressurecpusome", "pressureiosome",
                                             "pressureiofull", "pressurememorysome", "pressurememoryfull")

# Container.metrics: wave = 0.5 + 0.5 * sin(t / 15 + phase), a period of about 94 s
WAVE_PERIOD = 15.0
DAY = 86400.0
STOP_TASKS = ("vzstop", "vzshutdown")
START_TASKS = ("vzstart", "vzreboot")


def _num(x: float):
    """JSON number as Perl prints an NV: integral values without a fraction."""
    i = int(x)
    return i if i == x else x


def _bits(seed: int, t: int) -> int:
    """32 deterministic bits for the point at ``t`` (one integer hash round; four 8-bit noises)."""
    h = ((seed * 0x9E3779B1) ^ (t * 0x85EBCA6B)) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x2C1B3C6D) & 0xFFFFFFFF
    return h ^ (h >> 12)


def _wave_avg(a: float, b: float, phase: float) -> float:
    """Mean of 0.5 + 0.5 sin(t/15 + phase) over [a, b]."""
    if b <= a:
        return 0.5
    w = WAVE_PERIOD
    return 0.5 + 0.5 * w * (math.cos(a / w + phase) - math.cos(b / w + phase)) / (b - a)


def _swing(t: float, phase: float) -> float:
    """The slow daily load swing, -1..1."""
    return math.sin(2 * math.pi * t / DAY + phase)


class Rrd:
    """The handlers; ``register`` adds them to the API's route table."""

    def __init__(self, api):
        self.api = api
        self.sim = api.sim
        self.cluster = api.cluster

    def register(self, routes: dict) -> None:
        routes[("GET", "/nodes/{node}/rrddata")] = self.node_rrddata
        routes[("GET", "/nodes/{node}/rrd")] = self.node_rrd
        routes[("GET", "/nodes/{node}/lxc/{vmid}/rrddata")] = self.lxc_rrddata
        routes[("GET", "/nodes/{node}/lxc/{vmid}/rrd")] = self.lxc_rrd

    # --- names and errors ------------------------------------------------------------------------
    @property
    def _release(self) -> str:
        return "8.4" if self.sim.pve_version == "8.4" else "9.1"

    def _rrd_file(self, kind: str, ident) -> str:
        if self._release == "8.4":
            return f"{RRD_DIR}/{'pve2-node' if kind == 'node' else 'pve2-vm'}/{ident}"
        return f"{RRD_DIR}/pve-{kind}-9.0/{ident}"

    def _container(self, vmid) -> Container:
        """The guest whose RRD file is asked for, on whichever node (the files are cluster-wide)."""
        ct = self.cluster.containers.get(int(vmid))
        if ct is None:
            raise PVEError(f"RRD error: rrdcached: rrd_fetch_r failed: opening '{self._rrd_file('vm', vmid)}': "
                           "No such file or directory")
        return ct

    def _points(self, timeframe: str, now: float) -> tuple[int, list[int]]:
        step, count = FRAMES[self._release][timeframe]
        ctime = step * int(now // step)
        return step, [ctime - (count - 1 - i) * step for i in range(count)]

    # --- handlers ----------------------------------------------------------------------------------
    def lxc_rrddata(self, ctx, p):
        """``[{time, maxcpu, cpu, maxmem, mem, maxdisk, disk, netin, netout, diskread, diskwrite (+9.x
        pressure*)}]``: cpu a fraction of ``maxcpu`` CPUs, mem/disk bytes, IO bytes per second. Raises the
        RRD error (500) for a vmid without an RRD file."""
        ct = self._container(p["vmid"])
        points = self.container_series(ct, p["timeframe"], p.get("cf") or "AVERAGE", time.time())
        return self._until_down(points, ct.node)

    def node_rrddata(self, ctx, p):
        """``[{time, loadavg, maxcpu, cpu, iowait, memtotal, memused, swaptotal, swapused, roottotal, rootused,
        netin, netout (+9.x memavailable, arcsize, pressure*)}]``: memory and root fs in bytes, net bytes/s."""
        return self._until_down(self.node_series(p["node"], p["timeframe"], p.get("cf") or "AVERAGE", time.time()),
                                p["node"])

    def _until_down(self, points: list[dict], node: str) -> list[dict]:
        """An offline node's pvestatd writes nothing: its and its guests' points after it went down keep only
        ``time`` (more than half of their interval unknown, xff 0.5); 9.x drops such a newest point."""
        since = self.sim.faults.down_since(node)
        if since is None or not points:
            return points
        step = points[1]["time"] - points[0]["time"] if len(points) > 1 else PDP_STEP
        out = [point if point["time"] - step / 2 <= since else {"time": point["time"]} for point in points]
        if self._release != "8.4" and len(out[-1]) == 1:
            out.pop()
        return out

    def lxc_rrd(self, ctx, p):
        """``{filename}``: RRD.pm create_rrd_graph's PNG path (the real answer also carries the PNG itself)."""
        ct = self._container(p["vmid"])
        return self._graph(self._rrd_file("vm", ct.vmid), VM_SOURCES[self._release], p)

    def node_rrd(self, ctx, p):
        """``{filename}`` of the node's graph, as ``lxc_rrd``."""
        return self._graph(self._rrd_file("node", p["node"]), NODE_SOURCES[self._release], p)

    def _graph(self, rrd: str, sources, p) -> dict:
        ids = split_list(p["ds"])
        if len(ids) > 2:  # RRD.pm has two line colours
            raise PVEError("fixme: no color definition")
        for ds in ids:
            if ds not in sources:
                raise PVEError(f"RRD error: No DS called '{ds}' in '{rrd}'")
        return {"filename": f"{rrd}_{'_'.join(ids)}.png"}

    # --- containers --------------------------------------------------------------------------------
    def _run_span(self, ct) -> tuple[float | None, float | None]:
        """(since, until) the container ran; until None = still running; (None, None) = not in any frame."""
        if ct.running:
            node = self.cluster.nodes.get(ct.node, {})
            return (ct.started_at if ct.started_at is not None else node.get("uptime_base", 0.0)), None
        ident = str(ct.vmid)
        until = None
        for t in reversed(self.cluster.tasks):
            if (t.id == ident and t.type in STOP_TASKS and t.status == "stopped" and t.endtime
                    and (t.exitstatus == "OK" or str(t.exitstatus).startswith("WARNINGS"))):
                until = float(t.endtime)
                break
        if until is None:
            return None, None
        since = float(self.cluster.nodes.get(ct.node, {}).get("uptime_base", until - 30 * DAY))
        for t in reversed(self.cluster.tasks):
            if t.id == ident and t.type in START_TASKS and t.status == "stopped" and t.endtime \
                    and t.endtime <= until:
                since = float(t.endtime)
                break
        return since, until

    def container_series(self, ct, timeframe: str, cf: str, now: float) -> list[dict]:
        """The container's points for ``timeframe``/``cf`` at ``now`` (see the module docstring)."""
        v9 = self._release != "8.4"
        step, times = self._points(timeframe, now)
        single_pdp = step == PDP_STEP
        use_max = cf == "MAX" and not single_pdp
        host_cpus = self.cluster.nodes[ct.node]["maxcpu"] if ct.node in self.cluster.nodes else 1
        vmid = ct.vmid
        maxcpu = _num(float(ct.cpus(host_cpus)))
        maxmem = ct.memory_mb * MiB
        maxdisk = ct.maxdisk
        live_disk = int(maxdisk * (0.2 + (vmid % 50) / 100))
        # the amplitudes of Container.metrics
        phase = (vmid * 7919) % 1000 / 1000 * 2 * math.pi
        cpu_amp = 0.3 * ((vmid % 5) + 1) / 5
        mem_amp = 0.5 * ((vmid % 3) + 1) / 3
        rates = (1500 + vmid % 700, 900 + vmid % 500, 2048, 1024)
        k7, k3, k5 = (vmid % 7) / 7, (vmid % 3) / 3, (vmid % 5) / 5
        pressure_amp = tuple(zip(VM_SOURCES["9.1"][-6:], (4 * k7, 1.5 * k7, 2 * k3, k3, 0.3 * k5, 0.1 * k5)))
        day_phase = (vmid % 24) / 24 * 2 * math.pi
        since, until = self._run_span(ct)
        out = []
        for t in times:
            a = t - step
            point = {"time": t, "maxcpu": maxcpu, "maxmem": maxmem, "maxdisk": maxdisk}
            ran = 0.0
            if since is not None:
                lo, hi = max(a, since), min(t, until if until is not None else t)
                ran = max(0.0, hi - lo) / step
            disk = live_disk * (1 - 0.03 * (0.5 + 0.5 * math.sin(2 * math.pi * t / (14 * DAY) + phase)))
            if ran < 0.5:  # xff 0.5: the running-only sources are unknown, disk mixes in the stopped 0
                point["disk"] = (disk if use_max else disk * ran) if ran else 0
                out.append(point)
                continue
            bits = _bits(vmid * 31 + step, t)
            n1, n2, n3, n4 = (bits & 255) / 255, (bits >> 8 & 255) / 255, (bits >> 16 & 255) / 255, \
                (bits >> 24) / 255
            load = 1 + 0.22 * _swing(t, day_phase) + 0.13 * (2 * n1 - 1)  # 0.65 .. 1.35
            if use_max:
                # above the interval's mean (at most 0.533 of the wave for 15 minutes and more), below the top
                mean = min(1.0, 0.54 * load)
                wave = mean + (1 - mean) * (0.35 + 0.5 * n2)
                io = load * (1.1 + 0.4 * n3)
                point["disk"] = disk
            else:
                wave = min(1.0, _wave_avg(max(a, since), min(t, until or t), phase) * load)
                io = load * (0.85 + 0.3 * n3)
                point["disk"] = disk * ran if ran < 1 else disk
            point["cpu"] = 0.02 + cpu_amp * wave
            point["mem"] = maxmem * (0.15 + mem_amp * wave)
            point["netin"], point["netout"], point["diskread"], point["diskwrite"] = \
                rates[0] * io, rates[1] * io * (0.9 + 0.2 * n4), rates[2] * io, rates[3] * io * (0.8 + 0.4 * n4)
            if v9:
                for key, amp in pressure_amp:
                    point[key] = amp * wave if amp else 0
            out.append(point)
        return out

    # --- nodes -------------------------------------------------------------------------------------
    def node_series(self, node: str, timeframe: str, cf: str, now: float) -> list[dict]:
        """The node's points for ``timeframe``/``cf`` at ``now``: its running containers' mean load, swung."""
        v9 = self._release != "8.4"
        n = self.cluster.nodes[node]
        step, times = self._points(timeframe, now)
        use_max = cf == "MAX" and step != PDP_STEP
        maxcpu, memtotal = n["maxcpu"], n["maxmem"]
        cts = [c for c in self.cluster.containers.values() if c.node == node and c.running]
        cpu_base = 0.03 + sum((0.02 + 0.3 * ((c.vmid % 5) + 1) / 5 * 0.5) * c.cpus(maxcpu) for c in cts) / maxcpu
        mem_base = 2.5 * GiB + sum(c.memory_mb * MiB * (0.15 + 0.25 * ((c.vmid % 3) + 1) / 3) for c in cts)
        net_base = 4000 + sum(1500 + c.vmid % 700 for c in cts), 2500 + sum(900 + c.vmid % 500 for c in cts)
        seed = sum(map(ord, node))
        day_phase = (seed % 24) / 24 * 2 * math.pi
        swap_total, root_total, root_used = 8 * GiB, 100 * GiB, 9 * GiB
        sin, tau, fortnight = math.sin, 2 * math.pi, 14 * DAY
        out = []
        for t in times:
            bits = _bits(seed * 31 + step, t)
            n1, n2, n3, n4 = (bits & 255) / 255, (bits >> 8 & 255) / 255, (bits >> 16 & 255) / 255, \
                (bits >> 24) / 255
            load = 1 + 0.2 * sin(tau * t / DAY + day_phase) + 0.1 * (2 * n1 - 1)  # 0.7 .. 1.3
            peak = 1 + 0.3 * n2 if use_max else 1.0
            cpu = min(1.0, cpu_base * load * peak)
            mem = mem_base * (0.9 + 0.1 * load)
            memused = min(memtotal, mem * (1 + 0.05 * n2) if use_max else mem)
            iowait = 0.0012 * load * (1 + 2 * n3 if use_max else 0.7 + 0.6 * n3)
            io = load * (1.1 + 0.4 * n4 if use_max else 0.85 + 0.3 * n4)
            point = {"time": t, "loadavg": cpu * maxcpu * (0.9 + 0.2 * n3), "maxcpu": maxcpu, "cpu": cpu,
                     "iowait": iowait, "memtotal": memtotal, "memused": memused, "swaptotal": swap_total,
                     "swapused": 0, "roottotal": root_total,
                     "rootused": root_used * (0.99 - 0.01 * sin(tau * t / fortnight)),
                     "netin": net_base[0] * io, "netout": net_base[1] * io}
            if v9:
                # the MAX of memavailable belongs with the least memory used
                point["memavailable"] = memtotal - min(memtotal, mem * (1 - 0.05 * n2) if use_max else mem)
                point["arcsize"] = 0
                point["pressurecpusome"] = 8 * cpu * peak
                point["pressureiosome"] = 150 * iowait
                point["pressureiofull"] = 100 * iowait
                point["pressurememorysome"] = 0.05 * load * peak
                point["pressurememoryfull"] = 0.01 * load * peak
            out.append(point)
        return out
