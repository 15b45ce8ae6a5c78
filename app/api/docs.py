"""``/api/v1/openapi.json`` (the document, built once per process from the code) and ``/api/v1/docs`` (Swagger UI,
vendored, started by ``static/js/api-docs.js``: no inline script under the Content-Security-Policy)."""
from __future__ import annotations

import json

from flask import current_app, render_template

from app.api import bp, spec


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document of every ``/api/v1`` endpoint."""
    document = current_app.extensions.get("api_openapi")
    if document is None:
        document = current_app.extensions["api_openapi"] = json.dumps(spec.build(current_app), indent=1)
    return current_app.response_class(document, mimetype="application/json")


@bp.get("/docs")
def docs():
    """The API's reference, read from ``openapi.json`` (try it out with a token: Authorize)."""
    return render_template("api/docs.html")
