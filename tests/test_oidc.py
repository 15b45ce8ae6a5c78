"""Single sign-on through a real OpenID Connect provider on loopback (tests/fixtures/oidc.py): the code flow
with Proxboard's real Authlib client, the browser's redirects followed by hand between the two servers."""
from __future__ import annotations

import logging
import socket
import time
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest

from app.auth.oidc import _create_sso_user, parse_role_map, role_for
from app.models import AuditEntry, User
from tests.fixtures.app import TEST_PASSWORD, csrf_token_from
from tests.fixtures.oidc import PROVIDER_WARNINGS, relative

pytestmark = PROVIDER_WARNINGS
SECRET = "test-client-secret-not-real"
# Creating and finding users by identity runs on both databases (the tests without this mark); what only
# concerns the provider and the pages, on SQLite alone.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def app_overrides(oidc_provider):
    return oidc_provider.config()


def start(client, next_url=None):
    """Press "Sign in with …": the redirect to the provider's sign-in page."""
    response = client.get("/login/oidc" + (f"?{urlencode({'next': next_url})}" if next_url else ""))
    assert response.status_code == 302, response.text
    return response.location


def sso_sign_in(client, provider, sub, *, next_url=None, deny=False):
    """The whole round trip: Proxboard → provider (signed in as ``sub``, or Deny) → Proxboard's callback."""
    back = provider.sign_in(start(client, next_url), sub, deny=deny)
    assert back.startswith("http://localhost/login/oidc/callback?"), back
    return client.get(relative(back))


def signed_in(client) -> bool:
    return client.get("/account/sessions").status_code == 200


def login_message(client, response) -> str:
    """The login page a failed single sign-on ends on (following its redirect), checked to show why."""
    assert response.status_code == 302 and urlsplit(response.location).path == "/login", response.location
    page = client.get(relative(response.location))
    assert page.status_code == 200
    assert 'data-testid="sso-error"' in page.text
    return page.text


def user(db, username) -> User | None:
    db.session.expire_all()
    return db.session.scalar(db.select(User).filter_by(username=username))


def audit(db, action) -> list[AuditEntry]:
    db.session.expire_all()
    return list(db.session.scalars(db.select(AuditEntry).filter_by(action=action).order_by(AuditEntry.id)))


@SQLITE_ONLY
def test_login_page_offers_the_provider_without_asking_it_anything(client, app):
    app.config["OIDC_ISSUER"] = closed_port_url()  # a provider that is down costs the page nothing
    page = client.get("/login?next=/account/sessions")
    assert page.status_code == 200
    assert "Sign in with Example SSO" in page.text
    assert 'href="/login/oidc?next=/account/sessions"' in page.text
    assert 'name="password"' in page.text  # local sign-in stays, under "or with a password"
    assert SECRET not in page.text


