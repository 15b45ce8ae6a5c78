"""Four gunicorn workers, one Proxmox: upstream /cluster/resources calls per cache interval.

Starts the simulator, then gunicorn with 4 worker processes twice: with the read cache in each
process's memory, then shared through Redis (``PROXBOARD_REDIS_URL``, a key prefix of this run's
own). Concurrent clients refresh the dashboard for ``--intervals`` cache intervals; the simulator's
request log says how many ``/cluster/resources`` calls reached Proxmox. Prints a table, asserts
nothing (see README "Benchmarks").
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import requests
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import build_app, gunicorn, refresh_for, signed_in, simulator, upstream_calls  # noqa: E402

REDIS_URL = os.environ.get("PROXBOARD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def drive(base: str, sim_base: str, clients: int, seconds: float) -> tuple[int, int, int]:
    """``clients`` threads refreshing the dashboard for ``seconds``: (requests answered, errors, upstream calls)."""
    sessions = [signed_in(base) for _ in range(clients)]
    for session in sessions:  # every worker process answers at least once before counting starts
        session.get(base + "/", headers={"HX-Request": "true"}, timeout=30)
    time.sleep(0.2)
    requests.delete(sim_base + "/_sim/requests", verify=False, timeout=5)
    # A new connection each time, so that every worker process gets its share of requests.
    answers, errors, _ = refresh_for(base, sessions, seconds, headers={"Connection": "close"})
    upstream = upstream_calls(sim_base, "/cluster/resources")
    for session in sessions:
        session.close()
    return len(answers), len(errors), upstream


@contextlib.contextmanager
def read_cache_env(cache_seconds: float, redis_url: str | None):
    """The gunicorn environment of a run with the read cache in each process (``redis_url`` None) or shared
    through Redis under a key prefix of its own, whose keys are deleted afterwards."""
    prefix = f"proxboard-bench-{uuid.uuid4().hex}"
    try:
        yield {"PROXBOARD_PVE_CACHE_SECONDS": str(cache_seconds), "PROXBOARD_PVE_CACHE_PREFIX": prefix,
               **({"PROXBOARD_REDIS_URL": redis_url} if redis_url else {})}
    finally:
        if redis_url:
            import redis

            server = redis.Redis.from_url(redis_url)
            for key in server.scan_iter(f"*{prefix}*"):
                server.delete(key)


def redis_available(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def shared_cache_table(workers: int, clients: int, intervals: int, cache_seconds: float, containers: int) -> None:
    seconds = intervals * cache_seconds
    print(f"\n{workers} gunicorn worker processes, {clients} clients refreshing the dashboard for {intervals} cache "
          f"intervals of {cache_seconds:g} s ({containers} containers)")
    print(f"{'read cache':<22} | {'requests':>8} | {'errors':>6} | {'/cluster/resources calls':>24} | "
          f"{'calls per interval':>18}")
    print("-" * 90)
    with simulator(containers) as (env, sim_base), tempfile.TemporaryDirectory() as folder:
        build_app(env, folder, cache_seconds)
        for label, redis_url in (("in each process", None), ("shared through Redis", REDIS_URL)):
            if redis_url and not redis_available(redis_url):
                print(f"{label:<22} | no Redis at {redis_url}")
                continue
            with read_cache_env(cache_seconds, redis_url) as extra, \
                    gunicorn(env, folder, workers=workers, threads=8, extra=extra) as base:
                answers, errors, upstream = drive(base, sim_base, clients, seconds)
            print(f"{label:<22} | {answers:>8} | {errors:>6} | {upstream:>24} | {upstream / intervals:>18.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--intervals", type=int, default=6)
    parser.add_argument("--cache-seconds", type=float, default=5)
    parser.add_argument("--containers", type=int, default=100)
    args = parser.parse_args()
    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
    shared_cache_table(args.workers, args.clients, args.intervals, args.cache_seconds, args.containers)


if __name__ == "__main__":
    main()
