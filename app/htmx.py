"""htmx plumbing, written once: is this an htmx request, toast and event headers, fragment-or-page.

A response whose body depends on ``HX-Request`` says so with ``Vary: HX-Request``, so a cache or
the browser's back button never serves a fragment as a page (or the other way round).
"""
from __future__ import annotations

import json

from flask import Response, get_flashed_messages, make_response, render_template, request


def is_htmx() -> bool:
    """Whether htmx sent this request (its ``HX-Request`` header)."""
    return bool(request.headers.get("HX-Request"))


def target() -> str | None:
    """The id of the element htmx will swap (``HX-Target``), None for a plain request."""
    return request.headers.get("HX-Target") if is_htmx() else None


def toast(message: str, category: str) -> dict:
    """The payload of a ``toast`` event (``static/js/app.js`` shows it)."""
    return {"message": message, "category": category}


def trigger(response: Response, events: dict) -> Response:
    """Fire ``events`` (name to payload) in the browser once htmx has swapped ``response``."""
    response.headers["HX-Trigger"] = json.dumps(events)
    return response


def trigger_toast(response: Response, message: str, category: str) -> Response:
    """Show a toast once htmx has swapped ``response``."""
    return trigger(response, {"toast": toast(message, category)})


def varies(response: Response) -> Response:
    """Mark ``response`` as depending on ``HX-Request``."""
    response.vary.add("HX-Request")
    return response


def page(body: str, status: int = 200, flashes_as_toast: bool = False) -> Response:
    """``body`` as a response that varies on ``HX-Request``; with ``flashes_as_toast``, under htmx the
    last flashed message becomes a toast (a swapped fragment has no flash area)."""
    response = varies(make_response(body, status))
    if flashes_as_toast and is_htmx():
        messages = get_flashed_messages(with_categories=True)
        if messages:
            category, message = messages[-1]
            trigger_toast(response, message, category)
    return response


def fragment_or_page(fragment: str, full_page: str, /, **context) -> Response:
    """Render the ``fragment`` template for htmx and the ``full_page`` template otherwise."""
    return page(render_template(fragment if is_htmx() else full_page, **context))
