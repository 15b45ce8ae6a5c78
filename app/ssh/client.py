"""One SSH connection to one Proxmox node: commands, ``pct exec``/``pct push``, streaming output."""
from __future__ import annotations

import logging
import select
import shlex
import socket
import threading
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko

from app.input_guard import container_path

from .errors import (
    CommandFailed,
    CommandTimeout,
    HostKeyChanged,
    SSHAuthFailed,
    SSHError,
    SSHUnreachable,
)
from .known_hosts import RefuseUnknownHost, fingerprint
from .settings import SSHSettings

log = logging.getLogger("app.ssh")

MAX_STDERR = 64 * 1024
_POLL_SECONDS = 0.5
_EOF_GRACE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a finished command printed and how it exited."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.exit_code == 0


def pct_exec_command(vmid: int, argv: Sequence[str]) -> str:
    """The node-side command line running ``argv`` inside container ``vmid``."""
    if not argv:
        raise ValueError("pct exec needs a command")
    return f"pct exec {int(vmid)} -- {shlex.join(argv)}"


class NodeConnection:
    """A lazily opened, reusable SSH connection to one node.

    It reconnects once when the connection was found dropped before a command starts; a
    command interrupted half-way is reported (SSHUnreachable), never silently run twice.
    """

    def __init__(self, node: str, settings: SSHSettings) -> None:
        self.node = node
        self.settings = settings
        self.host = settings.host_for(node)
        self._client: paramiko.SSHClient | None = None
        # Several threads may run commands over one connection (each on its own channel);
        # connecting, reconnecting and opening channels happen one at a time.
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<NodeConnection {self.node} {self.settings.user}@{self.host}:{self.settings.port}>"

    def __enter__(self) -> NodeConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connection ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the underlying transport is up."""
        transport = self._client.get_transport() if self._client else None
        return bool(transport and transport.is_active())

    def connect(self) -> None:
        """Open the connection now (it is otherwise opened by the first command)."""
        with self._lock:
            self._connect()

    def _connect(self) -> None:
        if self.connected:
            return
        self.close()
        settings = self.settings
        client = paramiko.SSHClient()
        if Path(settings.known_hosts).exists():
            client.load_host_keys(settings.known_hosts)
        client.set_missing_host_key_policy(RefuseUnknownHost(self.node))
        started = time.monotonic()
        try:
            client.connect(
                self.host,
                port=settings.port,
                username=settings.user,
                key_filename=settings.key_file,
                password=None if settings.key_file else settings.password,
                timeout=settings.connect_timeout,
                banner_timeout=settings.connect_timeout,
                auth_timeout=settings.connect_timeout,
                channel_timeout=settings.connect_timeout,
                allow_agent=False,
                look_for_keys=False,
            )
        except Exception as exc:  # every failure mode leaves through the SSHError family
            client.close()
            error = self._connect_error(exc)
            log.warning("ssh connect failed node=%s host=%s: %s", self.node, self.host, error)
            raise error from exc
        transport = client.get_transport()
        if transport and settings.keepalive:
            transport.set_keepalive(settings.keepalive)
        self._client = client
        log.debug("ssh connected node=%s host=%s in %.3fs", self.node, self.host, time.monotonic() - started)

    def _connect_error(self, exc: Exception) -> SSHError:
        where = f"{self.settings.user}@{self.host}:{self.settings.port} (node {self.node})"
        if isinstance(exc, SSHError):
            return exc
        if isinstance(exc, paramiko.BadHostKeyException):
            return HostKeyChanged(
                f"HOST KEY CHANGED for node {self.node} ({self.host}): expected {fingerprint(exc.expected_key)}, "
                f"got {fingerprint(exc.key)}. This may be an interception; if the node was reinstalled, "
                f"verify the new key and run `flask ssh trust {self.node}`",
                node=self.node,
                host=self.host,
                expected=fingerprint(exc.expected_key),
                fingerprint=fingerprint(exc.key),
            )
        if isinstance(exc, paramiko.AuthenticationException):
            how = "key " + str(self.settings.key_file) if self.settings.key_file else "password"
            return SSHAuthFailed(f"authentication failed for {where} with {how}", node=self.node)
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return SSHUnreachable(
                f"timed out after {self.settings.connect_timeout:g}s connecting to {where}", node=self.node
            )
        if isinstance(exc, paramiko.SSHException) and "banner" in str(exc).lower():
            return SSHUnreachable(f"no SSH server answered at {where}: {exc}", node=self.node)
        return SSHUnreachable(f"cannot connect to {where}: {exc}", node=self.node)

    def close(self) -> None:
        """Close the connection (a later command reopens it)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _open_channel(self, label: str, vmid: int | None) -> paramiko.Channel:
        for attempt in (1, 2):
            try:
                with self._lock:
                    self._connect()
                    assert self._client is not None
                    transport = self._client.get_transport()
                    if transport is None or not transport.is_active():
                        raise EOFError("transport is closed")
                    return transport.open_session(timeout=self.settings.connect_timeout)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                self.close()
                if attempt == 2:
                    raise SSHUnreachable(
                        f"connection to node {self.node} dropped and reconnecting failed: {exc}",
                        node=self.node,
                        vmid=vmid,
                    ) from exc
                log.info("ssh connection dropped node=%s vmid=%s command=%s: reconnecting", self.node, vmid, label)
        raise AssertionError("unreachable")

    # -- commands ------------------------------------------------------------------------

    def stream(
        self,
        command: str,
        *,
        label: str | None = None,
        vmid: int | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> Generator[str, None, CommandResult]:
        """Run ``command`` on the node, yielding stdout line by line as it arrives.

        The generator's return value (``StopIteration.value``) is the CommandResult. ``label``
        names the command in logs and errors; the command line itself is never logged, since
        scripts may carry secrets.
        """
        label = label or command.split(" ", 1)[0]
        timeout = timeout or self.settings.command_timeout
        started = time.monotonic()
        deadline = started + timeout
        channel = self._open_channel(label, vmid)
        out_lines: list[str] = []
        pending = b""
        stderr = bytearray()
        exited_at: float | None = None
        try:
            channel.exec_command(command)
            while True:
                if channel.recv_ready():
                    pending += channel.recv(65536)
                    *complete, pending = pending.split(b"\n")
                    for raw in complete:
                        line = raw.decode("utf-8", "replace").rstrip("\r")
                        out_lines.append(line)
                        yield line
                    continue
                if channel.recv_stderr_ready():
                    chunk = channel.recv_stderr(65536)
                    if len(stderr) < MAX_STDERR:
                        stderr.extend(chunk[: MAX_STDERR - len(stderr)])
                    continue
                if channel.exit_status_ready():
                    # sshd may send the exit status before the last output (a child that outlived
                    # the command still writing): wait for end-of-file, briefly.
                    exited_at = exited_at or time.monotonic()
                    if channel.eof_received or channel.closed or time.monotonic() - exited_at > _EOF_GRACE_SECONDS:
                        break
                    select.select([channel], [], [], _POLL_SECONDS)
                    continue
                if channel.closed or not self.connected:
                    raise SSHUnreachable(
                        f"connection to node {self.node} dropped while running {label}", node=self.node, vmid=vmid
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning(
                        "ssh command timed out node=%s vmid=%s command=%s after %.1fs", self.node, vmid, label, timeout
                    )
                    raise CommandTimeout(
                        f"{label} on node {self.node}{_ct(vmid)} did not finish within {timeout:g}s",
                        node=self.node,
                        vmid=vmid,
                        timeout=timeout,
                    )
                select.select([channel], [], [], min(remaining, _POLL_SECONDS))
            if pending:
                line = pending.decode("utf-8", "replace").rstrip("\r")
                out_lines.append(line)
                yield line
            exit_code = channel.recv_exit_status()
        finally:
            channel.close()
        result = CommandResult(exit_code, "\n".join(out_lines), stderr.decode("utf-8", "replace"))
        elapsed = time.monotonic() - started
        log.debug("ssh command node=%s vmid=%s command=%s exit=%s in %.3fs", self.node, vmid, label, exit_code, elapsed)
        if check and exit_code != 0:
            log.warning("ssh command failed node=%s vmid=%s command=%s exit=%s", self.node, vmid, label, exit_code)
            first = result.stderr.strip().splitlines()[-1:] or [""]
            raise CommandFailed(
                f"{label} on node {self.node}{_ct(vmid)} exited {exit_code}: {first[0][:300]}",
                node=self.node,
                vmid=vmid,
                exit_code=exit_code,
                stderr=result.stderr,
                stdout=result.stdout,
            )
        return result

    def run(
        self,
        command: str,
        *,
        label: str | None = None,
        vmid: int | None = None,
        timeout: float | None = None,
        check: bool = True,
        on_line: Callable[[str], None] | None = None,
    ) -> CommandResult:
        """Run ``command`` on the node and wait; ``on_line`` sees each stdout line as it arrives."""
        lines = self.stream(command, label=label, vmid=vmid, timeout=timeout, check=check)
        while True:
            try:
                line = next(lines)
            except StopIteration as done:
                return done.value
            if on_line is not None:
                on_line(line)

    def pct_exec(
        self,
        vmid: int,
        argv: Sequence[str],
        *,
        label: str | None = None,
        timeout: float | None = None,
        check: bool = True,
        on_line: Callable[[str], None] | None = None,
    ) -> CommandResult:
        """Run ``argv`` inside container ``vmid`` (``pct exec``) and wait for it."""
        return self.run(
            pct_exec_command(vmid, argv),
            label=label or f"pct exec {argv[0]}",
            vmid=vmid,
            timeout=timeout,
            check=check,
            on_line=on_line,
        )

    def pct_exec_stream(
        self, vmid: int, argv: Sequence[str], *, label: str | None = None, timeout: float | None = None, check: bool = True
    ) -> Generator[str, None, CommandResult]:
        """Run ``argv`` inside container ``vmid``, yielding its output lines (see ``stream``)."""
        return self.stream(
            pct_exec_command(vmid, argv), label=label or f"pct exec {argv[0]}", vmid=vmid, timeout=timeout, check=check
        )

    def pct_push(
        self,
        vmid: int,
        source: bytes | str | Path,
        destination: str,
        *,
        perms: str | int | None = None,
        user: str | int | None = None,
        group: str | int | None = None,
        timeout: float | None = None,
    ) -> None:
        """Copy ``source`` (bytes, or a local file path) to ``destination`` inside container ``vmid``.

        The data goes to a 0600 temporary file on the node over SFTP, then ``pct push``, and the
        temporary file is removed whatever happens. ``destination`` must be an absolute path without
        ``..`` (ValueError otherwise, before anything is sent): a push never lands outside the container.
        """
        destination = container_path(destination)
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        remote = f"{self.settings.remote_tmp.rstrip('/')}/proxboard-push-{uuid.uuid4().hex}"
        label = "pct push"
        self._open_channel(label, vmid).close()  # connects, or reconnects once
        assert self._client is not None
        try:
            sftp = self._client.open_sftp()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SSHUnreachable(f"SFTP to node {self.node} failed: {exc}", node=self.node, vmid=vmid) from exc
        try:
            sftp.get_channel().settimeout(timeout or self.settings.command_timeout)
            try:
                with sftp.open(remote, "wb") as handle:
                    sftp.chmod(remote, 0o600)
                    handle.write(data)
            except (OSError, paramiko.SSHException) as exc:
                raise SSHUnreachable(
                    f"uploading to node {self.node} for CT {vmid} failed: {exc}", node=self.node, vmid=vmid
                ) from exc
            argv = ["pct", "push", str(int(vmid)), remote, destination]
            if perms is not None:
                argv += ["--perms", perms if isinstance(perms, str) else f"{perms:o}"]
            if user is not None:
                argv += ["--user", str(user)]
            if group is not None:
                argv += ["--group", str(group)]
            self.run(shlex.join(argv), label=label, vmid=vmid, timeout=timeout)
            log.info("pushed %d bytes node=%s vmid=%s to %s", len(data), self.node, vmid, destination)
        finally:
            try:
                sftp.remove(remote)
            except (OSError, paramiko.SSHException):
                log.warning("could not remove temporary upload on node=%s vmid=%s", self.node, vmid)
            sftp.close()


def _ct(vmid: int | None) -> str:
    return f" (CT {vmid})" if vmid is not None else ""


__all__ = ["CommandResult", "NodeConnection", "pct_exec_command"]
