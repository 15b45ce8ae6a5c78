"""Job-queue tasks of provisioning: the job itself and the stale-job sweep (wizard drafts expire in ``app.wizard.tasks``)."""
from __future__ import annotations

import logging

from huey import crontab

from app.jobs import huey, in_app_context

from .services import run_provisioning, sweep_stale

log = logging.getLogger("app.provisioning")


@huey.task()
@in_app_context
def provision_task(operation_id: int) -> bool:
    """Run one provisioning operation (create is never retried by the queue: retries=0)."""
    return run_provisioning(operation_id)


@huey.periodic_task(crontab(minute="*"))
@in_app_context
def sweep_stale_task() -> int:
    """Every minute: fail provisioning jobs whose worker stopped sending heartbeats."""
    return len(sweep_stale())


@huey.on_startup()
def sweep_on_startup() -> None:
    """A consumer starting up fails the jobs a killed predecessor left running."""
    try:
        in_app_context(sweep_stale)()
    except Exception:  # never keep the consumer from starting
        log.exception("stale provisioning sweep at startup failed")
