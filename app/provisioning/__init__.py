"""Provisioning: the job that turns a submitted wizard into a running container.

``start_provisioning`` (called by the wizard) records a queued ``create`` Operation and
enqueues ``tasks.provision_task``; ``run_provisioning`` runs the steps of ``steps.py``
in the worker, writing Step/Log events as it goes and ending in lifecycle ready or error.
SSH is only needed for files, packages and scripts (and discovery, skipped without it).
"""
from __future__ import annotations

from .services import (
    ProvisioningRefused,
    events_after,
    latest_operation,
    plan_ssh_problem,
    retry,
    retry_reason,
    run_provisioning,
    start_provisioning,
    step_states,
    sweep_stale,
    wipe_secret,
)
from .steps import STEPS, StepContext, StepFailed, describe_work, inside_work

__all__ = [
    "STEPS", "ProvisioningRefused", "StepContext", "StepFailed", "describe_work", "events_after",
    "inside_work", "latest_operation", "plan_ssh_problem", "retry", "retry_reason", "run_provisioning",
    "start_provisioning", "step_states", "sweep_stale", "wipe_secret",
]
