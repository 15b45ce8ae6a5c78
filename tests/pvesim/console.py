"""Container consoles: ``termproxy``, the ``vncwebsocket`` upgrade and a small line-oriented shell behind it.

Behaviour follows the real sources:

- pve-container ``src/PVE/API2/LXC.pm`` ``termproxy``: a ``vncproxy`` task by the caller, a free port from 5900
  and a VNC ticket for (caller, ``/vms/{vmid}``, port); answers ``{user, ticket, port, upid}``.
  ``vncwebsocket`` verifies the ticket for the same caller, path and port (``verify_vnc_ticket``), then
  pveproxy relays the WebSocket to termproxy's port (the ``binary`` subprotocol, output in binary frames).
- proxmox-termproxy ``src/main.rs``: it accepts one client within 10 s, reads ``<authid>:<ticket>\\n``
  within 10 s and has it verified, writes ``OK`` and then reads ``0:<len>:<data>`` (input),
  ``1:<cols>:<rows>:`` (resize) and ignores anything else (``2`` is the keep-alive). On 8.4 (termproxy 1.x,
  pve-access-control 8) the ticket is verified through ``/access/ticket`` with the authid as user name, which
  fails for an API token: the connection closes without ``OK``. 9.0.13 and later verify through
  ``/access/vncticket``, which accepts a token's ticket.

The shell answers ``hostname``, ``whoami``, ``uname -a``, ``echo …`` and ``exit``; anything else is
``bash: <cmd>: command not found``. A stopped container's console closes right after ``OK`` (its
``lxc-console`` fails).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shlex
import socket
import threading
import time
from dataclasses import dataclass

from wsproto import ConnectionType, WSConnection
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Ping, Request, TextMessage)

from .state import PVEError

LISTEN_SECONDS = 10  # termproxy's listen_and_accept and read_ticket_line
TICKET_SECONDS = 120  # PVE::AccessControl VNC tickets are short-lived
IDLE_SECONDS = 120  # pveproxy drops a websocket that says nothing for this long


@dataclass
class Listening:
    """A termproxy waiting for its one client."""

    authid: str
    vmid: int
    node: str
    port: int
    ticket: str
    task: object
    issued: float


class Consoles:
    """The termproxy endpoints of the simulator and the sessions behind them."""

    def __init__(self, api):
        self.api = api
        self.sim = api.sim
        self.secret = os.urandom(16)
        self.listening: dict[int, Listening] = {}
        self.sessions = 0  # sessions that got ``OK`` (tests read it)

    def register(self, routes: dict) -> None:
        routes[("POST", "/nodes/{node}/lxc/{vmid}/termproxy")] = self.termproxy
        routes[("GET", "/nodes/{node}/lxc/{vmid}/vncwebsocket")] = self.vncwebsocket

    # --- API -----------------------------------------------------------------------------------
    def _ticket(self, authid: str, vmid: int, port: int, ts: int) -> str:
        data = f"PVEVNC:{ts:08X}"
        sig = hmac.new(self.secret, f"{data}:{authid}:/vms/{vmid}:{port}".encode(), hashlib.sha256).digest()
        return f"{data}::{base64.b64encode(sig).decode()}"

    def _valid(self, ticket: str, authid: str, vmid: int, port: int) -> bool:
        try:
            ts = int(ticket.split(":")[1], 16)
        except (IndexError, ValueError):
            return False
        fresh = -300 <= time.time() - ts <= TICKET_SECONDS
        return fresh and hmac.compare_digest(self._ticket(authid, vmid, port, ts), ticket)

    def termproxy(self, ctx, p):
        ct = self.api.cluster.get_ct(p["node"], p["vmid"])
        ctx.check(f"/vms/{ct.vmid}", ["VM.Console"])
        port = next((n for n in range(5900, 6000) if n not in self.listening), None)
        if port is None:
            raise PVEError("unable to find free port (5900-5999)")
        task = self.api.cluster.new_task(ct.node, "vncproxy", ct.vmid, ctx.user)
        task.log(f"starting lxc termproxy {task.upid}")
        ticket = self._ticket(ctx.user, ct.vmid, port, int(time.time()))
        waiting = Listening(ctx.user, ct.vmid, ct.node, port, ticket, task, time.time())
        self.listening[port] = waiting
        timer = threading.Timer(LISTEN_SECONDS, self._give_up, args=(waiting,))
        timer.daemon = True
        timer.start()
        return {"user": ctx.user, "ticket": ticket, "port": port, "upid": task.upid}

    def _give_up(self, waiting: Listening) -> None:
        with self.api.cluster.lock:
            if self.listening.get(waiting.port) is waiting:
                del self.listening[waiting.port]
                self._end(waiting.task, "failed waiting for client: timed out")

    def _end(self, task, status: str = "OK") -> None:
        with self.api.cluster.lock:
            if task.status == "running":
                if status != "OK":
                    task.log(f"TASK ERROR: {status}")
                else:
                    task.log("TASK OK")
                task.status, task.exitstatus, task.endtime = "stopped", status, int(time.time())

    def _verify(self, ctx, p) -> int:
        vmid, port = int(p["vmid"]), int(p["port"])
        self.api.cluster.get_ct(p["node"], vmid)
        if not self._valid(p["vncticket"], ctx.user, vmid, port):
            raise PVEError("permission denied - invalid vnc ticket", 401)
        return port

    def vncwebsocket(self, ctx, p):
        """Without an ``Upgrade`` header the API call only checks the ticket and answers the port."""
        return {"port": str(self._verify(ctx, p))}

    # --- the WebSocket -------------------------------------------------------------------------
    def upgrade(self, handler, ctx, params) -> int:
        """Answer the upgrade on ``handler``'s connection and run the session; returns the HTTP status."""
        with self.api.cluster.lock:
            port = self._verify(ctx, params)  # raises PVEError before the upgrade, as pveproxy answers
            waiting = self.listening.pop(port, None)
        ws = WSConnection(ConnectionType.SERVER)
        ws.initiate_upgrade_connection([(k.encode("latin-1"), v.encode("latin-1")) for k, v in handler.headers.items()],
                                       handler.path)
        request = next(e for e in ws.events() if isinstance(e, Request))
        sock = handler.connection
        handler.wfile.flush()
        sock.sendall(ws.send(AcceptConnection(subprotocol="binary" if "binary" in request.subprotocols else None)))
        handler.close_connection = True
        if waiting is None:  # termproxy already served its client or gave up: pveproxy cannot connect
            sock.sendall(ws.send(CloseConnection(code=1011, reason="")))
            return 101
        try:
            self._session(ws, sock, waiting)
        except (OSError, TimeoutError):
            pass
        finally:
            self._end(waiting.task)
        return 101

    def _session(self, ws: WSConnection, sock: socket.socket, waiting: Listening) -> None:
        sock.settimeout(LISTEN_SECONDS)
        stream = bytearray()
        shell: Shell | None = None

        def send(data: bytes) -> None:
            sock.sendall(ws.send(BytesMessage(data=data)))

        while True:
            data = sock.recv(65536)
            if not data:
                return
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, CloseConnection):
                    sock.sendall(ws.send(event.response()))
                    return
                if isinstance(event, Ping):
                    sock.sendall(ws.send(event.response()))
                elif isinstance(event, (TextMessage, BytesMessage)):
                    stream += event.data.encode() if isinstance(event.data, str) else event.data
            if shell is None:
                if b"\n" not in stream:
                    continue
                line, _, rest = bytes(stream).partition(b"\n")
                stream[:] = rest
                authid, _, ticket = line.decode("utf-8", "replace").partition(":")
                if not self._accepts(authid, ticket, waiting):
                    sock.sendall(ws.send(CloseConnection(code=1000, reason="")))
                    return
                self.sessions += 1
                ct = self.sim.containers.get(waiting.vmid)
                send(b"OK")
                if ct is None or ct.status != "running":
                    sock.sendall(ws.send(CloseConnection(code=1000, reason="")))
                    return
                from .api import RELEASES  # the node's kernel, as its status reports it (api imports this module)

                shell = Shell(ct.hostname or f"CT{ct.vmid}", " ".join(RELEASES[self.sim.pve_version]["kernel"]))
                sock.settimeout(IDLE_SECONDS)
                send(shell.greeting())
            output, ended = shell.feed(_typed(stream))
            if output:
                send(output)
            if ended:
                sock.sendall(ws.send(CloseConnection(code=1000, reason="")))
                return

    def _accepts(self, authid: str, ticket: str, waiting: Listening) -> bool:
        if authid != waiting.authid or ticket != waiting.ticket:
            return False
        # 8.4's termproxy checks the ticket as a password of user ``authid``: a token id is no user name.
        return not ("!" in authid and self.sim.pve_version == "8.4")


