"""Settings → Clusters in Chromium: an admin finds Settings in the sidebar, adds a second Proxmox (a simulator named
"lab") through the form after a refused try, sees it in the table, checks it, finds its guests on the dashboard,
and removes it after confirming; the pages at desktop width and at 375 px."""
from __future__ import annotations

import re
import shutil

import pytest
from playwright.sync_api import expect

from tests.fixtures.pve import pve_config
from tests.pvesim import PVESimulator

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1400, "height": 900}


@pytest.fixture(scope="module")
def lab():
    sim = PVESimulator(nodes=2, containers=4, cluster_name="lab", node_prefix="lab", task_delay=0.05).start()
    yield sim
    sim.stop()


def test_an_admin_adds_a_cluster_sees_it_and_its_guests_then_removes_it(browser, lab, tmp_path):
    page = browser.page
    bundle = tmp_path / "lab-ca.pem"
    shutil.copy(pve_config(lab)["PVE_VERIFY_SSL"], bundle)
    browser.login()
    page.set_viewport_size(PHONE)
    page.get_by_test_id("menu-toggle").click()
    expect(page.get_by_test_id("nav-settings")).to_be_visible()
    page.get_by_test_id("nav-settings").click()
    expect(page.get_by_role("heading", name="Clusters")).to_be_visible()
    expect(page.get_by_test_id("nav-settings")).to_have_class(re.compile(r"\bactive\b"))
    page.set_viewport_size(DESKTOP)
    expect(page.locator("[data-testid=cluster-row][data-cluster=default]")).to_contain_text("from the environment")
    browser.both_widths("list")

    page.fill("#name", "Lab")
    page.fill("#host", lab.host)
    page.fill("#port", str(lab.port))
    page.fill("#token_id", lab.token_id)
    page.fill("#token_secret", lab.token_value)
    page.fill("#verify_ssl", str(bundle))
    page.fill("#ssh_hosts", "lab1=127.0.0.1,lab2=127.0.0.1")
    page.get_by_role("button", name="Add cluster").click()
    expect(page.get_by_test_id("cluster-error")).to_contain_text("A cluster's name is 1 to 40 lower-case letters")
    expect(page.locator("#host")).to_have_value(lab.host)
    expect(page.locator("#token_secret")).to_have_value("")  # never sent back
    page.get_by_test_id("cluster-error").scroll_into_view_if_needed()
    browser.both_widths("refused")

    page.fill("#name", "lab")
    page.fill("#token_secret", lab.token_value)
    page.get_by_role("button", name="Add cluster").click()
    expect(page.locator("#toasts")).to_contain_text("Cluster “lab” added.")
    row = page.locator("[data-testid=cluster-row][data-cluster=lab]")
    expect(row).to_contain_text(f"127.0.0.1:{lab.port}")
    row.get_by_test_id("check").click()
    expect(page.locator("#toasts")).to_contain_text("lab: Connected: pve-manager")
    browser.both_widths("added")
    row.get_by_test_id("edit").click()
    expect(page.get_by_role("heading", name="Edit cluster lab")).to_be_visible()
    expect(page.locator("#port")).to_have_value(str(lab.port))
    expect(page.locator("#token_secret")).to_have_value("")
    browser.both_widths("edit")
    page.get_by_role("link", name="Cancel").click()

    browser.goto("/?cluster=lab")
    expect(page.locator("[data-vmid][data-cluster=lab]")).to_have_count(len(lab.containers))
    hostname = lab.containers[min(lab.containers)].hostname
    expect(page.locator(f"[data-vmid='{min(lab.containers)}'][data-cluster=lab]")).to_contain_text(hostname)
    browser.both_widths("dashboard")

    browser.goto("/settings/clusters")
    expect(row.get_by_test_id("containers")).to_have_text(str(len(lab.containers)))
    row.get_by_test_id("remove").click()
    expect(page.get_by_test_id("records")).to_have_text(f"{len(lab.containers)} container records")
    browser.both_widths("remove")
    page.get_by_test_id("confirm").click()
    expect(page.locator("#toasts")).to_contain_text("Cluster “lab” removed")
    expect(page.locator("[data-testid=cluster-row][data-cluster=lab]")).to_have_count(0)
