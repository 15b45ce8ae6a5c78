"""Time the container page's Metrics tab (day frame) next to one bare ``rrddata`` fetch through proxmoxer.

    .venv/bin/python scripts/bench_metrics.py [--runs 15] [--timeframe day]

Against the simulator as PVE 9.1 (a day is 1,440 one-minute points, so AVERAGE alone is read). Rows: the bare
GET nodes/{node}/lxc/{vmid}/rrddata with proxmoxer's JSON decode (the floor); the tab as htmx asks for it
(``HX-Target: ct-tab``) with every Proxmox cache off (the tab's status call and rrddata each time) and with
the caches on and warm (no rrddata call: the statistics are served for the frame's resolution); the bytes it
sends, and the rrddata calls per render.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench import build_app, interleaved_medians_ms, login, simulator  # noqa: E402


def rrd_calls(sim_base: str) -> int:
    """rrddata requests the simulator received since its log was last emptied (and empty it)."""
    log = requests.get(sim_base + "/_sim/requests", verify=False, timeout=5).json()
    entries = log if isinstance(log, list) else log.get("requests", [])
    requests.delete(sim_base + "/_sim/requests", verify=False, timeout=5)
    return sum(1 for r in entries if r["path"].endswith("/rrddata"))


def bench_metrics(runs: int = 15, timeframe: str = "day") -> None:
    """Print the table (see the module docstring)."""
    from proxmoxer import ProxmoxAPI

    print(f"\nMetrics tab, {timeframe} frame, PVE 9.1 simulator (median of {runs})")
    with simulator(10) as (env, sim_base), tempfile.TemporaryDirectory() as folder:
        apps = {}
        for label, cached in (("off", False), ("on", True)):
            Path(folder, label).mkdir()
            app = build_app({**env, "PVE_RRD_CACHE": cached}, str(Path(folder, label)),
                            cache_seconds=5 if cached else 0)
            client = app.test_client()
            login(client)
            apps[label] = (app, client)
        pve = apps["on"][0].extensions["proxmox"]
        ct = next(c for c in pve.list_containers() if c.status == "running")
        bare = ProxmoxAPI(env["PVE_HOST"], port=env["PVE_PORT"], user=env["PVE_USER"], token_name=env["PVE_TOKEN_NAME"],
                          token_value=env["PVE_TOKEN_VALUE"], verify_ssl=env["PVE_VERIFY_SSL"], timeout=10)
        url = f"/containers/{ct.vmid}/metrics?timeframe={timeframe}"
        headers = {"HX-Request": "true", "HX-Target": "ct-tab"}
        for _app, client in apps.values():
            assert client.get(url, headers=headers).status_code == 200  # warm the caches and the templates

        def fetch():
            return bare.nodes(ct.node).lxc(ct.vmid).rrddata.get(timeframe=timeframe, cf="AVERAGE")

        def tab(label):
            def render():
                response = apps[label][1].get(url, headers=headers)
                assert response.status_code == 200, response.status_code
            return render

        points = len(fetch())
        bare_ms, off_ms, on_ms = interleaved_medians_ms([fetch, tab("off"), tab("on")], runs)
        size = len(apps["on"][1].get(url, headers=headers).data)
        per_render = {}
        for label in ("off", "on"):
            rrd_calls(sim_base)
            for _ in range(3):
                tab(label)()
            per_render[label] = rrd_calls(sim_base) / 3
        print(f"{'what':<38} | {'ms':>7} | {'rrddata calls/render':>20}")
        print("-" * 72)
        print(f"{'bare rrddata fetch + decode':<38} | {bare_ms:>7.1f} | {1:>20}")
        print(f"{'Metrics tab, caches off':<38} | {off_ms:>7.1f} | {per_render['off']:>20.2f}")
        print(f"{'Metrics tab, caches on (warm)':<38} | {on_ms:>7.1f} | {per_render['on']:>20.2f}")
        print(f"({points} points a series; the tab sends {size / 1024:.0f} KiB before compression)")
        for app, _client in apps.values():
            with app.app_context():
                from app.extensions import db

                db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--timeframe", default="day", choices=("hour", "day", "week", "month", "year"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the simulator's self-signed CA: urllib3 warns about the bare calls
    bench_metrics(args.runs, args.timeframe)


if __name__ == "__main__":
    main()
