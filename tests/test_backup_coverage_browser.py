"""Backup coverage walked in Chromium: the Backups page naming the uncovered containers, the cards' badges."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def signed_in(browser, live_server):
    """Signed in, with the live server's backup index loaded (as once its first sweep ended)."""
    live_server.app.extensions["proxmox"].refresh_backup_index()
    assert live_server.app.extensions["proxmox"].backup_index(wait=True) is not None
    browser.login()
    return browser


def test_the_backups_page_names_the_containers_no_job_covers(signed_in, pve, live_server):
    page = signed_in.page
    page.get_by_test_id("nav-backups").click()
    expect(page).to_have_url(re.compile(r"/backups$"))
    expect(page.get_by_role("heading", name="Backups", exact=True)).to_be_visible()
    uncovered = page.get_by_test_id("uncovered")
    for vmid in (109, 119):
        expect(uncovered.locator(f'a[data-vmid="{vmid}"]')).to_have_text(pve.containers[vmid].hostname)
    expect(uncovered.locator("a[data-vmid]")).to_have_count(2)
    expect(page.get_by_test_id("stat-uncovered")).to_contain_text("2")
    expect(page.get_by_test_id("disabled-only")).to_contain_text("by backup-weekly")
    expect(page.get_by_test_id("not-recent").locator('[data-backup="old"]')).to_have_text("Backup 40 d ago")
    nightly = page.locator('tr[data-job="backup-nightly"]')
    expect(nightly).to_contain_text("All containers except CT 105, 109, 115, 119")
    # The next run, rendered in UTC, is shown in the browser's own time zone once the page loaded.
    expect(nightly.locator("time[data-local]").first).not_to_contain_text("UTC")
    signed_in.both_widths("backups")
    uncovered.locator('a[data-vmid="109"]').click()
    expect(page).to_have_url(re.compile(r"/containers/109$"))
    expect(page.get_by_test_id("backup-age")).to_have_text("No backup")


def test_dashboard_cards_carry_their_backup_age_and_the_search_finds_the_unbacked(signed_in, pve):
    page = signed_in.page
    expect(page.locator("#ct-109").get_by_test_id("backup-age")).to_have_text("No backup")
    expect(page.locator("#ct-115").get_by_test_id("backup-age")).to_have_text("Backup 40 d ago")
    expect(page.locator("#ct-102").get_by_test_id("backup-age")).to_have_text("Backup 2 h ago")
    title = page.locator("#ct-102").get_by_test_id("backup-age").get_attribute("title")
    assert re.fullmatch(r"Newest of 3 backups: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", title)
    signed_in.both_widths("cards")
    page.get_by_role("searchbox", name="Search containers").fill("backup:>7d")
    page.get_by_role("searchbox", name="Search containers").press("Enter")
    expect(page).to_have_url(re.compile(r"q=backup%3A%3E7d"))
    expect(page.locator("[data-testid=grid] > .col")).to_have_count(3)
    for vmid in (109, 115, 119):
        expect(page.locator(f"#ct-{vmid}")).to_be_visible()
    page.get_by_test_id("search-help").locator("summary").click()
    expect(page.get_by_test_id("search-help")).to_contain_text("backup:none")
    signed_in.both_widths("search")
