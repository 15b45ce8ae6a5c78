"""The Config tab walked in Chromium: raise the memory of a running container (applied at once), enable nesting
(pending until a restart, with the hint), restart from the hint, and the pending change is gone."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def dialog(page):
    """The page's modal once its fade-in has finished."""
    modal = page.locator("#confirm-modal")
    expect(modal).to_have_css("opacity", "1")
    return modal


def clear_toasts(page):
    page.evaluate("document.querySelectorAll('#toasts .toast').forEach((toast) => toast.remove())")


def test_memory_applies_at_once_and_nesting_waits_for_the_restart(browser, live_server, pve):
    sim = pve.containers[105]
    assert sim.running and sim.config["memory"] == 1024
    browser.login()
    browser.goto("/containers/105/config")
    page = browser.page
    expect(page.get_by_test_id("value-memory")).to_have_text("1024 MiB")

    page.get_by_test_id("config-edit").click()
    modal = dialog(page)
    modal.get_by_label("Memory (MiB)").fill("2048")
    modal.get_by_label("Nesting").check()
    browser.screenshot("edit-dialog", full_page=False)
    modal.get_by_test_id("confirm").click()
    expect(page.locator("#toasts .toast").filter(has_text="applied: memory (MiB) 1024 → 2048").last).to_be_visible()
    expect(modal).to_be_hidden()
    expect(page.locator(".modal-backdrop")).to_have_count(0)

    expect(page.get_by_test_id("value-memory")).to_have_text("2048 MiB")  # hot-plugged: no badge
    expect(page.get_by_test_id("pending-memory")).to_have_count(0)
    pending = page.get_by_test_id("config-pending")
    expect(pending).to_contain_text("restart to apply")
    expect(pending.locator('[data-pending-key="features"]')).to_contain_text("nesting=1")
    expect(page.get_by_test_id("pending-features")).to_have_text("→ nesting=1 after restart")
    assert sim.config["memory"] == 2048 and sim.pending == {"features": "nesting=1"}
    clear_toasts(page)
    browser.both_widths("pending")

    page.get_by_test_id("config-restart").click()
    dialog(page).get_by_test_id("confirm").click()
    expect(page.locator("#toasts .toast").filter(has_text="is restarted").last).to_be_visible()
    expect(page.get_by_test_id("config-pending")).to_have_count(0)
    expect(page.get_by_test_id("value-features")).to_have_text("nesting=1")
    assert sim.config["features"] == "nesting=1" and not sim.pending
    clear_toasts(page)
    browser.both_widths("applied")
