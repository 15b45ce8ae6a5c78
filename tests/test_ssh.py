"""The SSH layer against a real OpenSSH server on loopback (paramiko over TCP)."""
from __future__ import annotations

import logging
import os
import signal
import socket
import time

import pytest

from app.ssh import (
    CommandFailed,
    CommandTimeout,
    HostKeyChanged,
    HostKeyUnknown,
    SSHAuthFailed,
    SSHPool,
    SSHSettings,
    SSHUnreachable,
    ssh_settings,
)

from tests.sshsim import realct

SECRET = "pa55-SECRET-value"


def settings_for(server, known_hosts, **overrides) -> SSHSettings:
    values = dict(
        default_host=server.host, port=server.port, key_file=str(server.user_key_path),
        known_hosts=str(known_hosts), connect_timeout=3, command_timeout=10,
    )
    values.update(overrides)
    return SSHSettings(**values)


@pytest.fixture
def known_hosts(ssh_server, tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text(ssh_server.known_hosts_line() + "\n")
    return path


@pytest.fixture
def pool(ssh_containers, known_hosts):
    with SSHPool(settings_for(ssh_containers, known_hosts)) as pool:
        yield pool


def test_exec_streams_lines_and_maps_container_paths(pool, ssh_containers):
    ct = ssh_containers.container(101)
    ct.set_credentials("app", {"TOKEN": "abc"})
    seen = []
    result = pool.node("pve1").pct_exec(
        101, ["sh", "-c", "echo one; echo two; cat /etc/proxboard/credentials/app"], on_line=seen.append
    )
    assert seen == ["one", "two", "TOKEN=abc"] and result.ok
    lines = pool.node("pve1").pct_exec_stream(101, ["bash", "-c", "for i in 1 2 3; do echo $i; done"])
    assert list(lines) == ["1", "2", "3"]


def test_push_copies_into_the_container_and_cleans_up(pool, ssh_containers):
    ct = ssh_containers.container(101)
    before = set(os.listdir("/tmp"))
    pool.node("pve1").pct_push(101, SECRET.encode(), "/etc/app.conf", perms=0o600)
    assert ct.file("/etc/app.conf").read_text() == SECRET
    assert oct(ct.file("/etc/app.conf").stat().st_mode & 0o777) == "0o600"
    assert not {name for name in set(os.listdir("/tmp")) - before if name.startswith("proxboard-push")}
    assert ct.pct_calls()[-1][:3] == ["push", "101", "/etc/app.conf"]


def test_a_node_without_isolation_pushes_no_executable_into_a_folder_container(pool, ssh_server, ssh_containers):
    """The demo's fallback: a template script would run on the host itself, so it never lands."""
    ct = ssh_containers.container(101)
    marker = ssh_server.root / realct.NO_ISOLATION
    marker.write_text("no user namespaces\n")
    try:
        with pytest.raises(CommandFailed) as info:
            pool.node("pve1").pct_push(101, b"#!/bin/sh\ntouch /tmp/escaped\n", "/root/setup.sh", perms=0o700)
        assert "no isolation (no user namespaces)" in str(info.value) and "scripts on the host" in str(info.value)
        assert not ct.file("/root/setup.sh").exists()
        pool.node("pve1").pct_push(101, b"listen 80;\n", "/etc/site.conf", perms=0o644)  # plain files still go in
        assert ct.file("/etc/site.conf").read_text() == "listen 80;\n"
    finally:
        marker.unlink()


def test_fakes_log_instead_of_touching_the_host(pool, ssh_containers):
    ct = ssh_containers.container(102)
    pool.node("pve1").pct_exec(102, ["bash", "-c", "apt-get install -y nginx && pip install flask && useradd app"])
    assert ct.commands() == ["apt-get install -y nginx", "pip install flask", "useradd app"]
    ct.fail_command("npm", 3)
    with pytest.raises(CommandFailed) as failed:
        pool.node("pve1").pct_exec(102, ["npm", "install"])
    assert failed.value.exit_code == 3


def test_command_failure_carries_exit_code_and_stderr(pool, ssh_containers):
    ssh_containers.container(101)
    with pytest.raises(CommandFailed) as failed:
        pool.node("pve1").pct_exec(101, ["sh", "-c", "echo oops >&2; exit 7"])
    assert failed.value.exit_code == 7 and "oops" in failed.value.stderr
    with pytest.raises(CommandFailed) as unknown:
        pool.node("pve1").pct_exec(999, ["true"])
    assert unknown.value.exit_code == 2 and "999.conf' does not exist" in str(unknown.value)
    assert pool.node("pve1").run("pct status 101").stdout == "status: running"


def test_command_timeout(pool, ssh_containers):
    ssh_containers.container(101)
    started = time.monotonic()
    with pytest.raises(CommandTimeout):
        pool.node("pve1").pct_exec(101, ["sleep", "5"], timeout=0.5)
    assert time.monotonic() - started < 3
    assert pool.node("pve1").pct_exec(101, ["true"]).ok  # the connection is still usable


def test_dropped_connection_reconnects_once(pool, ssh_containers):
    ssh_containers.container(101)
    connection = pool.node("pve1")
    assert connection.pct_exec(101, ["true"]).ok
    for pid in ssh_containers.connection_pids():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while connection.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert connection.pct_exec(101, ["echo", "back"]).stdout == "back"


def test_unknown_host_key_is_refused_with_fingerprint(ssh_server, tmp_path):
    with pytest.raises(HostKeyUnknown) as refused:
        SSHPool(settings_for(ssh_server, tmp_path / "empty_known_hosts")).node("pve1")
    assert refused.value.fingerprint == ssh_server.fingerprint
    assert "flask ssh trust pve1" in str(refused.value)


def test_trust_command_records_the_key(app, runner, ssh_server, tmp_path):
    known = tmp_path / "trusted"
    app.config.update(SSH_HOSTS={"pve1": ssh_server.host}, SSH_PORT=ssh_server.port,
                      SSH_KEY_FILE=str(ssh_server.user_key_path), SSH_KNOWN_HOSTS=str(known))
    declined = runner.invoke(args=["ssh", "trust", "pve1"], input="n\n")
    assert declined.exit_code != 0 and ssh_server.fingerprint in declined.output and not known.exists()
    accepted = runner.invoke(args=["ssh", "trust", "pve1", "--yes"])
    assert accepted.exit_code == 0, accepted.output
    assert oct(known.stat().st_mode & 0o777) == "0o600"
    with SSHPool(ssh_settings(app)) as pool:
        assert pool.node("pve1").run("echo hi").stdout == "hi"
    again = runner.invoke(args=["ssh", "trust", "pve1"])
    assert "already trusted" in again.output


def test_changed_host_key_is_refused(ssh_server, tmp_path):
    other = (tmp_path / "k")
    import paramiko

    key = paramiko.Ed25519Key.from_private_key_file(str(ssh_server.user_key_path))  # any other ed25519 key
    other.write_text(f"[{ssh_server.host}]:{ssh_server.port} ssh-ed25519 {key.get_base64()}\n")
    with pytest.raises(HostKeyChanged) as changed:
        SSHPool(settings_for(ssh_server, other)).node("pve1")
    assert changed.value.fingerprint == ssh_server.fingerprint and "HOST KEY CHANGED" in str(changed.value)


def test_auth_failure(ssh_server, known_hosts, caplog):
    with pytest.raises(SSHAuthFailed):
        SSHPool(settings_for(ssh_server, known_hosts, key_file=str(ssh_server.other_key_path))).node("pve1")
    with pytest.raises(SSHAuthFailed):
        SSHPool(settings_for(ssh_server, known_hosts, key_file=None, password=SECRET)).node("pve1")
    assert SECRET not in caplog.text
    assert SECRET not in repr(settings_for(ssh_server, known_hosts, password=SECRET))


def test_connect_timeout_on_a_silent_listener(ssh_server, known_hosts):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        settings = settings_for(ssh_server, known_hosts, port=silent.getsockname()[1], connect_timeout=0.5)
        started = time.monotonic()
        pool = SSHPool(settings)
        with pytest.raises(SSHUnreachable):
            pool.node("pve1")
        with pytest.raises(SSHUnreachable):  # remembered for the rest of the batch
            pool.node("pve1")
        assert time.monotonic() - started < 3
    finally:
        silent.close()


def test_refused_port_is_unreachable(ssh_server, known_hosts):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SSHUnreachable):
        SSHPool(settings_for(ssh_server, known_hosts, port=port)).node("pve1")


