"""``GET /metrics`` (Prometheus) and ``GET /widgets/summary`` (Homepage's and Homarr's custom API widgets)."""
from __future__ import annotations

from flask import jsonify, make_response, request

from app import audit
from app.observability import bp
from app.observability.collector import exposition
from app.observability.services import summary


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
