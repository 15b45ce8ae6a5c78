"""``/metrics`` as Prometheus scrapes it: a viewer's API token, the client library's own parser, the numbers the
dashboard shows, and never a Proxmox request of its own."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, insert

from app import jobs
from app.alerts.engine import evaluate, gather_facts
from app.alerts.services import create_rule
from app.auth import tokens
from app.containers.inventory import display_status
from app.guest_services import request_refresh
from app.models import ApiToken, AuditEntry, Container, Operation, User, utcnow
from app.observability.services import CONTAINER_STATUSES
from tests.fixtures.app import join_app_threads
from tests.fixtures.pve import pve_config
from tests.htmx import wait_operation
from tests.test_dashboard import stat


@pytest.fixture
def app_overrides() -> dict:
    return {"SNAPSHOT_SECONDS": 0}  # every dashboard render records what Proxmox listed


@pytest.fixture
def token(make) -> str:
    """A viewer's API token, as Prometheus' ``authorization: credentials_file`` would send it."""
    return make.token("prometheus")


def scrape(client, token: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape, parsed by prometheus_client's parser: (name, sorted labels) -> value."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "Set-Cookie" not in response.headers
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def total(samples, name: str, **labels) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(value for (sample, found), value in samples.items()
               if sample == name and set(labels.items()) <= set(found))


def test_scrape_counts_what_the_dashboard_shows_and_asks_proxmox_nothing(logged_in, client, pve, token):
    html = client.get("/").text  # records what Proxmox lists
    join_app_threads()  # and starts the backup index's sweep: its calls are the dashboard's, not the scrape's
    pve.clear_requests()
    samples = scrape(client, token)
    assert pve.requests == []
    assert total(samples, "proxboard_containers") == stat(html, "total") == len(pve.containers)
    assert total(samples, "proxboard_containers", status="running") == stat(html, "running")
    assert total(samples, "proxboard_containers", status="stopped") == stat(html, "stopped")
    assert total(samples, "proxboard_containers", status="template") == 1  # CT 103, under "Other" on the dashboard
    assert total(samples, "proxboard_containers", status="locked") == 1  # CT 102
    recorded = samples[("proxboard_inventory_recorded_timestamp_seconds", ())]
    assert recorded > (utcnow() - timedelta(minutes=1)).timestamp()
    on_pve1 = sum(ct.node == "pve1" for ct in pve.containers.values())
    assert total(samples, "proxboard_containers", node="pve1") == on_pve1
    assert samples[("proxboard_containers", (("cluster", "default"), ("node", "pve1"), ("status", "paused")))] == 0  # a sum never goes missing

    assert pve.containers[100].status == "running" and pve.containers[100].node == "pve1"
    before = total(samples, "proxboard_containers", node="pve1", status="stopped")
    pve.containers[100].status = "stopped"  # behind Proxboard's back
    html = client.get("/").text
    join_app_threads()
    pve.clear_requests()
    samples = scrape(client, token)
    assert pve.requests == []
    assert total(samples, "proxboard_containers", status="running") == stat(html, "running")
    assert total(samples, "proxboard_containers", status="stopped") == stat(html, "stopped")
    assert total(samples, "proxboard_containers", node="pve1", status="stopped") == before + 1

    # Proxmox call latency, process-local: the renders above were counted, by operation.
    assert total(samples, "proxboard_proxmox_request_duration_seconds_count", operation="cluster_snapshot") >= 2


def test_scrape_needs_a_valid_token(client, db, token):
    for headers in ({}, {"Authorization": "Bearer pxb_" + "x" * 43}, {"Authorization": "Bearer not-a-token"}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
        assert "Location" not in response.headers and "proxboard_" not in response.text
    revoked = tokens.revoke_token(db.session.scalar(db.select(User).filter_by(username="prometheus")),
                                  db.session.scalar(db.select(ApiToken)).id)
    assert revoked.revoked_at is not None
    assert client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_signed_in_browser_may_read_it_too(logged_in, client):
    response = client.get("/metrics")
    assert response.status_code == 200 and "# TYPE proxboard_containers gauge" in response.text


def test_scrapes_leave_the_audit_log_alone_but_mark_the_token_used(client, db, token):
    entries = db.session.scalar(db.select(func.count()).select_from(AuditEntry))
    for _ in range(3):
        scrape(client, token)
    assert db.session.scalar(db.select(func.count()).select_from(AuditEntry)) == entries
    used = db.session.scalar(db.select(ApiToken))
    assert used.last_used_at is not None and used.last_used_ip == "127.0.0.1"


def test_operations_by_action_and_outcome_with_durations(logged_in, client, pve, db, make, token):
    assert logged_in.post("/containers/104/actions/start", {"view": "card"}).status_code in (200, 302)
    started = db.session.scalar(db.select(Operation).filter_by(action="start"))
    wait_operation(client, 104, started.id)
    pve.faults.fail_next_task(type="vzstop", vmid=104, message="unable to stop")
    assert logged_in.post("/containers/104/actions/stop", {"view": "card"}).status_code in (200, 302)
    stopped = db.session.scalar(db.select(Operation).filter_by(action="stop"))
    wait_operation(client, 104, stopped.id)
    db.session.expire_all()
    assert (started.state, stopped.state) == ("succeeded", "failed")

    # Durations the factories can set exactly: a 40 s provisioning that failed, a backup still running.
    record = make.container(990, "pve1", lifecycle="error", hostname="broken")
    begun = utcnow() - timedelta(minutes=5)
    make.operation(record, "provision", "failed", started_at=begun, finished_at=begun + timedelta(seconds=40))
    make.operation(make.container(991, "pve2"), "backup", "running")

    samples = scrape(client, token)
    assert total(samples, "proxboard_operations_total", action="start", outcome="succeeded") == 1
    assert total(samples, "proxboard_operations_total", action="stop", outcome="failed") == 1
    assert total(samples, "proxboard_operations_total", action="provision", outcome="failed") == 1
    assert total(samples, "proxboard_operations_pending", action="backup", state="running") == 1
    provision = {"action": "provision", "outcome": "failed"}
    assert total(samples, "proxboard_operation_duration_seconds_bucket", le="30.0", **provision) == 0
    assert total(samples, "proxboard_operation_duration_seconds_bucket", le="60.0", **provision) == 1
    assert total(samples, "proxboard_operation_duration_seconds_bucket", le="+Inf", **provision) == 1
    assert total(samples, "proxboard_operation_duration_seconds_count", **provision) == 1
    assert total(samples, "proxboard_operation_duration_seconds_sum", **provision) == pytest.approx(40, abs=0.01)
    start = {"action": "start", "outcome": "succeeded"}
    assert total(samples, "proxboard_operation_duration_seconds_bucket", le="15.0", **start) == 1  # a task of 0.2 s


def test_service_health_alert_incidents_and_proxmox_errors(logged_in, client, pve, db, make, token):
    client.get("/")
    running = db.session.scalar(db.select(Container).filter_by(vmid=100))
    stopped = db.session.scalar(db.select(Container).filter_by(vmid=104))
    assert running.snapshot["status"] == "running" and stopped.snapshot["status"] == "stopped"
    _, broken = make.services(running, 2)
    broken.status = "failed"
    make.services(stopped, 1)  # its last check said running; nothing runs in a stopped container
    db.session.commit()

    create_rule("container_stopped", [], for_minutes=0)
    t0 = utcnow()
    evaluate(gather_facts(), t0 - timedelta(minutes=1))  # sees CT 101 running
    pve.containers[101].status = "stopped"
    evaluate(gather_facts(), t0)

    pve.faults.fail_path("GET", r"^/nodes/pve1/status$", 500, "pvestatd hangs")
    assert client.get("/nodes/pve1").status_code == 200  # the page says so; the failure is counted

    samples = scrape(client, token)
    assert total(samples, "proxboard_services", status="running") == 1
    assert total(samples, "proxboard_services", status="failed") == 1
    assert total(samples, "proxboard_services", status="unknown") == 1
    assert samples[("proxboard_services", (("status", "degraded"),))] == 0
    assert samples[("proxboard_alert_incidents", (("kind", "disk_high"), ("state", "open")))] == 0
    assert total(samples, "proxboard_alert_incidents", kind="container_stopped", state="open") == 1
    assert total(samples, "proxboard_proxmox_request_errors_total", operation="node_status", kind="api") >= 1
    assert samples[("proxboard_job_queue_length", ())] == 0  # jobs run inline in tests


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_openmetrics_when_asked_and_a_scrape_stays_cheap(logged_in, client, db, token, count_queries):
    client.get("/")
    moment = utcnow()
    db.session.execute(insert(Container), [  # a thousand more records, each with a finished start
        {"vmid": 5000 + i, "node": f"pve{i % 3 + 1}", "lifecycle": "ready", "managed": False, "created_at": moment,
         "updated_at": moment, "snapshot": {"status": "running" if i % 2 else "stopped", "name": f"ct{i}"}}
        for i in range(1000)])
    ids = db.session.scalars(db.select(Container.id).where(Container.vmid >= 5000)).all()
    db.session.execute(insert(Operation), [{"container_id": cid, "action": "start", "state": "succeeded",
                                            "started_at": moment, "finished_at": moment} for cid in ids])
    db.session.commit()
    with count_queries() as queries:
        response = client.get("/metrics", headers={"Authorization": f"Bearer {token}",
                                                   "Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")
    # Besides signing the token in: one aggregate query per family from the database
    # (containers, services, operations, alert incidents), whatever the number of rows.
    own = [statement for statement in queries.statements
           if not re.match(r"(SELECT|UPDATE|INSERT INTO) (api_tokens|users|audit_log)\b", statement)]
    assert len(own) == 4, own
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in openmetrics_parser.text_string_to_metric_families(response.text)
               for sample in family.samples}
    assert total(samples, "proxboard_operations_total", action="start", outcome="succeeded") == 1000


CALL_PROXMOX = """
import json, sys
from app.proxmox import ProxmoxClient, ProxmoxSettings
with ProxmoxClient(ProxmoxSettings.from_config(json.loads(sys.argv[1]))) as pve:
    pve.version()
