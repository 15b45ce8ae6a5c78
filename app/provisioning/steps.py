"""The provisioning steps as plain functions of a StepContext (Proxmox client, SSH connection, log).

Each step raises on failure (ProxmoxError, SSHError or StepFailed); the runner records it.
Only files, packages, scripts and discovery need SSH (``pct exec``/``pct push`` on the node):
a plan with none of the first three is created, started and awaited through Proxmox alone,
and each step may name a reason to be skipped (``Step.skip``).
"""
from __future__ import annotations

import ipaddress
import posixpath
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.credentials import CredentialsKeyError
from app.input_guard import container_path
from app.proxmox import ContainerSpec, ProxmoxClient, ProxmoxConfigError, ProxmoxError
from app.ssh import (
    CommandFailed,
    HostKeyChanged,
    HostKeyUnknown,
    NodeConnection,
    SSHAuthFailed,
    SSHConfigError,
    SSHError,
)

LOG_LINE_RE = re.compile(r"^::proxboard::(info|warn|error|step)::(.*)$")
CREDENTIALS_DIR = "/etc/proxboard/credentials"
MAX_INLINE_SCRIPT = 100_000  # one argv string must stay under Linux's 128 KiB MAX_ARG_STRLEN


RECENT_LINES = 40
# dpkg's "(Reading database ... 45%" counter: twenty lines per install without a terminal, saying nothing
# the final "(Reading database ... N files and directories currently installed.)" does not.
PROGRESS_LINE_RE = re.compile(r"^\(Reading database \.\.\. *\d+%\s*$")
# What a failing install or script usually printed, and how to say it in a headline (first match wins).
CAUSES = (
    (re.compile(r"Could not resolve host:? '?([\w.-]+)"), "cannot reach {0} (name lookup failed)"),
    (re.compile(r"Temporary failure resolving '([\w.-]+)'"), "cannot reach {0} (name lookup failed)"),
    (re.compile(r"Failed to connect to ([\w.-]+)"), "cannot connect to {0}"),
    (re.compile(r"Unable to locate package (\S+)"), "no package named {0} in the configured repositories"),
    (re.compile(r"No matching distribution found for (\S+)"), "pip found no distribution for {0}"),
    (re.compile(r"npm (?:ERR!|error) 404 .*?'?([@\w./-]+)@"), "npm has no package {0}"),
    (re.compile(r"No space left on device"), "the container's disk is full"),
)


def failure_cause(lines: list[str]) -> str | None:
    """A short reason for a failed command from its last output lines, or None when nothing is recognised."""
    for line in reversed(lines):
        for pattern, text in CAUSES:
            match = pattern.search(line)
            if match:
                return text.format(*match.groups())
    return None


class StepFailed(Exception):
    """A step could not finish; the message is shown to the user as is."""


# Failures only the operator can fix (settings, trusted host keys, the credentials key): waiting
# or retrying inside the job cannot help, so they end it at once and Retry is offered once fixed.
CONFIGURATION_ERRORS: tuple[type[BaseException], ...] = (
    SSHConfigError, HostKeyUnknown, HostKeyChanged, SSHAuthFailed, CredentialsKeyError, ProxmoxConfigError,
)

INSIDE_STEPS = ("files", "packages", "scripts")  # the steps that work inside the container over SSH


def inside_work(plan: dict[str, Any]) -> dict[str, int]:
    """What ``plan`` does inside the container, as ``{"files": 2, "packages": 3, "scripts": 1}``.

    Only the non-empty ones are listed; an empty dict means nothing there needs SSH.
    """
    counts = {
        "files": len(plan.get("files") or ()),
        "packages": sum(len(names or ()) for names in (plan.get("packages") or {}).values()),
        "scripts": len(plan.get("scripts") or ()),
    }
    return {name: count for name, count in counts.items() if count}


def describe_work(work: dict[str, int]) -> str:
    """``{"files": 2, "scripts": 1}`` as ``"2 files and 1 script"``."""
    nouns = {"files": ("file", "files"), "packages": ("package", "packages"), "scripts": ("script", "scripts")}
    parts = [f"{count} {nouns[name][count != 1]}" for name, count in work.items()]
    return " and ".join(parts) if len(parts) < 3 else f"{', '.join(parts[:-1])} and {parts[-1]}"


