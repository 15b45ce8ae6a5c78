"""Bulk actions on the dashboard, as an operator uses them: select containers (or all matching a filter), confirm,
follow the progress per container to ONE summary (both releases: PVE 9.1 starts and shuts down through
/cluster/bulk-action/guest/*, 8.4 acts per container). Over two clusters (the environment's and "lab", a
simulator of its own with the same VMIDs), each cluster's part asks its own Proxmox and ends with its own summary."""
from __future__ import annotations

import json
import re
import time

import pytest

from app.bulk.services import advance_all
from app.models import AuditEntry, BulkOperation, Container, Event, Operation
from tests.fixtures.clusters import register_cluster
from tests.htmx import HX
from tests.pvesim import PVESimulator


def batch(pve, status: str, count: int = 10, first: int = 900, name: str = "batch") -> list[int]:
    """``count`` containers named batch01… on every node, in ``status``."""
    pve.task_delay = 0.1  # each guest task ends sooner (the fixtures put theirs back)
    vmids = list(range(first, first + count))
    for i, vmid in enumerate(vmids):
        ct = pve.add_container(vmid=vmid, node=pve.nodes[i % len(pve.nodes)], hostname=f"{name}{i + 1:02d}",
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


def parts(db) -> list[BulkOperation]:
    """The parts (one per cluster) of the latest bulk request."""
    group = latest_bulk(db).group_id
    return db.session.scalars(db.select(BulkOperation).where(BulkOperation.group_id == group)
                              .order_by(BulkOperation.id)).all()


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


# -- two clusters ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab_sim(pve_version):
    sim = PVESimulator(nodes=2, containers=0, cluster_name="lab", node_prefix="lab", pve_version=pve_version).start()
    yield sim
    sim.stop()


@pytest.fixture
def lab(app, pve, lab_sim, tmp_path):
    """A second cluster "lab" beside the environment's (``pve``), with no guest yet."""
    lab_sim.reset()
    register_cluster(app, lab_sim, "lab", tmp_path)
    yield lab_sim
    lab_sim.faults.clear()
    lab_sim.wait_idle(5)


def chosen(*guests: str) -> dict:
    return {"vmid": list(guests)}


def test_cards_checked_on_two_clusters_are_acted_on_by_each_clusters_own_proxmox(
        lab, logged_in, client, db, pve, pve_version):
    batch(pve, "stopped", count=3)
    batch(lab, "stopped", count=2, name="lab")  # CT 900 and 901 on both clusters
    dashboard = client.get("/").text
    assert 'data-testid="bulk-bar"' in dashboard and 'data-testid="bulk-hint"' not in dashboard
    assert 'value="lab/900" form="bulk-form"' in dashboard and 'value="default/900" form="bulk-form"' in dashboard
    assert 'aria-label="Select lab01 on lab"' in dashboard

    selection = chosen("default/900", "901", "lab/900", "lab/901")  # a bare VMID is the default cluster's
    confirm = client.get("/bulk/confirm", query_string={"action": "start", **selection}).text
    assert "Start 4 containers?" in confirm
    assert "batch01 (CT 900), batch02 (CT 901), lab01 (lab/CT 900) and lab02 (lab/CT 901)." in confirm
    assert re.search(r'data-testid="bulk-confirm-clusters">2 on default, 2 on lab:', confirm)
    assert 'name="vmid" value="lab/901"' in confirm and 'name="vmid" value="default/901"' in confirm
    pve.clear_requests()
    lab.clear_requests()

    response = logged_in.post("/bulk", {"action": "start", **selection}, headers=HX)
    assert response.status_code == 200 and response.text.count('data-testid="bulk-panel"') == 2
    assert re.findall(r'data-testid="bulk-title"><i class="bi bi-play-fill"></i> ([^<]+)<', response.text) == [
        "Start 2 containers on default", "Start 2 containers on lab"]
    default_part, lab_part = parts(db)
    assert (default_part.cluster.name, lab_part.cluster.name) == ("default", "lab")
    assert [item.vmid for item in lab_part.items] == [900, 901]
    assert follow(client, default_part.id)[1] == [{"message": "Started 2 of 2 containers on default.",
                                                   "category": "success"}]
    assert follow(client, lab_part.id)[1] == [{"message": "Started 2 of 2 containers on lab.", "category": "success"}]
    assert [pve.containers[v].running for v in (900, 901, 902)] == [True, True, False]
    assert lab.containers[900].running and lab.containers[901].running
    for sim, part in ((pve, default_part), (lab, lab_part)):
        db.session.refresh(part)
        if pve_version == "9.1":  # one bulk-start task in each cluster's own Proxmox
            assert [t.upid for t in sim.task_list if t.type == "bulk-start"] == [part.upid]
            assert sim.count_requests("POST", "/nodes/") == 0
        else:
            assert part.upid is None and sim.count_requests("POST", "/nodes/") == 2
    db.session.expire_all()
    # each container's start is its cluster's: lab's audit lines and records name lab
    audited = {(entry.cluster, entry.target) for entry in db.session.scalars(
        db.select(AuditEntry).where(AuditEntry.action == "container.start"))}
    assert audited == {("default", "CT 900 (batch01)"), ("default", "CT 901 (batch02)"),
                       ("lab", "lab/CT 900 (lab01)"), ("lab", "lab/CT 901 (lab02)")}
    started = db.session.scalars(db.select(Operation).where(Operation.action == "start")).all()
    assert sorted((op.container.cluster.name, op.container.vmid, op.state) for op in started) == [
        ("default", 900, "succeeded"), ("default", 901, "succeeded"), ("lab", 900, "succeeded"),
        ("lab", 901, "succeeded")]
    page = client.get("/").text  # the panels stay, each naming its cluster and linking its guests there
    assert f'id="bulk-{lab_part.id}"' in page and 'href="/clusters/lab/containers/900">lab01</a>' in page


def test_all_matching_spans_every_cluster_shown_and_the_cluster_filter_narrows_it(
        lab, logged_in, client, db, pve, pve_version):
    batch(pve, "running", count=3)
    batch(lab, "running", count=2)  # named batch01, batch02 too: the search matches on both clusters
    everywhere = client.get("/bulk/confirm?action=shutdown&all=y&status=running&q=batch").text
    assert 'data-testid="bulk-confirm-count">5 containers<' in everywhere
    assert re.search(r'data-testid="bulk-confirm-clusters">3 on default, 2 on lab:', everywhere)
    unknown = client.get("/bulk/confirm?action=shutdown&all=y&status=running&q=batch&cluster=nosuch").text
    assert 'data-testid="bulk-confirm-count">5 containers<' in unknown  # as the dashboard: it filters nothing out

    dashboard = client.get("/?cluster=lab&status=running&q=batch").text
    assert '<input type="hidden" name="cluster" value="lab">' in dashboard
    only_lab = client.get("/bulk/confirm?action=shutdown&all=y&status=running&q=batch&cluster=lab").text
    assert 'data-testid="bulk-confirm-count">2 containers<' in only_lab
    assert "all 2 running containers on lab matching “batch”" in only_lab
    assert "batch01 (lab/CT 900) and batch02 (lab/CT 901)." in only_lab
    assert 'name="cluster" value="lab"' in only_lab and 'name="vmid"' not in only_lab
    pve.clear_requests()

    toasts = run(logged_in, client, db, {"action": "shutdown", "all": "y", "status": "running", "q": "batch",
                                         "cluster": "lab"})
    assert toasts == [{"message": "Shut down 2 of 2 containers on lab.", "category": "success"}]
    assert len(parts(db)) == 1 and latest_bulk(db).cluster.name == "lab"
    assert not lab.containers[900].running and not lab.containers[901].running
    assert all(pve.containers[v].running for v in (900, 901, 902))  # the default cluster's CT 900 is left alone
    assert pve.count_requests("POST", "/") == 0
    assert len([t for t in lab.task_list if t.type == "bulk-shutdown"]) == (pve_version == "9.1")


def test_a_cluster_that_cannot_be_reached_refuses_only_its_own_part(lab, logged_in, client, db, pve):
    batch(pve, "running", count=2)
    batch(lab, "running", count=2, name="lab")
    client.get("/")  # lab's guests are recorded while it answers
    lab.faults.unreachable = True
    selection = chosen("default/900", "default/901", "lab/900", "lab/901")
    confirm = client.get("/bulk/confirm", query_string={"action": "stop", **selection}).text
    assert "Cluster lab cannot be reached: its 2 containers are left out." in confirm

    response = logged_in.post("/bulk", {"action": "stop", **selection}, headers=HX)
    assert response.status_code == 200 and response.text.count('data-testid="bulk-panel"') == 2
    assert json.loads(response.headers["HX-Trigger"])["toast"] == {
        "message": "Stopped 0 of 2 containers on lab: Cluster lab cannot be reached; nothing was done.",
        "category": "danger"}
    default_part, lab_part = parts(db)
    assert lab_part.state == "finished"
    assert states(lab_part) == {vmid: ("failed", "Cluster lab cannot be reached; nothing was done.")
                                for vmid in (900, 901)}
    assert follow(client, default_part.id)[1] == [{"message": "Stopped 2 of 2 containers on default.",
                                                   "category": "success"}]
    assert not pve.containers[900].running and lab.containers[900].running and lab.containers[901].running

    before = db.session.scalar(db.select(db.func.count(BulkOperation.id)))
    refused = logged_in.post("/bulk", {"action": "stop", **chosen("lab/900", "lab/901")}, headers=HX)  # nothing else to do: refused
    assert json.loads(refused.headers["HX-Trigger"])["toast"] == {
        "message": "Cluster lab cannot be reached; nothing was done.", "category": "danger"}
    assert db.session.scalar(db.select(db.func.count(BulkOperation.id))) == before


def test_a_cluster_going_away_mid_way_holds_up_only_its_own_part_until_it_answers_again(
        lab, logged_in, client, db, pve, app, pve_version):
    batch(pve, "running", count=2)
    batch(lab, "running", count=6, name="lab")
    lab.task_delay = 1.5  # lab's guests are still shutting down when it stops answering
    response = logged_in.post("/bulk", {"action": "shutdown", **chosen("default/900", "default/901", *(
        f"lab/{vmid}" for vmid in range(900, 906)))}, headers=HX)
    assert response.status_code == 200
    default_part, lab_part = parts(db)
    lab.faults.unreachable = True

    assert follow(client, default_part.id)[1] == [{"message": "Shut down 2 of 2 containers on default.",
                                                   "category": "success"}]
    waiting = client.get(f"/bulk/{lab_part.id}", headers=HX)  # its panel keeps polling, nothing failed
    assert waiting.status_code == 200 and 'data-state="running"' in waiting.text
    assert 'data-state="failed"' not in waiting.text
    show = client.get(f"/bulk/{default_part.id}")  # without JavaScript: both parts of the request, one page
    assert show.status_code == 200 and show.text.count('data-testid="bulk-panel"') == 2

    lab.faults.unreachable = False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the jobs sweep carries lab's part on, asking lab's Proxmox
        advance_all()
        db.session.expire_all()
        if not db.session.get(BulkOperation, lab_part.id).pending:
            break
        time.sleep(0.2)
    lab_part = db.session.get(BulkOperation, lab_part.id)
    assert lab_part.summary == "Shut down 6 of 6 containers on lab."
    assert not any(lab.containers[v].running for v in range(900, 906))
    assert (lab_part.upid is not None) == (pve_version == "9.1")
