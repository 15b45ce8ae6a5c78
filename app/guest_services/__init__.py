"""Service discovery and health of containers (over SSH), stored on Service/Credential rows.

Entry points: ``refresh_container_services(container_id)`` (synchronous, for jobs and
provisioning), ``request_refresh(container_id, user)`` (queues a job, returns its Operation),
``refresh_running_containers()`` (the periodic check) and ``status_colour(status)``.
"""
from __future__ import annotations

from .classify import STATUS_COLOURS, status_colour
from .services import ACTION, RefreshRefused, request_refresh, run_refresh_operation
from .refresh import RefreshResult, UnknownContainer, refresh_container, refresh_container_services, refresh_running_containers

__all__ = [
    "ACTION",
    "STATUS_COLOURS",
    "RefreshRefused",
    "RefreshResult",
    "UnknownContainer",
    "refresh_container",
    "refresh_container_services",
    "refresh_running_containers",
    "request_refresh",
    "run_refresh_operation",
    "status_colour",
]
