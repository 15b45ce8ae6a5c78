"""Login throttling: failed sign-ins per account and per client address, then 429 with Retry-After;
the counters shared through Redis between processes when REDIS_URL is set."""
from __future__ import annotations

import logging
import time

import pytest

from app import create_app
from app.extensions import db as _db
from app.models.user import LoginAttempt
from tests.fixtures.app import TEST_PASSWORD, AuthActions, IsolatedClient, app_config
from tests.fixtures.redis import REDIS_URL


def attempt(app, client, username="alice", password="wrong password!"):
    return AuthActions(client, app).login(username, password, create=False)


def client_from(app, address):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def signed_in(client) -> bool:
    return client.get("/").status_code == 200


def test_five_wrong_passwords_then_the_account_waits_even_with_the_right_one(app, client, auth):
    auth.create_user("alice")
    for _ in range(5):
        response = attempt(app, client)
        assert response.status_code == 200 and "Invalid username or password." in response.text
    response = attempt(app, client, password=TEST_PASSWORD)
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert "Too many failed sign-ins for this account. Try again in" in response.text
    assert 'value="alice"' in response.text  # the form stays filled in
    assert not signed_in(client)


def test_other_accounts_and_right_passwords_are_not_slowed_down(app, client, auth):
    auth.create_user("alice")
    auth.create_user("bob")
    for _ in range(10):  # signing in right never counts
        assert attempt(app, client, password=TEST_PASSWORD).status_code == 302
    for _ in range(5):
        attempt(app, client)
    assert attempt(app, client).status_code == 429
    assert attempt(app, client, "bob", TEST_PASSWORD).status_code == 302  # same address, another account
    assert signed_in(client)


def test_a_form_error_is_not_a_failed_sign_in(app, client, auth):
    auth.create_user("alice")
    for _ in range(8):
        response = attempt(app, client, password="")
        assert response.status_code == 200 and "This field is required." in response.text
    for _ in range(8):  # no CSRF token: refused before the password is looked at
        assert client.post("/login", data={"username": "alice", "password": "wrong password!"}).status_code == 400
    assert attempt(app, client, password=TEST_PASSWORD).status_code == 302


@pytest.mark.parametrize("app_overrides", [{"LOGIN_LIMIT_PER_CLIENT": "3 per minute"}])
def test_one_address_trying_many_accounts_is_throttled_by_address(app, app_overrides):
    attacker = client_from(app, "203.0.113.9")
    for name in ("alice", "bob", "carol"):
        assert attempt(app, attacker, name).status_code == 200
    response = attempt(app, attacker, "dave")
    assert response.status_code == 429 and "Too many failed sign-ins from your address." in response.text
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    AuthActions(app.test_client(), app).create_user("erin")
    assert attempt(app, client_from(app, "198.51.100.1"), "erin", TEST_PASSWORD).status_code == 302


@pytest.mark.parametrize("app_overrides", [{"LOGIN_LIMIT_PER_ACCOUNT": "2 per 2 seconds; 3 per minute"}])
def test_the_delays_grow(app, auth, client, app_overrides):
    auth.create_user("alice")
    for _ in range(2):
        attempt(app, client)
    first = attempt(app, client)
    assert first.status_code == 429 and int(first.headers["Retry-After"]) <= 2
    time.sleep(2.1)
    assert attempt(app, client).status_code == 200  # the third failure of the minute is still allowed
    second = attempt(app, client, password=TEST_PASSWORD)
    assert second.status_code == 429 and int(second.headers["Retry-After"]) > 30  # the minute window now


def test_every_failed_sign_in_is_recorded_and_logged_without_the_password(app, client, auth, db, caplog):
    auth.create_user("alice")
    caplog.set_level(logging.WARNING)
    attempt(app, client, "alice", "first-wrong-secret")
    attempt(app, client, "nobody", "second-wrong-secret")
    attempt(app, client, "alice", TEST_PASSWORD)
    rows = db.session.execute(db.select(LoginAttempt.username, LoginAttempt.outcome, LoginAttempt.ip,
                                        LoginAttempt.user_id.is_not(None)).order_by(LoginAttempt.id)).all()
    assert [tuple(row) for row in rows] == [("alice", "failed", "127.0.0.1", True),
                                            ("nobody", "failed", "127.0.0.1", False),
                                            ("alice", "succeeded", "127.0.0.1", True)]
    assert "Failed sign-in for 'alice' from 127.0.0.1" in caplog.text
    assert "Failed sign-in for 'nobody' from 127.0.0.1" in caplog.text
    for _ in range(5):
        attempt(app, client, "nobody")
    assert "Sign-in throttled (account limit 5 per 1 minute) for 'nobody' from 127.0.0.1" in caplog.text
    assert "secret" not in caplog.text and TEST_PASSWORD not in caplog.text
    # A throttled attempt is logged only: the table grows no faster than the limits allow.
    assert db.session.scalar(db.select(db.func.count()).select_from(LoginAttempt).filter_by(username="nobody")) == 5


def process(database_url, pve, tmp_path, name, **config):
    """One app as one gunicorn process would build it (same database and secret)."""
    built = create_app(app_config(database_url, pve, **config))
    built.instance_path = str(tmp_path / name)
    built.test_client_class = IsolatedClient
    return built


def dispose(*apps):
    for built in apps:
        with built.app_context():
            _db.session.remove()
            _db.engine.dispose()


def test_processes_share_the_counters_through_redis(database_url, pve, tmp_path, redis_prefix):
    prefix, server = redis_prefix
    one, two = (process(database_url, pve, tmp_path, name, REDIS_URL=REDIS_URL, RATELIMIT_KEY_PREFIX=prefix)
                for name in ("one", "two"))
    try:
        AuthActions(one.test_client(), one).create_user("alice")
        for _ in range(3):
            assert attempt(one, one.test_client()).status_code == 200
        for _ in range(2):
            assert attempt(two, two.test_client()).status_code == 200
        assert list(server.scan_iter(f"*{prefix}*account:alice*"))  # the counter lives in Redis
        response = attempt(one, one.test_client(), password=TEST_PASSWORD)
        assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
        assert attempt(two, two.test_client(), password=TEST_PASSWORD).status_code == 429
    finally:
        dispose(one, two)


def test_without_redis_each_process_counts_alone(database_url, pve, tmp_path):
    one, two = (process(database_url, pve, tmp_path, name) for name in ("one", "two"))
    try:
        AuthActions(one.test_client(), one).create_user("alice")
        for _ in range(5):
            attempt(one, one.test_client())
        assert attempt(one, one.test_client()).status_code == 429
        assert attempt(two, two.test_client(), password=TEST_PASSWORD).status_code == 302
    finally:
        dispose(one, two)


def test_an_unreachable_redis_still_throttles_in_memory_instead_of_failing(database_url, pve, tmp_path, caplog):
    down = process(database_url, pve, tmp_path, "down", RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    try:
        AuthActions(down.test_client(), down).create_user("alice")
        for _ in range(5):
            assert attempt(down, down.test_client()).status_code == 200
        assert attempt(down, down.test_client()).status_code == 429
        assert attempt(down, down.test_client(), "bob").status_code == 200
    finally:
        dispose(down)
