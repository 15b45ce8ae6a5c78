"""The Snapshots tab of a container's page (being built)."""
from __future__ import annotations

from app.containers.detail import TAB_CONTEXTS
from app.containers.inventory import ContainerView


def snapshots_context(view: ContainerView) -> dict:
    """What the Snapshots tab shows."""
    return {}


TAB_CONTEXTS["snapshots"] = snapshots_context
