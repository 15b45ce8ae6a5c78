"""A guest moved or destroyed behind Proxboard's back while its listing is still cached: someone migrated it in
the Proxmox UI, or a destroy finished between the listing and the next call. Proxmox then answers the old node's
calls with "Configuration file 'nodes/pve1/lxc/100.conf' does not exist". An action follows the guest to its new
node, and one on a destroyed guest is a 404 that says so, never a 503 claiming Proxmox cannot be reached.
"""
from __future__ import annotations

import pytest

from app.proxmox import get_proxmox

from tests.test_api import assert_problem, startable, token_for  # noqa: F401 - token_for is a fixture


@pytest.fixture
def app_overrides() -> dict:
    return {"PVE_CACHE_SECONDS": 60}  # the listing outlives the change, as it does in production


def _elsewhere(pve, vmid: int) -> str:
    return next(node for node in pve.nodes if node != pve.containers[vmid].node and pve.node_online(node))


def test_an_action_follows_a_guest_migrated_since_the_listing_was_cached(client, token_for, pve, db):
    operator = token_for("operator")
    vmid = startable(pve)
    before = client.get(f"/api/v1/containers/{vmid}", headers=operator).get_json()
    target = _elsewhere(pve, vmid)
    pve.containers[vmid].node = target  # migrated in the Proxmox UI
    assert client.get("/api/v1/containers?per_page=100", headers=operator).get_json()["items"], "listing cached"

    started = client.post(f"/api/v1/containers/{vmid}/actions/start", headers=operator)
    assert started.status_code == 202, started.text
    assert pve.wait_idle()
    assert pve.containers[vmid].status == "running" and pve.containers[vmid].node == target
    detail = client.get(f"/api/v1/containers/{vmid}", headers=operator).get_json()
    assert (before["node"], detail["node"]) == (before["node"], target) and before["node"] != target


def test_a_guest_destroyed_since_the_listing_was_cached_is_a_404_and_nothing_else_changes(client, token_for, pve, db):
    admin = token_for("admin")
    vmid = startable(pve)
    started = client.post(f"/api/v1/containers/{vmid}/actions/start", headers=admin)
    assert started.status_code == 202 and pve.wait_idle()
    assert get_proxmox().find_container_node(vmid) == pve.containers[vmid].node  # the listing, cached now
    with pve.cluster.lock:
        del pve.cluster.containers[vmid]  # destroyed in the Proxmox UI
    tasks = len(pve.task_list)

    for action in ("stop", "delete"):
        assert_problem(client.post(f"/api/v1/containers/{vmid}/actions/{action}", headers=admin), 404,
                       f"CT {vmid} does not exist in Proxmox")
    assert len(pve.task_list) == tasks
    status = client.get(f"/api/v1/containers/{vmid}/status", headers=admin)
    assert status.status_code == 200 and status.json["status"] == "gone"  # the record the listing made, marked gone


def test_an_action_is_decided_on_the_state_of_now_not_the_cached_one(client, token_for, pve, db):
    operator = token_for("operator")
    vmid = startable(pve)
    assert client.get(f"/api/v1/containers/{vmid}/status", headers=operator).get_json()["pve_status"] == "stopped"
    with pve.cluster.lock:
        pve.cluster._set_running(pve.containers[vmid])  # started in the Proxmox UI a moment ago
    tasks = len(pve.task_list)

    assert_problem(client.post(f"/api/v1/containers/{vmid}/actions/start", headers=operator), 409,
                   "The container is already running.")  # Proxboard's own answer, not Proxmox's refusal
    assert len(pve.task_list) == tasks