def test_first_sign_in_creates_the_user_with_the_mapped_role(client, db, oidc_provider):
    oidc_provider.set_user("sub-olivia", preferred_username="olivia", email="olivia@example.com",
                           groups=["staff", "proxboard-ops"])
    authorize = urlsplit(start(client))
    query = parse_qs(authorize.query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["nonce"][0] and query["state"][0] and query["client_id"] == ["proxboard"]
    assert query["scope"] == ["openid profile email groups"]
    assert SECRET not in authorize.geturl()

    back = oidc_provider.sign_in(urlunsplit(authorize), "sub-olivia")
    response = client.get(relative(back))
    assert response.status_code == 302 and response.location == "/"
    assert signed_in(client)
    olivia = user(db, "olivia")
    assert olivia.role == "operator"
    assert (olivia.oidc_issuer, olivia.oidc_subject) == (oidc_provider.url, "sub-olivia")
    assert olivia.last_login_at is not None
    [created] = audit(db, "user.created")
    assert (created.username, created.target) == ("olivia", "user olivia")
    assert created.detail == {"source": "oidc", "role": "operator"}
    [sign_in] = audit(db, "auth.sign_in")
    assert (sign_in.outcome, sign_in.detail, sign_in.user_id) == ("succeeded", {"method": "oidc"}, olivia.id)
    account = client.get("/account").text  # no password of her own to change here
    assert 'data-testid="sso-password"' in account and 'href="/account/password"' not in account


def test_two_first_sign_ins_of_one_person_at_once_make_one_user(client, app, db, oidc_provider):
    """The other sign-in created the user between this one's lookup and its insert: the unique identity
    turns the second insert into that user, not a 500."""
    oidc_provider.set_user("sub-twin", preferred_username="twin", groups=["proxboard-ops"])
    back = oidc_provider.sign_in(urlunsplit(urlsplit(start(client))), "sub-twin")
    assert client.get(relative(back)).status_code == 302
    first = user(db, "twin")
    with app.test_request_context():
        again = _create_sso_user("twin", "operator", oidc_provider.url, "sub-twin")
        assert again.id == first.id
    assert db.session.scalar(db.select(db.func.count()).select_from(User)
                             .filter_by(oidc_subject="sub-twin")) == 1


def test_every_sign_in_takes_the_role_from_the_groups_now(client, app, db, oidc_provider):
    oidc_provider.set_user("sub-gus", preferred_username="gus", groups=["proxboard-ops"])
    sso_sign_in(client, oidc_provider, "sub-gus")
    assert user(db, "gus").role == "operator"

    oidc_provider.set_user("sub-gus", preferred_username="gus", groups=["proxboard-ops", "proxboard-admins"])
    second = app.test_client()  # another browser, later
    assert sso_sign_in(second, oidc_provider, "sub-gus").status_code == 302
    gus = user(db, "gus")
    assert gus.role == "admin"  # the highest role matched wins
    assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 1  # the same person, not a new user
    [changed] = audit(db, "user.role_changed")
    assert changed.target == "user gus" and changed.detail == {"source": "oidc", "from": "operator", "to": "admin"}

    oidc_provider.set_user("sub-gus", preferred_username="gus", groups="proxboard-viewers")  # one string
    sso_sign_in(app.test_client(), oidc_provider, "sub-gus")
    assert user(db, "gus").role == "viewer"
    assert signed_in(client)  # their earlier session lives on, with the role of today
    assert len(audit(db, "user.role_changed")) == 2


def test_admins_see_that_sso_sets_the_role_and_keeps_the_password(client, db, make, oidc_provider):
    oidc_provider.set_user("sub-sam", preferred_username="sam", groups=["proxboard-ops"])
    client.get(relative(oidc_provider.sign_in(urlunsplit(urlsplit(start(client))), "sub-sam")))
    sam = user(db, "sam")
    client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/account").text)})
    make.user("root-admin")
    client.post("/login", data={"username": "root-admin", "password": TEST_PASSWORD,
                                "csrf_token": csrf_token_from(client.get("/login").text)})
    page = client.get(f"/users/{sam.id}").text
    assert 'data-testid="sso-role-note"' in page and 'data-testid="sso-no-password"' in page
    assert 'data-testid="reset-password"' not in page


def test_a_local_account_is_never_taken_over_by_name(client, db, make, oidc_provider):
    password_hash = make.user("alice", role="admin").password_hash
    oidc_provider.set_user("sub-other-alice", preferred_username="alice", groups=["proxboard-viewers"])
    assert sso_sign_in(client, oidc_provider, "sub-other-alice").status_code == 302
    alice = user(db, "alice")
    assert (alice.role, alice.oidc_subject, alice.password_hash) == ("admin", None, password_hash)
    sso_alice = user(db, "alice-sso")
    assert sso_alice.role == "viewer" and sso_alice.oidc_subject == "sub-other-alice"
    [sign_in] = audit(db, "auth.sign_in")
    assert sign_in.user_id == sso_alice.id


@SQLITE_ONLY
def test_a_person_in_no_mapped_group_is_refused_unless_there_is_a_default_role(client, app, db, oidc_provider):
    oidc_provider.set_user("sub-mia", preferred_username="mia", groups=["marketing"])
    response = sso_sign_in(client, oidc_provider, "sub-mia")
    page = login_message(client, response)
    assert "Your Example SSO account is in no group that may use Proxboard" in page
    assert not signed_in(client) and user(db, "mia") is None
    [refused] = audit(db, "auth.sign_in")
    assert refused.outcome == "refused" and refused.username == "mia"
    assert refused.detail == {"method": "oidc", "reason": "no_role", "groups": ["marketing"]}

    app.config["OIDC_DEFAULT_ROLE"] = "viewer"
    assert sso_sign_in(client, oidc_provider, "sub-mia").location == "/"
    assert user(db, "mia").role == "viewer" and signed_in(client)


@SQLITE_ONLY
def test_a_tampered_or_replayed_state_is_refused(client, app, db, oidc_provider):
    oidc_provider.set_user("sub-tom", preferred_username="tom", groups=["proxboard-admins"])
    back = urlsplit(oidc_provider.sign_in(start(client), "sub-tom"))
    query = parse_qs(back.query)
    tampered = urlencode({"code": query["code"][0], "state": query["state"][0] + "x"})
    page = login_message(client, client.get(f"{back.path}?{tampered}"))
    assert "That sign-in link has expired or was already used" in page
    assert not signed_in(client) and user(db, "tom") is None

    # Someone else's callback (a login CSRF: their code in my browser) is refused the same way.
    back = oidc_provider.sign_in(start(app.test_client()), "sub-tom")
    login_message(client, client.get(relative(back)))
    assert not signed_in(client)

    # The real callback works once; the same link again is refused.
    back = oidc_provider.sign_in(start(client), "sub-tom")
    assert client.get(relative(back)).location == "/"
    replay = app.test_client()
    replay.get(relative(back))
    assert not signed_in(replay)
    reasons = [entry.detail["reason"] for entry in audit(db, "auth.sign_in") if entry.outcome == "failed"]
    assert reasons == ["state_mismatch"] * 3


@SQLITE_ONLY
def test_an_id_token_that_does_not_match_this_sign_in_is_refused(client, db, oidc_provider):
    oidc_provider.set_user("sub-nina", preferred_username="nina", groups=["proxboard-admins"])
    back = oidc_provider.sign_in(start(client), "sub-nina")
    with client.session_transaction() as browser_session:  # the nonce this browser expects is not the token's
        [key] = [key for key in browser_session if key.startswith("_state_oidc_")]
        state = browser_session[key]
        state["data"]["nonce"] = "another-nonce"
        browser_session[key] = state
    page = login_message(client, client.get(relative(back)))
    assert "The answer from Example SSO could not be verified" in page
    assert not signed_in(client) and user(db, "nina") is None
    [failed] = audit(db, "auth.sign_in")
    assert failed.outcome == "failed" and failed.detail == {"method": "oidc", "reason": "invalid_token"}


@SQLITE_ONLY
def test_consent_denied_at_the_provider(client, db, oidc_provider):
    page = login_message(client, sso_sign_in(client, oidc_provider, None, deny=True))
    assert "Sign-in was cancelled at Example SSO." in page
    assert not signed_in(client)
    [failed] = audit(db, "auth.sign_in")
    assert failed.detail == {"method": "oidc", "reason": "denied"}


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@SQLITE_ONLY
def test_a_provider_that_is_down_or_silent_gives_a_clear_message(client, app, db):
    app.config["OIDC_ISSUER"] = closed_port_url()
    response = client.get("/login/oidc")
    page = login_message(client, response)
    assert "Example SSO cannot be reached right now" in page
    assert 'name="password"' in page  # local sign-in still works

    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        app.config.update(OIDC_ISSUER=f"http://127.0.0.1:{silent.getsockname()[1]}", OIDC_TIMEOUT=0.5)
        began = time.monotonic()
        response = client.get("/login/oidc")
        assert time.monotonic() - began < 3
    assert "Example SSO cannot be reached right now" in login_message(client, response)
    assert [entry.detail["reason"] for entry in audit(db, "auth.sign_in")] == ["provider_unreachable"] * 2


@SQLITE_ONLY
def test_a_disabled_user_is_refused(client, app, db, oidc_provider):
    from app.models import utcnow

    oidc_provider.set_user("sub-dan", preferred_username="dan", groups=["proxboard-ops"])
    sso_sign_in(client, oidc_provider, "sub-dan")
    dan = user(db, "dan")
    dan.disabled_at = utcnow()
    db.session.commit()
    browser = app.test_client()
    page = login_message(browser, sso_sign_in(browser, oidc_provider, "sub-dan"))
    assert "This account is disabled" in page
    assert not signed_in(browser)
    assert audit(db, "auth.sign_in")[-1].detail == {"method": "oidc", "reason": "disabled"}


@SQLITE_ONLY
def test_next_is_kept_through_the_provider_when_local(client, oidc_provider):
    oidc_provider.set_user("sub-nora", preferred_username="nora", groups=["proxboard-viewers"])
    assert sso_sign_in(client, oidc_provider, "sub-nora", next_url="/account/sessions").location == \
        "/account/sessions"
    other = client.application.test_client()
    assert sso_sign_in(other, oidc_provider, "sub-nora", next_url="//evil.example/").location == "/"


@SQLITE_ONLY
def test_a_bad_role_map_is_a_clear_refusal_and_a_log_line(client, app, caplog):
    app.config["OIDC_ROLE_MAP"] = "proxboard-admins=root"
    with caplog.at_level(logging.ERROR, logger="app.auth.oidc"):
        page = login_message(client, client.get("/login/oidc"))
    assert "Single sign-on is not set up correctly" in page
    assert "OIDC_ROLE_MAP" in caplog.text and "'root'" in caplog.text


@SQLITE_ONLY
def test_the_client_secret_is_never_logged(client, oidc_provider, caplog):
    oidc_provider.set_user("sub-sam", preferred_username="sam", groups=["proxboard-ops"])
    with caplog.at_level(logging.DEBUG):
        sso_sign_in(client, oidc_provider, "sub-sam")
        client.get("/login/oidc")
    assert caplog.records and SECRET not in caplog.text


@SQLITE_ONLY
def test_local_login_off_hides_the_form_and_refuses_a_password(client, app, db, make):
    make.user("alice", role="admin")
    app.config["LOCAL_LOGIN"] = False
    page = client.get("/login")
    assert 'name="password"' not in page.text and "Sign in with Example SSO" in page.text
    response = client.post("/login", data={"username": "alice", "password": TEST_PASSWORD,
                                           "csrf_token": csrf_token_from(page.text)})
    assert response.status_code == 403
    assert "Password sign-in is turned off. Please sign in with Example SSO." in response.text
    assert not signed_in(client)
    [refused] = audit(db, "auth.sign_in")
    assert (refused.outcome, refused.username) == ("refused", "alice")
    assert refused.detail == {"method": "password", "reason": "local_login_off"}
    passkey = client.post("/login/passkey/options", headers={"X-CSRFToken": csrf_token_from(page.text)})
    assert passkey.status_code == 403 and passkey.json["error"].startswith("Password sign-in is turned off.")

    app.config["OIDC_ISSUER"] = None  # neither way in: the page says where an administrator turns to
    assert "flask users" in client.get("/login").text


@SQLITE_ONLY
def test_a_provider_behind_its_own_ca_needs_its_ca_file(client, app, db, oidc_provider_tls):
    oidc_provider_tls.set_user("sub-tia", preferred_username="tia", groups=["proxboard-admins"])
    app.config.update(oidc_provider_tls.config(OIDC_VERIFY_SSL="true"))
    assert "Example SSO cannot be reached securely" in login_message(client, client.get("/login/oidc"))

    app.config["OIDC_VERIFY_SSL"] = oidc_provider_tls.ca_cert_path
    assert sso_sign_in(client, oidc_provider_tls, "sub-tia").location == "/"
    assert user(db, "tia").role == "admin"


def test_role_map_parsing():
    assert parse_role_map("proxboard-admins=admin, proxboard-ops = Operator\nreaders=viewer") == {
        "proxboard-admins": "admin", "proxboard-ops": "operator", "readers": "viewer"}
    assert parse_role_map({"cn=ops,dc=example": "operator"}) == {"cn=ops,dc=example": "operator"}
    assert parse_role_map(None) == {}
    with pytest.raises(ValueError, match="'ops' is not group=role"):
        parse_role_map("ops")
    assert role_for(["a", "b"], {"a": "viewer", "b": "admin"}, None) == "admin"
    assert role_for(["c"], {"a": "viewer"}, "viewer") == "viewer"
    assert role_for([], {"a": "viewer"}, None) is None


@SQLITE_ONLY
def test_groups_only_in_userinfo_are_read_from_there(client, db, oidc_provider, monkeypatch):
    """Providers such as Authelia keep groups out of the ID token: the userinfo endpoint has them."""
    from oidc_provider_mock import _app as provider_app

    def id_token_claims_without_groups(self, user, scope):
        return {name: value for name, value in original(self, user, scope).items() if name != "groups"}

    original = provider_app.OpenIDCode.generate_user_info
    monkeypatch.setattr(provider_app.OpenIDCode, "generate_user_info", id_token_claims_without_groups)
    oidc_provider.set_user("sub-una", preferred_username="una", groups=["proxboard-ops"])
    assert sso_sign_in(client, oidc_provider, "sub-una").location == "/"
    assert user(db, "una").role == "operator"
