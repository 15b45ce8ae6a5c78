"""What the dashboard shows of each cluster when it watches several."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app

from app.clusters import clusters
from app.containers.inventory import Inventory


@dataclass(frozen=True)
class ClusterSummary:
    """One cluster's line of the summary: its name and address, whether its Proxmox answered (since when not,
    and why), its containers per status filter, and its CPU and memory use."""

    name: str
    host: str | None
    reachable: bool
    slow: bool
    error: str | None
    since: datetime | None
    counts: dict[str, int]
    cpu_percent: float | None
    mem_percent_text: str
    offline_nodes: tuple[str, ...]


def cluster_summaries(inventory: Inventory) -> list[ClusterSummary]:
    """A summary per cluster of a ``combine``d inventory, in its order (default first, then by name)."""
    hosts = {info.name: info.host for info in clusters()}
    summaries = []
    for name, part in inventory.parts.items():
        host = hosts.get(name) or (current_app.config.get("PVE_HOST") if name == "default" else None)
        summaries.append(ClusterSummary(name, host, part.reachable, part.slow, part.error, part.unreachable_since,
                                        part.counts(), part.cpu_percent, part.mem_percent_text,
                                        tuple(part.offline_nodes)))
    return summaries
