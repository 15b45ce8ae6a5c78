"""The Content-Security-Policy breaks no page: every GET page of the URL map at desktop width, with the
policy in force, logs no violation and no console error (test_layout_browser walks them all at 375 px
with the same console check), and htmx's spinners still hide and show without an inline ``<style>``."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.security_headers import CONTENT_SECURITY_POLICY
from tests.test_layout_browser import DESKTOP, fill_wizard, page_urls, seeded  # noqa: F401 (seeded: a fixture)

pytestmark = pytest.mark.browser


def test_every_page_keeps_to_the_policy_at_desktop_width(browser, seeded, pve):  # noqa: F811
    page = browser.page
    page.set_viewport_size(DESKTOP)
    browser.login()
    fill_wizard(browser)
    pages = page_urls(seeded.app, pve) + [("error-404", "/no-such-page")]

    broken, unprotected = {}, []
    for name, path in pages:
        before = len(browser.console_errors)
        response = browser.goto(path)
        page.wait_for_load_state()
        policy = response.headers.get("content-security-policy")
        # the console page alone may also reach its own WebSocket (connect-src 'self' does not cover ws: everywhere)
        console = f"{CONTENT_SECURITY_POLICY}; connect-src 'self' ws://{browser.base_url.split('//', 1)[1]}"
        if policy != CONTENT_SECURITY_POLICY and not (path.endswith("/console") and policy == console):
            unprotected.append(path)
        errors = [e for e in browser.console_errors[before:] if not (name == "error-404" and "404 (NOT FOUND)" in e)]
        if errors:
            broken[f"{name} ({path})"] = errors
    browser.console_errors.clear()  # reported below, page by page
    assert len(pages) > 30
    assert not unprotected, f"pages without the policy: {unprotected}"
    assert not broken, "console errors (CSP violations among them):\n" + "\n".join(f"{k}: {v}" for k, v in broken.items())


def test_a_violation_would_be_caught(browser):
    """The check above can fail: an inline style set by script is refused and reported on the console."""
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
