"""Errors of the JSON API as ``application/problem+json`` (RFC 9457), written once for every layer.

Every 4xx and 5xx under ``API_PREFIX`` is a problem document, never an HTML page, whoever answers it: the
app's error handlers, the sign-in check (401), the role map (403), the token throttle (429), the database
fault handler (503) and the API's own views all ask ``is_api_request`` and build the answer with ``problem``.

A problem is ``{"type", "title", "status", "detail"}``, plus ``errors`` (field name to its messages) when a
request body did not validate, and any extra members a caller adds (``retry_after``…). ``type`` is
``about:blank`` (the status says it all, RFC 9457 section 4.2.1) unless the caller names a more precise one.
"""
from __future__ import annotations

import json
from http import HTTPStatus

from flask import current_app, has_request_context, request

API_PREFIX = "/api/"
MEDIA_TYPE = "application/problem+json"


def is_api_request() -> bool:
    """Whether this request is for the JSON API (its errors are problem documents)."""
    return has_request_context() and request.path.startswith(API_PREFIX)


def title_of(status: int) -> str:
    """The standard phrase of ``status`` ("Not Found"); "Error" for a code HTTP does not name."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(status: int, detail: str, *, title: str | None = None, type_: str = "about:blank",
            errors: dict[str, list[str]] | None = None, headers: dict[str, str] | None = None, **extra):
    """A ``status`` response whose body is the problem document; ``errors`` maps a field to its messages.

    Never cached (``Cache-Control: no-store``): a refusal or a failure is about this moment.
    """
    body = {"type": type_, "title": title or title_of(status), "status": status, "detail": detail, **extra}
    if errors is not None:
        body["errors"] = errors
    response = current_app.response_class(json.dumps(body, ensure_ascii=False), status=status, mimetype=MEDIA_TYPE)
    response.headers.update(headers or {})
    response.headers["Cache-Control"] = "no-store"
    return response


def from_http_error(error) -> object:
    """The problem answering a werkzeug ``HTTPException`` (its code, description and headers such as
    ``Allow`` or ``Retry-After``); anything else is a 500 that says nothing of its cause."""
    code = getattr(error, "code", None) or 500
    if code >= 500 and not hasattr(error, "description"):
        detail = "Something went wrong on the server; nothing more is known here. Try again, or see the server's log."
    else:
        detail = getattr(error, "description", None) or title_of(code)
    headers = {}
    if hasattr(error, "get_headers"):
        headers = {name: value for name, value in error.get_headers() if name in ("Allow", "Retry-After",
                                                                                      "WWW-Authenticate")}
    return problem(code, detail, headers=headers)
