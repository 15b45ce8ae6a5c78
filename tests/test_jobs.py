"""The job queue: storage selection, app context in tasks, a queued refresh run by a consumer step."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from huey.storage import MemoryStorage, SqliteStorage

from app import jobs
from app.models import Container, Event, Operation, utcnow
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


def _creating(db, vmid=930, **operation):
    """A container being created and its provisioning Operation (given state, times, step)."""
    ct = Container(vmid=vmid, node="pve1", hostname="lost", lifecycle="creating", managed=True)
    db.session.add(ct)
    db.session.flush()
    op = Operation(container_id=ct.id, action="create", params={"spec": {"node": "pve1", "vmid": vmid}}, **operation)
    db.session.add(op)
    db.session.commit()
    return ct, op


def test_a_queued_creation_whose_job_was_lost_is_sent_again_once(app, db):
    from app.provisioning import sweep_stale

    _, op = _creating(db, state="queued", step="create", started_at=utcnow() - timedelta(seconds=120))
    assert jobs.huey.pending_count() == 0  # the enqueue failed, or the queue was wiped
    assert sweep_stale() == []
    assert [task.args for task in jobs.huey.pending()] == [(op.id,)]
    sweep_stale()
    assert jobs.huey.pending_count() == 1  # a job waiting in the queue is not sent twice
    db.session.expire_all()
    assert db.session.get(Operation, op.id).state == "queued"


def test_a_job_sent_twice_runs_once(app, db):
    _, op = _creating(db, state="running", step="packages", heartbeat_at=utcnow())
    from app.provisioning.tasks import provision_task

    provision_task(op.id)  # a duplicate of the job a worker already runs
    jobs.huey.execute(jobs.huey.dequeue())
    db.session.expire_all()
    done = db.session.get(Operation, op.id)
    assert done.state == "running" and done.step == "packages"


def test_the_web_process_ends_a_dead_job_while_no_worker_runs(app, db, client):
    app.config["JOBS_WEB_SWEEP_SECONDS"] = 60
    jobs.init_app(app)
    old = utcnow() - timedelta(seconds=600)
    ct, op = _creating(db, state="running", step="start", progress=15, started_at=old, heartbeat_at=old)
    client.get("/login")  # any request; the sweep runs beside it
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        db.session.expire_all()
        if db.session.get(Operation, op.id).state != "running":
            break
        time.sleep(0.1)
    assert db.session.get(Operation, op.id).state == "failed"
    assert db.session.get(Container, ct.id).lifecycle == "error"
    event = db.session.scalars(db.select(Event).where(Event.container_id == ct.id, Event.type == "error")).one()
    assert "Start it was interrupted" in event.message and "Retry" in event.message
    from app.provisioning import retry_reason

    assert retry_reason(db.session.get(Container, ct.id), db.session.get(Operation, op.id)) is None


def test_every_page_says_when_no_worker_takes_queued_work(app, db, client, logged_in):
    app.config["JOBS_WORKER_MISSING_SECONDS"] = 300
    _, op = _creating(db, state="queued", step="create", started_at=utcnow() - timedelta(seconds=60))
    assert 'data-testid="worker-banner"' not in client.get("/").text
    op.started_at = utcnow() - timedelta(minutes=12)
    db.session.commit()
    for path in ("/", "/templates", "/about"):
        page = client.get(path).text
        assert 'data-testid="worker-banner"' in page and "No job worker is running" in page, path
        assert "flask worker" in page and "12 minutes" in page
