"""Backup coverage at a glance: the age of each container's newest backup and the ``backup:`` search term.

Both read only the cluster-wide backup index (``ProxmoxClient.backup_index``), never Proxmox per
container: a card asks the index, which is swept in the background once per ``PVE_BACKUP_INDEX_SECONDS``,
so the dashboard keeps its one ``/cluster/resources`` call per render. While the index is not loaded
yet a card shows no badge (unknown is never "No backup"); a search with ``backup:`` waits for it,
within the request's deadline, and says so when Proxmox cannot tell.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app, g

from app.clusters import use_cluster
from app.containers import bp
from app.models import current_cluster_name
from app.proxmox import BackupIndex, ProxmoxError, get_proxmox

HOUR, DAY = 3600, 86400
UNITS = {"h": HOUR, "d": DAY, "w": 7 * DAY}
# Guests Proxmox does not back up (yet, or any more): a badge would say "No backup" for the wrong reason.
NO_BADGE_LIFECYCLES = ("creating", "error", "gone")


def warn_seconds() -> int:
    """``BACKUP_WARN_DAYS`` in seconds: a newest backup older than this is shown as a warning."""
    return int(float(current_app.config.get("BACKUP_WARN_DAYS") or 7) * DAY)


def age_text(seconds: float) -> str:
    """A compact age: ``just now``, ``12 min``, ``3 h``, ``2 d``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "just now"
    if seconds < HOUR:
        return f"{seconds // 60} min"
    if seconds < DAY:
        return f"{seconds // HOUR} h"
    return f"{seconds // DAY} d"


@dataclass(frozen=True)
class BackupAge:
    """How recent a container's newest backup is, as a badge shows it.

    ``state``: ``unknown`` (the index is not loaded yet, or the guest is not one Proxmox backs up),
    ``none`` (no backup on any storage), ``recent``, or ``old`` (older than ``BACKUP_WARN_DAYS``).
    ``newest`` is the newest backup's time, ``count`` how many backups the guest has.
    """

    state: str
    newest: datetime | None = None
    count: int = 0
    age: float | None = None  # seconds

    @property
    def text(self) -> str:
        """``Backup 2 d ago``, ``No backup``, or empty while unknown."""
        if self.state == "none":
            return "No backup"
        if self.age is None:
            return ""
        ago = age_text(self.age)
        return f"Backup {ago}" if ago == "just now" else f"Backup {ago} ago"

    @property
    def title(self) -> str:
        """The exact time of the newest backup and how many there are, for the badge's tooltip."""
        if self.state == "none":
            return "Proxmox holds no backup of this container on any backup storage."
        if self.newest is None:
            return ""
        count = "1 backup" if self.count == 1 else f"{self.count} backups"
        return f"Newest of {count}: {self.newest.strftime('%Y-%m-%d %H:%M:%S')} UTC"

    @property
    def style(self) -> str:
        """The Bootstrap colour of the badge."""
        return {"none": "danger", "old": "warning"}.get(self.state, "light")


UNKNOWN = BackupAge("unknown")


def unread(index: BackupIndex) -> list[str]:
    """Storages of ``index`` that failed and were never read: whose backups nobody knows."""
    return [key for key in index.failed if key not in index.entries]


def age_in(index: BackupIndex | None, vmid: int, now: float, warn: float) -> BackupAge:
    """The ``BackupAge`` of ``vmid`` in ``index`` at ``now`` (epoch seconds).

    Unknown without an index, and instead of "none" while a storage has never been read.
    """
    if index is None:
        return UNKNOWN
    newest = index.newest_of(vmid)
    if newest is None:
        return UNKNOWN if unread(index) else BackupAge("none")
    age = now - newest
    return BackupAge("old" if age > warn else "recent", datetime.fromtimestamp(newest, UTC),
                     index.count.get(vmid, 1), age)


def current_index(cluster: str | None = None) -> BackupIndex | None:
    """The backup index of ``cluster`` (default: the current one) as this request sees it (asked once per
    request, never waiting, never raising)."""
    name = cluster or current_cluster_name()
    indexes = g.setdefault("_backup_indexes", {})
    if name not in indexes:
        try:
            indexes[name] = get_proxmox(name).backup_index()
        except (ProxmoxError, LookupError):
            indexes[name] = None
    return indexes[name]


@bp.app_template_global()
def backup_age(ct: Any) -> BackupAge:
    """The backup badge of a container view (a card, the container page's header)."""
    if getattr(ct, "lifecycle", None) in NO_BADGE_LIFECYCLES:
        return UNKNOWN
    return age_in(current_index(getattr(ct, "cluster", None)), ct.vmid, time.time(), warn_seconds())


