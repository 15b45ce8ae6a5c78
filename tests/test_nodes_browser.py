"""The Nodes pages walked in Chromium: from a dashboard card's node to its page (its graphs drawn, another time
frame chosen) and back to the list, an offline node among the others; screenshots at 1400 and 375 px in the light
and the dark theme."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.models import User

pytestmark = pytest.mark.browser


def set_theme(browser, name: str) -> None:
    """Choose a theme from the header's user menu, as a person does."""
    browser.open_menu()
    browser.page.get_by_role("button", name=name).click()
    expect(browser.page.locator("html")).to_have_attribute("data-bs-theme", name.lower())


def test_from_a_card_to_its_node_and_the_list_with_an_offline_node(browser, live_server, pve):
    node = pve.containers[100].node
    browser.login()
    page = browser.page
    page.locator("#ct-100").get_by_test_id("card-node").click()
    expect(page).to_have_url(f"{live_server.url}/nodes/{node}")
    expect(page.get_by_role("heading", level=1)).to_have_text(node)
    expect(page.locator('[data-fact="kernel"]')).not_to_have_text("–")
    expect(page.get_by_test_id("storages").locator("[data-storage]")).to_have_count(
        len(pve.cluster.storage_status(node)))
    expect(page.get_by_test_id("node-guests").locator('[data-vmid="100"] a')).to_have_attribute(
        "href", "/containers/100")
    charts = page.locator("[data-metrics-chart]")
    expect(charts.first).to_be_visible()
    expect(page.locator("[data-metrics-chart][data-drawn] canvas")).to_have_count(charts.count())
    browser.both_widths("node")
    page.get_by_test_id("metrics-frames").get_by_role("link", name="Week").click()
    expect(page).to_have_url(f"{live_server.url}/nodes/{node}?timeframe=week#graphs")
    expect(page.locator("[data-metrics-chart][data-drawn] canvas")).to_have_count(charts.count())

    page.get_by_test_id("nav-nodes").first.click()
    expect(page.locator("[data-node]")).to_have_count(len(pve.cluster.nodes))
    browser.goto("/nodes")  # every node seen online once: the offline one keeps its figures
    pve.faults.set_node_offline("pve2")
    try:
        browser.goto("/nodes")
        offline = page.locator('[data-node="pve2"]')
        expect(offline.locator(".status-badge")).to_have_text("offline")
        expect(offline.get_by_test_id("offline-note")).to_contain_text("showing the figures it gave")
        expect(page.locator('[data-node="pve1"] .status-badge')).to_have_text("online")
        browser.both_widths("nodes")
        try:
            set_theme(browser, "Dark")
            browser.both_widths("nodes-dark")
            browser.goto("/nodes/pve2")
            expect(page.get_by_test_id("offline-note")).to_be_visible()
            browser.both_widths("node-offline-dark")  # the online node's page in dark: the layout walk's
        finally:
            with live_server.app.app_context():
                db.session.execute(db.update(User).values(theme="auto"))
                db.session.commit()
                db.session.remove()
    finally:
        pve.faults.set_node_offline("pve2", False)


def test_a_nodes_graphs_in_every_time_frame_both_themes_and_widths(browser, live_server, pve):
    browser.login()
    page = browser.page
    try:
        for theme in ("Light", "Dark"):
            set_theme(browser, theme)
            for frame in ("Hour", "Day", "Week", "Month", "Year"):
                browser.goto(f"/nodes/pve1?timeframe={frame.lower()}")
                expect(page.locator(f'[data-timeframe="{frame.lower()}"]')).to_have_attribute("aria-current", "page")
                charts = page.locator("[data-metrics-chart]")
                expect(charts.first).to_have_attribute("data-drawn", "true")
                expect(page.locator("[data-metrics-chart][data-drawn] canvas")).to_have_count(charts.count())
                over = page.locator("[data-metrics-chart] .u-over").first
                box = over.bounding_box()
                over.hover(position={"x": box["width"] - 2, "y": box["height"] / 2})  # the newest point's values
                expect(page.locator("[data-metrics-chart] .u-legend .u-value").nth(1)).to_contain_text("%")
                browser.both_widths(f"node-{theme.lower()}-{frame.lower()}")
    finally:
        with live_server.app.app_context():
            db.session.execute(db.update(User).values(theme="auto"))
            db.session.commit()
            db.session.remove()
