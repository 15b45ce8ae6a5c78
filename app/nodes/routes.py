"""``/nodes``: the list of nodes; ``/nodes/<node>``: one node with its storages and containers."""
from __future__ import annotations

from flask import abort, render_template

from app.nodes import bp
from app.nodes.services import NodeNotFound, node_report, nodes_report


@bp.get("")
def index():
    """Every node: status, versions, uptime, CPU, memory, storage use and how many containers it runs."""
    return render_template("nodes/index.html", report=nodes_report())


@bp.get("/<node>")
def detail(node: str):
    """One node: its own report, its storages with their use, and its containers."""
    try:
        view = node_report(node)
    except NodeNotFound:
        abort(404)
    return render_template("nodes/detail.html", node=view)
