"""CLI: ``python -m tests.pvesim --port 8006 --containers 20 --token 'root@pam!proxboard=SECRET' --pve-version 9.1``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from . import PVESimulator


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.pvesim", description="Proxmox VE 9.1 / 8.4 API simulator")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8006)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--containers", type=int, default=20)
    ap.add_argument("--token", default="root@pam!proxboard=SECRET", help="USER@REALM!TOKENID=SECRET")
    ap.add_argument("--password", default="pvepass", help="password of the token's user (ticket auth)")
    ap.add_argument("--task-delay", type=float, default=0.3)
    ap.add_argument("--time-scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--auth-failure-delay", type=float, default=0.0)
    ap.add_argument("--pve-version", choices=["9.1", "8.4"], default="9.1",
                    help="simulated Proxmox VE release (schema, defaults and behaviour)")
    args = ap.parse_args(argv)

    sim = PVESimulator(nodes=args.nodes, containers=args.containers, token=args.token,
                       password=args.password, task_delay=args.task_delay, seed=args.seed,
                       time_scale=args.time_scale, host=args.host, port=args.port,
                       auth_failure_delay=args.auth_failure_delay, pve_version=args.pve_version)
    sim.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"pvesim (Proxmox VE {sim.pve_version}) listening on {sim.url}", flush=True)
    print(f"CA certificate: {sim.ca_cert_path}", flush=True)
    print(f"admin endpoint: {sim.base_url}/_sim/ (faults, reset, requests, containers)", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        print("pvesim stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
