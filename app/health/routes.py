"""``GET /healthz``: database, migrations and Proxmox, for load balancers and operators.

Anyone may ask (a load balancer signs in as no one), so the answer carries states and
revisions only: ``status`` ``ok`` (200), ``degraded`` (200: Proxmox or a demo part is down,
Proxboard itself works) or ``error`` (503: the database is unreachable or behind the code).
The reasons (driver errors, which part of ``make run`` failed) are added for a signed-in user
and always go to the log. Proxmox is read through the shared read cache, so load balancers
polling every second cost Proxmox one call per cache interval, however many processes ask.
"""
import logging

from flask import current_app, g, jsonify
from sqlalchemy.exc import SQLAlchemyError

from app.db_faults import is_db_fault, rollback_quietly

from app.health import bp
from app.health.demo import demo_problems
from app.migration_guard import current_status
from app.proxmox import ProxmoxAuthError, ProxmoxConfigError, ProxmoxError, ProxmoxUnreachable

log = logging.getLogger(__name__)

bp.add_app_template_global(demo_problems)  # for the demo banner macro (imported macros see globals only)


@bp.get("/healthz")
def healthz():
    """200 when the database is reachable and current; 503 otherwise. Proxmox is reported, not required."""
    status = current_status(fresh=True)
    proxmox = proxmox_state()
    problems = demo_problems()
    degraded = proxmox not in ("ok", "not configured") or bool(problems)
    body = {
        "status": ("degraded" if degraded else "ok") if status.ok else "error",
        "database": "unreachable" if status.state == "unreachable" else "ok",
        "migrations": {"current": "current", "pending": "pending"}.get(status.state, "unknown"),
        "current": status.current,
        "head": status.head,
        "proxmox": proxmox,
    }
    if status.error:
        log.warning("health check: the database cannot be reached: %s", status.error)
    if g.get("user") is not None:  # an operator signed in: the reasons too
        if status.error:
            body["error"] = status.error
        if problems:
            body["demo"] = {problem.part: problem.message for problem in problems}
    response = jsonify(body)
    response.status_code = 200 if status.ok else 503
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(SQLAlchemyError)
def database_down(exc: SQLAlchemyError):
    """Loading the signed-in user failed before the check ran: answer the check anyway, as for a stranger."""
    if not is_db_fault(exc):
        raise exc
    rollback_quietly()
    g.user = None
    return healthz()


def proxmox_state() -> str:
    """``ok``, ``unreachable``, ``auth failed``, ``error`` or ``not configured``, from the cached cluster read.

    Uses ``cluster_snapshot`` (GET /cluster/resources, the dashboard's own read): within the
    cache interval the answer comes from the shared cache instead of a call of its own.
    """
    client = current_app.extensions.get("proxmox")
    if client is None or client.settings is None:
        return "not configured"
    try:
        client.cluster_snapshot()
    except ProxmoxUnreachable:
        return "unreachable"
    except ProxmoxAuthError:
        return "auth failed"
    except ProxmoxConfigError:
        return "not configured"
    except ProxmoxError as exc:
        log.warning("health check: Proxmox answered with an error: %s", exc)
        return "error"
    return "ok"