@dataclass
class Timeouts:
    task: float = 300.0
    boot: float = 120.0
    packages: float = 1800.0
    script: float = 1800.0
    poll: float = 0.2


@dataclass
class StepContext:
    """What every step may use; built by the runner, or by a test with its own parts."""

    plan: dict[str, Any]
    proxmox: ProxmoxClient
    ssh: Callable[[], NodeConnection]
    log: Callable[[str, str], None]  # (message, level)
    password: Callable[[], str | None] = lambda: None
    load_files: Callable[[list[int]], list[Any]] = lambda ids: []
    load_scripts: Callable[[list[int]], list[Any]] = lambda ids: []
    script_body: Callable[[str], str] = lambda content: content
    discover: Callable[[], str] = lambda: "no discovery configured"
    timeouts: Timeouts = field(default_factory=Timeouts)
    found_ip: str | None = None
    ssh_problem: str | None = None  # why SSH to the node cannot work (None: it is configured)
    recent: list[str] = field(default_factory=list)  # the last output lines, to name a failure's cause
    # The step may have run before (a database fault, an interrupted job): ask Proxmox what is done first.
    reconcile: bool = False

    @property
    def uses_ssh(self) -> bool:
        """Whether any step of this run talks to the node over SSH (work inside, or discovery)."""
        return bool(inside_work(self.plan)) or self.ssh_problem is None

    @property
    def node(self) -> str:
        return self.plan["spec"]["node"]

    @property
    def vmid(self) -> int:
        return int(self.plan["spec"]["vmid"])

    def run(self, argv: list[str], *, label: str, timeout: float, check: bool = True) -> Any:
        """``pct exec`` with every output line (stdout and stderr) logged as it arrives."""
        return self.ssh().pct_exec(self.vmid, ["sh", "-c", 'exec "$@" 2>&1', "sh", *argv], label=label,
                                   timeout=timeout, check=check, on_line=self.line)

    def line(self, text: str) -> None:
        """One output line: ``::proxboard::<level>::message`` keeps its level, the rest is info."""
        self.recent = [*self.recent[-(RECENT_LINES - 1):], text]
        match = LOG_LINE_RE.match(text)
        if match:
            self.log(match.group(2), match.group(1))
        elif text.strip() and not PROGRESS_LINE_RE.match(text):
            self.log(text, "output")


def _wait(ctx: StepContext, upid: str) -> None:
    ctx.log(f"Proxmox task {upid}", "info")
    try:
        ctx.proxmox.wait_task(upid, timeout=ctx.timeouts.task, poll=ctx.timeouts.poll)
    finally:
        try:
            for entry in ctx.proxmox.task_log(ctx.node, upid):
                if entry.text.strip() and entry.text != "TASK OK":
                    ctx.log(entry.text, "output")
        except ProxmoxError:
            pass


def create(ctx: StepContext) -> None:
    """POST the ContainerSpec to Proxmox and wait for the vzcreate task.

    When reconciling, a container with the plan's VMID and hostname is the one an earlier attempt
    created: it is kept (once Proxmox has finished creating it) instead of created twice.
    Raises StepFailed when the VMID is held by another guest.
    """
    if ctx.reconcile and _already_created(ctx):
        return
    spec = dict(ctx.plan["spec"])
    spec["tags"] = tuple(spec.get("tags") or ())
    upid = ctx.proxmox.create_container(ContainerSpec(**spec, password=ctx.password()))
    _wait(ctx, upid)


def _already_created(ctx: StepContext) -> bool:
    """Whether Proxmox already has the plan's container (waiting out its ``create`` lock)."""
    ctx.proxmox.invalidate()  # what an earlier attempt did must not hide behind a cached list
    node = ctx.proxmox.find_container_node(ctx.vmid)
    if node is None:
        return False
    hostname = ctx.plan["spec"].get("hostname")
    deadline = time.monotonic() + ctx.timeouts.task
    while True:
        status = ctx.proxmox.container_status(node, ctx.vmid)
        if hostname and status.name and status.name != hostname:
            raise StepFailed(f"VMID {ctx.vmid} is already used by another guest ({status.name}) in Proxmox")
        if status.lock != "create":
            ctx.log(f"CT {ctx.vmid} already exists in Proxmox (an earlier attempt created it): kept", "info")
            return True
        if time.monotonic() >= deadline:
            raise StepFailed(f"Proxmox was still creating CT {ctx.vmid} after {ctx.timeouts.task:g} s")
        time.sleep(ctx.timeouts.poll * 5)
        ctx.proxmox.invalidate()


