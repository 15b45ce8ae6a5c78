"""The "Refresh services" operation: an Operation row the UI polls while a job runs."""
from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from app import jobs
from app.db_faults import is_db_fault
from app.extensions import db
from app.models import Container, Operation
from app.models.types import utcnow

from .refresh import ACTION, RefreshResult, UnknownContainer, refresh_container_services

log = logging.getLogger("app.guest_services")
JOB = "refresh_services"  # the job's name in app.jobs (declared in .tasks)


class RefreshRefused(Exception):
    """Another operation (start, provisioning…) is pending on the container."""


def request_refresh(container_id: int, requested_by: str | None = None) -> Operation:
    """Queue a service refresh of one container and return its Operation (state "queued").

    Views call this; the work happens in the job queue, never in the request. A refresh
    already pending is returned as is; any other pending operation raises RefreshRefused, and
    an unknown ``container_id`` UnknownContainer.
    """
    if db.session.get(Container, container_id) is None:
        raise UnknownContainer(f"There is no container {container_id}.")
    pending = db.session.scalar(
        db.select(Operation).where(Operation.container_id == container_id, Operation.state.in_(("queued", "running")))
    )
    if pending is not None:
        if pending.action == ACTION:
            return pending
        raise RefreshRefused(f"Another operation is in progress ({pending.action}).")
    operation = Operation(container_id=container_id, action=ACTION, state="queued", requested_by=requested_by)
    db.session.add(operation)
    try:
        db.session.commit()
    except IntegrityError:  # one pending operation per container, enforced by a unique index
        db.session.rollback()
        raise RefreshRefused("Another operation is in progress.") from None
    jobs.enqueue(JOB, container_id, operation.id)  # after the commit: the worker must find the row
    return operation


def run_refresh_operation(container_id: int, operation_id: int) -> RefreshResult | None:
    """Run a queued refresh, moving its Operation queued → running → succeeded/failed."""
    operation = db.session.get(Operation, operation_id)
    if operation is None or operation.state not in ("queued", "running"):
        log.warning("refresh operation %s is gone or already finished; skipped", operation_id)
        return None
    operation.state = "running"
    operation.heartbeat_at = utcnow()
    db.session.commit()
    try:
        result = refresh_container_services(container_id)
    except Exception as exc:  # the row must end; the error is shown to the user
        db.session.rollback()
        _finish(operation_id, "failed", "the database connection was lost" if is_db_fault(exc)
                else "an unexpected error in Proxboard (the details are in its log)")
        log.exception("refresh operation %s failed", operation_id)
        return None
    _finish(operation_id, "succeeded" if result.ok else "failed", result.error)
    return result


def _finish(operation_id: int, state: str, error: str | None) -> None:
    operation = db.session.get(Operation, operation_id)
    operation.state = state
    operation.error = error
    operation.progress = 100
    operation.finished_at = operation.heartbeat_at = utcnow()
    db.session.commit()
