"""A container's web console: the page with the terminal (``/containers/<vmid>/console``) and the WebSocket it
talks to (``/containers/<vmid>/console/ws``), relayed to Proxmox's termproxy by ``app.proxmox.console``.

A page of its own rather than a tab: the container page swaps its live part every ``REFRESH_SECONDS`` and after
every action, which would cut the shell; this page keeps one session for as long as it is open, and can sit in
a browser tab beside the container page.

The browser speaks termproxy's own messages to Proxboard (``0:<bytes>:<data>`` typed, ``1:<cols>:<rows>:``
resized, ``2`` keep-alive); Proxboard checks and forwards them, and sends back the terminal's output as binary
frames and its own news as JSON text frames (``{"type": "connected"}``, ``{"type": "closed", "reason": …}``).
The handshake is refused (403) to a role that may not act, and to a page of another origin: a WebSocket
handshake carries the session cookie from any page, so its ``Origin`` is the CSRF check. Each session is an
event of the container (opened by whom; closed, after how long, why) and two audit entries. A session ends
when either side closes it, when the user typed nothing for ``CONSOLE_IDLE_SECONDS``, or when the browser
stopped sending keep-alives. Each open console holds one server thread (and two of the libraries') meanwhile.
"""
from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import abort, current_app, g, make_response, render_template, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from app import audit
from app.containers import bp
from app.containers.detail import _load
from app.containers.inventory import ContainerView
from app.events import record_event
from app.extensions import db
from app.proxmox import ProxmoxError, get_proxmox
from app.proxmox.console import Console, ConsoleError, open_console, tokens_can_open
from app.security_headers import CONTENT_SECURITY_POLICY

log = logging.getLogger(__name__)
sock = Sock()

TICK_SECONDS = 1.0  # how often each direction looks at the stop flag
KEEPALIVE_SECONDS = 90  # the page sends ``2`` every 30 s; three missed ones mean the browser is gone
CLOSE_WAIT_SECONDS = 3  # for the page to close the socket once told why
MAX_INPUT = 64 * 1024  # one typed message (a paste) at most
MESSAGE_RE = re.compile(r"^(?:0:(\d{1,6}):(.*)|1:(\d{1,4}):(\d{1,4}):|2)$", re.DOTALL)


def span(seconds: float) -> str:
    """How long, for people: ``15 minutes``, ``1 minute``, ``2 min 5 s``, ``42 s``."""
    seconds = int(seconds)
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60} minute{'s' if seconds != 60 else ''}"
    minutes, seconds = divmod(seconds, 60)
    return (f"{minutes} min " if minutes else "") + f"{seconds} s"


# -- business rules ---------------------------------------------------------------------------------------------

def unavailable_reason(view: ContainerView) -> str | None:
    """Why the container has no console now (not running, Proxmox unreachable, a token on PVE before 9.0.13),
    or None; asks Proxmox for its version (GET /version) only when an API token would open the console."""
    if view.stale:
        return view.stale_reason or "Proxmox cannot be reached, so no console can be opened."
    if view.template:
        return "A Proxmox template cannot run, so it has no console."
    if view.pve_status == "stopped":
        return f"{view.name} is stopped: start it to open its console."
    if view.pve_status != "running":
        return f"{view.name} is not running, so it has no console."
    pve = get_proxmox()
    if pve.settings is not None and pve.settings.auth_method == "token":
        try:
            version = pve.version()
        except ProxmoxError as exc:
            return f"Proxmox did not say its version: {exc.message}"
        if not tokens_can_open(version):
            return (f"Proxmox VE {version.version} does not let API tokens open a console (9.0.13 and later do). "
                    "Upgrade Proxmox, or open the console in the Proxmox web interface.")
    return None


@dataclass
class Session:
    """One console session: who opened it on which container, and when (monotonic and for the event)."""

    view: ContainerView
    username: str
    started: float


def session_opened(view: ContainerView, username: str) -> Session:
    """Record that ``username`` opened the console (an event of the container and an audit entry)."""
    if view.record_id is not None:
        record_event(view.record_id, "log", f"Console opened by {username}.",
                     {"requested_by": username, "console": "opened"})
    audit.record("container.console", vmid=view.vmid, target=f"CT {view.vmid} ({view.name})",
                 detail={"console": "opened"})
    db.session.commit()
    return Session(view, username, time.monotonic())


def session_closed(session: Session, why: str) -> None:
    """Record the end of ``session``: after how long and why."""
    seconds = int(time.monotonic() - session.started)
    view = session.view
    if view.record_id is not None:
        record_event(view.record_id, "log", f"Console of {session.username} closed after {span(seconds)}: {why}.",
                     {"requested_by": session.username, "console": "closed", "seconds": seconds})
    audit.record("container.console", vmid=view.vmid, target=f"CT {view.vmid} ({view.name})",
                 detail={"console": "closed", "seconds": seconds, "reason": why})
    db.session.commit()


# -- the relay --------------------------------------------------------------------------------------------------

class _Ended(Exception):
    """The session is over; ``args[0]`` says why, in words for the event."""


def _forward(message: str, console: Console) -> bool:
    """Pass one browser message on to Proxmox; True when the user typed (keep-alives and resizes are not
    activity). Raises _Ended for a message termproxy's protocol does not have."""
    match = MESSAGE_RE.match(message)
    if match is None:
        raise _Ended("the browser sent a message the console does not speak")
    length, data, cols, rows = match.groups()
    if length is not None:
        if int(length) != len(data.encode()) or int(length) > MAX_INPUT:
            raise _Ended("the browser sent a malformed message")
        console.send(data)
        return True
    if cols is not None:
        console.resize(max(1, int(cols)), max(1, int(rows)))
    else:
        console.keepalive()
    return False


