"""The About page: which Proxmox VE answers, and what the API token may do."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("about", __name__, url_prefix="/about", template_folder="templates")

from app.about import routes  # noqa: E402,F401  (registers the views on bp)
