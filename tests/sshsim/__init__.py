"""A real OpenSSH server on loopback, with a stand-in ``pct`` and canned containers.

See README.md in this folder for how commands run "inside" a fake container.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from . import realct

HERE = Path(__file__).resolve().parent
SSHD = os.environ.get("PROXBOARD_TEST_SSHD", "/usr/sbin/sshd")
# Programs that would change the host or reach the network: inside a fake container they only log.
LOGGED_FAKES = (
    "apt-get", "apt", "dpkg", "pip", "pip3", "npm", "useradd", "groupadd", "usermod", "userdel",
    "chpasswd", "passwd", "hostnamectl", "timedatectl", "service", "update-rc.d", "curl", "wget",
    "reboot", "shutdown", "locale-gen", "update-ca-certificates",
)
STANDARD_DIRS = ("etc", "etc/proxboard/credentials", "opt", "srv", "root", "home", "tmp", "var/log", "var/lib",
                 "usr/local/bin", "usr/local/sbin")

SYSTEMCTL = r"""#!/bin/sh
sim="$PROXBOARD_CT_ROOT/.sim"
case "$1" in
  list-units) cat "$sim/units.txt" ;;
  show) cat "$sim/show.txt" ;;
  *) echo "systemctl $*" >> "$sim/commands.log"
     if [ -f "$sim/exit/systemctl" ]; then exit "$(cat "$sim/exit/systemctl")"; fi ;;
esac
"""
CANNED = """#!/bin/sh
cat "$PROXBOARD_CT_ROOT/.sim/{name}.txt"
"""
# Alpine-like guests: OpenRC's rc-status and busybox's ps, netstat (canned, as the real ones print).
RC_STATUS = r"""#!/bin/sh
sim="$PROXBOARD_CT_ROOT/.sim"
case "$1" in
  -a|--all) cat "$sim/rc-status-all.txt" ;;
  -s|--servicelist) cat "$sim/rc-status-list.txt" ;;
  *) cat "$sim/rc-status-all.txt" ;;
esac
"""
BUSYBOX_PS = r"""#!/bin/sh
sim="$PROXBOARD_CT_ROOT/.sim"
case "$1" in
  -*o*) if [ -f "$sim/old-ps" ]; then echo "ps: invalid option -- 'e'" >&2; exit 1; fi
        cat "$sim/ps.txt" ;;
  *) cat "$sim/ps-plain.txt" ;;
esac
"""
# What an Alpine guest's busybox offers the discovery script (everything else is absent).
HOST_TOOLS = ("sh", "cat", "ls", "awk", "head", "sed", "grep", "tr", "readlink")
LOGGED = """#!/bin/sh
sim="$PROXBOARD_CT_ROOT/.sim"
echo "{name} $*" >> "$sim/commands.log"
echo "fake {name}: $*"
if [ -f "$sim/exit/{name}" ]; then exit "$(cat "$sim/exit/{name}")"; fi
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@dataclass
class FakeUnit:
    """A systemd service in a fake container, with the TCP ports its processes listen on.

    ``child_ports`` are opened by a child process of the main PID (like nginx workers or
    gunicorn), ``ports`` by the main process itself. Addresses default to 0.0.0.0.
    """

    unit: str
    active: str = "active"
    sub: str = "running"
    ports: list[int | tuple[str, int]] = field(default_factory=list)
    child_ports: list[int | tuple[str, int]] = field(default_factory=list)
    comm: str | None = None
    description: str = ""
    load: str = "loaded"


@dataclass
class FakeService:
    """An OpenRC service in an Alpine-like fake container (see ``FakeContainer.set_openrc``).

    ``state`` is what rc-status prints (``started``, ``stopped``, ``crashed`` …); ``runlevel``
    None means in no runlevel (only ``rc-status --servicelist`` lists it); ``pidfile`` False
    means start-stop-daemon kept no pidfile (the service is then matched by process name).
    """

    name: str
    state: str = "started"
    ports: list[int | tuple[str, int]] = field(default_factory=list)
    child_ports: list[int | tuple[str, int]] = field(default_factory=list)
    comm: str | None = None
    runlevel: str | None = "default"
    pidfile: bool = True


def _ipv4_hex(address: str) -> str:
    """``127.0.0.1`` → ``0100007F``, as /proc/net/tcp prints it on little-endian hosts."""
    return "".join(f"{int(part):02X}" for part in reversed(address.split(".")))


