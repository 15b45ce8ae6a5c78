"""Provisioning: the job that turns a submitted wizard into a running container.

``start_provisioning`` (called by the wizard) records a queued ``create`` Operation and
enqueues ``tasks.provision_task``; ``run_provisioning`` runs the steps of ``steps.py``
in the worker, writing Step/Log events as it goes and ending in lifecycle ready or error.
"""
from __future__ import annotations

from .service import (
    ProvisioningRefused,
    discard,
    events_after,
    latest_operation,
    retry,
    retry_reason,
    run_provisioning,
    start_provisioning,
    step_states,
    sweep_stale,
)
from .steps import STEPS, StepContext, StepFailed

__all__ = [
    "STEPS", "ProvisioningRefused", "StepContext", "StepFailed", "discard", "events_after", "latest_operation",
    "retry", "retry_reason", "run_provisioning", "start_provisioning", "step_states", "sweep_stale",
]
