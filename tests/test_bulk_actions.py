"""Bulk actions on the dashboard, as an operator uses them: select containers (or all matching a filter), confirm,
follow the progress per container to ONE summary (both releases: PVE 9.1 starts and shuts down through
/cluster/bulk-action/guest/*, 8.4 acts per container)."""
from __future__ import annotations

import json
import re
import time

from app.models import AuditEntry, BulkOperation, Container, Event, Operation
from tests.htmx import HX


def batch(pve, status: str, count: int = 10, first: int = 900) -> list[int]:
    """``count`` containers named batch01… on every node, in ``status``."""
    pve.task_delay = 0.1  # each guest task ends sooner (the fixture puts 0.3 s back)
    vmids = list(range(first, first + count))
    for i, vmid in enumerate(vmids):
        ct = pve.add_container(vmid=vmid, node=pve.nodes[i % len(pve.nodes)], hostname=f"batch{i + 1:02d}",
                               tags="lab" if i < 2 else None)
        if status == "running":
            pve.cluster._set_running(ct)
    return vmids


def follow(client, bulk_id: int, timeout: float = 20) -> tuple[str, list[dict]]:
    """Poll the progress panel like the dashboard does until the bulk action ends; its last panel and every toast."""
    toasts, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/bulk/{bulk_id}", headers=HX)
        assert response.status_code == 200
        trigger = json.loads(response.headers.get("HX-Trigger") or "{}")
        if "toast" in trigger:
            toasts.append(trigger["toast"])
        if 'data-state="finished"' in response.text:
            return response.text, toasts
        time.sleep(0.1)
    raise AssertionError("the bulk action did not end")


def run(auth, client, db, data: dict) -> list[dict]:
    """Send a bulk action like the confirmation's form (htmx) and follow it; every toast it brought."""
    response = auth.post("/bulk", data, headers=HX)
    assert response.status_code == 200 and 'data-testid="bulk-panel"' in response.text, response.text
    first = json.loads(response.headers.get("HX-Trigger") or "{}").get("toast")
    return [first] if first else follow(client, latest_bulk(db).id)[1]


def latest_bulk(db) -> BulkOperation:
    db.session.expire_all()
    return db.session.scalars(db.select(BulkOperation).order_by(BulkOperation.id.desc())).first()


def states(bulk: BulkOperation) -> dict[int, tuple[str, str | None]]:
    return {item.vmid: (item.state, item.reason) for item in bulk.items}


def test_ten_containers_stopped_in_one_bulk_action_selected_by_filter(logged_in, client, db, pve):
    vmids = batch(pve, "running", count=9) + [909]
    pve.faults.fail_next_task(type="vzstop", vmid=905, message="CT is locked (backup)")
    # "all matching this filter" is resolved on the server: the confirmation names what the filter holds now
    confirm = client.get("/bulk/confirm?action=stop&all=y&status=running&q=batch").text
    assert 'data-testid="bulk-confirm-count">9 containers<' in confirm and "Stop 9 containers?" in confirm
    tagging = client.get("/bulk/confirm?action=tag-add&tag=lab&vmid=900").text
    assert "Add the tag “lab” to 1 container?" in tagging
    assert "batch01 (CT 900), batch02 (CT 901), batch03 (CT 902), batch04 (CT 903), batch05 (CT 904) and 4 more" in confirm
    assert 'name="vmid"' not in confirm  # the POST sends the filter again, not the cards of one page
    pve.cluster._set_running(pve.add_container(vmid=909, hostname="batch10"))  # matches by the time it is sent
    pve.add_container(vmid=910, hostname="batch11")  # stopped: outside the "running" filter
    pve.clear_requests()

    response = logged_in.post("/bulk", {"action": "stop", "all": "y", "status": "running", "q": "batch"}, headers=HX)
    assert response.status_code == 200 and 'data-testid="bulk-panel"' in response.text
    bulk = latest_bulk(db)
    assert [item.vmid for item in bulk.items] == vmids and bulk.upid is None
    assert sum(item.state == "running" for item in bulk.items) == 4  # a few at a time
    # a reload: the panel and each card's spinner come from the database
    page = client.get("/?q=batch").text
    assert f'id="bulk-{bulk.id}"' in page and 'data-state="running"' in page
    db.session.expire_all()
    pending = db.session.scalar(db.select(db.func.count(Operation.id)).where(Operation.state == "running"))
    assert page.count('title="Stop in progress (bulk action)"') == pending  # no card polls on its own: the panel does

    panel, toasts = follow(client, bulk.id)
    assert toasts == [{"message": "Stopped 9 of 10 containers; 1 failed: batch06 (CT 905): CT is locked (backup).",
                       "category": "warning"}]
    assert re.search(r'data-vmid="905" data-state="failed">.*?CT is locked \(backup\)', panel, re.S)
    assert panel.count('data-state="succeeded"') == 9
    assert sorted(v for v, ct in pve.containers.items() if v in vmids and ct.running) == [905]
    assert pve.count_requests("POST", "/nodes/") == 10 and pve.count_requests("POST", "/cluster/bulk-action") == 0
    # each container's stop is an ordinary operation with its events and audit entry
    db.session.expire_all()
    ops = db.session.scalars(db.select(Operation).join(Container).where(Container.vmid.in_(vmids))).all()
    assert sorted(op.state for op in ops) == ["failed"] + ["succeeded"] * 9
    audited = db.session.scalars(db.select(AuditEntry).where(AuditEntry.action == "container.stop")).all()
    assert len(audited) == 10 and {entry.username for entry in audited} == {"alice"}
    assert client.get(f"/bulk/{bulk.id}", headers=HX).headers.get("HX-Trigger") is None  # the summary is told once


