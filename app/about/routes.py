"""``/about``: Proxboard's Proxmox connection, version and the token's privileges per feature."""
from __future__ import annotations

from flask import render_template

from app.about import bp
from app.about.services import connection_report


@bp.get("")
def index():
    """The Proxmox version, nodes and, per feature, whether the token has the privileges it needs."""
    return render_template("about/index.html", report=connection_report())
