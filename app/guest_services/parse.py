"""Pure parsers for the discovery script's output. Bad lines are skipped with a warning, never an exception.

The script (discovery.DISCOVERY_SCRIPT) prints sections after ``@@proxboard <name>`` marker lines and
a few one-line markers: ``@@proxboard begin``, ``@@proxboard init systemd|openrc|none``,
``@@proxboard gap <key> <why>`` (something it could not check), ``@@proxboard credfile <name>``
and ``@@proxboard end``. Which sections appear depends on what the guest has.
"""
from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass, field

log = logging.getLogger("app.guest_services")

MARKER = "@@proxboard "
_UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.\\@-]+\.service$")
_RC_NAME = re.compile(r"^[A-Za-z0-9_.@:+-]+$")
# newer ss: ("nginx",pid=1234,fd=6); older iproute2's ss: ("nginx",1234,6)
_SS_USER = re.compile(r'\("([^"]*)",(?:pid=)?(\d+)')
_SOCKET = re.compile(r"socket:\[(\d+)\]")
_RC_LINE = re.compile(r"^\s*(\S+)\s+\[\s*(.*?)\s*\]\s*$")
_CRED_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_CRED_FILE = re.compile(r"^[A-Za-z0-9_.@:-]+$")
_TCP_LISTEN = "0A"  # TCP_LISTEN in the kernel's tcp_states.h, as /proc/net/tcp prints it
GAP_SUBJECTS = {
    "ports": "listening ports",
    "owners": "which process holds each port",
    "states": "service states",
    "processes": "processes",
}
GAP_REASONS = {
    "no-port-tool": "no ss, netstat or /proc/net/tcp",
    "no-init-system": "no systemd or OpenRC",
    "no-process-tool": "no ps or /proc",
}
PORT_TOOLS = {"ss": "ss", "netstat": "netstat", "proc-tcp": "/proc/net/tcp"}


@dataclass(frozen=True, slots=True)
class Gap:
    """Something discovery could not check, and why (``key`` is one of GAP_SUBJECTS)."""

    key: str
    why: str

    @property
    def what(self) -> str:
        """The subject in words: ``listening ports``, ``service states`` …"""
        return GAP_SUBJECTS.get(self.key, self.key)

    def __str__(self) -> str:
        return f"{self.what}: {self.why}"

    def as_dict(self) -> dict[str, str]:
        """JSON-ready ``{"key", "what", "why"}`` (stored in an Operation's params)."""
        return {"key": self.key, "what": self.what, "why": self.why}


@dataclass(frozen=True, slots=True)
class Listener:
    """A listening TCP socket and the processes holding it (empty when the tool did not say)."""

    address: str
    port: int
    pids: tuple[int, ...]

    @property
    def loopback_only(self) -> bool:
        """True when reachable only from inside the container."""
        host = self.address.strip("[]").split("%")[0]
        if host == "localhost":
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        return (mapped or address).is_loopback


@dataclass(frozen=True, slots=True)
class Unit:
    """A service of the guest's init system.

    systemd: a line of ``systemctl list-units`` (``active``/``sub`` are ACTIVE/SUB).
    OpenRC: a line of ``rc-status`` (``active`` is the state word such as ``started`` or
    ``crashed``, ``sub`` the whole bracketed status, e.g. ``started 00:12:01 (0)``).
    """

    name: str  # without ".service"
    load: str
    active: str
    sub: str
    description: str = ""
    init: str = "systemd"


@dataclass(frozen=True, slots=True)
class Process:
    """One process: from ``ps`` (any of its formats) or ``/proc/<pid>/stat``; ppid 0 when unknown."""

    pid: int
    ppid: int
    comm: str


@dataclass
class DiscoveryOutput:
    """Every section of one run of the discovery script, parsed."""

    listeners: list[Listener] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)
    main_pids: dict[str, int] = field(default_factory=dict)
    processes: dict[int, Process] = field(default_factory=dict)
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    complete: bool = False
    init: str = "systemd"  # "systemd", "openrc" or "none"
    port_source: str | None = None  # "ss", "netstat", "proc-tcp"; None: ports were not read
    unreadable_ports: int = 0
    gaps: list[Gap] = field(default_factory=list)
    # OpenRC only: every service's state (``rc-status --servicelist``), daemon records and pidfiles
    service_states: dict[str, Unit] = field(default_factory=dict)
    daemons: dict[str, dict[str, str]] = field(default_factory=dict)
    pidfiles: dict[str, int] = field(default_factory=dict)

    @property
    def ports_checked(self) -> bool:
        """True when every listening port could be read, so a missing one really is missing."""
        return self.port_source is not None and self.unreadable_ports == 0 and not self.gap("ports")

    @property
    def states_checked(self) -> bool:
        """True when an init system reported service states."""
        return self.init in ("systemd", "openrc") and not self.gap("states")

    def gap(self, key: str) -> Gap | None:
        """The gap recorded for ``key``, if any."""
        return next((gap for gap in self.gaps if gap.key == key), None)


