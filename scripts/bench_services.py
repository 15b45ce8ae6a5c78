"""Time one service refresh of N containers on one node (real sshd, simulator, SQLite).

    .venv/bin/python scripts/bench_services.py [--containers 20] [--rounds 3]

``bench_service_refresh()`` returns the rows so the main benchmark can print them too. Each
fake container runs nginx (port 80 via a worker), postgresql@15-main, an app and ssh, with
one credential file. Needs /usr/sbin/sshd (Debian openssh-server) and root.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bench_service_refresh(containers: int = 20, rounds: int = 3) -> list[dict]:
    """Refresh ``containers`` containers on one node ``rounds`` times; one row per round."""
    from app import create_app
    from app.extensions import db
    from app.models import Container
    from app.proxmox import get_proxmox
    from app.guest_services.refresh import refresh_node_batch
    from app.ssh import open_pool
    from tests.fixtures.database import upgrade_database
    from tests.pvesim import PVESimulator
    from tests.sshsim import FakeUnit, SSHServer

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "sshd").mkdir()
        ssh = SSHServer(work / "sshd").start()
        sim = PVESimulator(nodes=1, containers=containers + 5, token="root@pam!bench=SECRET", seed=1).start()
        try:
            url = f"sqlite:///{work / 'bench.db'}"
            upgrade_database(url)
            app = create_app({
                "TESTING": True, "SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": url, "PVE_CACHE_SECONDS": 0,
                "PVE_HOST": sim.host, "PVE_PORT": sim.port, "PVE_USER": sim.token_user,
                "PVE_TOKEN_NAME": sim.token_name, "PVE_TOKEN_VALUE": sim.token_value,
                "PVE_VERIFY_SSL": sim.ca_cert_path, "SSH_PORT": ssh.port, "SSH_KEY_FILE": str(ssh.user_key_path),
                "SSH_KNOWN_HOSTS": str(ssh.known_hosts_path), "SSH_HOSTS": {"pve1": ssh.host},
            })
            app.instance_path = str(work)
            with app.app_context():
                summaries = get_proxmox().list_containers()[:containers]
                for summary in summaries:
                    fake = ssh.container(summary.vmid)
                    fake.set_units([
                        FakeUnit("nginx.service", child_ports=[80]),
                        FakeUnit("postgresql@15-main.service", ports=[("127.0.0.1", 5432)]),
                        FakeUnit("app.service", child_ports=[8000]),
                        FakeUnit("ssh.service", ports=[22]),
                    ])
                    fake.set_credentials("postgresql", {"POSTGRES_USER": "app", "POSTGRES_PASSWORD": "pw"})
                    db.session.add(Container(vmid=summary.vmid, node=summary.node))
                db.session.commit()
                cts = db.session.scalars(db.select(Container).order_by(Container.vmid)).all()
                proxmox = get_proxmox()
                for concurrency in (1, 4):
                    app.config["SERVICE_CHECK_CONCURRENCY"] = concurrency
                    for number in range(1, rounds + 1):
                        started = time.perf_counter()
                        with open_pool() as pool:
                            connect_started = time.perf_counter()
                            pool.node("pve1")
                            connect = time.perf_counter() - connect_started
                            results = refresh_node_batch(cts, "pve1", pool, proxmox)
                        assert all(result.ok for result in results)
                        rows.append({
                            "round": number, "concurrency": concurrency, "containers": len(cts),
                            "connect_s": connect, "total_s": time.perf_counter() - started,
                        })
            with app.app_context():
                db.engine.dispose()
        finally:
            sim.stop()
            ssh.stop()
    return rows


def print_table(rows: list[dict]) -> None:
    """Print the rows as a fixed-width table."""
    print(f"{'round':>5} {'at once':>7} {'CTs':>4} {'connect':>9} {'total':>8} {'per CT':>8}")
    for row in rows:
        print(f"{row['round']:>5} {row['concurrency']:>7} {row['containers']:>4} {row['connect_s']:>8.3f}s "
              f"{row['total_s']:>7.3f}s {row['total_s'] / row['containers']:>7.3f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"Service refresh, {args.containers} containers on one node, one SSH connection per round")
    print_table(bench_service_refresh(args.containers, args.rounds))


if __name__ == "__main__":
    main()
