"""The bulk action form: which action, which containers (checked VMIDs, or all matching a filter), which tag.

The dashboard's form sends it by GET to the confirmation (nothing changes), which sends the same fields by POST.
"""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, Field, StringField
from wtforms.validators import AnyOf

from app.containers.inventory import STATUS_FILTERS
from app.bulk.services import BULK_ACTIONS, MAX_CONTAINERS, Selection
from app.forms import PVE_RANGES, bound_to_query, strip, truncate


class VmidsField(Field):
    """Every value of a repeated ``vmid`` field, as container numbers."""

    def process_formdata(self, valuelist: list[str]) -> None:
        """Keep the numbers; a value that is no container number is an error, not a guess."""
        low, high = PVE_RANGES["vmid"]
        if len(valuelist) > MAX_CONTAINERS:
            raise ValueError(f"At most {MAX_CONTAINERS} containers can be acted on at once.")
        numbers = [int(value) for value in valuelist if value.strip().isdigit()]
        if len(numbers) != len(valuelist) or any(not low <= number <= high for number in numbers):
            self.data = []
            raise ValueError("A selected container is not a container number.")
        self.data = list(dict.fromkeys(numbers))

    def _value(self) -> str:
        return ""


class BulkForm(FlaskForm):
    """One bulk action; ``confirming()`` binds it to the query string of the confirmation (no CSRF: a GET)."""

    action = StringField(validators=[AnyOf(list(BULK_ACTIONS), message="Choose an action.")])
    tag = StringField(filters=[strip, truncate(100)])
    vmid = VmidsField(default=list)
    all = BooleanField()
    status = StringField(default="all")
    q = StringField(filters=[strip, truncate(100)])

    @classmethod
    def confirming(cls) -> BulkForm:
        """The form filled from the confirmation's query string."""
        return bound_to_query(cls)

    @property
    def selection(self) -> Selection:
        """The containers chosen: all matching the dashboard's filter, or the checked ones."""
        status = self.status.data if self.status.data in STATUS_FILTERS else "all"
        return Selection(tuple(self.vmid.data or ()), bool(self.all.data), status, self.q.data or "")

    def first_error(self) -> str:
        """The first field error, for a message."""
        return next((errors[0] for errors in self.errors.values() if errors),
                    "The form expired or was sent from elsewhere. Please try again.")
