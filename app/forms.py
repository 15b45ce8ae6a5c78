"""Forms every feature shares: ``QueryForm``, a GET form that parses the query string, and the limits
every form takes from its source (Proxmox's schema ranges, the database columns' lengths).

Views never read ``request.args`` or ``request.form`` themselves: a query string is bound to a
``QueryForm`` subclass (CSRF off, like microblog's ``SearchForm``), so a value that is not a
number is simply absent instead of a 500.
"""
from __future__ import annotations

from flask import request
from flask_wtf import FlaskForm
from werkzeug.exceptions import BadRequest
from wtforms import IntegerField, SelectMultipleField, StringField
from wtforms.validators import Length, NumberRange, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

INT32_MAX = 2**31 - 1  # an Integer column (PostgreSQL ``integer``)
# Proxmox's own ranges for POST /nodes/{node}/lxc (pve-api apidoc.json 8.4 and apidoc-9.1.json agree):
# vmid 100..999999999, cores 1..8192, memory >= 16 MiB, swap >= 0 MiB; where Proxmox sets no maximum the
# column's range is the bound. The rootfs size (GiB) has no schema range: 128 TiB, beyond any real disk.
PVE_RANGES: dict[str, tuple[int, int]] = {
    "vmid": (100, 999_999_999),
    "cores": (1, 8192),
    "memory": (16, INT32_MAX),
    "swap": (0, INT32_MAX),
    "disk": (1, 131_072),
    "port": (1, 65_535),
}
MAX_FILTER_VALUES = 20  # tags or statuses one query string may filter by


def truncate(length: int):
    """A field filter keeping the first ``length`` characters (a search longer than any stored text finds nothing more)."""
    return lambda value: value[:length] if isinstance(value, str) else value


def pve_range(name: str, message: str | None = None) -> NumberRange:
    """A NumberRange validator for the Proxmox parameter ``name`` (a key of PVE_RANGES)."""
    low, high = PVE_RANGES[name]
    return NumberRange(low, high, message)


def column_length(attribute) -> int:
    """The ``n`` of the ``String(n)`` column behind a mapped attribute: ``column_length(User.username)`` is 80."""
    return attribute.property.columns[0].type.length


def fits(attribute) -> Length:
    """A Length validator allowing what the column behind ``attribute`` stores (``String(n)``)."""
    return Length(max=column_length(attribute), message="At most %(max)d characters.")


class TooManyValues(BadRequest):
    """A query string named more filter values than any page offers; nothing was done with it."""


def strip(value):
    """A field filter: surrounding whitespace removed (None stays None)."""
    return value.strip() if isinstance(value, str) else value


class MultiCheckboxField(SelectMultipleField):
    """A list of checkboxes; an empty selection is valid."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def pre_validate(self, form) -> None:
        values = {str(choice.value) for choice in self.choices or ()}
        for value in self.data or ():
            if str(value) not in values:
                raise ValidationError(f"“{value}” is not one of the choices.")


class QueryForm(FlaskForm):
    """A form bound to ``request.args`` (or, with ``source``, ``request.form`` or ``request.values``), without CSRF."""

    def __init__(self, *args, source: str = "args", **kwargs) -> None:
        kwargs.setdefault("formdata", getattr(request, source))
        kwargs.setdefault("meta", {"csrf": False})
        super().__init__(*args, **kwargs)
        for field in self:
            if len(field.raw_data or ()) > MAX_FILTER_VALUES:
                raise TooManyValues(f"The query parameter “{field.name}” is given {len(field.raw_data)} times; "
                                    f"at most {MAX_FILTER_VALUES} are accepted.")
            if isinstance(field, IntegerField) and field.data is not None and abs(field.data) > INT32_MAX:
                field.data = None  # no id, page or count reaches that far: as good as absent

    def given(self, *names: str) -> dict[str, str]:
        """The raw values of ``names`` that the query string holds, as sent (for links that keep them)."""
        return {name: self[name].raw_data[0] for name in names if self[name].raw_data}


def bound_to_query(form_class: type[FlaskForm], **kwargs) -> FlaskForm:
    """A step form filled from the query string instead of a POST (CSRF off: a GET changes nothing)."""
    return form_class(formdata=request.args, meta={"csrf": False}, **kwargs)


class NextQuery(QueryForm):
    """``?next=``: where to go afterwards (checked to be local by the view)."""

    next = StringField()


class PageQuery(QueryForm):
    """``?page=``: a page number; anything but an integer is page 1."""

    page = IntegerField()

    @property
    def page_number(self) -> int:
        """The requested page, 1 when absent, zero or not a number (the pager clamps the rest)."""
        return self.page.data or 1


__all__ = ["INT32_MAX", "MAX_FILTER_VALUES", "PVE_RANGES", "IntegerField", "NextQuery", "PageQuery", "QueryForm",
           "StringField", "TooManyValues", "bound_to_query", "column_length", "fits", "pve_range", "strip", "truncate"]