"""
SCRAPE = """
import sys
from app import create_app
from app.observability.collector import exposition
config = {"TESTING": True, "SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": sys.argv[1]}
app = create_app(config, instance_path=sys.argv[2])
with app.app_context():
    sys.stdout.write(exposition(None)[0].decode())
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_multiprocess_mode_adds_up_every_process(app, pve, database_url, tmp_path):
    """Two processes call Proxmox (a gunicorn worker, the job worker); a third answers the scrape with both."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    settings = json.dumps({**pve_config(pve), "PVE_CACHE_SECONDS": 0})
    for _ in range(2):
        subprocess.run([sys.executable, "-c", CALL_PROXMOX, settings], env=env, check=True, timeout=60)
    text = subprocess.run([sys.executable, "-c", SCRAPE, app.config["SQLALCHEMY_DATABASE_URI"], str(tmp_path)],
                          env=env, check=True, timeout=60, capture_output=True, text=True).stdout
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in text_string_to_metric_families(text) for sample in family.samples}
    assert total(samples, "proxboard_proxmox_request_duration_seconds_count", operation="version") == 2
    assert total(samples, "proxboard_containers") == 0  # the database part is there too (nothing recorded yet)
    assert not any(name.startswith("process_") for name, _ in samples)  # per-process figures make no sum


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_job_queue_length_counts_what_waits_for_a_worker(app, client, make, token, tmp_path):
    app.config.update(JOBS_IMMEDIATE=False, HUEY_SQLITE_PATH=str(tmp_path / "jobs.db"))
    jobs.init_app(app)  # a real queue in a SQLite file, and no worker consuming it
    try:
        record = make.container(100, "pve1")
        request_refresh(record.id, "alice")  # what the Refresh services button asks
        samples = scrape(client, token)
    finally:
        app.config["JOBS_IMMEDIATE"] = True
        jobs.init_app(app)
    assert samples[("proxboard_job_queue_length", ())] == 1
    assert total(samples, "proxboard_operations_pending", action="refresh-services", state="queued") == 1


def test_every_status_the_dashboard_can_show_is_reported():
    shown = {display_status(status, lock, lifecycle, template)
             for status in ("running", "stopped", "paused", "suspended", "unknown", None)
             for lock in (None, "backup") for template in (False, True)
             for lifecycle in (None, "creating", "ready", "error", "gone")}
    assert shown == set(CONTAINER_STATUSES)
