"""The dashboard: every container at a glance, refreshed in place."""
from __future__ import annotations

from flask import current_app, url_for

from app.containers.coverage import narrow, parse_search
from app.containers.inventory import attach_services, load_inventory
from app.containers.services import refresh_operation
from app.dashboard import bp
from app.dashboard.forms import DashboardQuery
from app.htmx import fragment_or_page
from app.pagination import paginate


@bp.get("/")
def index():
    """The container grid; htmx refreshes get only the body fragment."""
    form = DashboardQuery()
    status, number, query = form.status_filter, form.page_number, form.search
    search = parse_search(query)
    inventory = load_inventory(settle=refresh_operation)
    page = paginate(narrow(inventory.filtered(status, search.text), search), number,
                    int(current_app.config["DASHBOARD_PAGE_SIZE"]))
    page.items = inventory.views(page.items)
    attach_services(page.items)
    everywhere = narrow(inventory.filtered("all", search.text), search) if query else None
    pill_counts = inventory.counts(everywhere)
    refresh_url = url_for("dashboard.index", status=None if status == "all" else status, q=query or None,
                          page=None if page.number == 1 else page.number)
    context = {"inventory": inventory, "page": page, "status": status, "query": query, "pill_counts": pill_counts,
               "search": search, "refresh_url": refresh_url, "reachable": inventory.reachable, "next_url": refresh_url}
    return fragment_or_page("dashboard/_body.html", "dashboard/index.html", **context)
