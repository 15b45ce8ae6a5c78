"""Editing a container's configuration (the Config tab): the one service function ``update_config``, the
values each form asks for, and what Proxmox holds as pending.

Proxmox applies a config change synchronously (PUT …/config answers null, no task): on a stopped container
everything at once; on a running one the fast-plug options (description, onboot, startup, hostname, cores,
tags…) at once, memory, swap, cpulimit and the network interfaces hot-plugged, and the rest (features,
nameserver…) at the next start (pve-container ``PVE::LXC::Config::update_pct_config``). So a change is read
back from GET …/pending afterwards and told as applied or pending, never guessed.

Only what differs from what Proxmox has is sent, with the digest of the config the form was filled from: a
change made meanwhile elsewhere (the Proxmox UI, another user) is refused by Proxmox and told as such.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

from app.containers.inventory import ContainerView
from app.containers.services import ActionRefused, get_or_create_record, task_busy_reason
from app.container_templates.services import split_tags
from app.events import record_event
from app.extensions import db
from app.proxmox import ProxmoxError, ProxmoxPermissionError, get_proxmox
from app.proxmox.pending import ConfigWithPending

NET_KEY_RE = re.compile(r"^net(\d+)$")
MAX_NETS = 32  # pve-container $MAX_LXC_NETWORKS: net0 … net31
BOOLEAN_KEYS = frozenset({"onboot", "protection"})
NUMBER_KEYS = frozenset({"cores", "memory", "swap", "cpulimit", "cpuunits"})
DEFAULTS = {"memory": "512", "swap": "512", "cpulimit": "0", "onboot": "0"}  # Proxmox's value of an unset option
PROPERTY_KEYS = frozenset({"features", "startup"})  # property strings compared key by key, not as text
FEATURE_FLAGS = ("nesting", "keyctl", "fuse")
VALUE_CHARS = 120  # of an old or new value kept in an event (notes can be 8 KiB)
NOT_SHOWN = frozenset({"env"})  # PVE 9.1 application containers: values may be secrets
CHANGED_MEANWHILE = ("The configuration was changed meanwhile (in Proxmox or by someone else), so nothing was "
                     "changed: reload to see it, then make your change again.")
LABELS = {"cores": "cores", "cpulimit": "CPU limit", "memory": "memory (MiB)", "swap": "swap (MiB)",
          "onboot": "start on boot", "startup": "startup order", "tags": "tags", "description": "notes",
          "features": "features", "nameserver": "nameserver", "searchdomain": "search domain",
          "hostname": "hostname", "protection": "protection", "cpuunits": "CPU units"}

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")


def render_notes(text: str | None) -> Markup:
    """A container's notes (its Proxmox ``description``) as HTML: Markdown (CommonMark, tables), raw HTML in it
    shown as text, and the result cleaned by nh3 (ammonia) so no script, handler or ``javascript:`` link
    survives; links open outside and leak no referrer."""
    html = _markdown.render(text or "")
    return Markup(nh3.clean(html, link_rel="noopener noreferrer nofollow",
                            set_tag_attribute_values={"a": {"target": "_blank"}}))


# -- reading ----------------------------------------------------------------------------------------------------

def parse_properties(value: str | None, default_key: str | None = None) -> dict[str, str]:
    """A Proxmox property string (``order=1,up=30`` / ``name=eth0,bridge=vmbr0``) as an ordered dict; a bare
    first item goes to ``default_key``."""
    result: dict[str, str] = {}
    for part in (value or "").split(","):
        key, sep, val = part.partition("=")
        if sep:
            result[key.strip()] = val.strip()
        elif part.strip() and default_key and default_key not in result:
            result[default_key] = part.strip()
    return result


def print_properties(values: Mapping[str, str]) -> str:
    """The inverse of ``parse_properties``."""
    return ",".join(f"{key}={value}" for key, value in values.items())


def is_on(value: str | None) -> bool:
    return str(value or "0").strip().lower() in ("1", "on", "yes", "true")


@dataclass(frozen=True)
class NetView:
    """One network interface as the Config tab lists it (``props``: its property string, parsed)."""

    key: str
    props: dict[str, str]
    pending: bool = False
    removing: bool = False

    @property
    def index(self) -> int:
        """N of ``netN``."""
        return int(self.key[3:])


@dataclass
class ConfigTab:
    """What the Config tab shows: the options (pending changes applied, as the forms start from), the network
    interfaces, the changes Proxmox holds until the next start, and why nothing can be edited now (``busy``)."""

    state: ConfigWithPending | None = None
    error: str | None = None
    busy: str | None = None
    running: bool = False

    @property
    def values(self) -> dict[str, str]:
        """Option to value, pending changes applied."""
        return self.state.effective() if self.state is not None else {}

    @property
    def nets(self) -> list[NetView]:
        """net0…netN (those waiting for a restart marked), by number."""
        if self.state is None:
            return []
        found = []
        for key, option in self.state.options.items():
            if NET_KEY_RE.match(key) and (value := option.effective or option.value):
                found.append(NetView(key, parse_properties(value, "name"), option.is_pending, option.delete))
        return sorted(found, key=lambda net: net.index)

    @property
    def pending(self) -> list[tuple[str, str | None, str | None]]:
        """(option, now, after the restart) for each pending change; None: not set."""
        if self.state is None:
            return []
        return [(option.key, _shown(option.key, option.value),
                 None if option.delete else _shown(option.key, option.pending)) for option in self.state.pending]

    @property
    def now(self) -> dict[str, str]:
        """Option to the value the container uses now."""
        return self.state.current() if self.state is not None else {}

    @property
    def pending_keys(self) -> frozenset[str]:
        """The options with a change waiting for the next start."""
        return frozenset(option.key for option in self.state.pending) if self.state is not None else frozenset()

    def feature(self, flag: str) -> bool:
        """Whether feature ``flag`` (nesting, keyctl, fuse) is on, pending changes applied."""
        return is_on(parse_properties(self.values.get("features")).get(flag))


def _shown(key: str, value: str | None) -> str | None:
    if value is None:
        return None
    if key in NOT_SHOWN:
        return "(hidden)"
    return value if len(value) <= VALUE_CHARS else value[:VALUE_CHARS] + "…"


def config_tab(view: ContainerView) -> ConfigTab:
    """The tab's state for ``view`` (one GET …/pending)."""
    tab = ConfigTab(busy=task_busy_reason(view), running=view.pve_status == "running")
    if view.lifecycle in ("gone", "creating") or view.stale or view.pve_status == "unknown":
        tab.error = tab.busy or "Proxmox does not have this container."
        return tab
    try:
        tab.state = get_proxmox().pending(view.node, view.vmid)
    except ProxmoxError as exc:
        tab.error = f"Proxmox did not give the configuration: {exc.message}"
    return tab


