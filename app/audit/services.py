"""Reading the audit log (filtered pages, CSV rows) and forgetting old entries (retention).

One page costs three queries (a count, the page, which of its containers still exist), whatever the filters;
the CSV streams the same filtered query in batches, so an export of a year's log never sits in memory.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Engine, Select, delete, func, or_, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import AuditEntry, Container, User, utcnow
from app.models.user import LoginAttempt
from app.pagination import Page, bounds

PER_PAGE = 50
CSV_BATCH = 500
SWEEP_BATCH = 1000
SUGGESTION_WINDOW = 5000
CSV_COLUMNS = ("time", "user", "address", "channel", "action", "target", "vmid", "outcome", "detail")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets read as a formula (OWASP CSV injection)


@dataclass(frozen=True)
class AuditQuery:
    """What to show: each field None (or "") for no filter. ``container`` is a VMID (digits) or a hostname."""

    user: str | None = None
    action: str | None = None
    container: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filtered(query: AuditQuery) -> Select:
    """The entries ``query`` asks for, newest first (a ``Select`` of ``AuditEntry``)."""
    statement = select(AuditEntry)
    if query.user:
        statement = statement.where(func.lower(AuditEntry.username) == query.user.lower())
    if query.action:
        statement = statement.where(or_(AuditEntry.action == query.action,
                                        AuditEntry.action.like(_like_escaped(query.action.rstrip(".")) + ".%",
                                                               escape="\\")))
    if query.container:
        if query.container.isdigit():
            statement = statement.where(AuditEntry.vmid == int(query.container))
        else:
            named = select(Container.id).where(func.lower(Container.hostname) == query.container.lower())
            statement = statement.where(or_(
                AuditEntry.container_id.in_(named),
                # a container deleted since keeps its name in the target: "CT 101 (web01)"
                func.lower(AuditEntry.target).like(f"%({_like_escaped(query.container.lower())})", escape="\\"),
            ))
    if query.outcome:
        statement = statement.where(AuditEntry.outcome == query.outcome)
    if query.since:
        statement = statement.where(AuditEntry.created_at >= query.since)
    if query.until:
        statement = statement.where(AuditEntry.created_at <= query.until)
    return statement.order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())


def page(query: AuditQuery, number: int, per_page: int = PER_PAGE) -> tuple[Page[AuditEntry], int]:
    """Page ``number`` of the entries ``query`` asks for (out of range: the nearest page), and their total."""
    statement = filtered(query)
    total = db.session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    number, pages, offset = bounds(total, number, per_page)
    items = db.session.scalars(statement.limit(per_page).offset(offset)).all()
    return Page(list(items), number, pages), total


def linked_containers(entries: list[AuditEntry]) -> dict[int, int]:
    """``{container_id: record}`` of the entries' containers that still hold their VMID (their page exists; its
    address is ``container_url(record)``)."""
    ids = {entry.container_id for entry in entries if entry.container_id is not None}
    if not ids:
        return {}
    return {record.id: record for record in db.session.scalars(select(Container).where(
        Container.id.in_(ids), Container.lifecycle != "deleted"))}


def known_actions() -> list[str]:
    """The action names of the latest ``SUGGESTION_WINDOW`` entries (the filter's suggestions: a DISTINCT over the
    whole log would read all of it on every page)."""
    recent = select(AuditEntry.action).order_by(AuditEntry.id.desc()).limit(SUGGESTION_WINDOW).subquery()
    return list(db.session.scalars(select(recent.c.action).distinct().order_by(recent.c.action)))


def known_users() -> list[str]:
    """The names of the users who have an account (the filter's suggestions)."""
    return list(db.session.scalars(select(User.username).order_by(User.username)))


def safe_cell(value) -> str:
    """``value`` as a CSV cell a spreadsheet shows as text: one starting like a formula gets a ``'`` in front."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_row(entry: AuditEntry) -> list[str]:
    """One entry as the cells of ``CSV_COLUMNS``."""
    detail = json.dumps(entry.detail, sort_keys=True, default=str) if entry.detail else ""
    cells = (entry.created_at.isoformat(), entry.username, entry.ip, entry.channel, entry.action, entry.target,
             entry.vmid, entry.outcome, detail)
    return [safe_cell(cell) for cell in cells]


def csv_lines(query: AuditQuery, engine: Engine) -> Iterator[str]:
    """The CSV of the entries ``query`` asks for, a header first, streamed a batch of rows at a time.

    Reads through its own session on ``engine``: the response is sent after the request's context is gone, and
    a generator closed elsewhere (a client that hung up) must not pop a context it does not own.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    with Session(engine) as session:
        entries = session.scalars(filtered(query).execution_options(yield_per=CSV_BATCH))
        try:
            for rows, entry in enumerate(entries, 1):
                writer.writerow(csv_row(entry))
                if rows % CSV_BATCH == 0:
                    yield flush()
        finally:
            entries.close()  # PostgreSQL's server-side cursor, also when the client hung up halfway
    yield flush()


def _delete_older(model, cutoff: datetime, batch: int) -> int:
    deleted = 0
    while True:
        oldest = select(model.id).where(model.created_at < cutoff).order_by(model.id).limit(batch)
        count = db.session.execute(delete(model).where(model.id.in_(oldest)),
                                   execution_options={"synchronize_session": False}).rowcount or 0
        db.session.commit()
        deleted += count
        if count < batch:
            return deleted


@dataclass(frozen=True)
class Swept:
    """How many audit entries and login attempts the retention sweep deleted."""

    audit_entries: int
    login_attempts: int


def sweep_retention(now: datetime | None = None, batch: int = SWEEP_BATCH) -> Swept:
    """Delete audit entries older than ``AUDIT_RETENTION_DAYS`` and login attempts older than
    ``LOGIN_ATTEMPTS_RETENTION_DAYS`` (0: keep them forever), ``batch`` rows per transaction so a first sweep
    over years of rows never holds a long lock. Commits each batch; database errors propagate (the next run
    carries on where this one stopped)."""
    now = now or utcnow()
    config = current_app.config
    counts = []
    for model, setting in ((AuditEntry, "AUDIT_RETENTION_DAYS"), (LoginAttempt, "LOGIN_ATTEMPTS_RETENTION_DAYS")):
        days = float(config.get(setting) or 0)
        counts.append(_delete_older(model, now - timedelta(days=days), batch) if days > 0 else 0)
    return Swept(*counts)
