"""The dashboard: every container at a glance, refreshed in place.

The body (summary, filters, cards) is drawn once per cache interval for everyone asking for the same
filter, search and page with the same role (``render_cache``); each answer adds only the person's own
parts: the page around it and their CSRF token. An auto-refresh that already shows the current body
gets ``304`` and nothing else.
"""
from __future__ import annotations

from flask import current_app, render_template, url_for
from markupsafe import Markup

from app import render_cache
from app.auth.roles import current_role
from app.containers.listing import list_containers
from app.dashboard import bp
from app.dashboard.forms import DashboardQuery
from app.htmx import is_htmx, page
from app.proxmox import get_proxmox


@bp.get("/")
def index():
    """The container grid; htmx refreshes get only the body fragment (``304`` when it has not changed)."""
    form = DashboardQuery()
    status, number, query = form.status_filter, form.page_number, form.search
    per_page = int(current_app.config["DASHBOARD_PAGE_SIZE"])

    def draw() -> tuple[str, dict]:
        listing = list_containers(status, query, number, per_page)
        refresh_url = url_for("dashboard.index", status=None if status == "all" else status, q=query or None,
                              page=None if listing.page.number == 1 else listing.page.number)
        context = {"inventory": listing.inventory, "page": listing.page, "status": status, "query": query,
                   "pill_counts": listing.counts, "search": listing.search, "refresh_url": refresh_url,
                   "reachable": listing.inventory.reachable, "next_url": refresh_url}
        html = render_template("dashboard/_body.html", **context)
        return html, {"total": listing.inventory.total, "pill_counts": listing.counts, "refresh_url": refresh_url}

    render = render_cache.shared(("dashboard", current_role(), status, number, query, per_page), draw,
                                 get_proxmox().cache.generation())
    if is_htmx():
        return render_cache.conditional(render, lambda: page(render_cache.personal(render)))
    body = render_cache.personal(render)
    facts = render.facts
    return page(render_template("dashboard/index.html", body=Markup(body), status=status, query=query,
                                total=facts["total"], pill_counts=facts["pill_counts"],
                                refresh_url=facts["refresh_url"], etag=render.etag))
