"""When the database drops a connection or is down: retry a read once, else an operator page (503).

Contract: a page never answers 500 because of the database. A GET or HEAD whose request hit a
dropped connection (PostgreSQL restarted, a proxy or ``pg_terminate_backend`` closed it) is run
once more on a fresh connection: it changes nothing, so repeating it is safe. Anything else (a
POST, or a read that fails twice) rolls the session back and answers 503 with a page naming the
problem in words; the driver's message, which may carry SQL and parameters, goes to the log only.

Why an error handler and not a retrying ``Session`` or engine event: the whole request must run
again (the user loaded by ``auth``, the view, its template's lazy loads), not one statement, and a
statement of a failed transaction cannot be replayed alone. ``pool_pre_ping`` (app/config.py)
already replaces connections that died while idle in the pool; this covers those that die in use.

Workers use ``retry_on_fault`` for their bookkeeping instead: they have no one to show a 503 to.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app, g, request
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    PendingRollbackError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import ServiceUnavailable

from app.extensions import db

log = logging.getLogger(__name__)

T = TypeVar("T")

READ_METHODS = ("GET", "HEAD")
FAULT_TYPES = (OperationalError, InterfaceError, DisconnectionError, PendingRollbackError, PoolTimeout)
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)  # seconds between a worker's attempts (about 30 s in all)
PLAIN_MESSAGE = "the database connection was lost"


class Counters:
    """How often this process met a dropped connection: retried reads, 503s, worker retries (for tests, logs)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start counting from zero."""
        self.read_retries = self.read_retries_ok = self.unavailable = self.worker_retries = 0


counters = Counters()


def is_db_fault(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) is the database being unreachable, not a bad statement.

    True for a lost or refused connection (``OperationalError``, ``InterfaceError``, a pool timeout,
    a transaction that must be rolled back after one); False for constraint violations and bad data.
    """
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, FAULT_TYPES):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def rollback_quietly() -> None:
    """Roll the request's session back; a session whose connection is gone cannot fail this."""
    try:
        db.session.rollback()
    except Exception:  # the connection is already invalid: the pool discards it
        log.debug("rollback after a database error failed", exc_info=True)


def retry_on_fault(func: Callable[[], T], *, what: str, delays: tuple[float, ...] = RETRY_DELAYS) -> T:
    """Run ``func`` (one whole transaction, committing itself), again after each dropped connection.

    For a worker's bookkeeping: the session is rolled back between attempts, ``func`` must start
    from what is in the database (it may run after a commit whose answer was lost). Raises the
    last database error when every attempt failed, and any other error at once.
    """
    for delay in (*delays, None):
        try:
            return func()
        except Exception as exc:
            if not is_db_fault(exc) or delay is None:
                raise
            rollback_quietly()
            counters.worker_retries += 1
            log.warning("%s: %s; trying again in %g s", what, PLAIN_MESSAGE, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def unavailable_response():
    """The 503 operator page (an htmx request gets the small error fragment)."""
    from app import problems
    from app.htmx import is_htmx

    counters.unavailable += 1
    if problems.is_api_request():
        return problems.problem(503, "Proxboard cannot reach its database right now; nothing was changed. "
                                "Try again in a moment.", headers={"Retry-After": "5"})
    # Straight from the Jinja environment: context processors (the signed-in user) would read the database.
    if is_htmx():
        error = ServiceUnavailable("Proxboard cannot reach its database right now; nothing was changed. "
                                   "Try again in a moment.")
        body = current_app.jinja_env.get_template("errors/_fragment.html").render(error=error, code=503)
    else:
        body = current_app.jinja_env.get_template("errors/database.html").render()
    response = current_app.make_response((body, 503))
    response.headers["Retry-After"] = "5"
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    """Answer database faults with one retry (reads) or the 503 operator page, never a 500."""

    @app.teardown_appcontext
    def remove_session(_exc: BaseException | None) -> None:
        # Runs before Flask-SQLAlchemy's own teardown (registered earlier, so called later): closing a
        # session whose connection was just terminated raises from its ROLLBACK, which would turn an
        # answered request (or a finished job) into a 500 (or a failed task) after the fact.
        try:
            db.session.remove()
        except Exception as exc:
            if not is_db_fault(exc):
                raise
            db.session.registry.clear()
            log.debug("closing the session: %s", PLAIN_MESSAGE, exc_info=True)

    @app.errorhandler(SQLAlchemyError)
    def database_error(exc: SQLAlchemyError):
        rollback_quietly()
        if not is_db_fault(exc):
            raise exc  # a bug or bad data: the 500 handler answers (and logs the traceback)
        if request.method in READ_METHODS and not g.get("_db_retried"):
            g._db_retried = True
            counters.read_retries += 1
            log.warning("%s %s: %s; reading again", request.method, request.path, PLAIN_MESSAGE)
            try:
                response = app.preprocess_request()
                if response is None:
                    response = app.dispatch_request()
                counters.read_retries_ok += 1
                return response
            except Exception as again:
                rollback_quietly()
                if not is_db_fault(again):
                    raise
                exc = again
        log.warning("%s %s answered 503: %s", request.method, request.path, exc)
        return unavailable_response()
