"""Job-queue tasks of the alerts feature: the evaluation pass, in the worker."""
from __future__ import annotations

import time

from flask import current_app
from huey import crontab

from app.jobs import huey, in_app_context

from .engine import evaluate, gather_facts

_last = {"at": 0.0}


@huey.periodic_task(crontab(minute="*"))
@in_app_context
def evaluate_alerts_task() -> bool:
    """Every minute, at most once per ALERT_INTERVAL_SECONDS (0: alerts off): one evaluation pass.

    Returns whether a pass ran. The inventory refresh before it is the pass's only Proxmox call.
    """
    interval = float(current_app.config.get("ALERT_INTERVAL_SECONDS") or 0)
    now = time.monotonic()
    if not interval or now - _last["at"] < interval * 0.9:
        return False
    _last["at"] = now
    evaluate(gather_facts())
    return True
