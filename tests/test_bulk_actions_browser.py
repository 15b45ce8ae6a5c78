"""Bulk actions walked in Chromium: select all running containers matching a search, stop the ten of them,
watch each card's spinner and the progress panel, and read ONE summary toast; then the same form without
JavaScript (tag two containers through the confirmation page)."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_select_all_matching_stop_ten_and_read_one_summary(browser, nojs_browser, live_server, pve):
    for i in range(10):
        ct = pve.add_container(vmid=900 + i, node=pve.nodes[i % len(pve.nodes)], hostname=f"batch{i + 1:02d}")
        pve.cluster._set_running(ct)
    pve.task_delay = 1.5  # long enough to see each card's spinner on a busy machine (the fixture puts it back)
    browser.login()
    browser.goto("/?status=running&q=batch")
    page = browser.page
    bar = page.get_by_test_id("bulk-bar")
    page.get_by_label("Select batch03").check()
    expect(bar.get_by_test_id("bulk-count")).to_have_text("1 selected")
    bar.get_by_label("All 10 matching this filter").check()
    expect(bar.get_by_test_id("bulk-count")).to_have_text("10 selected")
    expect(bar).to_have_class("bulk-bar card mt-3 bulk-active")
    browser.both_widths("selected")

    bar.get_by_role("button", name="Stop").click()
    modal = page.locator("#confirm-modal")
    expect(modal).to_have_css("opacity", "1")
    expect(modal.get_by_test_id("bulk-confirm-count")).to_have_text("10 containers")
    expect(modal.get_by_test_id("bulk-confirm-names")).to_contain_text("batch05 (CT 904) and 5 more")
    browser.screenshot("confirm-desktop", full_page=False)
    modal.get_by_test_id("confirm").click()
    expect(page.locator('#dashboard-body [data-testid="pending"]').first).to_be_visible()  # each card's spinner
    panel = page.get_by_test_id("bulk-panel").first
    expect(panel).to_have_attribute("data-state", "running")
    browser.screenshot("progress-desktop")
    expect(bar.get_by_test_id("bulk-count")).to_have_text("0 selected")  # the selection was handed over

    expect(page.locator("#toasts .toast").filter(has_text="Stopped 10 of 10 containers.")).to_be_visible(timeout=20_000)
    expect(panel).to_have_attribute("data-state", "finished")
    expect(page.locator("#toasts .toast").filter(has_text="Stopped")).to_have_count(1)  # one summary, no toast per card
    expect(page.locator('#dashboard-body [data-testid="pending"]')).to_have_count(0)
    assert not any(pve.containers[900 + i].running for i in range(10))
    page.evaluate("document.querySelectorAll('#toasts .toast').forEach((toast) => toast.remove())")
    panel.locator("summary").click()
    browser.both_widths("summary")

    # without JavaScript: checkboxes and buttons are a plain form, the confirmation and the progress are pages
    nojs = nojs_browser
    nojs.login()
    nojs.goto("/?q=batch")
    nojs.page.get_by_label("Select batch01").check()
    nojs.page.get_by_label("Select batch02").check()
    nojs.page.get_by_label("Tag to add or remove").fill("night")
    nojs.page.get_by_role("button", name="Add tag").click()
    expect(nojs.page.get_by_test_id("bulk-confirm-names")).to_have_text("batch01 (CT 900) and batch02 (CT 901).")
    nojs.page.get_by_test_id("confirm").click()
    expect(nojs.page.get_by_test_id("bulk-summary")).to_have_text("Tagged 2 of 2 containers with night.")
    assert "night" in pve.containers[900].tags and "night" not in pve.containers[902].tags
    nojs.screenshot("no-javascript")
