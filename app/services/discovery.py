"""Find a container's services in one ``pct exec``: ports, units, main PIDs, process tree, credentials."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from app.ssh import CommandFailed, NodeConnection

from .classify import WEB_PORTS, base_name, is_system_unit, unit_status, web_url
from .parse import DiscoveryOutput, Listener, Unit, parse_discovery

log = logging.getLogger("app.services")

CREDENTIALS_DIR = "/etc/proxboard/credentials"
# One shell script, one SSH channel: every section is marked so the parser can split them.
DISCOVERY_SCRIPT = r"""
export LC_ALL=C SYSTEMD_COLORS=0 SYSTEMD_PAGER=
set -f
echo '@@proxboard ss'
ss -tlnp 2>/dev/null
echo '@@proxboard units'
units=$(systemctl list-units --type=service --all --no-legend --plain --no-pager 2>/dev/null)
printf '%s\n' "$units"
echo '@@proxboard show'
names=$(printf '%s\n' "$units" | awk '$2 == "loaded" {print $1}')
if [ -n "$names" ]; then
  systemctl show -p Id -p MainPID -p ActiveState -p SubState --no-pager -- $names 2>/dev/null
fi
echo '@@proxboard ps'
ps -eo pid=,ppid=,comm= 2>/dev/null
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
    unit: str
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


def run_discovery(connection: NodeConnection, vmid: int, timeout: float | None = None) -> DiscoveryOutput:
    """Run the discovery script in container ``vmid`` and parse its output."""
    result = connection.pct_exec(
        vmid, ["sh", "-c", DISCOVERY_SCRIPT], label="service discovery", timeout=timeout, check=False
    )
    if not result.ok and "@@proxboard ss" not in result.stdout:
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


def listeners_by_unit(output: DiscoveryOutput) -> dict[str, list[Listener]]:
    """Listening sockets grouped by the unit that owns their process (children included)."""
    unit_by_pid = {pid: unit for unit, pid in output.main_pids.items() if pid > 1}
    grouped: dict[str, list[Listener]] = {}
    for listener in output.listeners:
        owners = {owning_unit(pid, output, unit_by_pid) for pid in listener.pids} - {None}
        for unit in owners:
            grouped.setdefault(unit, []).append(listener)
    return grouped


def _best_listener(listeners: list[Listener]) -> Listener | None:
    ranked = sorted(listeners, key=lambda item: (item.loopback_only, item.port not in WEB_PORTS, item.port))
    return ranked[0] if ranked else None


def _service_for(unit: Unit, listeners: list[Listener], declared: DeclaredService | None, ip: str | None) -> DiscoveredService:
    status = unit_status(unit.active, unit.sub)
    kind = "application" if declared or not is_system_unit(unit.name) else "system"
    service = DiscoveredService(name=unit.name, unit=f"{unit.name}.service", kind=kind, status=status)
    ports = {listener.port: listener for listener in listeners}
    if declared and declared.port:
        service.port = declared.port
        if status == "running" and declared.port not in ports:
            service.status = "degraded"
            service.last_error = f"running, but nothing listens on port {declared.port}"
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
    if status == "failed":
        service.last_error = f"systemd reports {unit.active} ({unit.sub})"
    return service


def build_services(output: DiscoveryOutput, declared: list[DeclaredService], ip: str | None) -> Discovery:
    """Turn parsed output into services: classify, match ports and credentials, build links."""
    grouped = listeners_by_unit(output)
    discovery = Discovery(complete=output.complete)
    seen_declared: set[str] = set()
    for unit in output.units:
        match = next((item for item in declared if item.matches(unit.name)), None)
        if unit.load != "loaded" and match is None:
            continue
        if match is None and is_system_unit(unit.name) and unit.active == "inactive":
            continue  # inactive system units (one-shots, unused gettys) are noise
        if match is not None:
            seen_declared.add(match.name)
        discovery.services.append(_service_for(unit, grouped.get(unit.name, []), match, ip))
    for item in declared:
        if item.name not in seen_declared:
            unit = (item.unit or item.name).removesuffix(".service")
            discovery.services.append(
                DiscoveredService(
                    name=unit, unit=f"{unit}.service", kind="application", status="stopped", port=item.port,
                    last_error=f"the template declares {unit}.service but it is not installed",
                )
            )
    _attach_credentials(discovery, output.credentials, declared)
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
