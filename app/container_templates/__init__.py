"""Templates under ``/templates``: reusable container recipes (resources, features, scripts, files, packages, services)."""
from __future__ import annotations

from flask import Blueprint

from app.container_templates.helpers import script_with_helpers

__all__ = ["bp", "script_with_helpers"]

bp = Blueprint("container_templates", __name__, url_prefix="/templates", template_folder="templates")

from app.container_templates import buckets, edit, grid, importing  # noqa: E402,F401  (register their views on bp)