@dataclass
class Sections:
    """The script output split at its markers."""

    sections: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)
    complete: bool = False
    init: str | None = None
    gaps: list[Gap] = field(default_factory=list)


def split_sections(text: str) -> Sections:
    """Split the script output at ``@@proxboard <section>`` markers.

    One-line markers (``begin``, ``init X``, ``gap KEY WHY``, ``end``) do not open a section;
    ``credfile NAME`` opens a credential file. A marker line never ends up in a section.
    """
    split = Sections()
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(MARKER):
            words = line[len(MARKER):].split(" ", 1)
            argument = words[1].strip() if len(words) == 2 else ""
            if words[0] == "credfile" and argument:
                current = split.files.setdefault(argument, [])
            elif words[0] == "end":
                split.complete = True
                current = None
            elif words[0] == "begin":
                current = None
            elif words[0] == "init":
                split.init = argument or None
            elif words[0] == "gap":
                key, _sep, why = argument.partition(" ")
                if key:
                    why = why.strip()
                    split.gaps.append(Gap(key, GAP_REASONS.get(why, why or "not available")))
            else:
                current = split.sections.setdefault(words[0], [])
            continue
        if current is not None:
            current.append(line)
    return split


def _port_of(text: str) -> tuple[str, int] | None:
    address, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return address or "*", int(port)


def read_ss(lines: list[str]) -> tuple[list[Listener], int]:
    """Parse ``ss -tlnp`` of any iproute2 (header optional): (listeners, unreadable lines).

    Process columns both new (``users:(("sshd",pid=99,fd=4))``) and old
    (``users:(("sshd",99,4))``) are read; a line without one has no pids.
    """
    listeners, skipped = [], 0
    for line in lines:
        fields = line.split()
        if fields and fields[0] in ("tcp", "tcp6"):  # a Netid column (ss -a or some builds)
            fields = fields[1:]
        if not fields or fields[0] in ("State", "Netid", "Recv-Q"):
            continue
        if fields[0] != "LISTEN" or len(fields) < 5:
            log.warning("skipping unreadable ss line: %r", line[:200])
            skipped += 1
            continue
        found = _port_of(fields[3])
        if found is None:
            log.warning("skipping ss line without a port: %r", line[:200])
            skipped += 1
            continue
        pids = tuple(dict.fromkeys(int(pid) for _comm, pid in _SS_USER.findall(" ".join(fields[5:]))))
        listeners.append(Listener(found[0], found[1], pids))
    return listeners, skipped


def parse_ss(lines: list[str]) -> list[Listener]:
    """Parse ``ss -tlnp`` output into listeners (see read_ss)."""
    return read_ss(lines)[0]


def read_netstat(lines: list[str]) -> tuple[list[Listener], int]:
    """Parse ``netstat -tlnp`` of net-tools or busybox: (listeners, unreadable lines).

    Rows are ``tcp 0 0 0.0.0.0:22 0.0.0.0:* LISTEN 123/sshd`` (``tcp6`` and ``:::22`` for IPv6);
    the PID/Program column is ``-`` for sockets of other users and absent without ``-p``.
    """
    listeners, skipped = [], 0
    for line in lines:
        fields = line.split()
        if not fields or fields[0] in ("Active", "Proto") or line.startswith(("(", " will not")):
            continue
        if not fields[0].startswith("tcp"):
            if fields[0] not in ("udp", "udp6", "raw", "raw6", "unix"):
                log.warning("skipping unreadable netstat line: %r", line[:200])
                skipped += 1
            continue
        if len(fields) < 6 or fields[5] != "LISTEN":
            if len(fields) < 6:
                log.warning("skipping unreadable netstat line: %r", line[:200])
                skipped += 1
            continue
        found = _port_of(fields[3])
        if found is None:
            log.warning("skipping netstat line without a port: %r", line[:200])
            skipped += 1
            continue
        pid = fields[6].split("/", 1)[0] if len(fields) > 6 else ""
        listeners.append(Listener(found[0], found[1], (int(pid),) if pid.isdigit() else ()))
    return listeners, skipped


