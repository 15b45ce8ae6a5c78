"""The Backups tab of a container's page as a person uses it: the list across storages, back up now followed
live from the task log, restore (to a new VMID, over the container), delete, protect, and who may do what."""
from __future__ import annotations

import html as markup
import json
import re
import time

import pytest

from app.models import AuditEntry, Container, Event, Operation
from tests.htmx import HX, toast_of

TAB = {**HX, "HX-Target": "ct-tab"}
CHANGES = ("POST", "PUT", "DELETE")


def volids(html: str) -> list[str]:
    """The backups the tab lists, top to bottom."""
    return re.findall(r'<li class="list-group-item backup-item" data-volid="([^"]+)"', html)


def row(html: str, volid: str) -> str:
    """One backup's table row."""
    return html.split(f'data-volid="{volid}"')[1].split("</li>")[0]


def changes(pve) -> int:
    """Requests that could change something in Proxmox."""
    return sum(pve.count_requests(method) for method in CHANGES)


def latest(db, action: str) -> Operation:
    return db.session.scalars(db.select(Operation).where(Operation.action == action)
                              .order_by(Operation.id.desc())).first()


def lines_in(html: str) -> list[tuple[int, str]]:
    """The task log lines a response shows: (number, text)."""
    return [(int(n), markup.unescape(text)) for n, text in re.findall(r'data-n="(\d+)">([^<]*)</span>', html)]


def follow(client, vmid: int, operation: Operation, started=None, timeout: float = 15):
    """Poll the task like the tab does, after the lines the tab ``started`` with already showed; (log lines
    seen, the last response: the tab once the task ended)."""
    lines = [text for _, text in lines_in(started.text)] if started is not None else []
    after = lines_in(started.text)[-1][0] if lines else 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/containers/{vmid}/backups/tasks/{operation.id}?after={after}", headers=TAB)
        assert response.status_code == 200, response.text
        if response.headers.get("HX-Reswap") == "innerHTML":  # the tab, its last task's whole log folded in it
            return lines + [text for _, text in lines_in(response.text)], response
        lines += [text for _, text in lines_in(response.text)]
        after = int(re.search(r"after=(\d+)", response.text).group(1))
        time.sleep(0.1)
    raise AssertionError("the backup task did not end")


def told(done) -> dict:
    """How the ended task was told: the poll's toast, or (when the tab's own render settled it first) the tab's
    last-task line, as {"message", "category"}."""
    if "HX-Trigger" in done.headers:
        return toast_of(done)
    state, message = re.search(r'data-testid="last-task" data-state="(\w+)">\s*<i[^>]*></i>\s*<span>([^<]*)</span>',
                               done.text).groups()
    return {"message": markup.unescape(message), "category": "success" if state == "succeeded" else "danger"}


def accepted(response) -> str:
    """What the tab shows once a task was started: its running task (no toast: the panel says it), or, when it
    ended while the tab rendered, a toast of its outcome."""
    assert json.loads(response.headers["HX-Trigger"]).get("close-modal")
    if "toast" in response.headers["HX-Trigger"]:
        told = toast_of(response)
        assert told["category"] == "success", told
        return told["message"]
    return markup.unescape(re.search(r'data-testid="backup-task"[^>]*>.*?<span>([^<]*) is running…</span>',
                                     response.text, re.S).group(1))


def backup_now(logged_in, vmid: int, **fields):
    data = {"storage": "local", "mode": "snapshot", "compress": "zstd", "notes": "{{guestname}}", **fields}
    return logged_in.post(f"/containers/{vmid}/backups", data, headers=TAB)


# -- the list ---------------------------------------------------------------------------------------------------

def test_every_backup_on_every_backup_storage_newest_first_with_verification_and_protection(logged_in, client, pve):
    html = client.get("/containers/111/backups").text
    listed = volids(html)
    assert [v.partition(":")[0] for v in listed] == ["pbs", "backup-nfs", "pbs"]
    assert all("/111/" in v or "-111-" in v for v in listed)
    assert 'data-testid="verified">verified<' in row(html, listed[0])
    assert 'data-testid="backup-notes">' + pve.containers[111].name + "<" in row(html, listed[0])
    assert "backup-notes" not in row(html, listed[1])  # the weekly archive has none
    assert re.search(r'data-testid="backup-size">[\d.]+ MiB<', row(html, listed[1]))
    assert re.search(r'<time class="fw-semibold" datetime="[\d-]+T[\d:]+\+00:00" data-local', row(html, listed[0]))
    assert "tar.zst" in row(html, listed[1]) and "verified" not in row(html, listed[1])

    protected = client.get("/containers/112/backups").text
    first = volids(protected)[0]
    assert 'data-testid="protected"' in row(protected, first)
    assert re.search(r'title="Protected: remove the protection first\."[^>]*>\s*<button[^>]*disabled data-testid="delete-backup"',
                     row(protected, first))
    assert 'href="/containers/112/backups/delete' in row(protected, volids(protected)[1])

    failed = client.get("/containers/116/backups").text
    assert 'data-testid="verify-failed">verification failed<' in failed
    old_local = client.get("/containers/105/backups").text
    assert any(v.startswith("local:backup/vzdump-lxc-105-") for v in volids(old_local))


