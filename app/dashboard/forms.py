"""The dashboard's query string: ``?status=&q=&page=&cluster=``."""
from __future__ import annotations

from app.clusters import clusters
from app.containers.inventory import STATUS_FILTERS
from app.forms import PageQuery, StringField, strip


class DashboardQuery(PageQuery):
    """Which containers the grid shows: a status pill, a search and a page."""

    status = StringField(default="all")
    q = StringField(filters=[strip])
    cluster = StringField(filters=[strip])

    @property
    def cluster_filter(self) -> str | None:
        """The cluster whose containers alone are shown, None for every cluster (also for an unknown name)."""
        wanted = self.cluster.data
        return wanted if wanted and any(info.name == wanted for info in clusters()) else None

    @property
    def status_filter(self) -> str:
        """The chosen pill, ``all`` for anything unknown."""
        return self.status.data if self.status.data in STATUS_FILTERS else "all"

    @property
    def search(self) -> str:
        """The search text, at most 100 characters."""
        return (self.q.data or "")[:100]
