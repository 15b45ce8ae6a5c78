"""Shared renders: a page body drawn once per cache interval for everyone who asks for the same thing.

Fifty people watching the dashboard each asked for the same cards every few seconds, and each got
them drawn again: the same database reads, the same thousand rows merged, the same template. Here
the HTML of a body is kept under a key (what it shows, and the role it was drawn for) for
``PVE_CACHE_SECONDS``, the interval the Proxmox answer it shows is kept anyway. The store is the
Proxmox read cache's (``ReadCache``): in this process, or in Redis with ``REDIS_URL`` so several
gunicorn workers and hosts share one render, with one loader per key (the others wait for it).

What makes a render stale before its time:

- Proxmox changed: every action invalidates the Proxmox read cache; its generation is part of
  the key, so the next request draws again.
- Proxboard's records changed: a commit that wrote one of ``WATCHED_TABLES`` (an operation
  started or settled, a service checked, an incident opened) bumps the render cache's own
  generation, in every process when Redis is shared. Commits made by a render itself (recording
  what Proxmox lists before drawing it) do not: the render already shows them.

Per-person parts never enter the shared HTML. The role is part of the key (a viewer never gets
an operator's buttons). The CSRF token is per session: a shared render writes a placeholder
where a form's token goes (``csrf_token()`` in templates), and ``personal`` puts this session's
token there for each answer.

``etag`` goes with the HTML, so an auto-refresh that already shows it gets ``304 Not Modified``
and an empty body (``conditional``).
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from flask import Flask, Response, current_app, g, has_app_context, request
from flask_wtf.csrf import generate_csrf
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.htmx import varies
from app.proxmox.cache import ReadCache

EXTENSION_KEY = "render_cache"
# Tables whose rows a shared body shows: containers and their operations and services, and the alerts banner.
WATCHED_TABLES = frozenset({"containers", "operations", "services", "alert_incidents", "alert_mutes", "alert_rules",
                            "maintenance_windows"})
_DIRTY = "render_cache_dirty"
MAX_RENDERS = 200  # kept in this process's memory (about 100 KiB each): searches make new keys at will


@dataclass(frozen=True)
class Render:
    """One shared body: its HTML with the placeholder for the CSRF token, and its entity tag (a hash of the
    HTML, without quotes)."""

    html: str
    etag: str
    facts: dict  # what the page around the body needs to know of it (counts, the canonical URL…)


def init_app(app: Flask) -> ReadCache:
    """Attach the render cache (``app.extensions["render_cache"]``): ``PVE_CACHE_SECONDS`` long (0: off, every
    request draws), in Redis with ``REDIS_URL``, under ``PVE_CACHE_PREFIX`` and a name of the database
    (processes sharing a database share renders; another Proxboard on the same Redis does not). Makes the templates'
    ``csrf_token()`` write the placeholder during a shared render."""
    seconds = float(app.config.get("PVE_CACHE_SECONDS", 5) or 0)
    database = hashlib.sha256(str(app.config.get("SQLALCHEMY_DATABASE_URI")).encode()).hexdigest()[:16]
    prefix = f"{app.config.get('PVE_CACHE_PREFIX') or 'proxboard'}:render:{database}"
    cache = ReadCache(seconds, redis_url=app.config.get("REDIS_URL") or None, prefix=prefix,
                      max_entries=MAX_RENDERS)
    app.extensions[EXTENSION_KEY] = cache
    app.extensions["render_placeholder"] = _placeholder(app)
    app.jinja_env.globals["csrf_token"] = csrf_token
    return cache


def _placeholder(app: Flask) -> str:
    """A string no page text contains by chance and nobody can guess (derived from the secret key, so every
    process sharing renders through Redis writes the same one)."""
    secret = str(app.config.get("SECRET_KEY") or "").encode()
    return "csrf-" + hmac.new(secret, b"proxboard shared render placeholder", hashlib.sha256).hexdigest()[:32]


def csrf_token() -> str:
    """The templates' ``csrf_token()``: this session's token, or during a shared render the placeholder."""
    if g.get("_shared_render"):
        return current_app.extensions["render_placeholder"]
    return generate_csrf()


def shared(key: Hashable, draw: Callable[[], tuple[str, dict]], upstream_generation: int) -> Render:
    """The body for ``key``: drawn by ``draw()`` (its HTML and ``facts``, which must pickle) at most once per
    cache interval, whoever
    asks. ``upstream_generation`` is the Proxmox read cache's generation (``ReadCache.generation``): a render
    drawn before Proxmox's state last changed is not served. Raises what ``draw`` raises (nothing is kept)."""
    cache: ReadCache = current_app.extensions[EXTENSION_KEY]

    def load() -> Render:
        previous = g.get("_shared_render", False)
        g._shared_render = True
        try:
            html, facts = draw()
        finally:
            g._shared_render = previous
        return Render(html, hashlib.sha256(html.encode()).hexdigest()[:32], facts)

    return cache.get_or_load((upstream_generation, key), load)


def personal(render: Render) -> str:
    """``render``'s HTML with this session's CSRF token in its forms."""
    return render.html.replace(current_app.extensions["render_placeholder"], generate_csrf())


def conditional(render: Render, respond: Callable[[], Response]) -> Response:
    """``304 Not Modified`` with no body when the request's ``If-None-Match`` already names ``render``, else
    ``respond()`` (the answer carrying it); either tagged with its ETag, ``private, no-cache`` (only the
    browser keeps it, and asks first)."""
    if request.if_none_match.contains(render.etag):
        response = varies(Response(status=304))
    else:
        response = respond()
    response.set_etag(render.etag)
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def generation() -> int:
    """How many times the shared renders were forgotten (``ReadCache.generation``): what is derived from
    the records a page shows is out of date once it moves."""
    return current_app.extensions[EXTENSION_KEY].generation()


def invalidate() -> None:
    """Forget every shared render (in every process sharing them)."""
    cache = current_app.extensions.get(EXTENSION_KEY)
    if cache is not None:
        cache.invalidate()


# -- what changed: commits that wrote a watched table ------------------------------------------------

@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context) -> None:
    if not session.info.get(_DIRTY) and any(
            getattr(getattr(obj, "__table__", None), "name", None) in WATCHED_TABLES
            for obj in (*session.new, *session.dirty, *session.deleted)):
        session.info[_DIRTY] = True


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in WATCHED_TABLES:
            state.session.info[_DIRTY] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    # A render's own bookkeeping (recording what Proxmox lists, settling an ended action) happens before it
    # draws, so the render shows it: it must not outdate the render it is part of.
    if session.info.pop(_DIRTY, False) and has_app_context() and not g.get("_shared_render"):
        invalidate()


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous) -> None:
    if not session.in_transaction():
        session.info.pop(_DIRTY, None)
