"""The Content-Security-Policy breaks nothing: a violation shows on the console (which test_layout_browser
watches on every page, at both widths, with the policy checked on each), htmx's spinners still hide and
show without an inline ``<style>``, and bars are as wide as their value without a ``style`` attribute."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.test_layout_browser import seeded  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser


def test_a_violation_would_be_caught(browser):
    """The console check can fail: an inline style set by script is refused and reported on the console."""
    browser.goto("/login")
    browser.page.evaluate("document.body.setAttribute('style', 'color: red')")
    expect(browser.page.locator("body")).not_to_have_css("color", "rgb(255, 0, 0)")
    browser.page.wait_for_timeout(200)
    assert any("Content Security Policy" in error for error in browser.console_errors), browser.console_errors
    browser.console_errors.clear()


def test_htmx_spinners_work_without_an_inline_style(browser, seeded):  # noqa: F811
    page = browser.page
    browser.login()
    browser.goto("/containers/create")
    page.locator("label", has_text="nginx web server").click()
    page.get_by_test_id("next").click()
    expect(page.locator('[aria-current="step"]')).to_contain_text("Configure")
    page.wait_for_load_state()
    assert page.evaluate("document.querySelectorAll('style').length") == 0  # htmx injected none
    assert page.evaluate("htmx.config.includeIndicatorStyles") is False

    spinner = page.locator("#node-spinner")
    expect(spinner).to_have_css("opacity", "0")
    held = []  # the node-fields request, held open to see the spinner while htmx waits for it
    page.route("**/node-fields**", lambda route: held.append(route))
    nodes = page.locator("#node option").evaluate_all("options => options.map(o => o.value)")
    assert len(nodes) > 1, nodes
    page.select_option("#node", nodes[1])
    expect(spinner).to_have_css("opacity", "1")
    assert held, "the node change sent no request"
    held[0].continue_()
    expect(spinner).to_have_css("opacity", "0")


BAR_WIDTHS = """() => Array.from(document.querySelectorAll('.progress[aria-valuenow]'), bar => [
  Number(bar.getAttribute('aria-valuenow')),
  bar.querySelector('.progress-bar').getBoundingClientRect().width * 100 / bar.getBoundingClientRect().width])"""


def test_bars_are_as_wide_as_their_value_without_a_style_attribute(browser, seeded):  # noqa: F811
    browser.login()
    bars = browser.page.evaluate(BAR_WIDTHS)
    assert len(bars) > 20 and any(value > 10 for value, _ in bars)
    assert all(abs(value - width) < 1 for value, width in bars), bars
