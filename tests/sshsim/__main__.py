"""``python -m tests.sshsim``: the test SSH server as a stand-alone demo node for ``make run``.

Fake containers follow the Proxmox simulator (read through its admin endpoint): every
container it lists gets a directory, running ones a few familiar services chosen by
hostname, and services that scripts enable (``systemctl enable --now nginx``) come up
listening where such a service usually does. That is enough for the creation wizard,
provisioning and the Services tab to work end to end in demo mode.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from tests.sshsim import FakeContainer, FakeUnit, RealContainer, SSHServer, realct

BASE_UNITS = [FakeUnit("ssh.service", ports=[22], comm="sshd"), FakeUnit("cron.service")]
# Where the services of the starter catalog (and their look-alikes) usually listen.
DEMO_PORTS = {
    "nginx": [80], "apache2": [80], "postgresql": [5432], "mariadb": [3306], "redis-server": [6379],
    "AdGuardHome": [53, 80], "jellyfin": [8096], "code-server": [8080], "grafana-server": [3000],
}
BY_HOSTNAME = {"web": "nginx", "db": "postgresql", "media": "jellyfin", "dns": "AdGuardHome", "dev": "code-server"}
ENABLED = re.compile(r"^systemctl (?:enable --now|enable|start|restart|reload-or-restart) (\S+)")
# Beyond the test fakes: what the starter catalog's scripts touch, so they run to the end here.
DEMO_LOGGED = ("nginx", "runuser", "chown", "id", "tar", "gpg", "update-locale")
DEMO_SCRIPTS = {
    "dpkg": """#!/bin/sh
echo "dpkg $*" >> "$PROXBOARD_CT_ROOT/.sim/commands.log"
[ "$1" = --print-architecture ] && echo amd64
exit 0
""",
    # No internet in the demo: "downloads" are empty files.
    "curl": """#!/bin/sh
