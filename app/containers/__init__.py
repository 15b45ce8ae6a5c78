"""Container pages under ``/containers/<vmid>``: lifecycle actions, the detail tabs, the creation progress."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("containers", __name__, url_prefix="/containers", template_folder="templates")

from app.containers import backups, config, console, coverage, detail, disks, guest_ops, progress, routes, snapshots  # noqa: E402,F401  (register their views on bp)
