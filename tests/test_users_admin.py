"""The Users page (admins only): list, create, disable and enable, delete, set the role, reset the password or the
second factor, require a second factor; each change audited; the last active admin and one's own account guarded.

Through the real login form with CSRF on; ``alice`` (the first user, so an admin) is the one signed in.
"""
from __future__ import annotations

import re
import threading
import time

import pytest

from app.auth.tokens import create_token
from app.extensions import db as _db
from app.models import ApiToken, AuditEntry, Passkey, RecoveryCode, User, utcnow
from app.models.user import LoginAttempt, UserSession
from app.users import services
from tests.fixtures.app import TEST_PASSWORD, AuthActions, FormPoster, csrf_token_from


@pytest.fixture
def admin(logged_in, client) -> FormPoster:
    return FormPoster(client, "/users/")


def user_named(name: str) -> User | None:
    _db.session.expire_all()
    return _db.session.scalar(_db.select(User).filter_by(username=name))


def audit_entries(action: str | None = None) -> list[AuditEntry]:
    _db.session.expire_all()
    query = _db.select(AuditEntry).order_by(AuditEntry.id)
    if action is not None:
        query = query.filter_by(action=action)
    return list(_db.session.scalars(query))


# What app.users.services records. The audit hook gives a form that failed before them the same name
# (app.audit.naming.ACTIONS), with the request's method and path in its detail.
SERVICE_ACTIONS = {"user.created", "user.disabled", "user.enabled", "user.deleted", "user.role_changed",
                   "user.password_reset", "user.2fa_required", "user.2fa_not_required", "user.2fa_reset"}


def user_changes() -> list[tuple[str, str, str | None]]:
    """(action, outcome, target) of every audit entry the users services wrote, oldest first."""
    return [(e.action, e.outcome, e.target) for e in audit_entries()
            if e.action in SERVICE_ACTIONS and "path" not in (e.detail or {})]


def signed_in_client(app, name: str, password: str = TEST_PASSWORD):
    """Another browser, signed in as ``name``."""
    other = app.test_client()
    response = AuthActions(other, app).login(name, password, create=False)
    assert response.status_code == 302 and response.headers["Location"] == "/", response.text
    return other


def sign_in_answer(app, name: str, password: str) -> str:
    """The login form's answer in a fresh browser (the page after a redirect when it succeeds)."""
    other = app.test_client()
    return AuthActions(other, app).login(name, password, create=False).text


def row_of(page: str, name: str) -> str:
    match = re.search(rf'<tr data-testid="user-row" data-username="{re.escape(name)}".*?</tr>', page, re.S)
    assert match, f"no row for {name}"
    return match.group(0)


def flash_text(page: str) -> str:
    return " ".join(re.findall(r'<div class="toast-body">(.*?)</div>', page, re.S))


