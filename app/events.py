"""Recording a container's timeline: one function every feature uses."""
from __future__ import annotations

from typing import Any

from app.extensions import db
from app.models import EVENT_TYPES, Event


def record_event(container_id: int, type: str, message: str, meta: dict[str, Any] | None = None) -> Event:
    """Add an event to the session (the caller commits with its own change)."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    event = Event(container_id=container_id, type=type, message=message, meta=meta or None)
    db.session.add(event)
    return event
