"""How Proxmox answers this process: the latency of every call and its failures, for ``/metrics``.

``ProxmoxClient._call`` (the one place a request is sent) calls ``record`` once per call, after its
retry if any. The instruments live in prometheus_client's default registry, so they count this
process only: with several gunicorn workers (and ``flask worker``) set ``PROMETHEUS_MULTIPROC_DIR``
to an empty folder shared by them all, before they start, and prometheus_client writes them there
for ``/metrics`` to add up (see README, "Prometheus"). Nothing here imports the rest of Proxboard.
"""
from __future__ import annotations

import time

from prometheus_client import Counter, Histogram

from .errors import (
    ProxmoxAPIError,
    ProxmoxAuthError,
    ProxmoxConfigError,
    ProxmoxPermissionError,
    ProxmoxSlow,
    ProxmoxUnreachable,
)

# Proxmox answers a listing in tens of milliseconds and a slow node in seconds; PVE_TIMEOUT defaults to 10 s.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Most specific first: slow is a kind of unreachable, a permission refusal a kind of auth error.
ERROR_KINDS = (
    (ProxmoxSlow, "slow"),
    (ProxmoxUnreachable, "unreachable"),
    (ProxmoxPermissionError, "permission"),
    (ProxmoxAuthError, "auth"),
    (ProxmoxAPIError, "api"),
    (ProxmoxConfigError, "config"),
)

REQUEST_SECONDS = Histogram(
    "proxboard_proxmox_request_duration_seconds",
    "Seconds a Proxmox API call took, answered or failed, by Proxboard operation (cluster_snapshot, start, …).",
    ["operation"], buckets=LATENCY_BUCKETS,
)
REQUEST_ERRORS = Counter(
    "proxboard_proxmox_request_errors",
    "Proxmox API calls that failed, by Proxboard operation and kind (unreachable, slow, auth, permission, api, "
    "config).",
    ["operation", "kind"],
)


def error_kind(error: BaseException) -> str:
    """The ``kind`` label of a failed call: ``unreachable``, ``slow``, ``auth``, ``permission``, ``api``,
    ``config``, else ``other``."""
    return next((kind for cls, kind in ERROR_KINDS if isinstance(error, cls)), "other")


def record(operation: str, started: float, error: BaseException | None = None) -> None:
    """Count one call of ``operation`` that began at ``started`` (``time.monotonic()``) and ended now,
    failed with ``error`` when given."""
    REQUEST_SECONDS.labels(operation).observe(max(time.monotonic() - started, 0.0))
    if error is not None:
        REQUEST_ERRORS.labels(operation, error_kind(error)).inc()
