"""Memory of one web process at 10,000 containers while people refresh it (README "Benchmarks", item 6).

gunicorn as the Dockerfile runs it (1 process, gthread, 16 threads, the default 5 s cache) serves a
10,000-container simulator; ``--clients`` people refresh for ``--seconds`` (5 minutes by default): the
dashboard fragment with If-None-Match as app.js sends it, the full page, the second page, a status
filter and searches that change every time (each a new key for the shared render). The worker's
resident memory (VmRSS) is sampled every ``--every`` seconds. It must level off: the second half of
the run should add next to nothing.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import requests
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import build_app, gunicorn, rss_mib, signed_in, simulator, worker_pids  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--containers", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--every", type=float, default=30)
    args = parser.parse_args()
    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
    print(f"\nMemory of one gunicorn process (16 threads, 5 s cache) at {args.containers:,} containers, "
          f"{args.clients} clients refreshing for {args.seconds:.0f} s")
    with simulator(args.containers) as (env, _sim), tempfile.TemporaryDirectory() as folder:
        build_app(env, folder, 5)
        with gunicorn(env, folder, workers=1, threads=16, extra={"PROXBOARD_PVE_CACHE_SECONDS": "5"}) as base:
            sessions = [signed_in(base) for _ in range(args.clients)]
            sessions[0].get(base + "/", timeout=120)  # records the 10,000 containers: not part of the run
            (pid,) = worker_pids(base)
            counter = itertools.count()
            answers, errors = [], []
            stop_at = time.monotonic() + args.seconds

            def visit(session, number):
                etag = None
                for turn in itertools.count():
                    if time.monotonic() >= stop_at:
                        return
                    kind = (number + turn) % 5
                    headers = {"HX-Request": "true"} if kind in (0, 3, 4) else {}
                    if kind == 0 and etag:
                        headers["If-None-Match"] = etag
                    path = ["/", "/", "/?page=2", "/?status=running", f"/?q=ct{next(counter) % 9000}"][kind]
                    try:
                        response = session.get(base + path, headers=headers, timeout=60)
                    except requests.RequestException as exc:
                        errors.append(type(exc).__name__)
                        continue
                    answers.append(response.status_code)
                    if response.status_code not in (200, 304):
                        errors.append(response.status_code)
                    if kind == 0 and response.status_code == 200:
                        etag = response.headers.get("ETag")

            threads = [threading.Thread(target=visit, args=(session, n)) for n, session in enumerate(sessions)]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            samples = [(0.0, rss_mib(pid), 0)]
            print(f"{'seconds':>7} | {'RSS MiB':>8} | {'answers':>7}")
            print("-" * 30)
            print(f"{0:>7.0f} | {samples[0][1]:>8.1f} | {0:>7}", flush=True)
            while time.monotonic() < stop_at:
                time.sleep(min(args.every, max(stop_at - time.monotonic(), 0)))
                elapsed = time.monotonic() - started
                samples.append((elapsed, rss_mib(pid), len(answers)))
                print(f"{elapsed:>7.0f} | {samples[-1][1]:>8.1f} | {len(answers):>7}", flush=True)
            for thread in threads:
                thread.join()
            half = samples[-1][0] / 2
            middle = min(samples, key=lambda sample: abs(sample[0] - half))
            last = samples[-1][1]
            print(f"answers {len(answers)}, errors {len(errors)}; RSS {samples[0][1]:.1f} MiB at the start, "
                  f"{middle[1]:.1f} MiB after {middle[0]:.0f} s, {last:.1f} MiB at the end: "
                  f"{last - middle[1]:+.1f} MiB over the second half")


if __name__ == "__main__":
    main()
