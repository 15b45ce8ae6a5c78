"""Time one alert evaluation pass at 1,000 containers and 50 rules (SQLite, rows seeded directly).

    .venv/bin/python scripts/bench_alerts.py [--containers 1000] [--rules 50] [--rounds 5]

``bench_alert_pass()`` returns the rows so the main benchmark can print them too. Each container has
a stored snapshot (one in ten stopped since the last pass, one in twenty above 90 % CPU), two
application services (one in twenty failed) and a credential (one in fifty stale); the rules cycle
through every kind, each speaking through one channel that is switched off, so the pass does all its
work but the network is not timed. No Proxmox is involved: the pass reads the database only.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _seed(containers: int, rules: int) -> None:
    """Insert the containers, services, credentials, Operations, rules and channel of the benchmark."""
    from app.alerts.services import create_channel
    from app.credentials.vault import encrypt
    from app.extensions import db
    from app.models import ALERT_KINDS, AlertRule, Container, Credential, Operation, Service

    nodes = ("pve1", "pve2", "pve3")
    records = []
    for number in range(containers):
        vmid = 100 + number
        snapshot = {"name": f"ct{vmid}", "node": nodes[number % 3], "status": "running", "cpu": 0.1, "cpus": 2,
                    "mem": 256 << 20, "maxmem": 1 << 30, "disk": 2 << 30, "maxdisk": 8 << 30, "uptime": 3600,
                    "tags": [], "lock": None, "ha_managed": False, "ha_state": None, "template": False}
        if number % 20 == 1:
            snapshot["cpu"] = 0.97
        records.append(Container(vmid=vmid, node=nodes[number % 3], hostname=f"ct{vmid}", snapshot=snapshot,
                                 lifecycle="gone" if number % 100 == 99 else "ready"))
    db.session.add_all(records)
    db.session.flush()
    secret = encrypt("s3cret")
    for number, record in enumerate(records):
        db.session.add_all([
            Service(container_id=record.id, name="nginx", kind="application",
                    status="failed" if number % 20 == 2 else "running"),
            Service(container_id=record.id, name="postgresql", kind="application", status="running"),
            Credential(container_id=record.id, key="POSTGRES_PASSWORD", value_encrypted=secret,
                       stale=number % 50 == 3),
        ])
        if number % 10 == 4:
            db.session.add(Operation(container_id=record.id, action="stop", state="succeeded"))
    channel = create_channel("bench", "json://127.0.0.1:9/hook")
    channel.enabled = False
    for number in range(rules):
        db.session.add(AlertRule(kind=ALERT_KINDS[number % len(ALERT_KINDS)], name=f"rule {number}", for_minutes=5,
                                 repeat_minutes=60, channels=[channel]))
    db.session.commit()


def bench_alert_pass(containers: int = 1000, rules: int = 50, rounds: int = 5) -> list[dict]:
    """Seed a temporary SQLite database, then time the passes: the first (every container observed),
    one that sees one container in ten stop, one that opens the incidents, and ``rounds`` steady ones."""
    from app import create_app
    from app.alerts.engine import Facts, evaluate
    from app.extensions import db
    from app.models import AlertIncident, Container, utcnow
    from app.proxmox import BackupIndex
    from tests.fixtures.database import upgrade_database

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade_database(url)
        app = create_app({"TESTING": True, "SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": url,
                          "BASE_URL": "https://proxboard.example"}, instance_path=tmp)
        with app.app_context():
            _seed(containers, rules)
            now = utcnow()
            day = 86400
            index = BackupIndex.build({"pbs": tuple((100 + n, int(now.timestamp()) - (n % 14) * day)
                                                    for n in range(containers))}, now.timestamp())
            facts = Facts(offline_nodes={"pve3": now}, backup_index=index)

            def timed(label: str, moment) -> None:
                started = time.perf_counter()
                result = evaluate(facts, moment)
                rows.append({"pass": label, "ms": (time.perf_counter() - started) * 1000, "opened": result.opened,
                             "open": db.session.query(AlertIncident).filter_by(state="open").count()})

            timed("first (observes every container)", now)
            for record in db.session.scalars(db.select(Container)):
                if record.vmid % 10 == 0:
                    record.snapshot = {**record.snapshot, "status": "stopped"}
            db.session.commit()
            timed("sees 100 stop", now + timedelta(minutes=1))
            timed("opens the incidents", now + timedelta(minutes=10))
            for number in range(rounds):
                timed("steady", now + timedelta(minutes=11 + number))
            db.engine.dispose()
    return rows


def print_table(rows: list[dict], containers: int, rules: int) -> None:
    """Print the rows, then the median steady pass."""
    print(f"Alert evaluation pass, {containers} containers, {rules} rules (SQLite)")
    print(f"{'pass':<34} {'ms':>8} {'opened':>7} {'open':>6}")
    for row in rows:
        print(f"{row['pass']:<34} {row['ms']:>8.1f} {row['opened']:>7} {row['open']:>6}")
    steady = [row["ms"] for row in rows if row["pass"] == "steady"]
    print(f"median steady pass: {statistics.median(steady):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print_table(bench_alert_pass(args.containers, args.rules, args.rounds), args.containers, args.rules)


if __name__ == "__main__":
    main()