def _typed(stream: bytearray) -> bytes:
    """Take the complete messages off ``stream`` (termproxy's process_queue) and return the typed bytes."""
    typed = bytearray()
    while stream:
        kind = stream[:1]
        if kind == b"0":
            head = stream.find(b":", 2)
            if head < 0 or not stream[2:head].isdigit():
                break
            length = int(stream[2:head])
            if len(stream) < head + 1 + length:
                break
            typed += stream[head + 1:head + 1 + length]
            del stream[:head + 1 + length]
        elif kind == b"1":
            parts = bytes(stream).split(b":", 3)
            if len(parts) < 4:
                break
            del stream[:len(parts[0]) + len(parts[1]) + len(parts[2]) + 3]
        else:
            del stream[:1]
    return bytes(typed)


class Shell:
    """A tiny bash look-alike: echoes what is typed and runs a line at Enter."""

    def __init__(self, hostname: str, kernel: str):
        self.hostname = hostname
        self.kernel = kernel
        self.line = ""

    @property
    def prompt(self) -> bytes:
        return f"root@{self.hostname}:~# ".encode()

    def greeting(self) -> bytes:
        return b"\r\n" + self.prompt

    def feed(self, typed: bytes) -> tuple[bytes, bool]:
        out = bytearray()
        for char in typed.decode("utf-8", "replace"):
            if char in "\r\n":
                out += b"\r\n"
                answer, ended = self.run(self.line)
                self.line = ""
                out += answer
                if ended:
                    return bytes(out), True
                out += self.prompt
            elif char in "\x7f\b":
                if self.line:
                    self.line = self.line[:-1]
                    out += b"\b \b"
            elif char == "\x03":
                self.line = ""
                out += b"^C\r\n" + self.prompt
            elif char == "\x04" and not self.line:
                return bytes(out + b"logout\r\n"), True
            elif char >= " ":
                self.line += char
                out += char.encode()
        return bytes(out), False

    def run(self, line: str) -> tuple[bytes, bool]:
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        if not words:
            return b"", False
        command = words[0]
        if command == "exit":
            return b"logout\r\n", True
        if command == "hostname":
            text = self.hostname
        elif command == "whoami":
            text = "root"
        elif command == "uname":
            text = f"Linux {self.hostname} {self.kernel} x86_64 GNU/Linux" if "-a" in words[1:] else "Linux"
        elif command == "echo":
            text = " ".join(words[1:])
        else:
            text = f"bash: {command}: command not found"
        return (text + "\r\n").encode(), False