class FakeContainer:
    """A container directory under the server root; helpers write its canned command output."""

    def __init__(self, root: Path, vmid: int) -> None:
        self.vmid = vmid
        self.path = root / str(vmid)
        self.sim = self.path / ".sim"
        (self.sim / "bin").mkdir(parents=True, exist_ok=True)
        (self.sim / "exit").mkdir(exist_ok=True)
        for folder in STANDARD_DIRS:
            (self.path / folder).mkdir(parents=True, exist_ok=True)
        _script(self.sim / "bin" / "systemctl", SYSTEMCTL)
        for name in ("ss", "ps"):
            _script(self.sim / "bin" / name, CANNED.format(name=name))
        for name in LOGGED_FAKES:
            _script(self.sim / "bin" / name, LOGGED.format(name=name))
        self.set_status("running")
        self.set_units([])

    @classmethod
    def open(cls, root: Path, vmid: int) -> FakeContainer:
        """A handle on an existing fake container, leaving its state as it is."""
        fake = cls.__new__(cls)
        fake.vmid, fake.path = vmid, root / str(vmid)
        fake.sim = fake.path / ".sim"
        return fake

    def set_status(self, status: str) -> None:
        """``running`` or ``stopped`` (as ``pct status`` reports; exec refuses when stopped)."""
        (self.sim / "status").write_text(status)

    def set_units(self, units: list[FakeUnit], extra_processes: list[tuple[int, int, str]] = ()) -> None:
        """Write ``ss``/``systemctl``/``ps`` outputs consistent with ``units``."""
        ss = ["State  Recv-Q Send-Q  Local Address:Port   Peer Address:Port Process"]
        unit_lines, show_blocks = [], []
        ps = ["    1     0 systemd"]
        pid = 100
        for unit in units:
            comm = unit.comm or unit.unit.split("@")[0].removesuffix(".service")[:15]
            running = unit.active == "active" or unit.active in ("activating", "reloading", "deactivating")
            main_pid = pid if running else 0
            desc = unit.description or f"{comm} service"
            unit_lines.append(f"{unit.unit} {unit.load} {unit.active} {unit.sub} {desc}")
            show_blocks.append(
                f"MainPID={main_pid}\nId={unit.unit}\nActiveState={unit.active}\nSubState={unit.sub}\n"
            )
            if main_pid:
                ps.append(f"{main_pid:5d}     1 {comm}")
                owners: list[tuple[int, list]] = [(main_pid, unit.ports)]
                if unit.child_ports:
                    ps.append(f"{main_pid + 1:5d} {main_pid:5d} {comm}")
                    ps.append(f"{main_pid + 2:5d} {main_pid + 1:5d} {comm}")  # a grandchild
                    owners.append((main_pid + 2, unit.child_ports))
                for owner, ports in owners:
                    for port in ports:
                        addr, number = port if isinstance(port, tuple) else ("0.0.0.0", port)
                        ss.append(
                            f"LISTEN 0      511     {addr}:{number}      0.0.0.0:*    "
                            f'users:(("{comm}",pid={owner},fd=6))'
                        )
            pid += 10
        for ppid_pid, ppid, comm in extra_processes:
            ps.append(f"{ppid_pid:5d} {ppid:5d} {comm}")
        self.write_raw(ss="\n".join(ss), units="\n".join(unit_lines), show="\n".join(show_blocks), ps="\n".join(ps))

    def make_alpine(self, ports: str | None = "netstat", old_ps: bool = False) -> None:
        """Turn this container into an Alpine-like guest: OpenRC, busybox tools, no systemctl, no ss.

        ``ports``: ``"netstat"`` (busybox ``netstat -tlnp``), ``"ss-old"`` (an old iproute2 ss
        without ``pid=`` labels), ``"proc"`` (only ``/proc/net/tcp`` and ``/proc/<pid>/fd``) or None
        (no way to list ports at all). ``old_ps``: a busybox ps without ``-o`` (processes then come
        from ``/proc/<pid>/stat``). The container gets its own ``/proc`` and only HOST_TOOLS of the
        host's programs. Call ``set_openrc`` afterwards for its services.
        """
        hostbin = self.sim / "hostbin"
        hostbin.mkdir(exist_ok=True)
        for tool in HOST_TOOLS:
            if (found := shutil.which(tool)) and not (hostbin / tool).exists():
                (hostbin / tool).symlink_to(found)
        for name in ("systemctl", "ss", "netstat"):
            (self.sim / "bin" / name).unlink(missing_ok=True)
        _script(self.sim / "bin" / "rc-status", RC_STATUS)
        _script(self.sim / "bin" / "ps", BUSYBOX_PS)
        if ports in ("netstat", "ss-old"):
            _script(self.sim / "bin" / ports.removesuffix("-old"), CANNED.format(name="ports"))
        (self.sim / "old-ps").unlink(missing_ok=True)
        if old_ps:
            (self.sim / "old-ps").write_text("")
        (self.sim / "ports-tool").write_text(ports or "")
        (self.path / "proc").mkdir(exist_ok=True)
        self.set_openrc([])

    def set_openrc(self, services: list[FakeService], extra_processes: list[tuple[int, int, str]] = ()) -> None:
        """Write rc-status, ps, /proc, pidfiles and the port listing of an Alpine-like guest (make_alpine first)."""
        tool = (self.sim / "ports-tool").read_text()
        proc, run = self.path / "proc", self.path / "run"
        shutil.rmtree(proc, ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)
        proc.mkdir()
        (run / "openrc" / "daemons").mkdir(parents=True)
        processes: list[tuple[int, int, str]] = [(1, 0, "init")]
        sockets: list[tuple[str, int, int, str]] = []  # address, port, pid, comm
        levels: dict[str, list[str]] = {}
        listing = []
        pid = 200
        for service in services:
            comm = (service.comm or service.name)[:15]
            row = f" {service.name:<60} [  {service.state}  ]"
            listing.append(row)
            if service.runlevel:
                levels.setdefault(service.runlevel, []).append(row)
            if service.state not in ("started", "crashed"):
                pid += 10
                continue
            record = run / "openrc" / "daemons" / service.name
            record.mkdir()
            pidfile = f"/run/{service.name}.pid" if service.pidfile else ""
            (record / "001").write_text(f"exec=/usr/sbin/{comm}\nargv_0=/usr/sbin/{comm}\npidfile={pidfile}\n")
            if service.state == "crashed":  # its daemon is gone, the pidfile was left behind
                if pidfile:
                    (run / f"{service.name}.pid").write_text(f"{pid + 5}\n")
                pid += 10
                continue
            if pidfile:
                (run / f"{service.name}.pid").write_text(f"{pid}\n")
            processes.append((pid, 1, comm))
            owners = [(pid, service.ports)]
            if service.child_ports:
                processes += [(pid + 1, pid, comm), (pid + 2, pid + 1, comm)]
                owners.append((pid + 2, service.child_ports))
            for owner, ports in owners:
                for port in ports:
                    address, number = port if isinstance(port, tuple) else ("0.0.0.0", port)
                    sockets.append((address, number, owner, comm))
            pid += 10
        processes += list(extra_processes)
        all_rows = []
        for level in ("default", *sorted(set(levels) - {"default"})):
            all_rows += [f"Runlevel: {level}", *levels.get(level, [])]
        all_rows += ["Dynamic Runlevel: hotplugged", "Dynamic Runlevel: needed/wanted", "Dynamic Runlevel: manual"]
        (self.sim / "rc-status-all.txt").write_text("\n".join(all_rows) + "\n")
        (self.sim / "rc-status-list.txt").write_text("\n".join(listing) + "\n")
        (self.sim / "ps.txt").write_text("".join(f"{p:5d} {pp:5d} {c}\n" for p, pp, c in processes))
        (self.sim / "ps-plain.txt").write_text("PID   USER     TIME  COMMAND\n" + "".join(
            f"{p:5d} root      0:00 /usr/sbin/{c}\n" for p, _pp, c in processes))
        for number, parent, comm in processes:
            (proc / str(number) / "fd").mkdir(parents=True, exist_ok=True)
            (proc / str(number) / "stat").write_text(f"{number} ({comm}) S {parent} {number} {number} 0 -1 4194560\n")
        self._write_ports(tool, sockets)

    def _write_ports(self, tool: str, sockets: list[tuple[str, int, int, str]]) -> None:
        if tool == "netstat":  # busybox netstat -tlnp (networking/netstat.c)
            lines = ["Active Internet connections (only servers)",
                     "Proto Recv-Q Send-Q Local Address           Foreign Address         State       PID/Program name"]
            for address, port, pid, comm in sockets:
                local = f":::{port}" if address == "::" else f"{address}:{port}"
                lines.append(f"tcp{'6' if ':' in address else ' '}       0      0 {local:<23} {'0.0.0.0:*':<23} "
                             f"LISTEN      {pid}/{comm}")
            self.write_raw(ports="\n".join(lines))
        elif tool == "ss-old":  # iproute2 before pid=/fd= labels
            lines = ["State      Recv-Q Send-Q        Local Address:Port          Peer Address:Port "]
            for address, port, pid, comm in sockets:
                local = f":::{port}" if address == "::" else f"{'*' if address == '0.0.0.0' else address}:{port}"
                lines.append(f'LISTEN     0      128          {local:<20} *:*      users:(("{comm}",{pid},3))')
            self.write_raw(ports="\n".join(lines))
        elif tool == "proc":
            net = self.path / "proc" / "net"
            net.mkdir()
            header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
            rows: dict[str, list[str]] = {"tcp": [header], "tcp6": [header]}
            for index, (address, port, pid, _comm) in enumerate(sockets):
                inode, table = 40000 + index, "tcp6" if ":" in address else "tcp"
                local = "0" * 32 if table == "tcp6" else _ipv4_hex(address)  # tests use "::" for IPv6
                remote = "0" * len(local)
                rows[table].append(f"   {len(rows[table]) - 1}: {local}:{port:04X} {remote}:0000 0A "
                                   f"00000000:00000000 00:00000000 00000000     0        0 {inode} 1 "
                                   "0000000000000000 100 0 0 10 0")
                (self.path / "proc" / str(pid) / "fd" / str(3 + index)).symlink_to(f"socket:[{inode}]")
            for table, lines in rows.items():
                (net / table).write_text("\n".join(lines) + "\n")

    def write_raw(self, **outputs: str) -> None:
        """Replace canned outputs verbatim: ``ss``, ``units``, ``show``, ``ps``."""
        for name, text in outputs.items():
            (self.sim / f"{name}.txt").write_text(text + ("\n" if text and not text.endswith("\n") else ""))

    def set_credentials(self, name: str, content: str | dict[str, str]) -> Path:
        """Write ``/etc/proxboard/credentials/<name>`` (a dict becomes KEY=VALUE lines)."""
        if isinstance(content, dict):
            content = "".join(f"{key}={value}\n" for key, value in content.items())
        path = self.path / "etc/proxboard/credentials" / name
        path.write_text(content)
        return path

    def remove_credentials(self, name: str) -> None:
        """Delete a credential file."""
        (self.path / "etc/proxboard/credentials" / name).unlink()

    def fail_command(self, name: str, exit_code: int = 1) -> None:
        """Make a logged fake (``apt-get``, ``systemctl`` …) exit with ``exit_code``."""
        (self.sim / "exit" / name).write_text(str(exit_code))

    def commands(self) -> list[str]:
        """Lines logged by the fakes (``apt-get install -y nginx`` …), oldest first."""
        log = self.sim / "commands.log"
        return log.read_text().splitlines() if log.exists() else []

    def pct_calls(self) -> list[list[str]]:
        """Every ``pct`` call for this container, as argv lists."""
        log = self.sim / "pct.log"
        return [json.loads(line)["argv"] for line in log.read_text().splitlines()] if log.exists() else []

    def file(self, path: str) -> Path:
        """Where the container's absolute ``path`` lives on the host."""
        return self.path / path.lstrip("/")


