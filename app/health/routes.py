"""``GET /healthz``: database, migrations and Proxmox, for load balancers and operators."""
from flask import current_app, jsonify

from app.health import bp
from app.health.demo import demo_problems
from app.migration_guard import current_status

bp.add_app_template_global(demo_problems)  # for the demo banner macro (imported macros see globals only)


@bp.get("/healthz")
def healthz():
    """200 when the database is reachable and current; 503 otherwise. Proxmox is reported, not required."""
    status = current_status(fresh=True)
    body = {
        "status": "ok" if status.ok else "error",
        "database": "unreachable" if status.state == "unreachable" else "ok",
        "migrations": {"current": "current", "pending": "pending"}.get(status.state, "unknown"),
        "current": status.current,
        "head": status.head,
    }
    if status.error:
        body["error"] = status.error
    proxmox = current_app.extensions.get("proxmox")
    if proxmox is not None:
        body["proxmox"] = proxmox.health()
    if problems := demo_problems():
        body["demo"] = {problem.part: problem.message for problem in problems}
    response = jsonify(body)
    response.status_code = 200 if status.ok else 503
    response.headers["Cache-Control"] = "no-store"
    return response