# -- what each form asks for -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Resources:
    """The resources-and-options form's values (``cores`` None: all of the node's cores)."""

    cores: int | None
    cpulimit: float
    memory: int
    swap: int
    onboot: bool
    order: int | None
    up: int | None
    down: int | None
    tags: str
    notes: str
    features: dict[str, bool] = field(default_factory=dict)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def resource_values(form: Resources, values: Mapping[str, str]) -> dict[str, str | None]:
    """The options ``form`` asks for (None: not set), other feature flags and startup keys kept as they are."""
    features = parse_properties(values.get("features"))
    for flag, on in form.features.items():
        if on != is_on(features.get(flag)):
            if on:
                features[flag] = "1"
            else:
                features.pop(flag, None)
    startup = parse_properties(values.get("startup"), "order")
    for key, number in (("order", form.order), ("up", form.up), ("down", form.down)):
        if number is None:
            startup.pop(key, None)
        else:
            startup[key] = str(number)
    notes = form.notes.replace("\r\n", "\n").rstrip()
    return {
        "cores": str(form.cores) if form.cores else None,
        "cpulimit": _number(form.cpulimit) if form.cpulimit else None,
        "memory": str(form.memory), "swap": str(form.swap),
        "onboot": "1" if form.onboot else None,
        "startup": print_properties(startup) or None,
        "tags": ";".join(split_tags(form.tags)) or None,
        "description": notes or None,
        "features": print_properties(features) or None,
    }


@dataclass(frozen=True)
class Interface:
    """The network-interface form's values; ``ip``/``ip6`` are ``dhcp``, ``static``, ``manual`` (and ``auto``,
    SLAAC, for IPv6)."""

    name: str
    bridge: str
    tag: int | None
    ip: str
    cidr: str
    gateway: str
    ip6: str
    cidr6: str
    gateway6: str
    firewall: bool


def interface_value(form: Interface, existing: str | None) -> str:
    """The ``netN`` property string ``form`` asks for; the keys it does not show (hwaddr, mtu, rate, type…) kept
    from ``existing`` (without ``hwaddr`` Proxmox would draw a new MAC address)."""
    props = parse_properties(existing, "name")
    props["name"] = form.name
    props["bridge"] = form.bridge
    for key, value in (("tag", str(form.tag) if form.tag else None), ("firewall", "1" if form.firewall else None)):
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    for mode, cidr, gateway, ip_key, gw_key in ((form.ip, form.cidr, form.gateway, "ip", "gw"),
                                                (form.ip6, form.cidr6, form.gateway6, "ip6", "gw6")):
        props.pop(gw_key, None)
        if mode == "static":
            props[ip_key] = cidr.strip()
            if gateway.strip():
                props[gw_key] = gateway.strip()
        elif mode == "manual":
            if props.get(ip_key) != "manual":
                props.pop(ip_key, None)
        else:
            props[ip_key] = mode
    return print_properties({"name": props.pop("name"), **props})


def free_net_key(values: Mapping[str, str]) -> str:
    """The first ``netN`` not used; ActionRefused when all 32 are."""
    for index in range(MAX_NETS):
        if f"net{index}" not in values:
            return f"net{index}"
    raise ActionRefused(f"A container has at most {MAX_NETS} network interfaces.")


def name_taken(values: Mapping[str, str], key: str, name: str) -> bool:
    """Whether another interface than ``key`` is already called ``name`` inside the container."""
    return any(NET_KEY_RE.match(other) and other != key and parse_properties(value, "name").get("name") == name
               for other, value in values.items())


