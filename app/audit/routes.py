"""``/audit``: the audit log with its filters, and ``/audit.csv``: the same rows as a file (admins only, see
``app.auth.roles``)."""
from __future__ import annotations

from flask import Response, render_template

from app.audit import bp, services
from app.audit.forms import AuditFilterForm
from app.extensions import db
from app.models import utcnow


def _query(form: AuditFilterForm) -> services.AuditQuery:
    since, until = form.window
    return services.AuditQuery(user=form.user.data, action=form.action.data, container=form.container.data,
                               outcome=form.outcome.data or None, since=since, until=until)


@bp.get("/audit")
def index():
    """The log, newest first, filtered and a page at a time; bad filters are named and nothing is listed."""
    form = AuditFilterForm()
    if not form.validate():
        return render_template("audit/index.html", form=form, page=None, total=0, linked={}, filters={},
                               actions=services.known_actions(), users=services.known_users()), 400
    page, total = services.page(_query(form), form.page_number)
    filters = {name: value for name, value in form.filters().items() if value}
    return render_template("audit/index.html", form=form, page=page, total=total, filters=filters,
                           linked=services.linked_containers(page.items), actions=services.known_actions(),
                           users=services.known_users())


@bp.get("/audit.csv")
def export():
    """The filtered log as CSV (a header, then one row per entry, newest first), streamed."""
    form = AuditFilterForm()
    if not form.validate():
        problems = "; ".join(f"{form[name].label.text}: {' '.join(errors)}" for name, errors in form.errors.items())
        return Response(f"Bad filter: {problems}\n", status=400, mimetype="text/plain")
    name = f"proxboard-audit-{utcnow():%Y%m%d-%H%M%S}.csv"
    response = Response(services.csv_lines(_query(form), db.engine), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response
