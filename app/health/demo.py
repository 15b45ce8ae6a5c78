"""What ``make run`` started beside the web server, and which of it has failed.

``scripts/run.sh`` writes ``instance/demo-status.json`` (``DEMO_STATUS_FILE``) as it starts each
part and removes it when it ends::

    {"run_pid": 4242, "started": 1767000000.0,
     "parts": {"simulator": {"state": "running", "message": "The Proxmox simulator", "pid": 4250,
                             "log": "instance/pvesim.log"},
               "ssh": {"state": "failed", "message": "The demo SSH node did not start, ...",
                       "log": "instance/sshsim.log"},
               "worker": {"state": "running", "message": "The job worker", "pid": 4260, ...}}}

A part is failed when run.sh says so or when its process is gone. A file whose ``run_pid`` is
gone was left by an earlier run and means nothing. Every page may ask, so the answer is kept for
``CACHE_SECONDS`` per file: at most one small file read and a few ``kill(pid, 0)`` every few seconds.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

CACHE_SECONDS = 3.0
PART_NAMES = {"simulator": "The Proxmox simulator", "ssh": "The demo SSH node", "worker": "The job worker",
              "isolation": "Container isolation", "simulator-lab": "The second simulated cluster (lab)",
              "ssh-lab": "The lab cluster's SSH node"}

_cache: dict[str, tuple[float, tuple[DemoProblem, ...]]] = {}
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class DemoProblem:
    """One failed part: ``part`` (simulator, ssh, worker), what a user should know, its log file."""

    part: str
    message: str
    log: str | None = None


def status_file() -> Path:
    """``DEMO_STATUS_FILE`` or ``<instance>/demo-status.json``."""
    return Path(current_app.config.get("DEMO_STATUS_FILE") or Path(current_app.instance_path) / "demo-status.json")


def demo_problems() -> tuple[DemoProblem, ...]:
    """The failed parts of the current ``make run`` (empty without one, or when all is well); cached."""
    path = str(status_file())
    now = time.monotonic()
    with _lock:
        cached = _cache.get(path)
        if cached and now - cached[0] < CACHE_SECONDS:
            return cached[1]
    problems = read_problems(Path(path))
    with _lock:
        _cache[path] = (now, problems)
    return problems


def read_problems(path: Path) -> tuple[DemoProblem, ...]:
    """The failed parts listed in ``path``, uncached; a missing, unreadable or stale file lists none."""
    try:
        data = json.loads(path.read_text())
        if not _alive(int(data["run_pid"])):
            return ()
        parts = dict(data.get("parts") or {})
    except (OSError, ValueError, KeyError, TypeError):
        return ()
    problems = []
    for part, info in parts.items():
        if not isinstance(info, dict):
            continue
        name = PART_NAMES.get(part, part)
        log = info.get("log")
        if info.get("state") == "failed":
            problems.append(DemoProblem(part, str(info.get("message") or f"{name} failed."), log))
        elif info.get("pid") and not _alive(int(info["pid"])):
            problems.append(DemoProblem(part, f"{name} has stopped.", log))
    return tuple(problems)


def _alive(pid: int) -> bool:
    """True when process ``pid`` runs (on this machine, as with ``make run``); a zombie is not alive."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
