"""Templates walked in the real Chromium: grid and filters, create and edit, buckets, delete, without JS."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from app.container_templates import manifest

pytestmark = pytest.mark.browser

CATALOG = Path(__file__).resolve().parent.parent / "catalog"


@pytest.fixture
def seeded(live_server):
    """The live server with the starter catalog loaded."""
    from app.extensions import db

    with live_server.app.app_context():
        manifest.apply_specs(manifest.read_path(CATALOG))
        db.session.remove()
    return live_server


def grid_names(page) -> list[str]:
    return page.locator("#template-grid [data-template]").evaluate_all("els => els.map(e => e.dataset.template)")


def test_grid_search_and_tag_filters(browser, seeded):
    browser.login()
    browser.goto("/templates")
    page = browser.page
    assert len(grid_names(page)) == 7
    expect(page.locator('[data-template="Jellyfin media server"]').get_by_text("4 cores")).to_be_visible()
    browser.screenshot("grid")

    page.fill("#template-search", "media")
    expect(page.locator("#template-grid [data-template]")).to_have_count(1)
    assert grid_names(page) == ["Jellyfin media server"] and "search=media" in page.url
    page.fill("#template-search", "no such thing")
    page.get_by_text("No templates match “no such thing”").wait_for()
    browser.screenshot("no-results")

    browser.goto("/templates")
    page.click('[data-filter-tag="debian"]')
    page.click('[data-filter-tag="web"]')
    expect(page).to_have_url(re.compile(r"tags=debian,web"))
    expect(page.locator("#template-grid [data-template]")).to_have_count(1)
    assert grid_names(page) == ["nginx web server"]
    browser.screenshot("tags")
    page.click('[data-filter-tag="web"]')  # a selected tag deselects
    expect(page).to_have_url(re.compile(r"tags=debian$"))
    expect(page.locator("#template-grid [data-template]")).to_have_count(6)


def test_detail_tabs(browser, seeded):
    browser.login()
    browser.goto("/templates")
    page = browser.page
    page.click("text=PostgreSQL database")
    expect(page.get_by_text("PASSWORD for postgresql")).to_be_visible()
    browser.screenshot("config")
    page.click('[data-tab="scripts"]')
    expect(page).to_have_url(re.compile(r"/scripts$"))
    expect(page.locator("[data-script]")).to_have_count(3)
    assert page.locator("[data-script]").evaluate_all("els => els.map(e => e.dataset.script)") == [
        "update", "install postgresql", "admin role"]
    page.locator('[data-script="admin role"] summary').click()
    expect(page.get_by_text("save_credential postgresql PASSWORD")).to_be_visible()
    browser.screenshot("scripts")
    page.click('[data-tab="packages"]')
    expect(page.locator('[data-manager="apt"]').get_by_text("ca-certificates")).to_be_visible()
    browser.screenshot("packages")


def test_create_then_edit_scripts_with_htmx(browser, live_server):
    browser.login()
    browser.goto("/templates")
    page = browser.page
    page.get_by_text("No templates yet").wait_for()
    page.click("text=New template")
    page.fill("#name", "My stack")
    page.select_option("#ostemplate", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst")
    page.fill("#cores", "0")
    page.fill("#memory", "8")
    page.fill("#tags", "Web, bad tag!")
    page.click("text=Create template")
    expect(page.get_by_text("Number must be between 1 and 8192.")).to_be_visible()
    expect(page.get_by_text("Number must be at least 16.")).to_be_visible()
    expect(page.get_by_text("Invalid tag “tag!”")).to_be_visible()
    browser.screenshot("create-errors")
    page.fill("#cores", "2")
    page.fill("#memory", "1024")
    page.fill("#tags", "Web, debian")
    page.click("text=Create template")
    page.wait_for_url("**/edit")

    for name in ("first", "second"):
        if not page.is_visible("#new-script-name"):
            page.click("summary:has-text('Add a script')")
        page.fill("#new-script-name", name)
        page.fill("#new-script-content", f"log_info {name}")
        page.click("text=Add script")
        page.locator(f'#section-scripts [data-script="{name}"]').wait_for()
    page.locator("[data-app-toast]").last.wait_for()
    page.click('[aria-label="Move second up"]')
    expect(page.locator("#section-scripts [data-script]").first).to_have_attribute("data-script", "second")
    browser.screenshot("edit")
    page.goto(live_server.url + page.url.split(live_server.url)[1].replace("/edit", "/scripts"))
    assert page.locator("[data-script]").evaluate_all("els => els.map(e => e.dataset.script)") == ["second", "first"]


def test_package_buckets_bulk_import_and_delete(browser, live_server):
    browser.login()
    browser.goto("/templates/packages")
    page = browser.page
    page.fill("#new-name", "admin-tools")
    page.click("button:has-text('Create')")
    bucket = page.locator('[data-bucket="admin-tools"]')
    bucket.wait_for()
    bucket.locator("summary", has_text="Paste a list").click()
    bucket.locator("textarea").fill("htop\n# comment\npip:httpie==3.2.4\nbrew:wget\n")
    bucket.get_by_text("Import packages").click()
    page.get_by_text("line 4: unknown package manager “brew”").wait_for()
    assert page.locator('[data-bucket="admin-tools"] [data-package]').count() == 0
    browser.screenshot("bucket-import-error")
    bucket = page.locator('[data-bucket="admin-tools"]')
    bucket.locator("textarea").fill("htop\n# comment\npip:httpie==3.2.4\nnpm:pm2\n")
    bucket.get_by_text("Import packages").click()
    page.locator('[data-bucket="admin-tools"] [data-package="pm2"]').wait_for()
    browser.screenshot("buckets")
    page.click('[aria-label="Delete admin-tools"]')
    expect(page.get_by_test_id("package-count")).to_contain_text("Its 3 packages are deleted with it.")
    page.get_by_test_id("confirm").click()
    page.get_by_text("No package buckets").wait_for()


def test_without_javascript_search_and_sub_forms_still_work(nojs_browser, seeded):
    nojs_browser.login()
    nojs_browser.goto("/templates")
    page = nojs_browser.page
    page.fill("#template-search", "dns")
    page.click("button:has-text('Search')")
    assert grid_names(page) == ["AdGuard Home"]
    page.click("text=AdGuard Home")
    page.click("text=Edit")
    page.click("summary:has-text('Add a script')")
    page.fill("#new-script-name", "blocklists")
    page.fill("#new-script-content", "log_info lists")
    page.click("text=Add script")
    expect(page.locator('#section-scripts [data-script="blocklists"]')).to_be_visible()
    nojs_browser.screenshot("edit-nojs")
    page.goto(page.url.split("/edit")[0] + "/delete")
    assert "No container was created from it." in page.get_by_test_id("used-by").inner_text()
    page.get_by_test_id("confirm").click()
    assert "AdGuard Home" not in grid_names(page)
