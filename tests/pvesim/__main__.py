"""CLI: ``python -m tests.pvesim --port 8006 --containers 20 --token 'root@pam!proxboard=SECRET' --pve-version 9.1``.

``--state FILE`` keeps the cluster across restarts: loaded on start when the file exists (else the
seeded cluster), written within a second of every change and once more at exit.
"""

from __future__ import annotations

import argparse
import json
import os
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
    ap.add_argument("--token", default=os.environ.get("PVESIM_TOKEN", "root@pam!proxboard=SECRET"),
                    help="USER@REALM!TOKENID=SECRET (default $PVESIM_TOKEN: unlike argv, not shown by ps)")
    ap.add_argument("--password", default="pvepass", help="password of the token's user (ticket auth)")
    ap.add_argument("--task-delay", type=float, default=0.3)
    ap.add_argument("--time-scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--auth-failure-delay", type=float, default=0.0)
    ap.add_argument("--pve-version", choices=["9.1", "8.4"], default="9.1",
                    help="simulated Proxmox VE release (schema, defaults and behaviour)")
    ap.add_argument("--cluster-name", default="simcluster", help="the cluster's name (/cluster/status)")
    ap.add_argument("--node-prefix", default="pve", help="nodes are PREFIX1, PREFIX2… (clusters side by side differ)")
    ap.add_argument("--state", help="JSON file the cluster is loaded from and saved to (kept across restarts)")
    args = ap.parse_args(argv)

    sim = PVESimulator(nodes=args.nodes, containers=args.containers, token=args.token,
                       password=args.password, task_delay=args.task_delay, seed=args.seed,
                       time_scale=args.time_scale, host=args.host, port=args.port,
                       auth_failure_delay=args.auth_failure_delay, pve_version=args.pve_version,
                       cluster_name=args.cluster_name, node_prefix=args.node_prefix)
    if args.state:
        try:
            sim.cluster.load(args.state)
        except FileNotFoundError:
            print(f"state: none yet at {args.state}, starting from the seeded cluster", flush=True)
        except (OSError, ValueError) as exc:
            print(f"state: cannot load {args.state} ({exc}), starting from the seeded cluster", flush=True)
        else:
            print(f"state: loaded {len(sim.containers)} containers from {args.state}", flush=True)
    sim.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"pvesim (Proxmox VE {sim.pve_version}) listening on {sim.url}", flush=True)
    print(f"CA certificate: {sim.ca_cert_path}", flush=True)
    print(f"admin endpoint: {sim.base_url}/_sim/ (faults, reset, requests, containers)", flush=True)
    saved = None
    try:
        while not stop.wait(0.5):
            saved = save_if_changed(sim, args.state, saved)
    finally:
        sim.stop()
        save_if_changed(sim, args.state, saved)
        print("pvesim stopped", flush=True)
    return 0


def save_if_changed(sim: PVESimulator, path: str | None, saved: str | None) -> str | None:
    """Write the cluster to ``path`` when it differs from ``saved`` (what was written last); returns it."""
    if not path:
        return saved
    state = sim.cluster.to_dict()
    state["counters"].pop("mac_serial")  # drawn anew by every to_dict: not a change
    text = json.dumps(state, sort_keys=True)
    if text != saved:
        try:
            sim.cluster.save(path)
        except OSError as exc:
            print(f"state: cannot save {path}: {exc}", file=sys.stderr, flush=True)
            return saved
    return text


if __name__ == "__main__":
    sys.exit(main())
