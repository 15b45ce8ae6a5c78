"""Writing a provisioning job's events and heartbeat from a side thread, off the job's own session.

Output lines are buffered and inserted in small batches (at most FLUSH_SECONDS late), so a
chatty ``apt-get`` costs a few INSERTs per second instead of one commit per line; step,
error and complete events are written at once. The same thread bumps the operation's
``heartbeat_at``, so a long silent script still looks alive and a killed worker does not.
"""
from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine

from app.db_faults import is_db_fault, retry_on_fault
from app.models import Event, Operation, utcnow

FLUSH_SECONDS = 0.2
# Consecutive plain output lines of one flush share an event (an apt-get install prints hundreds of lines:
# one row per line made the progress page and the Events tab a wall of rows).
OUTPUT = {"level": "output"}
GROUP_CHARS = 8000


class EventWriter:
    """Buffered Event rows for one container plus the heartbeat of one operation."""

    def __init__(self, engine: Engine, container_id: int, operation_id: int, heartbeat_seconds: float = 5.0) -> None:
        self.engine = engine
        self.container_id = container_id
        self.operation_id = operation_id
        self.heartbeat_seconds = heartbeat_seconds
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"provision-events-{operation_id}", daemon=True)
        self._last_beat = 0.0

    def __enter__(self) -> EventWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        retry_on_fault(self.flush, what=f"provisioning operation {self.operation_id}: writing its last events")

    def add(self, type: str, message: str, meta: dict[str, Any] | None = None, *, now: bool = False) -> None:
        """Queue an event; ``now`` writes it (and everything before it) before returning."""
        with self._lock:
            last = self._rows[-1] if self._rows else None
            if (meta == OUTPUT and last is not None and last["metadata"] == OUTPUT and last["type"] == type
                    and len(last["message"]) + len(message) < GROUP_CHARS):
                last["message"] += "\n" + message
            else:
                self._rows.append({"container_id": self.container_id, "type": type, "message": message[:20000],
                                   "metadata": meta or None, "created_at": utcnow()})
        if now:
            try:
                self.flush()
            except Exception as exc:  # the rows stay buffered: the side thread writes them once it can
                if not is_db_fault(exc):
                    raise

    def flush(self, heartbeat: bool = False) -> None:
        """Insert the buffered rows in one transaction (and bump the heartbeat when asked).

        When the database fails, the rows go back to the front of the buffer (nothing is lost) and
        the error is raised.
        """
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows and not heartbeat:
            return
        try:
            with self._write_lock, self.engine.begin() as connection:
                if rows:
                    connection.execute(Event.__table__.insert(), rows)
                if heartbeat:
                    connection.execute(update(Operation.__table__).where(Operation.__table__.c.id == self.operation_id)
                                       .values(heartbeat_at=utcnow()))
        except Exception:
            with self._lock:
                self._rows[:0] = rows
            raise

    def _loop(self) -> None:
        import time

        while not self._stop.wait(FLUSH_SECONDS):
            beat = time.monotonic() - self._last_beat >= self.heartbeat_seconds
            try:
                self.flush(heartbeat=beat)
            except Exception:  # the database is busy or gone: the next round retries
                continue
            if beat:
                self._last_beat = time.monotonic()
