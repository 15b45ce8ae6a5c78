"""HTTPS front-end of the simulator: TLS, auth, envelope, reason phrases, admin API."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import socket
import ssl
import tempfile
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from .api import Ctx, NoRoute
from .state import HA_STATES, PVEError

API_PREFIX = "/api2/json"


# --------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------

def make_self_signed_cert(host: str = "127.0.0.1") -> tuple[str, str, str]:
    """Create a self-signed EC certificate; returns (tmpdir, cert_path, key_path)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pvesim.local"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PVE Cluster Manager CA (sim)")])
    sans: list = [x509.DNSName("localhost"), x509.DNSName("pvesim.local")]
    for h in {host, "127.0.0.1", "::1"}:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    tmpdir = tempfile.mkdtemp(prefix="pvesim-")
    cert_path = os.path.join(tmpdir, "pve-root-ca.pem")
    key_path = os.path.join(tmpdir, "pve-ssl.key")
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    return tmpdir, cert_path, key_path


# --------------------------------------------------------------------------------------------
# Auth: tickets, CSRF tokens, API tokens
# --------------------------------------------------------------------------------------------

class AuthError(Exception):
    def __init__(self, reason: str, status: int = 401):
        super().__init__(reason)
        self.reason, self.status = reason, status


class Auth:
    def __init__(self, sim):
        self.sim = sim
        self.secret = os.urandom(32)

    def _sig(self, data: str) -> str:
        return base64.b64encode(hmac.new(self.secret, data.encode(), hashlib.sha256).digest()).decode()

    def make_ticket(self, user: str, ts: int | None = None) -> str:
        ts = int(time.time()) if ts is None else ts
        data = f"PVE:{user}:{ts:08X}"
        return f"{data}::{self._sig(data)}"

    def verify_ticket(self, ticket: str) -> str | None:
        m = re.match(r"^(PVE:([^:\s]+):([0-9A-F]{8}))::(.+)$", ticket or "")
        if not m or not hmac.compare_digest(self._sig(m.group(1)), m.group(4)):
            return None
        age = time.time() - int(m.group(3), 16)
        if age < -300 or age > self.sim.ticket_lifetime:
            return None
        return m.group(2)

    def make_csrf(self, user: str, ts: int | None = None) -> str:
        ts = int(time.time()) if ts is None else ts
        return f"{ts:08X}:{self._sig(f'{ts:08X}:{user}')[:43]}"

    def verify_csrf(self, user: str, token: str | None) -> bool:
        m = re.match(r"^([0-9A-F]{8}):(\S+)$", token or "")
        if not m or not hmac.compare_digest(self._sig(f"{m.group(1)}:{user}")[:43], m.group(2)):
            return False
        age = time.time() - int(m.group(1), 16)
        return -300 <= age <= self.sim.ticket_lifetime

    def login(self, params: dict) -> dict:
        username = params.get("username", "")
        if params.get("realm") and "@" not in username:
            username = f"{username}@{params['realm']}"
        password = params.get("password", "")
        ok = False
        if password.startswith("PVE:"):
            ok = self.verify_ticket(password) == username  # ticket renewal
        elif self.sim.users.get(username) is not None:
            ok = hmac.compare_digest(self.sim.users[username], password)
        if not ok:
            raise AuthError("authentication failure")
        res = {"username": username, "ticket": self.make_ticket(username),
               "CSRFPreventionToken": self.make_csrf(username),
               "cap": {"vms": {"VM.PowerMgmt": 1, "VM.Audit": 1, "VM.Allocate": 1, "VM.Config.Options": 1},
                       "storage": {"Datastore.Audit": 1, "Datastore.AllocateSpace": 1},
                       "nodes": {"Sys.Audit": 1}, "access": {}, "dc": {"Sys.Audit": 1}, "sdn": {},
                       "mapping": {}}}
        if self.sim.cluster.nodes_count > 1:
            res["clustername"] = self.sim.cluster_name
        return res

    def authenticate(self, method: str, headers) -> tuple[str, bool]:
        """Return (user, is_token). Raises AuthError."""
        authz = headers.get("Authorization") or ""
        m = re.match(r"^PVEAPIToken[= ](\S+?)!(\S+?)[=:](\S+)$", authz.strip())
        if m:
            user, tokenid, secret = m.groups()
            full = f"{user}!{tokenid}"
            expected = self.sim.tokens.get(full)
            if expected is None or not hmac.compare_digest(expected, secret):
                raise AuthError("Authentication failed!")
            return full, True
        ticket = None
        cookie = headers.get("Cookie") or ""
        cm = re.search(r"(?:^|;\s*)PVEAuthCookie=([^;]+)", cookie)
        if cm:
            from urllib.parse import unquote
            ticket = unquote(cm.group(1))
        elif authz.startswith("PVEAuthCookie="):
            ticket = authz[len("PVEAuthCookie="):]
        if not ticket:
            raise AuthError("No ticket")
        user = self.verify_ticket(ticket)
        if user is None:
            raise AuthError("Authentication failed!")
        if method != "GET" and not self.verify_csrf(user, headers.get("CSRFPreventionToken")):
            raise AuthError("Permission denied - invalid csrf token")
        return user, False


