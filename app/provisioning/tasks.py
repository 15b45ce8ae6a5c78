"""Job-queue tasks of provisioning: the job itself and the stale-job sweep (wizard drafts expire in ``app.wizard.tasks``)."""
from __future__ import annotations

import logging

from huey import crontab

from app import jobs
from app.clusters import use_cluster_of_container
from app.jobs import huey, in_app_context

from .services import JOB, run_provisioning, sweep_stale

log = logging.getLogger("app.provisioning")


@jobs.named(JOB)
@huey.task()
@in_app_context
def provision_task(operation_id: int) -> bool:
    """Run one provisioning operation (create is never retried by the queue: retries=0), in its container's cluster."""
    with use_cluster_of_container(operation_id=operation_id):
        return run_provisioning(operation_id)


jobs.sweep(sweep_stale)  # the web process runs it too, so a dead job ends while no worker runs


@huey.periodic_task(crontab(minute="*"))
@in_app_context
def sweep_stale_task() -> int:
    """Every minute: fail provisioning jobs whose worker stopped sending heartbeats, re-send lost ones."""
    return len(sweep_stale())


@huey.on_startup()
def sweep_on_startup() -> None:
    """A consumer starting up fails the jobs a killed predecessor left running."""
    try:
        in_app_context(sweep_stale)()
    except Exception:  # never keep the consumer from starting
        log.exception("stale provisioning sweep at startup failed")
