"""Bulk actions walked in Chromium: select all running containers matching a search, stop the ten of them,
watch each card's spinner and the progress panel, and read ONE summary toast; then the same form without
JavaScript (tag two containers through the confirmation page). Then over two clusters: cards of both checked,
all matching a cluster filter, and a cluster that stops answering."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.fixtures.clusters import register_cluster
from tests.pvesim import PVESimulator

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


@pytest.fixture
def lab(live_server, pve, tmp_path):
    """A second cluster "lab" beside the live server's own, with two running guests named like the default's."""
    sim = PVESimulator(nodes=2, containers=0, cluster_name="lab", node_prefix="lab", task_delay=0.5).start()
    for i in range(2):
        sim.cluster._set_running(sim.add_container(vmid=900 + i, node=sim.nodes[i], hostname=f"batch{i + 1:02d}"))
    register_cluster(live_server.app, sim, "lab", tmp_path)
    yield sim
    sim.stop()


def dialog_widths(browser, name: str) -> None:
    """The open dialog at 1400 and 375 px, as the screen shows it (a full-page picture leaves the backdrop behind)."""
    expect(browser.page.locator("#confirm-modal")).to_have_css("opacity", "1")  # faded in
    for label, size in (("desktop", {"width": 1400, "height": 900}), ("375", {"width": 375, "height": 800})):
        browser.page.set_viewport_size(size)
        browser.screenshot(f"{name}-{label}", full_page=False)
    browser.page.set_viewport_size({"width": 1400, "height": 900})


def test_two_clusters_checked_then_all_matching_one_then_one_unreachable(browser, live_server, pve, lab):
    for i in range(3):
        pve.cluster._set_running(pve.add_container(vmid=900 + i, node=pve.nodes[i], hostname=f"batch{i + 1:02d}"))
    pve.task_delay = 0.5
    page = browser.page
    toasts = page.locator("#toasts .toast")
    browser.login()
    browser.goto("/?q=batch")
    bar = page.get_by_test_id("bulk-bar")
    page.get_by_label("Select batch01", exact=True).check()
    page.get_by_label("Select batch01 on lab", exact=True).check()
    page.get_by_label("Select batch02 on lab", exact=True).check()
    expect(bar.get_by_test_id("bulk-count")).to_have_text("3 selected")
    browser.both_widths("two-clusters-selected")

    bar.get_by_role("button", name="Stop").click()
    modal = page.locator("#confirm-modal")
    expect(modal).to_have_css("opacity", "1")
    expect(modal.get_by_test_id("bulk-confirm-count")).to_have_text("3 containers")
    expect(modal.get_by_test_id("bulk-confirm-names")).to_have_text(
        "batch01 (CT 900), batch01 (lab/CT 900) and batch02 (lab/CT 901).")
    expect(modal.get_by_test_id("bulk-confirm-clusters")).to_contain_text("1 on default, 2 on lab")
    dialog_widths(browser, "two-clusters-confirm")
    modal.get_by_test_id("confirm").click()
    titles = page.get_by_test_id("bulk-title")
    expect(titles).to_have_text(["Stop 1 container on default", "Stop 2 containers on lab"])
    expect(toasts.filter(has_text="Stopped 1 of 1 container on default.")).to_be_visible(timeout=20_000)
    expect(toasts.filter(has_text="Stopped 2 of 2 containers on lab.")).to_be_visible(timeout=20_000)
    expect(page.locator('#ct-lab-900 [data-testid="pending"]')).to_have_count(0)
    browser.both_widths("two-clusters-stopped")
    assert not pve.containers[900].running and pve.containers[901].running
    assert not lab.containers[900].running and not lab.containers[901].running

    # all matching, narrowed to lab by its cluster line: the default cluster's guests are left alone
    page.evaluate("document.querySelectorAll('#toasts .toast').forEach((toast) => toast.remove())")
    browser.goto("/?cluster=lab&q=batch")
    bar.get_by_label("All 2 matching this filter").check()
    bar.locator("[data-bulk-action=start]").click()
    expect(modal.get_by_test_id("bulk-confirm-count")).to_have_text("2 containers")
    expect(modal).to_contain_text("all 2 containers on lab matching “batch”")
    modal.get_by_test_id("confirm").click()
    expect(toasts.filter(has_text="Started 2 of 2 containers on lab.")).to_be_visible(timeout=20_000)
    assert lab.containers[900].running and not pve.containers[900].running

    # lab stops answering: its part is refused with the reason, the default cluster's goes on
    page.evaluate("document.querySelectorAll('#toasts .toast').forEach((toast) => toast.remove())")
    lab.faults.unreachable = True
    browser.goto("/?q=batch")
    expect(page.locator('[data-testid="proxmox-banner"][data-cluster="lab"]')).to_be_visible()
    page.get_by_label("Select batch02", exact=True).check()
    page.get_by_label("Select batch01 on lab", exact=True).check()
    bar.get_by_role("button", name="Shutdown").click()
    expect(modal.get_by_test_id("bulk-confirm-unreachable")).to_have_text(
        "Cluster lab cannot be reached: its 1 container is left out.")
    dialog_widths(browser, "one-cluster-unreachable-confirm")
    modal.get_by_test_id("confirm").click()
    expect(toasts.filter(has_text="1 failed: batch01 (CT 900): Cluster lab cannot be reached; nothing was done.")
           ).to_be_visible()
    expect(toasts.filter(has_text="Shut down 1 of 1 container on default.")).to_be_visible(timeout=20_000)
    lab_panel = page.locator('[data-testid="bulk-panel"][data-cluster="lab"]').first
    expect(lab_panel).to_have_attribute("data-state", "finished")
    lab_panel.locator("summary").click()
    browser.both_widths("one-cluster-unreachable")
    assert not pve.containers[901].running and lab.containers[900].running
