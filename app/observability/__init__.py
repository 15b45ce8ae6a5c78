"""Proxboard for other tools: ``/metrics`` for Prometheus and ``/widgets/summary`` for Homepage and Homarr.

Both answer scripts signed in with a personal API token (``Authorization: Bearer pxb_…``, a viewer's is
enough), or a signed-in browser; without either they answer 401 rather than the login page. Both read
what Proxboard has recorded and never call Proxmox (``services``).
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("observability", __name__)

from app.observability import routes  # noqa: E402,F401  (registers the views on bp)
