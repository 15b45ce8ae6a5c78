"""The creation wizard under ``/containers/create/<step>``: one form per step, state in a WizardDraft."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("wizard", __name__, url_prefix="/containers/create", template_folder="templates",
               static_folder="static")

from app.wizard import routes  # noqa: E402,F401  (registers the views on bp)
