"""pvesim snapshots, backups, backup volumes, restores and backup jobs, as PVE 9.1 and 8.4 do them
(see tests/pvesim/backups.py for the sources). Everything over real HTTPS."""
from __future__ import annotations

import time
from contextlib import contextmanager
from urllib.parse import quote

import pytest

from tests.fixtures.pvesim_http import ct_url, task_log, wait_task
from tests.pvesim import PVESimulator

TOKEN = "root@pam!proxboard=sim-secret-bk"


@pytest.fixture(scope="module", params=["9.1", "8.4"])
def sim_module(request):
    sim = PVESimulator(nodes=3, containers=20, token=TOKEN, task_delay=0.05, seed=1, time_scale=0.01,
                       pve_version=request.param).start()
    yield sim
    sim.stop()


@pytest.fixture
def slow_tasks(sim):
    """``with slow_tasks():`` tasks started inside take 0.8 s, so a test polling over HTTP sees the lock they
    hold even on a loaded machine; the others keep the module's short delay."""
    before = sim.task_delay

    @contextmanager
    def slow():
        sim.task_delay = 0.8
        try:
            yield
        finally:
            sim.task_delay = before

    yield slow
    sim.task_delay = before


def started(api, response) -> str:
    assert response.status_code == 200, (response.status_code, response.reason, response.text)
    upid = response.json()["data"]
    assert upid.startswith("UPID:"), upid
    return upid


def run(api, sim, response) -> tuple[dict, list[str]]:
    """Wait for the task ``response`` started; its final status and log lines."""
    upid = started(api, response)
    return wait_task(api, sim, upid), task_log(api, sim, upid)


def snapshots(api, sim, vmid) -> dict[str, dict]:
    return {s["name"]: s for s in api.get(ct_url(sim, vmid, "/snapshot")).json()["data"]}


def config(api, sim, vmid, **params) -> dict:
    return api.get(ct_url(sim, vmid, "/config"), params=params).json()["data"]


def lock_of(api, sim, vmid):
    return config(api, sim, vmid).get("lock")


