"""Stand-in for Proxmox's ``pct`` on the test SSH server (stdlib only; started as ``python -I -S``).

Each container is a directory ``$PROXBOARD_SIM_ROOT/<vmid>/``; see tests/sshsim/README.md.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realct  # noqa: E402  (real, isolated roots: see realct.py)

ROOT = Path(os.environ.get("PROXBOARD_SIM_ROOT", "/nonexistent-proxboard-sim"))
NODE = os.environ.get("PROXBOARD_SIM_NODE", "pve")
# Absolute paths inside the container are rewritten to <ct>/..., except the host's programs
# and libraries (so /bin/sh, /usr/bin/python3 and /dev/null keep working).
HOST_PATHS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "dev", "proc", "sys", "usr")
_PATH = re.compile(r"(?<![\w.~:/$})\]*-])/(?=[A-Za-z_.])([A-Za-z0-9_.+-]+)")


def fail(message: str, code: int = 2) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


def container(vmid: str) -> Path:
    ct = ROOT / vmid
    if not vmid.isdigit() or not (ct / ".sim").is_dir():
        fail(f"Configuration file 'nodes/{NODE}/lxc/{vmid}.conf' does not exist")
    return ct


def status(ct: Path) -> str:
    path = ct / ".sim" / "status"
    return path.read_text().strip() if path.exists() else "running"


def record(ct: Path, argv: list[str]) -> None:
    with open(ct / ".sim" / "pct.log", "a") as handle:
        handle.write(json.dumps({"time": time.time(), "argv": argv}) + "\n")


def real(ct: Path) -> bool:
    """A real root (``.sim/real`` holds its hostname), not a folder of canned outputs."""
    return (ct / ".sim" / "real").is_file()


def boot(ct: Path) -> None:
    """Make the real root on first use (a copy of the cached base) and start it if it is not running."""
    if realct.init_pid(ct):
        return
    hostname = (ct / ".sim" / "real").read_text().strip() or f"ct{ct.name}"
    try:
        realct.create(ct, hostname)
        realct.start(ct, hostname)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        fail(f"CT {ct.name}: cannot start its root: {exc}", 255)


def rewrite(text: str, ct: Path) -> str:
    """Map absolute container paths in ``text`` into the container directory."""

    fake_proc = (ct / "proc").is_dir()  # an Alpine-like fake has its own /proc (see FakeContainer.make_alpine)

    def replace(match: re.Match[str]) -> str:
        first = match.group(1)
        if first == "proc" and fake_proc:
            return f"{ct}/{first}"
        if first in HOST_PATHS and not text.startswith("/usr/local", match.start()):
            return match.group(0)
        return f"{ct}/{first}"

    return _PATH.sub(replace, text)


def inside(ct: Path, path: str) -> Path:
    return ct / path.lstrip("/")


def cmd_exec(args: list[str]) -> None:
    if len(args) < 3 or args[1] != "--":
        fail("usage: pct exec <vmid> -- <command> [ARGS...]")
    ct = container(args[0])
    if status(ct) != "running":
        fail(f"CT {args[0]} not running")
    record(ct, ["exec", args[0], "--", *args[2:]])
    if real(ct):  # no rewriting: the command runs inside the container's own namespaces
        boot(ct)
        os.chdir("/")
        argv = realct.enter_argv(ct, args[2:])
        try:
            os.execvpe(argv[0], argv, realct.exec_env())
        except OSError as exc:
            fail(f"exec failed: {argv[0]}: {exc.strerror}", 255)
    argv = [rewrite(arg, ct) for arg in args[2:]]
    # A guest with its own tool set (.sim/hostbin) must not find the host's ss, systemctl or ps.
    system = f"{ct}/.sim/hostbin" if (ct / ".sim" / "hostbin").is_dir() else "/usr/sbin:/usr/bin:/sbin:/bin"
    env = {
        "PATH": f"{ct}/.sim/bin:{ct}/usr/local/sbin:{ct}/usr/local/bin:{system}",
        "HOME": str(ct / "root"),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "PROXBOARD_CT_ROOT": str(ct),
    }
    os.chdir(ct / "root")
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        fail(f"exec failed: {argv[0]}: {exc.strerror}", 255)


def cmd_push(args: list[str]) -> None:
    if len(args) < 3:
        fail("usage: pct push <vmid> <file> <destination> [OPTIONS]")
    ct = container(args[0])
    source, destination, options = args[1], args[2], args[3:]
    if status(ct) != "running":
        fail(f"CT {args[0]} not running")
    opts = dict(zip(options[::2], options[1::2]))
    if real(ct):
        boot(ct)
        owner = f"{opts.get('--user', 'root')}:{opts.get('--group', 'root')}"
        with open(source, "rb") as data:
            result = subprocess.run(realct.push_argv(ct, destination, opts.get("--perms", "644"), owner),
                                    stdin=data, env=realct.exec_env(), cwd="/")
        if result.returncode == 3:
            fail(f"failed to open {destination} for writing: No such file or directory", 255)
        if result.returncode != 0:
            fail(f"failed to write {destination} (exit {result.returncode})", 255)
        record(ct, ["push", args[0], destination, *options])
        return
    refusal = ROOT / realct.NO_ISOLATION
    if refusal.is_file() and int(opts.get("--perms", "644"), 8) & 0o111:
        fail(f"refused to push {destination}: this demo node has no isolation ({refusal.read_text().strip()}), "
             "so it does not run template scripts on the host", 255)
    target = inside(ct, destination)
    if not target.parent.is_dir():
        fail(f"failed to open {destination} for writing: No such file or directory", 255)
    shutil.copyfile(source, target)
    target.chmod(int(opts.get("--perms", "644"), 8))
    record(ct, ["push", args[0], destination, *options])


def cmd_status(args: list[str]) -> None:
    if len(args) != 1:
        fail("usage: pct status <vmid>")
    print(f"status: {status(container(args[0]))}")


def cmd_list(args: list[str]) -> None:
    print("VMID       Status     Lock         Name")
    for ct in sorted(ROOT.iterdir(), key=lambda p: p.name.zfill(12)) if ROOT.is_dir() else ():
        if ct.name.isdigit() and (ct / ".sim").is_dir():
            print(f"{ct.name:<10} {status(ct):<10} {'':<12} ct{ct.name}")


def main(argv: list[str]) -> None:
    commands = {"exec": cmd_exec, "push": cmd_push, "status": cmd_status, "list": cmd_list}
    if not argv or argv[0] not in commands:
        fail(f"ERROR: unknown command 'pct {' '.join(argv[:1])}'", 255)
    commands[argv[0]](argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
