"""Find a container's services in one ``pct exec``: ports, units, main PIDs, process tree, credentials."""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from app.ssh import CommandFailed, NodeConnection

from .classify import WEB_PORTS, base_name, is_system_unit, openrc_status, unit_status, web_url
from .parse import MARKER, DiscoveryOutput, Gap, Listener, Unit, parse_discovery, pidfile_key

log = logging.getLogger("app.guest_services")

CREDENTIALS_DIR = "/etc/proxboard/credentials"
# One POSIX sh script (dash, bash or busybox ash), one SSH channel: every section is marked so the
# parser can split them. It looks for what the guest has: systemd or OpenRC; ss, netstat or the
# kernel's /proc/net/tcp; procps or busybox ps, else /proc/<pid>/stat. What it cannot find it
# reports as "@@proxboard gap <key> <code>" (the words are in parse.GAP_REASONS: the script holds
# no text that must survive path rewriting).
DISCOVERY_SCRIPT = r"""
export LC_ALL=C SYSTEMD_COLORS=0 SYSTEMD_PAGER=
set -f
have() { command -v "$1" >/dev/null 2>&1; }
echo '@@proxboard begin'
if have ss && out=$(ss -tlnp 2>/dev/null) && [ -n "$out" ]; then
  echo '@@proxboard ss'
  printf '%s\n' "$out"
elif have netstat && { out=$(netstat -tlnp 2>/dev/null) || out=$(netstat -tln 2>/dev/null); } && [ -n "$out" ]; then
  echo '@@proxboard netstat'
  printf '%s\n' "$out"
elif [ -r /proc/net/tcp ] || [ -r /proc/net/tcp6 ]; then
  echo '@@proxboard proc-tcp'
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null
  echo '@@proxboard proc-fd'
  set +f
  for d in /proc/[0-9]*; do
    [ -d "$d/fd" ] || continue
    echo "pid ${d##*/}"
    ls -l "$d/fd" 2>/dev/null | while IFS= read -r line; do
      case "$line" in *socket:*) printf '%s\n' "${line##* }" ;; esac
    done
  done
  set -f
else
  echo '@@proxboard gap ports no-port-tool'
fi
units=
if have systemctl; then
  units=$(systemctl list-units --type=service --all --no-legend --plain --no-pager 2>/dev/null)
fi
if [ -n "$units" ]; then
  echo '@@proxboard init systemd'
  echo '@@proxboard units'
  printf '%s\n' "$units"
  echo '@@proxboard show'
  names=$(printf '%s\n' "$units" | awk '$2 == "loaded" {print $1}')
  if [ -n "$names" ]; then
    systemctl show -p Id -p MainPID -p ActiveState -p SubState --no-pager -- $names 2>/dev/null
  fi
elif have rc-status; then
  echo '@@proxboard init openrc'
  echo '@@proxboard openrc'
  rc-status --all 2>/dev/null
  echo '@@proxboard openrc-list'
  rc-status --servicelist 2>/dev/null
  echo '@@proxboard openrc-daemons'
  set +f
  for f in /run/openrc/daemons/*/*; do
    [ -f "$f" ] || continue
    d=${f%/*}
    while IFS= read -r line || [ -n "$line" ]; do printf '%s %s\n' "${d##*/}" "$line"; done < "$f"
  done
  for f in /run/openrc/options/*/child_pid; do
    [ -f "$f" ] || continue
    d=${f%/*}
    read -r pid < "$f" && printf '%s child_pid=%s\n' "${d##*/}" "$pid"
  done
  echo '@@proxboard pidfiles'
  for f in /run/*.pid /run/*/*.pid /var/run/*.pid /var/run/*/*.pid; do
    [ -f "$f" ] || continue
    read -r pid < "$f" && printf '%s %s\n' "$f" "$pid"
  done
  set -f
else
  echo '@@proxboard init none'
  echo '@@proxboard gap states no-init-system'
fi
if out=$(ps -eo pid=,ppid=,comm= 2>/dev/null) && [ -n "$out" ]; then
  echo '@@proxboard ps'
  printf '%s\n' "$out"
elif [ -r /proc/1/stat ] || [ -r /proc/self/stat ]; then
  echo '@@proxboard proc-stat'
  set +f
  cat /proc/[0-9]*/stat 2>/dev/null
  set -f
elif have ps && out=$(ps 2>/dev/null) && [ -n "$out" ]; then
  echo '@@proxboard ps'
  printf '%s\n' "$out"
else
  echo '@@proxboard gap processes no-process-tool'
fi
echo '@@proxboard credentials'
set +f
for f in /etc/proxboard/credentials/*; do
  [ -f "$f" ] || continue
  echo "@@proxboard credfile ${f##*/}"
  cat "$f"
  echo
done
echo '@@proxboard end'
"""
_MAX_ANCESTORS = 64


