"""Templates: reusable container recipes."""
from flask import Blueprint, render_template

bp = Blueprint("container_templates", __name__, url_prefix="/templates", template_folder="templates")


@bp.get("")
@bp.get("/")
def index():
    """The template grid (filled in by the templates issue)."""
    return render_template("container_templates/index.html")