def test_logs_name_commands_not_their_content(pool, ssh_containers, caplog):
    caplog.set_level(logging.DEBUG, "app.ssh")
    ssh_containers.container(101)
    pool.node("pve1").pct_exec(101, ["sh", "-c", f"echo {SECRET} > /etc/x"], label="write secret")
    with pytest.raises(CommandFailed):
        pool.node("pve1").pct_exec(101, ["sh", "-c", f"exit 1 # {SECRET}"])
    pool.node("pve1").pct_push(101, SECRET.encode(), "/etc/y")
    assert "write secret" in caplog.text and "vmid=101" in caplog.text
    assert SECRET not in caplog.text


def test_streams_output_while_the_command_runs(pool, ssh_containers):
    ssh_containers.container(101)
    arrivals = []
    lines = pool.node("pve1").pct_exec_stream(101, ["sh", "-c", "echo first; sleep 0.6; echo second"])
    for _line in lines:
        arrivals.append(time.monotonic())
    assert arrivals[1] - arrivals[0] > 0.4


def test_settings_parse_hosts():
    from app.ssh.settings import parse_hosts

    assert parse_hosts("pve1=10.0.0.11, pve2=10.0.0.12") == {"pve1": "10.0.0.11", "pve2": "10.0.0.12"}
    assert parse_hosts({"a": "b"}) == {"a": "b"}


