"""Forms of the Alerts page: a rule, a channel, a maintenance window, a container's mute.

``services`` checks names, URLs and ranges again (the tests and the command line call it directly); these
forms catch what a browser can send wrong first, with the same limits.
"""
from __future__ import annotations

from datetime import UTC, datetime

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateTimeLocalField, FloatField, IntegerField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError

from app.forms import MultiCheckboxField, fits, pve_range, strip
from app.models import ALERT_KINDS, AlertChannel, AlertRule, MaintenanceWindow

from .services import KIND_LABELS, THRESHOLD_UNITS

WEEK_MINUTES = 7 * 24 * 60
MONTH_MINUTES = 30 * 24 * 60
# How long the container page's Mute buttons keep a container quiet (value: minutes).
MUTE_CHOICES = [SelectChoice("60", "1 hour"), SelectChoice("240", "4 hours"), SelectChoice("1440", "1 day"),
                SelectChoice("10080", "1 week")]
TIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]


class RuleForm(FlaskForm):
    """A rule: what it watches, its threshold (for the kinds that have one), its delay, its repeat, its channels."""

    name = StringField("Name", filters=[strip], validators=[fits(AlertRule.name)],
                       description="Leave empty to name it after what it watches.")
    kind = SelectField("Alert when", choices=[SelectChoice(kind, KIND_LABELS[kind]) for kind in ALERT_KINDS],
                       validate_choice=False,
                       validators=[AnyOf(ALERT_KINDS, message="Pick one of the conditions in the list.")])
    threshold = FloatField("Threshold", validators=[Optional(), NumberRange(0.1, 3650, "Between %(min)s and %(max)s.")],
                           description="Percent for CPU, memory and disk (default 90); days for backups (default 7).")
    for_minutes = IntegerField("For at least (minutes)", default=5, validators=[
        InputRequired("How many minutes the condition must hold (0: at once)."),
        NumberRange(0, WEEK_MINUTES, "Between %(min)s and %(max)s minutes (a week).")])
    repeat_minutes = IntegerField("Repeat every (minutes)", default=0, validators=[
        InputRequired("How often to repeat while it lasts (0: never)."),
        NumberRange(0, MONTH_MINUTES, "Between %(min)s and %(max)s minutes (30 days).")],
        description="0: one message when it opens and one when it resolves.")
    channels = MultiCheckboxField("Send to", coerce=int)
    enabled = BooleanField("On", default=True)

    def validate_threshold(self, field) -> None:
        unit = THRESHOLD_UNITS.get(self.kind.data)
        if field.data is not None and unit == "%" and not 0 < field.data <= 100:
            raise ValidationError("A percentage between 0.1 and 100.")


class ChannelForm(FlaskForm):
    """A channel: a name, its Apprise URL (write-only: empty on edit keeps the stored one), its hourly limit."""

    name = StringField("Name", filters=[strip], validators=[DataRequired("A channel needs a name."),
                                                            fits(AlertChannel.name)])
    url = PasswordField("Apprise URL", filters=[strip], validators=[Length(max=2048, message="At most %(max)d characters.")])
    rate_limit = IntegerField("At most (messages per hour)", default=20, validators=[
        InputRequired("How many messages an hour at most."), NumberRange(1, 1000, "Between %(min)s and %(max)s.")])
    enabled = BooleanField("On", default=True)


def _scope_choices(nodes: list[str]) -> list[SelectChoice]:
    return [SelectChoice("", "Everything")] + [SelectChoice(f"node:{node}", f"Node {node}") for node in nodes]


class MaintenanceForm(FlaskForm):
    """A maintenance window: from when (UTC, empty: now), for how many hours, over what."""

    starts_at = DateTimeLocalField("Starts (UTC)", format=TIME_FORMATS, validators=[Optional()],
                                   description="Empty: now.")
    hours = FloatField("For (hours)", default=1, validators=[
        InputRequired("How many hours the window lasts."), NumberRange(0.25, 720, "Between %(min)s and %(max)s hours.")])
    scope = SelectField("Over", validate_choice=False, default="")
    vmid = IntegerField("Only CT (VMID)", validators=[Optional(), pve_range("vmid", "Not a VMID.")],
                        description="Instead of “Over”: one container.")
    note = StringField("Note", filters=[strip], validators=[fits(MaintenanceWindow.note)])

    def __init__(self, *args, nodes: list[str] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scope.choices = _scope_choices(list(nodes))

    def validate_scope(self, field) -> None:
        if field.data and field.data not in {choice.value for choice in self.scope.choices}:
            raise ValidationError("Pick everything or one of the nodes.")

    def window_scope(self) -> str | None:
        """``ct:<vmid>`` when a VMID is given, else the chosen node scope or None (everything)."""
        return f"ct:{self.vmid.data}" if self.vmid.data else (self.scope.data or None)

    def start(self) -> datetime:
        """The start as an aware UTC datetime (now when left empty)."""
        value = self.starts_at.data
        return value.replace(tzinfo=UTC) if value is not None else datetime.now(UTC)


class MuteForm(FlaskForm):
    """The container page's Mute alerts: for how long."""

    minutes = SelectField("Mute for", choices=MUTE_CHOICES, default="1440", validate_choice=False,
                          validators=[AnyOf([choice.value for choice in MUTE_CHOICES], message="Pick one of the durations.")])
