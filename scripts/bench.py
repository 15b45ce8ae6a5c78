"""Proxboard benchmarks: prints tables, asserts nothing (see README "Benchmarks").

1. Dashboard server time at 10, 100, 1,000 and 10,000 containers on 3 nodes, cache off, next to the
   floor: fetching /cluster/resources through proxmoxer and decoding it (unfiltered, the dashboard's
   call, and type=vm beside it), interleaved. Fragment size gzipped. Then a render's own cost: the
   page with Proxmox's answer cached (the body drawn), then with the body shared too (the default
   with a cache), and the upstream calls they made (none).
2. 50 concurrent clients refreshing a 1,000-container dashboard against one gunicorn process for
   --duration seconds, with If-None-Match as app.js sends it and always in full: answers per second,
   200s and 304s, errors, p50/p95/p99, upstream /cluster/resources calls per cache interval.
3. Backup ages on the cards at 1,000 containers with backups on three storages (a directory per node,
   an NFS share, a Backup Server): the dashboard with the backup index not loaded yet (cold) and
   loaded (warm), its /cluster/resources calls per render, one sweep of the index, a ``backup:>7d``
   search and the Backups page.

The simulator runs in its own process so it does not share the app's interpreter.
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import urllib3  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def simulator(containers: int, nodes: int = 3, extra: tuple[str, ...] = ()):
    """``python -m tests.pvesim`` in a subprocess (``extra``: more of its options); yields (env for the app, admin
    base URL)."""
    port, token = free_port(), secrets.token_hex(8)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.pvesim", "--port", str(port), "--nodes", str(nodes),
         "--containers", str(containers), "--token", f"root@pam!proxboard={token}", "--task-delay", "0.2", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    ca = None
    for line in proc.stdout:
        if line.startswith("CA certificate:"):
            ca = line.split(":", 1)[1].strip()
            break
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    env = {"PVE_HOST": "127.0.0.1", "PVE_PORT": port, "PVE_USER": "root@pam", "PVE_TOKEN_NAME": "proxboard",
           "PVE_TOKEN_VALUE": token, "PVE_VERIFY_SSL": ca}
    try:
        yield env, f"https://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def interleaved_medians_ms(functions, runs: int) -> list[float]:
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(runs):
        for index, fn in enumerate(functions):
            started = time.perf_counter()
            fn()
            times[index].append((time.perf_counter() - started) * 1000)
    return [statistics.median(series) for series in times]


def build_app(pve_env: dict, folder: str, cache_seconds: float):
    from flask_migrate import upgrade

    from app import create_app
    from app.auth.services import create_user

    config = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/bench.db", "SECRET_KEY": "bench",
              "PVE_CACHE_SECONDS": cache_seconds, "SNAPSHOT_SECONDS": 3600, **pve_env}
    app = create_app(config)
    with app.app_context():
        upgrade()
        create_user("bench", "bench-password")
    return app


def login(client) -> None:
    page = client.get("/login").text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    client.post("/login", data={"username": "bench", "password": "bench-password", "csrf_token": token})


def upstream_calls(sim_base: str, path: str | None = None) -> int:
    """Requests the simulator received under /api2 since its log was last cleared (only GETs of ``path``
    when given, e.g. ``/cluster/resources``)."""
    log = requests.get(sim_base + "/_sim/requests", verify=False, timeout=30).json()
    entries = log if isinstance(log, list) else log.get("requests", [])
    if path is not None:
        entries = [entry for entry in entries if entry["method"] == "GET" and path in entry["path"]]
    return len(entries)


def dashboard_table(sizes: list[int], runs: int, large_runs: int) -> None:
    """Table 1: the dashboard next to its floor, cache off, then a render's own cost with the cache warm.

    The floor is what the page cannot do without: a bare proxmoxer fetch and decode of the call the
    dashboard makes (``cluster_snapshot``: ``/cluster/resources`` unfiltered). The ``type=vm`` call is
    timed beside it to show the simulator answers both at about the same cost (pmxcfs serves both
    from one in-memory state). All four are interleaved, so drift in the machine's load affects them
    alike. Sizes of 10,000 and more take ``large_runs`` runs.
    """
    from proxmoxer import ProxmoxAPI

    from tests.fixtures.app import join_app_threads as join_background  # the backup index sweep

    print(f"\nDashboard server time against the floor, 3 nodes (median of {runs}, {large_runs} from 10,000; "
          "Proxmox cache off: every render calls Proxmox; floor: proxmoxer fetch + decode of /cluster/resources)")
    print(f"{'containers':>10} | {'floor ms':>8} | {'type=vm ms':>10} | {'page ms':>8} | {'page/floor':>10} | "
          f"{'fragment ms':>11} | {'fragment/floor':>14} | {'fragment KB':>11} | {'gzipped KB':>10} | "
          f"{'render ms, cache warm':>21} | {'page ms, shared':>16} | {'upstream calls, warm':>20}")
    print("-" * 183)
    for size in sizes:
        size_runs = large_runs if size >= 10_000 else runs
        with simulator(size) as (env, sim_base), tempfile.TemporaryDirectory() as folder:
            api = ProxmoxAPI(env["PVE_HOST"], port=env["PVE_PORT"], user=env["PVE_USER"], token_name="proxboard",
                             token_value=env["PVE_TOKEN_VALUE"], verify_ssl=env["PVE_VERIFY_SSL"], timeout=60)
            app = build_app(env, folder, cache_seconds=0)
            client = app.test_client()
            login(client)
            first = client.get("/")  # records the containers and starts the backup index sweep
            if first.status_code != 200:
                raise SystemExit(f"the dashboard answered {first.status_code}, not 200: nothing to time")
            join_background()
            floor, vm_floor, page, fragment_ms = interleaved_medians_ms([
                lambda: api.cluster.resources.get(),
                lambda: api.cluster.resources.get(type="vm"),
                lambda: client.get("/"),
                lambda: client.get("/", headers={"HX-Request": "true"}),
            ], size_runs)
            body = client.get("/", headers={"HX-Request": "true"}).data
            # Cache on and warm for the whole run (an hour, not the default 5 s, so that no timed render
            # is the one that reloads): the time left is the render's own; the simulator log proves it.
            app.extensions["proxmox"]._cache.ttl = 3600
            client.get("/")
            requests.delete(sim_base + "/_sim/requests", verify=False, timeout=30)
            cached = median_ms(lambda: client.get("/"), size_runs)
            # And the body shared as well (the default with a cache): what each further viewer costs.
            app.extensions["render_cache"].ttl = 3600
            client.get("/")
            shared = median_ms(lambda: client.get("/"), size_runs)
            calls = upstream_calls(sim_base)
            print(f"{size:>10} | {floor:>8.1f} | {vm_floor:>10.1f} | {page:>8.1f} | {page / floor:>10.2f} | "
                  f"{fragment_ms:>11.1f} | {fragment_ms / floor:>14.2f} | {len(body) / 1024:>11.1f} | "
                  f"{len(gzip.compress(body)) / 1024:>10.1f} | {cached:>21.1f} | {shared:>16.1f} | {calls:>20}",
                  flush=True)
            join_background()
            with app.app_context():
                from app.extensions import db

                db.engine.dispose()


MASTERS: dict[str, int] = {}  # base URL -> gunicorn master pid


def worker_pids(base: str) -> list[int]:
    """The worker processes of the gunicorn serving ``base``."""
    master = MASTERS[base]
    text = Path(f"/proc/{master}/task/{master}/children").read_text()
    return [int(pid) for pid in text.split()]


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for {pid}")


@contextlib.contextmanager
def gunicorn(env: dict, folder: str, workers: int, threads: int, extra: dict | None = None):
    """gunicorn (gthread) serving Proxboard on the bench database; yields its base URL once it answers."""
    port = free_port()
    process_env = dict(os.environ)
    process_env.pop("PROXBOARD_REDIS_URL", None)
    process_env.update({f"PROXBOARD_{key}": str(value) for key, value in env.items()})
    process_env.update({"DATABASE_URL": f"sqlite:///{folder}/bench.db", "PROXBOARD_SECRET_KEY": "bench",
                        "PROXBOARD_SNAPSHOT_SECONDS": "3600", **(extra or {})})
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread",
         "--workers", str(workers), "--threads", str(threads), "--log-level", "warning", "app:create_app()"],
        cwd=ROOT, env=process_env,
    )
    base = f"http://127.0.0.1:{port}"
    MASTERS[base] = server.pid
    try:
        for _ in range(200):
            with contextlib.suppress(requests.RequestException):
                if requests.get(base + "/login", timeout=10).status_code == 200:
                    break
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def signed_in(base: str, attempts: int = 3) -> requests.Session:
    """A requests session signed in as the bench user (a worker still starting may drop the first connection)."""
    for attempt in range(attempts):
        session = requests.Session()
        try:
            page = session.get(base + "/login", timeout=10).text
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
            session.post(base + "/login", timeout=10,
                         data={"username": "bench", "password": "bench-password", "csrf_token": token})
            return session
        except requests.RequestException:
            session.close()
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def refresh_for(base: str, sessions: list[requests.Session], seconds: float, conditional: bool = True,
                headers: dict | None = None) -> tuple[list[float], list, dict[int, int]]:
    """Each session refreshes the dashboard fragment in its own thread for ``seconds``, as app.js does: with
    ``conditional`` it sends the ETag of what it shows as If-None-Match. (latencies in ms, errors, answers
    by status code)."""
    latencies: list[float] = []
    errors: list = []
    statuses: dict[int, int] = {}
    stop_at = time.monotonic() + seconds

    def worker(session):
        etag = None
        while time.monotonic() < stop_at:
            sent = {"HX-Request": "true", **(headers or {})}
            if conditional and etag:
                sent["If-None-Match"] = etag
            started = time.perf_counter()
            try:
                response = session.get(base + "/", headers=sent, timeout=30)
            except requests.RequestException as exc:
                errors.append(type(exc).__name__)
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 200:
                etag = response.headers.get("ETag")
            elif response.status_code != 304:
                errors.append(response.status_code)

    threads = [threading.Thread(target=worker, args=(session,)) for session in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors, statuses


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def concurrency_table(clients: int, duration: float, cache_seconds: float, size: int, threads: int) -> None:
    """Table 2: ``clients`` people refreshing a ``size``-container dashboard on one gunicorn process."""
    print(f"\n{clients} concurrent clients refreshing a {size:,}-container dashboard for {duration:.0f} s each way "
          f"against gunicorn (1 process, gthread, {threads} threads; PVE cache {cache_seconds:g} s: the Dockerfile's defaults)")
    print(f"{'refresh':>13} | {'answers':>7} | {'req/s':>6} | {'200':>6} | {'304':>6} | {'errors':>6} | {'p50 ms':>6} | "
          f"{'p95 ms':>6} | {'p99 ms':>6} | {'upstream calls':>14} | {'intervals':>9} | {'calls/interval':>14}")
    print("-" * 128)
    with simulator(size) as (env, sim_base), tempfile.TemporaryDirectory() as folder:
        build_app(env, folder, cache_seconds)
        with gunicorn(env, folder, workers=1, threads=threads,
                      extra={"PROXBOARD_PVE_CACHE_SECONDS": str(cache_seconds)}) as base:
            sessions = [signed_in(base) for _ in range(clients)]
            refresh_for(base, sessions[:2], 2)  # the first render records the containers: not timed
            for conditional in (True, False):
                requests.delete(sim_base + "/_sim/requests", verify=False, timeout=5)
                latencies, errors, statuses = refresh_for(base, sessions, duration, conditional)
                log = requests.get(sim_base + "/_sim/requests", verify=False, timeout=5).json()
                entries = log if isinstance(log, list) else log.get("requests", [])
                upstream = sum(1 for r in entries if r["method"] == "GET" and "/cluster/resources" in r["path"])
                intervals = duration / cache_seconds if cache_seconds else float("nan")
                print(f"{'If-None-Match' if conditional else 'always full':>13} | {len(latencies):>7} | "
                      f"{len(latencies) / duration:>6.0f} | {statuses.get(200, 0):>6} | {statuses.get(304, 0):>6} | "
                      f"{len(errors):>6} | {percentile(latencies, 0.5):>6.0f} | {percentile(latencies, 0.95):>6.0f} | "
                      f"{percentile(latencies, 0.99):>6.0f} | {upstream:>14} | {intervals:>9.0f} | "
                      f"{upstream / intervals:>14.2f}", flush=True)
            for session in sessions:
                session.close()


def backup_table(size: int, runs: int) -> None:
    from app.proxmox import ProxmoxClient, ProxmoxSettings
    from app.proxmox.cache import ReadCache
    from tests.fixtures.app import join_app_threads as join_background  # the backup index sweep

    print(f"\nBackup ages at {size} containers, backups on 3 storages (median of {runs}, Proxmox cache off)")
    with simulator(size) as (env, sim_base), tempfile.TemporaryDirectory() as folder:
        app = build_app(env, folder, cache_seconds=0)
        client = app.test_client()
        login(client)
        pve = app.extensions["proxmox"]
        client.get("/")  # first render records the containers
        join_background()

        cold_times = []
        for _ in range(runs):
            pve._backup_cache = ReadCache(300)  # as after a restart: no index yet, the render starts a sweep
            cold_times.append(median_ms(lambda: client.get("/"), 1))
            join_background()  # not timed: the sweep runs beside the page, not in it
        cold_ms = statistics.median(cold_times)
        settings = ProxmoxSettings.from_config(app.config)

        def sweep():
            with ProxmoxClient(settings, backup_cache=ReadCache(300)) as fresh:
                fresh.backup_index(wait=True)

        sweep_ms = median_ms(sweep, max(3, runs // 3))
        pve.backup_index(wait=True)
        warm_ms = median_ms(lambda: client.get("/"), runs)
        body = client.get("/").text
        badges = body.count('data-testid="backup-age"')
        requests.delete(sim_base + "/_sim/requests", verify=False, timeout=5)
        renders = 10
        for _ in range(renders):
            client.get("/")
            client.get("/", headers={"HX-Request": "true"})
        log = requests.get(sim_base + "/_sim/requests", verify=False, timeout=5).json()
        entries = log if isinstance(log, list) else log.get("requests", [])
        calls = sum(1 for r in entries if r["method"] == "GET" and "/cluster/resources" in r["path"])
        search_ms = median_ms(lambda: client.get("/?q=backup:%3E7d"), runs)
        page_ms = median_ms(lambda: client.get("/backups"), runs)
        index = pve.backup_index()
        print(f"{'backups':>8} | {'storages':>8} | {'sweep ms':>8} | {'cold page ms':>12} | {'warm page ms':>12} | "
              f"{'badges':>6} | {'resources calls/render':>22} | {'backup:>7d ms':>13} | {'/backups ms':>11}")
        print("-" * 126)
        print(f"{sum(index.count.values()):>8} | {len(index.entries):>8} | {sweep_ms:>8.1f} | "
              f"{cold_ms:>12.1f} | {warm_ms:>12.1f} | {badges:>6} | {calls / (2 * renders):>22.2f} | "
              f"{search_ms:>13.1f} | {page_ms:>11.1f}")
        join_background()
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--large-runs", type=int, default=7, help="runs of table 1 at 10,000 containers and more")
    parser.add_argument("--only-dashboard", action="store_true", help="only table 1")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--cache-seconds", type=float, default=5)
    parser.add_argument("--concurrency-size", type=int, default=1000, help="containers in table 2")
    parser.add_argument("--threads", type=int, default=16, help="gunicorn threads in table 2 (the Dockerfile's default)")
    parser.add_argument("--only-concurrency", action="store_true", help="only table 2")
    parser.add_argument("--skip-concurrency", action="store_true")
    parser.add_argument("--backups-size", type=int, default=1000)
    parser.add_argument("--only-backups", action="store_true", help="only table 3")
    args = parser.parse_args()
    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
    if args.only_concurrency:
        concurrency_table(args.clients, args.duration, args.cache_seconds, args.concurrency_size, args.threads)
        return
    if args.only_backups:
        backup_table(args.backups_size, args.runs)
        return
    dashboard_table([int(s) for s in args.sizes.split(",")], args.runs, args.large_runs)
    if args.only_dashboard:
        return
    backup_table(args.backups_size, args.runs)
    if not args.skip_concurrency:
        concurrency_table(args.clients, args.duration, args.cache_seconds, args.concurrency_size, args.threads)


if __name__ == "__main__":
    main()
