"""The Snapshots tab walked in Chromium: take a snapshot, change the container, roll back, see the old value."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def toast(page, text):
    expect(page.locator("#toasts .toast").filter(has_text=text).last).to_be_visible()


def dialog(page):
    """The confirmation dialog once its fade-in has finished."""
    modal = page.locator("#confirm-modal")
    expect(modal).to_have_css("opacity", "1")  # no wait_for_function: the CSP forbids its eval
    return modal


def take(page, name, description=""):
    page.get_by_test_id("take-snapshot").click()
    modal = dialog(page)
    modal.get_by_label("Name").fill(name)
    if description:
        modal.get_by_label("Description").fill(description)
    modal.get_by_test_id("confirm").click()
    toast(page, f"Snapshot “{name}” of ")
    expect(page.locator(f'[data-snapshot="{name}"]')).to_be_visible()
    expect(page.get_by_test_id("snapshot-pending")).to_have_count(0)


def test_snapshot_change_roll_back_and_the_overview_shows_the_old_value(browser, live_server, pve):
    sim = pve.containers[104]
    memory_before = sim.config["memory"]
    browser.login()
    browser.goto("/containers/104/snapshots")
    page = browser.page
    expect(page.get_by_text("No snapshots yet")).to_be_visible()

    # a name Proxmox would refuse stays in the dialog with the reason beside the field
    page.get_by_test_id("take-snapshot").click()
    modal = dialog(page)
    modal.get_by_label("Name").fill("current")
    modal.get_by_test_id("confirm").click()
    expect(modal.locator(".invalid-feedback")).to_have_text("“current” is reserved by Proxmox; choose another name.")
    assert sim.snapshots == {}
    modal.get_by_role("button", name="Cancel").click()
    expect(modal).to_be_hidden()

    take(page, "before-change", "memory as it came")
    sim.config["memory"] = memory_before * 2  # the change, made in Proxmox
    take(page, "after-change", "doubled the memory")
    page.get_by_role("tab", name="Overview").click()
    expect(page.locator('[data-config="memory"]')).to_have_text(f"{memory_before * 2} MiB")

    page.get_by_role("tab", name="Snapshots").click()
    page.locator('[data-snapshot="before-change"] [data-testid="rollback"]').first.click()
    modal = dialog(page)
    expect(modal).to_contain_text("every change made since then")
    expect(modal.get_by_label("Start the container afterwards")).not_to_be_checked()  # it is stopped now
    modal.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("snapshot-pending")).to_be_visible()
    expect(page.locator('#ct-header [data-action="start"]')).to_be_disabled()  # busy while the task runs
    toast(page, "rolled back to “before-change”.")
    expect(page.locator('[data-snapshot="current"]')).to_have_attribute("data-parent", "before-change")

    take(page, "fresh-start", "a new branch")
    tree = page.get_by_test_id("snapshot-tree")
    expect(tree.locator('[data-snapshot="before-change"] > ul > li')).to_have_count(2)  # two branches
    expect(tree.locator("[data-on-branch][data-snapshot]")).to_have_count(3)
    # toasts hide themselves on a timer, so clicking each could chase one already gone: clear them for the picture
    page.evaluate("document.querySelectorAll('#toasts .toast').forEach((toast) => toast.remove())")
    browser.both_widths("tree")

    page.get_by_role("tab", name="Overview").click()
    expect(page.locator('[data-config="memory"]')).to_have_text(f"{memory_before} MiB")
    page.get_by_role("tab", name="Events").click()
    expect(page.locator(".timeline-item").filter(has_text="rolled back to “before-change”")).to_have_count(1)


def test_deleting_a_snapshot_asks_first_and_works_without_javascript(browser, live_server, pve):
    browser.login()
    browser.goto("/containers/104/snapshots")
    page = browser.page
    take(page, "old-one")
    page.locator('[data-snapshot="old-one"] [data-testid="delete-snapshot"]').click()
    modal = dialog(page)
    expect(modal).to_contain_text("you can no longer roll back to “old-one”")
    browser.screenshot("delete-dialog", full_page=False)
    modal.get_by_test_id("confirm").click()
    toast(page, "Snapshot “old-one” of ")
    expect(page.get_by_text("No snapshots yet")).to_be_visible()
    assert pve.containers[104].snapshots == {}

    # the same pages as plain forms
    page.goto(f"{live_server.url}/containers/104/snapshots/new")
    page.get_by_label("Name").fill("plain-form")
    page.get_by_test_id("confirm").click()
    expect(page).to_have_url(re.compile(r"/containers/104/snapshots$"))
    expect(page.locator('[data-snapshot="plain-form"]')).to_be_visible()
    assert "plain-form" in pve.containers[104].snapshots
