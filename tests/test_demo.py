"""``make run`` a second time: the demo cluster and SSH node come back as they were, failures show in the app."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import certifi
import pytest

from app.health import demo

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "root@pam!proxboard=demo-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_line(process: subprocess.Popen, pattern: str, timeout: float = 20) -> list[str]:
    """Lines of ``process`` stdout up to the first matching ``pattern``."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"no {pattern!r} in {lines}")


def _stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=20)
    return out


# -- the simulator keeps its cluster ---------------------------------------------------------

def _simulator(state: Path, port: int) -> tuple[subprocess.Popen, list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.pvesim", "--port", str(port), "--containers", "5", "--token", TOKEN,
         "--task-delay", "0.01", "--state", str(state)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, _wait_for_line(process, r"^admin endpoint:")


def _admin(port: int, ca: str, path: str, payload: dict | None = None):
    import ssl

    request = urllib.request.Request(f"https://127.0.0.1:{port}/_sim{path}", method="POST" if payload else "GET",
                                     data=json.dumps(payload).encode() if payload else None,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=ca), timeout=5) as response:
        return json.load(response)


def test_a_restarted_simulator_still_has_the_containers_created_before(tmp_path):
    state, port = tmp_path / "pvesim-state.json", _free_port()
    process, lines = _simulator(state, port)
    try:
        assert any("starting from the seeded cluster" in line for line in lines)
        ca = next(line.split(": ", 1)[1] for line in lines if line.startswith("CA certificate:"))
        _admin(port, ca, "/containers", {"vmid": 120, "hostname": "made-by-proxboard", "status": "running"})
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "made-by-proxboard" not in (state.read_text() if state.exists() else ""):
            time.sleep(0.1)  # saved within a second of the change, not only at exit
        assert "made-by-proxboard" in state.read_text()
    finally:
        _stop(process)

    process, lines = _simulator(state, port)
    try:
        assert "state: loaded 6 containers" in "\n".join(lines)
        ca = next(line.split(": ", 1)[1] for line in lines if line.startswith("CA certificate:"))
        listed = _admin(port, ca, "/containers")
        listed = listed.get("data", listed) if isinstance(listed, dict) else listed
        made = next(ct for ct in listed if ct["vmid"] == 120)
        assert made["status"] == "running" and "made-by-proxboard" in json.dumps(made)
    finally:
        _stop(process)


# -- the SSH node keeps its keys --------------------------------------------------------------

def test_a_restarted_ssh_node_keeps_its_host_key_port_and_known_hosts(tmp_path):
    if not os.access("/usr/sbin/sshd", os.X_OK):
        pytest.fail("/usr/sbin/sshd not found: `make test` installs openssh-server with apt-get")
    workdir = tmp_path / "demo-ssh"
    seen = []
    for _ in range(2):
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.sshsim", "--workdir", str(workdir),
             "--pve-admin", "https://127.0.0.1:9/_sim", "--pve-ca", certifi.where()],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            lines = _wait_for_line(process, r"^known hosts:")
        finally:
            _stop(process)
        seen.append((lines[0], (workdir / "known_hosts").read_text(), (workdir / "id_ed25519").read_text()))
    assert seen[0][0].startswith("sshsim listening on 127.0.0.1:")
    assert seen[1] == seen[0]


# -- a failed part is a banner ------------------------------------------------------------------

def _write_status(app, parts: dict, run_pid: int | None = None) -> None:
    path = Path(app.instance_path) / "demo-status.json"
    path.write_text(json.dumps({"run_pid": run_pid or os.getpid(), "started": time.time(), "parts": parts}))


