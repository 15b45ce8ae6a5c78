"""The Proxmox client's snapshot, backup, restore and backup-job calls, against the simulator (both releases)."""
from __future__ import annotations

import time

import pytest

from app.proxmox import ProxmoxAPIError, ProxmoxClient, TaskFailed
from app.proxmox.cache import ReadCache


def test_snapshots_list_oldest_first_with_the_current_state_last(pve, pve_client):
    node = pve_client.find_container_node(104)
    assert [s.name for s in pve_client.snapshots(node, 104)] == ["current"]
    pve_client.wait_task(pve_client.create_snapshot(node, 104, "before-upgrade", "apt full-upgrade next"))
    pve_client.wait_task(pve_client.create_snapshot(node, 104, "after"))
    snaps = pve_client.snapshots(node, 104)
    assert [s.name for s in snaps] == ["before-upgrade", "after", "current"]
    assert snaps[0].description == "apt full-upgrade next" and snaps[0].snaptime and snaps[0].parent is None
    assert snaps[1].parent == "before-upgrade" and snaps[2].current and snaps[2].parent == "after"
    assert pve_client.can_snapshot(node, 104) is True


def test_rollback_and_delete_of_a_snapshot_are_tasks(pve, pve_client):
    node = pve_client.find_container_node(104)
    pve_client.wait_task(pve_client.create_snapshot(node, 104, "s1"))
    task = pve_client.wait_task(pve_client.rollback_snapshot(node, 104, "s1", start=True))
    assert task.type == "vzrollback"
    pve_client.wait_task(pve_client.delete_snapshot(node, 104, "s1"))
    assert [s.name for s in pve_client.snapshots(node, 104)] == ["current"]
    with pytest.raises(TaskFailed, match="snapshot 's1' does not exist"):
        pve_client.wait_task(pve_client.delete_snapshot(node, 104, "s1"))


def test_a_reserved_snapshot_name_is_refused_by_proxmox(pve, pve_client):
    node = pve_client.find_container_node(104)
    with pytest.raises(ProxmoxAPIError, match="reserved name"):
        pve_client.create_snapshot(node, 104, "vzdump")


def test_backups_of_a_container_on_each_storage_newest_first(pve, pve_client):
    node = pve_client.find_container_node(102)
    pbs = pve_client.backups(node, "pbs", 102)
    assert len(pbs) == 2 and pbs[0].ctime > pbs[1].ctime
    assert pbs[0].format == "pbs-ct" and pbs[0].vmid == 102 and pbs[0].verification == "ok"
    assert pbs[0].volid.startswith("pbs:backup/ct/102/") and pbs[0].subtype_ct
    assert all(b.vmid == 102 for b in pve_client.backups(node, "backup-nfs", 102))
    assert pve_client.backups(node, "pbs", 109) == ()


def test_backup_now_notes_protection_and_delete(pve, pve_client):
    node = pve_client.find_container_node(101)
    before = {b.volid for b in pve_client.backups(node, "local", 101)}
    task = pve_client.wait_task(pve_client.backup_now(node, 101, "local", mode="snapshot", compress="zstd",
                                                      notes_template="{{guestname}} by hand"))
    assert task.type == "vzdump"
    (made,) = [b for b in pve_client.backups(node, "local", 101) if b.volid not in before]
    assert made.volid.endswith(".tar.zst") and made.notes.endswith("by hand") and not made.protected
    pve_client.update_backup(node, made.volid, protected=True, notes="keep")
    (kept,) = [b for b in pve_client.backups(node, "local", 101) if b.volid == made.volid]
    assert kept.protected and kept.notes == "keep"
    with pytest.raises(TaskFailed, match="cannot remove protected volume"):
        pve_client.wait_task(pve_client.delete_backup(node, made.volid))
    pve_client.update_backup(node, made.volid, protected=False)
    pve_client.wait_task(pve_client.delete_backup(node, made.volid))
    assert made.volid not in {b.volid for b in pve_client.backups(node, "local", 101)}


