"""``GET /metrics`` (Prometheus) and ``GET /widgets/summary`` (Homepage's and Homarr's custom API widgets)."""
from __future__ import annotations

import json

from flask import current_app, g, jsonify, make_response, request

from app import audit
from app.observability import bp
from app.observability.collector import exposition
from app.observability.services import summary

MISSING_TOKEN = "Send an API token (a viewer's is enough): Authorization: Bearer pxb_…"


@bp.get("/metrics")
def metrics():
    """The Prometheus exposition (text format, or OpenMetrics when the scraper asks for it)."""
    # Polled every few seconds: the token's last use (time, address) shows it runs; a line each would bury the log.
    audit.nothing_done()
    body, content_type = exposition(request.headers.get("Accept"))
    response = make_response(body)
    response.headers["Content-Type"] = content_type
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/widgets/summary")
def widget_summary():
    """The dashboard's counts as one flat JSON object (``services.summary``)."""
    audit.nothing_done()  # polled like /metrics
    response = jsonify(summary())
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.after_request
def refuse_strangers(response):
    """A scraper without a token gets a 401 it can read (RFC 6750's challenge, no error code), not the
    sign-in check's redirect to the login form, which Prometheus would follow and fail to parse."""
    if g.get("user") is not None or response.status_code != 302:
        return response
    refusal = current_app.response_class(
        json.dumps({"error": "unauthorized", "error_description": MISSING_TOKEN}, ensure_ascii=False),
        status=401, mimetype="application/json")
    refusal.headers["WWW-Authenticate"] = 'Bearer realm="Proxboard"'
    refusal.headers["Cache-Control"] = "no-store"
    return refusal
