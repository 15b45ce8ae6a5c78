"""Two-factor sign-in with an authenticator app (TOTP) and recovery codes, through the real forms: enrolment on
My account, the second step after the password, codes that work once, the throttle, a required second factor,
and a pending sign-in that opens nothing and expires. Codes are computed with pyotp, as a phone would."""
from __future__ import annotations

import re
import time

import pyotp
import pytest

from app.auth import twofactor
from app.extensions import db as _db
from app.models import AuditEntry, User
from app.models.user import RecoveryCode
from tests.fixtures.app import TEST_PASSWORD, AuthActions, csrf_token_from

STEP = 30


def user_named(name="alice") -> User:
    _db.session.expire_all()
    return _db.session.scalar(_db.select(User).filter_by(username=name))


def audit_actions(name="alice") -> list[tuple[str, str, dict | None]]:
    return [(entry.action, entry.outcome, entry.detail) for entry in
            _db.session.scalars(_db.select(AuditEntry).filter_by(username=name).order_by(AuditEntry.id))]


def post(client, url, data, page=None):
    """POST a form with the CSRF token of ``page`` (default: ``url`` itself)."""
    token = csrf_token_from(client.get(page or url).text)
    return client.post(url, data={**data, "csrf_token": token})


def secret_on(html: str) -> str:
    match = re.search(r'data-testid="totp-secret">([^<]+)</code>', html)
    assert match, "no secret on the page"
    return match.group(1).replace(" ", "")


def codes_on(html: str) -> list[str]:
    return re.findall(r'<li class="col"><code class="[^"]*">([0-9a-z-]+)</code></li>', html)


def signed_in(client) -> bool:
    return client.get("/account").status_code == 200


def enrol(client) -> tuple[pyotp.TOTP, list[str]]:
    """Set up the authenticator app on My account of the signed-in client; the first code is the previous
    step's (still inside the window), so the current step is free for the next sign-in."""
    assert client.post("/account/2fa/totp", data={"csrf_token": csrf_token_from(client.get("/account").text)}
                       ).status_code == 302
    page = client.get("/account/2fa/totp/setup")
    totp = pyotp.TOTP(secret_on(page.text))
    response = post(client, "/account/2fa/totp/setup", {"code": totp.at(time.time() - STEP)})
    assert response.status_code == 200, response.text
    return totp, codes_on(response.text)


def sign_out(client):
    post(client, "/logout", {}, page="/account")


def password_step(app, client, username="alice", next_url=None):
    return AuthActions(client, app).login(username, TEST_PASSWORD, create=False, next_url=next_url)


def second_step(client, code):
    return post(client, "/login/verify", {"code": code})


@pytest.fixture
def enrolled(app, client, logged_in):
    """alice with the authenticator app on, signed out: (TOTP, recovery codes)."""
    totp, codes = enrol(client)
    sign_out(client)
    return totp, codes


