"""Personal API tokens: created on My account and shown once, stored as a hash, used by scripts with
``Authorization: Bearer``, held to their role, refused with a 401 (never the login page) when unknown, revoked,
expired or their owner is disabled; no cookie, no CSRF for them, and never a secret in the logs."""
from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from app.auth import tokens
from app.models import ApiToken, AuditEntry, Operation, User, utcnow
from tests.fixtures.app import csrf_token_from

# Rules that do not depend on the database run on SQLite only; storage and time comparisons run on both.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
SECRET_IN_PAGE = re.compile(r'id="new-token" readonly value="(pxb_[^"]+)"')


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def issue(db, username: str, role: str | None = None, expires_at=None) -> str:
    """A token for ``username`` made by the service (as the page does), returning its secret."""
    user = db.session.scalar(db.select(User).filter_by(username=username))
    return tokens.create_token(user, "script", role, expires_at)[1]


def assert_no_cookie(response) -> None:
    assert "Set-Cookie" not in response.headers, response.headers.get("Set-Cookie")


def assert_refused(response, description: str) -> None:
    """A 401 for scripts: the Bearer challenge with invalid_token, a short JSON body, no redirect, no cookie."""
    assert response.status_code == 401, response.status_code
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert "Location" not in response.headers
    assert response.json == {"error": "invalid_token", "error_description": description}
    assert_no_cookie(response)


def test_create_shows_the_token_once_and_keeps_only_its_hash(app, logged_in, client, db):
    page = client.get("/account/tokens")
    assert page.status_code == 200 and 'data-testid="no-tokens"' in page.text
    created = logged_in.post("/account/tokens", {"name": "backup script", "role": "operator", "expiry": "30"})
    assert created.status_code == 201  # Created: the page shows it once instead of redirecting
    assert created.headers["Cache-Control"] == "no-store"
    secret = SECRET_IN_PAGE.search(created.text).group(1)
    assert re.fullmatch(r"pxb_[A-Za-z0-9_-]{43}", secret)
    assert 'data-copy="#new-token"' in created.text  # the copy button (app.js)

    row = db.session.scalar(db.select(ApiToken))
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert row.prefix == secret[:12] and row.name == "backup script" and row.role == "operator"
    assert timedelta(days=29, hours=23) < row.expires_at - utcnow() <= timedelta(days=30)
    for table in db.metadata.sorted_tables:  # every row of every table, audit log included
        assert secret not in repr(db.session.execute(table.select()).all()), table.name

    # Not in the session cookie either (a flash would put it there: Flask's cookie is readable).
    cookie = client.get_cookie("session")
    assert secret not in repr(app.session_interface.get_signing_serializer(app).loads(cookie.value))

    listing = client.get("/account/tokens")
    assert secret not in listing.text
    assert f"{secret[:12]}…" in listing.text and "backup script" in listing.text
    assert 'data-state="active"' in listing.text and "never used" in listing.text
    entry = db.session.scalar(db.select(AuditEntry).filter_by(action="token.created"))
    assert entry.username == "alice" and entry.detail["role"] == "operator"


def test_viewer_token_reads_pages_but_its_actions_are_refused(make, client, db, pve):
    make.user("olga", role="operator")
    secret = issue(db, "olga", role="viewer")
    page = client.get("/", headers=bearer(secret))
    assert page.status_code == 200 and "mail01" in page.text
    assert_no_cookie(page)
    refused = client.post("/containers/104/actions/start", headers=bearer(secret))
    assert refused.status_code == 403
    assert "this API token is limited to viewer" in refused.text
    assert_no_cookie(refused)
    assert pve.containers[104].status == "stopped"
    assert db.session.scalar(db.select(db.func.count()).select_from(Operation)) == 0


def test_operator_token_starts_a_container_without_csrf_and_its_use_is_recorded(make, client, db, pve):
    make.user("olga", role="operator")
    secret = issue(db, "olga")
    response = client.post("/containers/104/actions/start", headers=bearer(secret))  # no CSRF token
    assert response.status_code == 302 and "/login" not in response.headers["Location"]
    assert_no_cookie(response)  # the view flashed its outcome: dropped, not sent as a cookie
    assert pve.containers[104].status == "running"
    operation = db.session.scalar(db.select(Operation).filter_by(action="start"))
    assert operation.requested_by == "olga"
    token = db.session.scalar(db.select(ApiToken))
    db.session.refresh(token)
    assert token.last_used_at is not None and token.last_used_ip == "127.0.0.1"


