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
