"""The Disks tab as a person uses it: the root disk and mount points, growing a disk to the end of its Proxmox task,
adding a mount point, and what is refused before Proxmox is asked (both releases, both databases)."""
from __future__ import annotations

import re

import pytest

from app.models import AuditEntry, Container, Event, Operation
from app.proxmox import ProxmoxError
from tests.htmx import HX, toast_of, wait_operation

LIVE = {**HX, "HX-Target": "ct-live"}
TAB = {**HX, "HX-Target": "ct-tab"}
VMID = 950


def tab(client, vmid: int = VMID) -> str:
    response = client.get(f"/containers/{vmid}/disks", headers=TAB)
    assert response.status_code == 200, response.text
    return response.text


def disk_rows(html: str) -> dict[str, str]:
    """Each listed disk (``rootfs``, ``mp0``…) with its row's markup."""
    return dict(re.findall(r'<li class="py-2 border-bottom" data-disk="([^"]+)"(.*?)</li>', html, re.S))


def refused_in_dialog(response) -> str:
    """The dialog came back (into the open modal) with an error; its text."""
    assert response.status_code == 200 and response.headers.get("HX-Retarget") == "#confirm-modal .modal-content", \
        response.text
    return response.text


def sent(pve, method: str, suffix: str) -> int:
    return sum(1 for r in pve.requests if r["method"] == method and r["path"].endswith(suffix))


def test_growing_the_root_disk_follows_its_task_and_a_shrink_is_refused_first(logged_in, client, db, pve, pve_client):
    ct = pve.add_container(vmid=VMID, status="running", hostname="grow-me", disk_gb=8)
    rows = disk_rows(tab(client))
    assert list(rows) == ["rootfs"] and "8 GiB" in rows["rootfs"] and 'data-testid="grow"' in rows["rootfs"]
    assert 'data-testid="root-usage"' in rows["rootfs"]  # running: Proxmox reports its use
    dialog = client.get(f"/containers/{VMID}/disks/rootfs/grow", headers=HX)
    assert dialog.status_code == 200 and 'data-testid="current-size">8 GiB<' in dialog.text

    # a shrink or no change is refused beside the field; Proxmox is not asked
    pve.clear_requests()
    for mode, amount in (("to", 4), ("to", 8)):
        html = refused_in_dialog(logged_in.post(f"/containers/{VMID}/disks/rootfs/grow",
                                                {"mode": mode, "amount": amount}, headers=LIVE))
        assert "Proxmox cannot shrink a disk" in html if amount == 4 else "is already 8 GiB" in html
    assert "Give a whole number of GiB" in refused_in_dialog(
        logged_in.post(f"/containers/{VMID}/disks/rootfs/grow", {"mode": "by", "amount": 0}, headers=LIVE))
    assert sent(pve, "PUT", "/resize") == 0

    response = logged_in.post(f"/containers/{VMID}/disks/rootfs/grow", {"mode": "by", "amount": 2}, headers=LIVE)
    assert response.status_code == 200 and "HX-Retarget" not in response.headers, response.text
    assert 'data-testid="disk-pending"' in response.text and 'id="ct-header"' in response.text
    db.session.expire_all()
    operation = db.session.scalars(db.select(Operation).join(Container).where(Container.vmid == VMID)).one()
    assert operation.action == "resize" and operation.params["size"] == "+2G"
    final = wait_operation(client, VMID, operation.id, view="header")
    assert toast_of(final) == {"message": "The root disk of grow-me (CT 950) grown to 10 GiB.", "category": "success"}
    assert "size=10G" in pve.containers[VMID].config["rootfs"]
    assert pve_client.container_status(ct.node, VMID).maxdisk == 10 * 1024**3  # what the cards' disk bar shows
    rows = disk_rows(tab(client))
    assert "10 GiB" in rows["rootfs"] and 'data-testid="disk-pending"' not in rows["rootfs"]
    events = db.session.scalars(db.select(Event.message).join(Container).where(Container.vmid == VMID)).all()
    assert "The root disk of grow-me (CT 950) grown to 10 GiB." in events
    entries = db.session.execute(db.select(AuditEntry.channel, AuditEntry.outcome).where(
        AuditEntry.vmid == VMID, AuditEntry.action == "container.resize")).all()
    assert sorted(entries) == [("web", "failed")] * 3 + [("web", "succeeded"), ("worker", "succeeded")]


