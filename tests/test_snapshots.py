"""The Snapshots tab as a person uses it: the tree, taking, rolling back and deleting snapshots, each followed to
the end of its Proxmox task (both releases, both databases)."""
from __future__ import annotations

import re
import time

import pytest

from app.models import AuditEntry, Container, Event, Operation
from app.containers.snapshots import snapshot_tree
from app.proxmox import Snapshot
from tests.htmx import HX, toast_of, wait_operation

LIVE = {**HX, "HX-Target": "ct-live"}
TAB = {**HX, "HX-Target": "ct-tab"}


def tab(client, vmid: int) -> str:
    response = client.get(f"/containers/{vmid}/snapshots", headers=TAB)
    assert response.status_code == 200, response.text
    return response.text


def rows(html: str) -> list[tuple[str, str]]:
    """(snapshot, parent) of each row of the tree, in the order shown."""
    return re.findall(r'<li data-snapshot="([^"]+)" data-parent="([^"]*)"', html)


def latest_operation(db, vmid: int) -> Operation:
    db.session.expire_all()
    return db.session.scalars(db.select(Operation).join(Container).where(Container.vmid == vmid)
                              .order_by(Operation.id.desc())).first()


def follow(client, db, vmid: int):
    """Poll like the header's spinner until the task ends; returns the final header (with the outcome's toast)."""
    operation = latest_operation(db, vmid)
    assert operation is not None and operation.pending, "no snapshot operation was started"
    return wait_operation(client, vmid, operation.id, view="header")


def take(logged_in, client, db, vmid: int, name: str, description: str = ""):
    """Take a snapshot through the dialog (htmx) and wait for its task; returns the final response."""
    response = logged_in.post(f"/containers/{vmid}/snapshots", {"name": name, "description": description},
                              headers=LIVE)
    assert response.status_code == 200 and "HX-Retarget" not in response.headers, response.text
    assert 'data-testid="snapshot-pending"' in response.text and 'id="ct-header"' in response.text
    return follow(client, db, vmid)


# -- the tree -------------------------------------------------------------------------------------------------

def test_the_tree_puts_each_snapshot_under_its_parent_and_marks_the_current_branch():
    snaps = (Snapshot("base", snaptime=1), Snapshot("a", snaptime=2, parent="base"),
             Snapshot("b", snaptime=3, parent="base"), Snapshot("b2", snaptime=4, parent="b"),
             Snapshot("current", parent="a", current=True))
    [root] = snapshot_tree(snaps)
    assert root.snapshot.name == "base" and [c.snapshot.name for c in root.children] == ["a", "b"]
    a, b = root.children
    assert [c.snapshot.name for c in a.children] == ["current"] and [c.snapshot.name for c in b.children] == ["b2"]
    assert root.on_branch and a.on_branch and a.children[0].on_branch and not b.on_branch
    # a parent Proxmox no longer lists, or a cycle, makes a root instead of losing the snapshot
    assert [n.snapshot.name for n in snapshot_tree((Snapshot("x", parent="gone"), Snapshot("current", current=True)))] \
        == ["x", "current"]


def test_a_container_without_snapshots_says_so_and_offers_to_take_one(logged_in, client, pve):
    html = tab(client, 104)
    assert "No snapshots yet" in html and 'data-testid="take-snapshot"' in html
    assert 'href="/containers/104/snapshots/new"' in html and 'data-testid="snapshot-count">0<' in html


def test_taking_snapshots_builds_the_tree_and_deleting_one_relinks_its_child(logged_in, client, db, pve):
    final = take(logged_in, client, db, 104, "before-upgrade", "apt full-upgrade next")
    assert toast_of(final) == {"message": f"Snapshot “before-upgrade” of {pve.containers[104].name} (CT 104) taken.",
                               "category": "success"}
    assert 'data-testid="pending"' not in final.text and 'data-testid="snapshot-pending"' not in tab(client, 104)
    take(logged_in, client, db, 104, "after-upgrade")
    html = tab(client, 104)
    assert rows(html) == [("before-upgrade", ""), ("after-upgrade", "before-upgrade"), ("current", "after-upgrade")]
    assert "apt full-upgrade next" in html and 'data-testid="you-are-here"' in html
    assert re.search(r'data-testid="snapshot-time">\d{4}-\d\d-\d\d \d\d:\d\d UTC</time> · just now', html)
    assert html.count("data-on-branch") == 3

    response = logged_in.post("/containers/104/snapshots/before-upgrade/delete", {}, headers=LIVE)
    assert response.status_code == 200
    assert toast_of(follow(client, db, 104))["category"] == "success"
    assert rows(tab(client, 104)) == [("after-upgrade", ""), ("current", "after-upgrade")]
    assert list(pve.containers[104].snapshots) == ["after-upgrade"]
    db.session.expire_all()
    messages = db.session.scalars(db.select(Event.message).join(Container).where(Container.vmid == 104)
                                  .order_by(Event.id)).all()
    assert any(m.startswith("Snapshot requested by alice: Snapshot “before-upgrade”") for m in messages)
    assert any(m.startswith("Snapshot “before-upgrade” of ") and m.endswith(" deleted.") for m in messages)
    actions = set(db.session.scalars(db.select(AuditEntry.action)))
    assert {"container.snapshot", "container.snapshot-delete"} <= actions


