"""Which containers a bulk action is about: the cards checked on the dashboard (each named by its cluster and
VMID), or all those matching the dashboard's filter, search and cluster filter, resolved on the server across
every cluster the dashboard shows (``containers.listing.load_clusters``: every cluster asked at once).

One ``load_clusters`` call and the queries of the inventory, whatever the number of containers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from app.clusters import DEFAULT_CLUSTER, clusters
from app.containers.coverage import narrow, parse_search
from app.containers.inventory import ContainerView, Inventory
from app.containers.listing import load_clusters
from app.models import qualified

MAX_CONTAINERS = 1000

Guest = tuple[str, int]  # (cluster name, VMID): a VMID names a guest only within its cluster


class BulkRefused(Exception):
    """The bulk action cannot be done; ``message`` says why, and nothing was changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Selection:
    """Which containers: the checked ``guests``, or ``everything`` matching the dashboard's ``status``, ``query``
    and ``cluster`` (a known cluster's name; None for every cluster)."""

    guests: tuple[Guest, ...] = ()
    everything: bool = False
    status: str = "all"
    query: str = ""
    cluster: str | None = None

    def words(self, count: int, cluster: str | None = None) -> str:
        """The selection in words, for ``count`` of its containers (on ``cluster``, when it names one):
        "all 9 running containers on lab matching “web”", "3 selected containers"."""
        plural = "s" if count != 1 else ""
        if not self.everything:
            return f"{count} selected container{plural}"
        status = "" if self.status == "all" else f"{self.status} "
        where = f" on {cluster}" if cluster else ""
        matching = f" matching “{self.query}”" if self.query else ""
        return f"all {count} {status}container{plural}{where}{matching}"


@dataclass
class Resolved:
    """The containers a selection names now (each view knows its cluster), the selection in words, the clusters
    among them whose Proxmox does not answer now (name → how many of the containers are on it), and the checked
    guests no cluster has ("CT 903", "lab/CT 101")."""

    views: list[ContainerView]
    words: str
    unreachable: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def parts(self) -> dict[str, list[ContainerView]]:
        """The containers by cluster, in the dashboard's order (the default cluster first, then by name)."""
        parts: dict[str, list[ContainerView]] = {}
        for view in self.views:
            parts.setdefault(view.cluster, []).append(view)
        return parts

    @property
    def warnings(self) -> list[str]:
        """What will not be done: one sentence per cluster of the selection that cannot be reached."""
        if self.unreachable and not several_clusters():
            return ["Proxmox cannot be reached: nothing can be done now."]
        return [f"Cluster {name} cannot be reached: its {count} container{'s are' if count != 1 else ' is'} left out."
                for name, count in self.unreachable.items()]


def resolve(selection: Selection) -> Resolved:
    """The containers ``selection`` names, resolved on the server from the live inventory: "all matching"
    applies the dashboard's own filter, search and cluster filter now, not the cards a page happened to show.

    Raises BulkRefused when the search cannot be applied (its backup term cannot be told), nothing is chosen,
    or more than ``MAX_CONTAINERS`` are.
    """
    missing: list[str] = []
    if selection.everything:
        inventory = load_clusters()
        search = parse_search(selection.query)
        entries = inventory.filtered(selection.status, search.text)
        if selection.cluster:
            entries = [entry for entry in entries if inventory.cluster_of(entry) == selection.cluster]
        entries = narrow(entries, search, inventory.cluster_of)
        if search.problem:
            raise BulkRefused(search.problem)
        views = inventory.views(entries)
        words = selection.words(len(views), selection.cluster)
    else:
        wanted = set(selection.guests)
        names = [info.name for info in clusters() if any(name == info.name for name, _ in wanted)]
        inventory = load_clusters(names) if names else None
        views = [] if inventory is None else inventory.views(
            [entry for entry in inventory.entries if (inventory.cluster_of(entry), entry[0]) in wanted])
        missing = [guest_label(*guest) for guest in sorted(wanted - {(view.cluster, view.vmid) for view in views})]
        words = selection.words(len(views))
    if not views:
        raise BulkRefused("No container matches this filter." if selection.everything else
                          "Select at least one container.")
    if len(views) > MAX_CONTAINERS:
        raise BulkRefused(f"At most {MAX_CONTAINERS} containers can be acted on at once; narrow the filter.")
    resolved = Resolved(views, words, missing=missing)
    resolved.unreachable = {name: len(part) for name, part in resolved.parts.items()
                            if not _part(inventory, name).reachable}
    return resolved


def _part(inventory: Inventory, name: str) -> Inventory:
    """Cluster ``name``'s own inventory within ``inventory`` (itself when it holds one cluster)."""
    return inventory.parts.get(name, inventory)


def several_clusters() -> bool:
    """Whether Proxboard watches more than one cluster (then a bulk action's part names its cluster)."""
    return len(clusters()) > 1


def guest_label(cluster: str, vmid: int) -> str:
    """``CT 101`` in the default cluster, ``lab/CT 101`` in another (as audit lines name a guest)."""
    return qualified(cluster, f"CT {vmid}")


def unreachable_reason(*names: str) -> str:
    """Why nothing is done on the clusters ``names``: their Proxmox does not answer (named when there are several)."""
    if not several_clusters():
        return "Proxmox cannot be reached; nothing was done."
    listed = " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0]
    return f"Cluster{'s' if len(names) > 1 else ''} {listed} cannot be reached; nothing was done."


def names(views_or_items, shown: int = 5) -> str:
    """"web01 (CT 101), db01 (lab/CT 102) and 8 more": the first few of many containers (views, or bulk items)."""
    listed = [f"{entry.name} ({guest_label(_cluster_name(entry), entry.vmid)})" for entry in views_or_items[:shown]]
    rest = len(views_or_items) - shown
    if rest > 0:
        return ", ".join(listed) + f" and {rest} more"
    return " and ".join([", ".join(listed[:-1]), listed[-1]]) if len(listed) > 1 else "".join(listed)


def _cluster_name(entry) -> str:
    cluster = getattr(entry, "cluster", None) or DEFAULT_CLUSTER
    return cluster if isinstance(cluster, str) else cluster.name