def test_start_through_the_bulk_endpoint_on_9_1_per_container_on_8_4_then_tags_and_refusals(
        auth, logged_in, client, db, pve, pve_version):
    vmids = batch(pve, "stopped")
    pve.cluster._set_running(pve.containers[900])
    pve.faults.fail_next_task(type="vzstart", vmid=903, message="unable to mount rootfs")
    pve.clear_requests()
    response = logged_in.post("/bulk", {"action": "start", "vmid": [str(v) for v in vmids]}, headers=HX)
    assert response.status_code == 200, response.text
    bulk = latest_bulk(db)
    _, toasts = follow(client, bulk.id)
    assert toasts == [{"message": "Started 8 of 10 containers; 1 failed: batch04 (CT 903): unable to mount rootfs; "
                                  "1 skipped: batch01 (CT 900): The container is already running.",
                       "category": "warning"}]
    assert sorted(v for v in vmids if not pve.containers[v].running) == [903]
    bulk_tasks = [t for t in pve.task_list if t.type == "bulk-start"]
    if pve_version == "9.1":
        # one Proxmox task for the whole action; Proxmox itself starts each guest, at most 4 at once
        assert len(bulk_tasks) == 1 and bulk.upid == bulk_tasks[0].upid
        assert pve.count_requests("POST", "/cluster/bulk-action/guest/start") == 1
        assert pve.count_requests("POST", "/nodes/") == 0
        assert "Some guests failed to start: 903" in bulk_tasks[0].exitstatus
    else:
        assert bulk_tasks == [] and bulk.upid is None
        assert pve.count_requests("POST", "/nodes/") == 9  # the running one is skipped without asking
    db.session.expire_all()
    failed = db.session.scalars(db.select(Event).join(Container).where(Container.vmid == 903,
                                                                       Event.type == "error")).all()
    assert [e.message for e in failed] == ["Start of batch04 (CT 903) failed: unable to mount rootfs"]
    assert not db.session.scalars(db.select(Operation).where(Operation.state.in_(("queued", "running")))).all()

    # shutdown of all that run now: the 9.1 endpoint again (one bulk-shutdown task), per container on 8.4
    toasts = run(logged_in, client, db, {"action": "shutdown", "all": "y", "status": "running", "q": "batch"})
    assert toasts == [{"message": "Shut down 9 of 9 containers.", "category": "success"}]
    assert not any(pve.containers[v].running for v in vmids)
    assert len([t for t in pve.task_list if t.type == "bulk-shutdown"]) == (pve_version == "9.1")

    # tags, per container on both releases: one already has it (skipped with the reason)
    vmids = vmids[:3]
    chosen = {"vmid": [str(v) for v in vmids]}
    toasts = run(logged_in, client, db, {"action": "tag-add", "tag": "Lab", **chosen})
    assert [toast["message"] for toast in toasts] == [
        "Tagged 1 of 3 containers with lab; 2 skipped: batch01 (CT 900): It already has the tag lab; "
        "batch02 (CT 901): It already has the tag lab."]
    assert all("lab" in pve.containers[v].tags for v in vmids)
    toasts = run(logged_in, client, db, {"action": "tag-remove", "tag": "lab", **chosen})
    assert toasts == [{"message": "Untagged 3 of 3 containers (tag lab).", "category": "success"}]
    assert not any("lab" in pve.containers[v].tags for v in vmids)

    before = db.session.scalar(db.select(db.func.count(BulkOperation.id)))
    response = logged_in.post("/bulk", {"action": "tag-add", "tag": "-bad tag", **chosen}, headers=HX)
    assert json.loads(response.headers["HX-Trigger"])["toast"]["message"].startswith("A tag is letters, digits")
    response = logged_in.post("/bulk", {"action": "stop", "vmid": ["12x"]})
    assert response.status_code == 302  # back to the dashboard, with the reason
    assert "A selected container is not a container number." in client.get("/").text
    auth.login_as("viewer")
    assert client.get("/bulk/confirm?action=stop&vmid=900").status_code == 403
    assert auth.post("/bulk", {"action": "stop", "vmid": "900"}).status_code == 403
    assert 'id="bulk-form"' not in client.get("/").text and 'data-bulk-select' not in client.get("/").text
    assert db.session.scalar(db.select(db.func.count(BulkOperation.id))) == before
