"""The job queue: storage selection, app context in tasks, a queued refresh run by a consumer step."""
from __future__ import annotations

import pytest
from huey.storage import MemoryStorage, SqliteStorage

from app import jobs
from app.models import Container, Operation
from app.guest_services import request_refresh
from tests.fixtures.ssh import FakeUnit


@pytest.fixture
def app_overrides(ssh_config, tmp_path):
    return {**ssh_config, "JOBS_IMMEDIATE": False, "HUEY_SQLITE_PATH": str(tmp_path / "jobs.db")}


def test_testing_apps_run_jobs_inline_by_default(app):
    app.config["JOBS_IMMEDIATE"] = None
    jobs.init_app(app)
    assert jobs.huey.immediate and isinstance(jobs.huey.storage, MemoryStorage)


def test_sqlite_storage_in_the_configured_file(app, tmp_path):
    assert not jobs.huey.immediate and isinstance(jobs.huey.storage, SqliteStorage)
    assert jobs.huey.storage.filename == str(tmp_path / "jobs.db")
    assert {"app.guest_services.tasks.refresh_services_task", "app.guest_services.tasks.check_services_task"} <= set(
        jobs.huey._registry._registry
    )


def test_redis_queue_when_redis_url_is_set(app):
    """With PROXBOARD_REDIS_URL, jobs go through a real Redis server (127.0.0.1:6379)."""
    import os

    import redis
    from huey.storage import RedisStorage

    app.config["REDIS_URL"] = "redis://127.0.0.1:6379/15"
    app.config["JOBS_IMMEDIATE"] = False
    jobs.init_app(app)
    assert isinstance(jobs.huey.storage, RedisStorage)
    try:
        jobs.huey.flush()
    except redis.ConnectionError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required with CI=true: {exc}")
        pytest.skip(f"no Redis server on 127.0.0.1:6379: {exc}")
    from app.guest_services.tasks import check_services_task

    check_services_task()
    assert jobs.huey.pending_count() == 1
    task = jobs.huey.dequeue()
    assert task.name.endswith("check_services_task")
    jobs.huey.flush()


def test_request_only_enqueues_then_a_worker_runs_it(app, db, pve, ssh_containers):
    from app.proxmox import get_proxmox

    summary = next(ct for ct in get_proxmox().list_containers() if ct.is_running)
    ssh_containers.container(summary.vmid).set_units([FakeUnit("nginx.service", ports=[80])])
    container = Container(vmid=summary.vmid, node=summary.node)
    db.session.add(container)
    db.session.commit()

    operation = request_refresh(container.id, "alice")
    assert operation.state == "queued" and jobs.huey.pending_count() == 1
    assert request_refresh(container.id, "alice").id == operation.id  # no duplicate while pending

    task = jobs.huey.dequeue()  # what a consumer worker does, in this process
    jobs.huey.execute(task)

    db.session.expire_all()
    done = db.session.get(Operation, operation.id)
    assert done.state == "succeeded" and done.finished_at
    assert [s.name for s in db.session.get(Container, container.id).services] == ["nginx"]


def test_worker_refuses_in_immediate_mode(app, runner):
    app.config["JOBS_IMMEDIATE"] = True
    jobs.init_app(app)
    result = runner.invoke(args=["worker"])
    assert result.exit_code != 0 and "JOBS_IMMEDIATE" in result.output
