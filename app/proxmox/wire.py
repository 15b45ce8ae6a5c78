"""What goes TO Proxmox: the one place Python values become wire values.

Proxmox's parameter validation accepts booleans only as 0/1; ``requests`` would
form-encode ``True`` as "True", which Proxmox rejects with 400.
"""
from __future__ import annotations

from collections.abc import Mapping


class Repeated(tuple):
    """An array parameter (``type: array`` in the schema): sent as its key repeated, ``vms=101&vms=102``."""


def to_wire(value: object) -> object:
    """Convert one parameter value: bools to 1/0, ``Repeated`` to a list, other sequences to ``;``-lists."""
    if isinstance(value, Repeated):
        return [to_wire(v) for v in value]
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, (list, tuple, set, frozenset)):
        return ";".join(str(to_wire(v)) for v in value)
    return value


def wire_params(params: Mapping[str, object]) -> dict[str, object]:
    """Parameters ready for proxmoxer: None dropped, every value through ``to_wire``."""
    return {key: to_wire(value) for key, value in params.items() if value is not None}


def format_property_string(values: Mapping[str, object]) -> str:
    """``{"name": "eth0", "firewall": True}`` -> ``name=eth0,firewall=1`` (None skipped)."""
    return ",".join(f"{key}={to_wire(value)}" for key, value in values.items() if value is not None)
