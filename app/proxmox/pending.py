"""A container's options with the changes Proxmox holds as pending (GET nodes/{node}/lxc/{vmid}/pending).

pve-container ``API2/LXC.pm`` ``vm_pending`` answers pve-guest-common ``config_with_pending_array``: one item per
option with ``value`` (what the container uses now), ``pending`` (the value it takes at the next start) and
``delete`` (1, or 2 when forced: the option goes at the next start). ``digest`` is one of the items.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class PendingOption:
    """One option: its current value, and the pending value or deletion, if any."""

    key: str
    value: str | None = None
    pending: str | None = None
    delete: bool = False

    @property
    def is_pending(self) -> bool:
        """Whether Proxmox holds a change of this option until the next start."""
        return self.delete or (self.pending is not None and self.pending != self.value)

    @property
    def effective(self) -> str | None:
        """The value once pending changes are applied (what GET …/config answers without ``current``)."""
        if self.delete:
            return None
        return self.pending if self.pending is not None else self.value


@dataclass(frozen=True, slots=True)
class ConfigWithPending:
    """Every option of a container by key, and the config's ``digest``."""

    options: Mapping[str, PendingOption] = field(default_factory=dict)
    digest: str | None = None

    def effective(self) -> dict[str, str]:
        """Option to value, pending changes applied (the values an edit form starts from)."""
        return {key: value for key, option in self.options.items() if (value := option.effective) is not None}

    def current(self) -> dict[str, str]:
        """Option to the value the container uses now."""
        return {key: option.value for key, option in self.options.items() if option.value is not None}

    @property
    def pending(self) -> tuple[PendingOption, ...]:
        """The options with a change waiting for the next start, by key."""
        return tuple(option for _key, option in sorted(self.options.items()) if option.is_pending)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def config_with_pending(raws: Iterable[Mapping[str, Any]]) -> ConfigWithPending:
    """Parse the answer of GET …/pending; array-valued items (``lxc``) and unnamed items are skipped."""
    options: dict[str, PendingOption] = {}
    digest = None
    for raw in raws:
        key = raw.get("key") if isinstance(raw, Mapping) else None
        if not isinstance(key, str) or isinstance(raw.get("value"), (list, dict)):
            continue
        if key == "digest":
            digest = _text(raw.get("value"))
            continue
        options[key] = PendingOption(key, _text(raw.get("value")), _text(raw.get("pending")),
                                     bool(raw.get("delete")))
    return ConfigWithPending(options, digest)