def parse_netstat(lines: list[str]) -> list[Listener]:
    """Parse ``netstat -tlnp`` output into listeners (see read_netstat)."""
    return read_netstat(lines)[0]


def _proc_address(hex_address: str) -> str:
    """``0100007F`` → ``127.0.0.1``; 32 hex digits → an IPv6 address in brackets.

    The kernel prints each 32-bit word in host byte order: little-endian on the x86-64 and
    arm64 nodes Proxmox runs on.
    """
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        return str(ipaddress.IPv4Address(words))
    return f"[{ipaddress.IPv6Address(words)}]"


def read_proc_tcp(lines: list[str], fd_lines: list[str] = ()) -> tuple[list[Listener], int]:
    """Parse ``/proc/net/tcp`` + ``/proc/net/tcp6`` rows in state 0A (LISTEN): (listeners, unreadable).

    ``fd_lines`` (the script's ``proc-fd`` section) are ``pid <N>`` lines each followed by that
    process's ``ls -l /proc/<N>/fd`` lines; ``-> socket:[<inode>]`` links tie sockets to pids.
    """
    owners: dict[str, list[int]] = {}
    pid: int | None = None
    for line in fd_lines:
        words = line.split()
        if len(words) == 2 and words[0] == "pid":
            pid = int(words[1]) if words[1].isdigit() else None
            continue
        match = _SOCKET.search(line)
        if match and pid is not None:
            owners.setdefault(match.group(1), []).append(pid)
    listeners, skipped = [], 0
    for line in lines:
        fields = line.split()
        if not fields or fields[0] == "sl":
            continue
        try:
            local, state, inode = fields[1], fields[3], fields[9]
            hex_address, hex_port = local.split(":")
            if state != _TCP_LISTEN:
                continue
            address, port = _proc_address(hex_address), int(hex_port, 16)
        except (IndexError, ValueError):
            log.warning("skipping unreadable /proc/net/tcp line: %r", line[:200])
            skipped += 1
            continue
        listeners.append(Listener(address, port, tuple(dict.fromkeys(owners.get(inode, ())))))
    return listeners, skipped


def parse_units(lines: list[str]) -> list[Unit]:
    """Parse ``systemctl list-units --type=service --all --no-legend --plain``."""
    units = []
    for line in lines:
        if line.lstrip().startswith(("●", "*")):  # failed units carry a bullet without --plain
            line = line.lstrip()[1:]
        fields = line.split(None, 4)
        if not fields:
            continue
        if len(fields) < 4 or not _UNIT_NAME.match(fields[0]):
            log.warning("skipping unreadable unit line: %r", line[:200])
            continue
        name, load, active, sub = fields[:4]
        units.append(Unit(name.removesuffix(".service"), load, active, sub, fields[4] if len(fields) > 4 else ""))
    return units


def parse_show(lines: list[str]) -> dict[str, int]:
    """Parse ``systemctl show -p Id -p MainPID …`` blocks into ``{unit name: main pid}``."""
    main_pids: dict[str, int] = {}
    block: dict[str, str] = {}
    for line in [*lines, ""]:
        if not line.strip():
            unit, pid = block.get("Id", ""), block.get("MainPID", "")
            if unit and pid.isdigit():
                main_pids[unit.removesuffix(".service")] = int(pid)
            elif block:
                log.warning("skipping systemctl show block without Id/MainPID: %r", sorted(block)[:5])
            block = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            block[key.strip()] = value.strip()
    return main_pids


def parse_ps(lines: list[str]) -> dict[int, Process]:
    """Parse ``ps -eo pid=,ppid=,comm=``."""
    processes = {}
    for line in lines:
        fields = line.split(None, 2)
        if not fields:
            continue
        if len(fields) < 3 or not fields[0].isdigit() or not fields[1].isdigit():
            if fields[0] != "PID":
                log.warning("skipping unreadable ps line: %r", line[:200])
            continue
        processes[int(fields[0])] = Process(int(fields[0]), int(fields[1]), fields[2].strip())
    return processes


