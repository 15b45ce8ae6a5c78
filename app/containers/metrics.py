"""The Metrics tab of a container's page: CPU, memory, network, disk IO and (PVE 9) pressure graphs over an
hour, day, week, month or year (``app.metrics``).

Only this tab reads RRD statistics: one ``rrddata`` call per consolidation it draws, cached for the frame's
resolution, so the 30-second refresh of an open tab and the dashboard cost no such call.
"""
from __future__ import annotations

import logging

from app.containers.inventory import ContainerView, tracker
from app.metrics import TIMEFRAMES, MetricsQuery, load_metrics
from app.proxmox import ProxmoxError, get_proxmox

log = logging.getLogger(__name__)


def metrics_context(view: ContainerView) -> dict:
    """The tab's charts for ``?timeframe=&cf=``, or why there are none (``metrics_error``)."""
    query = MetricsQuery()
    frame_urls, cf_urls = query.links("containers.detail_tab", vmid=view.vmid, tab="metrics")
    context = {"metrics": None, "metrics_error": None, "metrics_note": None, "timeframe": query.frame,
               "frames": TIMEFRAMES, "frame_urls": frame_urls, "cf_urls": cf_urls, "metrics_args": query.args()}
    # rrddata is answered from the cluster-wide RRD files by the node asked (no proxyto): a guest on an
    # offline node still has its history, up to the moment the node went down.
    node_down = view.stale and view.node in tracker().nodes_offline
    if view.lifecycle == "gone":
        context["metrics_error"] = "Proxmox no longer has this container."
    elif view.stale and not node_down:
        context["metrics_error"] = view.stale_reason or "Proxmox cannot be reached."
    else:
        try:
            context["metrics"] = load_metrics(get_proxmox(), view.node, query.frame, vmid=view.vmid,
                                              cf=query.consolidation)
        except ProxmoxError as exc:
            log.warning("statistics of CT %s on %s unavailable: %s", view.vmid, view.node, exc.message)
            context["metrics_error"] = exc.message
        if node_down:
            context["metrics_note"] = f"Node {view.node} is offline: the graphs stop when it went down."
    return context

