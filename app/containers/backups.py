"""The Backups tab of a container's page (being built)."""
from __future__ import annotations

from app.containers.detail import TAB_CONTEXTS
from app.containers.inventory import ContainerView


def backups_context(view: ContainerView) -> dict:
    """What the Backups tab shows."""
    return {}


TAB_CONTEXTS["backups"] = backups_context
