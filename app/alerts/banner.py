"""The open-incident banner of the dashboard and the container page, as a template helper.

Pages lower in the import order (dashboard, containers) include ``alerts/_banner.html`` and call
``alert_banner(record)`` instead of importing this feature: one indexed query per render.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from app.alerts import bp
from app.alerts.forms import MUTE_CHOICES
from app.alerts.services import muted_until, open_incidents
from app.db_faults import is_db_fault, rollback_quietly
from app.models import AlertIncident, Container

SHOWN = 3  # incidents the dashboard names before "and N more"


@dataclass(frozen=True)
class Banner:
    """Open ``incidents`` (all of them, or one container's), and when that container's mute ends."""

    incidents: list[AlertIncident] = field(default_factory=list)
    muted_until: datetime | None = None
    container: Container | None = None

    @property
    def mute_choices(self) -> list:
        return MUTE_CHOICES

    @property
    def shown(self) -> list[AlertIncident]:
        return self.incidents[:SHOWN] if self.container is None else self.incidents

    @property
    def more(self) -> int:
        return len(self.incidents) - len(self.shown)


def alert_banner(container: Container | None = None, *, everywhere: bool = False) -> Banner:
    """Every open incident (``everywhere``: the dashboard), or ``container``'s with its mute (none for a
    container Proxboard has no record of). A database fault gives an empty banner: the page around it
    still renders."""
    try:
        if everywhere:
            return Banner(open_incidents())
        if container is None or container.id is None:
            return Banner()
        return Banner(open_incidents(container.id), muted_until(container.id), container)
    except Exception as exc:
        if not is_db_fault(exc):
            raise
        rollback_quietly()
        return Banner()


@bp.app_context_processor
def banner_helper() -> dict:
    return {"alert_banner": alert_banner}
