"""Graphs of Proxmox's RRD statistics for a container or a node: what to draw, in which unit, and the table
that stands in for the graphs without JavaScript (``services.py``; the markup is ``_macros/metrics.html``,
the drawing ``static/js/metrics.js``).

Low level: it knows the Proxmox client and nothing of the pages that show it, so the container and node
pages share it.
"""
from __future__ import annotations

from .forms import MetricsQuery
from .services import (
    CONTAINER_CHARTS,
    DEFAULT_TIMEFRAME,
    NODE_CHARTS,
    TIMEFRAMES,
    ChartSpec,
    Line,
    Metrics,
    load_metrics,
)

__all__ = ["CONTAINER_CHARTS", "DEFAULT_TIMEFRAME", "NODE_CHARTS", "TIMEFRAMES", "ChartSpec", "Line", "Metrics",
           "MetricsQuery", "load_metrics"]
