"""Page arithmetic, written once: which page of how many, where it starts, and the items on it.

``templates/_macros/pagination.html`` draws the links for any ``Page``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    """One page of a list: its ``items``, its ``number`` (1-based) and how many ``pages`` there are (at least 1)."""

    items: list[T]
    number: int
    pages: int

    def links(self, around: int = 2) -> list[int | None]:
        """The page numbers to link: the first, the last and ``around`` either side of this one, None where
        numbers are left out (drawn as an ellipsis), so a list of 5,000 pages has about nine links."""
        shown = {1, self.pages, *range(max(1, self.number - around), min(self.pages, self.number + around) + 1)}
        out: list[int | None] = []
        for number in sorted(shown):
            if out and number - (out[-1] or 0) > 1:
                out.append(None if number - out[-1] > 2 else number - 1)
            out.append(number)
        return out


def bounds(total: int, number: int, per_page: int) -> tuple[int, int, int]:
    """``(number, pages, offset)`` for ``total`` items, ``per_page`` a page: ``number`` clamped to
    1..pages (an empty list still has page 1), ``offset`` the index of the page's first item."""
    pages = max(1, -(-total // per_page))
    number = min(max(1, number), pages)
    return number, pages, (number - 1) * per_page


def paginate(items: list[T], number: int, per_page: int) -> Page[T]:
    """Page ``number`` of ``items`` (a number out of range gives the nearest page)."""
    number, pages, offset = bounds(len(items), number, per_page)
    return Page(items[offset: offset + per_page], number, pages)
