"""Refuse NUL and control characters in any request input before a view sees them.

PostgreSQL cannot store NUL in text (a query with one fails with DataError), no Proxmox or Linux
name contains control characters, and in a log line or a shell they hide what happened. Tabs and
line ends stay allowed in form fields (scripts and file contents are multi-line text).
"""
from __future__ import annotations

import posixpath
import re

from flask import Flask, request
from werkzeug.exceptions import BadRequest

_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_IN_LINE = re.compile(r"[\x00-\x1f\x7f]")


class ControlCharacters(BadRequest):
    """A request carried NUL or control characters; nothing was done with it."""

    description = ("The request contains control characters (such as NUL) that Proxboard does not accept "
                   "in any field; nothing was changed.")


def offending_input() -> str | None:
    """The name of the first path part, query parameter or form field with forbidden characters, or None."""
    if _CONTROL_IN_LINE.search(request.path):
        return "the URL"
    for key, value in request.args.items(multi=True):
        if _CONTROL_IN_LINE.search(key) or _CONTROL_IN_LINE.search(value):
            return f"query parameter {key!r}"
    if request.method in ("POST", "PUT", "PATCH") and request.mimetype in (
            "application/x-www-form-urlencoded", "multipart/form-data"):
        for key, value in request.form.items(multi=True):
            if _CONTROL_IN_LINE.search(key) or _CONTROL_IN_TEXT.search(value):
                return f"field {key!r}"
    return None


def init_app(app: Flask) -> None:
    """Check every request's input first (a 400 page naming the field, or an htmx error fragment)."""

    @app.before_request
    def refuse_control_characters():
        where = offending_input()
        if where is not None:
            error = ControlCharacters()
            error.description = f"{where.capitalize()} contains control characters (such as NUL) that " \
                                "Proxboard does not accept; nothing was changed."
            raise error


def container_path(path: str) -> str:
    """``path`` as an absolute, normalised POSIX path inside a container, for ``pct push`` and file targets.

    Refused (ValueError naming why): not text, empty, relative, a NUL, newline or other control
    character, a ``..`` segment, or a path that ``posixpath.normpath`` would change in meaning
    (``//x`` is implementation-defined in POSIX). Redundant slashes and ``.`` segments are removed:
    ``/etc//nginx/./x`` -> ``/etc/nginx/x``.
    """
    if not isinstance(path, str) or not path:
        raise ValueError("a path is required")
    if _CONTROL_IN_LINE.search(path):
        raise ValueError("a path cannot contain NUL, line breaks or other control characters")
    if not path.startswith("/"):
        raise ValueError(f"use an absolute path, like /etc/nginx (“{path}” is relative)")
    if ".." in path.split("/"):
        raise ValueError(f"“{path}” contains “..”; give the path without it")
    if path.startswith("//"):
        raise ValueError(f"“{path}” starts with //; give it with a single leading /")
    normal = posixpath.normpath(path)
    if not normal.startswith("/") or normal.startswith("//"):  # the last word before pct push: never outside /
        raise ValueError(f"“{path}” leaves the container's root")
    return normal


def json_offender(value, where: str = "the body") -> str | None:
    """Where a decoded JSON ``value`` holds NUL or control characters (``field 'hostname'``), or None.

    The form check above never sees a JSON body; the API asks this before a value reaches a form or the database.
    """
    if isinstance(value, str):
        return where if _CONTROL_IN_TEXT.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _CONTROL_IN_LINE.search(key):
                return where
            found = json_offender(item, f"field {key!r}" if where == "the body" else where)
            if found:
                return found
    if isinstance(value, list):
        return next((found for item in value if (found := json_offender(item, where))), None)
    return None
