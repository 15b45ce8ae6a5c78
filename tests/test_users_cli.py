"""``flask users …``: create, list, set-role, disable, enable, reset-2fa, ensure-admin, each audited as ``cli``.

The same guards as the Users page: the last active admin stays an active admin; bad input says why, exits
non-zero and changes nothing.
"""
from __future__ import annotations

import re

import pytest

from app.extensions import db as _db
from app.models import AuditEntry, Passkey, RecoveryCode, User, utcnow
from app.models.user import UserSession
from tests.fixtures.app import TEST_PASSWORD, AuthActions


@pytest.fixture
def database_url(sqlite_url) -> str:
    """SQLite only: the commands run the services the Users page tests run on both databases."""
    return sqlite_url


def user_named(name: str) -> User | None:
    _db.session.expire_all()
    return _db.session.scalar(_db.select(User).filter_by(username=name))


def user_changes() -> list[tuple[str, str, str | None, str, str | None]]:
    """(action, outcome, target, channel, username) of every ``user.*`` audit entry, oldest first."""
    _db.session.expire_all()
    entries = _db.session.scalars(_db.select(AuditEntry).where(AuditEntry.action.startswith("user."))
                                  .order_by(AuditEntry.id))
    return [(e.action, e.outcome, e.target, e.channel, e.username) for e in entries]


def users(runner, *args, input=None):  # noqa: A002 - click's name
    return runner.invoke(args=["users", *args], input=input)


def test_create_gives_the_first_user_admin_then_viewer_unless_a_role_is_given(runner):
    assert users(runner, "create", "root", "--password-stdin", input="root password\n").output == \
        "Created user root (admin).\n"
    assert "Created user bob (viewer)." in users(runner, "create", "bob", "--password-stdin", input="bobs password\n").output
    result = users(runner, "create", "olga", "--role", "operator", "--password-stdin", input="olgas password\n")
    assert result.exit_code == 0 and "(operator)" in result.output
    assert user_named("olga").role == "operator" and user_named("olga").check_password("olgas password")
    assert user_changes() == [("user.created", "succeeded", f"user {name}", "cli", None) for name in ("root", "bob", "olga")]


def test_create_prompts_for_the_password_twice(runner):
    result = users(runner, "create", "dave", input="first password\nfirst password\n")
    assert result.exit_code == 0 and user_named("dave").check_password("first password")
    assert "first password" not in result.output


@pytest.mark.parametrize(("args", "password", "message"), [
    (["root"], "another password", "User 'root' already exists."),
    (["   "], "long enough pw", "Username must not be empty."),
    (["x" * 81], "long enough pw", "Username must be at most 80 characters."),
    (["bob"], "short", "Password must be at least 8 characters."),
    (["bob", "--role", "root"], "long enough pw", "Invalid value for '--role': 'root' is not one of"),
])
def test_create_refuses_bad_input_and_changes_nothing(runner, make, args, password, message):
    make.user("root", role="admin")
    result = users(runner, "create", *args, "--password-stdin", input=password + "\n")
    assert result.exit_code != 0 and message in result.output
    assert [u.username for u in _db.session.scalars(_db.select(User))] == ["root"]
    assert user_changes() == []


def test_list_shows_every_user_with_role_state_and_second_factor(runner, make, db):
    make.user("root", role="admin")
    bob = make.user("bob", role="operator")
    bob.totp_enabled_at = utcnow()
    bob.require_2fa = True
    carol = make.user("carol", role="viewer")
    carol.disabled_at = utcnow()
    db.session.commit()
    lines = users(runner, "list").output.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "STATE", "2FA", "SIGNS", "IN", "LAST", "SIGN-IN", "SESSIONS"]
    assert re.match(r"bob\s+operator\s+active\s+totp, required\s+local\s+never\s+0$", lines[1])
    assert re.match(r"carol\s+viewer\s+disabled\s+-\s+local\s+never\s+0$", lines[2])