# --------------------------------------------------------------------------------------------
# HTTP handling
# --------------------------------------------------------------------------------------------

def _reason(msg: str) -> str:
    line = (msg or "").split("\n", 1)[0].replace("\r", " ")
    return line.encode("latin-1", "replace").decode("latin-1")


class _Drop(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One buffered write per response (flushed by handle_one_request) and no Nagle delay:
    # line-by-line header writes would otherwise cost a delayed-ACK round trip per request.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server_version = "pve-api-daemon/3.0"
    sys_version = ""
    timeout = 30

    # quiet ---------------------------------------------------------------------------------
    def log_message(self, fmt, *args):  # noqa: D401
        pass

    def setup(self):
        super().setup()
        self.server.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    @property
    def sim(self):
        return self.server.sim

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_HEAD(self):
        self._handle("HEAD")

    # response helpers ----------------------------------------------------------------------
    def _send(self, status: int, reason: str | None, body: bytes | None, ctype="application/json;charset=UTF-8",
              extra_headers=None):
        self.send_response(status, _reason(reason) if reason is not None else None)
        if body:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body or b"")))
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, reason: str | None, obj):
        self._send(status, reason, json.dumps(obj, separators=(",", ":")).encode())

    def _error(self, e: PVEError):
        if e.errors is not None:
            self._json(e.status, e.message, {"data": None, "errors": e.errors})
        else:
            msg = e.message if e.message.endswith("\n") else e.message + "\n"
            self._json(e.status, e.message, {"data": None, "message": msg})

    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    # main ----------------------------------------------------------------------------------
    def _handle(self, method: str):
        epoch = self.sim.epoch  # a request that arrived before a reset is not logged after it
        split = urlsplit(self.path)
        path = split.path
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        if path.startswith("/_sim/") or path == "/_sim":
            return self._admin(method, path, split.query, body)
        faults = self.sim.faults
        if faults.unreachable:
            raise _Drop()
        if faults.delay:
            time.sleep(faults.delay)
            if faults.unreachable:
                raise _Drop()
        if not path.startswith(API_PREFIX + "/") and path != API_PREFIX:
            return self._send(501, "Not Implemented", b"")
        rel = path[len(API_PREFIX):] or "/"
        if len(rel) > 1:
            rel = rel.rstrip("/")
        params: dict = {}
        for k, v in parse_qsl(split.query, keep_blank_values=True):
            params[k] = params[k] + "\0" + v if k in params else v
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if body and method in ("POST", "PUT"):
            if ctype == "application/json":
                try:
                    obj = json.loads(body)
                except ValueError:
                    return self._error(PVEError("malformed JSON body", 400))
                for k, v in (obj or {}).items():
                    params[k] = ("1" if v else "0") if isinstance(v, bool) else str(v)
            else:
                for k, v in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
                    params[k] = params[k] + "\0" + v if k in params else v
        rec = {"method": method, "path": rel, "full_path": path, "params": dict(params),
               "time": time.time(), "status": None}
        self.sim._record(rec, epoch)
        status = self._api(method, rel, params)
        rec["status"] = status

    def _api(self, method: str, rel: str, params: dict) -> int:
        sim = self.sim
        faults = sim.faults
        # authentication (before anything else, like pveproxy)
        try:
            if faults.auth_fail:
                raise AuthError("Authentication failed!")
            exempt = (rel == "/access/ticket" and method in ("GET", "POST")) or \
                     (rel == "/access/domains" and method == "GET")
            if exempt:
                user, is_token = None, False
            else:
                user, is_token = sim.auth.authenticate(method, self.headers)
        except AuthError as e:
            if sim.auth_failure_delay:
                time.sleep(sim.auth_failure_delay)
            self._send(e.status, e.reason, b"")
            return e.status
        try:
            fp = faults._match_path(method, rel)
            if fp is not None:
                raise PVEError(fp["message"], fp["status"])
            ep, path_params = sim.schema.lookup(method, rel)
            if ep is None:
                raise PVEError(f"Method '{method} {rel}' not implemented", 501)
            # pve-manager PVE/HTTPServer.pm rest_handler: URI/body duplicates only fail when they
            # differ; then token check, permission check, proxying to the node, validation, handler
            dup = {k: "duplicate parameter (already defined in URI) with conflicting values!"
                   for k in sorted(params) if k in path_params and params[k] != path_params[k]}
            if dup:
                raise PVEError("Parameter verification failed.", 400, dup)
            if is_token and not ep.allowtoken:
                raise PVEError(f"URI '{rel}' not available with API token, need proper ticket.", 403)
            merged = {**params, **path_params}
            limited = is_token and not sim.privileges.full
            if limited:
                sim.privileges.check_api2(ep.permissions, merged, user)
            node = path_params.get("node")
            if (node is not None and ep.path.startswith("/nodes/{node}") and node in sim.cluster.nodes
                    and ep.reaches_node and not sim.node_online(node)):
                # proxied to the dead node: AnyEvent::HTTP status 595 with errno text, no body
                self._send(595, "No route to host", b"")
                return 595
            errors = ep.validate(merged)
            if errors:
                raise PVEError("Parameter verification failed.", 400, errors)
            if ep.path == "/access/ticket" and method == "POST":
                try:
                    data = sim.auth.login(merged)
                except AuthError:
                    if sim.auth_failure_delay:
                        time.sleep(sim.auth_failure_delay)
                    self._json(401, "authentication failure", {"data": None})
                    return 401
                self._json(200, None, {"data": data})
                return 200
            if ep.path == "/access/ticket" and method == "GET":
                self._json(200, None, {"data": None})
                return 200
            if ep.path.endswith("/vncwebsocket") and (self.headers.get("Upgrade") or "").lower() == "websocket":
                # pveproxy answers the upgrade itself and relays the socket to termproxy (console.py)
                return sim.api.consoles.upgrade(self, Ctx(user, ep, is_token), merged)
            try:
                result = sim.api.dispatch(Ctx(user, ep, is_token, sim.privileges if limited else None), merged)
            except NoRoute:
                raise PVEError(f"Method '{method} {rel}' not implemented", 501)
            extra = {}
            if isinstance(result, tuple):
                result, extra = result
            self._json(200, None, {"data": result, **extra})
            return 200
        except PVEError as e:
            self._error(e)
            return e.status
        except Exception as e:  # a simulator bug: make it loud but keep serving
            traceback.print_exc()
            self._error(PVEError(f"pvesim internal error: {e!r}"))
            return 500

    # admin ---------------------------------------------------------------------------------
    def _admin(self, method, path, query, body):
        sim = self.sim
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return self._json(400, "Bad JSON", {"error": "bad json"})
        what = path[len("/_sim/"):].strip("/")
        try:
            if what == "faults" and method == "GET":
                return self._json(200, None, sim.faults.to_dict())
            if what == "faults" and method in ("POST", "PUT"):
                sim.faults.apply(payload)
                return self._json(200, None, sim.faults.to_dict())
            if what == "faults" and method == "DELETE":
                sim.faults.clear()
                return self._json(200, None, sim.faults.to_dict())
            if what == "reset" and method == "POST":
                sim.reset()
                return self._json(200, None, {"ok": True})
            if what == "requests" and method == "GET":
                return self._json(200, None, sim.requests)
            if what == "requests" and method == "DELETE":
                sim.clear_requests()
                return self._json(200, None, {"ok": True})
            if what == "token" and method == "GET":
                return self._json(200, None, {"privileges": sim.token_privileges})
            if what == "token" and method in ("POST", "PUT"):
                sim.set_token_privileges(payload.get("privileges"))
                return self._json(200, None, {"privileges": sim.token_privileges})
            if what == "token" and method == "DELETE":
                sim.set_token_privileges(None)
                return self._json(200, None, {"privileges": None})
            if what == "datacenter" and method == "GET":
                return self._json(200, None, {"next-id": sim.next_id_range})
            if what == "datacenter" and method in ("POST", "PUT"):
                if "next-id" in payload:
                    rng = payload["next-id"] or {}
                    sim.next_id_range = {k: int(rng[k]) for k in ("lower", "upper") if k in rng}
                return self._json(200, None, {"next-id": sim.next_id_range})
            if what == "containers" and method == "GET":
                with sim.cluster.lock:
                    out = [{"vmid": c.vmid, "node": c.node, "status": c.status, "name": c.name,
                            "tags": c.tags, "lock": c.lock, "template": c.template,
                            "ha": c.ha_state, "ha_state": c.ha_state, "ha_group": c.ha_group,
                            "config": c.config}
                           for c in sorted(sim.containers.values(), key=lambda c: c.vmid)]
                return self._json(200, None, out)
            if what == "containers" and method == "POST":
                ct = sim.add_container(**payload)
                return self._json(200, None, {"vmid": ct.vmid, "node": ct.node})
            if what == "containers" and method == "DELETE":
                sim.remove_all_containers()
                return self._json(200, None, {"ok": True})
            m = re.match(r"^containers/(\d+)$", what)
            if m and method in ("PATCH", "PUT", "POST"):
                ct = sim.containers[int(m.group(1))]
                if payload.get("ha_state") is not None and payload["ha_state"] not in HA_STATES:
                    raise ValueError(f"ha_state must be one of {', '.join(HA_STATES)} or null")
                with sim.cluster.lock:
                    for k, v in payload.items():
                        setattr(ct, k, v)
                return self._json(200, None, {"ok": True})
            if what == "idle" and method == "GET":
                q = dict(parse_qsl(query))
                return self._json(200, None, {"idle": sim.wait_idle(float(q.get("timeout", 10)))})
            if what == "state" and method == "GET":
                return self._json(200, None, {"url": sim.url, "pve_version": sim.pve_version,
                                              "containers": len(sim.containers),
                                              "tasks": len(sim.cluster.tasks),
                                              "running_tasks": len(sim.cluster.running_tasks())})
        except (TypeError, ValueError, KeyError) as e:
            return self._json(400, "Bad Request", {"error": str(e)})
        return self._json(404, "Not Found", {"error": f"unknown admin endpoint {method} {path}"})

    def do_PATCH(self):
        self._handle("PATCH")

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except _Drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except (ConnectionError, ssl.SSLError, TimeoutError, OSError):
            self.close_connection = True


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, sim, ssl_ctx):
        self.sim = sim
        self._conns: set = set()
        self._conns_lock = threading.Lock()
        self.ssl_ctx = ssl_ctx
        super().__init__(addr, Handler)
        self.socket = ssl_ctx.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def track(self, conn, add: bool):
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def close_all_connections(self):
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass  # TLS handshake failures, resets, ... are not interesting here