@dataclass(frozen=True, slots=True)
class DeclaredService:
    """What a template says about one of its services (from TemplateService)."""

    name: str
    unit: str | None = None
    port: int | None = None
    scheme: str | None = None
    web_path: str | None = None

    def matches(self, unit_name: str) -> bool:
        """True when this declaration describes ``unit_name`` (``name@instance`` matches ``name``)."""
        wanted = (self.unit or self.name).removesuffix(".service")
        return wanted in (unit_name, base_name(unit_name))


@dataclass
class DiscoveredService:
    """One service as found in the container, ready to be stored on a Service row."""

    name: str
    unit: str | None
    kind: str
    status: str
    port: int | None = None
    protocol: str | None = None
    web_url: str | None = None
    last_error: str | None = None
    credentials: dict[str, str] | None = None  # None: no credential file for it


@dataclass
class Discovery:
    """Everything found in one container."""

    services: list[DiscoveredService] = field(default_factory=list)
    unmatched_credentials: list[str] = field(default_factory=list)
    complete: bool = True
    states_checked: bool = True  # False: no init system, services were inferred from processes
    gaps: list[Gap] = field(default_factory=list)


def run_discovery(connection: NodeConnection, vmid: int, timeout: float | None = None) -> DiscoveryOutput:
    """Run the discovery script in container ``vmid`` and parse its output.

    Raises CommandFailed when the script failed before printing anything (CT missing, no shell).
    """
    result = connection.pct_exec(
        vmid, ["sh", "-c", DISCOVERY_SCRIPT], label="service discovery", timeout=timeout, check=False
    )
    if not result.ok and MARKER not in result.stdout:
        raise CommandFailed(
            f"service discovery in CT {vmid} on node {connection.node} exited {result.exit_code}: "
            f"{(result.stderr.strip().splitlines() or [''])[-1][:300]}",
            node=connection.node,
            vmid=vmid,
            exit_code=result.exit_code,
            stderr=result.stderr,
        )
    return parse_discovery(result.stdout)


def owning_unit(pid: int, output: DiscoveryOutput, unit_by_pid: dict[int, str]) -> str | None:
    """The unit whose main process is ``pid`` or one of its ancestors."""
    seen: set[int] = set()
    while pid > 1 and pid not in seen and len(seen) < _MAX_ANCESTORS:
        if pid in unit_by_pid:
            return unit_by_pid[pid]
        seen.add(pid)
        process = output.processes.get(pid)
        if process is None:
            return None
        pid = process.ppid
    return None


def _running(unit: Unit) -> bool:
    if unit.init == "openrc":
        return openrc_status(unit.active) in ("running", "degraded", "activating")
    return unit.active != "inactive"


def _openrc_pids(unit: Unit, output: DiscoveryOutput) -> set[int]:
    """Processes of a started OpenRC service: its pidfiles, supervise-daemon's child, else by name."""
    record = output.daemons.get(unit.name, {})
    pids: set[int] = set()
    for key in (record.get("pidfile"), f"{unit.name}.pid", f"{unit.name}/{unit.name}.pid", f"supervise-{unit.name}.pid"):
        if key and (pid := output.pidfiles.get(pidfile_key(key))):
            pids.add(pid)
    if record.get("child_pid", "").isdigit():
        pids.add(int(record["child_pid"]))
    pids &= set(output.processes) or pids  # a stale pidfile names a process that is gone
    if pids:
        return pids
    # No pidfile: the topmost processes named like the service or its executable (comm is cut at 15)
    names = {unit.name[:15], record.get("exec", "").rsplit("/", 1)[-1][:15]} - {""}
    named = {pid for pid, process in output.processes.items() if process.comm in names}
    return {pid for pid in named if output.processes[pid].ppid not in named}


def unit_roots(output: DiscoveryOutput) -> dict[int, str]:
    """``{pid: unit name}`` of each running unit's main processes (systemd MainPID; OpenRC pidfiles)."""
    roots = {pid: unit for unit, pid in output.main_pids.items() if pid > 1}
    if output.init == "openrc":
        for unit in output.units:
            if _running(unit):
                for pid in _openrc_pids(unit, output):
                    roots.setdefault(pid, unit.name)
    return roots


