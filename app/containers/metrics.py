"""The Metrics tab of a container's page: CPU, memory, network, disk IO and (PVE 9) pressure graphs over an
hour, day, week, month or year (``app.metrics``).

Only this tab reads RRD statistics: one ``rrddata`` call per consolidation it draws, cached for the frame's
resolution, so the 30-second refresh of an open tab and the dashboard cost no such call.
"""
from __future__ import annotations

import logging

from flask import url_for

from app.containers.detail import TAB_CONTEXTS
from app.containers.inventory import ContainerView
from app.metrics import TIMEFRAMES, MetricsQuery, load_metrics
from app.proxmox import ProxmoxError, get_proxmox

log = logging.getLogger(__name__)


def metrics_context(view: ContainerView) -> dict:
    """The tab's charts for ``?timeframe=&cf=``, or why there are none (``metrics_error``)."""
    query = MetricsQuery()
    frame_urls = {frame: url_for("containers.detail_tab", vmid=view.vmid, tab="metrics",
                                 **query.args(timeframe=frame))
                  for frame in TIMEFRAMES}
    cf_urls = {cf: url_for("containers.detail_tab", vmid=view.vmid, tab="metrics",
                           **query.args(cf=None if cf == "both" else cf))
               for cf in ("both", "AVERAGE", "MAX")}
    context = {"cf_urls": cf_urls, "metrics": None, "metrics_error": None, "timeframe": query.frame, "frames": TIMEFRAMES,
               "frame_urls": frame_urls,
               "metrics_args": query.args()}
    if view.lifecycle == "gone":
        context["metrics_error"] = "Proxmox no longer has this container."
    elif view.stale:
        context["metrics_error"] = view.stale_reason or "Proxmox cannot be reached."
    else:
        try:
            context["metrics"] = load_metrics(get_proxmox(), view.node, query.frame, vmid=view.vmid,
                                              cf=query.consolidation)
        except ProxmoxError as exc:
            log.warning("statistics of CT %s on %s unavailable: %s", view.vmid, view.node, exc.message)
            context["metrics_error"] = exc.message
    return context


TAB_CONTEXTS["metrics"] = metrics_context