class RealContainer:
    """A real, isolated Debian 12 root (tests/sshsim/realct.py) behind ``pct``: no canned outputs.

    ``boot()`` copies the cached base and starts it (``pct`` does that on first use too);
    ``run("cmd")`` runs a shell command inside, like ``pct exec`` without SSH.
    """

    def __init__(self, root: Path, vmid: int, hostname: str | None = None) -> None:
        self.vmid = vmid
        self.path = root / str(vmid)
        self.sim = self.path / ".sim"
        self.hostname = hostname or f"ct{vmid}"
        self.sim.mkdir(parents=True, exist_ok=True)
        (self.sim / "real").write_text(self.hostname + "\n")
        if not (self.sim / "status").exists():
            self.set_status("running")

    @classmethod
    def open(cls, root: Path, vmid: int) -> RealContainer:
        """A handle on an existing real container, leaving its state as it is."""
        real = cls.__new__(cls)
        real.vmid, real.path = vmid, root / str(vmid)
        real.sim = real.path / ".sim"
        real.hostname = (real.sim / "real").read_text().strip()
        return real

    @property
    def rootfs(self) -> Path:
        return realct.rootfs(self.path)

    def boot(self) -> RealContainer:
        realct.create(self.path, self.hostname)
        realct.start(self.path, self.hostname)
        return self

    def shutdown(self) -> None:
        """Stop every process of the container (it boots again on the next ``pct exec``)."""
        realct.stop(self.path)

    def set_status(self, status: str) -> None:
        """``running`` or ``stopped``; stopping also powers the root off."""
        (self.sim / "status").write_text(status)
        if status != "running" and realct.init_pid(self.path):
            realct.stop(self.path)

    def run(self, command: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        if not realct.init_pid(self.path):
            self.boot()
        return realct.run(self.path, command, timeout=timeout, check=check)

    def pct_calls(self) -> list[list[str]]:
        log = self.sim / "pct.log"
        return [json.loads(line)["argv"] for line in log.read_text().splitlines()] if log.exists() else []

    def file(self, path: str) -> Path:
        """Where the container's absolute ``path`` lives on the host (read it; write through ``run``)."""
        return self.rootfs / path.lstrip("/")


def remove_container(path: Path) -> None:
    """Power off a real root if it runs, then delete the container's folder."""
    if (path / ".sim" / "real").is_file():
        realct.stop(path)
    shutil.rmtree(path, ignore_errors=True)


class SSHServer:
    """OpenSSH's sshd on 127.0.0.1, root login by a throwaway key, stand-in ``pct`` on PATH."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.root = workdir / "containers"
        self.bin = workdir / "bin"
        self.host_key_path = workdir / "ssh_host_ed25519_key"
        self.user_key_path = workdir / "id_ed25519"
        self.other_key_path = workdir / "id_other"
        self.known_hosts_path = workdir / "known_hosts"
        self.log_path = workdir / "sshd.log"
        self._process: subprocess.Popen | None = None

    def start(self) -> SSHServer:
        """Generate keys, write the sshd config and start sshd in the foreground; wait until it answers."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.bin.mkdir(parents=True, exist_ok=True)
        for path in (self.host_key_path, self.user_key_path, self.other_key_path):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
        (self.workdir / "authorized_keys").write_text(Path(f"{self.user_key_path}.pub").read_text())
        _script(self.bin / "pct", f'#!/bin/sh\nexec "{sys.executable}" -I -S "{HERE / "pct.py"}" "$@"\n')
        self.known_hosts_path.write_text(self.known_hosts_line() + "\n")
        config = self.workdir / "sshd_config"
        config.write_text(
            f"""ListenAddress {self.host}
Port {self.port}
HostKey {self.host_key_path}
PidFile none
AuthorizedKeysFile {self.workdir / "authorized_keys"}
PermitRootLogin yes
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PrintMotd no
Subsystem sftp internal-sftp
MaxStartups 50:30:100
SetEnv PATH={self.bin}:/usr/sbin:/usr/bin:/sbin:/bin PROXBOARD_SIM_ROOT={self.root} PROXBOARD_SIM_NODE=pve1
LogLevel INFO
"""
        )
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start within 10s")

    def stop(self) -> None:
        """Stop sshd (it takes its connection processes with it), then every real root that runs."""
        # sshd first: a `pct exec` arriving while the roots were being stopped booted its root again after them.
        # A session already open outlives the listener, so a root it was booting is looked for once more.
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
        real = [path for path in (self.root.iterdir() if self.root.is_dir() else ())
                if (path / ".sim" / "real").is_file()]
        for path in real:
            realct.stop(path)
        if real:
            time.sleep(1)
            for path in real:
                if realct.init_pid(path):
                    realct.stop(path)

    @property
    def fingerprint(self) -> str:
        """The server's host key fingerprint, ``SHA256:…``."""
        return paramiko.Ed25519Key.from_private_key_file(str(self.host_key_path)).fingerprint

    def known_hosts_line(self) -> str:
        """The line trusting this server in a known_hosts file."""
        public = Path(f"{self.host_key_path}.pub").read_text().split()
        return f"[{self.host}]:{self.port} {public[0]} {public[1]}"

    def connection_pids(self) -> list[int]:
        """PIDs of sshd's per-connection processes (kill them to drop connections)."""
        assert self._process is not None
        children = Path(f"/proc/{self._process.pid}/task/{self._process.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def container(self, vmid: int) -> FakeContainer:
        """Create (or reset) the fake container ``vmid``, running with no services."""
        path = self.root / str(vmid)
        if path.exists():
            remove_container(path)
        return FakeContainer(self.root, vmid)

    def real_container(self, vmid: int, hostname: str | None = None, boot: bool = True) -> RealContainer:
        """Create (or reset) ``vmid`` as a real root; ``boot=False`` leaves the copy to the first ``pct`` call."""
        path = self.root / str(vmid)
        if path.exists():
            remove_container(path)
        real = RealContainer(self.root, vmid, hostname)
        return real.boot() if boot else real

    def clear(self) -> None:
        """Remove every container (real roots are powered off first)."""
        for path in self.root.iterdir():
            remove_container(path)