def start(ctx: StepContext) -> None:
    """Start the container and wait for the task (when reconciling, a running container is left as is)."""
    if ctx.reconcile:
        ctx.proxmox.invalidate()
        if ctx.proxmox.container_status(ctx.node, ctx.vmid).is_running:
            ctx.log(f"CT {ctx.vmid} is already running", "info")
            return
    _wait(ctx, ctx.proxmox.start(ctx.node, ctx.vmid))


def wait_ready(ctx: StepContext) -> None:
    """Wait until systemd has booted (checked over SSH only when later steps use SSH) and the
    container has an IPv4 address (asked from Proxmox).

    Raises StepFailed after the boot timeout; a configuration error (CONFIGURATION_ERRORS) at once.
    """
    deadline = time.monotonic() + ctx.timeouts.boot
    if ctx.uses_ssh:
        _wait_systemd(ctx, deadline)
    else:
        ctx.log("Nothing runs inside the container over SSH: waiting for its network through Proxmox only", "info")
    _wait_network(ctx, deadline)


def _wait_systemd(ctx: StepContext, deadline: float) -> None:
    last_error = "no answer"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StepFailed(f"the container did not finish booting within {ctx.timeouts.boot:g} s ({last_error})")
        try:
            result = ctx.ssh().pct_exec(ctx.vmid, ["systemctl", "is-system-running", "--wait"],
                                        label="systemctl is-system-running", timeout=remaining, check=False)
        except CONFIGURATION_ERRORS:
            raise
        except (CommandFailed, SSHError) as exc:
            last_error = str(exc)
            time.sleep(min(1.0, max(remaining, 0)))
            continue
        state = (result.stdout.strip().splitlines() or [""])[-1]
        if result.ok or state in ("running", "degraded"):
            ctx.log(f"systemd: {state or 'running'}", "warn" if state == "degraded" else "info")
            break
        last_error = f"systemd is {state or 'not answering'}"
        time.sleep(min(1.0, max(remaining, 0)))


def _wait_network(ctx: StepContext, deadline: float) -> None:
    while True:
        for interface in ctx.proxmox.container_interfaces(ctx.node, ctx.vmid):
            for address in interface.ipv4:
                if not ipaddress.ip_address(address).is_loopback:
                    ctx.found_ip = address
                    ctx.log(f"Network is up: {interface.name} {address}", "info")
                    return
        if time.monotonic() >= deadline:
            raise StepFailed(f"no IPv4 address within {ctx.timeouts.boot:g} s (is DHCP answering on the bridge?)")
        time.sleep(ctx.timeouts.poll * 5)


def push_files(ctx: StepContext) -> None:
    """Copy the template's files in, honouring each file's policy (replace, default, backup)."""
    for item in ctx.load_files(ctx.plan.get("files", [])):
        try:
            path = container_path(item.destination)  # a row stored before targets were checked, too
        except ValueError as exc:
            raise StepFailed(f"file {item.name}: {exc}") from exc
        ssh = ctx.ssh()
        exists = ssh.pct_exec(ctx.vmid, ["test", "-e", path], label="test -e", timeout=30, check=False).ok
        if exists and item.policy == "default":
            ctx.log(f"{path} exists; kept (policy default)", "info")
            continue
        ssh.pct_exec(ctx.vmid, ["mkdir", "-p", posixpath.dirname(path) or "/"], label="mkdir", timeout=30)
        if exists and item.policy == "backup":
            ssh.pct_exec(ctx.vmid, ["cp", "-a", path, f"{path}.bak"], label="backup", timeout=60)
            ctx.log(f"Backed up {path} to {path}.bak", "info")
        ssh.pct_push(ctx.vmid, item.content.encode(), path, timeout=120)
        ctx.log(f"Wrote {path} ({item.policy})", "info")


