"""``?timeframe=&cf=`` of a metrics page (a container's Metrics tab, a node's graphs)."""
from __future__ import annotations

from flask import url_for
from wtforms import StringField

from app.forms import QueryForm

from .services import CFS, DEFAULT_TIMEFRAME, TIMEFRAMES


class MetricsQuery(QueryForm):
    """The time frame (hour…year) and, optionally, one consolidation (AVERAGE or MAX); anything else counts as
    not given, so a mistyped link shows the default graphs rather than an error."""

    timeframe = StringField(default=DEFAULT_TIMEFRAME)
    cf = StringField()

    @property
    def frame(self) -> str:
        """The time frame asked for, else the default."""
        return self.timeframe.data if self.timeframe.data in TIMEFRAMES else DEFAULT_TIMEFRAME

    @property
    def consolidation(self) -> str | None:
        """``AVERAGE`` or ``MAX`` when asked for (in any case), else None: both."""
        value = (self.cf.data or "").upper()
        return value if value in CFS else None

    def args(self, **changes: str | None) -> dict[str, str]:
        """The query of this page with ``changes``, defaults and None left out (for links)."""
        values = {"timeframe": self.frame, "cf": self.consolidation, **changes}
        if values["timeframe"] == DEFAULT_TIMEFRAME:
            values.pop("timeframe")
        return {key: value for key, value in values.items() if value}

    def links(self, endpoint: str, anchor: str | None = None, **values) -> tuple[dict[str, str], dict[str, str]]:
        """``(frame_urls, cf_urls)`` for the panel's switches: the address of ``endpoint`` (with its URL
        ``values``) for each time frame, keeping the consolidation, and for ``both``, ``AVERAGE`` and ``MAX``,
        keeping the frame."""
        frames = {frame: url_for(endpoint, **values, **self.args(timeframe=frame), _anchor=anchor)
                  for frame in TIMEFRAMES}
        cfs = {cf: url_for(endpoint, **values, **self.args(cf=None if cf == "both" else cf), _anchor=anchor)
               for cf in ("both", *CFS)}
        return frames, cfs
