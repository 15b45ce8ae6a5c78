"""The Disks tab walked in Chromium: grow the root disk and see its new size, add a mount point."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

VMID = 950


def dialog(page):
    """The dialog once its fade-in has finished."""
    modal = page.locator("#confirm-modal")
    expect(modal).to_have_css("opacity", "1")  # no wait_for_function: the CSP forbids its eval
    return modal


def test_grow_the_root_disk_and_add_a_mount_point(browser, live_server, pve):
    pve.add_container(vmid=VMID, status="running", hostname="files", disk_gb=8, mp0="/srv/share,mp=/share")
    browser.login()
    browser.goto(f"/containers/{VMID}/disks")
    page = browser.page
    root = page.locator('[data-disk="rootfs"]')
    expect(root.get_by_test_id("disk-size")).to_have_text("8 GiB")
    expect(page.locator('[data-disk="mp0"]').get_by_test_id("mount-kind")).to_have_text("Bind mount")
    expect(page.locator('[data-disk="mp0"] [data-testid="grow"]')).to_have_count(0)

    # a shrink stays in the dialog with the reason; then grow by 4 GiB
    root.get_by_test_id("grow").click()
    modal = dialog(page)
    modal.get_by_label("New size").check()
    modal.get_by_label("GiB").fill("6")
    modal.get_by_test_id("confirm").click()
    expect(modal.locator(".invalid-feedback")).to_contain_text("Proxmox cannot shrink a disk")
    browser.both_widths("grow-refused")
    modal.get_by_label("Increase by").check()
    modal.get_by_label("GiB").fill("4")
    modal.get_by_test_id("confirm").click()
    expect(page.locator("#toasts .toast").filter(has_text="grown to 12 GiB").last).to_be_visible()
    expect(root.get_by_test_id("disk-size")).to_have_text("12 GiB")
    assert "size=12G" in pve.containers[VMID].config["rootfs"]

    page.get_by_test_id("add-mount-point").click()
    modal = dialog(page)
    modal.get_by_label("Size (GiB)").fill("16")
    modal.get_by_label("Path in the container").fill("/var/lib/postgresql")
    browser.both_widths("add-dialog")
    modal.get_by_test_id("confirm").click()
    expect(page.locator("#toasts .toast").filter(has_text="Mount point mp1").last).to_be_visible()
    added = page.locator('[data-disk="mp1"]')
    expect(added.get_by_test_id("disk-size")).to_have_text("16 GiB")
    expect(added.get_by_test_id("mount-path")).to_have_text("/var/lib/postgresql")
    expect(page.locator(".modal-backdrop")).to_have_count(0)
    page.evaluate("document.querySelectorAll('#toasts .toast').forEach((toast) => toast.remove())")
    browser.both_widths("disks")
