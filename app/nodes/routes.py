"""``/nodes``: the list of nodes; ``/nodes/<node>``: one node with its graphs, storages and containers."""
from __future__ import annotations

from flask import abort, render_template

from app.metrics import TIMEFRAMES, MetricsQuery
from app.nodes import bp
from app.nodes.services import NodeNotFound, node_page, nodes_report


@bp.get("")
def index():
    """Every node: status, versions, uptime, CPU, memory, storage use and how many containers it runs."""
    return render_template("nodes/index.html", report=nodes_report())


@bp.get("/<node>")
def detail(node: str):
    """One node: its own report, its graphs over ``?timeframe=&cf=``, its storages with their use, its containers."""
    query = MetricsQuery()
    try:
        page = node_page(node, query.frame, query.consolidation)
    except NodeNotFound:
        abort(404)
    frame_urls, cf_urls = query.links("nodes.detail", anchor="graphs", node=node)
    return render_template("nodes/detail.html", node=page.node, page=page, frames=TIMEFRAMES,
                           timeframe=query.frame, frame_urls=frame_urls, cf_urls=cf_urls)
