"""Page links stay few on long lists: the first and last page, two either side of this one, and ellipses."""
import re
from pathlib import Path

import pytest
from jinja2 import Environment, FileSystemLoader

from app.pagination import Page, bounds

TEMPLATES = Path(__file__).resolve().parent.parent / "app" / "templates"


@pytest.mark.parametrize(("number", "pages", "links"), [
    (1, 1, [1]),
    (2, 7, [1, 2, 3, 4, None, 7]),
    (4, 8, [1, 2, 3, 4, 5, 6, 7, 8]),  # a gap of one page shows that page, not an ellipsis
    (50, 100, [1, None, 48, 49, 50, 51, 52, None, 100]),
    (100, 100, [1, None, 98, 99, 100]),
])
def test_links_keep_the_ends_and_the_neighbourhood(number, pages, links):
    assert Page([], number, pages).links() == links


def test_a_page_of_five_thousand_draws_a_handful_of_links():
    number, pages, _ = bounds(250_000, 2_500, 50)
    macros = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True).get_template("_macros/pagination.html")
    html = str(macros.module.pagination(Page([], number, pages), url=lambda n: f"/audit?page={n}"))
    assert re.findall(r'href="/audit\?page=(\d+)"', html) == ["1", "2498", "2499", "2500", "2501", "2502", "5000"]
    assert html.count("…") == 2 and 'aria-current="page">2500<' in html