def test_a_container_without_backups_says_so_and_names_the_storages_looked_at(logged_in, client, pve):
    html = client.get("/containers/109/backups").text
    assert volids(html) == [] and "No backups yet" in html
    assert "backup-nfs, local, pbs" in html


def test_a_storage_that_fails_shows_its_error_while_the_others_list(logged_in, client, pve):
    node = pve.containers[111].node
    pve.faults.fail_path("GET", rf"/nodes/{node}/storage/pbs/content", 500, "datastore offline")
    html = client.get("/containers/111/backups").text
    assert re.search(r'data-storage="pbs">\s*<i[^>]*></i> Backups on <strong>pbs</strong> cannot be read: .*datastore offline', html)
    assert [v.partition(":")[0] for v in volids(html)] == ["backup-nfs"]
    assert "No backups yet" not in html


def test_storages_that_cannot_be_listed_never_read_as_no_backups(logged_in, client, pve):
    node = pve.containers[111].node
    pve.faults.fail_path("GET", rf"/nodes/{node}/storage$", 500, "pvestatd hangs")
    response = client.get("/containers/111/backups")
    assert response.status_code == 200
    assert 'data-testid="backups-error"' in response.text and "pvestatd hangs" in response.text
    assert "No backups yet" not in response.text and volids(response.text) == []


# -- back up now --------------------------------------------------------------------------------------------------

def test_back_up_now_follows_the_task_log_and_lists_the_new_backup(logged_in, client, db, pve):
    dialog = client.get("/containers/104/backups/new", headers=HX).text
    assert 'value="local"' in dialog and 'value="pbs"' in dialog and "Proxmox Backup Server" in dialog
    assert "local-lvm" not in dialog and 'value="{{guestname}}"' in dialog and 'data-testid="stop-warning"' in dialog
    before = set(volids(client.get("/containers/104/backups").text))

    response = backup_now(logged_in, 104, notes="{{guestname}} by hand", protected="y")
    assert response.status_code == 200 and response.headers["HX-Retarget"] == "#ct-tab"
    assert re.match(rf"(Backup of )?{pve.containers[104].name} \(CT 104\)( to| is backed up to) local", accepted(response))
    operation = latest(db, "backup")
    lines, done = follow(client, 104, operation, response)
    assert any(line.startswith("INFO: starting new backup job: vzdump 104") for line in lines)
    assert told(done) == {"message": f"{pve.containers[104].name} (CT 104) is backed up to local.",
                              "category": "success"}
    (made,) = set(volids(done.text)) - before
    assert made.startswith("local:backup/vzdump-lxc-104-") and made.endswith(".tar.zst")
    assert f"{pve.containers[104].name} by hand" in row(done.text, made) and 'data-testid="protected"' in row(done.text, made)
    assert 'data-testid="last-task" data-state="succeeded"' in done.text

    container = Container.current(104)
    messages = [e.message for e in db.session.scalars(db.select(Event).where(Event.container_id == container.id)
                                                       .order_by(Event.id))]
    assert any(m.startswith("Backup requested by alice: Backup of") and "to local (snapshot mode)" in m for m in messages)
    assert messages[-1] == f"{pve.containers[104].name} (CT 104) is backed up to local."
    audits = db.session.scalars(db.select(AuditEntry.action).where(AuditEntry.action == "container.backup")).all()
    assert len(audits) == 2  # the request, and the worker's entry of how the task ended


def test_stop_mode_stops_the_container_for_the_backup_and_starts_it_again(logged_in, client, db, pve):
    assert pve.containers[100].running
    started = backup_now(logged_in, 100, mode="stop", storage="backup-nfs", compress="gzip")
    lines, done = follow(client, 100, latest(db, "backup"), started)
    assert "INFO: backup mode: stop" in lines and "INFO: stopping virtual guest" in lines
    assert "INFO: restarting vm" in lines and pve.containers[100].running
    assert any(v.startswith("backup-nfs:backup/vzdump-lxc-100-") and v.endswith(".tar.gz") for v in volids(done.text))


