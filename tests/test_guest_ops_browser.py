"""Clone and migrate walked in Chromium: a clone of a template appears on the dashboard, a migrated container's card
shows its new node."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def dialog(page):
    """The dialog once its fade-in has finished."""
    modal = page.locator("#confirm-modal")
    expect(modal).to_have_css("opacity", "1")  # no wait_for_function: the CSP forbids its eval
    return modal


def open_more(page, op):
    page.get_by_test_id("more-menu").click()
    page.locator(f'#guest-ops-menu [data-op="{op}"]').click()
    return dialog(page)


def test_clone_a_template_and_migrate_a_container(browser, live_server, pve):
    browser.login()
    page = browser.page
    browser.goto("/containers/103")
    page.get_by_test_id("more-menu").click()
    expect(page.locator('#guest-ops-menu [data-op="template"]')).to_have_class("dropdown-item disabled")  # a template
    browser.both_widths("more-menu")
    page.locator('#guest-ops-menu [data-op="clone"]').click()
    modal = dialog(page)
    expect(modal.get_by_label("Linked: shares the template's disks (fast, small)")).to_be_checked()
    modal.get_by_label("New VMID").fill("230")
    modal.get_by_label("Hostname").fill("from-template")
    browser.both_widths("clone-dialog")
    modal.get_by_test_id("confirm").click()
    page.wait_for_url(live_server.url + "/")
    card = page.locator("#ct-230")
    expect(card).to_contain_text("from-template")
    expect(page.locator("#toasts .toast").filter(has_text="is cloned as CT 230").last).to_be_visible()
    expect(card).to_contain_text("CT 230 · pve1")
    assert pve.containers[230].hostname == "from-template"

    browser.goto("/containers/100")
    modal = open_more(page, "migrate")
    expect(modal.get_by_test_id("restart-note")).to_be_visible()
    modal.get_by_label("Target node").select_option("pve3")
    browser.both_widths("migrate-dialog")
    modal.get_by_test_id("confirm").click()
    expect(page.locator("#toasts .toast").filter(has_text="is on pve3 now and running again.").last).to_be_visible()
    expect(page.locator('[data-fact="node"]')).to_have_text("pve3")
    browser.goto("/")
    expect(page.locator("#ct-100")).to_contain_text("CT 100 · pve3")
    browser.both_widths("dashboard-after")
