"""The API's query strings, parsed by forms like the pages' (``app.forms.QueryForm``): ``page``, ``per_page``
and the filters of each list. A ``per_page`` out of range is refused (400 with the field's message); a page
that is not a number is page 1, a page past the last is the last, as on the pages."""
from __future__ import annotations

from wtforms import IntegerField
from wtforms.validators import NumberRange, Optional

from app.container_templates.forms import GridQuery
from app.containers.forms import EventsQuery
from app.dashboard.forms import DashboardQuery
from app.forms import PageQuery

MAX_PER_PAGE = 100


class PerPage:
    """``per_page``: 1 to ``MAX_PER_PAGE`` (``default_per_page`` when absent)."""

    default_per_page = 24
    per_page = IntegerField(validators=[Optional(), NumberRange(1, MAX_PER_PAGE, "Between %(min)s and %(max)s.")])

    @property
    def page_size(self) -> int:
        """The requested page size (the default when absent)."""
        return self.per_page.data or self.default_per_page


class ContainerListQuery(PerPage, DashboardQuery):
    """The dashboard's ``status``, ``q`` and ``page``, and ``per_page``."""


class EventListQuery(PerPage, EventsQuery):
    """The Events tab's ``type`` and ``page``, and ``per_page``."""

    default_per_page = 50


class TemplateListQuery(PerPage, GridQuery, PageQuery):
    """The template grid's ``search`` and ``tags``, ``page`` and ``per_page``."""
