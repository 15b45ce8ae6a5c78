"""The web console as a person and an attacker meet it: a real WebSocket through the live server to the simulator's
termproxy and vncwebsocket (PVE 9.1), the refusals (viewer, foreign page, stopped container) and PVE 8.4, whose
termproxy refuses an API token's ticket."""
from __future__ import annotations

import json
import logging

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from app.models import AuditEntry, Event
from app.proxmox import ClusterVersion, ProxmoxClient, ProxmoxPermissionError
from app.proxmox.console import TOKEN_REFUSED, ConsoleError, open_console, tokens_can_open
from tests.fixtures.app import TEST_PASSWORD, csrf_token_from
from tests.fixtures.factories import make_user
from tests.fixtures.pve import SIM_PASSWORD, SIM_TOKEN, sim_settings
from tests.pvesim import PVESimulator
from tests.pvesim.api import RELEASES


def signed_in(live_server, username: str = "alice") -> requests.Session:
    """A requests session signed in on the live server (``vera`` is made a viewer)."""
    if username != "alice":
        from app.extensions import db
        from app.models import User

        with live_server.app.app_context():
            if db.session.scalar(db.select(User).filter_by(username=username)) is None:
                make_user(username, role="viewer")
    session = requests.Session()
    page = session.get(f"{live_server.url}/login", timeout=10)
    response = session.post(f"{live_server.url}/login", timeout=10, data={
        "username": username, "password": TEST_PASSWORD, "csrf_token": csrf_token_from(page.text)})
    assert response.ok and "/login" not in response.url
    return session


def console_socket(live_server, session: requests.Session, vmid: int, origin: str | None = None):
    """The console's WebSocket, opened as the page opens it (its cookie, its origin)."""
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    return connect(f"ws://127.0.0.1:{live_server.port}/containers/{vmid}/console/ws", open_timeout=30,
                   additional_headers={"Cookie": cookie, "Origin": origin or live_server.url}, proxy=None)


def news(ws, timeout: float = 30) -> dict:
    """The next JSON message of Proxboard (skipping terminal output)."""
    while True:
        message = ws.recv(timeout=timeout)
        if isinstance(message, str):
            return json.loads(message)


def read_until(ws, text: bytes, timeout: float = 30) -> bytes:
    """Terminal output up to and including ``text``."""
    seen = b""
    while text not in seen:
        message = ws.recv(timeout=timeout)
        assert isinstance(message, bytes), f"console closed early: {message} after {seen!r}"
        seen += message
    return seen


def running(pve):
    return next(ct for ct in sorted(pve.containers.values(), key=lambda c: c.vmid)
                if ct.status == "running" and not ct.template)


def test_the_console_answers_hostname_and_each_session_is_recorded(live_server, pve, caplog):
    caplog.set_level(logging.DEBUG)
    ct = running(pve)
    alice = signed_in(live_server)
    page = alice.get(f"{live_server.url}/containers/{ct.vmid}/console", timeout=10)
    assert page.status_code == 200 and 'data-testid="console"' in page.text
    assert "connect-src 'self' ws://127.0.0.1:" in page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in page.headers["Content-Security-Policy"]  # nothing else loosened

    with console_socket(live_server, alice, ct.vmid) as ws:
        assert news(ws) == {"type": "connected"}
        assert read_until(ws, b"# ").endswith(f"root@{ct.hostname}:~# ".encode())
        ws.send("1:100:30:")
        ws.send("2")
        ws.send("0:9:hostname\r")
        assert read_until(ws, b"~# ") == f"hostname\r\n{ct.hostname}\r\nroot@{ct.hostname}:~# ".encode()
        ws.send("0:5:exit\r")
        assert news(ws)["reason"] == "The console closed: the shell ended."

    calls = [(r["method"], r["path"]) for r in pve.requests if "console" in r["path"] or "vnc" in r["path"]
             or "termproxy" in r["path"]]
    base = f"/nodes/{ct.node}/lxc/{ct.vmid}"
    assert calls == [("POST", f"{base}/termproxy"), ("GET", f"{base}/vncwebsocket")]
    ticket = next(r for r in pve.requests if r["path"].endswith("/vncwebsocket"))["params"]["vncticket"]
    with live_server.app.app_context():
        from app.extensions import db

        events = db.session.scalars(db.select(Event.message).order_by(Event.id)).all()
        assert "Console opened by alice." in events
        assert any(e.startswith("Console of alice closed after ") and e.endswith(": the shell ended.") for e in events)
        entries = db.session.scalars(db.select(AuditEntry).where(AuditEntry.action == "container.console")
                                     .order_by(AuditEntry.id)).all()
        assert [(e.username, e.vmid, e.detail["console"]) for e in entries] == [
            ("alice", ct.vmid, "opened"), ("alice", ct.vmid, "closed")]
    assert ticket not in caplog.text and ticket not in page.text and "PVEVNC" not in page.text