def _install_argv(manager: str, names: list[str]) -> list[list[str]]:
    if manager == "apt":
        pkgs = [name.replace("==", "=") for name in names]
        return [["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "update", "-q"],
                ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
                 "--no-install-recommends", *pkgs]]
    if manager == "pip":
        return [["env", "PIP_BREAK_SYSTEM_PACKAGES=1", "pip3", "install", "--no-input", *names]]
    return [["npm", "install", "-g", *[name.replace("==", "@") for name in names]]]


def install_packages(ctx: StepContext) -> None:
    """apt, then pip, then npm: the selected groups plus the additional packages."""
    packages = ctx.plan.get("packages") or {}
    for manager in ("apt", "pip", "npm"):
        names = packages.get(manager) or []
        if not names:
            continue
        ctx.log(f"{manager}: {' '.join(names)}", "step")
        for argv in _install_argv(manager, names):
            ctx.recent = []
            try:
                ctx.run(argv, label=f"{manager} {argv[3] if manager == 'apt' else 'install'}",
                        timeout=ctx.timeouts.packages)
            except CommandFailed as exc:
                cause = failure_cause(ctx.recent)
                if cause is None:
                    raise
                raise StepFailed(f"{manager} exited {exc.exit_code}: {cause}") from exc


def run_scripts(ctx: StepContext) -> None:
    """The selected scripts in the chosen order, each with the helper library prepended."""
    scripts = ctx.load_scripts(ctx.plan.get("scripts", []))
    for number, script in enumerate(scripts, start=1):
        ctx.log(f"Script {number}/{len(scripts)}: {script.name}", "step")
        body = ctx.script_body(script.content)
        env = ["env", f"PROXBOARD_CREDENTIALS_DIR={CREDENTIALS_DIR}"]
        ssh = ctx.ssh()
        started = time.monotonic()
        if len(body) <= MAX_INLINE_SCRIPT:
            argv = [*env, "bash", "-c", body]
        else:
            path = f"/root/.proxboard-script-{script.id}.sh"
            ssh.pct_push(ctx.vmid, body.encode(), path, perms="700", timeout=120)
            argv = [*env, "bash", path]
        ctx.recent = []
        try:
            ctx.run(argv, label=f"script {script.name}", timeout=ctx.timeouts.script)
        except CommandFailed as exc:
            cause = failure_cause(ctx.recent)
            raise StepFailed(f"script “{script.name}” exited {exc.exit_code}" + (f": {cause}" if cause else "")) from exc
        ctx.log(f"Script {script.name} finished in {time.monotonic() - started:.1f} s", "info")


def discover(ctx: StepContext) -> None:
    """Find services and read credentials (the services feature's refresh)."""
    ctx.log(ctx.discover(), "info")


NOTHING_INSIDE = "No files, packages or scripts: nothing to run inside the container"


def _skip_inside(step: str, nothing: str) -> Callable[[StepContext], str | None]:
    def skip(ctx: StepContext) -> str | None:
        work = inside_work(ctx.plan)
        if not work:
            return NOTHING_INSIDE
        return None if step in work else nothing

    return skip


def _skip_discover(ctx: StepContext) -> str | None:
    if ctx.ssh_problem is None:
        return None
    return (f"Service discovery skipped: {ctx.ssh_problem}. The container works without it; "
            f"use “Refresh services” on its page once SSH is set up")


@dataclass(frozen=True)
class Step:
    name: str
    label: str
    percent: int  # progress when the step starts
    run: Callable[[StepContext], None]
    skip: Callable[[StepContext], str | None] = lambda ctx: None  # why this run leaves the step out


STEPS: tuple[Step, ...] = (
    Step("create", "Create the container", 0, create),
    Step("start", "Start it", 15, start),
    Step("wait", "Wait for systemd and network", 25, wait_ready),
    Step("files", "Push the template's files", 35, push_files, _skip_inside("files", "No files to push")),
    Step("packages", "Install packages", 45, install_packages, _skip_inside("packages", "No packages to install")),
    Step("scripts", "Run scripts", 65, run_scripts, _skip_inside("scripts", "No scripts to run")),
    Step("discover", "Discover services and credentials", 90, discover, _skip_discover),
)
STEP_NAMES = tuple(step.name for step in STEPS)


def step_named(name: str) -> Step:
    """The step called ``name``."""
    return next(step for step in STEPS if step.name == name)



