"""``/api/v1/docs`` in the real Chromium: the vendored Swagger UI reads ``openapi.json`` and shows every operation
under the app's Content-Security-Policy (no inline script or style: a violation is a console error, which fails
the test), at desktop width and at 375 px."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.security_headers import CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.browser


def test_docs_page_renders_every_operation_under_the_policy(browser):
    response = browser.goto("/api/v1/docs")  # public, like the document: no sign-in
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    page = browser.page
    expect(page.locator(".opblock")).to_have_count(17)  # 6 of them another cluster's addresses
    expect(page.locator(".info .title")).to_contain_text("Proxboard API")
    expect(page.get_by_text("/api/v1/containers/{vmid}/actions/{action}")).to_be_visible()
    page.locator(".opblock-summary", has_text="/api/v1/containers/{vmid}/actions/{action}").first.click()
    expect(page.get_by_text("Accepted: poll the operation at Location.")).to_be_visible()
    browser.both_widths("api-docs")  # no sideways scrolling at 1400 or 375 px
