"""Bulk actions at ``/bulk``: confirm and start one action over many dashboard containers, then follow it."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("bulk", __name__, url_prefix="/bulk", template_folder="templates")

from app.bulk import routes  # noqa: E402,F401  (registers the views on bp)
