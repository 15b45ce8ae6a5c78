"""The Proxmox read cache shared through Redis: one load per key and interval for every process.

Two apps built by ``create_app`` stand for two gunicorn workers (or hosts): on the same Redis
(a real server on 127.0.0.1:6379, a key prefix of their own per test) they share each load; in
memory each loads for itself. Redis going away costs the cache, never a page.
"""
from __future__ import annotations

import logging
import threading
import time

import pytest

from app import create_app
from app.extensions import db as _db
from app.proxmox import ProxmoxAPIError, ProxmoxClient, ProxmoxSlow, get_proxmox
from app.proxmox.cache import ReadCache
from app.proxmox.deadline import deadline
from tests.fixtures.app import AuthActions, IsolatedClient, app_config
from tests.fixtures.pve import sim_settings


def make_apps(database_url, pve, tmp_path, count=2, **config):
    apps = []
    for index in range(count):
        app = create_app(app_config(database_url, pve, **config))
        app.instance_path = str(tmp_path / f"app{index}")
        apps.append(app)
    return apps


def read_in_threads(apps, read, per_app=4):
    """Call ``read()`` from ``per_app`` threads inside each app at once; the results."""
    results, errors = [], []
    start = threading.Barrier(len(apps) * per_app)

    def worker(app):
        with app.app_context():
            start.wait()
            try:
                results.append(read())
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(app,)) for app in apps for _ in range(per_app)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return results


@pytest.fixture
def shared_apps(apps_on_redis):
    """Two apps on one Redis with a 5 s cache."""
    return apps_on_redis(PVE_CACHE_SECONDS=5)


def test_two_apps_on_redis_share_one_load(shared_apps, pve):
    pve.faults.delay = 0.3  # the loads would overlap: only the lock keeps them to one
    pve.clear_requests()
    snapshots = read_in_threads(shared_apps, lambda: get_proxmox().cluster_snapshot())
    assert pve.count_requests("GET", "/cluster/resources") == 1
    assert len(snapshots) == 8 and len({len(s.containers) for s in snapshots}) == 1
    assert {ct.vmid for ct in snapshots[0].containers} == set(pve.containers)


def test_an_invalidation_in_one_app_is_seen_by_the_other(shared_apps, pve):
    first, second = (app.extensions["proxmox"] for app in shared_apps)
    node = pve.containers[104].node
    assert first.container_status(node, 104).status == "stopped"
    second.container_status(node, 104)
    assert pve.count_requests("GET", "/nodes/pve2/lxc/104/status/current") == 1
    second.wait_task(second.start(node, 104), timeout=30, poll=0.1)  # invalidates, in Redis
    assert first.container_status(node, 104).status == "running"
    assert pve.count_requests("GET", "/nodes/pve2/lxc/104/status/current") == 2


def test_a_failed_load_is_not_shared_and_raises_proxmox_s_error(shared_apps, pve):
    first, second = (app.extensions["proxmox"] for app in shared_apps)
    pve.faults.fail_path("GET", "^/nodes$", status=500, message="boom", times=1)
    with pytest.raises(ProxmoxAPIError, match="boom"):
        first.nodes()
    assert len(second.nodes()) == 3 and len(first.nodes()) == 3
    assert pve.count_requests("GET", "/nodes") == 2


def test_in_memory_apps_each_load_for_themselves(database_url, pve, tmp_path):
    apps = make_apps(database_url, pve, tmp_path, PVE_CACHE_SECONDS=5)
    try:
        pve.clear_requests()
        read_in_threads(apps, lambda: get_proxmox().cluster_snapshot())
        assert not apps[0].extensions["proxmox"].cache.shared
        assert pve.count_requests("GET", "/cluster/resources") == 2  # one per process, as before Redis
    finally:
        for app in apps:
            app.extensions["proxmox"].close()
            with app.app_context():
                _db.engine.dispose()


def test_dashboard_pages_of_two_apps_share_one_cluster_call(shared_apps, pve, client_for):
    clients = [client_for(app) for app in shared_apps]
    pve.clear_requests()
    for client in clients * 3:
        response = client.get("/")
        assert response.status_code == 200 and 'data-testid="proxmox-banner"' not in response.text
    assert pve.count_requests("GET", "/cluster/resources") == 1


@pytest.fixture
def client_for(auth):
    """A signed-in test client of another app on the same database (``alice`` exists already)."""
    auth.create_user()

    def make(app):
        app.test_client_class = IsolatedClient
        client = app.test_client()
        assert AuthActions(client, app).login(create=False).status_code == 302
        return client

    return make


def test_reads_answer_while_redis_is_down(pve, caplog):
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    with ProxmoxClient(sim_settings(pve), cache=ReadCache(5, redis_url="redis://127.0.0.1:1/0",
                                                          prefix="unused")) as client:
        with caplog.at_level(logging.WARNING, logger="app.proxmox"):
            assert len(client.nodes()) == 3 and len(client.nodes()) == 3
        client.invalidate()
    assert pve.count_requests("GET", "/nodes") == 2  # no cache, but answers
    warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(warnings) == 1  # said once, not per read


def test_a_page_waits_for_another_process_s_load_no_longer_than_its_deadline(shared_apps, pve):
    """A job worker (no deadline) loading a key slowly must not hold a page past its own deadline."""
    worker, web = (app.extensions["proxmox"] for app in shared_apps)
    pve.faults.delay = 3.0
    loading = threading.Thread(target=worker.nodes)
    loading.start()
    time.sleep(0.5)  # the worker holds the key's lock now
    started = time.monotonic()
    with deadline(0.5), pytest.raises(ProxmoxSlow):
        web.nodes()
    assert time.monotonic() - started < 0.5 + 1.0
    loading.join(10)
    pve.faults.delay = 0
    assert len(web.nodes()) == 3 and pve.count_requests("GET", "/nodes") == 1  # the worker's load, shared


def test_a_bounded_memory_cache_forgets_the_oldest_key_written_not_the_newest():
    loads = []
    cache = ReadCache(60, max_entries=3)
    for key in ("a", "b", "c", "d", "e"):
        cache.get_or_load(key, lambda key=key: loads.append(key) or key.upper())
    assert [cache.get_or_load(key, lambda key=key: loads.append(key) or key.upper()) for key in "cde"] == list("CDE")
    assert loads == list("abcde"), "a key among the newest three was loaded again"
    assert cache.get_or_load("a", lambda: loads.append("a") or "A") == "A" and loads[-1] == "a"  # forgotten
