"""Two-factor sign-in in Chromium: an authenticator app set up from the key the page shows (codes by pyotp, as a
phone would make them), and passkeys through Chromium's virtual authenticator (the DevTools Protocol's WebAuthn
domain) registered on My account, then used after the password and alone.

Pages are opened on ``localhost``: WebAuthn refuses an IP address as the relying party. Each test has its own
user (the live server keeps users between tests, and other modules sign in as alice without a second factor).
"""
from __future__ import annotations

import re
import time

import pyotp
import pytest
from playwright.sync_api import expect

from tests.fixtures.app import TEST_PASSWORD
from tests.fixtures.browser import BrowserPage

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1400, "height": 900}


@pytest.fixture
def local(chromium, live_server, request):
    """A browser page on http://localhost:<port> (a host name WebAuthn accepts); fails on console errors."""
    url = live_server.url.replace("127.0.0.1", "localhost")
    context = chromium.new_context(viewport=DESKTOP, base_url=url)
    context.set_default_timeout(10_000)
    page = BrowserPage(context.new_page(), url, request.node.name.replace("/", "_"))
    yield page
    context.close()
    assert not page.console_errors, f"console errors: {page.console_errors}"


def fresh_user(live_server, name: str) -> str:
    """A user ``name`` with the test password and no second factor (made, or reset from an earlier test)."""
    from app.auth.services import create_user
    from app.extensions import db
    from app.models import User

    with live_server.app.app_context():
        user = db.session.scalar(db.select(User).filter_by(username=name))
        if user is None:
            create_user(name, TEST_PASSWORD, role="operator")
        else:
            user.totp_secret = user.totp_enabled_at = user.totp_last_step = None
            db.session.commit()
        db.session.remove()
    return name


