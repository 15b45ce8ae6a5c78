"""pvesim GET /cluster/resources: the unfiltered answer is the filtered answers put together, and its node
and storage figures add up from the guests and backups it holds (pve-manager PVE/API2/Cluster.pm serves
every type from one in-memory cluster state). Everything over real HTTPS."""

from __future__ import annotations

import pytest

from tests.fixtures.pvesim_http import wait_task
from tests.pvesim import PVESimulator
from tests.pvesim.state import GiB

TOKEN = "root@pam!proxboard=sim-secret-res"
MOVING = {"cpu", "mem", "uptime", "netin", "netout", "diskread", "diskwrite"}  # follow the clock


@pytest.fixture(scope="module")
def sim_module():
    sim = PVESimulator(nodes=3, containers=20, token=TOKEN, task_delay=0.05, seed=1, time_scale=0.01).start()
    yield sim
    sim.stop()


def resources(api, sim, **params) -> list[dict]:
    response = api.get(f"{sim.url}/cluster/resources", params=params)
    assert response.status_code == 200, (response.status_code, response.reason)
    return response.json()["data"]


def still(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in MOVING}


def by_node(entries: list[dict], typ: str) -> dict:
    return {e["node"]: e for e in entries if e["type"] == typ}


def test_the_unfiltered_answer_is_the_filtered_answers_put_together(sim, api):
    everything = resources(api, sim)
    parts = {typ: resources(api, sim, type=typ) for typ in ("vm", "node", "storage", "sdn")}
    pools = [e for e in everything if e["type"] == "pool"]
    assert pools and parts["sdn"]
    assembled = pools + parts["vm"] + parts["node"] + parts["storage"] + parts["sdn"]
    assert [still(e) for e in everything] == [still(e) for e in assembled]


def test_a_node_uses_what_its_running_guests_use_in_the_same_answer(sim, api):
    everything = resources(api, sim)
    for name, node in by_node(everything, "node").items():
        guests = [e for e in everything if e["type"] == "lxc" and e["node"] == name and e["status"] == "running"]
        assert guests
        assert node["mem"] == min(int(2.5 * GiB + sum(e["mem"] for e in guests)), node["maxmem"])
        cpu = 0.03 + sum(e["cpu"] * e["maxcpu"] for e in guests) / node["maxcpu"]
        assert node["cpu"] == pytest.approx(round(min(cpu, 1.0), 6), abs=1e-6)


def test_storage_figures_match_each_node_and_a_shared_backup_counts_on_every_node(sim, api):
    def disks(sid: str) -> dict[str, int]:
        return {e["node"]: e["disk"] for e in resources(api, sim) if e["type"] == "storage" and e["storage"] == sid}

    for node in sim.cluster.nodes:
        listed = api.get(f"{sim.url}/nodes/{node}/storage").json()["data"]
        in_resources = {e["storage"]: e["disk"] for e in resources(api, sim, type="storage") if e["node"] == node}
        assert in_resources == {s["storage"]: s["used"] for s in listed}

    def volumes() -> dict[str, int]:
        content = api.get(f"{sim.url}/nodes/pve1/storage/backup-nfs/content", params={"vmid": 100}).json()["data"]
        return {v["volid"]: v["size"] for v in content}

    nfs, local, before = disks("backup-nfs"), disks("local"), volumes()
    response = api.post(f"{sim.url}/nodes/pve1/vzdump", data={"vmid": 100, "storage": "backup-nfs", "mode": "snapshot"})
    assert wait_task(api, sim, response.json()["data"])["exitstatus"] == "OK"
    (size,) = [size for volid, size in volumes().items() if volid not in before]
    assert disks("backup-nfs") == {node: used + size for node, used in nfs.items()}
    assert disks("local") == local