# -- the backup: search term --------------------------------------------------------------------

TERM = re.compile(r"(?<!\S)backup:(\S*)", re.I)
VALUE = re.compile(r"([<>]?)(\d{1,4})([hdw]?)", re.I)
TERM_HELP = ("backup:none (no backup at all), backup:>7d (none newer than 7 days, or none at all) or "
             "backup:<1d (one newer than a day); ages in h, d or w")


@dataclass(frozen=True)
class BackupTerm:
    """A parsed ``backup:`` term: ``none``, ``older`` (no backup newer than ``seconds``) or ``newer``."""

    kind: str
    seconds: int = 0
    source: str = ""

    def matches(self, newest: int | None, now: float) -> bool:
        """Whether a container whose newest backup is at ``newest`` (epoch s, None: none) matches."""
        if self.kind == "none":
            return newest is None
        if self.kind == "older":
            return newest is None or now - newest > self.seconds
        return newest is not None and now - newest <= self.seconds


def parse_backup_value(value: str) -> BackupTerm:
    """``none``, ``>7d``, ``7d`` (the same), ``<1d``, ``12h``, ``2w`` as a BackupTerm.

    Raises ValueError with the sentence to show for anything else.
    """
    if value.lower() == "none":
        return BackupTerm("none", source=f"backup:{value}")
    match = VALUE.fullmatch(value)
    if not match or int(match.group(2)) == 0:
        raise ValueError(f"“backup:{value}” is not a backup filter. Use {TERM_HELP}.")
    sign, number, unit = match.groups()
    seconds = int(number) * UNITS[(unit or "d").lower()]
    return BackupTerm("newer" if sign == "<" else "older", seconds, f"backup:{value}")


@dataclass
class Search:
    """A dashboard search: the words the inventory matches, and a ``backup:`` term taken out of them.

    ``error`` says why a ``backup:`` term was not understood (it is then ignored); ``problem`` why it
    could not be applied (Proxmox could not tell: nothing matches rather than a guess); ``note`` what
    to keep in mind about the answer (storages that could not be read).
    """

    text: str
    backup: BackupTerm | None = None
    error: str | None = None
    problem: str | None = None
    note: str | None = None


def parse_search(query: str) -> Search:
    """Split ``query`` into its words and at most one ``backup:`` term (the last one wins)."""
    terms = TERM.findall(query)
    search = Search(TERM.sub(" ", query).strip())
    for value in terms:
        try:
            search.backup = parse_backup_value(value)
        except ValueError as exc:
            search.error = str(exc)
    return search


def narrow(entries: Sequence[tuple[int, str, Any]], search: Search, cluster_of: Callable[[Any], str] | None = None
           ) -> list[tuple[int, str, Any]]:
    """The inventory ``entries`` (``(vmid, status, …)``) matching ``search``'s backup term; ``cluster_of(entry)``
    names each entry's cluster (``Inventory.cluster_of``; default: all in the current cluster), whose backups count.

    Waits for the backup index when none is loaded yet (bounded by the request's deadline); when
    Proxmox cannot give it, sets ``search.problem`` and matches nothing, never guessing "no backup".
    """
    if search.backup is None:
        return list(entries)
    if cluster_of is not None:
        names = list(dict.fromkeys(cluster_of(entry) for entry in entries))
        if len(names) > 1:
            matched = {id(entry) for name in names for entry in narrow(
                [entry for entry in entries if cluster_of(entry) == name], search, lambda _entry, name=name: name)}
            return [entry for entry in entries if id(entry) in matched]
        if names:
            with use_cluster(names[0]):
                return narrow(entries, search)
    try:
        index = get_proxmox().backup_index(wait=True)
    except ProxmoxError as exc:
        search.problem = f"Cannot tell which containers match {search.backup.source}: {exc.message}"
        return []
    missing = unread(index)
    if missing and search.backup.kind != "newer":
        search.problem = (f"Cannot tell which containers match {search.backup.source}: Proxmox did not list the "
                          f"backups on {', '.join(missing)}.")
        return []
    if index.failed:
        search.note = (f"Backups on {', '.join(index.failed)} could not be read in the last sweep: a container "
                       "backed up only there may show an older backup, or none.")
    now = time.time()
    return [entry for entry in entries
            if entry[1] not in NO_BADGE_LIFECYCLES and search.backup.matches(index.newest_of(entry[0]), now)]