def parse_openrc(lines: list[str]) -> list[Unit]:
    """Parse ``rc-status --all`` / ``rc-status --servicelist`` (or their ``-f ini`` form) into units.

    Rows are `` sshd   [  started  ]`` (OpenRC's rc-status.c: ``started``, ``started 01:02:03 (0)``
    for supervised daemons, ``stopped``, ``crashed``, ``failed``, ``starting``, ``stopping``,
    ``inactive``, ``scheduled``, ``unsupervised``); ``Runlevel:`` headers are skipped and a service
    listed under several runlevels is kept once.
    """
    units: dict[str, Unit] = {}
    for line in lines:
        stripped = line.strip()
        if (not stripped or stripped.startswith(("*", "Runlevel:", "Dynamic Runlevel:", "Stacked Runlevel:"))
                or (stripped.startswith("[") and stripped.endswith("]"))):
            continue
        match = _RC_LINE.match(line)
        if match:
            name, status = match.group(1), match.group(2)
        else:
            name, sep, status = stripped.partition(" = ")  # rc-status -f ini
            if not sep:
                log.warning("skipping unreadable rc-status line: %r", line[:200])
                continue
            name, status = name.strip(), status.strip()
        if not _RC_NAME.match(name) or not status:
            log.warning("skipping unreadable rc-status line: %r", line[:200])
            continue
        units.setdefault(name, Unit(name, "loaded", status.split()[0], status, init="openrc"))
    return list(units.values())


def parse_openrc_daemons(lines: list[str]) -> dict[str, dict[str, str]]:
    """Parse ``<service> <key>=<value>`` lines from ``/run/openrc/daemons/<service>/NNN`` files
    (``exec=``, ``argv_N=``, ``pidfile=``, written by start-stop-daemon) and
    ``/run/openrc/options/<service>/child_pid`` (``child_pid=``, from supervise-daemon)."""
    daemons: dict[str, dict[str, str]] = {}
    for line in lines:
        service, _sep, pair = line.strip().partition(" ")
        key, sep, value = pair.partition("=")
        if not sep or not _RC_NAME.match(service):
            if line.strip():
                log.warning("skipping unreadable OpenRC daemon line: %r", line[:200])
            continue
        if value:
            daemons.setdefault(service, {}).setdefault(key, value)
    return daemons


def pidfile_key(path: str) -> str:
    """The part of a pidfile path after its last ``/run/`` (``/var/run`` is a link to ``/run``)."""
    return path.rsplit("/run/", 1)[-1] if "/run/" in path else path


def parse_pidfiles(lines: list[str]) -> dict[str, int]:
    """Parse ``<path> <pid>`` lines into ``{pidfile_key(path): pid}``; files without a pid are left out."""
    pidfiles: dict[str, int] = {}
    for line in lines:
        path, _sep, pid = line.strip().rpartition(" ")
        if path and pid.isdigit():
            pidfiles.setdefault(pidfile_key(path), int(pid))
    return pidfiles


def _command_name(word: str) -> str:
    """``/usr/sbin/sshd`` → ``sshd``, ``[kthreadd]`` → ``kthreadd``, ``nginx:`` → ``nginx``."""
    return word.strip("[]{}()").rsplit("/", 1)[-1].rstrip(":") or word


def parse_ps(lines: list[str]) -> dict[int, Process]:
    """Parse ``ps`` output of procps or busybox into ``{pid: Process}``.

    Without a header the columns are ``pid ppid comm`` (``ps -eo pid=,ppid=,comm=``). With one,
    the PID, PPID and COMMAND/CMD/COMM/Command columns are found by name, so busybox's
    ``ps -o pid,ppid,comm``, its plain ``PID USER VSZ STAT COMMAND`` (no PPID: ppid 0) and
    ``ps -l`` all work.
    """
    processes: dict[int, Process] = {}
    columns: dict[str, int] | None = None
    for line in lines:
        fields = line.split()
        if not fields:
            continue
        if "PID" in fields:
            names = {name.upper(): index for index, name in enumerate(fields)}
            command = next((names[key] for key in ("COMMAND", "CMD", "COMM", "ARGS") if key in names), None)
            columns = {"pid": names["PID"], "ppid": names.get("PPID", -1), "comm": command if command is not None else -1}
            continue
        if columns is None:
            if len(fields) < 3 or not fields[0].isdigit() or not fields[1].isdigit():
                log.warning("skipping unreadable ps line: %r", line[:200])
                continue
            processes[int(fields[0])] = Process(int(fields[0]), int(fields[1]), line.split(None, 2)[2].strip())
            continue
        pid_index, ppid_index, comm_index = columns["pid"], columns["ppid"], columns["comm"]
        pid = fields[pid_index] if pid_index < len(fields) else ""
        ppid = fields[ppid_index] if 0 <= ppid_index < len(fields) else "0"
        if not pid.isdigit() or not ppid.isdigit() or comm_index < 0:
            log.warning("skipping unreadable ps line: %r", line[:200])
            continue
        # busybox leaves VSZ blank for kernel threads, shifting the command one column left
        word = fields[comm_index] if comm_index < len(fields) else fields[-1]
        processes[int(pid)] = Process(int(pid), int(ppid), _command_name(word))
    return processes