@contextmanager
def _ending(ended: list[str], stop: threading.Event):
    """Note why one direction of the relay ended (``ended[0]`` is the first reason) and stop the other."""
    try:
        yield
    except _Ended as exc:
        ended.append(str(exc))
    except ConsoleError:
        ended.append("the shell ended")
    except ConnectionClosed:
        ended.append("the browser closed it")
    finally:
        stop.set()


def relay(ws, console: Console, idle_seconds: float) -> str:
    """Copy the browser's messages to Proxmox and Proxmox's output to the browser until one side closes, the
    user is idle for ``idle_seconds`` or the browser stops sending keep-alives; returns why it ended."""
    stop = threading.Event()
    ended: list[str] = []

    def output() -> None:
        with _ending(ended, stop):
            while not stop.is_set():
                data = console.receive(TICK_SECONDS)
                if data:
                    ws.send(data)

    pump = threading.Thread(target=output, name="console-output", daemon=True)
    pump.start()
    typed = heard = time.monotonic()
    with _ending(ended, stop):
        while not stop.is_set():
            message = ws.receive(timeout=TICK_SECONDS)
            now = time.monotonic()
            if message is not None:
                heard = now
                if _forward(message if isinstance(message, str) else message.decode("utf-8", "replace"), console):
                    typed = now
            if now - typed > idle_seconds:
                raise _Ended(f"nothing was typed for {span(idle_seconds)}")
            if now - heard > KEEPALIVE_SECONDS:
                raise _Ended("the browser stopped answering")
    console.close()
    pump.join(TICK_SECONDS * 2)
    return ended[0] if ended else "it ended"


def _tell(ws, kind: str, **fields) -> None:
    """Send the page one JSON news message; a browser already gone is no error."""
    try:
        ws.send(json.dumps({"type": kind, **fields}))
    except ConnectionClosed:
        pass


def _goodbye(ws, reason: str) -> None:
    """Tell the page why the console closed, let it close the WebSocket (it does on this news), then end the TCP
    connection as the server should (RFC 6455 7.1.1): else werkzeug's server writes the end of an HTTP response
    after the last frame, which the browser reports as a broken frame."""
    _tell(ws, "closed", reason=reason)
    deadline = time.monotonic() + CLOSE_WAIT_SECONDS
    try:
        while time.monotonic() < deadline:
            ws.receive(timeout=TICK_SECONDS)
    except ConnectionClosed:
        pass
    try:
        ws.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


# -- views ------------------------------------------------------------------------------------------------------

def _same_origin() -> bool:
    """Whether the handshake comes from a Proxboard page (its ``Origin`` is this server's scheme and host)."""
    origin = urlsplit(request.headers.get("Origin") or "")
    return f"{origin.scheme}://{origin.netloc}".lower() == f"{request.scheme}://{request.host}".lower()


@bp.before_request
def refuse_foreign_websockets():
    """Refuse a WebSocket handshake from a page of another origin (Cross-Site WebSocket Hijacking) before it is
    upgraded; a script signed in by its API token sends no cookie, so no Origin is asked of it."""
    if request.headers.get("Upgrade", "").lower() != "websocket" or g.get("api_token") is not None:
        return None
    if _same_origin():
        return None
    audit.record(request.endpoint or "containers.console_ws", outcome="refused", target=request.path,
                 detail={"reason": "foreign origin", "origin": (request.headers.get("Origin") or "")[:100]})
    db.session.commit()
    abort(403, description="A console can only be opened from Proxboard's own pages.")


@bp.get("/<int:vmid>/console")
def console(vmid: int):
    """The console page: the terminal for a running container, else why there is none."""
    view = _load(vmid)
    response = make_response(render_template("containers/console.html", ct=view, reason=unavailable_reason(view),
                                             idle=span(current_app.config["CONSOLE_IDLE_SECONDS"])))
    response.headers["Content-Security-Policy"] = console_policy()
    response.headers["Cache-Control"] = "no-store"
    return response


def console_policy() -> str:
    """The page's policy: Proxboard's own, with WebSockets to this very host (``connect-src``; 'self' alone
    does not cover ws:/wss: in every browser)."""
    scheme = "wss" if request.is_secure else "ws"
    return f"{CONTENT_SECURITY_POLICY}; connect-src 'self' {scheme}://{request.host}"


@sock.route("/<int:vmid>/console/ws", bp=bp)
def console_ws(ws, vmid: int):
    """The WebSocket of the console page: opens the console in Proxmox and relays it until either side ends."""
    view = _load(vmid)
    if reason := unavailable_reason(view):
        _goodbye(ws, reason)
        return
    with ExitStack() as opened:
        try:
            console = opened.enter_context(open_console(get_proxmox(), view.node, view.vmid))
        except ProxmoxError as exc:
            log.warning("console of CT %s on %s not opened: %s", view.vmid, view.node, exc.message)
            _goodbye(ws, exc.message)
            return
        session = session_opened(view, g.user.username)
        _tell(ws, "connected")
        why = relay(ws, console, current_app.config["CONSOLE_IDLE_SECONDS"])
    log.info("console of CT %s opened by %s closed: %s", view.vmid, session.username, why)
    session_closed(session, why)
    _goodbye(ws, f"The console closed: {why}.")
