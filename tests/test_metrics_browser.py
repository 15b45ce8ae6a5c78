"""The Metrics tab walked in Chromium: every time frame drawn in the light and the dark theme, at desktop width
and on a 375 px phone, and the tables that stand in for the graphs without JavaScript."""
from __future__ import annotations

import pytest
from playwright.sync_api import Error as PlaywrightError
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
    """Point at the first chart's newest point, as a reader does, until its legend shows the values. Proxmox
    gets a newer point every minute, and the auto-refresh then swaps the charts for new ones, which drops the
    pointer and detaches the chart being pointed at: the reader (and this) points again."""
    legend = page.locator("[data-metrics-chart] .u-legend .u-value").nth(1)
    for attempt in range(5):
        over = page.locator("[data-metrics-chart] .u-over").first
        try:
            over.scroll_into_view_if_needed(timeout=3000)
            box = over.bounding_box(timeout=3000)
            if box is None:
                raise PlaywrightError("the chart is being swapped")
            over.hover(position={"x": box["width"] - 2, "y": box["height"] / 2}, timeout=3000)
            expect(legend).to_contain_text("%", timeout=3000)
            return
        except (PlaywrightError, AssertionError):
            if attempt == 4:
                raise
            page.wait_for_timeout(200)


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