def test_a_backup_that_fails_says_why(logged_in, client, db, pve):
    pve.faults.fail_next_task(type="vzdump", message="no space left on device")
    backup_now(logged_in, 104)
    _, done = follow(client, 104, latest(db, "backup"))
    assert told(done)["category"] == "danger" and "no space left on device" in told(done)["message"]
    assert 'data-testid="last-task" data-state="failed"' in done.text


@pytest.mark.parametrize(("fields", "message"), [
    ({"storage": "local-lvm"}, "Not a valid choice"),
    ({"storage": "nowhere"}, "Not a valid choice"),
    ({"mode": "fast"}, "Not a valid choice"),
    ({"compress": "bzip9"}, "Not a valid choice"),
    ({"notes": "x" * 1025}, "At most 1024 characters."),
])
def test_invalid_backup_requests_change_nothing(logged_in, client, db, pve, fields, message):
    response = backup_now(logged_in, 104, **fields)
    assert response.status_code == 200 and response.headers["HX-Retarget"] == "#confirm-modal .modal-content"
    assert message in response.text and 'data-kind="backup"' in response.text
    assert changes(pve) == 0 and latest(db, "backup") is None
    plain = logged_in.post("/containers/104/backups", {"storage": "local", "mode": "snapshot", "compress": "zstd",
                                                       "notes": "", **fields})
    assert plain.status_code == 400 and message in plain.text and "<html" in plain.text


def test_a_locked_container_cannot_be_backed_up(logged_in, client, db, pve):
    html = client.get("/containers/102/backups").text
    assert re.search(r'title="The container is locked \(backup\)\."[^>]*>\s*<button[^>]*disabled data-testid="backup-now"', html)
    response = backup_now(logged_in, 102)
    assert "The container is locked (backup)." in response.text
    assert changes(pve) == 0 and latest(db, "backup") is None


# -- restore --------------------------------------------------------------------------------------------------------

def test_restore_to_a_new_vmid_creates_the_container_and_shows_it_on_the_dashboard(logged_in, client, db, pve):
    source = volids(client.get("/containers/111/backups").text)[0]
    dialog = client.get(f"/containers/111/backups/restore/new?volid={source}", headers=HX).text
    suggested = int(re.search(r'name="vmid"[^>]*value="(\d+)"', dialog).group(1))
    assert suggested not in pve.containers and re.search(r'<option selected value="local-lvm">', dialog)

    response = logged_in.post("/containers/111/backups/restore/new",
                              {"volid": source, "vmid": suggested, "storage": "local-lvm", "unique": "y"}, headers=TAB)
    assert response.status_code == 200, response.text
    assert f"CT {suggested}" in accepted(response)
    operation = latest(db, "restore")
    assert operation.container.vmid == suggested and operation.container.lifecycle == "ready"
    dashboard = client.get("/").text
    assert f'id="ct-{suggested}"' in dashboard  # the new card, with the restore's spinner meanwhile
    lines, done = follow(client, 111, operation)
    assert any(line.startswith(f"restoring '{source}'") for line in lines)
    assert f"is restored as CT {suggested}." in told(done)["message"]
    assert f'href="/containers/{suggested}" data-testid="open-restored"' in done.text
    restored = pve.containers[suggested]
    assert restored.name == pve.containers[111].name and "local-lvm:" in restored.config["rootfs"]
    assert pve.containers[111].config["net0"] != restored.config["net0"]  # unique: new MAC addresses
    assert f'id="ct-{suggested}"' in client.get("/").text
    assert client.get(f"/containers/{suggested}").status_code == 200


def test_a_failed_restore_to_a_new_vmid_frees_the_vmid_again(logged_in, client, db, pve):
    source = volids(client.get("/containers/111/backups").text)[0]
    pve.faults.fail_next_task(type="vzrestore", message="unable to restore: disk full")
    logged_in.post("/containers/111/backups/restore/new", {"volid": source, "vmid": 150, "storage": "local-lvm"}, headers=TAB)
    _, done = follow(client, 111, latest(db, "restore"))
    db.session.expire_all()
    assert "disk full" in told(done)["message"] and Container.current(150) is None


