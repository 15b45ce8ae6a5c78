"""Sign-in sessions kept on the server: the cookie holds a random id, and ending a session ends the cookie."""
from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest

from app import create_app
from app.extensions import db as _db
from app.models import User, utcnow
from app.models.user import UserSession
from tests.fixtures.app import TEST_PASSWORD, AuthActions, IsolatedClient, app_config, csrf_token_from

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Mobile/15E148 Safari/604.1"


def session_cookie(client) -> str:
    return client.get_cookie("session").value


def new_client(app, user_agent=None, remote_addr="127.0.0.1"):
    """Another browser: a client of its own (own cookie jar), with its own user agent and address."""
    client = app.test_client()
    client.environ_base.update({"REMOTE_ADDR": remote_addr, **({"HTTP_USER_AGENT": user_agent} if user_agent else {})})
    return client


def sign_in(app, client, username="alice", password=TEST_PASSWORD):
    response = AuthActions(client, app).login(username, password)
    assert response.status_code == 302, response.text
    return AuthActions(client, app)


def copy_cookie(source, target) -> None:
    """What a thief holding a copy of the cookie would send."""
    target.set_cookie("session", session_cookie(source))


def sessions_of(username: str) -> list[UserSession]:
    user = _db.session.scalar(_db.select(User).filter_by(username=username))
    _db.session.expire_all()
    return list(_db.session.scalars(_db.select(UserSession).filter_by(user_id=user.id)))


def test_the_cookie_carries_only_a_random_session_id_stored_hashed(app, client, logged_in, db):
    payload = app.session_interface.get_signing_serializer(app).loads(session_cookie(client))
    token = payload["_user_id"]
    alice = db.session.scalar(db.select(User).filter_by(username="alice"))
    assert token != str(alice.id) and len(token) >= 40
    assert "user_id" not in payload
    [row] = sessions_of("alice")
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert db.session.scalar(db.select(UserSession).filter_by(token_hash=token)) is None  # never stored in the clear
    assert row.ip == "127.0.0.1" and row.last_seen_at is not None and row.created_at is not None


def test_sign_out_ends_the_session_so_a_copied_cookie_stops_working(app, client, logged_in):
    thief = new_client(app)
    copy_cookie(client, thief)
    assert thief.get("/").status_code == 200
    client.post("/logout", data={"csrf_token": logged_in.token()})
    response = thief.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert sessions_of("alice") == []


def test_each_sign_in_is_its_own_session_and_signing_in_again_replaces_the_old_one(app, client, logged_in):
    old = new_client(app)
    copy_cookie(client, old)
    sign_in(app, client)
    assert len(sessions_of("alice")) == 1
    assert old.get("/").status_code == 302  # the replaced session's cookie is dead


@pytest.fixture
def second_process(app, database_url, pve, tmp_path):
    """Another app on the same database and secret: what a second gunicorn process or host is."""
    other = create_app(app_config(database_url, pve))
    other.instance_path = str(tmp_path / "second")
    other.test_client_class = IsolatedClient
    yield other
    with other.app_context():
        _db.session.remove()
        _db.engine.dispose()


def test_a_session_ended_in_one_process_is_refused_by_another_at_once(app, client, logged_in, second_process):
    elsewhere = second_process.test_client()
    copy_cookie(client, elsewhere)
    assert elsewhere.get("/").status_code == 200
    client.post("/account/sessions/end-all", data={"csrf_token": logged_in.token()})
    assert elsewhere.get("/").status_code == 302


def test_sessions_page_lists_each_browser_and_marks_this_one(app, client, logged_in):
    sign_in(app, new_client(app, FIREFOX, "192.0.2.7"))
    sign_in(app, new_client(app, PHONE, "2001:db8::5"))
    dashboard = client.get("/").text
    assert 'href="/account/sessions"' in dashboard and 'href="/account/password"' in dashboard  # user menu
    page = client.get("/account/sessions")
    assert page.status_code == 200
    rows = re.findall(r'<li class="list-group-item.*?</li>', page.text, re.S)
    assert len(rows) == 3
    assert any(">Firefox 133 on Linux<" in row and "192.0.2.7" in row for row in rows)  # read, not raw
    assert any(">Mobile Safari on iOS<" in row and "2001:db8::5" in row for row in rows)
    assert any(f'title="{FIREFOX}"' in row for row in rows)  # the whole header on hover
    [current] = [row for row in rows if "This browser" in row]
    assert 'data-testid="current-session"' in current and "Firefox" not in current and "iPhone" not in current


def test_sign_out_everywhere_ends_every_session_including_this_one(app, client, logged_in):
    phone = new_client(app, PHONE)
    sign_in(app, phone)
    response = client.post("/account/sessions/end-all", data={"csrf_token": logged_in.token()},
                           follow_redirects=True)
    assert response.request.path == "/login" and "Signed out everywhere (2 sessions ended)" in response.text
    assert client.get("/").status_code == 302 and phone.get("/").status_code == 302
    assert sessions_of("alice") == []


def test_ending_one_session_from_the_list_leaves_the_others(app, client, logged_in):
    phone = new_client(app, PHONE)
    sign_in(app, phone)
    laptop = new_client(app, FIREFOX)
    sign_in(app, laptop)
    phone_session = next(row for row in sessions_of("alice") if row.user_agent == PHONE)
    response = client.post(f"/account/sessions/{phone_session.id}/end", data={"csrf_token": logged_in.token()},
                           follow_redirects=True)
    assert "That session has been signed out." in response.text
    assert phone.get("/").status_code == 302
    assert laptop.get("/").status_code == 200 and client.get("/").status_code == 200


