"""The audit page's filters: a GET form over the query string (CSRF off, like every ``QueryForm``)."""
from __future__ import annotations

from datetime import UTC, datetime

from wtforms import DateTimeLocalField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional, ValidationError

from app.forms import PageQuery, StringField, strip, truncate
from app.models import AUDIT_OUTCOMES

TIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]
TIME_MESSAGE = "Not a time: write it as YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC)."


class AuditFilterForm(PageQuery):
    """``?user=&action=&container=&outcome=&since=&until=&page=`` of ``/audit`` (and ``/audit.csv``).

    ``action`` matches a name or everything under it (``container`` matches ``container.stop``);
    ``container`` is a VMID or a hostname; ``since``/``until`` are UTC, ``until`` included.
    """

    user = StringField("User", filters=[strip, truncate(80)])
    action = StringField("Action", filters=[strip, truncate(64)])
    container = StringField("Container", filters=[strip, truncate(255)], description="VMID or hostname")
    outcome = SelectField("Outcome", choices=[SelectChoice("", "Any")] + [SelectChoice(o, o.capitalize()) for o in AUDIT_OUTCOMES],
                          default="", validate_choice=False)
    since = DateTimeLocalField("From (UTC)", format=TIME_FORMATS, validators=[Optional()])
    until = DateTimeLocalField("To (UTC)", format=TIME_FORMATS, validators=[Optional()])

    FILTERS = ("user", "action", "container", "outcome", "since", "until")

    def validate_outcome(self, field) -> None:
        if field.data and field.data not in AUDIT_OUTCOMES:
            raise ValidationError(f"Pick one of: {', '.join(AUDIT_OUTCOMES)}.")

    def validate_until(self, field) -> None:
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("“To” is before “From”.")

    def validate(self, extra_validators=None) -> bool:
        """Check every filter; a time that is not one gets ``TIME_MESSAGE`` instead of WTForms' wording."""
        valid = super().validate(extra_validators)
        for field in (self.since, self.until):
            if field.errors and field.raw_data and field.data is None:
                field.errors[:] = [TIME_MESSAGE]
        return valid

    @property
    def window(self) -> tuple[datetime | None, datetime | None]:
        """``since`` and ``until`` as aware UTC datetimes (``until`` on a date alone means its whole day)."""
        since = self.since.data.replace(tzinfo=UTC) if self.since.data else None
        until = self.until.data.replace(tzinfo=UTC) if self.until.data else None
        if until is not None and len((self.until.raw_data or [""])[0].strip()) <= 10:
            until = until.replace(hour=23, minute=59, second=59, microsecond=999999)
        elif until is not None and until.second == 0:
            until = until.replace(second=59, microsecond=999999)  # "to 10:30" includes what happened in 10:30
        return since, until

    def filters(self) -> dict[str, str]:
        """The filters as given (for the page links and the CSV link that keep them)."""
        return self.given(*self.FILTERS)