def test_the_list_shows_role_second_factor_source_last_sign_in_state_and_sessions(app, admin, make, db):
    bob = make.user("bob", role="operator")
    signed_in_client(app, "bob")
    signed_in_client(app, "bob")
    bob = user_named("bob")
    bob.totp_enabled_at = utcnow()
    bob.require_2fa = True
    db.session.add_all([Passkey(user_id=bob.id, name=f"key {i}", credential_id=bytes([i]), public_key=b"k")
                        for i in range(2)])
    carol = make.user("carol", role="viewer")
    carol.disabled_at = utcnow()
    carol.oidc_issuer, carol.oidc_subject = "https://id.example", "sub-1"
    db.session.commit()

    page = admin.get("/users/").text
    assert [name for name in re.findall(r'data-username="([^"]+)"', page)] == ["alice", "bob", "carol"]
    bob_row = row_of(page, "bob")
    assert ">operator<" in bob_row and "TOTP" in bob_row and "2 passkeys" in bob_row and ">required<" in bob_row
    assert re.search(r'data-testid="sessions">2<', bob_row) and "just now" in bob_row and ">local<" in bob_row
    carol_row = row_of(page, "carol")
    assert "disabled" in carol_row and ">SSO<" in carol_row and ">never<" in carol_row and ">none<" in carol_row
    assert re.search(r'data-testid="sessions">0<', carol_row)
    alice_row = row_of(page, "alice")
    assert ">admin<" in alice_row and ">you<" in alice_row and ">active<" in alice_row


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_see_and_use_the_users_page(app, client, make, role, db):
    make.user("root", role="admin")
    make.user("someone", role=role)
    make.user("bob", role="viewer")
    browser = signed_in_client(app, "someone")
    assert 'href="/users/"' not in browser.get("/about").text
    assert browser.get("/users/").status_code == 403
    bob_id = user_named("bob").id
    token = csrf_token_from(browser.get("/about").text)
    assert browser.post(f"/users/{bob_id}/disable", data={"csrf_token": token}).status_code == 403
    assert browser.post("/users/new", data={"csrf_token": token, "username": "mallory", "role": "admin",
                                            "password": "long enough pw"}).status_code == 403
    assert user_named("bob").is_active and user_named("mallory") is None
    admin = signed_in_client(app, "root")
    assert 'href="/users/"' in admin.get("/about").text and admin.get("/users/").status_code == 200


def test_admin_creates_a_user_with_a_typed_password(app, admin):
    response = admin.post("/users/new", data={"username": "  bob  ", "role": "operator", "password": "bobs password"},
                          follow_redirects=True)
    assert "User bob created." in flash_text(response.text)
    bob = user_named("bob")
    assert bob.role == "operator" and bob.check_password("bobs password")
    assert response.request.path == f"/users/{bob.id}"
    signed_in_client(app, "bob", "bobs password")
    [entry] = audit_entries("user.created")
    assert (entry.username, entry.channel, entry.target, entry.detail) == ("alice", "web", "user bob", {"role": "operator"})


def test_a_generated_password_is_shown_once_and_works(app, admin, client):
    response = admin.post("/users/new", data={"username": "bob", "role": "viewer", "password": ""})
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    password = re.search(r'data-testid="password"', response.text) and re.search(
        r'id="new-password" type="text" value="([^"]+)"', response.text).group(1)
    assert len(password) >= 16
    assert password not in client.get_cookie("session").value  # not in a flash message of the readable cookie
    assert password not in admin.get(f"/users/{user_named('bob').id}").text  # gone on the next page
    signed_in_client(app, "bob", password)
    assert all(password not in str(entry.detail) for entry in audit_entries())


BAD_INPUT = [
    ({"username": "   "}, "Username must not be empty."),
    ({"username": "alice"}, "User &#39;alice&#39; already exists."),
    ({"username": "x" * 81}, "At most 80 characters."),
    ({"username": "bob", "role": "root"}, "Choose one of the roles: viewer, operator, admin."),
    ({"username": "bob", "password": "short"}, "Password must be at least 8 characters."),
    ({"username": "/../../x"}, "Usernames use letters, digits and . _ @ - and start with a letter or a digit."),
    ({"username": "jane doe"}, "Usernames use letters, digits and . _ @ -"),
    ({"username": "<b>x</b>"}, "Usernames use letters, digits and . _ @ -"),
]


def test_bad_input_when_creating_says_why_and_changes_nothing(app, admin):
    for data, message in BAD_INPUT:
        response = admin.post("/users/new", data={"role": "viewer", "password": "", **data})
        assert response.status_code == 200 and message in response.text and "is-invalid" in response.text, data
    response = admin.post("/users/new", data={"username": "bob\u0007bell", "role": "viewer"})
    assert response.status_code == 400 and "contains control characters" in response.text  # app.input_guard
    assert [u.username for u in _db.session.scalars(_db.select(User))] == ["alice"]
    assert user_changes() == []


