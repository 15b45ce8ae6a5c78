"""Pure parsers for the discovery script's output. Bad lines are skipped with a warning."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

log = logging.getLogger("app.services")

MARKER = "@@proxboard "
_UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.\\@-]+\.service$")
_SS_USER = re.compile(r'\("([^"]*)",pid=(\d+)')
_CRED_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_CRED_FILE = re.compile(r"^[A-Za-z0-9_.@:-]+$")


@dataclass(frozen=True, slots=True)
class Listener:
    """A listening TCP socket and the processes holding it."""

    address: str
    port: int
    pids: tuple[int, ...]

    @property
    def loopback_only(self) -> bool:
        """True when reachable only from inside the container."""
        host = self.address.strip("[]").split("%")[0]
        return host.startswith("127.") or host == "::1" or host == "localhost"


@dataclass(frozen=True, slots=True)
class Unit:
    """A line of ``systemctl list-units``."""

    name: str  # without ".service"
    load: str
    active: str
    sub: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Process:
    """A line of ``ps -eo pid,ppid,comm``."""

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


def split_sections(text: str) -> tuple[dict[str, list[str]], dict[str, list[str]], bool]:
    """Split the script output at ``@@proxboard <section>`` markers.

    Returns (sections, credential files by name, whether the end marker was seen).
    """
    sections: dict[str, list[str]] = {}
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    complete = False
    for line in text.splitlines():
        if line.startswith(MARKER):
            words = line[len(MARKER):].split(" ", 1)
            if words[0] == "credfile" and len(words) == 2:
                current = files.setdefault(words[1].strip(), [])
            elif words[0] == "end":
                complete = True
                current = None
            else:
                current = sections.setdefault(words[0], [])
            continue
        if current is not None:
            current.append(line)
    return sections, files, complete


def parse_ss(lines: list[str]) -> list[Listener]:
    """Parse ``ss -tlnp`` (header optional)."""
    listeners = []
    for line in lines:
        fields = line.split()
        if not fields or fields[0] in ("State", "Netid", "Recv-Q"):
            continue
        if fields[0] != "LISTEN" or len(fields) < 5:
            log.warning("skipping unreadable ss line: %r", line[:200])
            continue
        address, sep, port = fields[3].rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            log.warning("skipping ss line without a port: %r", line[:200])
            continue
        pids = tuple(int(pid) for _comm, pid in _SS_USER.findall(" ".join(fields[5:])))
        listeners.append(Listener(address or "*", int(port), pids))
    return listeners


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
    """Parse the whole output of the discovery script."""
    sections, files, complete = split_sections(text)
    credentials = {}
    for name, lines in files.items():
        if not _CRED_FILE.match(name):
            log.warning("skipping credential file with an odd name: %r", name[:100])
            continue
        credentials[name] = parse_credentials(name, lines)
    if not complete:
        log.warning("discovery output ended early; using the sections that arrived")
    return DiscoveryOutput(
        listeners=parse_ss(sections.get("ss", [])),
        units=parse_units(sections.get("units", [])),
        main_pids=parse_show(sections.get("show", [])),
        processes=parse_ps(sections.get("ps", [])),
        credentials=credentials,
        complete=complete,
    )
