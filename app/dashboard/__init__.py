"""The dashboard at ``/``: every container at a glance, refreshed in place."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("dashboard", __name__, template_folder="templates")

from app.dashboard import routes  # noqa: E402,F401  (registers the views on bp)
