"""Provisioning overhead per step and event latency to the browser (real sshd, simulator, SQLite).

    .venv/bin/python scripts/bench_provisioning.py [--runs 3] [--latency-samples 10]

Overhead of a step = its wall time minus the time spent waiting on the outside world:
Proxmox tasks (``wait_task``) and commands running in the container (``pct_exec``/``pct_push``,
which includes the scripts' own run time). Event latency = time from an Event row being
written by the job's EventWriter until Chromium shows it on the progress page (1 s htmx poll).
Needs /usr/sbin/sshd (Debian openssh-server), Playwright's Chromium, and root.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCRIPT = 'log_step "configure"\nfor i in $(seq 1 50); do echo "line $i"; done\nsleep 0.5\nsave_credential app TOKEN abc\n'


class Stopwatch:
    """Accumulates time spent inside wrapped calls, per current step."""

    def __init__(self) -> None:
        self.step = "?"
        self.outside: dict[str, float] = defaultdict(float)

    def wrap(self, obj, name: str) -> None:
        original = getattr(obj, name)

        def timed(*args, **kwargs):
            started = time.monotonic()
            try:
                return original(*args, **kwargs)
            finally:
                self.outside[self.step] += time.monotonic() - started

        setattr(obj, name, timed)


def build(work: Path, sim, ssh, **extra):
    from app import create_app
    from tests.fixtures.app import app_config
    from tests.fixtures.database import upgrade_database

    url = f"sqlite:///{work / 'bench.db'}"
    upgrade_database(url)
    app = create_app(app_config(url, sim, PVE_CACHE_SECONDS=0, SSH_HOSTS={"pve1": ssh.host}, SSH_PORT=ssh.port,
                                SSH_KEY_FILE=str(ssh.user_key_path), SSH_KNOWN_HOSTS=str(ssh.known_hosts_path),
                                **extra))
    app.instance_path = str(work)
    return app


def seed_template():
    from app.container_templates.services import add_package, add_script, create_template, save_file, save_service

    t = create_template({"name": "bench", "description": "", "cores": 1, "memory": 512, "swap": 0, "disk": 4,
                         "tags": "", "ostemplate": "debian-12", "unprivileged": True, "nesting": False,
                         "keyctl": False, "fuse": False, "storage": None, "bridge": None})
    add_package(t, "apt", "nginx", None)
    add_package(t, "pip", "requests", None)
    save_file(t, {"name": "f", "target_path": "/etc/bench.conf", "policy": "backup", "content": "x=1\n"})
    add_script(t, "one", SCRIPT)
    add_script(t, "two", SCRIPT)
    save_service(t, {"name": "nginx", "unit": "nginx.service", "port": 80, "scheme": "http", "web_path": "/"})
    return t


def bench_overhead(runs: int) -> list[dict]:
    """Provision ``runs`` containers in-process; one row per step with wall, outside and overhead."""
    from app.extensions import db
    from app.models import Container, Operation
    from app.proxmox import get_proxmox
    from app.provisioning import run_provisioning, steps
    from app.ssh import NodeConnection, open_pool
    from tests.pvesim import PVESimulator
    from tests.sshsim import FakeUnit, SSHServer

    samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "sshd").mkdir()
        ssh = SSHServer(work / "sshd").start()
        sim = PVESimulator(nodes=1, containers=3, token="root@pam!bench=SECRET", task_delay=0.3, seed=1).start()
        try:
            app = build(work, sim, ssh)
            with app.app_context():
                template = seed_template()
                watch = Stopwatch()
                proxmox = get_proxmox()
                for name in ("wait_task", "create_container", "start", "container_interfaces", "task_log"):
                    watch.wrap(proxmox, name)
                for name in ("pct_exec", "pct_push"):
                    watch.wrap(NodeConnection, name)
                # Tag the current step: wrap every step function.
                for index, step in enumerate(steps.STEPS):
                    def tagged(ctx, _run=step.run, _name=step.name):
                        watch.step = _name
                        started = time.monotonic()
                        _run(ctx)
                        walls[_name] = time.monotonic() - started
                    steps.STEPS = steps.STEPS[:index] + (steps.Step(step.name, step.label, step.percent, tagged),) + steps.STEPS[index + 1:]
                from app.provisioning import service
                service.STEPS = steps.STEPS
                for run in range(runs):
                    vmid = 500 + run
                    ct = ssh.container(vmid)
                    ct.set_units([FakeUnit("nginx.service", ports=[80])])
                    container = Container(vmid=vmid, node="pve1", hostname=f"bench{run}", lifecycle="creating",
                                          template_id=template.id)
                    db.session.add(container)
                    db.session.flush()
                    plan = {"spec": {"node": "pve1", "vmid": vmid, "hostname": f"bench{run}",
                                     "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                                     "storage": "local-lvm", "bridge": "vmbr0"},
                            "packages": {"apt": ["nginx"], "pip": ["requests"]},
                            "scripts": [s.id for s in template.scripts], "files": [f.id for f in template.files],
                            "from_step": "create"}
                    operation = Operation(container_id=container.id, action="create", state="queued", params=plan)
                    db.session.add(operation)
                    db.session.commit()
                    walls: dict[str, float] = {}
                    watch.outside.clear()
                    with open_pool() as pool:
                        started = time.monotonic()
                        ok = run_provisioning(operation.id, pool=pool)
                        total = time.monotonic() - started
                    assert ok, db.session.get(Operation, operation.id).error
                    for name, wall in walls.items():
                        samples[name].append((wall, watch.outside[name]))
                    samples["runner"].append(((total - sum(walls.values())) / len(walls), 0.0))
        finally:
            sim.stop()
            ssh.stop()
    rows = []
    for name in [step.name for step in steps.STEPS] + ["runner"]:
        values = samples[name]
        rows.append({"step": name, "wall": statistics.median(w for w, _ in values),
                     "outside": statistics.median(o for _, o in values),
                     "overhead": statistics.median(w - o for w, o in values),
                     "max_overhead": max(w - o for w, o in values)})
    return rows


def bench_latency(samples: int) -> list[float]:
    """Seconds from an event being written to Chromium showing it on the progress page."""
    from playwright.sync_api import sync_playwright

    from app.auth.services import create_user
    from app.extensions import db
    from app.models import Container, Operation
    from app.provisioning.events import EventWriter
    from tests.fixtures.app import TEST_PASSWORD
    from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, LiveServer
    from tests.pvesim import PVESimulator
    from tests.sshsim import SSHServer

    latencies = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "sshd").mkdir()
        ssh = SSHServer(work / "sshd").start()
        sim = PVESimulator(nodes=1, containers=3, token="root@pam!bench=SECRET", seed=1).start()
        try:
            app = build(work, sim, ssh)
            with app.app_context():
                create_user("alice", TEST_PASSWORD)
                container = Container(vmid=700, node="pve1", hostname="lat", lifecycle="creating")
                db.session.add(container)
                db.session.flush()
                operation = Operation(container_id=container.id, action="create", state="running", step="scripts",
                                      params={})
                db.session.add(operation)
                db.session.commit()
                ids = (container.id, operation.id)
                engine = db.engine
            server = LiveServer(app).start()
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(base_url=server.url)
                page.goto("/login")
                page.fill("#username", "alice")
                page.fill("#password", TEST_PASSWORD)
                page.click("button[type=submit]")
                page.goto("/containers/700/progress")
                with EventWriter(engine, *ids) as writer:
                    for n in range(samples):
                        time.sleep(0.37 * (n % 3))  # land at different points of the poll cycle
                        marker = f"latency-marker-{n}"
                        written = time.monotonic()
                        writer.add("log", marker, {"level": "info"})
                        page.wait_for_selector(f"text={marker}", timeout=10000)
                        latencies.append(time.monotonic() - written)
                browser.close()
            server.stop()
        finally:
            sim.stop()
            ssh.stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=10)
    args = parser.parse_args()
    rows = bench_overhead(args.runs)
    print(f"\nProvisioning overhead per step (median of {args.runs} runs; seconds)")
    print(f"{'step':<10} {'wall':>7} {'outside':>8} {'overhead':>9} {'max':>7}")
    for row in rows:
        print(f"{row['step']:<10} {row['wall']:7.3f} {row['outside']:8.3f} {row['overhead']:9.3f} {row['max_overhead']:7.3f}")
    latencies = bench_latency(args.latency_samples)
    print("(runner = bookkeeping between steps: step/heartbeat rows, state checks, per step)")
    print(f"\nEvent written → visible in Chromium ({len(latencies)} samples; seconds)")
    print(f"median {statistics.median(latencies):.3f}  max {max(latencies):.3f}  min {min(latencies):.3f}")


if __name__ == "__main__":
    main()
