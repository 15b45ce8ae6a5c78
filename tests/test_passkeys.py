"""Passkeys through the real forms and the real py_webauthn checks, answered by a small software authenticator
(ES256 keys from ``cryptography``, "none" attestation, as a platform authenticator sends): registration on My
account, the second step after the password, signing in with a passkey alone, and what must be refused
(replayed answers, another origin, another user's passkey, no user verification, a disabled user).
The browser side (navigator.credentials with Chromium's virtual authenticator) is in test_twofactor_browser.py."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from app import create_app
from app.extensions import db as _db
from app.models import AuditEntry, User, utcnow
from app.models.user import Passkey, RecoveryCode
from tests.fixtures.app import TEST_PASSWORD, AuthActions, IsolatedClient, app_config, csrf_token_from
from tests.fixtures.factories import make_user

ORIGIN = "http://localhost"  # the test client's host


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    """One discoverable ES256 credential, answering WebAuthn options as a browser would hand them over."""

    def __init__(self, rp_id="localhost", origin=ORIGIN, user_verified=True):
        self.rp_id, self.origin, self.user_verified = rp_id, origin, user_verified
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0
        self.user_handle: bytes | None = None

    def _auth_data(self, attested: bool) -> bytes:
        flags = 0x01 | (0x04 if self.user_verified else 0) | (0x40 if attested else 0)
        data = hashlib.sha256(self.rp_id.encode()).digest() + bytes([flags]) + self.sign_count.to_bytes(4, "big")
        if attested:
            numbers = self.key.public_key().public_numbers()
            cose = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                                -3: numbers.y.to_bytes(32, "big")})
            data += bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id + cose
        return data

    def _client_data(self, kind: str, challenge: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": self.origin,
                           "crossOrigin": False}).encode()

    def create(self, options: dict) -> str:
        self.user_handle = unb64(options["user"]["id"])
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": self._auth_data(True)})
        return json.dumps({
            "id": b64(self.credential_id), "rawId": b64(self.credential_id), "type": "public-key",
            "response": {"clientDataJSON": b64(self._client_data("webauthn.create", options["challenge"])),
                         "attestationObject": b64(attestation), "transports": ["internal"]},
            "clientExtensionResults": {}, "authenticatorAttachment": "platform"})

    def get(self, options: dict) -> str:
        self.sign_count += 1
        auth_data = self._auth_data(False)
        client_data = self._client_data("webauthn.get", options["challenge"])
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return json.dumps({
            "id": b64(self.credential_id), "rawId": b64(self.credential_id), "type": "public-key",
            "response": {"clientDataJSON": b64(client_data), "authenticatorData": b64(auth_data),
                         "signature": b64(signature), "userHandle": b64(self.user_handle or b"")},
            "clientExtensionResults": {}, "authenticatorAttachment": "platform"})


def token(client, page="/account") -> str:
    return csrf_token_from(client.get(page).text)


def options(client, url, page) -> dict:
    response = client.post(url, headers={"X-CSRFToken": token(client, page)})
    assert response.status_code == 200 and response.mimetype == "application/json", response.text
    return response.get_json()


def register(client, authenticator, name="Laptop"):
    created = authenticator.create(options(client, "/account/passkeys/options", "/account"))
    return client.post("/account/passkeys", data={"name": name, "credential": created, "csrf_token": token(client)})


def audit_actions(name="alice"):
    _db.session.expire_all()
    return [(entry.action, entry.outcome, entry.target, entry.detail) for entry in
            _db.session.scalars(_db.select(AuditEntry).filter_by(username=name).order_by(AuditEntry.id))]


def signed_in(client) -> bool:
    return client.get("/account").status_code == 200


def sign_out(client):
    client.post("/logout", data={"csrf_token": token(client)})


def password_step(app, client, username="alice"):
    return AuthActions(client, app).login(username, TEST_PASSWORD, create=False)


def second_step_with(client, authenticator):
    answer = authenticator.get(options(client, "/login/verify/passkey/options", "/login/verify"))
    return client.post("/login/verify/passkey", data={"credential": answer, "csrf_token": token(client, "/login/verify")})


def alone_with(client, authenticator):
    answer = authenticator.get(options(client, "/login/passkey/options", "/login"))
    return client.post("/login/passkey", data={"credential": answer, "csrf_token": token(client, "/login")})


@pytest.fixture
def registered(app, client, logged_in):
    """alice with one passkey ("Laptop"), signed out: its authenticator."""
    authenticator = SoftAuthenticator()
    assert register(client, authenticator).status_code == 200
    sign_out(client)
    return authenticator


def test_registering_a_passkey_lists_it_and_hands_out_recovery_codes_once(app, client, logged_in):
    authenticator = SoftAuthenticator()
    offered = options(client, "/account/passkeys/options", "/account")
    assert offered["rp"] == {"id": "localhost", "name": "Proxboard"}
    assert len(unb64(offered["user"]["id"])) == 32 and offered["user"]["name"] == "alice"
    assert offered["authenticatorSelection"]["residentKey"] == "preferred"
    created = authenticator.create(offered)
    response = client.post("/account/passkeys", data={"name": " Laptop ", "credential": created,
                                                      "csrf_token": token(client)})
    assert response.status_code == 200 and "the only time they are shown" in response.text  # first second factor
    assert _db.session.scalar(_db.select(_db.func.count()).select_from(RecoveryCode)) == 10
    page = client.get("/account")
    assert 'data-testid="passkey-name">Laptop<' in page.text and "never used" in page.text
    assert ("auth.2fa.passkey_added", "succeeded", "Laptop", None) in audit_actions()

    # The same answer again: its challenge was used up, nothing is added.
    again = client.post("/account/passkeys", data={"name": "Copy", "credential": created, "csrf_token": token(client)})
    assert again.status_code == 302
    assert "The passkey request expired" in client.get("/account").text
    assert _db.session.scalar(_db.select(_db.func.count()).select_from(Passkey)) == 1
    # Registered passkeys are excluded from the next registration (the browser says "already registered").
    excluded = options(client, "/account/passkeys/options", "/account")["excludeCredentials"]
    assert [item["id"] for item in excluded] == [b64(authenticator.credential_id)]
    assert register(client, SoftAuthenticator(), name="").status_code == 302  # second: no new codes
    assert "Passkey 2" in client.get("/account").text


def test_a_passkey_from_another_origin_or_without_javascript_is_refused(app, client, logged_in):
    response = register(client, SoftAuthenticator(origin="https://evil.example"))
    assert response.status_code == 302
    assert "could not be verified" in client.get("/account").text
    response = client.post("/account/passkeys", data={"name": "x", "credential": "", "csrf_token": token(client)})
    assert "needs JavaScript" in client.get("/account").text
    assert _db.session.scalar(_db.select(_db.func.count()).select_from(Passkey)) == 0


def test_a_passkey_is_the_second_step_after_the_password(app, client, registered):
    assert password_step(app, client).headers["Location"] == "/login/verify"
    page = client.get("/login/verify")
    assert "Use a passkey" in page.text and 'data-options-url="/login/verify/passkey/options"' in page.text
    offered = options(client, "/login/verify/passkey/options", "/login/verify")
    assert [item["id"] for item in offered["allowCredentials"]] == [b64(registered.credential_id)]
    assert not signed_in(client)
    response = client.post("/login/verify/passkey",
                           data={"credential": registered.get(offered), "csrf_token": token(client, "/login/verify")})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert signed_in(client)
    passkey = _db.session.scalar(_db.select(Passkey))
    assert passkey.sign_count == 1 and passkey.last_used_at is not None
    assert "last used" in client.get("/account").text
    assert audit_actions()[-1][:2] == ("auth.sign_in", "succeeded")
    assert audit_actions()[-1][3] == {"method": "passkey"}


def test_a_replayed_or_foreign_passkey_answer_does_not_sign_in(app, client, registered):
    password_step(app, client)
    offered = options(client, "/login/verify/passkey/options", "/login/verify")
    answer = registered.get(offered)
    client.post("/login/verify/passkey", data={"credential": answer, "csrf_token": token(client, "/login/verify")})
    sign_out(client)
    password_step(app, client)
    options(client, "/login/verify/passkey/options", "/login/verify")  # a fresh challenge, the old answer
    response = client.post("/login/verify/passkey",
                           data={"credential": answer, "csrf_token": token(client, "/login/verify")})
    assert response.headers["Location"] == "/login/verify" and not signed_in(client)
    assert "could not be verified" in client.get("/login/verify").text
    assert audit_actions()[-1][:2] == ("auth.sign_in", "failed") and audit_actions()[-1][3] == {"method": "passkey"}

    make_user("bob", role="viewer")
    bob = app.test_client()
    password_step(app, bob, "bob")  # bob has no second factor: signed in
    stranger = SoftAuthenticator()
    assert register(bob, stranger).status_code == 200
    # alice's pending sign-in answered with bob's passkey
    response = second_step_with(client, stranger)
    assert response.headers["Location"] == "/login/verify" and not signed_in(client)
    assert "not registered for this account" in client.get("/login/verify").text


def test_a_passkey_alone_signs_in_when_it_verified_the_user(app, client, registered):
    offered = options(client, "/login/passkey/options", "/login")
    assert offered["allowCredentials"] == [] and offered["userVerification"] == "required"
    response = client.post("/login/passkey", data={"credential": registered.get(offered),
                                                   "csrf_token": token(client, "/login")})
    assert response.status_code == 302 and response.headers["Location"] == "/" and signed_in(client)
    assert _db.session.scalar(_db.select(User).filter_by(username="alice")).last_login_at is not None
    sign_out(client)

    registered.user_verified = False  # presence only: one factor, not enough alone
    response = alone_with(client, registered)
    assert response.headers["Location"].startswith("/login") and not signed_in(client)
    assert "could not be verified" in client.get("/login").text
    assert ("auth.sign_in", "failed", None, {"method": "passkey"}) in [
        (a, o, t, d) for a, o, t, d in _db_failed_anonymous()]

    registered.user_verified = True
    unknown = SoftAuthenticator()
    unknown.user_handle = registered.user_handle
    alone_with(client, unknown)
    assert "not registered with Proxboard" in client.get("/login").text and not signed_in(client)

    user = _db.session.scalar(_db.select(User).filter_by(username="alice"))
    user.disabled_at = utcnow()
    _db.session.commit()
    alone_with(client, registered)
    assert "disabled" in client.get("/login").text and not signed_in(client)


def _db_failed_anonymous():
    _db.session.expire_all()
    return [(entry.action, entry.outcome, entry.target, entry.detail) for entry in
            _db.session.scalars(_db.select(AuditEntry).filter_by(outcome="failed").order_by(AuditEntry.id))]


def test_a_passkey_alone_without_javascript_says_so(app, client):
    response = client.post("/login/passkey", data={"credential": "", "csrf_token": token(client, "/login")})
    assert response.status_code == 302
    assert "needs JavaScript" in client.get("/login").text


def test_renaming_and_removing_passkeys(app, client, logged_in):
    authenticator = SoftAuthenticator()
    register(client, authenticator)
    passkey_id = _db.session.scalar(_db.select(Passkey.id))
    client.post(f"/account/passkeys/{passkey_id}/rename", data={"name": "Phone", "csrf_token": token(client)})
    assert 'data-testid="passkey-name">Phone<' in client.get("/account").text
    response = client.post(f"/account/passkeys/{passkey_id}/rename", data={"name": "", "csrf_token": token(client)})
    assert "Give the passkey a name." in client.get("/account").text

    make_user("bob", role="viewer")
    bob = app.test_client()
    password_step(app, bob, "bob")
    assert bob.post(f"/account/passkeys/{passkey_id}/delete", data={"csrf_token": token(bob)}).status_code == 404
    assert bob.post(f"/account/passkeys/{passkey_id}/rename",
                    data={"name": "mine", "csrf_token": token(bob)}).status_code == 404

    user = _db.session.scalar(_db.select(User).filter_by(username="alice"))
    user.require_2fa = True
    _db.session.commit()
    client.post(f"/account/passkeys/{passkey_id}/delete", data={"csrf_token": token(client)})
    assert "required for your account" in client.get("/account").text
    user.require_2fa = False
    _db.session.commit()
    client.post(f"/account/passkeys/{passkey_id}/delete", data={"csrf_token": token(client)})
    assert "Passkey “Phone” removed." in client.get("/account").text
    assert _db.session.scalar(_db.select(_db.func.count()).select_from(Passkey)) == 0
    assert _db.session.scalar(_db.select(_db.func.count()).select_from(RecoveryCode)) == 0  # no factor left
    assert ("auth.2fa.passkey_removed", "succeeded", "Phone", None) in audit_actions()
    sign_out(client)
    assert password_step(app, client).headers["Location"] == "/"


def test_a_required_second_factor_can_be_a_passkey(app, client, db):
    make_user("alice")
    app.config["TWO_FACTOR_REQUIRED"] = "everyone"
    assert password_step(app, client).headers["Location"] == "/login/enrol"
    authenticator = SoftAuthenticator()
    created = authenticator.create(options(client, "/login/enrol/passkey/options", "/login/enrol"))
    response = client.post("/login/enrol/passkey", data={"name": "", "credential": created,
                                                         "csrf_token": token(client, "/login/enrol")})
    assert response.status_code == 200 and len(re.findall(r'<li class="col"><code', response.text)) == 10
    assert signed_in(client)
    user = _db.session.scalar(_db.select(User).filter_by(username="alice"))
    assert user.totp_secret is None  # the unused authenticator key of the enrolment page is dropped
    sign_out(client)
    assert password_step(app, client).headers["Location"] == "/login/verify"


def test_behind_a_proxy_the_forwarded_host_is_the_relying_party(database_url, pve, tmp_path):
    app = create_app(app_config(database_url, pve, PROXY_FIX=True), instance_path=str(tmp_path))
    app.test_client_class = IsolatedClient
    with app.app_context():
        make_user("alice")
        client = app.test_client()
        # What the proxy adds; the hop to it is HTTPS too, so the client sends the Secure session cookie (and a
        # Referer, which Flask-WTF asks of every HTTPS form).
        client.environ_base.update({"HTTP_X_FORWARDED_HOST": "proxboard.example.org",
                                    "HTTP_X_FORWARDED_PROTO": "https", "wsgi.url_scheme": "https",
                                    "HTTP_REFERER": "https://proxboard.example.org/"})
        password_step(app, client)
        offered = options(client, "/account/passkeys/options", "/account")
        assert offered["rp"]["id"] == "proxboard.example.org"
        assert register(client, SoftAuthenticator("proxboard.example.org", "https://proxboard.example.org"),
                        ).status_code == 200
        app.config["WEBAUTHN_RP_ID"] = "example.org"  # shared with the sub-domains
        assert options(client, "/account/passkeys/options", "/account")["rp"]["id"] == "example.org"
        _db.session.remove()
        _db.engine.dispose()
