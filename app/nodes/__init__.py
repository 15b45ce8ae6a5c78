"""The Nodes pages: every node's state, versions and resources, and a page per node with its storages and guests."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("nodes", __name__, url_prefix="/nodes", template_folder="templates")

from app.nodes import routes  # noqa: E402,F401  (registers the views on bp)
