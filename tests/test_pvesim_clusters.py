"""Several simulated clusters side by side, as Proxboard meets them: each its own name, nodes and
state, the same VMIDs in each; /cluster/status as pve-manager's ``get_status`` answers it, for a
cluster and for a standalone node."""
from __future__ import annotations

import pytest

from tests.fixtures.pvesim_http import ct_url, sim_session, wait_task
from tests.pvesim import PVESimulator


@pytest.fixture(scope="module")
def clusters():
    """Three simulators: "lab" (3 nodes), "office" (2 nodes), and a standalone node."""
    sims = [PVESimulator(nodes=3, containers=6, cluster_name="lab", node_prefix="lab", task_delay=0.05).start(),
            PVESimulator(nodes=2, containers=4, cluster_name="office", node_prefix="office",
                         task_delay=0.05).start(),
            PVESimulator(nodes=1, containers=2, node_prefix="solo", task_delay=0.05).start()]
    yield sims
    for sim in sims:
        sim.stop()


def get(sim, path):
    with sim_session(sim, Authorization=sim.auth_header) as session:
        response = session.get(f"{sim.url}{path}")
        assert response.status_code == 200, response.text
        return response.json()["data"]


def test_each_cluster_has_its_own_name_and_nodes_and_the_same_vmids(clusters):
    lab, office, solo = clusters
    assert [e["name"] for e in get(lab, "/cluster/status") if e["type"] == "cluster"] == ["lab"]
    assert sorted(n["node"] for n in get(office, "/nodes")) == ["office1", "office2"]
    assert {e["node"] for e in get(lab, "/cluster/resources?type=vm")} <= {"lab1", "lab2", "lab3"}
    vmids = [{e["vmid"] for e in get(sim, "/cluster/resources?type=vm")} for sim in clusters]
    assert vmids[1] <= vmids[0] and vmids[2] <= vmids[0], "the clusters should share VMIDs, as real ones do"


def test_a_change_in_one_cluster_leaves_the_others_alone(clusters):
    lab, office, _ = clusters
    vmid = next(v for v, ct in office.containers.items() if ct.status == "running" and v in lab.containers)
    assert lab.containers[vmid].status == "running"
    with sim_session(office, Authorization=office.auth_header) as session:
        upid = session.post(ct_url(office, vmid, "/status/stop")).json()["data"]
        assert wait_task(session, office, upid)["exitstatus"] == "OK"
    assert office.containers[vmid].status == "stopped"
    assert lab.containers[vmid].status == "running"


def test_cluster_status_lists_the_cluster_then_its_members(clusters):
    lab = clusters[0]
    lab.faults.set_node_offline("lab3")
    try:
        status = get(lab, "/cluster/status")
    finally:
        lab.faults.set_node_offline("lab3", False)
    cluster, *members = status
    assert cluster == {"type": "cluster", "id": "cluster", "name": "lab", "nodes": 3, "version": 4, "quorate": 1}
    assert [(m["name"], m["online"], m["local"]) for m in members] == [("lab1", 1, 1), ("lab2", 1, 0), ("lab3", 0, 0)]
    assert all(m["id"] == f"node/{m['name']}" and m["nodeid"] >= 1 for m in members)


def test_a_standalone_node_answers_only_its_own_entry(clusters):
    solo = clusters[2]
    assert get(solo, "/cluster/status") == [{"type": "node", "id": "node/solo1", "name": "solo1", "ip": "127.0.0.1",
                                            "local": 1, "nodeid": 0, "online": 1, "level": ""}]