def test_enrolment_shows_the_key_then_a_first_code_turns_it_on_and_shows_ten_codes_once(app, client, logged_in):
    account = client.get("/account")
    assert "Authenticator app" in account.text and "Off" in account.text
    post(client, "/account/2fa/totp", {}, page="/account")
    page = client.get("/account/2fa/totp/setup")
    secret = secret_on(page.text)
    assert len(secret) == 32 and 'src="data:image/svg+xml' in page.text
    stored = user_named()
    assert secret.encode() not in bytes(stored.totp_secret)  # encrypted with the credentials vault
    assert stored.totp_enabled_at is None

    wrong = post(client, "/account/2fa/totp/setup", {"code": "000000"})
    assert "That code is not right" in wrong.text and user_named().totp_enabled_at is None

    response = post(client, "/account/2fa/totp/setup", {"code": pyotp.TOTP(secret).now()})
    codes = codes_on(response.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "the only time they are shown" in response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert "download=" in response.text
    stored = _db.session.scalars(_db.select(RecoveryCode.code_hash)).all()
    assert len(stored) == 10 and not any(code in text for code in codes for text in stored)
    account = client.get("/account")
    assert "On since" in account.text and "10 unused codes left" in account.text
    assert not any(code in account.text for code in codes)
    assert ("auth.2fa.totp_enabled", "succeeded", None) in audit_actions()


def test_sign_in_asks_for_a_code_and_each_code_works_once(app, client, enrolled):
    totp, _ = enrolled
    response = password_step(app, client, next_url="/about")
    assert response.headers["Location"] == "/login/verify"
    page = client.get("/login/verify")
    assert "Two-factor sign-in" in page.text and "alice" in page.text
    now = time.time()
    response = second_step(client, totp.at(now))
    assert response.status_code == 302 and response.headers["Location"] == "/about"
    assert signed_in(client)
    assert ("auth.sign_in", "succeeded", {"method": "totp"}) in audit_actions()

    sign_out(client)
    password_step(app, client)
    for replay in (totp.at(now), totp.at(now - STEP)):  # the same step again, or an earlier one
        response = second_step(client, replay)
        assert response.status_code == 200 and "not right, or it was already used" in response.text
        assert not signed_in(client)
    assert audit_actions()[-1] == ("auth.sign_in", "failed", {"method": "totp"})
    response = second_step(client, totp.at(now + STEP))  # the next step is inside the window
    assert response.status_code == 302 and signed_in(client)


def test_a_wrong_code_is_refused_and_changes_nothing(app, client, enrolled):
    totp, _ = enrolled
    password_step(app, client)
    before = user_named().totp_last_step
    for wrong in ("123456" if totp.now() != "123456" else "654321", "12345", "abcdef"):
        response = second_step(client, wrong)
        assert response.status_code == 200 and "not right" in response.text
    assert user_named().totp_last_step == before
    assert twofactor.recovery_codes_left(user_named()) == 10
    assert not signed_in(client)
    assert second_step(client, totp.now()).status_code == 302  # the pending sign-in is still there


def test_a_pending_sign_in_opens_no_page(app, client, enrolled):
    password_step(app, client)
    for path in ("/", "/account", "/account/sessions", "/about", "/account/2fa/totp/setup"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), path
    response = client.post("/account/2fa/recovery-codes",
                           data={"csrf_token": csrf_token_from(client.get("/login/verify").text)})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_a_recovery_code_signs_in_once(app, client, enrolled):
    _, codes = enrolled
    password_step(app, client)
    response = second_step(client, f"  {codes[3].upper().replace('-', ' ')} ")  # as typed from paper
    assert response.status_code == 302 and signed_in(client)
    assert "9 unused codes left" in client.get("/account").text
    assert ("auth.sign_in", "succeeded", {"method": "recovery_code"}) in audit_actions()
    sign_out(client)
    password_step(app, client)
    response = second_step(client, codes[3])
    assert "recovery code is not right, or it was already used" in response.text and not signed_in(client)


def test_second_step_failures_count_in_the_login_throttle(app, client, enrolled):
    totp, _ = enrolled
    password_step(app, client)
    for _ in range(5):
        assert second_step(client, "000000" if totp.now() != "000000" else "111111").status_code == 200
    response = second_step(client, totp.now())
    assert response.status_code == 429 and "Too many failed sign-ins for this account" in response.text
    assert not signed_in(client)
    other = app.test_client()  # the same account from another browser: the password step waits too
    assert password_step(app, other).status_code == 429


def test_the_pending_sign_in_expires_after_five_minutes(app, client, enrolled):
    totp, _ = enrolled
    password_step(app, client)
    step_before = user_named().totp_last_step
    token = csrf_token_from(client.get("/login/verify").text)
    with client.session_transaction() as session:
        state = session["pending_sign_in"]
        session["pending_sign_in"] = {**state, "at": state["at"] - 5 * 60 - 1}
    response = client.post("/login/verify", data={"code": totp.now(), "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert "took too long" in client.get("/login").text
    assert not signed_in(client)
    assert client.get("/login/verify").headers["Location"] == "/login"  # forgotten, not just refused once
    assert user_named().totp_last_step == step_before  # the code was not even looked at


def test_a_required_second_factor_is_set_up_before_the_session_opens(app, client, db):
    from tests.fixtures.factories import make_user

    make_user("alice", role="admin")
    make_user("vera", role="viewer")
    app.config["TWO_FACTOR_REQUIRED"] = "admins"
    assert password_step(app, client, "vera").status_code == 302 and signed_in(client)  # not an admin
    sign_out(client)

    response = password_step(app, client, "alice", next_url="/about")
    assert response.headers["Location"] == "/login/enrol"
    assert client.get("/").headers["Location"].startswith("/login")  # nothing opens meanwhile
    page = client.get("/login/enrol")
    assert "Two-factor sign-in is required" in page.text
    totp = pyotp.TOTP(secret_on(page.text))
    assert "not right" in post(client, "/login/enrol", {"code": "000000" if totp.now() != "000000" else "1"}).text
    assert not signed_in(client)
    response = post(client, "/login/enrol", {"code": totp.now()})
    assert len(codes_on(response.text)) == 10 and 'href="/about"' in response.text
    assert signed_in(client)
    assert ("auth.2fa.totp_enabled", "succeeded", None) in audit_actions()
    assert ("auth.sign_in", "succeeded", {"method": "totp"}) in audit_actions()
    vera = user_named("vera")
    app.config["TWO_FACTOR_REQUIRED"] = "Everyone"
    assert twofactor.second_factor_required(vera)
    app.config["TWO_FACTOR_REQUIRED"] = "admin"  # a typo fails closed
    assert twofactor.second_factor_required(vera)
    app.config["TWO_FACTOR_REQUIRED"] = "none"
    assert not twofactor.second_factor_required(vera)


def test_the_per_user_flag_requires_it_too_and_it_cannot_be_turned_off_then(app, client, logged_in):
    user = user_named()
    user.require_2fa = True
    _db.session.commit()
    sign_out(client)
    assert password_step(app, client).headers["Location"] == "/login/enrol"
    totp = pyotp.TOTP(secret_on(client.get("/login/enrol").text))
    post(client, "/login/enrol", {"code": totp.at(time.time() - STEP)})
    assert signed_in(client)
    response = post(client, "/account/2fa/totp/disable", {"current_password": TEST_PASSWORD})
    assert response.status_code == 302
    assert "required for your account" in client.get("/account").text
    assert twofactor.totp_enabled(user_named())


def test_turning_it_off_needs_the_password_or_a_code(app, client, logged_in):
    totp, codes = enrol(client)
    response = post(client, "/account/2fa/totp/disable", {"current_password": "not my password"})
    assert "Enter your current password or a code" in response.text and twofactor.totp_enabled(user_named())
    response = post(client, "/account/2fa/totp/disable", {})
    assert "Enter your current password or a code." in response.text
    response = post(client, "/account/2fa/totp/disable", {"code": totp.now()})
    assert response.status_code == 302 and not twofactor.totp_enabled(user_named())
    assert user_named().totp_secret is None and twofactor.recovery_codes_left(user_named()) == 0
    assert ("auth.2fa.totp_disabled", "succeeded", None) in audit_actions()
    sign_out(client)
    assert password_step(app, client).status_code == 302 and signed_in(client)  # straight in again


def test_new_recovery_codes_replace_the_old_ones(app, client, logged_in):
    _, old = enrol(client)
    response = post(client, "/account/2fa/recovery-codes", {}, page="/account")
    new = codes_on(response.text)
    assert len(new) == 10 and not set(new) & set(old)
    assert ("auth.2fa.recovery_codes_regenerated", "succeeded", None) in audit_actions()
    sign_out(client)
    password_step(app, client)
    assert "already used" in second_step(client, old[0]).text
    assert second_step(client, new[0]).status_code == 302


def test_two_requests_racing_with_one_code_cannot_both_win(app, logged_in, client):
    totp, _ = enrol(client)
    user = user_named()
    code = totp.now()
    assert twofactor.verify_totp(user, code) is True
    assert twofactor.verify_totp(user_named(), code) is False  # a second request read the row before the first wrote


def test_the_account_page_links_the_users_own_pages(app, client, logged_in):
    page = client.get("/account")
    for path in ("/account/password", "/account/sessions"):
        assert f'href="{path}"' in page.text
    assert ('href="/account/tokens"' in page.text) == ("auth.tokens" in app.view_functions)
    assert 'href="/account"' in client.get("/").text  # in the user menu
