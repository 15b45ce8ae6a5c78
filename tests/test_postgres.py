"""What only PostgreSQL can prove: its JSON columns, bulk writes and partial unique index at work.

(Every test built on the ``app`` fixture also runs on PostgreSQL; these look at the database itself.)
"""
from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from app.models import Container, Operation
from tests.htmx import HX, wait_operation

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]


def test_dashboard_records_and_reads_snapshots(logged_in, client, db, pve):
    assert db.engine.dialect.name == "postgresql"
    for i in range(50):
        pve.add_container(vmid=2000 + i, node="pve1", status="running", hostname=f"pg{i}")
    assert client.get("/").status_code == 200
    recorded = db.session.scalar(db.select(Container).filter_by(vmid=2003))
    assert recorded.managed is False and recorded.snapshot["name"] == "pg3"
    pve.faults.unreachable = True
    page = client.get("/").text
    assert "Cannot reach Proxmox" in page
    assert 'id="ct-2003"' in page and "pg3" in page  # from the snapshot stored in PostgreSQL


def test_one_pending_operation_per_container_is_enforced_by_the_database(logged_in, client, db, pve):
    response = logged_in.post("/containers/104/actions/start", {"view": "card"}, headers=HX)
    assert 'data-testid="pending"' in response.text
    operation = db.session.scalar(db.select(Operation))
    db.session.add(Operation(container_id=operation.container_id, action="stop", state="queued"))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()
    wait_operation(client, 104, operation.id)
    db.session.expire_all()
    assert db.session.get(Operation, operation.id).state == "succeeded"