@pytest.mark.parametrize(("name", "error"), [
    ("", "Give the snapshot a name."),
    ("1st", "Start with a letter"),
    ("a", "Start with a letter"),  # Proxmox's pve-configid needs two characters at least
    ("before upgrade", "Start with a letter"),
    ("v1.2", "Start with a letter"),
    ("x" * 41, "At most 40 characters"),
    ("current", "“current” is reserved by Proxmox"),
    ("vzdump", "“vzdump” is reserved by Proxmox"),
])
def test_a_name_proxmox_would_refuse_is_refused_beside_its_field_and_nothing_changes(logged_in, client, db, pve,
                                                                                     name, error):
    response = logged_in.post("/containers/104/snapshots", {"name": name}, headers=LIVE)
    assert response.status_code == 200
    assert response.headers["HX-Retarget"] == "#confirm-modal .modal-content"
    assert re.search(r'is-invalid.*?<div class="invalid-feedback">' + re.escape(error), response.text, re.S)
    assert pve.containers[104].snapshots == {}
    assert pve.count_requests("POST", "/nodes/pve2/lxc/104/snapshot") == 0
    assert latest_operation(db, 104) is None


def test_a_name_already_used_is_refused_and_the_plain_form_works_without_javascript(logged_in, client, db, pve):
    page = client.get("/containers/104/snapshots/new")
    assert page.status_code == 200 and "<html" in page.text and 'name="name"' in page.text
    response = logged_in.post("/containers/104/snapshots", {"name": "Mixed_Case-1", "description": "first"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/containers/104/snapshots")
    assert "Mixed_Case-1" in pve.containers[104].snapshots
    assert "taken." in client.get(response.headers["Location"]).text  # the flash after the wait

    again = logged_in.post("/containers/104/snapshots", {"name": "Mixed_Case-1"})
    assert again.status_code == 200 and "<html" in again.text
    assert "A snapshot named “Mixed_Case-1” already exists." in again.text
    assert list(pve.containers[104].snapshots) == ["Mixed_Case-1"]
    assert pve.count_requests("POST", "/nodes/pve2/lxc/104/snapshot") == 1


def test_rollback_restores_the_config_and_starts_the_container_when_asked(logged_in, client, db, pve):
    take(logged_in, client, db, 100, "known-good")
    pve.containers[100].config["memory"] = 4096  # changed after the snapshot
    confirm = client.get("/containers/100/snapshots/known-good/rollback", headers=HX)
    assert "every change made since then" in confirm.text and 'data-testid="stops-first"' in confirm.text
    assert re.search(r'<input checked[^>]*name="start"|<input[^>]*name="start"[^>]*checked', confirm.text)
    memory_then = pve.containers[100].snapshots["known-good"]["memory"]

    response = logged_in.post("/containers/100/snapshots/known-good/rollback", {"start": "y"}, headers=LIVE)
    assert response.status_code == 200 and toast_of(follow(client, db, 100))["message"].endswith(
        "rolled back to “known-good” and started.")
    assert pve.containers[100].config["memory"] == memory_then and pve.containers[100].status == "running"
    overview = client.get("/containers/100/overview", headers=TAB).text
    assert f'data-config="memory">{memory_then} MiB<' in overview


def test_rollback_without_start_leaves_a_running_container_stopped(logged_in, client, db, pve):
    take(logged_in, client, db, 100, "s1")
    logged_in.post("/containers/100/snapshots/s1/rollback", {}, headers=LIVE)
    assert toast_of(follow(client, db, 100))["message"].endswith("rolled back to “s1”.")
    assert pve.containers[100].status == "stopped"


def test_a_failing_task_ends_as_an_error_event_and_a_red_toast(logged_in, client, db, pve):
    pve.faults.fail_next_task(type="vzsnapshot", vmid=104)
    response = logged_in.post("/containers/104/snapshots", {"name": "doomed"}, headers=LIVE)
    assert response.status_code == 200
    final = follow(client, db, 104)
    toast = toast_of(final)
    assert toast["category"] == "danger" and toast["message"].startswith("Snapshot “doomed” of ") and " failed: " in toast["message"]
    assert 'data-testid="snapshot-failed"' in tab(client, 104)
    events = client.get("/containers/104/events?type=error", headers=TAB).text
    assert "Snapshot “doomed”" in events


def test_a_pending_operation_disables_the_buttons_with_the_reason(logged_in, client, db, pve):
    take(logged_in, client, db, 104, "s1")
    container = db.session.scalar(db.select(Container).where(Container.vmid == 104))
    db.session.add(Operation(container_id=container.id, action="start", state="running", requested_by="alice"))
    db.session.commit()
    html = tab(client, 104)
    assert 'title="Another operation is in progress (start)."' in html
    assert 'href="/containers/104/snapshots/s1/rollback"' not in html
    refused = logged_in.post("/containers/104/snapshots/s1/rollback", {}, headers=LIVE)
    assert toast_of(refused) == {"message": "Another operation is in progress (start).", "category": "danger"}


def test_proxmox_failing_shows_the_error_in_the_tab_never_an_empty_tree(logged_in, client, pve):
    pve.faults.fail_path("GET", r"/lxc/104/snapshot$", status=500)
    html = tab(client, 104)
    assert 'data-testid="snapshots-error"' in html and "Proxmox did not list the snapshots" in html
    assert "No snapshots yet" not in html and 'data-testid="take-snapshot"' not in html


def test_without_the_snapshot_feature_the_tab_says_why_and_offers_no_button(logged_in, client, pve):
    pve.containers[104].config["mp0"] = "/srv/shared,mp=/shared"  # a bind mount
    html = tab(client, 104)
    assert 'data-testid="snapshots-unavailable"' in html and "a bind mount" in html
    assert 'data-testid="take-snapshot"' not in html


def test_a_viewer_sees_the_tree_but_cannot_take_roll_back_or_delete(auth, client, db, pve):
    from tests.fixtures.factories import make_user

    pve.containers[104].snapshots["kept"] = {**pve.containers[104].config, "snaptime": int(time.time())}
    make_user("vera", role="viewer")
    auth.login("vera", create=False)
    html = tab(client, 104)
    assert rows(html)[0] == ("kept", "") and "Operators and admins can take and roll back snapshots" in html
    for url in ("/containers/104/snapshots", "/containers/104/snapshots/kept/rollback",
                "/containers/104/snapshots/kept/delete"):
        assert auth.post(url, {"name": "nope"}).status_code == 403
    assert client.get("/containers/104/snapshots/new").status_code == 403
    assert list(pve.containers[104].snapshots) == ["kept"] and pve.containers[104].status == "stopped"


def test_with_proxmox_down_the_tab_says_so_and_nothing_can_be_started(logged_in, client, db, pve):
    client.get("/")  # the dashboard records the containers: Proxboard knows CT 104
    pve.faults.fail_path(None, r".*", status=503, message="pveproxy is restarting")
    page = client.get("/containers/104/snapshots")
    assert page.status_code == 200 and 'data-testid="snapshots-error"' in page.text
    assert "The snapshots cannot be read" in page.text and "No snapshots yet" not in page.text
    refused = logged_in.post("/containers/104/snapshots", {"name": "later"})
    assert refused.status_code == 302
    assert latest_operation(db, 104) is None


def test_rollback_and_delete_work_as_plain_pages_without_javascript(logged_in, client, db, pve):
    take(logged_in, client, db, 104, "s1")
    confirm = client.get("/containers/104/snapshots/s1/rollback")
    assert "<html" in confirm.text and "every change made since then" in confirm.text
    assert 'data-testid="stops-first"' not in confirm.text  # it is stopped
    done = logged_in.post("/containers/104/snapshots/s1/rollback", {})
    assert done.status_code == 302
    assert "rolled back to “s1”." in client.get(done.headers["Location"]).text
    assert "<html" in client.get("/containers/104/snapshots/s1/delete").text
    logged_in.post("/containers/104/snapshots/s1/delete", {})
    assert pve.containers[104].snapshots == {}
    gone = client.get("/containers/104/snapshots/s1/delete").text
    assert "There is no snapshot “s1” any more." in gone and re.search(r'data-testid="confirm"\s+disabled', gone)
