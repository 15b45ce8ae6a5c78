"""``/healthz`` and the demo banner's checks."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("health", __name__)

from app.health import routes  # noqa: E402,F401  (registers the views on bp)
