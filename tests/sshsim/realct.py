"""Real, isolated Linux roots for the demo and the catalog tests (stdlib only: ``pct.py`` imports it).

A Debian 12 root is made once with ``debootstrap --variant=minbase`` and cached, keyed by a hash of
what built it. Each container is a copy of it, owned by host uids 100000–165535 like a Proxmox
*unprivileged* container, and runs in its own user namespace (container root = host uid 100000,
no power over host files), mount, PID, IPC, UTS and network namespaces set up by bubblewrap. The
network namespace reaches the outside through slirp4netns (user-mode NAT, the host's loopback
blocked), so apt and npm work, and every container has its own ports (nginx on 80 in two
containers at once). Without slirp4netns the container shares the host's network instead.

systemd cannot run there: ``guest/systemctl`` stands in for it (see its header).
``pct exec`` enters the namespaces with ``nsenter`` like ``lxc-attach`` does; ``pct push`` writes
the file from inside, so paths (and symlinks) resolve in the container, never on the host.
"""
from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SYSTEMCTL = HERE / "guest" / "systemctl"
UID_BASE, ID_COUNT = 100000, 65536
SUITE = "bookworm"
MIRROR = os.environ.get("PROXBOARD_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("PROXBOARD_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
# What Proxmox's debian-12-standard has that minbase lacks and the discovery script needs (ss, ps).
INCLUDE = ("iproute2", "procps")
RECIPE = 1  # bump when _finish_base changes what the cached base holds
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CLONE_NEWUSER = 0x10000000


# Written into the node's root by the demo (tests/sshsim/__main__.py) when isolation is unavailable: a folder
# container would run a script on the host itself, so pct pushes nothing executable into one.
NO_ISOLATION = ".no-isolation"

def cache_root() -> Path:
    """Where bases are kept: $PROXBOARD_ROOTFS_CACHE, else /var/cache/proxboard/rootfs (root) or ~/.cache."""
    if os.environ.get("PROXBOARD_ROOTFS_CACHE"):
        return Path(os.environ["PROXBOARD_ROOTFS_CACHE"])
    if os.geteuid() == 0:
        return Path("/var/cache/proxboard/rootfs")
    return Path.home() / ".cache" / "proxboard" / "rootfs"


def base_key() -> str:
    """A hash of everything that decides the base's content."""
    recipe = {"suite": SUITE, "variant": "minbase", "include": INCLUDE, "mirror": MIRROR,
              "security": SECURITY_MIRROR, "recipe": RECIPE, "ids": [UID_BASE, ID_COUNT]}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


_problem: str | None = None
_checked = False


def isolation_problem() -> str | None:
    """Why real roots cannot work on this machine (None: they can)."""
    global _problem, _checked
    if _checked:
        return _problem
    _checked = True
    if os.geteuid() != 0:
        _problem = ("real container roots need root (to map uids 100000-165535 like Proxmox's "
                    "unprivileged containers and to run debootstrap)")
    elif not shutil.which("bwrap"):
        _problem = "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    elif not shutil.which("nsenter"):
        _problem = "nsenter (util-linux) is missing"
    elif not (cache_root() / base_key() / ".ready").exists() and not shutil.which("debootstrap"):
        _problem = "debootstrap is not installed: apt-get install debootstrap"
    else:
        probe = subprocess.run(["bwrap", "--unshare-user", "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/",
                                "--proc", "/proc", "--dev", "/dev", "true"], capture_output=True, text=True)
        if probe.returncode != 0:
            _problem = f"bubblewrap cannot create namespaces here ({probe.stderr.strip() or probe.returncode})"
    return _problem


def network_mode() -> str:
    """``slirp`` (own network namespace, NAT to the outside) or ``host`` (shared with the host)."""
    return "slirp" if shutil.which("slirp4netns") and Path("/dev/net/tun").exists() else "host"


def _shift_ids(root: Path) -> None:
    """Own every file by UID_BASE+uid like an unprivileged container's root (setuid bits kept)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [None, *dirnames, *filenames]:
            path = dirpath if name is None else os.path.join(dirpath, name)
            st = os.lstat(path)
            if st.st_uid >= UID_BASE and st.st_gid >= UID_BASE:
                continue
            os.lchown(path, UID_BASE + st.st_uid % ID_COUNT, UID_BASE + st.st_gid % ID_COUNT)
            if not os.path.islink(path) and st.st_mode & 0o6000:
                os.chmod(path, st.st_mode & 0o7777)


def _finish_base(root: Path) -> None:
    """What a Proxmox Debian template has beyond debootstrap: apt sources, a systemctl diversion."""
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(
        f"Types: deb\nURIs: {MIRROR}\nSuites: {SUITE} {SUITE}-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        f"Types: deb\nURIs: {SECURITY_MIRROR}\nSuites: {SUITE}-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    # The stand-in systemctl goes to /usr/bin/systemctl; a later `apt-get install systemd` puts the
    # real one aside (.distrib) instead of over it.
    subprocess.run(["chroot", str(root), "dpkg-divert", "--local", "--rename", "--divert",
                    "/usr/bin/systemctl.distrib", "--add", "/usr/bin/systemctl"], check=True,
                   capture_output=True, env={"PATH": PATH})
    subprocess.run(["chroot", str(root), "apt-get", "clean"], check=True, env={"PATH": PATH})
    for path in (root / "var/lib/apt/lists").glob("*_*"):
        path.unlink()
    (root / "etc/machine-id").write_text("")
    _shift_ids(root)


def ensure_base(log=print) -> Path:
    """The cached base root (made now if missing: about a minute and 230 MB), safe across processes."""
    cache = cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    key = base_key()
    base = cache / key
    if (base / ".ready").exists():
        return base
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (base / ".ready").exists():
            return base
        for old in cache.iterdir():  # bases of older recipes and interrupted builds
            if old.is_dir() and old.name != key:
                shutil.rmtree(old, ignore_errors=True)
        building = cache / f"{key}.building"
        shutil.rmtree(building, ignore_errors=True)
        log(f"Building the Debian 12 base root in {base} (debootstrap, about a minute, once)")
        started = time.monotonic()
        result = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE,
                                 str(building), MIRROR], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"debootstrap failed: {(result.stdout + result.stderr)[-2000:]}")
        _finish_base(building)
        building.rename(base)
        (base / ".ready").write_text(f"{time.monotonic() - started:.0f} s\n")
        log(f"Base root ready in {time.monotonic() - started:.0f} s")
    return base


# ---- one container: <ct>/rootfs and its state in <ct>/.sim -------------------------------------

def rootfs(ct: Path) -> Path:
    return ct / "rootfs"


def create(ct: Path, hostname: str, base: Path | None = None) -> None:
    """Copy the base into ``<ct>/rootfs`` (cp --reflink=auto: a real copy on ext4, ~2 s)."""
    base = base or ensure_base()
    target = rootfs(ct)
    if (target / "etc").is_dir():
        return
    partial = ct / "rootfs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(partial)], check=True)
    (partial / ".ready").unlink(missing_ok=True)
    for name, text in (("etc/hostname", f"{hostname}\n"),
                       ("etc/hosts", f"127.0.0.1 localhost\n127.0.1.1 {hostname}\n::1 localhost ip6-localhost\n")):
        _write_owned(partial / name, text)
    partial.rename(target)


def _write_owned(path: Path, text: str, mode: int = 0o644) -> None:
    path.write_text(text)
    os.chown(path, UID_BASE, UID_BASE)
    path.chmod(mode)


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def init_pid(ct: Path) -> int:
    """The host PID of the container's PID 1 (0 when it is not running)."""
    pid = _read_pid(ct / ".sim" / "init.pid")
    return pid if _alive(pid) else 0


def _spawn_in_userns(argv: list[str], pass_fds: tuple[int, ...], log: Path) -> int:
    """Start ``argv`` detached in a new user namespace mapping 0-65535 to UID_BASE…; return its PID."""
    ready_r, ready_w = os.pipe()
    mapped_r, mapped_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(ready_r)
            os.close(mapped_w)
            os.setsid()
            null = os.open("/dev/null", os.O_RDONLY)  # before the mapping: uid 100000 may not open them
            out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(CLONE_NEWUSER) != 0:
                os._exit(120)
            os.write(ready_w, b"x")
            os.close(ready_w)
            os.read(mapped_r, 1)
            os.setresgid(0, 0, 0)
            os.setgroups([])
            os.setresuid(0, 0, 0)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            for fd in pass_fds:
                os.set_inheritable(fd, True)
            keep = set(pass_fds) | {0, 1, 2}
            for fd in range(3, 256):
                if fd not in keep:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            os.execvpe(argv[0], argv, {"PATH": PATH})
        finally:
            os._exit(127)
    os.close(ready_w)
    os.close(mapped_r)
    if os.read(ready_r, 1) != b"x":
        os.waitpid(pid, 0)
        raise RuntimeError("could not create a user namespace")
    os.close(ready_r)
    for kind in ("uid_map", "gid_map"):
        Path(f"/proc/{pid}/{kind}").write_text(f"0 {UID_BASE} {ID_COUNT}\n")
    os.write(mapped_w, b"x")
    os.close(mapped_w)
    return pid


class _InitDied(RuntimeError):
    """bwrap's init ended right after starting (seen under load: "loopback: Failed RTM_NEWADDR")."""


BOOT_ATTEMPTS = 3


def start(ct: Path, hostname: str) -> int:
    """Boot the container (namespaces, network, enabled units) unless it runs; return its init PID.

    A boot whose init dies at once is retried (BOOT_ATTEMPTS in all): bwrap's network-namespace set-up
    fails now and then on a loaded machine, and a second try succeeds.
    """
    sim = ct / ".sim"
    with open(sim / "boot.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if pid := init_pid(ct):
            return pid
        for attempt in range(1, BOOT_ATTEMPTS + 1):
            try:
                return _boot(ct, hostname, sim)
            except _InitDied:
                stop(ct)
                if attempt == BOOT_ATTEMPTS:
                    raise
                time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


def _boot(ct: Path, hostname: str, sim: Path) -> int:
    root = rootfs(ct)
    _traversable(ct)
    net = network_mode()
    shutil.copyfile(SYSTEMCTL, root / "usr/bin/systemctl")
    os.chown(root / "usr/bin/systemctl", UID_BASE, UID_BASE)
    (root / "usr/bin/systemctl").chmod(0o755)
    resolv = root / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    if net == "slirp":
        _write_owned(resolv, "nameserver 10.0.2.3\n")
    else:
        _write_owned(resolv, Path("/etc/resolv.conf").read_text())
    info_r, info_w = os.pipe()
    argv = ["bwrap", "--bind", str(root), "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm",
            "--tmpfs", "/run", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", hostname,
            "--cap-add", "ALL", "--info-fd", str(info_w)]
    if net == "slirp":
        argv.append("--unshare-net")
    argv += ["--", "/bin/sh", "-c", "mkdir -p /run/lock /run/systemd/system; exec sleep infinity"]
    outer = _spawn_in_userns(argv, (info_w,), sim / "init.log")
    os.close(info_w)
    with os.fdopen(info_r) as info:
        text = info.read()
    try:
        pid = int(json.loads(text)["child-pid"])
    except (ValueError, KeyError):
        raise RuntimeError(f"bwrap did not start: {(sim / 'init.log').read_text()[-1000:]}") from None
    (sim / "outer.pid").write_text(f"{outer}\n")
    (sim / "init.pid").write_text(f"{pid}\n")
    if net == "slirp":
        ready_r, ready_w = os.pipe()
        os.set_inheritable(ready_w, True)
        log_fd = os.open(sim / "slirp.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        slirp = os.posix_spawnp(
            "slirp4netns", ["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
                            "--ready-fd", str(ready_w), str(pid), "tap0"], {"PATH": PATH},
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                          (os.POSIX_SPAWN_DUP2, log_fd, 1), (os.POSIX_SPAWN_DUP2, log_fd, 2)], setsid=True)
        os.close(ready_w)
        os.close(log_fd)
        os.read(ready_r, 1)
        os.close(ready_r)
        (sim / "slirp.pid").write_text(f"{slirp}\n")
    time.sleep(0.05)
    if not _alive(pid):
        raise _InitDied(f"the container's init ended at once: {(sim / 'init.log').read_text()[-1000:]}")
    subprocess.run(enter_argv(ct, ["systemctl", "__boot"], pid=pid), env=exec_env(), cwd="/",
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    return pid


def _traversable(ct: Path) -> None:
    """Let the container's uid 100000 reach its root: o+x on folders above it (pytest's are 0700)."""
    for folder in [ct, *ct.parents]:
        st = folder.stat()
        if not st.st_mode & 0o001 and st.st_uid == os.geteuid():
            folder.chmod(st.st_mode | 0o001)


def stop(ct: Path) -> None:
    """Power off: every process of the container ends (its PID namespace goes with bwrap)."""
    sim = ct / ".sim"
    outer, slirp = _read_pid(sim / "outer.pid"), _read_pid(sim / "slirp.pid")
    for name in ("outer.pid", "slirp.pid"):
        pid = _read_pid(sim / name)
        if _alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        (sim / name).unlink(missing_ok=True)
    init = _read_pid(sim / "init.pid")
    if _alive(init):
        try:
            os.kill(init, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 5
    while _alive(init) and time.monotonic() < deadline:
        time.sleep(0.05)
    (sim / "init.pid").unlink(missing_ok=True)
    for child in (outer, slirp):  # reap them when this process started them
        try:
            os.waitpid(child, os.WNOHANG) if child else None
        except (ChildProcessError, OSError):
            pass


def exec_env() -> dict[str, str]:
    """The environment ``pct exec`` gives commands (what lxc-attach gives: a clean root one)."""
    return {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", "container": "lxc"}


def enter_argv(ct: Path, argv: list[str], pid: int | None = None) -> list[str]:
    """``nsenter`` into every namespace of the running container, cwd /root, then ``argv``."""
    pid = pid or init_pid(ct)
    return ["nsenter", "--target", str(pid), "--user", "--mount", "--pid", "--uts", "--ipc", "--net", "--root",
            f"--wd={rootfs(ct) / 'root'}", "--", *argv]


PUSH = r"""dest=$1 perms=$2 owner=$3
case "$dest" in */*) dir=${dest%/*} ;; *) dir=. ;; esac
[ -d "${dir:-/}" ] || exit 3
cat >"$dest" && chmod "$perms" "$dest" && chown "$owner" "$dest"
"""


def push_argv(ct: Path, destination: str, perms: str, owner: str) -> list[str]:
    """Write stdin to ``destination`` from inside the container (exit 3: its folder is missing)."""
    return enter_argv(ct, ["/bin/sh", "-c", PUSH, "sh", destination, perms, owner])


def run(ct: Path, command: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run a shell command inside the running container (for tests), output captured."""
    result = subprocess.run(enter_argv(ct, ["/bin/bash", "-c", command]), env=exec_env(), capture_output=True,
                            text=True, timeout=timeout, cwd="/")
    if check and result.returncode != 0:
        raise AssertionError(f"{command!r} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result


if __name__ == "__main__":  # python -m tests.sshsim.realct: build (or find) the base and print its path
    problem = isolation_problem()
    if problem:
        sys.exit(problem)
    print(ensure_base())
