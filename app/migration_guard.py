"""Keep the app from running against a database whose schema is behind the code.

The predecessor of this product shipped a model column whose migration was never
applied; every page then failed with a SQL error. Here the app compares the
database revision with the head of ``migrations/`` at startup and before each
request until they agree, and shows operators what to run instead of a traceback.
"""
from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, current_app, render_template, request
from sqlalchemy import MetaData
from sqlalchemy.engine import Engine

from app.db_faults import is_db_fault

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
EXEMPT_ENDPOINTS = {"health.healthz", "static"}


@dataclass(frozen=True)
class MigrationStatus:
    """Where the database stands against the migrations shipped with the code."""

    state: str  # "current", "pending" or "unreachable"
    current: str | None
    head: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == "current"


def head_revision(directory: Path = MIGRATIONS_DIR) -> str | None:
    """The newest revision in ``migrations/``."""
    config = Config()
    config.set_main_option("script_location", str(directory))
    return ScriptDirectory.from_config(config).get_current_head()


def migration_status(engine: Engine, directory: Path = MIGRATIONS_DIR) -> MigrationStatus:
    """Compare the database's alembic revision with the head of ``directory``."""
    head = head_revision(directory)
    for attempt in (1, 2):  # a connection dropped mid-query is a blip, not an unreachable database
        try:
            with engine.connect() as connection:
                current = MigrationContext.configure(connection).get_current_revision()
        except Exception as exc:  # any driver error means the database cannot be used
            if attempt == 1 and is_db_fault(exc):
                continue
            return MigrationStatus("unreachable", None, head,
                                   error=exc.__class__.__name__ + ": " + str(exc).splitlines()[0])
        return MigrationStatus("current" if current == head else "pending", current, head)
    raise AssertionError("unreachable")


def schema_drift(engine: Engine, metadata: MetaData) -> list:
    """Differences between the models' metadata and the database's actual schema."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)


class MigrationGuard:
    """Caches a current status for the process; a pending or unreachable one is checked again each time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: MigrationStatus | None = None

    def status(self, engine: Engine, *, fresh: bool = False) -> MigrationStatus:
        """The status, cached once the database is current (it cannot fall behind while we run)."""
        with self._lock:
            if fresh or self._status is None or not self._status.ok:
                previous, self._status = self._status, migration_status(engine)
                if self._status.error and (previous is None or previous.error != self._status.error):
                    log.error("Database cannot be reached: %s", self._status.error)  # pages show no driver text
            return self._status


def init_app(app: Flask) -> None:
    """Check migrations at startup and block pages while they are pending."""
    guard = MigrationGuard()
    app.extensions["migration_guard"] = guard

    with app.app_context():
        from app.extensions import db

        status = guard.status(db.engine)
        if status.state == "pending" and not _running_db_command():
            log.error(
                "Database schema is behind the code (database %s, code %s): run `flask db upgrade`",
                status.current or "empty", status.head,
            )

    @app.before_request
    def block_while_pending():
        if request.endpoint in EXEMPT_ENDPOINTS:
            return None
        from app.extensions import db

        status = guard.status(db.engine)
        if status.ok:
            return None
        return render_template("errors/migrations.html", status=status), 503


def current_status(*, fresh: bool = False) -> MigrationStatus:
    """The migration status of the current app's database."""
    from app.extensions import db

    return current_app.extensions["migration_guard"].status(db.engine, fresh=fresh)


def _running_db_command() -> bool:
    """``flask db …`` itself loads the app: no point warning it that migrations are pending."""
    return len(sys.argv) > 1 and "db" in sys.argv[1:3]
