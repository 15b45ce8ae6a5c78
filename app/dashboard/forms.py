"""The dashboard's query string: ``?status=&q=&page=``."""
from __future__ import annotations

from app.containers.inventory import STATUS_FILTERS
from app.forms import PageQuery, StringField, strip


class DashboardQuery(PageQuery):
    """Which containers the grid shows: a status pill, a search and a page."""

    status = StringField(default="all")
    q = StringField(filters=[strip])

    @property
    def status_filter(self) -> str:
        """The chosen pill, ``all`` for anything unknown."""
        return self.status.data if self.status.data in STATUS_FILTERS else "all"

    @property
    def search(self) -> str:
        """The search text, at most 100 characters."""
        return (self.q.data or "")[:100]
