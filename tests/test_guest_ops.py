"""Clone, migrate and convert to template from a container's header, each followed to the end of its Proxmox task
(both releases, both databases)."""
from __future__ import annotations

import re

from app.models import AuditEntry, Container, Operation
from tests.fixtures.factories import make_operation
from tests.htmx import HX, toast_of, wait_operation
from tests.pvesim import state as sim_state

DIALOG = {**HX, "HX-Target": "confirm-modal"}
CHANGES = ("POST", "PUT", "DELETE")


def changes(pve) -> int:
    """Requests that could change something in Proxmox."""
    return sum(pve.count_requests(method) for method in CHANGES)


def operation_of(db, vmid: int) -> Operation:
    db.session.expire_all()
    return db.session.scalars(db.select(Operation).join(Container).where(Container.vmid == vmid)
                              .order_by(Operation.id.desc())).first()


def follow(client, db, vmid: int, view: str = "header"):
    operation = operation_of(db, vmid)
    assert operation is not None and operation.pending
    return wait_operation(client, vmid, operation.id, view=view)


def refusal(response) -> str:
    found = re.search(r'data-testid="dialog-error">([^<]+)<', response.text)
    return found.group(1) if found else ""


def test_clones_linked_from_a_template_and_full_to_another_storage(logged_in, client, db, pve, monkeypatch):
    monkeypatch.setattr(sim_state, "STORAGES", [*sim_state.STORAGES,
                                                ("local-zfs", "zfspool", "images,rootdir", 0, 500 * sim_state.GiB)])
    dialog = client.get("/containers/103/clone", headers=DIALOG).text
    assert re.search(r'checked[^>]*value="linked"', dialog) and 'name="vmid"' in dialog and "local-zfs" in dialog

    # a VMID in use is refused before Proxmox is asked to clone; a linked clone is for templates only
    response = logged_in.post("/containers/103/clone", {"vmid": 100, "mode": "linked", "target": "pve1"}, headers=HX)
    assert refusal(response) == "VMID 100 is already in use." and response.headers["HX-Retarget"]
    response = logged_in.post("/containers/104/clone", {"vmid": 300, "mode": "linked", "target": "pve2"}, headers=HX)
    assert "Not a valid choice" in response.text
    response = logged_in.post("/containers/100/clone", {"vmid": 300, "mode": "full", "target": "pve1"}, headers=HX)
    assert refusal(response).startswith("A running container can only be copied from a snapshot")
    assert "It is running and has no snapshot" in client.get("/containers/100/clone", headers=DIALOG).text  # said first
    # the template's disks are on local-lvm: Proxmox would refuse another node ("CT uses local storage")
    response = logged_in.post("/containers/103/clone", {"vmid": 300, "mode": "linked", "target": "pve2"}, headers=HX)
    assert refusal(response).startswith("local-lvm is local to node pve1: a clone can go to another node only")
    assert changes(pve) == 0 and 300 not in pve.containers

    response = logged_in.post("/containers/103/clone", {"vmid": 200, "hostname": "from-template", "mode": "linked",
                                                        "target": "pve1"}, headers=HX)
    assert response.headers.get("HX-Redirect") == "/", refusal(response) or response.text
    dashboard = client.get("/").text
    assert 'id="ct-200"' in dashboard and 'data-testid="pending"' in dashboard.split('id="ct-200"')[1].split('id="ct-')[0]
    final = follow(client, db, 200, view="card")
    assert toast_of(final)["category"] == "success" and "is cloned as CT 200 (from-template)" in toast_of(final)["message"]
    clone, source = pve.containers[200], pve.containers[103]
    assert clone.hostname == "from-template" and not clone.template and clone.lock is None and source.lock is None
    assert clone.config["net0"] != source.config["net0"]  # a new MAC
    assert re.search(r"CT 200 · <a [^>]*>pve1</a>", client.get("/").text)  # the card links its node

    response = logged_in.post("/containers/104/clone", {"vmid": 201, "mode": "full", "target": "pve2",
                                                        "storage": "local-zfs"}, headers=HX)
    assert response.headers["HX-Redirect"] == "/"
    follow(client, db, 201, view="card")
    assert pve.containers[201].config["rootfs"].startswith("local-zfs:vm-201-disk-0,")
    assert db.session.scalar(db.select(AuditEntry).where(AuditEntry.action == "container.clone", AuditEntry.channel == "worker").limit(1)) is not None


