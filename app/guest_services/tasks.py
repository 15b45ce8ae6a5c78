"""Job-queue tasks of the services feature."""
from __future__ import annotations

import logging

from huey import crontab

from app.jobs import huey, in_app_context
from app.proxmox import ProxmoxError
from app.ssh import SSHConfigError

from .services import run_refresh_operation
from .refresh import refresh_running_containers

log = logging.getLogger("app.guest_services")


@huey.task()
@in_app_context
def refresh_services_task(container_id: int, operation_id: int) -> bool:
    """Refresh one container's services for a "Refresh services" Operation."""
    result = run_refresh_operation(container_id, operation_id)
    return bool(result and result.ok)


@huey.periodic_task(crontab(minute="*"))
@in_app_context
def check_services_task() -> int:
    """Every minute: refresh running containers not checked within SERVICE_CHECK_SECONDS."""
    try:
        results = refresh_running_containers(due_only=True)
    except (SSHConfigError, ProxmoxError) as exc:  # not set up yet, or Proxmox down: try next minute
        log.warning("service check skipped: %s", exc)
        return 0
    failed = [result for result in results if not result.ok]
    if results:
        log.info("service check: %d containers, %d failed", len(results), len(failed))
    return len(results)
