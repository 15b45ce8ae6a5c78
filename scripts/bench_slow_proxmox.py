"""Every page that reads Proxmox, timed against a slow simulator (its latency fault: seconds per answer).

For each page: the Proxmox calls it makes, its time with Proxmox answering at once, with every
answer taking ``--slow`` seconds (below the request deadline when the calls run in parallel), and
with every answer taking ``--very-slow`` seconds (beyond it): then the page must come back after
about the deadline, with the "Proxmox is slow" banner. Prints a table, asserts nothing (see README
"Benchmarks").
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

import requests
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import build_app, login, simulator  # noqa: E402


def set_delay(sim_base: str, seconds: float) -> None:
    requests.post(sim_base + "/_sim/faults", json={"delay": seconds}, verify=False, timeout=5).raise_for_status()


def proxmox_calls(sim_base: str) -> int:
    log = requests.get(sim_base + "/_sim/requests", verify=False, timeout=5).json()
    return len(log if isinstance(log, list) else log.get("requests", []))


def slow_pages_table(deadline: float, slow: float, very_slow: float, containers: int) -> None:
    print(f"\nPages against a slow Proxmox (request deadline {deadline:g} s; 'calls': Proxmox requests per render)")
    print(f"{'page':<34} | {'calls':>5} | {'fast s':>6} | {f'{slow:g} s/answer':>13} | "
          f"{f'{very_slow:g} s/answer':>14} | {'banner':>6} | {'status':>6}")
    print("-" * 101)
    with simulator(containers) as (env, sim_base), tempfile.TemporaryDirectory() as folder:
        app = build_app(env, folder, cache_seconds=0)
        app.config["PVE_REQUEST_DEADLINE"] = deadline
        with app.app_context():
            from app.container_templates.services import create_template

            template_id = create_template({"name": "bench"}).id
        client = app.test_client()
        login(client)
        client.get("/")  # records every container, as a running Proxboard has
        listed = requests.get(sim_base + "/_sim/containers", verify=False, timeout=5).json()
        items = listed if isinstance(listed, list) else listed.get("containers", list(listed.values()))
        running = next(ct["vmid"] for ct in items if ct.get("status") == "running" and not ct.get("template"))
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get("/").text).group(1)
        client.post("/containers/create/template", data={"template": "scratch", "next": "1", "csrf_token": token})
        pages = {
            "/ (dashboard)": "/",
            f"/containers/{running} (overview)": f"/containers/{running}",
            f"/containers/{running}/services": f"/containers/{running}/services",
            f"/containers/{running}/events": f"/containers/{running}/events",
            "/containers/create/configure": "/containers/create/configure",
            "/templates/new": "/templates/new",
            f"/templates/{template_id}/edit": f"/templates/{template_id}/edit",
            "/about": "/about",
        }
        for label, url in pages.items():
            row = []
            for delay in (0.0, slow, very_slow):
                set_delay(sim_base, delay)
                requests.delete(sim_base + "/_sim/requests", verify=False, timeout=5)
                started = time.perf_counter()
                response = client.get(url)
                row.append((time.perf_counter() - started, response, proxmox_calls(sim_base)))
                time.sleep(very_slow if delay == very_slow else 0)  # let abandoned answers drain
            (fast, _, calls), (slow_s, _, _), (very_s, last, _) = row
            banner = "yes" if 'data-testid="slow-banner"' in last.text else "no"
            print(f"{label:<34} | {calls:>5} | {fast:>6.2f} | {slow_s:>13.2f} | {very_s:>14.2f} | {banner:>6} | "
                  f"{last.status_code:>6}")
        set_delay(sim_base, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deadline", type=float, default=6.0, help="PVE_REQUEST_DEADLINE (the default setting)")
    parser.add_argument("--slow", type=float, default=1.5)
    parser.add_argument("--very-slow", type=float, default=10.0)
    parser.add_argument("--containers", type=int, default=20)
    args = parser.parse_args()
    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
    slow_pages_table(args.deadline, args.slow, args.very_slow, args.containers)


if __name__ == "__main__":
    main()
