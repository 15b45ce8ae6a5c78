"""The dashboard: every container at a glance, refreshed in place."""
from __future__ import annotations

from flask import current_app, url_for

from app.containers.listing import list_containers
from app.dashboard import bp
from app.dashboard.forms import DashboardQuery
from app.htmx import fragment_or_page


@bp.get("/")
def index():
    """The container grid; htmx refreshes get only the body fragment."""
    form = DashboardQuery()
    status, number, query = form.status_filter, form.page_number, form.search
    listing = list_containers(status, query, number, int(current_app.config["DASHBOARD_PAGE_SIZE"]))
    inventory, page, search, pill_counts = listing.inventory, listing.page, listing.search, listing.counts
    refresh_url = url_for("dashboard.index", status=None if status == "all" else status, q=query or None,
                          page=None if page.number == 1 else page.number)
    context = {"inventory": inventory, "page": page, "status": status, "query": query, "pill_counts": pill_counts,
               "search": search, "refresh_url": refresh_url, "reachable": inventory.reachable, "next_url": refresh_url}
    return fragment_or_page("dashboard/_body.html", "dashboard/index.html", **context)
