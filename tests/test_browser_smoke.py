"""The first walk in the real browser: sign in and land on the dashboard."""
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_login_lands_on_dashboard_without_console_errors(browser):
    browser.goto("/")
    assert "/login" in browser.page.url
    browser.screenshot("login")
    browser.login()
    page = browser.page
    assert page.url.rstrip("/") == browser.base_url
    expect(page.get_by_role("link", name="Create Container")).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link")).to_have_text(["Dashboard", "Nodes", "Templates", "Backups", "Alerts", "Audit log", "Users", "Settings", "About"])  # alice is an admin
    browser.screenshot("dashboard")


def test_wrong_password_shows_message(browser):
    browser.login(password="wrong-password")
    expect(browser.page.get_by_text("Invalid username or password.")).to_be_visible()
