"""Container pages: detail tabs, lifecycle confirmations and the creation wizard."""
from flask import Blueprint, redirect, render_template, url_for

bp = Blueprint("containers", __name__, url_prefix="/containers", template_folder="templates")


@bp.get("")
@bp.get("/")
def index():
    """There is no separate container list: the dashboard is it."""
    return redirect(url_for("dashboard.index"), code=301)


@bp.get("/create")
def create():
    """The creation wizard (filled in by the wizard issue)."""
    return render_template("containers/create_placeholder.html")
