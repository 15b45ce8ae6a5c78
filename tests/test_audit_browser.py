"""The audit page in Chromium: two users act, the admin filters the log down to one of them. Screenshots at
desktop and 375 px."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.models import User
from tests.fixtures.factories import make_container, make_user

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 812}


def act_from_the_header(browser, vmid: int, action: str, done: str, confirm: str | None = None) -> None:
    browser.goto(f"/containers/{vmid}")
    browser.page.locator(f'#ct-header [data-action="{action}"]').click()
    if confirm:
        browser.page.locator("#confirm-modal").get_by_role("button", name=confirm).click()
    expect(browser.page.locator("#ct-header")).to_have_attribute("data-status", done)


def test_the_admin_filters_the_audit_log_to_one_users_actions(browser, live_server, pve):
    with live_server.app.app_context():
        if db.session.scalar(db.select(User).filter_by(username="olga")) is None:
            make_user("olga", role="operator")
        make_container(100, "pve1", hostname="web01")
        make_container(104, "pve2", hostname="mail01")
    page = browser.page

    browser.login("olga")
    act_from_the_header(browser, 100, "stop", "stopped", confirm="Stop")
    browser.open_menu()
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("input[name=username]")).to_be_visible()
    browser.login("alice")
    act_from_the_header(browser, 104, "start", "running")

    page.locator("[data-testid=nav-audit]").first.click()
    table = page.locator("[data-testid=audit-table]")
    # each: the sign-in, the action as asked (web) and how Proxmox ended it (worker); olga signed out too
    expect(table.locator("[data-testid=audit-user]").filter(has_text="olga")).to_have_count(4)
    expect(table.locator("[data-testid=audit-user]").filter(has_text="alice")).to_have_count(3)

    page.get_by_label("User").fill("olga")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(live_server.url + "/audit?user=olga&action=&container=&outcome=&since=&until=")
    rows = table.locator("[data-testid=audit-row]")
    expect(rows).to_have_count(4)
    expect(table.locator("[data-testid=audit-user]").filter(has_text="alice")).to_have_count(0)
    stop = table.locator('[data-action="container.stop"][data-channel="web"]')
    expect(stop).to_have_attribute("data-outcome", "succeeded")
    expect(stop.get_by_role("link", name="CT 100 (web01)")).to_have_attribute("href", "/containers/100")
    expect(table.locator('[data-action="container.stop"][data-channel="worker"]')).to_contain_text("is stopped")
    expect(page.locator("[data-testid=audit-total]")).to_have_text("4 entries")
    sign_in = table.locator('[data-action="auth.sign_in"]')
    expect(sign_in).to_contain_text("method password")  # a sign-in's method, unlike a request's POST, is shown
    expect(stop).not_to_contain_text("POST")
    expect(page.locator("[data-testid=audit-csv]")).to_have_attribute("href", "/audit.csv?user=olga")
    browser.screenshot("filtered")

    page.set_viewport_size(PHONE)
    expect(rows).to_have_count(4)
    browser.screenshot("filtered-375")

    page.get_by_label("From (UTC)").fill("2026-01-01T00:00")
    page.get_by_label("To (UTC)").fill("2025-01-01T00:00")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("[data-testid=audit-bad-filter]")).to_be_visible()
    expect(page.locator(".invalid-feedback")).to_have_text("“To” is before “From”.")
    browser.console_errors[:] = [e for e in browser.console_errors if "400" not in e]  # Chromium logs the 400
    browser.screenshot("bad-filter-375")