@pytest.mark.parametrize(("vmid", "message"), [
    (50, "A VMID is a number from 100 to 999999999."),
    ("", "Give the VMID of the new container."),
    (101, "VMID 101 is already in use."),
])
def test_restore_to_a_bad_or_used_vmid_changes_nothing(logged_in, client, db, pve, vmid, message):
    source = volids(client.get("/containers/111/backups").text)[0]
    response = logged_in.post("/containers/111/backups/restore/new", {"volid": source, "vmid": vmid, "storage": "local-lvm"},
                              headers=TAB)
    assert message in response.text and response.headers["HX-Retarget"] == "#confirm-modal .modal-content"
    assert changes(pve) == 0 and latest(db, "restore") is None


def test_restore_of_another_containers_backup_or_to_a_foreign_storage_is_refused(logged_in, client, db, pve):
    other = volids(client.get("/containers/112/backups").text)[0]
    response = logged_in.post("/containers/111/backups/restore/new", {"volid": other, "vmid": 150, "storage": "local-lvm"},
                              headers=TAB)
    assert "is not a backup of CT 111" in response.text
    mine = volids(client.get("/containers/111/backups").text)[0]
    response = logged_in.post("/containers/111/backups/restore/new",
                              {"volid": mine, "vmid": 150, "storage": "pbs"}, headers=TAB)
    assert "Not a valid choice" in response.text
    response = logged_in.post("/containers/111/backups/restore/new", {"volid": mine, "vmid": 150}, headers=TAB)
    assert "Not a valid choice" in response.text  # Proxmox would put the disks on 'local', which holds none
    assert changes(pve) == 0 and latest(db, "restore") is None


def test_restore_over_a_running_container_is_refused(logged_in, client, db, pve):
    html = client.get("/containers/100/backups").text
    assert "can&#39;t overwrite a running container" in html  # the disabled button's reason
    source = volids(html)[0]
    dialog = client.get(f"/containers/100/backups/restore/over?volid={source}", headers=HX).text
    assert "can&#39;t overwrite a running container" in dialog
    response = logged_in.post("/containers/100/backups/restore/over",
                              {"volid": source, "hostname": pve.containers[100].name,
                                                                      "storage": "local-lvm"}, headers=TAB)
    assert "can&#39;t overwrite a running container" in response.text
    assert changes(pve) == 0 and latest(db, "restore") is None


def test_restore_over_needs_the_hostname_typed(logged_in, client, db, pve):
    source = volids(client.get("/containers/104/backups").text)[-1]
    response = logged_in.post("/containers/104/backups/restore/over", {"volid": source, "hostname": "nope",
                                                                       "storage": "local-lvm"}, headers=TAB)
    assert f"type {pve.containers[104].name} to confirm" in response.text
    assert changes(pve) == 0 and latest(db, "restore") is None


def test_restore_over_a_stopped_container_replaces_it(logged_in, client, db, pve):
    name = pve.containers[104].name
    source = volids(client.get("/containers/104/backups").text)[-1]
    dialog = client.get(f"/containers/104/backups/restore/over?volid={source}").text
    assert "current disks and snapshots are destroyed" in dialog and f"Type {name} to confirm." in dialog
    response = logged_in.post("/containers/104/backups/restore/over", {"volid": source, "hostname": name,
                                                                       "storage": "local-lvm"})
    assert response.status_code == 302
    operation = latest(db, "restore")
    assert operation.container.vmid == 104 and operation.params["over"] is True
    lines, done = follow(client, 104, operation)
    assert any("successfully removed" in line for line in lines)
    assert told(done)["message"] == f"{name} (CT 104) is restored from its backup {source.split('/', 1)[1]}."


# -- delete and protect ---------------------------------------------------------------------------------------------

def test_delete_a_backup(logged_in, client, db, pve):
    target = [v for v in volids(client.get("/containers/111/backups").text) if v.startswith("backup-nfs:")][0]
    dialog = client.get(f"/containers/111/backups/delete?volid={target}").text
    assert "Delete this backup" in dialog and target in dialog
    response = logged_in.post("/containers/111/backups/delete", {"volid": target}, headers=TAB)
    assert "backup" in accepted(response)
    _, done = follow(client, 111, latest(db, "backup-delete"))
    assert told(done)["category"] == "success" and target not in volids(done.text)
    assert target not in pve.cluster.backups


