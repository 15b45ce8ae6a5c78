"""Settings under ``/settings`` (admins only): the Proxmox clusters Proxboard watches, added, changed, checked and
removed through ``app.clusters.services``; ``flask clusters …`` does the same from the command line."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("settings", __name__, url_prefix="/settings", template_folder="templates")

from app.settings import routes  # noqa: E402,F401  (registers the views on bp)
