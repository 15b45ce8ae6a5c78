"""Sign-in, route protection and CSRF."""
from __future__ import annotations

import re

import pytest
from werkzeug.routing.converters import NumberConverter

from app.auth import is_safe_next
from tests.fixtures.app import csrf_token_from
from app.models import User

PUBLIC = {"auth.login", "auth.oidc_login", "auth.oidc_callback", "health.healthz", "static",  # SSO: tests/test_oidc.py
          "api.openapi", "api.docs"}  # what the API offers; every call still needs a token


def for_machines(rule) -> bool:
    """Read by scripts and scrapers, not people: the JSON API, Prometheus' /metrics, the widget's counts."""
    return rule.rule.startswith("/api/") or rule.endpoint.startswith("observability.")


def concrete_url(rule) -> str:
    """A URL matching ``rule``, with a plausible value for each of its arguments."""
    values = {}
    for name, converter in rule._converters.items():
        kind = type(converter).__name__
        if kind == "AnyConverter":
            values[name] = sorted(converter.items)[0]
        elif isinstance(converter, NumberConverter):
            values[name] = 101
        else:
            values[name] = "x"
    return rule.build(values, append_unknown=False)[1]


def test_every_route_but_login_and_healthz_requires_login(app, client):
    """Walk the URL map: anonymous requests to anything else end at the login form, or for a script's URL at a
    401 that asks for a token."""
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC:
            continue
        url = concrete_url(rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            # a WebSocket rule matches only a handshake (a plain GET is a 400 from routing, before any view)
            upgrade = {"Upgrade": "websocket", "Connection": "Upgrade"} if rule.websocket else {}
            response = client.open(url, method=method, headers=upgrade)
            if for_machines(rule):
                # a POST too: "CSRF token missing" would send a script's author the wrong way
                assert response.status_code == 401, (rule.rule, method, response.status_code)
                assert response.headers["WWW-Authenticate"].startswith("Bearer"), rule.rule
                assert response.mimetype == "application/problem+json", rule.rule
            elif method == "GET":
                assert response.status_code == 302, (rule.rule, method)
                assert response.headers["Location"].startswith("/login"), (rule.rule, method)
            else:
                # Anonymous POSTs are refused before anything runs (CSRF first, then login).
                assert response.status_code in (302, 400), (rule.rule, method, response.status_code)
            checked += 1
    assert checked >= 4


def test_public_routes_answer_without_login(client):
    assert client.get("/login").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_login_lands_on_dashboard_and_records_last_login(auth, client, db):
    response = auth.login()
    assert response.status_code == 302 and response.headers["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200 and "alice" in page.text
    assert db.session.scalar(db.select(User).filter_by(username="alice")).last_login_at is not None


def test_failed_login_does_not_reveal_whether_user_exists(auth, client):
    auth.create_user("alice")
    wrong_password = auth.login("alice", "nope-nope-nope", create=False)
    unknown_user = auth.login("mallory", "nope-nope-nope", create=False)
    assert wrong_password.status_code == unknown_user.status_code == 200
    message = "Invalid username or password."
    assert message in wrong_password.text and message in unknown_user.text
    def strip(html):  # the CSRF token is time-stamped, so it may differ between the two pages
        html = html.replace(csrf_token_from(html), "")
        return re.sub(r'value="[^"]*"', "", html).replace("alice", "").replace("mallory", "")
    assert strip(wrong_password.text) == strip(unknown_user.text)


@pytest.mark.parametrize("target,expected", [
    ("/templates", "/templates"),
    ("https://evil.example/", "/"),
    ("//evil.example/x", "/"),
    ("/\\evil.example", "/"),
    ("javascript:alert(1)", "/"),
])
def test_next_redirects_only_to_local_paths(auth, target, expected):
    response = auth.login(next_url=target)
    assert response.headers["Location"] == expected


def test_anonymous_page_redirect_carries_next(client):
    response = client.get("/templates?search=web")
    assert response.headers["Location"] == "/login?next=/templates?search%3Dweb" or "next=" in response.headers["Location"]


def test_post_without_csrf_token_is_rejected(logged_in, client):
    response = client.post("/logout")
    assert response.status_code == 400
    assert client.get("/").status_code == 200  # still signed in


def test_csrf_token_accepted_from_htmx_header(logged_in, client):
    token = logged_in.token()
    response = client.post("/logout", headers={"X-CSRFToken": token})
    assert response.status_code == 302
    assert client.get("/").status_code == 302


def test_logout_is_a_post_only(logged_in, client):
    assert client.get("/logout").status_code == 405


@pytest.mark.parametrize("target,ok", [("/", True), ("/a/b?c=d", True), ("//x", False), ("http://x/", False), ("", False), (None, False)])
def test_is_safe_next(target, ok):
    assert is_safe_next(target) is ok


def test_users_create_reads_password_from_stdin(runner, db):
    result = runner.invoke(args=["users", "create", "carol", "--password-stdin"], input="s3cret-password\n")
    assert result.exit_code == 0, result.output
    user = db.session.scalar(db.select(User).filter_by(username="carol"))
    assert user.check_password("s3cret-password")
    assert "s3cret-password" not in result.output


def test_users_create_prompts_twice_and_rejects_mismatch(runner, db):
    result = runner.invoke(args=["users", "create", "dave"], input="first-password\nother-password\nfirst-password\nfirst-password\n")
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output.lower() or "match" in result.output.lower()
    assert db.session.scalar(db.select(User).filter_by(username="dave")).check_password("first-password")


def test_users_create_refuses_duplicates(runner):
    runner.invoke(args=["users", "create", "erin", "--password-stdin"], input="password-one\n")
    result = runner.invoke(args=["users", "create", "erin", "--password-stdin"], input="password-two\n")
    assert result.exit_code != 0 and "already exists" in result.output


def test_ensure_admin_creates_admin_once(runner, db):
    first = runner.invoke(args=["users", "ensure-admin"])
    password = re.search(r"password (\S+)", first.output).group(1)
    assert db.session.scalar(db.select(User).filter_by(username="admin")).check_password(password)
    second = runner.invoke(args=["users", "ensure-admin"])
    assert password not in second.output


def html_theme(page: str) -> tuple[str, str | None]:
    """The theme choice and the Bootstrap theme the rendered <html> carries."""
    tag = re.search(r"<html[^>]*>", page).group(0)
    choice = re.search(r'data-theme="(\w+)"', tag).group(1)
    applied = re.search(r'data-bs-theme="(\w+)"', tag)
    return choice, applied.group(1) if applied else None


def test_theme_choice_is_remembered_across_sign_out_and_in(logged_in, client, db):
    assert html_theme(client.get("/").text) == ("auto", None)  # the browser's preference decides
    response = client.post("/theme", data={"theme": "dark", "next": "/templates", "csrf_token": logged_in.token()})
    assert response.status_code == 302 and response.headers["Location"] == "/templates"
    assert html_theme(client.get("/templates").text) == ("dark", "dark")

    client.post("/logout", data={"csrf_token": logged_in.token()})
    assert html_theme(client.get("/login").text) == ("auto", None)
    logged_in.login()
    page = client.get("/").text
    assert html_theme(page) == ("dark", "dark")
    assert re.search(r'value="dark" aria-pressed="true"', page)

    client.post("/theme", data={"theme": "light", "next": "//evil.example", "csrf_token": logged_in.token()})
    assert html_theme(client.get("/").text) == ("light", "light")
    assert db.session.scalar(db.select(User.theme).filter_by(username="alice")) == "light"


def test_unknown_theme_is_refused_by_the_form_and_the_database(logged_in, client, db):
    from sqlalchemy.exc import IntegrityError

    response = client.post("/theme", data={"theme": "purple", "csrf_token": logged_in.token()}, follow_redirects=True)
    assert "could not be changed" in response.text and html_theme(response.text)[0] == "auto"
    user = db.session.scalar(db.select(User).filter_by(username="alice"))
    user.theme = "purple"
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