def test_a_disabled_user_is_signed_out_at_once_and_cannot_sign_in_until_enabled(app, admin, make):
    bob = make.user("bob", role="operator")
    bob_browser = signed_in_client(app, "bob")
    assert bob_browser.get("/about").status_code == 200
    _, secret = create_token(bob, "nightly script")
    script = {"Authorization": f"Bearer {secret}"}
    assert app.test_client().get("/about", headers=script).status_code == 200

    response = admin.post(f"/users/{bob.id}/disable", follow_redirects=True)
    assert "bob is disabled; 1 session ended." in flash_text(response.text)
    assert bob_browser.get("/about").status_code == 302  # the open session stopped working at once
    assert app.test_client().get("/about", headers=script).status_code == 401  # and so did the token
    assert "Invalid username or password." in sign_in_answer(app, "bob", TEST_PASSWORD)  # same as a wrong password
    assert "Invalid username or password." in sign_in_answer(app, "bob", "wrong password")
    attempts = _db.session.scalars(_db.select(LoginAttempt).filter_by(username="bob").order_by(LoginAttempt.id))
    assert [a.outcome for a in attempts] == ["succeeded", "failed", "failed"]
    assert [e.outcome for e in audit_entries("auth.sign_in") if e.username == "bob"] == ["succeeded", "failed", "failed"]
    assert "disabled" in row_of(admin.get("/users/").text, "bob")

    response = admin.post(f"/users/{bob.id}/enable", follow_redirects=True)
    assert "bob may sign in again." in flash_text(response.text)
    signed_in_client(app, "bob")
    assert app.test_client().get("/about", headers=script).status_code == 200
    assert user_changes() == [("user.disabled", "succeeded", "user bob"), ("user.enabled", "succeeded", "user bob")]
    assert audit_entries("user.disabled")[0].detail == {"sessions_ended": 1}


def test_a_session_of_a_user_disabled_behind_the_pages_back_is_refused(app, make, db):
    """A session row that outlived the disabling (made in the same instant) still signs no one in."""
    make.user("root", role="admin")
    bob = make.user("bob", role="viewer")
    bob_browser = signed_in_client(app, "bob")
    bob.disabled_at = utcnow()  # the row of the session stays
    db.session.commit()
    assert bob_browser.get("/about").status_code == 302


