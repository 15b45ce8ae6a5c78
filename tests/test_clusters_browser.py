"""Three clusters in one dashboard, walked in Chromium: one of them stops answering."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.fixtures.clusters import register_cluster
from tests.pvesim import PVESimulator

pytestmark = pytest.mark.browser


@pytest.fixture
def clusters(live_server, pve, tmp_path):
    """lab and office beside the live server's own (default) cluster."""
    sims = {"lab": PVESimulator(nodes=2, containers=4, cluster_name="lab", node_prefix="lab", task_delay=0.05).start(),
            "office": PVESimulator(nodes=1, containers=3, node_prefix="office", task_delay=0.05).start()}
    for name, sim in sims.items():
        register_cluster(live_server.app, sim, name, tmp_path)
    yield {"default": pve, **sims}
    for sim in sims.values():
        sim.stop()


def test_three_clusters_then_one_down_and_a_guest_of_another_cluster(browser, clusters):
    page = browser.page
    browser.login()
    lines = page.get_by_test_id("cluster-summary")
    expect(lines).to_have_count(3)
    for name in ("default", "lab", "office"):
        expect(page.locator(f'[data-testid="cluster-summary"][data-cluster-filter="{name}"]')).to_have_attribute(
            "data-reachable", "yes")
    expect(page.locator('#ct-lab-100 [data-testid="card-cluster"]')).to_have_text("lab")
    browser.both_widths("three-clusters")

    clusters["office"].stop()
    page.reload()
    expect(page.locator('[data-testid="proxmox-banner"][data-cluster="office"]')).to_contain_text(
        "Cluster office: cannot reach Proxmox")
    expect(page.locator('[data-testid="cluster-summary"][data-cluster-filter="office"]')).to_have_attribute(
        "data-reachable", "no")
    expect(page.locator('[data-testid="proxmox-banner"]')).to_have_count(1)
    expect(page.locator("#ct-lab-100 .ct-card")).not_to_have_class(re.compile(r"\bstale\b"))
    browser.both_widths("one-cluster-down")
    page.locator('[data-cluster-filter="office"]').click()  # its last known state, on a page of its own
    expect(page.locator(".col[data-cluster]")).to_have_count(len(clusters["office"].containers))
    expect(page.locator("#ct-office-100 .ct-card")).to_have_class(re.compile(r"\bstale\b"))
    browser.both_widths("one-cluster-down-its-guests")

    page.locator('[data-cluster-filter="lab"]').click()
    expect(page).to_have_url(re.compile(r"cluster=lab"))
    expect(page.locator(".col[data-cluster]")).to_have_count(
        len(clusters["lab"].containers))
    page.locator("#ct-lab-101 a.stretched-link").click()
    expect(page).to_have_url(re.compile(r"/clusters/lab/containers/101$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(clusters["lab"].containers[101].hostname)
    browser.both_widths("lab-guest")
