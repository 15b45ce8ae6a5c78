"""Job-queue tasks of the wizard: forgetting abandoned drafts."""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from huey import crontab

from app.jobs import huey, in_app_context

from .services import expire_abandoned


@huey.periodic_task(crontab(minute="17"))
@in_app_context
def expire_wizard_drafts_task() -> int:
    """Hourly: forget wizard runs abandoned for WIZARD_DRAFT_HOURS, and the password they hold."""
    return expire_abandoned(timedelta(hours=float(current_app.config["WIZARD_DRAFT_HOURS"])))