def test_unknown_revoked_expired_and_disabled_owner_tokens_get_401(make, client, db, pve):
    owner = make.user("olga", role="operator")
    good = issue(db, "olga")
    revoked = issue(db, "olga")
    tokens.revoke_token(owner, db.session.scalar(db.select(ApiToken).filter_by(prefix=revoked[:12])).id)
    expired = issue(db, "olga", expires_at=utcnow() + timedelta(seconds=1))
    db.session.scalar(db.select(ApiToken).filter_by(prefix=expired[:12])).expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()

    assert_refused(client.get("/", headers=bearer("pxb_" + "x" * 43)), "The API token is not known.")
    assert_refused(client.get("/", headers=bearer("hunter2")), "The API token is not known.")
    assert_refused(client.get("/", headers={"Authorization": "Bearer"}), "The API token is not known.")
    assert_refused(client.get("/", headers=bearer(revoked)), "The API token has been revoked.")
    assert_refused(client.get("/", headers=bearer(expired)), "The API token has expired.")
    # A POST with a bad token is a 401 too, not a CSRF failure (400) nor a redirect.
    assert_refused(client.post("/containers/104/actions/start", headers=bearer(revoked)),
                   "The API token has been revoked.")
    assert client.get("/", headers=bearer(good)).status_code == 200
    owner.disabled_at = utcnow()
    db.session.commit()
    assert_refused(client.get("/", headers=bearer(good)), "The API token's owner is disabled.")
    assert pve.containers[104].status == "stopped"

    failed = db.session.scalars(db.select(AuditEntry).filter_by(action="auth.token")).all()
    assert [entry.outcome for entry in failed] == ["failed"] * 7
    assert {entry.detail["reason"] for entry in failed} == {"unknown", "revoked", "expired", "owner_disabled"}
    assert {entry.username for entry in failed if entry.detail["reason"] != "unknown"} == {"olga"}


@SQLITE_ONLY
def test_a_role_above_the_owners_is_refused_at_creation(make, auth, client, db):
    make.user("olga", role="operator")
    auth.login("olga", create=False)
    page = client.get("/account/tokens")
    offered = re.findall(r'<option[^>]*value="(\w+)"', page.text)
    assert offered == ["viewer", "operator"]
    assert re.search(r'<option selected value="operator">', page.text)  # their own role by default
    response = auth.post("/account/tokens", {"name": "sneaky", "role": "admin", "expiry": "never"})
    assert response.status_code == 200 and "new-token-value" not in response.text
    assert "A token&#39;s role cannot be above your own (operator)." in response.text
    assert db.session.scalar(db.select(db.func.count()).select_from(ApiToken)) == 0
    with pytest.raises(tokens.TokenError):
        tokens.create_token(db.session.scalar(db.select(User).filter_by(username="olga")), "x", "admin")


@SQLITE_ONLY
def test_bad_names_and_dates_are_refused_and_nothing_is_created(logged_in, db):
    today = datetime.now(UTC).date()
    cases = [({"name": "  ", "expiry": "30"}, "Give the token a name"),
             ({"name": "x" * 81, "expiry": "30"}, "At most 80 characters."),
             ({"name": "old", "expiry": "date", "expires_on": (today - timedelta(days=1)).isoformat()}, "has passed"),
             ({"name": "no day", "expiry": "date"}, "Choose the day the token expires."),
             ({"name": "far", "expiry": "date", "expires_on": "2999-01-01"}, "within 5 years")]
    for data, message in cases:
        response = logged_in.post("/account/tokens", data)
        assert response.status_code == 200 and message in response.text, (data, response.text[-3000:])
    assert db.session.scalar(db.select(db.func.count()).select_from(ApiToken)) == 0


def test_expiry_choices():
    now = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert tokens.expiry_for("never", None, now) is None
    assert tokens.expiry_for("90", None, now) == now + timedelta(days=90)
    # A chosen day works through its end (UTC); today is allowed, yesterday is not.
    assert tokens.expiry_for("date", date(2026, 12, 24), now) == datetime(2026, 12, 25, tzinfo=UTC)
    assert tokens.expiry_for("date", date(2026, 11, 30), now) == datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(tokens.TokenError, match="passed"):
        tokens.expiry_for("date", date(2026, 11, 29), now)


@SQLITE_ONLY
def test_cookie_sessions_keep_their_csrf_check_and_a_bearer_header_ignores_the_cookie(make, logged_in, client, db, pve):
    # alice (admin) signed in by cookie: a POST without a CSRF token still fails.
    assert client.post("/containers/104/actions/start").status_code == 400
    assert pve.containers[104].status == "stopped"
    # The same browser sending a viewer token acts as that token, not as its admin cookie.
    secret = issue(db, "alice", role="viewer")
    refused = client.post("/containers/104/actions/start", headers=bearer(secret))
    assert refused.status_code == 403
    assert_no_cookie(refused)
    assert client.get("/account/tokens").status_code == 200  # the cookie session itself is untouched


