"""Forms every feature shares: ``QueryForm``, a GET form that parses the query string.

Views never read ``request.args`` or ``request.form`` themselves: a query string is bound to a
``QueryForm`` subclass (CSRF off, like microblog's ``SearchForm``), so a value that is not a
number is simply absent instead of a 500.
"""
from __future__ import annotations

from flask import request
from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField


def strip(value):
    """A field filter: surrounding whitespace removed (None stays None)."""
    return value.strip() if isinstance(value, str) else value


class QueryForm(FlaskForm):
    """A form bound to ``request.args`` (or, with ``source``, ``request.form`` or ``request.values``), without CSRF."""

    def __init__(self, *args, source: str = "args", **kwargs) -> None:
        kwargs.setdefault("formdata", getattr(request, source))
        kwargs.setdefault("meta", {"csrf": False})
        super().__init__(*args, **kwargs)

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


__all__ = ["IntegerField", "NextQuery", "PageQuery", "QueryForm", "StringField", "bound_to_query", "strip"]
