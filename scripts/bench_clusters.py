"""Three clusters of 1,000 containers each, several gunicorn workers, many viewers: upstream calls per cluster.

Starts three simulators ("default" from the environment, "lab" and "office" added as ``flask clusters add`` adds
them), then gunicorn with 4 worker processes twice: the read cache in each process's memory, then shared through
Redis. Concurrent clients refresh the all-clusters dashboard for ``--intervals`` cache intervals; each simulator's
request log says how many ``/cluster/resources`` calls reached it. Prints a table, asserts nothing (README
"Benchmarks").
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
import warnings
from pathlib import Path

import requests
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import build_app, gunicorn, percentile, refresh_for, signed_in, simulator, upstream_calls  # noqa: E402
from bench_shared_cache import REDIS_URL, read_cache_env, redis_available  # noqa: E402

NAMES = ("default", "lab", "office")


def add_clusters(app, sims: dict[str, tuple[dict, str]]) -> None:
    from app.clusters.services import ClusterSettings, add_cluster

    with app.app_context():
        for name, (env, _) in sims.items():
            if name != "default":
                add_cluster(name, ClusterSettings(host=env["PVE_HOST"], port=int(env["PVE_PORT"]),
                                                  token_id="root@pam!proxboard", token_secret=env["PVE_TOKEN_VALUE"],
                                                  verify_ssl=env["PVE_VERIFY_SSL"]))


def clusters_table(workers: int, clients: int, intervals: int, cache_seconds: float, containers: int) -> None:
    seconds = intervals * cache_seconds
    print(f"\n{len(NAMES)} clusters of {containers} containers, {workers} gunicorn worker processes, {clients} clients "
          f"refreshing the all-clusters dashboard for {intervals} intervals of {cache_seconds:g} s")
    print(f"{'read cache':<22} | {'answers':>7} | {'errors':>6} | {'p50 ms':>6} | {'p95 ms':>6} | "
          + " | ".join(f"{name + ' calls/interval':>23}" for name in NAMES))
    print("-" * (60 + 26 * len(NAMES)))
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        sims = {name: stack.enter_context(simulator(containers, 3, () if name == "default" else
                                                     ("--cluster-name", name, "--node-prefix", name)))
                for name in NAMES}
        app = build_app(sims["default"][0], folder, cache_seconds)
        add_clusters(app, sims)
        for label, redis_url in (("in each process", None), ("shared through Redis", REDIS_URL)):
            if redis_url and not redis_available(redis_url):
                print(f"{label:<22} | no Redis at {redis_url}")
                continue
            with read_cache_env(cache_seconds, redis_url) as extra, \
                    gunicorn(sims["default"][0], folder, workers=workers, threads=8, extra=extra) as base:
                sessions = [signed_in(base) for _ in range(clients)]
                for session in sessions:  # every worker answers (and builds its clients) before counting starts
                    session.get(base + "/", headers={"HX-Request": "true"}, timeout=60)
                time.sleep(0.2)
                for _, sim_base in sims.values():
                    requests.delete(sim_base + "/_sim/requests", verify=False, timeout=5)
                answers, errors, _ = refresh_for(base, sessions, seconds, headers={"Connection": "close"})
                calls = [upstream_calls(sim_base, "/cluster/resources") for _, sim_base in sims.values()]
                for session in sessions:
                    session.close()
            print(f"{label:<22} | {len(answers):>7} | {len(errors):>6} | {percentile(answers, 0.5):>6.0f} | "
                  f"{percentile(answers, 0.95):>6.0f} | " + " | ".join(f"{c / intervals:>23.2f}" for c in calls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--intervals", type=int, default=6)
    parser.add_argument("--cache-seconds", type=float, default=5)
    parser.add_argument("--containers", type=int, default=1000)
    args = parser.parse_args()
    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
    clusters_table(args.workers, args.clients, args.intervals, args.cache_seconds, args.containers)


if __name__ == "__main__":
    main()
