"""Job-queue tasks of the audit log: forgetting entries (and login attempts) past their retention."""
from __future__ import annotations

import logging

from huey import crontab

from app import jobs
from app.jobs import huey, in_app_context

from .services import sweep_retention

log = logging.getLogger("app.audit")


def sweep_retention_logged() -> int:
    """Run the retention sweep and log what it deleted; returns the number of rows deleted."""
    swept = sweep_retention()
    if swept.audit_entries or swept.login_attempts:
        log.info("retention: deleted %d audit entries and %d login attempts", swept.audit_entries, swept.login_attempts)
    return swept.audit_entries + swept.login_attempts


jobs.sweep(sweep_retention_logged)  # the web process runs it too (at most once a minute): a deployment without a worker


@huey.periodic_task(crontab(minute="41"))
@in_app_context
def audit_retention_task() -> int:
    """Hourly: delete audit entries older than AUDIT_RETENTION_DAYS and login attempts older than
    LOGIN_ATTEMPTS_RETENTION_DAYS, in batches."""
    return sweep_retention_logged()