def test_viewers_foreign_pages_and_stopped_containers_get_no_console(live_server, pve, monkeypatch):
    ct = running(pve)
    vera = signed_in(live_server, "vera")
    assert vera.get(f"{live_server.url}/containers/{ct.vmid}/console", timeout=10).status_code == 403
    with pytest.raises(InvalidStatus) as refused:
        console_socket(live_server, vera, ct.vmid)
    assert refused.value.response.status_code == 403

    alice = signed_in(live_server)
    with pytest.raises(InvalidStatus) as foreign:
        console_socket(live_server, alice, ct.vmid, origin="https://evil.example")
    assert foreign.value.response.status_code == 403

    stopped = next(c for c in pve.containers.values() if c.status == "stopped" and not c.template and not c.lock)
    page = alice.get(f"{live_server.url}/containers/{stopped.vmid}/console", timeout=10)
    assert "is stopped: start it to open its console." in page.text and 'data-testid="console"' not in page.text
    with console_socket(live_server, alice, stopped.vmid) as ws:
        assert "is stopped: start it to open its console." in news(ws)["reason"]
    monkeypatch.setitem(RELEASES["9.1"]["version"], "version", "9.0.12")  # before tokens could open a console
    page = alice.get(f"{live_server.url}/containers/{ct.vmid}/console", timeout=10)
    assert "Proxmox VE 9.0.12 does not let API tokens open a console (9.0.13 and later do)." in page.text
    assert not [r for r in pve.requests if "termproxy" in r["path"] or "vncwebsocket" in r["path"]]
    with live_server.app.app_context():
        from app.extensions import db

        refusals = db.session.scalars(db.select(AuditEntry).where(AuditEntry.outcome == "refused")).all()
        assert {(e.username, e.action) for e in refusals} >= {("vera", "container.console"), ("alice", "container.console")}
        assert not db.session.scalar(db.select(Event).where(Event.message.like("Console opened%")))


def test_pve_8_4_refuses_an_api_tokens_console_and_proxboard_says_why():
    assert tokens_can_open(ClusterVersion("9.0.13", "9.0")) and tokens_can_open(ClusterVersion("9.1.1", "9.1"))
    assert not tokens_can_open(ClusterVersion("9.0.12", "9.0")) and not tokens_can_open(ClusterVersion("8.4.14", "8.4"))
    with PVESimulator(nodes=1, containers=3, token=SIM_TOKEN, password=SIM_PASSWORD, pve_version="8.4") as sim:
        ct = running(sim)
        # a loaded CI machine once took over the default 10 s to answer the first upgrade of this fresh simulator
        with pytest.raises(ConsoleError) as refused, ProxmoxClient(sim_settings(sim, timeout=30)) as client, \
                open_console(client, ct.node, ct.vmid):
            pass
        assert refused.value.message == TOKEN_REFUSED
        password = sim_settings(sim, token_name=None, token_value=None, password=SIM_PASSWORD)
        with ProxmoxClient(password) as client, open_console(client, ct.node, ct.vmid) as console:
            console.send("hostname\r")  # a user's ticket still opens it on 8.4
            output = b""
            while f"{ct.hostname}\r\n".encode() not in output:
                output += console.receive(5) or b""
        sim.set_token_privileges({"/vms": ["VM.Audit"]})
        with pytest.raises(ProxmoxPermissionError) as forbidden, ProxmoxClient(sim_settings(sim)) as client, \
                open_console(client, ct.node, ct.vmid):
            pass
        assert forbidden.value.privilege == "VM.Console"
