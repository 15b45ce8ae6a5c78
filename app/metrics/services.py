"""RRD statistics as charts: which Proxmox sources each chart draws, in which unit, and a short table of the
same figures for pages read without JavaScript.

Contract: ``load_metrics`` makes one ``rrddata`` call per consolidation it needs (AVERAGE, plus MAX where a
frame's point spans more than one minute; where it spans one, MAX equals AVERAGE and is not asked for), each
served from the client's RRD cache for the frame's resolution, and no other call (the release, which fixes
the resolution, is cached for an hour). Nothing here knows Flask.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from app.presenters import filesize
from app.proxmox import RRD_TIMEFRAMES, ProxmoxClient, RrdData

TIMEFRAMES = {frame: frame.capitalize() for frame in RRD_TIMEFRAMES}  # hour … year: what the switch shows
DEFAULT_TIMEFRAME = "hour"
TABLE_ROWS = 24  # the no-JavaScript table: the frame in at most this many rows, each summing up its points
ONE_PDP = 60  # pmxcfs writes a point a minute: a frame with this step has MAX equal to AVERAGE
CFS = {"AVERAGE": "avg", "MAX": "max"}  # Proxmox's consolidation -> the series' ``cf``


@dataclass(frozen=True)
class Line:
    """One source of a chart: ``source`` as Proxmox names it, times ``scale`` (cpu fraction -> percent);
    ``max`` False draws only its average (a limit such as ``maxmem`` has no peak worth a line)."""

    source: str
    label: str
    scale: float = 1.0
    max: bool = True


@dataclass(frozen=True)
class ChartSpec:
    """One chart: its ``key`` (an HTML id part), title, ``unit`` (``percent``, ``bytes``, ``bytes/s`` or
    ``number``) and lines; a chart none of whose sources Proxmox sent (pressure before 9.0) is left out."""

    key: str
    title: str
    unit: str
    lines: tuple[Line, ...]


CONTAINER_CHARTS = (
    ChartSpec("cpu", "CPU", "percent", (Line("cpu", "CPU", 100.0),)),
    ChartSpec("memory", "Memory", "bytes", (Line("mem", "Used"), Line("maxmem", "Limit", max=False))),
    ChartSpec("network", "Network", "bytes/s", (Line("netin", "In"), Line("netout", "Out"))),
    ChartSpec("disk", "Disk IO", "bytes/s", (Line("diskread", "Read"), Line("diskwrite", "Write"))),
    ChartSpec("pressure-cpu", "CPU pressure", "percent",
              (Line("pressurecpusome", "Some"), Line("pressurecpufull", "Full"))),
    ChartSpec("pressure-io", "IO pressure", "percent",
              (Line("pressureiosome", "Some"), Line("pressureiofull", "Full"))),
    ChartSpec("pressure-memory", "Memory pressure", "percent",
              (Line("pressurememorysome", "Some"), Line("pressurememoryfull", "Full"))),
)

NODE_CHARTS = (
    ChartSpec("cpu", "CPU", "percent", (Line("cpu", "CPU", 100.0), Line("iowait", "IO delay", 100.0))),
    ChartSpec("load", "Load average", "number", (Line("loadavg", "Load"),)),
    ChartSpec("memory", "Memory", "bytes", (Line("memused", "Used"), Line("memtotal", "Total", max=False),
                                             Line("swapused", "Swap used"))),
    ChartSpec("network", "Network", "bytes/s", (Line("netin", "In"), Line("netout", "Out"))),
    ChartSpec("rootfs", "Root disk", "bytes", (Line("rootused", "Used"), Line("roottotal", "Total", max=False))),
    ChartSpec("pressure-cpu", "CPU pressure", "percent", (Line("pressurecpusome", "Some"),)),
    ChartSpec("pressure-io", "IO pressure", "percent",
              (Line("pressureiosome", "Some"), Line("pressureiofull", "Full"))),
    ChartSpec("pressure-memory", "Memory pressure", "percent",
              (Line("pressurememorysome", "Some"), Line("pressurememoryfull", "Full"))),
)


@dataclass
class Series:
    """One drawn line: ``cf`` ``avg`` or ``max``, a value (already scaled) per time of its chart, None for a gap."""

    label: str
    cf: str
    values: list[float | None]


@dataclass
class TableRow:
    """``time`` (the end of the rows' span, UTC) and one formatted value per column."""

    time: datetime
    cells: list[str]


@dataclass
class Chart:
    """A chart ready to draw (``data()``) and to read as a table (``columns``, ``rows``)."""

    key: str
    title: str
    unit: str
    times: list[int]
    series: list[Series]
    columns: list[str] = field(default_factory=list)
    rows: list[TableRow] = field(default_factory=list)

    def data(self) -> dict:
        """The JSON the page embeds for ``metrics.js``: one list of values per line, on the panel's times
        (``Metrics.times``, embedded once for all charts)."""
        return {"key": self.key, "title": self.title, "unit": self.unit,
                "series": [{"label": s.label, "cf": s.cf, "values": s.values} for s in self.series]}


@dataclass
class Metrics:
    """The charts of one guest or node over ``timeframe``; ``step``: seconds a point spans; ``cfs``: the
    consolidations read (``("AVERAGE",)`` where MAX would repeat it); ``table_span``: seconds a table row sums up
    (0: a row is one point)."""

    timeframe: str
    step: int
    cfs: tuple[str, ...]
    charts: list[Chart]
    table_span: int = 0

    @property
    def times(self) -> list[int]:
        """The charts' times (Unix seconds, oldest first): every chart of a panel shares them."""
        return self.charts[0].times if self.charts else []


def load_metrics(pve: ProxmoxClient, node: str, timeframe: str, *, vmid: int | None = None,
                 cf: str | None = None, specs: Sequence[ChartSpec] = CONTAINER_CHARTS) -> Metrics:
    """The charts of container ``vmid`` (or of ``node`` itself with ``vmid`` None) over ``timeframe``: averages
    and maxima, or only ``cf`` (``AVERAGE`` or ``MAX``) when given.

    Proxmox: GET nodes/{node}[/lxc/{vmid}]/rrddata, once per cf (cached, see the module docstring).
    Raises ValueError for an unknown frame or cf, ProxmoxError when Proxmox fails.
    """
    if timeframe not in TIMEFRAMES or cf not in (None, *CFS):
        raise ValueError(f"unknown time frame {timeframe!r} or cf {cf!r}")
    step = pve.rrd_step(timeframe)
    if step <= ONE_PDP:
        cf = "AVERAGE"  # one point a minute: the maximum is the average
    cfs = (cf,) if cf else CFS
    data = {name: pve.rrddata(node, timeframe, name, vmid=vmid) for name in cfs}
    return build_metrics(data, specs, step)


def build_metrics(data: dict[str, RrdData], specs: Sequence[ChartSpec], step: int) -> Metrics:
    """Charts from the AVERAGE and/or MAX answers (``data``: cf -> answer), on the times of the first."""
    first = next(iter(data.values()))
    times = list(first.times)
    columns = {cf: _aligned(answer, first.times) for cf, answer in data.items()}
    charts = []
    for spec in specs:
        series = []
        for line in spec.lines:
            if all(answer.values(line.source) is None for answer in data.values()):
                continue
            for cf, found in columns.items():
                if cf == "MAX" and not line.max and "AVERAGE" in columns:
                    continue
                label = f"{line.label} (max)" if cf == "MAX" else line.label
                values = found.get(line.source) or [None] * len(times)
                digits = 0 if spec.unit in ("bytes", "bytes/s") else 3  # a byte is as fine as it gets
                series.append(Series(label, CFS[cf], _scaled(values, line.scale, digits)))
        if series:
            charts.append(Chart(spec.key, spec.title, spec.unit, times, series))
    span = _fill_tables(charts, times)
    return Metrics(timeframe=first.timeframe, step=step, cfs=tuple(data), charts=charts,
                   table_span=span * step if times and span > 1 else 0)


def format_value(value: float | None, unit: str) -> str:
    """A value as the tables print it: ``12.5 %``, ``1.2 GiB``, ``340 KiB/s``, ``0.42``; ``–`` when unknown."""
    if value is None:
        return "–"
    if unit == "percent":
        return f"{value:.1f} %" if value < 10 else f"{value:.0f} %"
    if unit == "bytes":
        return filesize(value)
    if unit == "bytes/s":
        return f"{filesize(value)}/s"
    return f"{value:.2f}"


def _fill_tables(charts: list[Chart], times: list[int]) -> int:
    """Give every chart its table: at most TABLE_ROWS rows, newest first, each the mean of its points'
    averages and the highest of their maxima. Returns how many points a row sums up."""
    per_row = max(1, math.ceil(len(times) / TABLE_ROWS))
    # Rows end at the newest point, so the newest row always sums up as many points as the others.
    starts = list(range(len(times) - per_row, -per_row, -per_row))
    for chart in charts:
        chart.columns = [s.label for s in chart.series]
        for start in starts:
            span = range(max(start, 0), start + per_row)
            cells = [format_value(_merge(s.cf, [s.values[i] for i in span]), chart.unit) for s in chart.series]
            chart.rows.append(TableRow(datetime.fromtimestamp(times[span[-1]], UTC), cells))
    return per_row


def _merge(cf: str, values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    return max(known) if cf == "max" else sum(known) / len(known)


def _aligned(data: RrdData, times: tuple[int, ...]) -> dict[str, Sequence[float | None]]:
    """Each source's values on ``times`` (another answer may start or end one point apart)."""
    if data.times == times:
        return dict(data.series)
    index = {t: i for i, t in enumerate(data.times)}
    return {name: [values[index[t]] if t in index else None for t in times] for name, values in data.series}


def _scaled(values: Sequence[float | None], scale: float, digits: int) -> list[float | int | None]:
    if digits == 0:
        return [None if v is None else round(v * scale) for v in values]
    return [None if v is None else round(v * scale, digits) for v in values]