def test_bind_mounts_are_listed_without_grow_and_a_mount_point_is_added(logged_in, client, db, pve, pve_client):
    ct = pve.add_container(vmid=VMID, status="running", hostname="mounts", mp0="/srv/data,mp=/data,ro=1")
    rows = disk_rows(tab(client))
    assert list(rows) == ["rootfs", "mp0"] and 'data-kind="bind"' in rows["mp0"] and "Bind mount" in rows["mp0"]
    assert 'data-testid="grow"' not in rows["mp0"] and "read-only" in rows["mp0"] and "/srv/data" in rows["mp0"]
    pve.clear_requests()
    assert "Proxmox cannot resize it" in refused_in_dialog(
        logged_in.post(f"/containers/{VMID}/disks/mp0/grow", {"mode": "by", "amount": 1}, headers=LIVE))
    # Proxmox itself refuses it too, and a shrink, before starting a task (the simulator as resize_vm)
    for disk, size, message in (("mp0", "+1G", "unable to parse volume ID '/srv/data'"),
                                ("rootfs", "4G", "unable to shrink disk size")):
        with pytest.raises(ProxmoxError) as refused:
            pve_client.resize_disk(ct.node, VMID, disk, size)
        assert message in refused.value.message
    pve.clear_requests()

    bad = {("path", "data"): "Give an absolute path", ("path", "/"): "/ is the root disk",
           ("path", "/data/"): "/data is already a mount point", ("size", 0): "Give a whole number of GiB",
           ("storage", "local"): "cannot hold container volumes"}
    for (field, value), message in bad.items():
        form = {"storage": "local-lvm", "size": 4, "path": "/var/lib/app", "backup": "y", field: value}
        assert message in refused_in_dialog(logged_in.post(f"/containers/{VMID}/disks", form, headers=LIVE))
    assert sent(pve, "PUT", "/config") == 0 and sent(pve, "PUT", "/resize") == 0

    response = logged_in.post(f"/containers/{VMID}/disks",
                              {"storage": "local-lvm", "size": 4, "path": "/var/lib/app", "backup": "y"}, headers=LIVE)
    assert toast_of(response) == {"category": "success", "message":
                                  "Mount point mp1 (4 GiB on local-lvm) added to mounts (CT 950) at /var/lib/app."}
    # hot-plugged into the running container, not left pending until a restart
    assert pve.containers[VMID].config["mp1"] == f"local-lvm:vm-{VMID}-disk-2,mp=/var/lib/app,backup=1,size=4G"
    row = disk_rows(response.text)["mp1"]
    assert all(part in row for part in ("4 GiB", "/var/lib/app", 'data-testid="in-backups"', 'data-testid="grow"'))
    events = db.session.scalars(db.select(Event.message).join(Container).where(Container.vmid == VMID)).all()
    assert any(m.startswith("Mount point mp1 (4 GiB on local-lvm) added") for m in events)
    assert db.session.scalar(db.select(AuditEntry).where(AuditEntry.action == "container.mount-point-add",
                                                         AuditEntry.outcome == "succeeded")) is not None


def test_nothing_changes_while_another_operation_runs(logged_in, client, db, pve):
    pve.add_container(vmid=VMID, hostname="busy")
    pve.task_delay = 30  # the snapshot's task runs until the simulator's reset cuts it short
    assert logged_in.post(f"/containers/{VMID}/snapshots", {"name": "first"}, headers=LIVE).status_code == 200
    html = tab(client)
    assert 'data-testid="add-mount-point"' in html and "Another operation is in progress (snapshot)." in html
    pve.clear_requests()
    form = {"storage": "local-lvm", "size": 4, "path": "/srv", "backup": "y"}
    assert "Another operation is in progress" in refused_in_dialog(
        logged_in.post(f"/containers/{VMID}/disks", form, headers=LIVE))
    assert "Another operation is in progress" in refused_in_dialog(
        logged_in.post(f"/containers/{VMID}/disks/rootfs/grow", {"mode": "by", "amount": 1}, headers=LIVE))
    assert sent(pve, "PUT", "/config") == 0 and sent(pve, "PUT", "/resize") == 0
    for task in pve.cluster.running_tasks():
        task.cancelled = True  # end the snapshot now rather than make the teardown wait for it