@SQLITE_ONLY
def test_tokens_cannot_touch_the_account(make, auth, client, db):
    make.user("olga", role="operator")
    auth.login("olga", create=False)  # her browser session, which the token must not be able to end
    secret = issue(db, "olga")
    assert client.get("/account/tokens", headers=bearer(secret)).status_code == 403
    assert client.post("/account/tokens", data={"name": "more", "expiry": "never"},
                       headers=bearer(secret)).status_code == 403
    assert client.post("/account/sessions/end-all", headers=bearer(secret)).status_code == 403
    assert client.post("/account/password", data={"current_password": "x", "new_password": "y" * 12,
                                                  "confirm_password": "y" * 12},
                       headers=bearer(secret)).status_code == 403
    assert db.session.scalar(db.select(db.func.count()).select_from(ApiToken)) == 1
    assert client.get("/account/sessions").status_code == 200  # still signed in, same password


def test_revoke_asks_first_then_the_token_stops_working(make, logged_in, client, db):
    secret = issue(db, "alice")
    other = make.user("bob", role="viewer")
    tokens.create_token(other, "bob's", None, None)
    own = db.session.scalar(db.select(ApiToken).filter_by(prefix=secret[:12]))
    theirs = db.session.scalar(db.select(ApiToken).filter_by(name="bob's"))
    listing = client.get("/account/tokens")
    assert "bob&#39;s" not in listing.text  # only one's own tokens
    confirm = client.get(f"/account/tokens/{own.id}/revoke")
    assert confirm.status_code == 200 and "Revoke the token" in confirm.text and own.prefix in confirm.text
    assert client.get(f"/account/tokens/{theirs.id}/revoke").status_code == 404
    assert logged_in.post(f"/account/tokens/{theirs.id}/revoke").status_code == 404
    revoked = logged_in.post(f"/account/tokens/{own.id}/revoke", follow_redirects=True)
    assert revoked.status_code == 200 and 'data-state="revoked"' in revoked.text
    assert_refused(client.get("/", headers=bearer(secret)), "The API token has been revoked.")
    db.session.refresh(theirs)
    assert theirs.revoked_at is None
    entry = db.session.scalar(db.select(AuditEntry).filter_by(action="token.revoked"))
    assert entry.username == "alice" and own.prefix in entry.target


@SQLITE_ONLY
def test_effective_role_is_the_lower_of_the_token_and_its_owner(make, db):
    owner = make.user("olga", role="operator")
    secret = issue(db, "olga", role="operator")
    token = db.session.scalar(db.select(ApiToken).filter_by(prefix=secret[:12]))
    assert tokens.effective_role(token) == "operator"
    owner.role = "viewer"  # demoted after the token was made
    db.session.commit()
    assert tokens.effective_role(token) == "viewer" and token.role == "operator"


@SQLITE_ONLY
def test_a_token_of_a_demoted_owner_acts_with_the_owners_lower_role(make, client, db, pve):
    owner = make.user("olga", role="operator")
    secret = issue(db, "olga", role="operator")
    owner.role = "viewer"
    db.session.commit()
    assert client.get("/", headers=bearer(secret)).status_code == 200
    assert client.post("/containers/104/actions/start", headers=bearer(secret)).status_code == 403
    assert pve.containers[104].status == "stopped"


@SQLITE_ONLY
def test_refused_tokens_are_throttled_per_address(app, make, client, db):
    app.config["LOGIN_LIMIT_PER_CLIENT"] = "3 per minute"
    make.user("olga", role="operator")
    secret = issue(db, "olga")
    for _ in range(3):
        assert client.get("/", headers=bearer("pxb_" + "y" * 43)).status_code == 401
    throttled = client.get("/", headers=bearer(secret))  # even a good token waits: no oracle for guesses
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
    assert throttled.json["error"] == "too_many_requests"
    assert_no_cookie(throttled)


@SQLITE_ONLY
def test_secrets_never_reach_the_log(caplog, make, logged_in, client, db):
    caplog.set_level(logging.DEBUG)
    created = logged_in.post("/account/tokens", {"name": "ci", "expiry": "never"})
    secret = SECRET_IN_PAGE.search(created.text).group(1)
    client.get("/", headers=bearer(secret))
    token = db.session.scalar(db.select(ApiToken))
    logged_in.post(f"/account/tokens/{token.id}/revoke")
    client.get("/", headers=bearer(secret))
    client.get("/", headers=bearer(secret[:-1] + ("A" if secret[-1] != "A" else "B")))
    client.get("/", headers=bearer("my-password-not-a-token"))
    assert secret not in caplog.text and secret[12:] not in caplog.text
    assert f"API token {secret[:12]}… refused" in caplog.text  # the prefix identifies it
    assert "my-password" not in caplog.text and "(not a Proxboard token)" in caplog.text
