"""Response headers every page carries, and cookies marked ``Secure`` whenever the request came over HTTPS.

The Content-Security-Policy allows only Proxboard's own files: no inline script, no inline style, no
``eval`` (templates keep their code in ``static/js`` and ``static/css``; htmx is told not to inject its
indicator ``<style>`` by the ``htmx-config`` meta tag in ``base.html``). ``img-src data:`` is there
because Bootstrap's stylesheet draws its select arrows, check marks and close buttons as ``data:`` SVGs.

HTTPS is what werkzeug says it is: ``wsgi.url_scheme``, which ``ProxyFix`` (setting ``PROXY_FIX``) sets
from ``X-Forwarded-Proto`` behind a TLS-terminating proxy.
"""
from __future__ import annotations

from flask import Flask, Response, current_app, has_request_context, request
from flask.sessions import SecureCookieSessionInterface

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "img-src 'self' data:",
    "style-src 'self'",
    "script-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "object-src 'none'",
))

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class HttpsAwareSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, with ``Secure`` set on an HTTPS request even when
    ``SESSION_COOKIE_SECURE`` is off (so plain-HTTP ``make run`` keeps working).

    The CSRF token of Flask-WTF lives in this session, so it is covered too.
    """

    def get_cookie_secure(self, app: Flask) -> bool:
        """``SESSION_COOKIE_SECURE``, or whether the current request is HTTPS (directly or via ProxyFix)."""
        return bool(super().get_cookie_secure(app) or (has_request_context() and request.is_secure))


def add_security_headers(response: Response) -> Response:
    """Add CSP, framing, sniffing and referrer headers (a view's own value wins), and HSTS when
    ``HSTS_SECONDS`` is above 0 and the request is HTTPS (a browser ignores it over plain HTTP)."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    seconds = int(current_app.config.get("HSTS_SECONDS") or 0)
    if seconds > 0 and request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", f"max-age={seconds}")
    return response


def init_app(app: Flask) -> None:
    """Send the headers on every response and use the HTTPS-aware session cookie."""
    app.session_interface = HttpsAwareSessionInterface()
    app.after_request(add_security_headers)
