"""A container's console in Proxmox: ``termproxy`` and its ``vncwebsocket``, spoken as pve-xtermjs speaks them.

``open_console`` asks ``POST /nodes/{node}/lxc/{vmid}/termproxy`` for a console (Proxmox starts a ``vncproxy``
task running proxmox-termproxy on a port, which waits 10 s for its one client) and opens
``GET …/vncwebsocket?port=…&vncticket=…`` as a WebSocket over the client's own TLS settings and credentials
(the API token header, or the ticket cookie with password login). On that socket termproxy's protocol runs
(pve-xtermjs ``main.js``, termproxy ``main.rs``): the first message is ``<user>:<ticket>\\n`` and Proxmox answers
``OK``; then ``0:<bytes>:<data>`` is typed input, ``1:<cols>:<rows>:`` a resize and ``2`` a keep-alive, and
whatever Proxmox sends is the terminal's raw output.

Since PVE 9.0.13 termproxy verifies the ticket through ``/access/vncticket``, which accepts a token's ticket;
before it, termproxy asked ``/access/ticket`` with the token id as user name, which fails, so Proxmox closes the
socket instead of answering ``OK`` (``TOKEN_CONSOLE_SINCE``, ``tokens_can_open``). The ticket is a secret: it is
never logged and never leaves this module except on that socket.

The websockets library's synchronous client: explicit open, receive and close timeouts, TLS through an
``ssl.SSLContext`` we build from ``PVE_VERIFY_SSL``, and a background thread of its own that answers pings.
"""
from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from .client import ProxmoxClient
from .errors import ProxmoxError, ProxmoxUnreachable
from .models import ClusterVersion

TOKEN_CONSOLE_SINCE = (9, 0, 13)  # pve-access-control 9.0.4 (/access/vncticket) with proxmox-termproxy 2.0.3
HANDSHAKE_SECONDS = 10.0  # termproxy's own wait for the ticket line (read_ticket_line)
CLOSE_SECONDS = 2.0
MAX_FRAME = 1 << 20
TOKEN_REFUSED = ("Proxmox closed the console without accepting its ticket. Proxmox VE before 9.0.13 does not let "
                 "API tokens open a console; upgrade Proxmox, or open the console in the Proxmox web interface.")


class ConsoleError(ProxmoxError):
    """The console could not be opened, or Proxmox ended it; ``message`` says why in words."""


@dataclass(frozen=True)
class TermProxy:
    """What ``termproxy`` answered: the port termproxy listens on, the user its ticket is for, its task."""

    port: int
    user: str
    upid: str
    ticket: str = field(repr=False)


def tokens_can_open(version: ClusterVersion) -> bool:
    """Whether this Proxmox VE release lets an API token open a console (9.0.13 and later)."""
    parts = tuple(int(n) for n in re.findall(r"\d+", version.version)[:3])
    return len(parts) >= 2 and parts + (0,) * (3 - len(parts)) >= TOKEN_CONSOLE_SINCE


def start_termproxy(client: ProxmoxClient, node: str, vmid: int) -> TermProxy:
    """Start a console for the container (POST /nodes/{node}/lxc/{vmid}/termproxy; needs VM.Console on
    /vms/{vmid}). Raises ProxmoxError (permission, unreachable…) or ConsoleError for an answer without a ticket."""
    raw = client._call("post", f"nodes/{node}/lxc/{vmid}/termproxy", op="termproxy", node=node, vmid=vmid) or {}
    try:
        return TermProxy(port=int(raw["port"]), user=str(raw["user"]), upid=str(raw.get("upid") or ""),
                         ticket=str(raw["ticket"]))
    except (KeyError, TypeError, ValueError):
        raise ConsoleError("Proxmox started no console (its answer had no port or ticket).",
                           operation="termproxy", node=node, vmid=vmid) from None


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    """The TLS context PVE_VERIFY_SSL asks for: the system CAs, a CA bundle file, or no verification."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


def _auth_headers(client: ProxmoxClient) -> dict[str, str]:
    """The API token header, or the login ticket's cookie (proxmoxer logged in with the password)."""
    settings = client.settings
    if settings.auth_method == "token":
        return {"Authorization": f"PVEAPIToken={settings.user}!{settings.token_name}={settings.token_value}"}
    api, _fresh = client._connection()
    ticket = getattr(api._store["session"].auth, "pve_auth_ticket", "")
    return {"Cookie": f"PVEAuthCookie={quote(ticket, safe='')}"}


