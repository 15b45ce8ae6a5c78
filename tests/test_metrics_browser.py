"""The Metrics tab walked in Chromium: every time frame drawn in the light and the dark theme, at desktop width
and on a 375 px phone, and the tables that stand in for the graphs without JavaScript."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.models import User

pytestmark = pytest.mark.browser

VMID = 105  # seeded, running for a while
FRAMES = ("Hour", "Day", "Week", "Month", "Year")


def set_theme(browser, name: str) -> None:
    """Choose a theme from the header's user menu, as a person does."""
    browser.open_menu()
    browser.page.get_by_role("button", name=name).click()
    expect(browser.page.locator("html")).to_have_attribute("data-bs-theme", name.lower())


def expect_drawn(page) -> None:
    """Every chart of the tab has its canvas, wider than a phone's margin, with something painted on it."""
    charts = page.locator("[data-metrics-chart]")
    expect(charts.first).to_have_attribute("data-drawn", "true")
    count = charts.count()
    assert count >= 4
    expect(page.locator("[data-metrics-chart][data-drawn] canvas")).to_have_count(count)
    painted = page.evaluate("""() => [...document.querySelectorAll('[data-metrics-chart] canvas')].map((canvas) => {
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) return true;
        return false; })""")
    assert all(painted), painted


def hover_newest_point(page) -> None:
    """Point at the first chart's newest point, as a reader does to read its values. The auto-refresh may be
    swapping the chart for one with a newer point (``bounding_box`` answers None meanwhile): asked again."""
    over = page.locator("[data-metrics-chart] .u-over").first
    over.scroll_into_view_if_needed()
    box = None
    for _ in range(50):
        box = over.bounding_box()
        if box is not None:
            break
        page.wait_for_timeout(100)
    assert box is not None, "the chart never settled"
    over.hover(position={"x": box["width"] - 2, "y": box["height"] / 2})


# Charts whose y-axis labels are wider than the room uPlot left for them (the canvas would cut their start).
CLIPPED_LABELS = """() => window.proxboardMetrics.charts().flatMap((chart) => {
  const axis = chart.axes[1];
  chart.ctx.font = axis.font[0];
  const room = axis._size - axis.ticks.size - axis.gap;
  return (axis._values || []).filter((label) => chart.ctx.measureText(label).width / devicePixelRatio > room)
    .map((label) => chart.root.closest("[data-testid^=metrics-chart-]").dataset.testid + ": " + label);
})"""


def test_every_time_frame_in_both_themes_and_widths(browser, live_server, pve):
    browser.login()
    browser.goto(f"/containers/{VMID}/metrics")
    page = browser.page
    try:
        for theme in ("Light", "Dark"):
            set_theme(browser, theme)
            for frame in FRAMES:
                page.get_by_test_id("metrics-frames").get_by_role("link", name=frame).click()
                expect(page.locator(f'[data-testid="metrics-charts"][id^="metrics-{frame.lower()}-"]')).to_be_attached()
                expect(page.locator(f'[data-timeframe="{frame.lower()}"]')).to_have_attribute("aria-current", "page")
                expect_drawn(page)
                hover_newest_point(page)
                expect(page.locator("[data-metrics-chart] .u-legend .u-value").nth(1)).to_contain_text("%")
                assert not page.evaluate(CLIPPED_LABELS), f"y-axis labels cut in {frame}"
                browser.both_widths(f"{theme.lower()}-{frame.lower()}")
        # the auto-refresh leaves the charts (and the reader's hover) alone until Proxmox has a newer point
        shown = page.get_by_test_id("metrics-charts")
        before = shown.get_attribute("id")
        handle = shown.element_handle()
        with page.expect_response(lambda response: "/metrics" in response.url):
            page.locator("[data-refresh-now]").click()
        page.wait_for_load_state()
        if page.get_by_test_id("metrics-charts").get_attribute("id") == before:
            assert handle.evaluate("element => element.isConnected"), "the refresh redrew unchanged charts"
        # another tab, then Back: the graphs are drawn again (htmx restores the page from its history)
        page.locator('.nav-tabs [data-tab="overview"]').click()
        expect(page.locator('.nav-tabs [data-tab="overview"]')).to_have_attribute("aria-current", "page")
        page.go_back()
        expect(page.locator('.nav-tabs [data-tab="metrics"]')).to_have_attribute("aria-current", "page")
        expect_drawn(page)
        # the chart follows the width of a phone, and the open tab is named in full there
        page.set_viewport_size({"width": 375, "height": 800})
        tab, bar = (page.locator(selector).bounding_box() for selector in (".nav-tabs .active", ".nav-tabs"))
        assert tab["x"] + tab["width"] <= bar["x"] + bar["width"], "the Metrics tab is cut on a phone"
        width = page.evaluate("document.querySelector('[data-metrics-chart] canvas').getBoundingClientRect().width")
        assert 250 < width <= 375
    finally:
        with live_server.app.app_context():
            db.session.execute(db.update(User).values(theme="auto"))
            db.session.commit()
            db.session.remove()


def test_without_javascript_the_figures_are_tables(nojs_browser):
    nojs_browser.login()
    nojs_browser.goto(f"/containers/{VMID}/metrics?timeframe=week")
    page = nojs_browser.page
    table = page.get_by_test_id("metrics-table-cpu")
    expect(table).to_be_visible()
    expect(table.locator("thead")).to_contain_text("CPU (max)")
    expect(table.locator("tbody tr").first.locator("td").nth(1)).to_contain_text("%")
    expect(page.get_by_test_id("metrics-table-network").locator("tbody tr").first).to_contain_text("/s")
    nojs_browser.both_widths("week")