def wait_for_lock(api, sim, vmid, lock, timeout=3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if lock_of(api, sim, vmid) == lock:
            return True
        time.sleep(0.005)
    return False


def backups(api, sim, node, storage, vmid=None) -> list[dict]:
    params = {"content": "backup"} | ({"vmid": vmid} if vmid else {})
    r = api.get(f"{sim.url}/nodes/{node}/storage/{storage}/content", params=params)
    assert r.status_code == 200, r.text
    return r.json()["data"]


# --------------------------------------------------------------------------------------------
# snapshots
# --------------------------------------------------------------------------------------------

def test_snapshot_holds_the_snapshot_lock_then_becomes_the_current_parent(sim, api, slow_tasks):
    with slow_tasks():
        upid = started(api, api.post(ct_url(sim, 100, "/snapshot"), data={"snapname": "before", "description": "pre-upgrade"}))
        assert upid.split(":")[5] == "vzsnapshot"
        assert wait_for_lock(api, sim, 100, "snapshot")
    assert wait_task(api, sim, upid)["exitstatus"] == "OK"
    assert lock_of(api, sim, 100) is None
    started(api, api.post(ct_url(sim, 100, "/snapshot"), data={"snapname": "after"}))
    sim.wait_idle(5)

    listed = snapshots(api, sim, 100)
    assert listed["before"]["description"] == "pre-upgrade" and "parent" not in listed["before"]
    assert listed["after"]["parent"] == "before" and listed["after"]["snaptime"] > 0
    assert listed["current"]["parent"] == "after" and listed["current"]["running"] == 1
    assert listed["current"]["description"] == "You are here!"
    assert config(api, sim, 100)["parent"] == "after"
    assert config(api, sim, 100, snapshot="before")["memory"] == config(api, sim, 100)["memory"]


@pytest.mark.parametrize("name", ["current", "vzdump"])
def test_reserved_snapshot_names_are_refused_before_any_task(sim, api, name):
    r = api.post(ct_url(sim, 100, "/snapshot"), data={"snapname": name})
    assert (r.status_code, r.reason) == (500, f"unable to use snapshot name '{name}' (reserved name)")


def test_a_snapshot_name_outside_the_format_is_a_parameter_error(sim, api):
    r = api.post(ct_url(sim, 100, "/snapshot"), data={"snapname": "1st try"})
    assert r.status_code == 400 and "snapname" in r.json()["errors"]


@pytest.mark.parametrize(("vmid", "message"), [
    (102, "CT is locked (backup)"),
    (103, "you can't take a snapshot if it's a template"),
])
def test_snapshot_of_a_locked_container_or_template_fails_in_its_task(sim, api, vmid, message):
    status, log = run(api, sim, api.post(ct_url(sim, vmid, "/snapshot"), data={"snapname": "s1"}))
    assert status["exitstatus"] == message and log[-1] == f"TASK ERROR: {message}"
    assert "s1" not in snapshots(api, sim, vmid)


def test_a_used_name_fails_in_the_task_and_changes_nothing(sim, api):
    run(api, sim, api.post(ct_url(sim, 104, "/snapshot"), data={"snapname": "s1"}))
    status, _ = run(api, sim, api.post(ct_url(sim, 104, "/snapshot"), data={"snapname": "s1"}))
    assert status["exitstatus"] == "snapshot name 's1' already used"
    assert lock_of(api, sim, 104) is None and list(snapshots(api, sim, 104)) == ["s1", "current"]


def test_rollback_stops_a_running_container_restores_its_config_and_can_start_it(sim, api):
    run(api, sim, api.post(ct_url(sim, 100, "/snapshot"), data={"snapname": "good"}))
    memory = config(api, sim, 100)["memory"]
    assert api.put(ct_url(sim, 100, "/config"), data={"memory": memory * 2}).status_code == 200

    upid = started(api, api.post(ct_url(sim, 100, "/snapshot/good/rollback")))
    assert upid.split(":")[5] == "vzrollback"
    assert wait_task(api, sim, upid)["exitstatus"] == "OK"
    cfg = config(api, sim, 100)
    assert cfg["memory"] == memory and cfg["parent"] == "good" and "lock" not in cfg
    assert sim.containers[100].status == "stopped"

    status, _ = run(api, sim, api.post(ct_url(sim, 100, "/snapshot/good/rollback"), data={"start": 1}))
    assert status["exitstatus"] == "OK" and sim.containers[100].status == "running"


def test_rollback_to_a_missing_snapshot_fails_in_the_task(sim, api):
    status, _ = run(api, sim, api.post(ct_url(sim, 104, "/snapshot/nope/rollback")))
    assert status["exitstatus"] == "snapshot 'nope' does not exist"


def test_deleting_a_snapshot_relinks_its_children_and_the_current_state(sim, api, slow_tasks):
    for name in ("s-a", "s-b", "s-c"):
        run(api, sim, api.post(ct_url(sim, 104, "/snapshot"), data={"snapname": name}))
    with slow_tasks():
        upid = started(api, api.delete(ct_url(sim, 104, "/snapshot/s-b")))
        assert upid.split(":")[5] == "vzdelsnapshot"
        assert wait_for_lock(api, sim, 104, "snapshot-delete")
    assert wait_task(api, sim, upid)["exitstatus"] == "OK"
    listed = snapshots(api, sim, 104)
    assert set(listed) == {"s-a", "s-c", "current"} and listed["s-c"]["parent"] == "s-a"

    run(api, sim, api.delete(ct_url(sim, 104, "/snapshot/s-c")))
    assert snapshots(api, sim, 104)["current"]["parent"] == "s-a"
    status, _ = run(api, sim, api.delete(ct_url(sim, 104, "/snapshot/s-c")))
    assert status["exitstatus"] == "snapshot 's-c' does not exist"


def test_snapshot_description_can_be_changed(sim, api):
    run(api, sim, api.post(ct_url(sim, 104, "/snapshot"), data={"snapname": "s1", "description": "old"}))
    assert api.put(ct_url(sim, 104, "/snapshot/s1/config"), data={"description": "new"}).status_code == 200
    assert api.get(ct_url(sim, 104, "/snapshot/s1/config")).json()["data"]["description"] == "new"
    r = api.put(ct_url(sim, 104, "/snapshot/zz/config"), data={"description": "x"})
    assert (r.status_code, r.reason) == (500, "snapshot 'zz' does not exist")


def test_a_container_on_a_directory_storage_has_no_snapshot_feature(sim, api):
    vmid = 150
    created = api.post(f"{sim.url}/nodes/pve1/lxc", data={
        "vmid": vmid, "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
        "rootfs": "local-lvm:4", "mp0": "/srv/data,mp=/data"})
    run(api, sim, created)
    status, _ = run(api, sim, api.post(ct_url(sim, vmid, "/snapshot"), data={"snapname": "s1"}))
    assert status["exitstatus"] == "snapshot feature is not available"


def test_locked_containers_name_the_lock_as_proxmox_does(sim, api):
    """AbstractConfig::check_lock: "CT is locked (<lock>)" (no VMID), for a config change and a destroy."""
    r = api.put(ct_url(sim, 102, "/config"), data={"memory": 1024})
    assert (r.status_code, r.reason) == (500, "CT is locked (backup)")
    r = api.delete(ct_url(sim, 102))
    assert (r.status_code, r.reason) == (500, "CT is locked (backup)")


# --------------------------------------------------------------------------------------------
# vzdump and backup volumes
# --------------------------------------------------------------------------------------------

def test_vzdump_backs_up_a_running_container_through_a_temporary_snapshot(sim, api, slow_tasks):
    before = {b["volid"] for b in backups(api, sim, "pve1", "local", 100)}
    with slow_tasks():
        upid = started(api, api.post(f"{sim.url}/nodes/pve1/vzdump", data={
            "vmid": 100, "storage": "local", "mode": "snapshot", "compress": "zstd",
            "notes-template": "{{guestname}} ({{vmid}})", "protected": 1}))
        assert upid.split(":")[5:7] == ["vzdump", "100"]
        assert wait_for_lock(api, sim, 100, "backup")
    status = wait_task(api, sim, upid)
    log = task_log(api, sim, upid)
    assert status["exitstatus"] == "OK"
    assert "INFO: backup mode: snapshot" in log and "INFO: create storage snapshot 'vzdump'" in log
    assert log[-2:] == ["INFO: Backup job finished successfully", "TASK OK"]
    assert lock_of(api, sim, 100) is None and "vzdump" not in snapshots(api, sim, 100)

    (new,) = [b for b in backups(api, sim, "pve1", "local", 100) if b["volid"] not in before]
    assert new["volid"].startswith("local:backup/vzdump-lxc-100-") and new["volid"].endswith(".tar.zst")
    assert new["format"] == "tar.zst" and new["subtype"] == "lxc" and new["vmid"] == 100
    assert new["notes"] == "web01 (100)" and new["protected"] == 1 and new["size"] > 0
    assert new["ctime"] >= status["starttime"]


def test_vzdump_on_another_node_answers_ok_without_a_task(sim, api):
    """pve-manager API2/VZDump.pm: 'silent exit if specified VMs run on other nodes'."""
    r = api.post(f"{sim.url}/nodes/pve2/vzdump", data={"vmid": 100, "storage": "local"})
    assert r.status_code == 200 and r.json()["data"] == "OK"


def test_stop_mode_stops_and_restarts_a_running_container(sim, api):
    upid = started(api, api.post(f"{sim.url}/nodes/pve1/vzdump", data={"vmid": 100, "storage": "pbs", "mode": "stop"}))
    assert wait_task(api, sim, upid)["exitstatus"] == "OK"
    log = task_log(api, sim, upid)
    assert "INFO: stopping virtual guest" in log and "INFO: restarting vm" in log
    assert sim.containers[100].status == "running"
    newest = max(backups(api, sim, "pve2", "pbs", 100), key=lambda b: b["ctime"])  # shared: every node sees it
    assert newest["volid"].startswith("pbs:backup/ct/100/") and newest["format"] == "pbs-ct"


def test_a_locked_guest_fails_alone_and_the_job_ends_with_errors(sim, api):
    vmids = sorted(v for v, ct in sim.containers.items() if ct.node == sim.containers[102].node and v in (102, 105, 108))
    node = sim.containers[102].node
    status, log = run(api, sim, api.post(f"{sim.url}/nodes/{node}/vzdump",
                                          data={"vmid": ",".join(map(str, vmids)), "storage": "backup-nfs"}))
    assert status["exitstatus"] == "job errors"
    assert "ERROR: Backup of VM 102 failed - CT is locked (backup)" in log
    assert "INFO: Backup job finished with errors" in log
    others = [v for v in vmids if v != 102]
    assert all(any(line == f"INFO: Finished Backup of VM {v} (00:00:00)" for line in log) for v in others)


def test_one_backup_job_per_node_at_a_time(sim, api):
    """A second vzdump on a node waits for the first's global lock (here held by the test, as a long job would)."""
    gate = sim.cluster.vzdump_gate("pve1")
    gate.acquire()
    try:
        upid = started(api, api.post(f"{sim.url}/nodes/pve1/vzdump", data={"vmid": 106, "storage": "pbs"}))
        end = time.monotonic() + 5
        while "INFO: trying to get global lock - waiting..." not in task_log(api, sim, upid):
            assert time.monotonic() < end, task_log(api, sim, upid)
            time.sleep(0.02)
        assert api.get(f"{sim.url}/nodes/pve1/tasks/{upid}/status").json()["data"]["status"] == "running"
    finally:
        gate.release()
    assert wait_task(api, sim, upid)["exitstatus"] == "OK"
    assert "INFO: got global lock" in task_log(api, sim, upid)


def test_backup_notes_and_protection_change_and_a_protected_backup_cannot_be_deleted(sim, api):
    volid = backups(api, sim, "pve1", "backup-nfs", 102)[0]["volid"]
    base = f"{sim.url}/nodes/pve1/storage/backup-nfs/content/{quote(volid, safe='')}"
    unquoted = f"{sim.url}/nodes/pve1/storage/backup-nfs/content/{volid}"
    assert api.put(unquoted, data={"notes": "x"}).status_code == 501  # its slash must be sent as %2F
    assert api.put(base, data={"notes": "before the upgrade\nsecond line", "protected": 1}).status_code == 200
    listed = {b["volid"]: b for b in backups(api, sim, "pve1", "backup-nfs", 102)}[volid]
    assert listed["notes"] == "before the upgrade" and listed["protected"] == 1  # the list shows the first line
    assert api.get(base).json()["data"]["notes"] == "before the upgrade\nsecond line"

    status, _ = run(api, sim, api.delete(base))
    assert status["exitstatus"] == f"cannot remove protected volume '{volid.split(':', 1)[1]}' on 'backup-nfs'"
    api.put(base, data={"protected": 0})
    upid = started(api, api.delete(base))
    assert upid.split(":")[5:7] == ["imgdel", "102@backup-nfs"]
    assert wait_task(api, sim, upid)["exitstatus"] == "OK"
    assert volid not in {b["volid"] for b in backups(api, sim, "pve1", "backup-nfs", 102)}


def test_backup_server_volumes_carry_their_verification(sim, api):
    listed = backups(api, sim, "pve1", "pbs")
    states = {b.get("verification", {}).get("state") for b in listed}
    assert {"ok", "failed", None} <= states
    assert all(b["format"] == "pbs-ct" and b["content"] == "backup" for b in listed)


def test_local_backups_are_seen_only_on_their_node(sim, api):
    node = sim.containers[105].node
    other = next(n for n in ("pve1", "pve2", "pve3") if n != node)
    assert any(b["vmid"] == 105 for b in backups(api, sim, node, "local"))
    assert not any(b["vmid"] == 105 for b in backups(api, sim, other, "local"))


# --------------------------------------------------------------------------------------------
# restore
# --------------------------------------------------------------------------------------------

def test_restore_to_a_new_vmid_brings_back_the_backed_up_config(sim, api):
    volid = backups(api, sim, "pve1", "pbs", 100)[0]["volid"]
    upid = started(api, api.post(f"{sim.url}/nodes/pve1/lxc", data={
        "vmid": 160, "ostemplate": volid, "restore": 1, "storage": "local-lvm", "unique": 1}))
    assert upid.split(":")[5:7] == ["vzrestore", "160"]
    assert wait_task(api, sim, upid)["exitstatus"] == "OK"
    assert f"restoring '{volid}' now.." in task_log(api, sim, upid)
    restored, original = config(api, sim, 160), config(api, sim, 100)
    assert restored["hostname"] == original["hostname"] and restored["memory"] == original["memory"]
    assert restored["rootfs"].startswith("local-lvm:vm-160-disk-0,")
    assert restored["net0"] != original["net0"]  # unique: a new MAC


def test_restore_over_a_running_container_is_refused(sim, api):
    volid = backups(api, sim, "pve1", "pbs", 100)[0]["volid"]
    r = api.post(f"{sim.url}/nodes/pve1/lxc", data={"vmid": 100, "ostemplate": volid, "restore": 1, "force": 1,
                                                     "storage": "local-lvm"})
    assert (r.status_code, r.reason) == (500, "can't overwrite running container")


def test_restore_over_a_stopped_container_needs_force_and_drops_its_snapshots(sim, api):
    node = sim.containers[104].node
    volid = backups(api, sim, node, "pbs", 104)[0]["volid"]
    run(api, sim, api.post(ct_url(sim, 104, "/snapshot"), data={"snapname": "s1"}))
    r = api.post(f"{sim.url}/nodes/{node}/lxc", data={"vmid": 104, "ostemplate": volid, "restore": 1,
                                                       "storage": "local-lvm"})
    assert (r.status_code, r.reason) == (500, f"CT 104 already exists on node '{node}'")

    status, _ = run(api, sim, api.post(f"{sim.url}/nodes/{node}/lxc", data={
        "vmid": 104, "ostemplate": volid, "restore": 1, "force": 1, "storage": "local-lvm"}))
    assert status["exitstatus"] == "OK"
    assert list(snapshots(api, sim, 104)) == ["current"]


def test_restore_from_a_missing_backup_is_refused(sim, api):
    r = api.post(f"{sim.url}/nodes/pve1/lxc", data={
        "vmid": 161, "ostemplate": "local:backup/vzdump-lxc-999-2020_01_01-00_00_00.tar.zst", "restore": 1,
        "storage": "local-lvm"})
    assert r.status_code == 500 and "does not exist" in r.reason
    assert 161 not in sim.containers


# --------------------------------------------------------------------------------------------
# jobs and coverage
# --------------------------------------------------------------------------------------------

def test_backup_jobs_list_their_next_run_and_coverage_counts_disabled_jobs(sim, api):
    jobs = {j["id"]: j for j in api.get(f"{sim.url}/cluster/backup").json()["data"]}
    assert jobs["backup-nightly"]["all"] == 1 and jobs["backup-nightly"]["next-run"] > time.time()
    assert jobs["backup-weekly"]["enabled"] == 0
    not_covered = {g["vmid"] for g in api.get(f"{sim.url}/cluster/backup-info/not-backed-up").json()["data"]}
    assert not_covered == {v for v in sim.containers if v % 10 == 9}  # 105/115: only the disabled job names them


def test_purging_a_destroyed_container_removes_it_from_backup_jobs(sim, api):
    api.post(f"{sim.url}/cluster/backup", data={"id": "backup-few", "vmid": "104,106", "schedule": "01:00",
                                                "storage": "pbs"})
    run(api, sim, api.delete(ct_url(sim, 104), params={"purge": 1}))
    job = api.get(f"{sim.url}/cluster/backup/backup-few").json()["data"]
    assert job["vmid"] == "106"


def test_vzdump_notification_options_exist_only_on_8_4(sim, api):
    r = api.post(f"{sim.url}/nodes/pve1/vzdump", data={"vmid": 100, "storage": "pbs", "notification-policy": "never"})
    if sim.pve_version == "9.1":
        assert r.status_code == 400 and "notification-policy" in r.json()["errors"]
    else:
        started(api, r)


def test_snapshots_backups_and_jobs_survive_a_saved_state(sim, api, tmp_path):
    run(api, sim, api.post(ct_url(sim, 104, "/snapshot"), data={"snapname": "kept"}))
    path = tmp_path / "state.json"
    sim.cluster.save(path)
    fresh = PVESimulator(containers=0, pve_version=sim.pve_version)
    fresh.cluster.load(path)
    assert "kept" in fresh.cluster.containers[104].snapshots
    assert fresh.cluster.backups == sim.cluster.backups
    assert fresh.cluster.backup_jobs == sim.cluster.backup_jobs
