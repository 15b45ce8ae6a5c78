"""pvesim's RRD statistics (``rrddata``/``rrd`` of nodes and containers) as PVE 9.1 and 8.4 serve them, read
through proxmoxer over real HTTPS. See tests/pvesim/rrd.py for the Proxmox sources each rule follows."""
from __future__ import annotations

import statistics
import time

import pytest
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException
from proxmoxer.tools import Tasks

from tests.pvesim import PVESimulator

TOKEN = "root@pam!proxboard=sim-secret-rrd"
# (step seconds, points) per frame: pve-cluster PVE/RRD.pm create_rrd_data, 8.x and 9.x
FRAMES = {
    "8.4": {"hour": (60, 70), "day": (1800, 70), "week": (10800, 70), "month": (43200, 70), "year": (604800, 70)},
    "9.1": {"hour": (60, 60), "day": (60, 1440), "week": (1800, 336), "month": (1800, 1440),
            "year": (21600, 1440)},
}
CT_PRESSURE = {"pressurecpusome", "pressurecpufull", "pressureiosome", "pressureiofull", "pressurememorysome",
               "pressurememoryfull"}
NODE_9_EXTRA = {"memavailable", "arcsize", "pressurecpusome", "pressureiosome", "pressureiofull",
                "pressurememorysome", "pressurememoryfull"}


@pytest.fixture(scope="module", params=["9.1", "8.4"])
def sim_module(request):
    sim = PVESimulator(nodes=3, containers=20, token=TOKEN, task_delay=0.03, seed=1, time_scale=0.01,
                       pve_version=request.param).start()
    yield sim
    sim.stop()


@pytest.fixture
def prox(sim):
    """proxmoxer with the simulator's API token, verifying its certificate."""
    client = ProxmoxAPI(sim.host, port=sim.port, user=sim.token_user, token_name=sim.token_name,
                        token_value=sim.token_value, verify_ssl=sim.ca_cert_path)
    yield client
    client._store["session"].close()


def ct_rrd(prox, sim, vmid, timeframe, cf=None):
    node = sim.containers[vmid].node
    return prox.nodes(node).lxc(vmid).rrddata.get(timeframe=timeframe, cf=cf)


def by_time(points) -> dict[int, dict]:
    return {p["time"]: p for p in points}


# --------------------------------------------------------------------------------------------
# resolution, alignment, determinism, MAX >= AVERAGE
# --------------------------------------------------------------------------------------------

