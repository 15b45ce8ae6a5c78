"""Alerts: rules evaluated in the job worker on what Proxboard already knows, messages through Apprise.

``engine.evaluate`` is the one pass per interval; ``delivery`` speaks to the channels; ``services``
holds what the pages call; ``tasks`` registers the pass with the worker; ``routes`` is ``/alerts``
(rules, channels, maintenance windows, history) and the container page's Mute; ``banner`` gives
every page its open incidents.
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("alerts", __name__, url_prefix="/alerts", template_folder="templates")

from app.alerts import banner, routes  # noqa: E402,F401  (registers the views and the banner's helper on bp)