@pytest.fixture
def dead_pid():
    """The PID of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture(autouse=True)
def uncached(monkeypatch):
    monkeypatch.setattr(demo, "CACHE_SECONDS", 0)


def test_a_demo_part_that_failed_or_stopped_is_a_banner(app, logged_in, client, dead_pid):
    _write_status(app, {
        "simulator": {"state": "running", "message": "The Proxmox simulator", "pid": os.getpid()},
        "ssh": {"state": "failed", "message": "The demo SSH node did not start, so service checks fail.",
                "log": "instance/sshsim.log"},
        "worker": {"state": "running", "message": "The job worker", "pid": dead_pid, "log": "instance/worker.log"},
    })
    page = client.get("/").get_data(as_text=True)
    assert page.count('data-testid="demo-banner"') == 2
    assert "The demo SSH node did not start, so service checks fail. See <code>instance/sshsim.log</code>" in page
    assert "The job worker has stopped. See <code>instance/worker.log</code>" in page
    assert 'data-part="simulator"' not in page
    # the auto-refresh brings it too, and the container pages and the wizard show it
    assert "The job worker has stopped" in client.get("/", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "The job worker has stopped" in client.get("/containers/100").get_data(as_text=True)
    assert "The job worker has stopped" in client.get("/containers/create", follow_redirects=True).get_data(as_text=True)
    assert client.get("/healthz").get_json()["demo"] == {
        "ssh": "The demo SSH node did not start, so service checks fail.", "worker": "The job worker has stopped."}


def test_no_banner_when_all_runs_or_the_file_is_from_an_earlier_run(app, logged_in, client, dead_pid):
    _write_status(app, {"worker": {"state": "running", "message": "The job worker", "pid": os.getpid()}})
    assert "demo-banner" not in client.get("/").get_data(as_text=True)
    _write_status(app, {"ssh": {"state": "failed", "message": "The demo SSH node did not start."}}, run_pid=dead_pid)
    assert "demo-banner" not in client.get("/").get_data(as_text=True)
    (Path(app.instance_path) / "demo-status.json").write_text("{not json")
    assert "demo-banner" not in client.get("/").get_data(as_text=True)


def test_the_status_file_is_read_at_most_every_few_seconds(app, monkeypatch):
    monkeypatch.setattr(demo, "CACHE_SECONDS", 60)
    _write_status(app, {"ssh": {"state": "failed", "message": "SSH down."}})
    assert [problem.part for problem in demo.demo_problems()] == ["ssh"]
    (Path(app.instance_path) / "demo-status.json").unlink()
    assert [problem.part for problem in demo.demo_problems()] == ["ssh"]


# -- the web server's log lines ------------------------------------------------------------------

def test_flask_run_logs_requests_with_a_time_and_a_level(tmp_path):
    port = _free_port()
    env = {**os.environ, "FLASK_APP": "wsgi", "PROXBOARD_SECRET_KEY": "log-test",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'proxboard.db'}", "PROXBOARD_PVE_HOST": "127.0.0.1",
           "PROXBOARD_PVE_PORT": "9", "PROXBOARD_PVE_TIMEOUT": "1", "PROXBOARD_PVE_PASSWORD": "unused"}
    process = subprocess.Popen([str(Path(sys.executable).parent / "flask"), "run", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5).read()
                break
            except urllib.error.HTTPError:  # the database is not migrated: 503, still a logged request
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
    finally:
        out = _stop(process)
    request_lines = [line for line in out.splitlines() if "GET /login" in line]
    assert request_lines, out
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO werkzeug: ", request_lines[0]), request_lines
    assert not any(line.startswith("[") for line in out.splitlines()), "one format, no second handler"


def test_make_run_hands_the_simulator_its_token_outside_argv(tmp_path):
    """`ps` shows every user a process's arguments; the demo's API token is not among them."""
    assert "--token" not in (ROOT / "scripts" / "run.sh").read_text().split("python -m tests.pvesim", 1)[1].split("&\n")[0]
    port, secret = _free_port(), "only-in-the-environment"
    process = subprocess.Popen([sys.executable, "-m", "tests.pvesim", "--port", str(port), "--containers", "1"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PVESIM_TOKEN": f"root@pam!proxboard={secret}"})
    try:
        lines = _wait_for_line(process, r"^admin endpoint:")
        assert secret not in Path(f"/proc/{process.pid}/cmdline").read_text()
        ca = next(line.split(": ", 1)[1] for line in lines if line.startswith("CA certificate:"))
        import ssl

        request = urllib.request.Request(f"https://127.0.0.1:{port}/api2/json/version",
                                         headers={"Authorization": f"PVEAPIToken=root@pam!proxboard={secret}"})
        with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=ca), timeout=5) as response:
            assert json.load(response)["data"]["release"]
    finally:
        _stop(process)