def listeners_by_unit(output: DiscoveryOutput) -> dict[str, list[Listener]]:
    """Listening sockets grouped by the unit that owns their process (children included)."""
    unit_by_pid = unit_roots(output)
    grouped: dict[str, list[Listener]] = {}
    for listener in output.listeners:
        owners = {owning_unit(pid, output, unit_by_pid) for pid in listener.pids} - {None}
        for unit in owners:
            grouped.setdefault(unit, []).append(listener)
    return grouped


def _best_listener(listeners: list[Listener]) -> Listener | None:
    ranked = sorted(listeners, key=lambda item: (item.loopback_only, item.port not in WEB_PORTS, item.port))
    return ranked[0] if ranked else None


def _unchecked_port(output: DiscoveryOutput, port: int) -> str:
    gap = output.gap("ports")
    return f"port {port} not checked: {gap.why if gap else 'the port list was incomplete'}"


def _apply_ports(service: DiscoveredService, listeners: list[Listener], declared: DeclaredService | None,
                 ip: str | None, output: DiscoveryOutput) -> None:
    """Set port, link and (only when every port could be read) degraded on a found service."""
    ports = {listener.port for listener in output.listeners}
    if declared and declared.port:
        service.port = declared.port
        if service.status == "running" and declared.port not in ports:
            if output.ports_checked:
                service.status = "degraded"
                service.last_error = f"running, but nothing listens on port {declared.port}"
            else:  # a missing tool or an unreadable line is not the service's fault
                service.last_error = _unchecked_port(output, declared.port)
        if service.status != "stopped":
            service.web_url = web_url(ip, declared.port, declared.scheme, declared.web_path)
    else:
        best = _best_listener(listeners)
        if best is not None:
            service.port = best.port
            if not best.loopback_only:
                service.web_url = web_url(
                    ip, best.port, declared.scheme if declared else None, declared.web_path if declared else None
                )
    if service.port is not None:
        service.protocol = "tcp"


def _service_for(unit: Unit, listeners: list[Listener], declared: DeclaredService | None, ip: str | None,
                 output: DiscoveryOutput) -> DiscoveredService:
    if unit.init == "openrc":
        status, unit_name, manager = openrc_status(unit.active), unit.name, "OpenRC"
    else:
        status, unit_name, manager = unit_status(unit.active, unit.sub), f"{unit.name}.service", "systemd"
    kind = "application" if declared or not is_system_unit(unit.name) else "system"
    service = DiscoveredService(name=unit.name, unit=unit_name, kind=kind, status=status)
    _apply_ports(service, listeners, declared, ip, output)
    if status in ("failed", "degraded") and service.last_error is None:
        service.last_error = f"{manager} reports {unit.active} ({unit.sub})" if manager == "systemd" \
            else f"OpenRC reports {unit.sub}"
    return service


def _missing_declared(item: DeclaredService, output: DiscoveryOutput, ip: str | None) -> DiscoveredService:
    """A declared service the init system did not list (or, without one, that was looked for by name)."""
    name = (item.unit or item.name).removesuffix(".service")
    if output.init == "openrc":
        known = output.service_states.get(name)
        if known is not None:  # installed, in no runlevel
            return _service_for(known, listeners_by_unit(output).get(name, []), item, ip, output)
        return DiscoveredService(
            name=name, unit=name, kind="application", status="stopped", port=item.port,
            last_error=f"the template declares {name} but OpenRC has no such service",
        )
    if output.init != "none":
        return DiscoveredService(
            name=name, unit=f"{name}.service", kind="application", status="stopped", port=item.port,
            last_error=f"the template declares {name}.service but it is not installed",
        )
    # No init system: a process of that name or something on its port is the best evidence
    names = {name[:15], base_name(name)[:15]}
    alive = any(process.comm in names for process in output.processes.values())
    listening = bool(item.port) and item.port in {listener.port for listener in output.listeners}
    service = DiscoveredService(name=name, unit=None, kind="application", status="running" if alive or listening else "unknown")
    _apply_ports(service, [], item, ip, output)
    if service.status == "unknown":
        service.last_error = f"service states not checked: {output.gap('states').why if output.gap('states') else 'no init system'}"
    return service


