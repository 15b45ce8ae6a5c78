"""`/healthz` and the operator page shown while migrations are pending."""
from __future__ import annotations

from flask_migrate import downgrade

from app import create_app
from app.extensions import db
from app.migration_guard import head_revision
from tests.fixtures.app import app_config


def test_healthz_reports_ok_on_a_current_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["migrations"] == "current"
    assert body["current"] == body["head"] == head_revision()
    assert body["proxmox"] == "ok"


def behind_app(sqlite_url, pve):
    """An app whose database is one revision behind the code."""
    app = create_app(app_config(sqlite_url, pve))
    with app.app_context():
        downgrade(revision="-1")
        db.engine.dispose()
    return create_app(app_config(sqlite_url, pve))


def test_healthz_503_when_database_is_one_revision_behind(sqlite_url, pve):
    app = behind_app(sqlite_url, pve)
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["migrations"] == "pending"
    assert body["head"] == head_revision()
    assert body["current"] != body["head"]
    with app.app_context():
        db.engine.dispose()


def test_pages_show_the_operator_page_not_a_sql_error(sqlite_url, pve):
    app = behind_app(sqlite_url, pve)
    for path in ("/", "/login", "/templates"):
        response = app.test_client().get(path)
        assert response.status_code == 503
        assert "flask db upgrade" in response.text
        assert "OperationalError" not in response.text and "no such table" not in response.text
    with app.app_context():
        db.engine.dispose()


def test_healthz_503_when_database_unreachable(pve):
    app = create_app(app_config("postgresql+psycopg://postgres@127.0.0.1:9/nowhere?connect_timeout=2", pve))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unreachable"
    page = app.test_client().get("/login")
    assert page.status_code == 503 and "cannot be reached" in page.text


def test_healthz_stays_200_when_only_proxmox_is_down(client, pve):
    pve.faults.unreachable = True
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["proxmox"] == "unreachable"


def test_anonymous_healthz_shows_states_not_error_text(pve, caplog):
    app = create_app(app_config("postgresql+psycopg://postgres@127.0.0.1:9/nowhere?connect_timeout=2", pve))
    response = app.test_client().get("/healthz")
    body = response.get_json()
    assert response.status_code == 503 and body["status"] == "error" and body["database"] == "unreachable"
    assert "error" not in body and "127.0.0.1" not in response.text and "connection" not in response.text.lower()
    assert "Connection refused" in caplog.text or "connection" in caplog.text.lower()  # the reason is in the log
    page = app.test_client().get("/login")
    assert page.status_code == 503 and "127.0.0.1:9" not in page.text


def test_what_failed_is_told_to_a_signed_in_operator_only(app, client, auth, pve, tmp_path):
    import json
    import os

    status = tmp_path / "demo-status.json"
    status.write_text(json.dumps({"run_pid": os.getpid(), "parts": {"worker": {
        "state": "failed", "message": "The job worker exited: see instance/worker.log", "log": "instance/worker.log"}}}))
    app.config["DEMO_STATUS_FILE"] = str(status)
    pve.faults.unreachable = True
    anonymous = client.get("/healthz")
    assert anonymous.status_code == 200
    assert anonymous.get_json()["status"] == "degraded" and anonymous.get_json()["proxmox"] == "unreachable"
    assert "demo" not in anonymous.get_json() and "worker.log" not in anonymous.text
    pve.faults.unreachable = False
    auth.login()
    signed_in = client.get("/healthz").get_json()
    assert signed_in["demo"] == {"worker": "The job worker exited: see instance/worker.log"}


def test_healthz_reads_proxmox_through_the_shared_cache(app, client, pve):
    app.extensions["proxmox"].invalidate()
    app.config["PVE_CACHE_SECONDS"] = 30
    from app.proxmox import init_app as init_proxmox

    init_proxmox(app)  # the cache interval of a deployed app (tests run with the cache off)
    pve.clear_requests()
    for _ in range(5):
        assert client.get("/healthz").get_json()["proxmox"] == "ok"
    client.get("/")  # the dashboard's read is the same cached one
    assert pve.count_requests("GET", "/cluster/resources") == 1
    assert pve.count_requests("GET", "/version") == 0


def test_sqlite_files_are_created_private(pve, tmp_path):
    import stat

    app = create_app(app_config(f"sqlite:///{tmp_path / 'new' / 'proxboard.db'}", pve, JOBS_IMMEDIATE=False,
                                HUEY_SQLITE_PATH=str(tmp_path / "new" / "jobs.db")))
    for name in ("proxboard.db", "jobs.db"):
        assert stat.S_IMODE((tmp_path / "new" / name).stat().st_mode) == 0o600, name
    with app.app_context():
        db.engine.dispose()
