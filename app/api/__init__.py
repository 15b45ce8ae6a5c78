"""``/api/v1``: Proxboard's JSON API over the same service functions as the pages.

A script signs in with a personal API token (``Authorization: Bearer pxb_…``, see ``auth.tokens``) and is held
to the token's role by the one role map (``auth.roles``); a browser's cookie session works too, with CSRF on
unsafe methods. Every error is ``application/problem+json`` (``app.problems``). Lists are paged (``page``,
``per_page``, ``Link`` headers) and carry an ``ETag`` (``If-None-Match`` answers 304). ``openapi.json`` is
generated from these modules (``spec``) and read at ``/api/v1/docs``.
"""
from __future__ import annotations

from flask import Blueprint
from werkzeug.exceptions import HTTPException

from app import problems

bp = Blueprint("api", __name__, url_prefix="/api/v1", template_folder="templates")


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException):
    """Every HTTP error a view raises, as a problem document (the app's handlers do the same for the rest)."""
    return problems.from_http_error(error)


from app.api import containers, docs, operations, templates  # noqa: E402,F401  (registers the views on bp)