def test_delete_asks_first_then_removes_the_account_and_its_sessions(app, admin, make, db):
    bob = make.user("bob", role="viewer")
    bob_id = bob.id
    signed_in_client(app, "bob")
    db.session.add(RecoveryCode(user_id=bob_id, code_hash="x"))
    db.session.commit()
    _, secret = create_token(bob, "nightly script")

    confirm = admin.get(f"/users/{bob_id}/delete")
    assert confirm.status_code == 200 and "Delete bob?" in confirm.text and "1 session ends now" in confirm.text
    assert user_named("bob") is not None  # asking changes nothing
    response = admin.post(f"/users/{bob_id}/delete", follow_redirects=True)
    assert response.request.path == "/users/" and "User bob deleted." in flash_text(response.text)
    assert user_named("bob") is None
    assert db.session.scalar(db.select(db.func.count()).select_from(UserSession).filter_by(user_id=bob_id)) == 0
    assert db.session.scalar(db.select(db.func.count()).select_from(RecoveryCode)) == 0
    assert db.session.scalar(db.select(db.func.count()).select_from(ApiToken)) == 0
    assert app.test_client().get("/about", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    [entry] = audit_entries("user.deleted")
    assert (entry.username, entry.target, entry.detail) == ("alice", "user bob", {"role": "viewer"})
    [bobs_sign_in] = [e for e in audit_entries("auth.sign_in") if e.username == "bob"]
    assert bobs_sign_in.user_id is None  # the log keeps the name of a deleted user


def test_nobody_deletes_or_disables_themselves(app, admin):
    alice = user_named("alice")
    page = admin.get(f"/users/{alice.id}").text
    assert 'data-testid="delete"' not in page and 'data-testid="disable"' not in page
    response = admin.post(f"/users/{alice.id}/delete", follow_redirects=True)
    assert "You cannot delete your own account." in flash_text(response.text)
    response = admin.post(f"/users/{alice.id}/disable", follow_redirects=True)
    assert "You cannot disable your own account." in flash_text(response.text)
    assert user_named("alice").is_active
    assert user_changes() == [("user.deleted", "refused", "user alice"), ("user.disabled", "refused", "user alice")]


def test_set_role_records_from_and_to(app, admin, make):
    bob = make.user("bob", role="viewer")
    response = admin.post(f"/users/{bob.id}/role", data={"role": "operator"}, follow_redirects=True)
    assert "bob is now operator (was viewer)." in flash_text(response.text)
    assert user_named("bob").role == "operator"
    [entry] = audit_entries("user.role_changed")
    assert (entry.target, entry.detail, entry.outcome) == ("user bob", {"from": "viewer", "to": "operator"}, "succeeded")
    response = admin.post(f"/users/{bob.id}/role", data={"role": "root"}, follow_redirects=True)
    assert "Choose one of the roles: viewer, operator, admin." in flash_text(response.text)
    assert user_named("bob").role == "operator"
    changed, refused_form = audit_entries("user.role_changed")  # the failed form, under the same name
    assert changed is entry and (refused_form.outcome, refused_form.target) == ("failed", "user bob")


def test_the_last_active_admin_keeps_the_role_and_demoting_oneself_asks_first(app, admin, make, db):
    alice_id = user_named("alice").id
    retired = make.user("retired", role="admin")
    retired.disabled_at = utcnow()  # a disabled admin does not count
    db.session.commit()
    response = admin.post(f"/users/{alice_id}/role", data={"role": "viewer"}, follow_redirects=True)
    assert "alice is the last active admin: make someone else admin first." in flash_text(response.text)
    assert user_named("alice").role == "admin"
    assert user_changes() == [("user.role_changed", "refused", "user alice")]

    response = admin.get(f"/users/{alice_id}/role?role=viewer", follow_redirects=True)
    assert "alice is the last active admin" in flash_text(response.text)  # said before anything is sent

    make.user("bob", role="admin")
    own_page = admin.get(f"/users/{alice_id}").text
    assert re.search(rf'<form method="get" action="/users/{alice_id}/role"', own_page)  # one's own role: asked first
    page = admin.get(f"/users/{alice_id}/role?role=viewer")
    assert page.status_code == 200 and "Make yourself viewer?" in page.text and "this page included" in page.text
    assert "Make yourself viewer?" in admin.post(f"/users/{alice_id}/role", data={"role": "viewer"}).text  # unconfirmed
    assert user_named("alice").role == "admin"  # not before the confirmation
    assert user_changes() == [("user.role_changed", "refused", "user alice")]  # asking is not a change
    response = admin.post(f"/users/{alice_id}/role", data={"role": "viewer", "confirm": "y"})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert user_named("alice").role == "viewer" and admin.get("/users/").status_code == 403


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_admins_demoting_each_other_at_the_same_moment_leave_one_admin(app, make, db):
    """The first demotion holds every active admin's row until it commits; the second then counts again."""
    alice, bob = make.user("alice", role="admin"), make.user("bob", role="admin")
    outcome = {}

    def demote_bob():
        with app.app_context():
            try:
                services.set_role(services.find_user("bob"), "viewer", confirmed=True)
                outcome["bob"] = "demoted"
            except services.UserRefused as exc:
                outcome["bob"] = str(exc)
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below, not lost in the thread
                outcome["bob"] = repr(exc)
            finally:
                db.session.remove()

    assert not services.is_last_active_admin(alice)  # alice's demotion, between its check and its commit
    other = threading.Thread(target=demote_bob)
    other.start()
    time.sleep(0.5)
    assert other.is_alive() and outcome == {}  # waiting for alice's demotion to commit
    alice.role = "viewer"
    db.session.commit()
    other.join(10)
    assert outcome == {"bob": "bob is the last active admin: make someone else admin first."}
    assert (user_named("alice").role, user_named("bob").role) == ("viewer", "admin")


def test_reset_password_shows_a_new_one_once_and_ends_their_sessions(app, admin, make):
    bob = make.user("bob", role="viewer")
    bob_browser = signed_in_client(app, "bob")
    assert "Reset the password of bob?" in admin.get(f"/users/{bob.id}/reset-password").text
    assert user_named("bob").check_password(TEST_PASSWORD)
    response = admin.post(f"/users/{bob.id}/reset-password")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    password = re.search(r'id="new-password" type="text" value="([^"]+)"', response.text).group(1)
    assert bob_browser.get("/about").status_code == 302
    assert "Invalid username or password." in sign_in_answer(app, "bob", TEST_PASSWORD)
    signed_in_client(app, "bob", password)
    [entry] = audit_entries("user.password_reset")
    assert entry.detail == {"sessions_ended": 1} and password not in str(entry.detail)
    # one's own password is changed where the current one is asked
    alice = user_named("alice")
    assert admin.post(f"/users/{alice.id}/reset-password").headers["Location"] == "/account/password"
    assert user_named("alice").check_password(TEST_PASSWORD)


def test_require_2fa_and_reset_2fa(app, admin, make, db):
    bob = make.user("bob", role="operator")
    bob.totp_secret, bob.totp_enabled_at, bob.totp_last_step = b"secret", utcnow(), 7
    db.session.add_all([RecoveryCode(user_id=bob.id, code_hash=f"h{i}") for i in range(3)]
                       + [Passkey(user_id=bob.id, name="yubikey", credential_id=b"c", public_key=b"k")])
    db.session.commit()
    response = admin.post(f"/users/{bob.id}/require-2fa", data={"required": "on"}, follow_redirects=True)
    assert "bob must use a second factor to sign in." in flash_text(response.text)
    assert user_named("bob").require_2fa

    confirm = admin.get(f"/users/{bob.id}/reset-2fa").text
    assert "Reset the second factor of bob?" in confirm and "1 passkey" in confirm
    response = admin.post(f"/users/{bob.id}/reset-2fa", follow_redirects=True)
    assert "authenticator app, 3 recovery codes and 1 passkeys removed" in flash_text(response.text)
    bob = user_named("bob")
    assert (bob.totp_secret, bob.totp_enabled_at, bob.totp_last_step) == (None, None, None)
    assert db.session.scalar(db.select(db.func.count()).select_from(RecoveryCode)) == 0
    assert db.session.scalar(db.select(db.func.count()).select_from(Passkey)) == 0
    assert bob.require_2fa and bob.check_password(TEST_PASSWORD)  # they enrol again; the password stays

    admin.post(f"/users/{bob.id}/require-2fa", data={"required": "off"})
    assert not user_named("bob").require_2fa
    assert [(a, o) for a, o, _ in user_changes()] == [
        ("user.2fa_required", "succeeded"), ("user.2fa_reset", "succeeded"), ("user.2fa_not_required", "succeeded")]
    assert audit_entries("user.2fa_reset")[0].detail == {"totp": True, "recovery_codes": 3, "passkeys": 1}


def test_a_post_without_csrf_token_changes_nothing(app, admin, client, make):
    bob = make.user("bob", role="viewer")
    assert client.post(f"/users/{bob.id}/disable").status_code == 400
    assert client.post(f"/users/{bob.id}/delete", data={"csrf_token": "forged"}).status_code == 400
    assert user_named("bob").is_active and user_changes() == []


def test_an_unknown_user_is_a_404(admin):
    assert admin.get("/users/999").status_code == 404
    assert admin.post("/users/999/disable").status_code == 404
