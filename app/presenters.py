"""How values look on a page: status colours, usage levels, sizes and times, in one place."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import Flask
from ua_parser import parse as ua_parse

# status -> (label, Bootstrap colour); the one mapping every page uses.
STATUS_STYLES = {
    "running": ("running", "success"),
    "stopped": ("stopped", "secondary"),
    "creating": ("creating", "primary"),
    "locked": ("locked", "warning"),
    "paused": ("paused", "warning"),
    "error": ("error", "danger"),
    "gone": ("gone", "dark"),
    "template": ("template", "info"),
    "unknown": ("unknown", "danger"),
    # nodes (GET /cluster/status, /nodes)
    "online": ("online", "success"),
    "offline": ("offline", "danger"),
}

# HA manager states (pve-ha-manager) -> colour of the HA badge; "error" is the one that needs a person.
HA_STYLES = {
    "started": "info", "stopped": "secondary", "disabled": "secondary", "ignored": "light",
    "request_start": "info", "request_stop": "info", "migrate": "warning", "relocate": "warning",
    "freeze": "warning", "fence": "danger", "error": "danger",
}

SERVICE_STYLES = {
    "running": ("running", "success"),
    "degraded": ("degraded", "warning"),
    "activating": ("activating", "warning"),
    "unknown": ("unknown", "warning"),
    "failed": ("failed", "danger"),
    "stopped": ("stopped", "danger"),
}

EVENT_STYLES = {
    "log": ("bi-journal-text", "secondary"),
    "step": ("bi-arrow-right-circle", "primary"),
    "complete": ("bi-check-circle-fill", "success"),
    "error": ("bi-x-octagon-fill", "danger"),
}


def status_style(status: str | None) -> tuple[str, str]:
    """Label and colour for a container status (running, stopped, creating, locked, error…)."""
    return STATUS_STYLES.get((status or "unknown").lower(), (status or "unknown", "danger"))


def ha_style(state: str | None) -> str:
    """Bootstrap colour of the HA badge for an HA manager state."""
    return HA_STYLES.get((state or "").lower(), "info")


def service_style(status: str | None) -> tuple[str, str]:
    """Label and colour for a service health status."""
    return SERVICE_STYLES.get((status or "unknown").lower(), ("unknown", "warning"))


def usage_level(percent: float | None) -> str:
    """Bar colour for a usage percentage: green below 70 %, yellow to 90 %, red above."""
    if percent is None:
        return "secondary"
    if percent > 90:
        return "danger"
    if percent >= 70:
        return "warning"
    return "success"


def percent(used: float | None, total: float | None) -> float | None:
    """``used`` as a percentage of ``total``, or None when there is no total."""
    if not total or used is None:
        return None
    return max(0.0, min(100.0, used * 100.0 / total))


def usage(used: float | None, total: float | None) -> tuple[float | None, int, str]:
    """A resource bar's figures in one call (a page draws three per card): the percentage (None without a total),
    it rounded for the bar's width class and ``aria-valuenow``, and its colour (``usage_level``)."""
    pct = percent(used, total)
    return pct, round(pct or 0), usage_level(pct)


def filesize(value: float | int | None) -> str:
    """Bytes in binary units: ``1.5 GiB``."""
    if value is None:
        return "–"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            number = f"{size:.0f}" if unit == "B" else f"{size:.1f}".removesuffix(".0")
            return f"{number} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def duration(seconds: float | int | None) -> str:
    """A compact uptime: ``3d 4h``, ``5h 12m``, ``42s``."""
    if not seconds:
        return "–"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def timeago(moment: datetime | None, now: datetime | None = None) -> str:
    """A relative time: ``just now``, ``3 min ago``, ``2 h ago``, ``5 days ago``."""
    if moment is None:
        return "never"
    now = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int((now - moment).total_seconds())
    if seconds < 10:
        return "just now"
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    days = seconds // 86400
    return f"{days} day{'s' if days != 1 else ''} ago"


def exact_time(moment: datetime | None) -> str:
    """An exact UTC timestamp for tooltips."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty_json(value) -> str:
    """Indented JSON for metadata sections."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def plural(count, singular: str, plural_form: str | None = None) -> str:
    """A count with its noun: ``1|plural("core")`` is ``1 core``, ``2`` ``2 cores``, ``1.5`` ``1.5 cores``.

    A list (or other sized collection) counts its items; ``plural_form`` for irregular nouns.
    """
    if hasattr(count, "__len__") and not isinstance(count, str):
        count = len(count)
    number = f"{count:g}" if isinstance(count, float) else str(count)
    return f"{number} {singular if count == 1 else (plural_form or singular + 's')}"


def browser_label(user_agent: str | None) -> str:
    """``Chrome 156 on Linux`` from a User-Agent header (ua-parser's regexes); the raw string when unknown."""
    if not user_agent:
        return "unknown browser"
    result = ua_parse(user_agent)
    browser = result.user_agent
    if browser is None or browser.family == "Other":
        return user_agent
    label = f"{browser.family} {browser.major}" if browser.major else browser.family
    if result.os is not None and result.os.family != "Other":
        label += f" on {result.os.family}"
    return label


def init_app(app: Flask) -> None:
    """Register the presenters as Jinja filters and globals."""
    app.jinja_env.filters.update(
        filesize=filesize, duration=duration, timeago=timeago, exact_time=exact_time, pretty_json=pretty_json,
        plural=plural, browser_label=browser_label,
    )
    app.jinja_env.globals.update(
        status_style=status_style,
        service_style=service_style,
        ha_style=ha_style,
        usage_level=usage_level,
        percent=percent,
        usage=usage,
        event_style=lambda kind: EVENT_STYLES.get(kind, EVENT_STYLES["log"]),
    )
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
