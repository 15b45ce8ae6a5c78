"""The dashboard's list of containers, written once for the dashboard page and ``GET /api/v1/containers``:
a status filter, a search (words and a ``backup:`` term), a page, and the counts per filter.

One Proxmox call (``load_inventory``) and a constant number of queries, whatever the number of containers.
"""
from __future__ import annotations

from dataclasses import dataclass

from app.containers.coverage import Search, narrow, parse_search
from app.containers.inventory import ContainerView, Inventory, attach_services, load_inventory
from app.containers.services import refresh_operation
from app.pagination import Page, paginate


@dataclass
class Listing:
    """One page of the search: ``page.items`` are full views with their services; ``total`` how many
    containers match across pages; ``counts`` the containers per status filter that match the search."""

    inventory: Inventory
    page: Page[ContainerView]
    search: Search
    total: int
    counts: dict[str, int]


def list_containers(status: str, query: str, number: int, per_page: int) -> Listing:
    """Page ``number`` (clamped to the pages there are) of the containers in status filter ``status`` (one of
    ``inventory.STATUS_FILTERS``) matching ``query``, ``per_page`` a page.

    Proxmox unreachable is no error: the containers' last-known state is listed (``inventory.reachable``
    False, each view ``stale``). Pending actions whose task ended meanwhile are settled first.
    """
    search = parse_search(query)
    inventory = load_inventory(settle=refresh_operation)
    matches = narrow(inventory.filtered(status, search.text), search)
    page = paginate(matches, number, per_page)
    page.items = inventory.views(page.items)
    attach_services(page.items)
    everywhere = narrow(inventory.filtered("all", search.text), search) if query else None
    return Listing(inventory, page, search, len(matches), inventory.counts(everywhere))