def test_set_role_and_the_last_active_admin_guard(runner, make, db):
    make.user("root", role="admin")
    make.user("bob", role="viewer")
    result = users(runner, "set-role", "bob", "operator")
    assert result.exit_code == 0 and result.output == "bob is now operator (was viewer).\n"
    result = users(runner, "set-role", "root", "viewer")
    assert result.exit_code == 1 and "root is the last active admin: make someone else admin first." in result.output
    assert user_named("root").role == "admin"
    assert users(runner, "set-role", "bob", "wizard").exit_code == 2  # click names the choices
    assert users(runner, "set-role", "zed", "admin").output.endswith("There is no user 'zed'.\n")
    assert user_changes() == [("user.role_changed", "succeeded", "user bob", "cli", None),
                              ("user.role_changed", "refused", "user root", "cli", None)]
    _db.session.expire_all()
    entry = _db.session.scalar(_db.select(AuditEntry).filter_by(outcome="succeeded"))
    assert entry.detail == {"from": "viewer", "to": "operator"}


def test_disable_ends_sessions_at_once_and_enable_lets_them_back(app, runner, make):
    make.user("root", role="admin")
    make.user("bob", role="operator")
    browser = app.test_client()
    assert AuthActions(browser, app).login("bob", TEST_PASSWORD, create=False).status_code == 302
    result = users(runner, "disable", "bob")
    assert result.exit_code == 0 and result.output == "Disabled bob; 1 session ended.\n"
    assert browser.get("/about").status_code == 302
    assert _db.session.scalar(_db.select(_db.func.count()).select_from(UserSession)) == 0
    assert "already is disabled" in users(runner, "disable", "bob").output
    assert users(runner, "enable", "bob").output == "Enabled bob: they may sign in again.\n"
    assert AuthActions(browser, app).login("bob", TEST_PASSWORD, create=False).headers["Location"] == "/"
    assert [change[:2] for change in user_changes()] == [("user.disabled", "succeeded"), ("user.enabled", "succeeded")]


def test_the_last_active_admin_cannot_be_disabled(runner, make):
    make.user("root", role="admin")
    result = users(runner, "disable", "root")
    assert result.exit_code == 1 and "root is the last active admin" in result.output
    assert user_named("root").is_active
    make.user("second", role="admin")
    assert users(runner, "disable", "root").exit_code == 0
    result = users(runner, "disable", "second")
    assert result.exit_code == 1 and user_named("second").is_active


def test_reset_2fa_lets_a_locked_out_admin_in_with_the_password(runner, make, db):
    root = make.user("root", role="admin")
    root.totp_secret, root.totp_enabled_at = b"secret", utcnow()
    db.session.add_all([RecoveryCode(user_id=root.id, code_hash="h"),
                        Passkey(user_id=root.id, name="phone", credential_id=b"c", public_key=b"k")])
    db.session.commit()
    result = users(runner, "reset-2fa", "root")
    assert result.exit_code == 0
    assert "Reset the second factor of root: authenticator app, 1 recovery codes and 1 passkeys removed." in result.output
    root = user_named("root")
    assert root.totp_secret is None and root.totp_enabled_at is None
    assert db.session.scalar(db.select(db.func.count()).select_from(Passkey)) == 0
    assert user_changes() == [("user.2fa_reset", "succeeded", "user root", "cli", None)]


def test_ensure_admin_creates_the_first_admin_once_and_audits_it(runner):
    first = users(runner, "ensure-admin")
    password = re.search(r"password (\S+)", first.output).group(1)
    admin = user_named("admin")
    assert admin.role == "admin" and admin.check_password(password)
    assert password not in users(runner, "ensure-admin").output
    assert user_changes() == [("user.created", "succeeded", "user admin", "cli", None)]


def test_reset_password_prints_a_new_one_once_and_ends_their_sessions(app, runner, make):
    make.user("root", role="admin")
    browser = app.test_client()
    assert AuthActions(browser, app).login("root", TEST_PASSWORD, create=False).status_code == 302
    result = users(runner, "reset-password", "root")
    password = re.search(r"New password for root: (\S+) \(shown only this once", result.output).group(1)
    assert user_named("root").check_password(password) and browser.get("/about").status_code == 302
    assert user_changes() == [("user.password_reset", "succeeded", "user root", "cli", None)]