# -- the change ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    """One option changed: its value before and after (None: not set)."""

    key: str
    old: str | None
    new: str | None


@dataclass
class ConfigResult:
    """What ``update_config`` did: each change, and those Proxmox holds until the next start."""

    changes: list[Change]
    pending: list[str]
    message: str
    category: str = "success"

    def audit_detail(self) -> dict:
        """Keys and old → new values for the audit log (hidden keys and long notes cut, see ``_shown``)."""
        return {"changes": {c.key: [_shown(c.key, c.old), _shown(c.key, c.new)] for c in self.changes},
                "pending": self.pending}


def _same(key: str, old: str | None, new: str | None) -> bool:
    old, new = (old if old is not None else DEFAULTS.get(key)), (new if new is not None else DEFAULTS.get(key))
    if key in BOOLEAN_KEYS:
        return is_on(old) == is_on(new)
    if key in NUMBER_KEYS and old is not None and new is not None:
        try:
            return float(old) == float(new)
        except ValueError:
            return False
    if key in PROPERTY_KEYS:
        default = "order" if key == "startup" else None
        return parse_properties(old, default) == parse_properties(new, default)
    if key == "description":
        return (old or "").rstrip() == (new or "").rstrip()
    if key == "tags":
        return split_tags(old) == split_tags(new)
    if NET_KEY_RE.match(key) and old is not None and new is not None:
        return parse_properties(old, "name") == parse_properties(new, "name")
    return old == new


def _describe(change: Change) -> str:
    label = LABELS.get(change.key, change.key)
    if change.key == "description":
        return "notes " + ("removed" if change.new is None else "changed")
    if NET_KEY_RE.match(change.key):
        if change.new is None:
            return f"{change.key} removed"
        return f"{change.key} {'added' if change.old is None else 'changed'} ({_shown(change.key, change.new)})"
    return f"{label} {_shown(change.key, change.old) or 'not set'} → {_shown(change.key, change.new) or 'not set'}"


def update_config(view: ContainerView, wanted: Mapping[str, str | None], digest: str | None,
                  username: str) -> ConfigResult:
    """Change the options of CT ``view`` to ``wanted`` (option to value, None: remove it): only those that differ
    from what Proxmox has are sent (PUT nodes/{node}/lxc/{vmid}/config with ``delete`` and the ``digest`` the form
    was filled from), then GET …/pending tells which of them wait for a restart. Records an event with the keys
    and old → new values. Raises ActionRefused (nothing changed) while another operation runs or the container is
    locked, gone or out of reach, when the config changed meanwhile, or when Proxmox refuses (its message, or
    the privilege the token lacks)."""
    if reason := task_busy_reason(view):
        raise ActionRefused(reason)
    pve = get_proxmox()
    try:
        before = pve.pending(view.node, view.vmid)
    except ProxmoxError as exc:
        raise ActionRefused(f"Proxmox did not give the configuration: {exc.message}") from exc
    if digest and before.digest and digest != before.digest:
        raise ActionRefused(CHANGED_MEANWHILE)
    values = before.effective()
    changes = [Change(key, values.get(key), new) for key, new in wanted.items() if not _same(key, values.get(key), new)]
    if not changes:
        return ConfigResult([], [], "Nothing was changed: the values are the ones Proxmox already has.", "info")
    try:
        pve.update_config(view.node, view.vmid, {c.key: c.new for c in changes if c.new is not None},
                          [c.key for c in changes if c.new is None], digest or before.digest)
    except ProxmoxPermissionError as exc:
        raise ActionRefused(f"Proxmox refused the change: {exc.message}") from exc
    except ProxmoxError as exc:
        if "detected modified configuration" in (getattr(exc, "pve_message", "") or exc.message):
            raise ActionRefused(CHANGED_MEANWHILE) from exc
        raise ActionRefused(f"Proxmox refused the change: {exc.message}") from exc
    try:
        after = pve.pending(view.node, view.vmid)
        pending = [c.key for c in changes if c.key in after.options and after.options[c.key].is_pending]
    except ProxmoxError:
        pending = []
    return _recorded(view, changes, pending, username)


def _recorded(view: ContainerView, changes: list[Change], pending: list[str], username: str) -> ConfigResult:
    """The outcome, kept as an event of the container."""
    applied = [_describe(c) for c in changes if c.key not in pending]
    waiting = [_describe(c) for c in changes if c.key in pending]
    parts = []
    if applied:
        parts.append("applied: " + "; ".join(applied))
    if waiting:
        parts.append("pending until the next restart: " + "; ".join(waiting))
    message = f"Configuration of {view.name} (CT {view.vmid}) changed by {username}; " + ". ".join(parts) + "."
    result = ConfigResult(changes, pending, message)
    try:
        record = get_or_create_record(get_proxmox().container_status(view.node, view.vmid))
    except ProxmoxError:
        record = None
    if record is not None:
        record_event(record.id, "log", message, {"action": "config", "requested_by": username,
                                                 **result.audit_detail()})
        db.session.commit()
    return result
