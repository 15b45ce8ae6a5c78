"""API tokens in Chromium: create one from My account, copy it with the button, see it listed by its prefix only,
use it from a script, revoke it after confirming; the pages at desktop width and at 375 px."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_create_copy_use_and_revoke_a_token(browser, live_server):
    page = browser.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    browser.login()
    browser.goto("/account")
    page.get_by_role("link", name=re.compile("API tokens")).click()
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    expect(page.get_by_test_id("no-tokens")).to_be_visible()
    page.fill("#name", "nightly backup")
    page.select_option("#role", "operator")
    page.get_by_label("A year").check()
    page.get_by_role("button", name="Create token").click()

    value = page.get_by_test_id("new-token-value")
    expect(value).to_have_value(re.compile(r"^pxb_[A-Za-z0-9_-]{43}$"))
    secret = value.input_value()
    browser.both_widths("created")
    page.get_by_test_id("copy-token").click()
    expect(page.locator("#toasts")).to_contain_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == secret

    # A script's request (this browser's cookie rides along and is ignored) is answered without a cookie.
    answer = page.context.request.get(f"{live_server.url}/", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status == 200 and "set-cookie" not in answer.headers

    page.get_by_test_id("done").click()
    row = page.get_by_test_id("token")
    expect(row).to_contain_text("nightly backup")
    expect(row).to_contain_text(secret[:12] + "…")
    expect(row).to_contain_text("last used")
    expect(page.locator("body")).not_to_contain_text(secret)
    browser.both_widths("list")
    page.emulate_media(color_scheme="dark")
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-bs-theme", "dark")
    browser.screenshot("list-desktop-dark")
    page.emulate_media(color_scheme=None)

    row.get_by_test_id("revoke").click()
    expect(page.get_by_role("heading", name=re.compile("Revoke the token"))).to_be_visible()
    browser.both_widths("revoke")
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("token")).to_have_attribute("data-state", "revoked")
    expect(page.locator("#toasts")).to_contain_text("is revoked")
    refused = page.context.request.get(f"{live_server.url}/", headers={"Authorization": f"Bearer {secret}"},
                                       max_redirects=0)
    assert refused.status == 401 and "Bearer" in refused.headers["www-authenticate"]