class Console:
    """An open console: ``send``/``resize``/``keepalive`` towards Proxmox, ``receive`` its output."""

    def __init__(self, socket: ClientConnection, first: bytes = b"") -> None:
        self._socket = socket
        self._first = first

    def send(self, data: str) -> None:
        """Type ``data`` (termproxy's ``0:<length in bytes>:<data>``). Raises ConsoleError when closed."""
        self._send(f"0:{len(data.encode())}:{data}")

    def resize(self, cols: int, rows: int) -> None:
        """Tell the terminal's size (``1:<cols>:<rows>:``)."""
        self._send(f"1:{cols}:{rows}:")

    def keepalive(self) -> None:
        """Keep Proxmox's side open (``2``, what pve-xtermjs sends every 30 s)."""
        self._send("2")

    def _send(self, message: str) -> None:
        try:
            self._socket.send(message)
        except ConnectionClosed:
            raise ConsoleError("The console was closed by Proxmox.") from None

    def receive(self, timeout: float) -> bytes | None:
        """The next output, or None when there was none within ``timeout`` seconds. Raises ConsoleError once
        Proxmox closed the console (the shell ended, the container stopped)."""
        if self._first:
            first, self._first = self._first, b""
            return first
        try:
            data = self._socket.recv(timeout=timeout)
        except TimeoutError:
            return None
        except ConnectionClosed:
            raise ConsoleError("The console was closed by Proxmox.") from None
        return data if isinstance(data, bytes) else data.encode()

    def close(self) -> None:
        """Close the socket (termproxy then ends its task); never raises."""
        try:
            self._socket.close()
        except Exception:  # noqa: BLE001  (closing a broken socket can fail in many ways; it is closed either way)
            pass


@contextmanager
def open_console(client: ProxmoxClient, node: str, vmid: int) -> Iterator[Console]:
    """Start termproxy and connect to it through GET /nodes/{node}/lxc/{vmid}/vncwebsocket (the WebSocket
    upgrade, with VM.Console on /vms/{vmid}), then authenticate with the ticket as pve-xtermjs does; a context
    manager whose exit closes the console.

    Raises ProxmoxError when termproxy cannot be started, ProxmoxUnreachable when the WebSocket cannot be
    opened, ConsoleError when Proxmox refuses it or closes it before ``OK`` (``TOKEN_REFUSED`` with a token).
    """
    settings = client.settings
    proxy = start_termproxy(client, node, vmid)
    query = urlencode({"port": proxy.port, "vncticket": proxy.ticket})
    url = f"wss://{settings.host}:{settings.port}/api2/json/nodes/{quote(node)}/lxc/{vmid}/vncwebsocket?{query}"
    context = {"operation": "vncwebsocket", "node": node, "vmid": vmid}
    try:
        socket = connect(url, ssl=_ssl_context(settings.verify_ssl), additional_headers=_auth_headers(client),
                         subprotocols=["binary"], compression=None, proxy=None, user_agent_header="Proxboard",
                         open_timeout=settings.timeout, close_timeout=CLOSE_SECONDS, max_size=MAX_FRAME)
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise ConsoleError(f"Proxmox refused the console (HTTP {status} {exc.response.reason_phrase}).",
                           **context) from None
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        raise ProxmoxUnreachable(f"The console could not be opened at {settings.address}: {type(exc).__name__}.",
                                 **context) from None
    with socket:
        try:
            socket.send(f"{proxy.user}:{proxy.ticket}\n")
            answer = socket.recv(timeout=HANDSHAKE_SECONDS)
        except (ConnectionClosed, TimeoutError):
            answer = b""
        answer = answer if isinstance(answer, bytes) else answer.encode()
        if not answer.startswith(b"OK"):
            refused = TOKEN_REFUSED if settings.auth_method == "token" else "Proxmox did not accept the console's ticket."
            raise ConsoleError(refused, **context)
        yield Console(socket, answer[2:])