echo "curl $*" >> "$PROXBOARD_CT_ROOT/.sim/commands.log"
while [ $# -gt 0 ]; do [ "$1" = -o ] && : > "$2"; shift; done
exit 0
""",
}
DEMO_FILES = {
    "etc/nginx/sites-available/default": "", "etc/nginx/sites-enabled/default": "",
    "etc/postgresql/15/main/postgresql.conf": "#listen_addresses = 'localhost'\n",
    "etc/postgresql/15/main/pg_hba.conf": "local all postgres peer\n", "var/www/html/index.nginx-debian.html": "",
    "etc/systemd/system/AdGuardHome.service": "", "opt/AdGuardHome/AdGuardHome.yaml": "",
}


def units_for(names: list[str]) -> list[FakeUnit]:
    """The base units plus ``names``, each listening where such a service usually does."""
    units = list(BASE_UNITS)
    for name in dict.fromkeys(names):
        unit = name if name.endswith(".service") else f"{name}.service"
        base = unit.removesuffix(".service").split("@")[0]
        units.append(FakeUnit(unit, ports=DEMO_PORTS.get(base, []), comm=base[:15]))
    return units


def prepare_demo_container(fake: FakeContainer) -> None:
    """Add the demo's extra fakes and the files packages would have installed."""
    from tests.sshsim import LOGGED, _script

    for name in DEMO_LOGGED:
        _script(fake.sim / "bin" / name, LOGGED.format(name=name))
    for name, text in DEMO_SCRIPTS.items():
        _script(fake.sim / "bin" / name, text)
    for relative, text in DEMO_FILES.items():
        path = fake.path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def follow(server: SSHServer, admin_url: str, context: ssl.SSLContext) -> None:
    """Mirror the simulator's containers as fake containers, once."""
    with urllib.request.urlopen(f"{admin_url}/containers", context=context, timeout=5) as response:
        listed = json.load(response)
    listed = listed.get("data", listed) if isinstance(listed, dict) else listed
    for ct in listed:
        if ct.get("template"):
            continue
        path = server.root / str(ct["vmid"])
        if REAL_ROOTS and follow_real(server, ct, path):
            continue
        if (path / ".sim").is_dir():
            fake = FakeContainer.open(server.root, ct["vmid"])
        else:
            fake = server.container(ct["vmid"])
            prepare_demo_container(fake)
        seeded_file, key_file = path / ".sim" / "seeded", path / ".sim" / "units.key"
        if not seeded_file.exists():
            name = str(ct.get("name") or "")
            seeded_file.write_text(",".join(svc for prefix, svc in BY_HOSTNAME.items() if name.startswith(prefix)))
        seeded = [svc for svc in seeded_file.read_text().split(",") if svc]
        enabled = [match.group(1) for line in fake.commands() if (match := ENABLED.match(line))]
        wanted = ",".join(seeded + enabled)
        if not key_file.exists() or key_file.read_text() != wanted:
            fake.set_units(units_for(seeded + enabled))
            key_file.write_text(wanted)
        fake.set_status("running" if ct.get("status") == "running" else "stopped")


# Containers are real roots (tests/sshsim/realct.py) unless isolation is unavailable (main() says why).
REAL_ROOTS = False


def follow_real(server: SSHServer, ct: dict, path: Path) -> bool:
    """Mirror ``ct`` as a real root, copied from the base by ``pct`` on first use; False: keep a folder."""
    status = "running" if ct.get("status") == "running" else "stopped"
    if not (path / ".sim" / "real").is_file():  # new, or a folder left by a run without isolation
        hostname = re.sub(r"[^a-z0-9-]+", "-", str(ct.get("name") or "").lower()).strip("-")[:63]
        server.real_container(ct["vmid"], hostname=hostname or None, boot=False).set_status(status)
    elif (path / ".sim" / "status").read_text().strip() != status:
        RealContainer.open(server.root, ct["vmid"]).set_status(status)
    return True


class DemoNode(SSHServer):
    """The test SSH server, keeping its keys and port across runs of ``make run``.

    The app trusts the host key in ``known_hosts`` and signs in with ``id_ed25519``: a node that
    came back with new keys (or on another port) would have to be trusted again, and ssh-keygen
    would stop at "Overwrite (y/n)?" over the old files. ``client_key`` (a private key with its
    ``.pub`` beside it) replaces ``id_ed25519``, so one key file signs in to several nodes.
    """

    def __init__(self, workdir: Path, client_key: Path | None = None) -> None:
        super().__init__(workdir)
        if client_key is not None:
            self.user_key_path = client_key
        self.port_file = workdir / "port"
        with contextlib.suppress(OSError, ValueError):
            port = int(self.port_file.read_text())
            if _port_free(self.host, port):
                self.port = port
        self.port_file.write_text(str(self.port))

    def start(self) -> SSHServer:
        """Start sshd, generating only the keys a previous run did not leave."""
        run = subprocess.run

        def keygen_once(argv, *args, **kwargs):
            if argv[:1] == ["ssh-keygen"] and Path(argv[-1]).is_file() and Path(f"{argv[-1]}.pub").is_file():
                return subprocess.CompletedProcess(argv, 0)
            return run(argv, *args, **kwargs)

        # SSHServer.start calls ssh-keygen for each key unconditionally; only this process runs meanwhile.
        subprocess.run = keygen_once
        try:
            return super().start()
        finally:
            subprocess.run = run


def _port_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` (the last run's port can be taken again)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as sshd binds: TIME_WAIT is no obstacle
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--pve-admin", required=True, help="the simulator's admin URL, https://127.0.0.1:PORT/_sim")
    parser.add_argument("--pve-ca", required=True, help="the simulator's CA certificate")
    parser.add_argument("--client-key", type=Path,
                        help="accept this existing private key (PATH and PATH.pub, e.g. another node's key file) "
                             "instead of making one")
    args = parser.parse_args()
    if args.client_key is not None:
        args.client_key = args.client_key.resolve()
        # Both halves must exist: ssh-keygen would otherwise be asked to overwrite the private key.
        if not (args.client_key.is_file() and Path(f"{args.client_key}.pub").is_file()):
            parser.error(f"--client-key {args.client_key}: the key or its .pub is missing")
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    running = True

    def stop(*_):
        nonlocal running
        running = False

    # Before sshd starts: a TERM right after the lines below must still stop sshd.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = DemoNode(args.workdir, args.client_key).start()
    print(f"sshsim listening on {server.host}:{server.port}", flush=True)
    print(f"key file: {server.user_key_path}", flush=True)
    print(f"known hosts: {server.known_hosts_path}", flush=True)
    global REAL_ROOTS
    problem = realct.isolation_problem()
    REAL_ROOTS = problem is None
    marker = server.root / realct.NO_ISOLATION
    marker.unlink(missing_ok=True)
    if not REAL_ROOTS:
        marker.write_text(f"{problem}\n")
    if REAL_ROOTS:
        print(f"isolation: real roots (Debian 12 copies of {realct.cache_root()}, own namespaces)", flush=True)
        threading.Thread(target=realct.ensure_base, daemon=True).start()  # first run: about 80 s, once
    else:
        print(f"isolation: unavailable ({problem}): containers are folders of canned outputs and "
              "template scripts are refused (they would run on this machine); browse, but do not provision", flush=True)
    try:
        context = ssl.create_default_context(cafile=args.pve_ca)
        while running:
            try:
                follow(server, args.pve_admin.rstrip("/"), context)
            except OSError as exc:
                print(f"sshsim: cannot read the simulator: {exc}", file=sys.stderr, flush=True)
            time.sleep(0.3)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
