"""Job-queue tasks of the services feature."""
from __future__ import annotations

import logging

from flask import current_app
from huey import crontab

from app import jobs
from app.clusters import UnknownCluster, clusters, use_cluster, use_cluster_of_container
from app.jobs import huey, in_app_context
from app.proxmox import ProxmoxError
from app.ssh import SSHConfigError

from .services import JOB, run_refresh_operation
from .refresh import refresh_running_containers

log = logging.getLogger("app.guest_services")


@jobs.named(JOB)
@huey.task()
@in_app_context
def refresh_services_task(container_id: int, operation_id: int) -> bool:
    """Refresh one container's services for a "Refresh services" Operation, in the container's cluster."""
    with use_cluster_of_container(container_id):
        result = run_refresh_operation(container_id, operation_id)
    return bool(result and result.ok)


@huey.periodic_task(crontab(minute="*"))
@in_app_context
def check_services_task() -> int:
    """Every minute: refresh running containers not checked within SERVICE_CHECK_SECONDS, in every cluster."""
    results = []
    for info in clusters():
        with use_cluster(info.name):
            try:
                results += refresh_running_containers(due_only=True)
            except (SSHConfigError, ProxmoxError, UnknownCluster) as exc:  # not set up, down or removed: next minute
                log.warning("service check of cluster %s skipped: %s", info.name, exc)
    failed = [result for result in results if not result.ok]
    if results:
        log.info("service check: %d containers, %d failed", len(results), len(failed))
    return len(results)


@jobs.sweep
def sweep_refresh_operations() -> int:
    """Send again the "Refresh services" jobs that were lost, and end those whose worker died.

    A queued refresh older than JOBS_REQUEUE_SECONDS with no job waiting is enqueued again; a
    running one without a heartbeat for SERVICE_CHECK_TIMEOUT plus a minute ends failed, so
    the container's actions (refused while an operation is pending) are free again. Returns
    how many were ended.
    """
    from datetime import timedelta

    from sqlalchemy import func, select, update

    from app.extensions import db
    from app.models import Operation, utcnow

    from .refresh import ACTION

    config = current_app.config
    now = utcnow()
    lost = list(db.session.execute(select(Operation.id, Operation.container_id).where(
        Operation.action == ACTION, Operation.state == "queued",
        Operation.started_at < now - timedelta(seconds=float(config.get("JOBS_REQUEUE_SECONDS", 60))))))
    db.session.rollback()
    for operation_id, container_id in lost:
        if jobs.requeue(JOB, (container_id, operation_id)):
            log.warning("refresh operation %s was queued without a job waiting; enqueued it again", operation_id)
    stale_before = now - timedelta(seconds=float(config.get("SERVICE_CHECK_TIMEOUT", 30)) + 60)
    ended = db.session.execute(update(Operation).where(
        Operation.action == ACTION, Operation.state == "running",
        func.coalesce(Operation.heartbeat_at, Operation.started_at) < stale_before,
    ).values(state="failed", finished_at=now, error="The refresh job stopped responding (its worker was probably "
                                                    "stopped); refresh again."))
    db.session.commit()
    return ended.rowcount or 0