def test_a_protected_backup_refuses_deletion(logged_in, client, db, pve):
    target = volids(client.get("/containers/112/backups").text)[0]
    dialog = client.get(f"/containers/112/backups/delete?volid={target}", headers=HX).text
    assert "Protected: remove the protection first." in dialog and re.search(r'data-testid="confirm" disabled', dialog)
    response = logged_in.post("/containers/112/backups/delete", {"volid": target}, headers=TAB)
    assert "Protected: remove the protection first." in response.text
    assert changes(pve) == 0 and target in pve.cluster.backups and latest(db, "backup-delete") is None


def test_a_deletion_proxmox_fails_is_reported(logged_in, client, db, pve):
    target = [v for v in volids(client.get("/containers/111/backups").text) if v.startswith("backup-nfs:")][0]
    # protected meanwhile, behind Proxboard's back: the imgdel task fails as Proxmox's does
    pve.faults.fail_next_task(type="imgdel", message=f"cannot remove protected volume '{target.partition(':')[2]}' "
                                                     "on 'backup-nfs'")
    logged_in.post("/containers/111/backups/delete", {"volid": target}, headers=TAB)
    _, done = follow(client, 111, latest(db, "backup-delete"))
    assert "cannot remove protected volume" in told(done)["message"] and target in volids(done.text)


def test_protect_and_unprotect(logged_in, client, db, pve):
    target = volids(client.get("/containers/111/backups").text)[0]
    response = logged_in.post("/containers/111/backups/protection", {"volid": target, "protected": "y"}, headers=TAB)
    assert toast_of(response)["category"] == "success" and pve.cluster.backups[target]["protected"]
    assert 'data-testid="protected"' in row(response.text, target)
    response = logged_in.post("/containers/111/backups/protection", {"volid": target}, headers=TAB)
    assert "no longer protected" in toast_of(response)["message"] and not pve.cluster.backups[target]["protected"]


def test_notes_of_a_backup_change_and_too_long_ones_change_nothing(logged_in, client, db, pve):
    target = volids(client.get("/containers/111/backups").text)[1]
    response = logged_in.post("/containers/111/backups/notes", {"volid": target, "notes": " weekly <archive> "},
                              headers=TAB)
    assert toast_of(response)["category"] == "success" and pve.cluster.backups[target]["notes"] == "weekly <archive>"
    assert 'data-testid="backup-notes">weekly &lt;archive&gt;<' in row(response.text, target)
    response = logged_in.post("/containers/111/backups/notes", {"volid": target, "notes": "x" * 1025}, headers=TAB)
    assert toast_of(response) == {"message": "Notes take at most 1024 characters.", "category": "danger"}
    assert pve.cluster.backups[target]["notes"] == "weekly <archive>"
    logged_in.post("/containers/111/backups/notes", {"volid": target, "notes": ""}, headers=TAB)
    assert not pve.cluster.backups[target]["notes"]


# -- roles --------------------------------------------------------------------------------------------------------

def test_a_viewer_sees_the_backups_but_cannot_change_them(app, auth, client, db, pve):
    auth.login_as("viewer")
    html = client.get("/containers/111/backups").text
    assert len(volids(html)) == 3 and "/backups/new" not in html and "/backups/delete?" not in html
    assert re.search(r'title="Operators and admins can back up containers; you are a viewer\."', html)
    target = volids(html)[0]
    for url, data in (("/containers/111/backups", {"storage": "local", "mode": "snapshot", "compress": "zstd"}),
                      ("/containers/111/backups/restore/new", {"volid": target, "vmid": 150}),
                      ("/containers/111/backups/delete", {"volid": target}),
                      ("/containers/111/backups/protection", {"volid": target, "protected": "y"}),
                      ("/containers/111/backups/notes", {"volid": target, "notes": "mine"})):
        assert auth.post(url, data, headers=TAB).status_code == 403, url
    assert client.get("/containers/111/backups/new").status_code == 403
    assert changes(pve) == 0


def test_an_operator_backs_up_and_restores_as_new_but_neither_restores_over_nor_deletes(app, auth, client, db, pve):
    auth.login_as("operator")
    html = client.get("/containers/104/backups").text
    assert "/backups/new" in html and "/backups/restore/new?" in html
    assert "/backups/restore/over?" not in html and "/backups/delete?" not in html
    assert "Admins can delete backups; you are an operator." in html
    target = volids(html)[-1]
    assert auth.post("/containers/104/backups/restore/over",
                     {"volid": target, "hostname": pve.containers[104].name}, headers=TAB).status_code == 403
    assert auth.post("/containers/104/backups/delete", {"volid": target}, headers=TAB).status_code == 403
    assert changes(pve) == 0
    assert client.get(f"/containers/104/backups/restore/new?volid={target}").status_code == 200
