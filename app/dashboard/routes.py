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
from app.clusters import clusters
from app.containers.listing import list_containers
from app.dashboard import bp
from app.dashboard.forms import DashboardQuery
from app.dashboard.services import cluster_summaries
from app.htmx import is_htmx, page
from app.proxmox import ProxmoxError, get_proxmox


@bp.get("/")
def index():
    """The container grid; htmx refreshes get only the body fragment (``304`` when it has not changed)."""
    form = DashboardQuery()
    status, number, query, cluster = form.status_filter, form.page_number, form.search, form.cluster_filter
    per_page = int(current_app.config["DASHBOARD_PAGE_SIZE"])
    names = [info.name for info in clusters()]

    def draw() -> tuple[str, dict]:
        listing = list_containers(status, query, number, per_page, cluster)
        refresh_url = url_for("dashboard.index", status=None if status == "all" else status, q=query or None,
                              cluster=cluster, page=None if listing.page.number == 1 else listing.page.number)
        context = {"inventory": listing.inventory, "page": listing.page, "status": status, "query": query,
                   "pill_counts": listing.counts, "search": listing.search, "refresh_url": refresh_url,
                   "reachable": listing.inventory.reachable, "next_url": refresh_url, "cluster": cluster,
                   "cluster_names": names, "summaries": cluster_summaries(listing.inventory) if len(names) > 1 else [],
                   "scope": listing.scope, "scope_counts": listing.scope_counts}
        html = render_template("dashboard/_body.html", **context)
        return html, {"total": listing.scope_counts["all"], "pill_counts": listing.counts, "refresh_url": refresh_url}

    generation = tuple(_generation(name) for name in names)
    render = render_cache.shared(("dashboard", current_role(), status, number, query, per_page, cluster), draw,
                                 generation)
    if is_htmx():
        return render_cache.conditional(render, lambda: page(render_cache.personal(render)))
    body = render_cache.personal(render)
    facts = render.facts
    return page(render_template("dashboard/index.html", body=Markup(body), status=status, query=query, cluster=cluster,
                                total=facts["total"], pill_counts=facts["pill_counts"],
                                refresh_url=facts["refresh_url"], etag=render.etag))


def _generation(name: str) -> int | None:
    """The read cache generation of cluster ``name``'s Proxmox (None when its settings cannot make a client)."""
    try:
        return get_proxmox(name).cache.generation()
    except (ProxmoxError, LookupError):
        return None

