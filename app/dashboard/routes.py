"""The dashboard: every container at a glance."""
from flask import Blueprint, render_template

bp = Blueprint("dashboard", __name__, template_folder="templates")


@bp.get("/")
def index():
    """The container grid (filled in by the dashboard issue)."""
    return render_template("dashboard/index.html")
