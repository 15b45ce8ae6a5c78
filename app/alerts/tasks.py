"""Job-queue tasks of the alerts feature: the evaluation pass, in the worker."""
from __future__ import annotations

import time

from flask import current_app
from huey import crontab
from sqlalchemy import select

from app.extensions import db
from app.jobs import huey, in_app_context
from app.models import AlertRule
from app.proxmox import get_proxmox

from .engine import evaluate, gather_facts


@huey.periodic_task(crontab(minute="*"))
@in_app_context
def evaluate_alerts_task() -> bool:
    """Every minute, at most once per ALERT_INTERVAL_SECONDS (0: alerts off): one evaluation pass.

    Returns whether a pass ran. Nothing runs (and Proxmox is not asked) while no rule is enabled or
    Proxmox is not configured; otherwise the inventory refresh before the pass is its only Proxmox call.
    """
    interval = float(current_app.config.get("ALERT_INTERVAL_SECONDS") or 0)
    last = current_app.extensions.setdefault("alerts_last_pass", {"at": None})
    now = time.monotonic()
    if not interval or (last["at"] is not None and now - last["at"] < interval * 0.9) or get_proxmox().settings is None:
        return False
    if db.session.scalar(select(AlertRule.id).where(AlertRule.enabled.is_(True)).limit(1)) is None:
        return False
    last["at"] = now
    evaluate(gather_facts())
    return True