def virtual_authenticator(page) -> None:
    """Chromium's virtual platform authenticator: resident keys, user verification that always succeeds."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})


def sign_in_with_password(browser, name):
    browser.goto("/login")
    browser.page.fill("input[name=username]", name)
    browser.page.fill("input[name=password]", TEST_PASSWORD)
    browser.page.get_by_role("button", name="Sign in", exact=True).click()


def click_passkey(page, test_id: str) -> None:
    """Clicks a passkey button once passkeys.js has taken its form over (a click before that, right after a
    navigation, posts the form as without JavaScript and lands on "needs JavaScript")."""
    button = page.get_by_test_id(test_id)
    expect(button.locator("xpath=ancestor::form[1]")).to_have_attribute("data-passkey-ready", "true")
    button.click()


def sign_out(browser):
    page = browser.page
    browser.open_menu()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))


def test_authenticator_app_set_up_from_the_shown_key_then_asked_at_sign_in(local, live_server):
    name = fresh_user(live_server, "tina")
    page = local.page
    sign_in_with_password(local, name)
    expect(page.get_by_test_id("user-menu")).to_be_visible()
    local.open_menu()
    page.get_by_test_id("my-account").click()
    expect(page.get_by_role("heading", name="My account")).to_be_visible()
    expect(page.get_by_test_id("totp-status")).to_contain_text("Off")
    local.both_widths("account")

    page.get_by_test_id("totp-start").click()
    expect(page.get_by_test_id("totp-qr")).to_be_visible()
    local.both_widths("enrolment")
    secret = page.get_by_test_id("totp-secret").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)
    page.get_by_label("Code from the app").fill(totp.at(time.time() - 30))  # keep this step for the sign-in
    page.get_by_test_id("confirm-totp").click()
    codes = page.get_by_test_id("recovery-codes").locator("code")
    expect(codes).to_have_count(10)
    expect(page.get_by_text("this is the only time they are shown")).to_be_visible()
    local.both_widths("recovery-codes")
    page.get_by_test_id("codes-saved").click()
    expect(page.get_by_test_id("totp-status")).to_contain_text("On since")
    expect(page.get_by_test_id("recovery-status")).to_contain_text("10 unused codes left")

    sign_out(local)
    sign_in_with_password(local, name)
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    expect(page.get_by_test_id("pending-user")).to_have_text(name)
    local.both_widths("second-step")
    page.get_by_label("Code from your authenticator app").fill("000000" if totp.now() != "000000" else "111111")
    page.get_by_test_id("verify-code").click()
    expect(page.locator(".invalid-feedback")).to_contain_text("not right")
    page.get_by_label("Code from your authenticator app").fill(totp.now())
    page.get_by_test_id("verify-code").click()
    expect(page.get_by_test_id("user-menu")).to_contain_text(name)


def test_passkey_registered_on_my_account_then_used_after_the_password_and_alone(local, live_server):
    name = fresh_user(live_server, "pia")
    page = local.page
    virtual_authenticator(page)
    sign_in_with_password(local, name)
    expect(page.get_by_test_id("user-menu")).to_be_visible()
    local.goto("/account")
    page.get_by_label("Name of the new passkey").fill("Test laptop")
    click_passkey(page, "passkey-add")
    # The first second factor: recovery codes, shown once.
    expect(page.get_by_test_id("recovery-codes").locator("code")).to_have_count(10)
    page.get_by_test_id("codes-saved").click()
    expect(page.get_by_test_id("passkey-name")).to_have_text("Test laptop")
    expect(page.get_by_test_id("passkey-used")).to_have_text("never used")
    local.both_widths("account-with-passkey")

    sign_out(local)
    sign_in_with_password(local, name)
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    expect(page.get_by_test_id("passkey-verify")).to_be_visible()
    local.both_widths("second-step-passkey")
    click_passkey(page, "passkey-verify")
    expect(page.get_by_test_id("user-menu")).to_contain_text(name)

    sign_out(local)
    expect(page.get_by_test_id("passkey-sign-in")).to_be_visible()
    click_passkey(page, "passkey-sign-in")  # no name, no password: the passkey finds its user
    expect(page.get_by_test_id("user-menu")).to_contain_text(name)
    local.goto("/account")
    expect(page.get_by_test_id("passkey-used")).to_contain_text("last used")

    page.get_by_test_id("passkey").get_by_text("Remove", exact=True).click()  # asks first
    page.get_by_test_id("passkey-delete").click()
    expect(page.get_by_test_id("passkey")).to_have_count(0)


def test_a_cancelled_passkey_prompt_says_so_and_keeps_the_form(local, live_server):
    page = local.page
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {  # holds no passkey of ours
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})
    local.goto("/login")
    click_passkey(page, "passkey-sign-in")
    error = page.locator("[data-passkey-error]")
    expect(error).to_be_visible()
    expect(error).to_contain_text("cancelled or timed out")
    expect(page.get_by_test_id("passkey-sign-in")).to_be_enabled()
    expect(page).to_have_url(re.compile(r"/login$"))


def test_a_user_who_must_use_two_factor_sets_it_up_before_the_first_page(local, live_server):
    from app.extensions import db
    from app.models import User

    name = fresh_user(live_server, "rita")
    with live_server.app.app_context():
        db.session.scalar(db.select(User).filter_by(username=name)).require_2fa = True
        db.session.commit()
        db.session.remove()
    page = local.page
    sign_in_with_password(local, name)
    expect(page).to_have_url(re.compile(r"/login/enrol$"))
    expect(page.get_by_text("Two-factor sign-in is required for")).to_be_visible()
    expect(page.get_by_test_id("user-menu")).to_have_count(0)  # no session yet
    local.both_widths("required-enrolment")
    totp = pyotp.TOTP(page.get_by_test_id("totp-secret").inner_text().replace(" ", ""))
    page.get_by_label("Code from the app").fill(totp.now())
    page.get_by_test_id("confirm-totp").click()
    expect(page.get_by_test_id("recovery-codes").locator("code")).to_have_count(10)
    page.get_by_test_id("codes-saved").click()
    expect(page.get_by_test_id("user-menu")).to_contain_text(name)
