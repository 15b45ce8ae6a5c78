"""``/backups``: backup jobs and coverage across the cluster."""
from __future__ import annotations

from flask import render_template

from app.backups import bp
from app.backups.services import coverage_report


@bp.get("")
def index():
    """The backup jobs, the containers no job covers, those covered only by disabled jobs, and stale backups."""
    return render_template("backups/index.html", report=coverage_report())