def test_every_frame_has_the_releases_points_and_step_aligned_to_it(sim, prox):
    for timeframe, (step, count) in FRAMES[sim.pve_version].items():
        before = time.time()
        series = {"container": ct_rrd(prox, sim, 100, timeframe), "node": prox.nodes("pve1").rrddata.get(
            timeframe=timeframe)}
        after = time.time()
        for what, points in series.items():
            times = [p["time"] for p in points]
            assert len(points) == count, (timeframe, what)
            assert all(t % step == 0 for t in times), (timeframe, what)
            assert {b - a for a, b in zip(times, times[1:])} == {step}, (timeframe, what)
            # the newest point is the interval that ended at the last step boundary
            assert step * int(before // step) <= times[-1] <= step * int(after // step), (timeframe, what)


def test_decade_is_a_91_node_frame_only(sim, prox):
    if sim.pve_version == "9.1":
        points = prox.nodes("pve1").rrddata.get(timeframe="decade")
        assert len(points) == 570 and points[1]["time"] - points[0]["time"] == 7 * 86400
    else:
        with pytest.raises(ResourceException) as exc:
            prox.nodes("pve1").rrddata.get(timeframe="decade")
        assert exc.value.status_code == 400
    with pytest.raises(ResourceException) as exc:  # containers never had it
        ct_rrd(prox, sim, 100, "decade")
    assert exc.value.status_code == 400 and "timeframe" in exc.value.errors


def test_unknown_timeframe_or_cf_is_refused_by_the_schema(sim, prox):
    with pytest.raises(ResourceException) as exc:
        ct_rrd(prox, sim, 100, "minute")
    assert (exc.value.status_code, exc.value.content) == (400, "Parameter verification failed.")
    assert exc.value.errors["timeframe"].startswith(
        "value 'minute' does not have a value in the enumeration 'hour, day")
    with pytest.raises(ResourceException) as exc:
        prox.nodes("pve1").rrddata.get(timeframe="hour", cf="MIN")
    assert exc.value.errors == {"cf": "value 'MIN' does not have a value in the enumeration 'AVERAGE, MAX'"}
    with pytest.raises(ResourceException) as exc:
        prox.nodes("pve1").rrddata.get()
    assert exc.value.errors == {"timeframe": "property is missing and it is not optional"}


@pytest.mark.parametrize("timeframe", ["hour", "day", "year"])
def test_the_same_point_has_the_same_values_every_time(sim, prox, timeframe):
    first, second = by_time(ct_rrd(prox, sim, 100, timeframe)), by_time(ct_rrd(prox, sim, 100, timeframe))
    shared = first.keys() & second.keys()
    assert len(shared) >= len(first) - 1  # a step boundary may pass between the two calls
    assert all(first[t] == second[t] for t in shared)
    nodes = by_time(prox.nodes("pve1").rrddata.get(timeframe=timeframe, cf="MAX")), \
        by_time(prox.nodes("pve1").rrddata.get(timeframe=timeframe, cf="MAX"))
    assert all(nodes[0][t] == nodes[1][t] for t in nodes[0].keys() & nodes[1].keys())


def test_max_is_never_below_average_and_equals_it_where_a_point_is_one_minute(sim, prox):
    for timeframe, (step, _count) in FRAMES[sim.pve_version].items():
        for what, fetch in (("container", lambda cf: ct_rrd(prox, sim, 100, timeframe, cf)),
                            ("node", lambda cf: prox.nodes("pve1").rrddata.get(timeframe=timeframe, cf=cf))):
            average, maximum = by_time(fetch(None)), by_time(fetch("MAX"))
            shared = sorted(average.keys() & maximum.keys())
            assert shared
            for t in shared:
                assert average[t].keys() == maximum[t].keys()
                for source, value in average[t].items():
                    assert maximum[t][source] >= value, (timeframe, t, source)
                if step == 60:  # one PDP per row: RRD's MAX and AVERAGE rows are the same numbers
                    assert maximum[t] == average[t]
            if step > 60 and what == "node":
                assert sum(maximum[t]["cpu"] > average[t]["cpu"] for t in shared) > len(shared) // 2


# --------------------------------------------------------------------------------------------
# what the points say
# --------------------------------------------------------------------------------------------

def test_newest_point_agrees_with_the_live_figures(sim, prox):
    ct = sim.containers[100]
    live = prox.nodes(ct.node).lxc(100).status.current.get()
    resource = next(r for r in prox.cluster.resources.get(type="vm") if r["vmid"] == 100)
    newest = ct_rrd(prox, sim, 100, "hour")[-1]
    assert (newest["maxmem"], newest["maxdisk"], newest["maxcpu"]) == (live["maxmem"], live["maxdisk"], live["cpus"])
    assert resource["maxmem"] == newest["maxmem"]
    # the live cpu and mem move in a wave of about 94 s: the minute's figure lies inside its range
    now = time.time()
    wave = [ct.metrics(now - s, sim.cluster.nodes[ct.node]["maxcpu"]) for s in range(95)]
    for source in ("cpu", "mem"):
        assert min(w[source] for w in wave) <= newest[source] <= max(w[source] for w in wave), source
    assert abs(newest["disk"] - resource["disk"]) <= 0.03 * resource["disk"]
    # the counters grow at a steady rate since the start: the RRD's bytes per second are near it
    assert abs(newest["netin"] - live["netin"] / live["uptime"]) <= 0.4 * live["netin"] / live["uptime"]

    node_live = prox.nodes(ct.node).status.get()
    node_newest = prox.nodes(ct.node).rrddata.get(timeframe="hour")[-1]
    assert node_newest["maxcpu"] == node_live["cpuinfo"]["cpus"]
    assert node_newest["memtotal"] == node_live["memory"]["total"]
    assert abs(node_newest["memused"] - node_live["memory"]["used"]) <= 0.25 * node_live["memory"]["used"]
    assert 0 < node_newest["cpu"] < 1 and node_newest["roottotal"] == node_live["rootfs"]["total"]


def test_a_stopped_container_has_only_its_limits_and_no_usage(sim, prox):
    assert sim.containers[104].status == "stopped"
    live = prox.nodes(sim.containers[104].node).lxc(104).status.current.get()
    for timeframe in FRAMES[sim.pve_version]:
        for point in ct_rrd(prox, sim, 104, timeframe, "MAX"):
            assert point == {"time": point["time"], "maxcpu": live["cpus"], "maxmem": live["maxmem"],
                             "maxdisk": live["maxdisk"], "disk": 0}


def test_a_container_stopped_through_the_api_has_usage_until_the_stop(sim, prox):
    ct = sim.containers[100]
    upid = prox.nodes(ct.node).lxc(100).status.stop.post()
    assert Tasks.blocking_status(prox, upid, timeout=5, polling_interval=0.02)["exitstatus"] == "OK"
    stopped_at = next(t["endtime"] for t in prox.cluster.tasks.get() if t["upid"] == upid)
    # three minutes later, the hour frame shows the CT's last minutes and then nothing but its limits
    points = sim.api.routes[("GET", "/nodes/{node}/lxc/{vmid}/rrddata")].__self__.container_series(
        ct, "hour", "AVERAGE", stopped_at + 180)
    before = [p for p in points if p["time"] <= stopped_at]
    after = [p for p in points if p["time"] - 60 >= stopped_at]
    assert before and after and all("cpu" in p and "netin" in p for p in before[-50:])
    assert all(set(p) == {"time", "maxcpu", "maxmem", "maxdisk", "disk"} and p["disk"] == 0 for p in after)


def test_pressure_stall_sources_are_new_in_9(sim, prox):
    ct_point = ct_rrd(prox, sim, 100, "hour")[-1]
    node_point = prox.nodes("pve1").rrddata.get(timeframe="hour")[-1]
    base = {"time", "maxcpu", "cpu", "maxmem", "mem", "maxdisk", "disk", "netin", "netout", "diskread", "diskwrite"}
    node_base = {"time", "loadavg", "maxcpu", "cpu", "iowait", "memtotal", "memused", "swaptotal", "swapused",
                 "roottotal", "rootused", "netin", "netout"}
    if sim.pve_version == "9.1":
        assert set(ct_point) == base | CT_PRESSURE  # memhost is a VM source: pvestatd sends none for containers
        assert set(node_point) == node_base | NODE_9_EXTRA
        assert node_point["memavailable"] == node_point["memtotal"] - node_point["memused"]
        assert all(0 <= ct_point[k] <= 100 for k in CT_PRESSURE)
    else:
        assert set(ct_point) == base and set(node_point) == node_base


# --------------------------------------------------------------------------------------------
# errors, other nodes, PNG graphs, speed
# --------------------------------------------------------------------------------------------

def test_a_vmid_without_rrd_data_fails_inside_rrdtool(sim, prox):
    folder = "pve-vm-9.0" if sim.pve_version == "9.1" else "pve2-vm"
    with pytest.raises(ResourceException) as exc:
        prox.nodes("pve1").lxc(999).rrddata.get(timeframe="hour")
    assert exc.value.status_code == 500
    assert exc.value.content == ("RRD error: rrdcached: rrd_fetch_r failed: opening "
                                 f"'/var/lib/rrdcached/db/{folder}/999': No such file or directory")


def test_any_node_answers_for_a_guest_because_rrd_files_are_cluster_wide(sim, prox):
    elsewhere = next(ct for ct in sim.containers.values() if ct.node != "pve1" and ct.running)
    via_pve1 = by_time(prox.nodes("pve1").lxc(elsewhere.vmid).rrddata.get(timeframe="hour"))
    own = by_time(ct_rrd(prox, sim, elsewhere.vmid, "hour"))
    assert all(via_pve1[t] == own[t] for t in via_pve1.keys() & own.keys())


def test_png_graph_endpoints_name_their_file(sim, prox):
    folder = ("pve-vm-9.0", "pve-node-9.0") if sim.pve_version == "9.1" else ("pve2-vm", "pve2-node")
    assert prox.nodes("pve1").lxc(100).rrd.get(timeframe="day", ds="cpu,mem") == {
        "filename": f"/var/lib/rrdcached/db/{folder[0]}/100_cpu_mem.png"}
    assert prox.nodes("pve1").rrd.get(timeframe="week", ds="loadavg") == {
        "filename": f"/var/lib/rrdcached/db/{folder[1]}/pve1_loadavg.png"}
    with pytest.raises(ResourceException) as exc:
        prox.nodes("pve1").lxc(100).rrd.get(timeframe="day", ds="cpu,load")
    assert exc.value.content == f"RRD error: No DS called 'load' in '/var/lib/rrdcached/db/{folder[0]}/100'"
    with pytest.raises(ResourceException) as exc:
        prox.nodes("pve1").rrd.get(timeframe="day", ds="cpu,iowait,loadavg")
    assert exc.value.content == "fixme: no color definition"


def test_seventy_points_take_well_under_five_milliseconds(sim):
    rrd = sim.api.routes[("GET", "/nodes/{node}/lxc/{vmid}/rrddata")].__self__
    timings = []
    for _ in range(15):
        start = time.perf_counter()
        rrd.container_series(sim.containers[100], "hour", "MAX", time.time())
        rrd.node_series("pve1", "hour", "MAX", time.time())
        timings.append((time.perf_counter() - start) / 2)
    assert statistics.median(timings) < 0.005


def test_an_offline_nodes_statistics_stop_when_it_went_down_and_its_other_calls_answer_595(sim, prox):
    """rrddata has no ``proxyto``: the node asked answers from its copy of the cluster-wide RRD files, whose
    updates from the dead node stopped; a ``proxyto`` call (the guest's status) gets pveproxy's 595."""
    vmid = next(v for v, ct in sorted(sim.containers.items()) if ct.running and ct.node == "pve2")
    before = by_time(ct_rrd(prox, sim, vmid, "hour"))
    sim.faults.set_node_offline("pve2")
    try:
        sim.faults.offline_since["pve2"] = since = time.time() - 600  # down for ten minutes
        for points in (ct_rrd(prox, sim, vmid, "hour"), prox.nodes("pve2").rrddata.get(timeframe="hour")):
            assert all(len(p) > 1 for p in points if p["time"] - 30 <= since)
            empty = [p for p in points if p["time"] - 30 > since]
            assert len(empty) >= 8 and all(set(p) == {"time"} for p in empty)
            if sim.pve_version != "8.4":  # 9.x drops an empty newest point (pve-cluster 6126f5d)
                assert len(points) == FRAMES["9.1"]["hour"][1] - 1
        old = [p for p in ct_rrd(prox, sim, vmid, "hour") if p["time"] in before and len(p) > 1]
        assert old and all(p == before[p["time"]] for p in old)  # history before the fault is unchanged
        with pytest.raises(ResourceException) as refused:
            prox.nodes("pve2").lxc(vmid).status.current.get()
        assert refused.value.status_code == 595
    finally:
        sim.faults.set_node_offline("pve2", False)
    assert sim.faults.down_since("pve2") is None
