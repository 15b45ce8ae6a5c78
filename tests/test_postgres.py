"""The main flows on a real PostgreSQL: what SQLite alone would not prove (JSON, partial index, bulk writes)."""
from __future__ import annotations

import time

import pytest
from sqlalchemy.exc import IntegrityError

from app import create_app
from app.extensions import db
from app.models import Container, Operation
from tests.fixtures.app import AuthActions, IsolatedClient, app_config
from tests.fixtures.database import upgrade_database

pytestmark = pytest.mark.postgres
HX = {"HX-Request": "true"}


@pytest.fixture
def pg_app(postgres_url, pve, tmp_path):
    upgrade_database(postgres_url)
    application = create_app(app_config(postgres_url, pve))
    application.instance_path = str(tmp_path)
    application.test_client_class = IsolatedClient
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def pg_auth(pg_app):
    auth = AuthActions(pg_app.test_client(), pg_app)
    auth.login()
    return auth


def test_dashboard_records_and_reads_snapshots_on_postgres(pg_app, pg_auth, pve):
    for i in range(50):
        pve.add_container(vmid=2000 + i, node="pve1", status="running", hostname=f"pg{i}")
    client = pg_auth._client
    assert client.get("/").status_code == 200
    recorded = db.session.scalar(db.select(Container).filter_by(vmid=2003))
    assert recorded.managed is False and recorded.snapshot["name"] == "pg3"
    pve.faults.unreachable = True
    page = client.get("/").text
    assert "Cannot reach Proxmox" in page
    assert 'id="ct-2003"' in page and "pg3" in page  # from the snapshot stored in PostgreSQL


def test_lifecycle_action_and_one_pending_operation_per_container_on_postgres(pg_app, pg_auth, pve):
    client = pg_auth._client
    response = pg_auth.post("/containers/104/actions/start", {"view": "card"}, headers=HX)
    assert 'data-testid="pending"' in response.text
    operation = db.session.scalar(db.select(Operation))
    db.session.add(Operation(container_id=operation.container_id, action="stop", state="queued"))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()
    deadline = time.monotonic() + 10
    while client.get(f"/containers/104/operations/{operation.id}?view=card", headers=HX).status_code == 204:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    db.session.expire_all()
    assert db.session.get(Operation, operation.id).state == "succeeded"
