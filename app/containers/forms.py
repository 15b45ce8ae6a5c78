"""The container pages' query strings (GET forms, CSRF off): where to go back, which partial, which events."""
from __future__ import annotations

from app.forms import IntegerField, PageQuery, QueryForm, StringField


class TargetQuery(QueryForm):
    """``next`` (where to go afterwards) and ``view`` (card or header), from the query string or the posted form."""

    next = StringField()
    view = StringField(default="card")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, source="values", **kwargs)


class ConfirmQuery(QueryForm):
    """``?timeout=``: the seconds a shutdown waited before it timed out (offers Stop)."""

    timeout = IntegerField()


class EventsQuery(PageQuery):
    """``?type=&page=`` of the Events tab."""

    type = StringField(default="all")


class ProgressQuery(QueryForm):
    """``?after=``: the last event id the progress page already shows."""

    after = IntegerField()