def test_backup_now_on_the_wrong_node_says_no_backup_started(pve, pve_client):
    node = pve_client.find_container_node(101)
    other = next(n.name for n in pve_client.nodes() if n.name != node)
    with pytest.raises(ProxmoxAPIError, match="started no backup"):
        pve_client.backup_now(other, 101, "local")


def test_restore_to_a_new_vmid(pve, pve_client):
    node = pve_client.find_container_node(102)
    archive = pve_client.backups(node, "pbs", 102)[0].volid
    pve_client.wait_task(pve_client.restore(node, 190, archive, storage="local-lvm", unique=True))
    assert pve_client.find_container_node(190) == node
    assert pve_client.container_config(node, 190).hostname == pve_client.container_config(node, 102).hostname


def test_backup_jobs_and_the_containers_no_job_selects(pve, pve_client):
    jobs = {job.id: job for job in pve_client.backup_jobs()}
    nightly, weekly = jobs["backup-nightly"], jobs["backup-weekly"]
    assert nightly.enabled and nightly.all and 105 in nightly.exclude and nightly.storage == "pbs"
    assert nightly.next_run and not weekly.enabled and 105 in weekly.vmids
    assert nightly.selects(101, "pve1", None) and not nightly.selects(109, "pve1", None)
    uncovered = pve_client.not_backed_up()
    assert 109 in uncovered and 105 not in uncovered and 101 not in uncovered


def test_the_backup_index_sweeps_every_backup_storage_in_the_background(pve, pve_settings):
    with ProxmoxClient(pve_settings, backup_cache=ReadCache(300)) as client:
        assert client.backup_index() is None  # nothing yet: the caller does not wait
        deadline = time.monotonic() + 10
        while (index := client.backup_index()) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert index is not None and not index.failed
        node = client.find_container_node(102)
        assert index.newest_of(102) == max(b.ctime for s in ("pbs", "backup-nfs", "local")
                                           for b in client.backups(node, s, 102))
        assert index.newest_of(109) is None and index.count[102] >= 2
        assert {key.partition("@")[0] for key in index.entries} == {"pbs", "backup-nfs", "local"}
        assert sum("@" in key for key in index.entries) == len(client.nodes())  # local: one per node


def test_a_storage_that_fails_keeps_its_last_known_backups(pve, pve_settings):
    with ProxmoxClient(pve_settings, backup_cache=ReadCache(300)) as client:
        first = client.backup_index(wait=True)
        pve.faults.fail_path("GET", r"/storage/pbs/content", 500, "pbs unreachable")
        client.refresh_backup_index()
        deadline = time.monotonic() + 10
        while (index := client.backup_index()) is first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert index.failed == ("pbs",)
        assert index.entries["pbs"] == first.entries["pbs"] and index.newest_of(102) == first.newest_of(102)


def test_processes_sharing_redis_sweep_the_backup_storages_once_between_them(pve, pve_settings, redis_prefix):
    from tests.fixtures.redis import REDIS_URL

    prefix, _server = redis_prefix
    caches = [ReadCache(300, redis_url=REDIS_URL, prefix=f"{prefix}:backups") for _ in range(2)]
    with ProxmoxClient(pve_settings, backup_cache=caches[0]) as one, \
            ProxmoxClient(pve_settings, backup_cache=caches[1]) as two:
        first = one.backup_index(wait=True)
        pve.clear_requests()
        seen = two.backup_index()
        assert seen is not None and seen.newest == first.newest
        assert not [r for r in pve.requests if "/content" in r["path"]]  # the second process swept nothing


def test_after_a_failed_sweep_renders_do_not_sweep_again_at_once(pve, pve_settings):
    with ProxmoxClient(pve_settings, backup_cache=ReadCache(300)) as client:
        pve.faults.fail_path("GET", r"^/cluster/resources", 500, "cluster filesystem not ready")
        assert client.backup_index() is None
        deadline = time.monotonic() + 10
        while not client._backup_sweep_failed and time.monotonic() < deadline:
            time.sleep(0.02)
        pve.clear_requests()
        for _ in range(5):
            assert client.backup_index() is None
        time.sleep(0.2)
        assert [r for r in pve.requests if r["path"].startswith("/cluster/resources")] == []