def parse_proc_stat(lines: list[str]) -> dict[int, Process]:
    """Parse ``/proc/<pid>/stat`` lines (``123 (nginx) S 1 …``; comm may hold spaces and parens)."""
    processes: dict[int, Process] = {}
    for line in lines:
        if not line.strip():
            continue
        head, sep, tail = line.rpartition(")")
        pid, _open, comm = head.partition(" (")
        rest = tail.split()
        if not sep or not pid.strip().isdigit() or len(rest) < 2 or not rest[1].isdigit():
            log.warning("skipping unreadable /proc stat line: %r", line[:200])
            continue
        processes[int(pid)] = Process(int(pid), int(rest[1]), comm)
    return processes


def parse_credentials(name: str, lines: list[str]) -> dict[str, str]:
    """Parse a KEY=VALUE credential file; comments and blank lines are ignored.

    A line that is not KEY=VALUE is skipped with a warning naming the file and line number
    only: the line may hold a secret.
    """
    values: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        key = key.strip().removeprefix("export ").strip()
        if not sep or not _CRED_KEY.match(key):
            log.warning("skipping line %d of credential file %s: not KEY=VALUE", number, name)
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def parse_discovery(text: str) -> DiscoveryOutput:
    """Parse the whole output of the discovery script, whichever sections the guest produced.

    Never raises on bad input: unreadable lines are skipped with a warning, and what could not
    be read is listed in ``gaps``.
    """
    split = split_sections(text)
    sections = split.sections
    credentials = {}
    for name, lines in split.files.items():
        if not _CRED_FILE.match(name):
            log.warning("skipping credential file with an odd name: %r", name[:100])
            continue
        credentials[name] = parse_credentials(name, lines)
    if not split.complete:
        log.warning("discovery output ended early; using the sections that arrived")
    output = DiscoveryOutput(credentials=credentials, complete=split.complete, gaps=list(split.gaps))
    output.init = split.init or ("openrc" if "openrc" in sections else "systemd")
    if "ss" in sections:
        output.port_source = "ss"
        output.listeners, output.unreadable_ports = read_ss(sections["ss"])
    elif "netstat" in sections:
        output.port_source = "netstat"
        output.listeners, output.unreadable_ports = read_netstat(sections["netstat"])
    elif "proc-tcp" in sections:
        output.port_source = "proc-tcp"
        output.listeners, output.unreadable_ports = read_proc_tcp(sections["proc-tcp"], sections.get("proc-fd", []))
    if output.init == "systemd":
        output.units = parse_units(sections.get("units", []))
        output.main_pids = parse_show(sections.get("show", []))
    elif output.init == "openrc":
        output.units = parse_openrc(sections.get("openrc", []))
        output.service_states = {unit.name: unit for unit in parse_openrc(sections.get("openrc-list", []))}
        output.daemons = parse_openrc_daemons(sections.get("openrc-daemons", []))
        output.pidfiles = parse_pidfiles(sections.get("pidfiles", []))
    if "ps" in sections:
        output.processes = parse_ps(sections["ps"])
    if not output.processes and "proc-stat" in sections:
        output.processes = parse_proc_stat(sections["proc-stat"])
    _add_gaps(output, split)
    return output


def _add_gaps(output: DiscoveryOutput, split: Sections) -> None:
    """Record what the output shows could not be checked, beyond what the script said."""
    tool = PORT_TOOLS.get(output.port_source or "", "")
    if output.port_source is None and not output.gap("ports") and split.complete:
        output.gaps.append(Gap("ports", "the check printed no port list"))
    if output.unreadable_ports:
        output.gaps.append(Gap("ports", f"{output.unreadable_ports} unreadable line(s) in the {tool} output"))
    if output.listeners and not any(listener.pids for listener in output.listeners) and not output.gap("owners"):
        output.gaps.append(Gap("owners", f"{tool} named no processes"))
    if output.init == "systemd" and not output.units and split.complete and "units" not in split.sections:
        output.gaps.append(Gap("states", "systemctl printed nothing"))
    if not output.processes and not output.gap("processes") and split.complete:
        output.gaps.append(Gap("processes", "no ps output or /proc"))
