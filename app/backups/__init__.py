"""The Backups page at ``/backups``: the scheduled backup jobs and which containers they leave out."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("backups", __name__, url_prefix="/backups", template_folder="templates")

from app.backups import routes  # noqa: E402,F401  (registers the views on bp)
