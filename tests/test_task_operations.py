"""The Proxmox tasks Proxboard follows for a container besides the lifecycle actions (``start_task``)."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm.attributes import set_committed_value

from app.containers.services import ActionRefused, refresh_operation, start_task
from app.models import Event, Operation


def _snapshot(vmid: int, name: str = "s1") -> Operation:
    from app.proxmox import get_proxmox

    return start_task(vmid, "snapshot", "alice", lambda live: get_proxmox().create_snapshot(live.node, vmid, name),
                      what=f"Snapshot '{name}' of CT {vmid}", done=f"Snapshot '{name}' of CT {vmid} taken.")


def _events(db, operation: Operation, type_: str) -> list[str]:
    return list(db.session.scalars(select(Event.message).where(
        Event.container_id == operation.container_id, Event.type == type_)))


def test_a_task_is_followed_to_its_end_and_told_once_however_many_pollers(app, db, pve):
    operation = _snapshot(104)
    assert operation.pending and operation.upid and "vzsnapshot" in operation.upid
    with pytest.raises(ActionRefused, match="Another operation is in progress"):
        _snapshot(104, "s2")
    pve.wait_idle(5)
    stale_id = operation.id
    outcome = refresh_operation(operation)
    assert outcome is not None and outcome.category == "success" and outcome.message == "Snapshot 's1' of CT 104 taken."
    # A second poller that loaded the operation while it was still running finds it ended and tells nothing.
    other = db.session.get(Operation, stale_id)
    set_committed_value(other, "state", "running")
    assert refresh_operation(other) is None
    db.session.expire_all()
    assert db.session.get(Operation, stale_id).state == "succeeded"
    assert _events(db, operation, "complete") == ["Snapshot 's1' of CT 104 taken."]


def test_a_failed_task_is_an_error_event_with_proxmox_reason(app, db, pve):
    pve.faults.fail_next_task(type="vzsnapshot", vmid=104, message="snapshot feature is not available")
    operation = _snapshot(104)
    pve.wait_idle(5)
    outcome = refresh_operation(operation)
    assert outcome.category == "danger"
    assert outcome.message == "Snapshot 's1' of CT 104 failed: snapshot feature is not available"
    assert _events(db, operation, "error") == [outcome.message]


def test_a_refused_request_changes_nothing_and_says_why(app, db, pve):
    with pytest.raises(ActionRefused, match="reserved name"):
        _snapshot(104, "vzdump")
    assert db.session.scalar(select(Operation).where(Operation.state.in_(("queued", "running")))) is None