def test_someone_elses_session_cannot_be_ended(app, client, logged_in):
    bob = new_client(app)
    sign_in(app, bob, "bob")
    [bobs] = sessions_of("bob")
    response = client.post(f"/account/sessions/{bobs.id}/end", data={"csrf_token": logged_in.token()})
    assert response.status_code == 404
    assert client.post("/account/sessions/2147483647/end", data={"csrf_token": logged_in.token()}).status_code == 404
    assert bob.get("/").status_code == 200 and len(sessions_of("bob")) == 1


def change_password(client, current, new, confirm=None):
    page = client.get("/account/password")
    assert page.status_code == 200
    return client.post("/account/password", data={
        "current_password": current, "new_password": new, "confirm_password": new if confirm is None else confirm,
        "csrf_token": csrf_token_from(page.text)}, follow_redirects=True)


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(app, client, logged_in, db):
    phone = new_client(app, PHONE)
    sign_in(app, phone)
    response = change_password(client, TEST_PASSWORD, "a brand new password")
    assert "Your password has been changed. 1 other session signed out." in response.text
    assert client.get("/").status_code == 200
    assert phone.get("/").status_code == 302
    assert AuthActions(new_client(app), app).login(create=False).status_code == 200  # the old password fails
    sign_in(app, new_client(app), password="a brand new password")


@pytest.mark.parametrize("current,new,confirm,message", [
    ("wrong password!", "a brand new password", None, "The current password is not correct."),
    (TEST_PASSWORD, "a brand new password", "another new password", "The two new passwords do not match."),
    (TEST_PASSWORD, "short", None, "Password must be at least 8 characters."),
])
def test_a_refused_password_change_changes_nothing(app, client, logged_in, db, current, new, confirm, message):
    phone = new_client(app, PHONE)
    sign_in(app, phone)
    response = change_password(client, current, new, confirm)
    assert response.status_code == 200 and message in response.text
    assert phone.get("/").status_code == 200
    db.session.expire_all()
    assert db.session.scalar(db.select(User).filter_by(username="alice")).check_password(TEST_PASSWORD)


def age_session(username: str, **fields: timedelta) -> None:
    """Move a session's times back, as if that much time had passed."""
    [row] = sessions_of(username)
    for name, delta in fields.items():
        setattr(row, name, getattr(row, name) - delta)
    _db.session.commit()


def test_a_session_unused_longer_than_the_idle_lifetime_ends(app, client, logged_in):
    app.config["SESSION_IDLE_MINUTES"] = 30
    age_session("alice", last_seen_at=timedelta(minutes=29))
    assert client.get("/").status_code == 200  # still within; this visit counts as use
    age_session("alice", last_seen_at=timedelta(minutes=31))
    response = client.get("/templates", follow_redirects=True)
    assert response.request.path == "/login" and "Your session has expired. Please sign in again." in response.text
    assert sessions_of("alice") == []
    assert client.get("/").status_code == 302


def test_a_busy_session_still_ends_at_the_absolute_lifetime(app, client, logged_in):
    assert app.config["SESSION_MAX_HOURS"] == 24 * 7 and app.config["SESSION_IDLE_MINUTES"] == 120
    age_session("alice", created_at=timedelta(hours=24 * 7 - 1))
    assert client.get("/").status_code == 200
    age_session("alice", created_at=timedelta(hours=2))
    assert client.get("/").status_code == 302
    assert sessions_of("alice") == []


def test_last_seen_and_address_follow_the_browser(app, client, logged_in):
    age_session("alice", last_seen_at=timedelta(minutes=10))
    client.environ_base["REMOTE_ADDR"] = "198.51.100.20"
    client.get("/")
    [row] = sessions_of("alice")
    assert utcnow() - row.last_seen_at < timedelta(seconds=30) and row.ip == "198.51.100.20"


def test_odd_browser_headers_are_stored_cut_to_fit(app, auth):
    auth.create_user("alice")
    browser = new_client(app, "Bot\x00/1.0 " + "x" * 1000)
    sign_in(app, browser)
    [row] = sessions_of("alice")
    assert row.user_agent.startswith("Bot/1.0 xxx") and len(row.user_agent) == 255


def test_static_files_cost_no_session_lookup(client, logged_in, count_queries):
    with count_queries() as queries:
        assert client.get("/static/css/app.css").status_code == 200
    assert queries.count == 0
    with count_queries() as queries:
        assert client.get("/account/password").status_code == 200
    assert sum("user_sessions" in statement for statement in queries.statements) == 1  # one lookup per page


def test_expired_sessions_of_anyone_are_swept_at_the_next_sign_in(app, client, logged_in):
    sign_in(app, new_client(app), "bob")
    age_session("bob", last_seen_at=timedelta(hours=3))
    sign_in(app, new_client(app), "carol")
    assert sessions_of("bob") == []


def test_deleting_a_user_deletes_their_sessions(app, client, logged_in, db):
    db.session.execute(db.delete(User).filter_by(username="alice"))
    db.session.commit()
    assert db.session.scalar(db.select(db.func.count()).select_from(UserSession)) == 0
    assert client.get("/").status_code == 302


@pytest.mark.browser
def test_browser_signs_in_sees_its_session_and_signs_out_everywhere(browser, live_server):
    browser.login()
    page = browser.page
    browser.open_menu()
    page.click("text=Sessions")
    page.wait_for_url("**/account/sessions")
    current = page.locator("[data-testid=current-session]")
    current.wait_for()
    assert "This browser" in current.inner_text() and "HeadlessChrome" in current.inner_text()
    browser.screenshot("sessions")
    page.click("[data-testid=sign-out-everywhere]")
    page.wait_for_url("**/login")
    assert "Signed out everywhere" in page.content()
    browser.goto("/")
    assert "/login" in page.url
