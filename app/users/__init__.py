"""Users under ``/users`` (admins only): create, disable, delete, set the role, reset the password or the
second factor; ``flask users …`` does the same from the command line (``cli``)."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("users", __name__, url_prefix="/users", template_folder="templates")

from app.users import routes  # noqa: E402,F401  (registers the views on bp)
