"""Security headers on every response, ``Secure`` cookies over HTTPS (direct or behind a proxy), and
templates the Content-Security-Policy can allow: no inline script, style or event handler."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.security_headers import CONTENT_SECURITY_POLICY
from tests.fixtures.app import TEST_PASSWORD, csrf_token_from

APP = Path(__file__).resolve().parent.parent / "app"


@pytest.fixture
def database_url(sqlite_url):
    """Headers and cookies do not depend on the database: SQLite only."""
    return sqlite_url


def session_cookie(response) -> str:
    """The ``Set-Cookie`` header of Flask's session cookie."""
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return cookies[0]


def is_secure(cookie: str) -> bool:
    return "secure" in [part.strip().lower() for part in cookie.split(";")]


def test_pages_files_and_errors_carry_the_headers(client, logged_in):
    responses = {
        "dashboard": client.get("/"),
        "login page": client.get("/login"),
        "static file": client.get("/static/css/app.css"),
        "404 page": client.get("/no-such-page"),
        "htmx fragment": client.get("/", headers={"HX-Request": "true"}),
    }
    for name, response in responses.items():
        assert response.status_code in (200, 302, 404), name
        headers = response.headers
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, name
        assert headers["X-Frame-Options"] == "DENY", name
        assert headers["X-Content-Type-Options"] == "nosniff", name
        assert headers["Referrer-Policy"] == "same-origin", name
        assert "Strict-Transport-Security" not in headers, name
    policy = dict(part.split(" ", 1) for part in CONTENT_SECURITY_POLICY.split("; "))
    assert policy["script-src"] == policy["style-src"] == policy["default-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


def first_visit(app, **kwargs):
    """The login page as a new visitor sees it (a new client: the session cookie is set on first contact)."""
    return app.test_client().get("/login", **kwargs)


def test_plain_http_session_cookie_is_not_secure_and_a_forwarded_proto_is_ignored_without_proxy_fix(app):
    assert not is_secure(session_cookie(first_visit(app)))
    spoofed = first_visit(app, headers={"X-Forwarded-Proto": "https"})
    assert not is_secure(session_cookie(spoofed))
    assert "Strict-Transport-Security" not in spoofed.headers


def test_direct_https_makes_the_session_cookie_secure(app):
    response = first_visit(app, base_url="https://localhost")
    cookie = session_cookie(response)
    assert is_secure(cookie) and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # HSTS is opt-in: not sent until HSTS_SECONDS is set.
    assert "Strict-Transport-Security" not in response.headers


@pytest.mark.parametrize("app_overrides", [{"PROXY_FIX": True}])
def test_behind_proxy_fix_a_forwarded_https_request_gets_a_secure_cookie(app, client, auth, app_overrides):
    assert not is_secure(session_cookie(first_visit(app)))
    auth.create_user()
    forwarded = {"X-Forwarded-Proto": "https"}
    page = client.get("/login", headers=forwarded)
    assert is_secure(session_cookie(page))
    # Over HTTPS Flask-WTF also checks the Referer (a browser sends it: Referrer-Policy is same-origin).
    signed_in = client.post("/login", headers={**forwarded, "Referer": "https://localhost/login"}, data={
        "username": "alice", "password": TEST_PASSWORD, "csrf_token": csrf_token_from(page.text)})
    assert signed_in.status_code == 302
    assert is_secure(session_cookie(signed_in))  # the signed-in session too, not only the first cookie
    assert client.get("/", headers=forwarded).status_code == 200


@pytest.mark.parametrize("app_overrides", [{"HSTS_SECONDS": 31536000, "PROXY_FIX": True}])
def test_hsts_when_opted_in_and_only_over_https(app, app_overrides):
    assert first_visit(app, base_url="https://localhost").headers["Strict-Transport-Security"] == "max-age=31536000"
    forwarded = first_visit(app, headers={"X-Forwarded-Proto": "https"})
    assert forwarded.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in first_visit(app).headers


# A data block (type="application/json") is never run, so the policy does not apply to it (HTML's "data block").
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*\btype=\"application/json\")[^>]*>", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"(?<![\w-])style=[\"']", re.IGNORECASE)
STYLE_ELEMENT = re.compile(r"<style[\s>]", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"\son[a-z]+=[\"']", re.IGNORECASE)
JS_URL = re.compile(r"javascript:", re.IGNORECASE)
JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
HX_ON = re.compile(r"\bhx-on", re.IGNORECASE)  # htmx runs it through eval, which the policy refuses


def test_no_template_has_inline_script_style_or_handlers():
    templates = sorted(APP.glob("**/templates/**/*.html"))
    assert len(templates) > 40 and any("auth" in str(path) for path in templates)
    found = []
    for path in templates:
        # Jinja comments never reach the browser (blanked, keeping the line numbers).
        text = JINJA_COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), path.read_text())
        for name, pattern in (("inline <script>", INLINE_SCRIPT), ("style attribute", STYLE_ATTRIBUTE),
                              ("<style> element", STYLE_ELEMENT), ("on… handler", EVENT_HANDLER),
                              ("javascript: URL", JS_URL), ("hx-on attribute", HX_ON)):
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(APP)}:{line}: {name}: {match.group(0)!r}")
    assert not found, "the Content-Security-Policy would block:\n" + "\n".join(found)


def test_the_checks_above_catch_what_they_look_for():
    assert INLINE_SCRIPT.search("<script>alert(1)</script>") and not INLINE_SCRIPT.search('<script src="/a.js" defer>')
    assert STYLE_ATTRIBUTE.search('<div style="width: 3%">') and not STYLE_ATTRIBUTE.search('<div data-style="x">')
    assert EVENT_HANDLER.search('<a onclick="go()">') and not EVENT_HANDLER.search('<a data-on="x" hx-on="y">')
