"""The dashboard's list of containers, written once for the dashboard page and ``GET /api/v1/containers``:
a status filter, a search (words and a ``backup:`` term), a page, and the counts per filter.

One Proxmox call (``load_inventory``) and a constant number of queries, whatever the number of containers.
"""
from __future__ import annotations

from dataclasses import dataclass

from app.clusters import UnknownCluster, clusters, use_cluster
from app.containers.coverage import Search, narrow, parse_search
from app.containers.inventory import ContainerView, Inventory, attach_services, combine, load_inventory
from app.containers.services import refresh_operation
from app.pagination import Page, paginate
from app.proxmox import ProxmoxError, get_proxmox
from app.proxmox.deadline import submit


@dataclass
class Listing:
    """One page of the search: ``page.items`` are full views with their services; ``total`` how many
    containers match across pages; ``counts`` the containers per status filter that match the search."""

    inventory: Inventory
    page: Page[ContainerView]
    search: Search
    total: int
    counts: dict[str, int]
    scope: Inventory  # what the summary shows: the chosen cluster's inventory, else ``inventory``
    scope_counts: dict[str, int]  # the containers per status filter of ``scope``, whatever the search


def load_clusters(names: list[str] | None = None) -> Inventory:
    """The inventory of the clusters ``names`` (default: every cluster; ``app.clusters.clusters``): one
    cluster's own, or several ``combine``d, each loaded under its cluster (its Proxmox, its records, its last
    known state when it does not answer). Pending actions whose task ended meanwhile are settled first."""
    names = names if names is not None else [info.name for info in clusters()]
    if len(names) == 1:
        with use_cluster(names[0]):
            return load_inventory(settle=refresh_operation)
    fetches = {}
    for name in names:  # every cluster asked at once: a slow one keeps only itself waiting, within the deadline
        with use_cluster(name):
            try:
                fetches[name] = submit(get_proxmox().cluster_snapshot)
            except ProxmoxError:  # no client (settings gone bad): load_inventory says so
                pass
            except UnknownCluster:  # removed by another process since this one read the list
                continue
    parts = {}
    for name in names:
        with use_cluster(name):
            try:
                parts[name] = load_inventory(settle=refresh_operation, fetch=fetches.get(name))
            except UnknownCluster:
                continue
    return combine(parts)


def list_containers(status: str, query: str, number: int, per_page: int, cluster: str | None = None) -> Listing:
    """Page ``number`` (clamped to the pages there are) of the containers in status filter ``status`` (one of
    ``inventory.STATUS_FILTERS``) matching ``query``, ``per_page`` a page.

    Proxmox unreachable is no error: the containers' last-known state is listed (``inventory.reachable``
    False, each view ``stale``). Pending actions whose task ended meanwhile are settled first. ``cluster``
    (a known name) lists that cluster's containers only, else every cluster's.
    """
    search = parse_search(query)
    inventory = load_clusters()
    scope = inventory.parts.get(cluster, inventory) if cluster else inventory

    def within(entries: list) -> list:
        return entries if not cluster else [entry for entry in entries if inventory.cluster_of(entry) == cluster]

    matches = narrow(within(inventory.filtered(status, search.text)), search, inventory.cluster_of)
    page = paginate(matches, number, per_page)
    page.items = inventory.views(page.items)
    attach_services(page.items)
    scope_counts = inventory.counts(within(inventory.entries))
    everywhere = narrow(within(inventory.filtered("all", search.text)), search, inventory.cluster_of) if query else None
    return Listing(inventory, page, search, len(matches), inventory.counts(everywhere) if query else scope_counts,
                   scope, scope_counts)
