"""Sending one message to one channel through Apprise, without ever logging the channel's URL.

Apprise (one maintained library for ntfy, Gotify, Discord, Slack, Telegram, Matrix, e-mail and
plain webhooks) takes the channel as a URL that holds its tokens or passwords, so every call here
runs with a filter on Apprise's own logger that blanks those parts out of its log lines.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

import apprise

log = logging.getLogger("app.alerts")
REDACTED = "[channel URL]"
# Apprise's own lines, and urllib3's request lines (they quote a webhook's path, its token with it).
_LOGGERS = (logging.getLogger("apprise"), logging.getLogger("urllib3.connectionpool"))
_PIECE = re.compile(r"[^/?&=:@.]+")


class ChannelURLError(ValueError):
    """The text is not a URL Apprise knows (the message never repeats the URL)."""


def secret_parts(url: str) -> list[str]:
    """The pieces of ``url`` that may be secret: the URL itself, its user and password, and every path or
    query piece that looks like a token (eight characters or more with a digit, or sixteen or more).
    Longest first."""
    parts = {url}
    try:
        split = urlsplit(url)
    except ValueError:
        return [url]
    for piece in (split.username, split.password):
        if piece:
            parts.update({piece, unquote(piece)})
    for piece in _PIECE.findall(f"{split.netloc}{split.path}?{split.query}"):
        if len(piece) >= 16 or (len(piece) >= 8 and any(char.isdigit() for char in piece)):
            parts.update({piece, unquote(piece)})
    return sorted((part for part in parts if len(part) >= 3), key=len, reverse=True)


class _Redact(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        record.msg, record.args = text, None
        record.exc_info, record.exc_text = None, None  # a traceback may quote the URL too
        return True


@contextmanager
def redacted(url: str) -> Iterator[None]:
    """While inside, Apprise's and urllib3's log lines carry no part of ``url`` that may be secret."""
    guard = _Redact(secret_parts(url))
    for logger in _LOGGERS:
        logger.addFilter(guard)
    try:
        yield
    finally:
        for logger in _LOGGERS:
            logger.removeFilter(guard)


def check_url(url: str) -> None:
    """Raise ``ChannelURLError`` unless Apprise knows ``url`` (a scheme it supports, well formed)."""
    with redacted(url):
        if not url or apprise.Apprise.instantiate(url) is None:
            raise ChannelURLError("Apprise does not recognise this channel URL (see the Apprise wiki for the "
                                  "URL of each service).")


def send(url: str, title: str, body: str) -> bool:
    """Hand one message to the channel at ``url``; True when Apprise says it was delivered.

    Apprise applies its own connect and read timeouts (4 s each by default, ``cto``/``rto`` in the
    URL). Never raises for a delivery failure (logged, without the URL); raises ``ChannelURLError``
    for a URL Apprise does not know.
    """
    with redacted(url):
        notifier = apprise.Apprise()
        if not notifier.add(url):
            raise ChannelURLError("Apprise does not recognise this channel URL.")
        try:
            return bool(notifier.notify(title=title, body=body))
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the pass; its text may hold the URL
            log.warning("alert delivery failed (%s)", type(exc).__name__)
            return False
