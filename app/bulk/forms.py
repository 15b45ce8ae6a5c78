"""The bulk action form: which action, which containers (checked cards, or all matching a filter), which tag.

The dashboard's form sends it by GET to the confirmation (nothing changes), which sends the same fields by POST.
"""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, Field, StringField
from wtforms.validators import AnyOf

from app.bulk.selection import MAX_CONTAINERS, Guest, Selection
from app.bulk.services import BULK_ACTIONS
from app.clusters import DEFAULT_CLUSTER, clusters
from app.containers.inventory import STATUS_FILTERS
from app.forms import PVE_RANGES, bound_to_query, strip, truncate
from app.models.cluster import NAME_PATTERN


class GuestsField(Field):
    """Every value of a repeated ``vmid`` field, as (cluster, VMID) pairs: a card sends ``lab/101`` (CT 101 of
    cluster lab); a bare ``101`` is the default cluster's."""

    def process_formdata(self, valuelist: list[str]) -> None:
        """Keep the guests; a value that names no guest is an error, not a guess."""
        if len(valuelist) > MAX_CONTAINERS:
            raise ValueError(f"At most {MAX_CONTAINERS} containers can be acted on at once.")
        guests = [_guest(value) for value in valuelist]
        if None in guests:
            self.data = []
            raise ValueError("A selected container is not a container number.")
        self.data = list(dict.fromkeys(guests))

    def _value(self) -> str:
        return ""


def _guest(value: str) -> Guest | None:
    cluster, _, number = value.strip().rpartition("/")
    cluster = cluster or DEFAULT_CLUSTER
    low, high = PVE_RANGES["vmid"]
    if not (number.isdigit() and low <= int(number) <= high and NAME_PATTERN.match(cluster)):
        return None
    return cluster, int(number)


class BulkForm(FlaskForm):
    """One bulk action; ``confirming()`` binds it to the query string of the confirmation (no CSRF: a GET)."""

    action = StringField(validators=[AnyOf(list(BULK_ACTIONS), message="Choose an action.")])
    tag = StringField(filters=[strip, truncate(100)])
    vmid = GuestsField(default=list)
    all = BooleanField()
    status = StringField(default="all")
    q = StringField(filters=[strip, truncate(100)])
    cluster = StringField(filters=[strip])

    @classmethod
    def confirming(cls) -> BulkForm:
        """The form filled from the confirmation's query string."""
        return bound_to_query(cls)

    @property
    def selection(self) -> Selection:
        """The containers chosen: all matching the dashboard's filter (an unknown cluster filters nothing out, as
        on the dashboard), or the checked ones."""
        status = self.status.data if self.status.data in STATUS_FILTERS else "all"
        cluster = self.cluster.data if any(info.name == self.cluster.data for info in clusters()) else None
        return Selection(tuple(self.vmid.data or ()), bool(self.all.data), status, self.q.data or "", cluster)

    def first_error(self) -> str:
        """The first field error, for a message."""
        return next((errors[0] for errors in self.errors.values() if errors),
                    "The form expired or was sent from elsewhere. Please try again.")
