"""The Backups tab walked in Chromium: back up now, restore the new backup as a new container and find it on the
dashboard; a protected backup that cannot be deleted; the dialogs without JavaScript."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def shown(page):
    """Wait for the dialog's fade-in to finish (for screenshots)."""
    expect(page.locator("#confirm-modal")).to_have_css("opacity", "1")


def toast(page, text):
    expect(page.locator("#toasts .toast").filter(has_text=text).last).to_be_visible()


def test_back_up_now_then_restore_it_as_a_new_container_on_the_dashboard(browser, live_server, pve):
    name = pve.containers[111].name
    browser.login()
    browser.goto("/containers/111/backups")
    page = browser.page
    rows = page.locator('[data-testid="backup-list"] > li')
    expect(rows).to_have_count(3)
    browser.both_widths("tab")

    page.get_by_test_id("backup-now").click()
    dialog = page.locator("#confirm-modal")
    expect(dialog.get_by_role("heading", name=f"Back up {name}")).to_be_visible()
    shown(page)
    dialog.get_by_label("Storage").select_option("local")
    dialog.get_by_label("Notes").fill("{{guestname}} before the upgrade")
    browser.both_widths("backup-dialog")
    dialog.get_by_test_id("confirm").click()
    expect(dialog).to_be_hidden()
    toast(page, f"{name} (CT 111) is backed up to local.")  # the poller's toast (or the tab's, for a quick task)
    expect(page.get_by_test_id("last-task")).to_contain_text("is backed up to local")
    page.get_by_test_id("last-task").locator("summary").click()
    expect(page.get_by_test_id("last-task-log")).to_contain_text("INFO: starting new backup job: vzdump 111")
    expect(rows).to_have_count(4)
    made = rows.first
    expect(made).to_have_attribute("data-storage", "local")
    expect(made.get_by_test_id("backup-notes")).to_have_text(f"{name} before the upgrade")
    browser.both_widths("backed-up")

    made.get_by_test_id("restore-new").click()
    expect(dialog.get_by_role("heading", name="Restore as a new container")).to_be_visible()
    shown(page)
    vmid = int(dialog.get_by_label("New VMID").input_value())
    assert vmid not in pve.containers
    browser.both_widths("restore-dialog")
    dialog.get_by_test_id("confirm").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("last-task")).to_contain_text(f"is restored as CT {vmid}.", timeout=15_000)
    browser.both_widths("restored")

    page.get_by_test_id("open-restored").click()
    expect(page).to_have_url(re.compile(rf"/containers/{vmid}$"))
    expect(page.locator("#ct-header h1")).to_have_text(name)
    browser.goto("/")
    card = page.locator(f"#ct-{vmid}")
    expect(card).to_be_visible()
    expect(card).to_contain_text(name)
    browser.both_widths("dashboard")


def test_a_protected_backup_refuses_deletion_until_unprotected(browser, live_server, pve):
    browser.login()
    browser.goto("/containers/112/backups")
    page = browser.page
    protected = page.locator("li[data-protected]")
    expect(protected).to_have_count(1)
    expect(protected.get_by_test_id("protected")).to_be_visible()
    delete = protected.get_by_test_id("delete-backup")
    expect(delete).to_be_disabled()
    # Bootstrap's tooltip keeps the reason in data-bs-original-title
    expect(protected.locator("[data-refused]").filter(has=page.get_by_test_id("delete-backup"))).to_have_attribute(
        "data-bs-original-title", "Protected: remove the protection first.")
    browser.both_widths("protected")

    volid = protected.get_attribute("data-volid")
    browser.goto(f"/containers/112/backups/delete?volid={volid}")  # the dialog's own page, reached by hand
    expect(page.get_by_test_id("dialog-reason")).to_have_text("Protected: remove the protection first.")
    expect(page.get_by_test_id("confirm")).to_be_disabled()
    browser.both_widths("delete-refused")

    browser.goto("/containers/112/backups")
    row = page.locator(f'li[data-volid="{volid}"]')
    row.get_by_test_id("protect").click()
    toast(page, "is no longer protected")
    expect(row.get_by_test_id("protected")).to_have_count(0)
    row.get_by_test_id("delete-backup").click()
    dialog = page.locator("#confirm-modal")
    shown(page)
    dialog.get_by_test_id("confirm").click()
    toast(page, "is deleted.")
    expect(page.locator(f'li[data-volid="{volid}"]')).to_have_count(0)
    assert volid not in pve.cluster.backups


def test_without_javascript_the_dialogs_are_pages(nojs_browser, live_server, pve):
    nojs_browser.login()
    nojs_browser.goto("/containers/104/backups")
    page = nojs_browser.page
    page.get_by_test_id("backup-now").click()
    expect(page).to_have_url(re.compile(r"/containers/104/backups/new$"))
    page.get_by_label("Storage").select_option("backup-nfs")
    page.get_by_label("Stop").check()
    page.get_by_test_id("confirm").click()
    expect(page).to_have_url(re.compile(r"/containers/104/backups$"))
    # the page reloads itself (a <noscript> refresh) until the task has ended
    expect(page.get_by_test_id("last-task")).to_contain_text("is backed up to backup-nfs", timeout=15_000)
    nojs_browser.both_widths("after-backup")

    name = pve.containers[104].name
    page.locator('li[data-storage="backup-nfs"]').first.get_by_test_id("restore-over").click()
    page.get_by_label("Type the container's hostname to confirm").fill("not-" + name)
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("dialog-error")).to_contain_text(f"type {name} to confirm")
    nojs_browser.both_widths("restore-over-refused")
    page.get_by_label("Type the container's hostname to confirm").fill(name)
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("last-task")).to_contain_text(f"{name} (CT 104) is restored from its backup",
                                                              timeout=15_000)