def _top_process(pid: int, output: DiscoveryOutput) -> int | None:
    """The ancestor of ``pid`` just below init (the process a daemon was started as)."""
    seen: set[int] = set()
    while pid not in seen and len(seen) < _MAX_ANCESTORS:
        seen.add(pid)
        process = output.processes.get(pid)
        if process is None:
            return None
        if process.ppid <= 1 or process.ppid not in output.processes:
            return pid
        pid = process.ppid
    return None


def services_from_listeners(output: DiscoveryOutput, ip: str | None, skip: set[str]) -> list[DiscoveredService]:
    """Without an init system: one running service per daemon holding a listening port, named by its process."""
    grouped: dict[str, list[Listener]] = {}
    for listener in output.listeners:
        for pid in listener.pids:
            top = _top_process(pid, output)
            comm = output.processes[top].comm if top is not None else None
            if comm and comm not in skip:
                grouped.setdefault(comm, []).append(listener)
    services = []
    for name, listeners in sorted(grouped.items()):
        service = DiscoveredService(name=name, unit=None, kind="system" if is_system_unit(name) else "application",
                                    status="running")
        _apply_ports(service, listeners, None, ip, output)
        services.append(service)
    return services


def build_services(output: DiscoveryOutput, declared: list[DeclaredService], ip: str | None) -> Discovery:
    """Turn parsed output into services: classify, match ports and credentials, build links.

    States come from systemd or OpenRC; without either, services are inferred from the daemons
    holding listening ports and the declared services' processes, and ``states_checked`` is False.
    A declared port is only reported missing (degraded) when every listening port could be read.
    """
    grouped = listeners_by_unit(output)
    discovery = Discovery(complete=output.complete, states_checked=output.states_checked, gaps=list(output.gaps))
    seen_declared: set[str] = set()
    instances = Counter(base_name(unit.name.removesuffix(".service")) for unit in output.units if "@" in unit.name)
    umbrellas = {unit.name.removesuffix(".service") for unit in output.units if "@" not in unit.name} & set(instances)
    for unit in output.units:
        match = next((item for item in declared if item.matches(unit.name)), None)
        if unit.load != "loaded" and match is None:
            continue
        base = base_name(unit.name.removesuffix(".service"))
        if match is not None and "@" not in unit.name and base in umbrellas and not grouped.get(unit.name):
            # Debian's postgresql.service is a one-shot umbrella over postgresql@15-main: the instance is
            # the server the template means, and one service card, not two with the same credentials.
            continue
        if match is None and is_system_unit(unit.name) and not _running(unit):
            continue  # inactive system units (one-shots, unused gettys, OpenRC boot scripts) are noise
        if match is not None:  # a template may declare one unit twice (a web UI and a DNS port)
            seen_declared |= {item.name for item in declared if item.matches(unit.name)}
        service = _service_for(unit, grouped.get(unit.name, []), match, ip, output)
        if match is not None and "@" in unit.name and base in umbrellas and instances[base] == 1:
            service.name = match.name  # the one instance stands for the umbrella under the template's name
        discovery.services.append(service)
    for item in declared:
        if item.name not in seen_declared:
            seen_declared |= {other.name for other in declared if other.unit and other.unit == item.unit}
            discovery.services.append(_missing_declared(item, output, ip))
    if output.init == "none":
        taken = {service.name[:15] for service in discovery.services}
        discovery.services += services_from_listeners(output, ip, taken)
    _attach_credentials(discovery, output.credentials, declared)
    # One row per name (the database holds them unique per container): the first found wins.
    unique: dict[str, DiscoveredService] = {}
    for service in discovery.services:
        unique.setdefault(service.name, service)
    discovery.services = list(unique.values())
    return discovery


def _attach_credentials(
    discovery: Discovery, files: dict[str, dict[str, str]], declared: list[DeclaredService]
) -> None:
    matched: set[str] = set()
    for service in discovery.services:
        aliases = {service.name, base_name(service.name)}
        aliases |= {item.name for item in declared if item.matches(service.name)}
        for file_name, values in files.items():
            if file_name.removesuffix(".env") in aliases:
                service.credentials = {**(service.credentials or {}), **values}
                matched.add(file_name)
    discovery.unmatched_credentials = sorted(set(files) - matched)
    for name in discovery.unmatched_credentials:
        log.warning("credential file %s/%s matches no service; ignored", CREDENTIALS_DIR, name)