def test_migrates_a_running_container_by_restart_and_a_stopped_one_offline(logged_in, client, db, pve, pve_version):
    dialog = client.get("/containers/100/migrate", headers=DIALOG).text
    assert 'data-testid="restart-note"' in dialog and '<option value="pve2">' in dialog and "pve1</option>" not in dialog
    asked = pve.count_requests("GET", "/nodes/pve1/lxc/100/migrate")
    if pve_version == "8.4":
        assert asked == 0 and 'data-testid="preconditions"' not in dialog
    else:
        assert asked == 1 and "Allowed nodes: pve2, pve3" in dialog
        # an HA rule keeping CT 105 apart from CT 101 (on pve2) rules pve2 out, before Proxmox is asked to migrate
        pve.containers[105].ha_state = "started"
        pve.cluster.ha_rules["apart"] = {"type": "resource-affinity", "affinity": "negative",
                                         "resources": "ct:101,ct:105"}
        blocked = client.get("/containers/105/migrate", headers=DIALOG).text
        assert 'data-blocked="pve2"' in blocked and "pve2 (blocked by HA rules)</option>" in blocked
        response = logged_in.post("/containers/105/migrate", {"target": "pve2"}, headers=HX)
        assert refusal(response) == "HA rules keep it from node pve2: ct:101 (resource-affinity)."
        assert changes(pve) == 0

    response = logged_in.post("/containers/100/migrate", {"target": "pve2"}, headers=HX)
    assert 'id="ct-header"' in response.text and 'data-testid="pending"' in response.text
    final = follow(client, db, 100)
    assert toast_of(final) == {"message": f"{pve.containers[100].name} (CT 100) is on pve2 now and running again.",
                               "category": "success"}
    assert pve.containers[100].node == "pve2" and pve.containers[100].running
    assert db.session.scalar(db.select(Container.node).where(Container.vmid == 100)) == "pve2"
    assert re.search(r"CT 100 · <a [^>]*>pve2</a>", client.get("/").text)

    logged_in.post("/containers/104/migrate", {"target": "pve3"}, headers=HX)
    follow(client, db, 104)
    assert pve.containers[104].node == "pve3" and not pve.containers[104].running
    # the node it is on is no target
    response = logged_in.post("/containers/104/migrate", {"target": "pve3"}, headers=HX)
    assert "Not a valid choice" in response.text


def test_converts_to_template_for_admins_only_and_refuses_while_busy(app, auth, client, db, pve):
    auth.login_as("operator")
    assert client.get("/containers/104/template", headers=DIALOG).status_code == 403
    assert client.get("/containers/104/clone", headers=DIALOG).status_code == 200
    header = client.get("/containers/104").text
    assert "Admins can convert containers to templates; you are an operator." in header
    auth.post("/logout")
    auth.login_as("viewer")
    assert auth.post("/containers/104/clone", {"vmid": 300, "mode": "full", "target": "pve2"}, headers=HX).status_code == 403
    assert auth.post("/containers/104/migrate", {"target": "pve3"}, headers=HX).status_code == 403
    auth.post("/logout")
    auth.login_as("admin")

    name = pve.containers[104].name
    assert "Stop the container first" in client.get("/containers/100/template", headers=DIALOG).text
    response = auth.post("/containers/104/template", {"hostname": "wrong"}, headers=HX)
    assert refusal(response) == f"The hostname typed does not match: type {name} to confirm."
    page = client.get("/containers/104/template")  # without JavaScript: a page, and the page again when refused
    assert page.status_code == 200 and "<!doctype html>" in page.text.lower()
    assert auth.post("/containers/104/template", {"hostname": "wrong"}).status_code == 400
    client.get("/")  # the dashboard's sync records every guest
    with app.app_context():
        busy = make_operation(db.session.scalar(db.select(Container).where(Container.vmid == 104)), action="snapshot")
        for url, data in (("/containers/104/template", {"hostname": name}),
                          ("/containers/104/migrate", {"target": "pve3"}),
                          ("/containers/104/clone", {"vmid": 300, "mode": "full", "target": "pve2"})):
            assert refusal(auth.post(url, data, headers=HX)) == "Another operation is in progress (snapshot).", url
        busy.state = "succeeded"
        db.session.commit()
    assert changes(pve) == 0

    response = auth.post("/containers/104/template", {"hostname": name}, headers=HX)
    assert 'data-testid="pending"' in response.text, refusal(response)
    final = follow(client, db, 104)
    assert toast_of(final)["message"] == f"{name} (CT 104) is a template now: clone it to make containers."
    assert pve.containers[104].template and pve.containers[104].config["rootfs"].startswith("local-lvm:base-104-disk-0")
    header = client.get("/containers/104").text
    assert 'data-testid="template-note"' in header
    assert re.search(r'<button[^>]*disabled data-action="start"', header)
