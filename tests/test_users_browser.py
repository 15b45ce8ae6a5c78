"""The Users page in Chromium: an admin finds it in the sidebar, creates a user whose generated password is shown
once, makes them an operator, disables them (their open browser is signed out at once), and deletes them after
confirming; the pages at desktop width and at 375 px."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.models import User

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1400, "height": 900}
NAME = "dora"


@pytest.fixture
def no_dora(live_server):
    """The live server keeps its users between tests: remove the one this walk creates, whatever happens."""
    yield
    with live_server.app.app_context():
        db.session.execute(db.delete(User).filter_by(username=NAME))
        db.session.commit()


def test_an_admin_creates_promotes_disables_and_deletes_a_user(browser, live_server, chromium, no_dora):
    page = browser.page
    browser.login()
    page.set_viewport_size(PHONE)
    page.get_by_test_id("menu-toggle").click()
    expect(page.get_by_test_id("nav-users")).to_be_visible()
    expect(page.locator("#app-sidebar")).to_have_class(re.compile(r"\bshow\b"))
    expect(page.locator("#app-sidebar")).not_to_have_class(re.compile("showing"))  # slid in
    browser.screenshot("menu-375", full_page=False)
    page.get_by_test_id("nav-users").click()
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    page.set_viewport_size(DESKTOP)
    expect(page.locator("[data-username=alice]")).to_contain_text("admin")

    page.get_by_test_id("new-user").click()
    page.fill("#username", NAME)
    page.select_option("#role", "viewer")
    browser.both_widths("new")
    page.get_by_role("button", name="Create user").click()
    shown = page.get_by_test_id("password")
    expect(shown).to_have_value(re.compile(r"^[A-Za-z0-9_-]{16}$"))
    password = shown.input_value()
    browser.both_widths("created")

    # Dora signs in elsewhere with the password she was given.
    elsewhere = chromium.new_context(base_url=live_server.url)
    dora = elsewhere.new_page()
    dora.goto("/login")
    dora.fill("input[name=username]", NAME)
    dora.fill("input[name=password]", password)
    dora.click("button[type=submit]")
    expect(dora.get_by_test_id("user-menu")).to_contain_text(NAME)

    page.get_by_role("link", name="Done").click()
    expect(page.get_by_test_id("username")).to_have_text(NAME)
    expect(page.get_by_test_id("sessions")).to_have_text("1")
    page.select_option("#role", "operator")
    page.get_by_role("button", name="Save role").click()
    expect(page.locator("#toasts")).to_contain_text(f"{NAME} is now operator (was viewer).")
    expect(page.get_by_test_id("role").first).to_have_text("operator")
    browser.both_widths("detail")

    page.get_by_test_id("disable").click()
    expect(page.locator("#toasts")).to_contain_text(f"{NAME} is disabled; 1 session ended.")
    expect(page.get_by_test_id("state").first).to_contain_text("disabled")
    dora.reload()
    expect(dora.locator("input[name=username]")).to_be_visible()  # signed out at once
    elsewhere.close()

    page.get_by_role("link", name="Users", exact=True).first.click()
    row = page.locator(f"[data-username={NAME}]")
    expect(row).to_contain_text("operator")
    expect(row).to_contain_text("disabled")
    browser.both_widths("list")
    row.get_by_role("link", name=NAME).click()
    page.get_by_test_id("delete").click()
    expect(page.get_by_role("heading", name=f"Delete {NAME}?")).to_be_visible()
    browser.both_widths("delete")
    page.get_by_test_id("confirm").click()
    expect(page.locator("#toasts")).to_contain_text(f"User {NAME} deleted.")
    expect(page.locator(f"[data-username={NAME}]")).to_have_count(0)


def test_the_pages_work_without_javascript(nojs_browser, no_dora):
    page = nojs_browser.page
    nojs_browser.login()
    nojs_browser.goto("/users/new")
    page.fill("#username", NAME)
    page.select_option("#role", "operator")
    page.fill("#password", "doras own password")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_test_id("username")).to_have_text(NAME)
    expect(page.get_by_test_id("role").first).to_have_text("operator")
    page.get_by_role("button", name="Require at sign-in").click()
    expect(page.get_by_test_id("2fa").first).to_contain_text("required")
    expect(page.get_by_role("button", name="Make optional")).to_be_visible()
    page.get_by_test_id("delete").click()
    page.get_by_test_id("confirm").click()
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    expect(page.locator("#toasts .toast", has_text=f"User {NAME} deleted.")).to_be_visible()  # flashed, shown without JS
    expect(page.locator(f"[data-username={NAME}]")).to_have_count(0)
