"""The Metrics tab as an operator meets it: graphs of a container's RRD statistics over each time frame, read
from Proxmox only when the tab is open and then from the cache for the frame's resolution; without
JavaScript a table of the same figures; PVE 9's pressure figures; a failing Proxmox said in words."""
from __future__ import annotations

import json
import re
import time
import types

import dogpile.cache.region
import dogpile.lock
import pytest

from tests.htmx import HX

VMID = 960
TAB = {**HX, "HX-Target": "ct-tab"}


@pytest.fixture
def ct(pve):
    """A running container with a history: it started 40 days ago."""
    container = pve.add_container(vmid=VMID, status="running", hostname="graphs")
    container.started_at = time.time() - 40 * 86400
    return container


def rrd_calls(pve) -> list[dict]:
    """The rrddata requests Proxmox received, each with its parameters."""
    return [r for r in pve.requests if r["path"].endswith("/rrddata")]


def charts(html: str) -> dict[str, dict]:
    """The chart data the page embeds for metrics.js, by chart key, each with the panel's times."""
    blocks = re.findall(r'<script type="application/json" data-metrics-data>(.*?)</script>', html, re.S)
    times = re.search(r'<script type="application/json" data-metrics-times>(.*?)</script>', html, re.S)
    return {data["key"]: {**data, "times": json.loads(times.group(1))} for data in map(json.loads, blocks)}


def table(html: str, key: str) -> list[list[str]]:
    """The no-JavaScript table of chart ``key``: its header, then its rows, as cell texts."""
    found = re.search(rf'<table [^>]*data-testid="metrics-table-{key}">(.*?)</table>', html, re.S)
    assert found, f"no table for {key}"
    rows = re.findall(r"<tr>(.*?)</tr>", found.group(1), re.S)
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in rows]


@pytest.fixture
def later(monkeypatch):
    """Move the cache's clock forward by ``seconds`` (the cache expires entries by ``time.time()``)."""
    offset = [0.0]
    clock = types.SimpleNamespace(time=lambda: time.time() + offset[0])
    monkeypatch.setattr(dogpile.cache.region, "time", clock)
    monkeypatch.setattr(dogpile.lock, "time", clock)

    def advance(seconds: float) -> None:
        offset[0] += seconds

    return advance


def test_the_tab_draws_every_figure_and_the_dashboard_never_asks(logged_in, client, pve, ct, pve_version):
    pve.clear_requests()
    assert client.get("/").status_code == 200
    assert rrd_calls(pve) == [], "the dashboard must not read statistics"

    response = client.get(f"/containers/{VMID}/metrics")
    assert response.status_code == 200, response.text
    calls = rrd_calls(pve)
    # hour: one point a minute on both releases, so the maximum is the average: one call, AVERAGE
    assert [(c["path"], c["params"]) for c in calls] == [
        (f"/nodes/{ct.node}/lxc/{VMID}/rrddata", {"timeframe": "hour", "cf": "AVERAGE"})]
    drawn = charts(response.text)
    expected = {"cpu", "memory", "network", "disk"}
    if pve_version.startswith("9"):
        expected |= {"pressure-cpu", "pressure-io", "pressure-memory"}
    assert set(drawn) == expected
    assert drawn["cpu"]["unit"] == "percent" and drawn["memory"]["unit"] == "bytes"
    assert drawn["network"]["unit"] == drawn["disk"]["unit"] == "bytes/s"
    assert [s["label"] for s in drawn["network"]["series"]] == ["In", "Out"]
    assert len(drawn["cpu"]["times"]) == (60 if pve_version.startswith("9") else 70)
    cpu = [v for v in drawn["cpu"]["series"][0]["values"] if v is not None]
    assert cpu and all(0 <= v <= 100 for v in cpu), "CPU is drawn in percent"
    assert "One point per 1 min" in response.text
    assert 'data-testid="metrics-cfs"' not in response.text, "a one-minute point's maximum is its average"

    # without JavaScript: the same figures as a table, with units, newest first
    rows = table(response.text, "memory")
    assert rows[0] == ["Until (UTC)", "Used", "Limit"]
    assert 1 < len(rows) - 1 <= 24
    assert rows[1][2] == "512 MiB" and re.fullmatch(r"[\d.]+ (KiB|MiB)", rows[1][1])
    assert re.fullmatch(r"[\d.]+ %", table(response.text, "cpu")[1][1])
    assert re.fullmatch(r"[\d.]+ (B|KiB|MiB)/s", table(response.text, "network")[1][1])
    assert ("Memory pressure" in response.text) == pve_version.startswith("9")


def test_day_reads_average_and_maximum_where_they_differ(logged_in, client, pve, ct, pve_version):
    pve.clear_requests()
    html = client.get(f"/containers/{VMID}/metrics?timeframe=day", headers=TAB).text
    cfs = sorted(c["params"]["cf"] for c in rrd_calls(pve))
    drawn = charts(html)
    if pve_version.startswith("9"):  # 9.x keeps a day in one-minute points: MAX is AVERAGE
        assert cfs == ["AVERAGE"] and len(drawn["cpu"]["times"]) == 1440
        assert [s["label"] for s in drawn["cpu"]["series"]] == ["CPU"]
    else:  # 8.4: 30-minute points
        assert cfs == ["AVERAGE", "MAX"] and len(drawn["cpu"]["times"]) == 70
        assert [s["label"] for s in drawn["memory"]["series"]] == ["Used", "Used (max)", "Limit"]
        assert table(html, "cpu")[0] == ["Until (UTC)", "CPU", "CPU (max)"]
        assert "dashed: maximum" in html
    # only the maximum, when asked for
    pve.clear_requests()
    html = client.get(f"/containers/{VMID}/metrics?timeframe=week&cf=max", headers=TAB).text
    assert [c["params"]["cf"] for c in rrd_calls(pve)] == ["MAX"]
    assert [s["label"] for s in charts(html)["cpu"]["series"]] == ["CPU (max)"]
    assert 'aria-current="page" data-cf="MAX"' in html and "maxima only" in html
    both = re.search(r'href="([^"]+)"[^>]*data-cf="both"', html).group(1).replace("&amp;", "&")
    assert both == f"/containers/{VMID}/metrics?timeframe=week"


def test_statistics_are_cached_for_the_frames_resolution(logged_in, client, pve, ct, later, pve_version):
    url = f"/containers/{VMID}/metrics?timeframe=week"
    step = 1800 if pve_version.startswith("9") else 10800
    pve.clear_requests()
    assert client.get(url, headers=TAB).status_code == 200
    assert len(rrd_calls(pve)) == 2  # AVERAGE and MAX
    pve.clear_requests()
    for _ in range(2):
        assert client.get(url, headers=TAB).status_code == 200  # the tab's refresh
    later(step - 60)
    assert client.get(url, headers=TAB).status_code == 200
    assert rrd_calls(pve) == [], "within the frame's resolution the cache answers"
    assert client.get(f"/containers/{VMID}/metrics?timeframe=hour", headers=TAB).status_code == 200
    assert len(rrd_calls(pve)) == 1, "another frame is another entry"
    pve.clear_requests()
    later(120)
    assert client.get(url, headers=TAB).status_code == 200
    assert sorted(c["params"]["cf"] for c in rrd_calls(pve)) == ["AVERAGE", "MAX"]


def test_bad_query_values_fall_back_to_the_defaults(logged_in, client, pve, ct):
    pve.clear_requests()
    response = client.get(f"/containers/{VMID}/metrics?timeframe=decade&cf=median&timeframe=x", headers=TAB)
    assert response.status_code == 200
    assert [c["params"] for c in rrd_calls(pve)] == [{"timeframe": "hour", "cf": "AVERAGE"}]
    assert re.search(r'class="nav-link[^"]*active"[^>]*aria-current="page" data-timeframe="hour"', response.text)


def test_a_failing_proxmox_is_said_in_the_tab(logged_in, client, pve, ct):
    assert client.get("/").status_code == 200  # Proxboard records the container
    pve.faults.fail_path("GET", r"/rrddata$", status=500, message="RRD error: rrdcached: rrd_fetch_r failed")
    response = client.get(f"/containers/{VMID}/metrics?timeframe=month")
    assert response.status_code == 200
    assert 'data-testid="metrics-error"' in response.text and "rrd_fetch_r failed" in response.text
    assert "data-metrics-data" not in response.text

    pve.faults.unreachable = True  # the page shows the last-known state; the tab says why there are no graphs
    response = client.get(f"/containers/{VMID}/metrics")
    assert response.status_code == 200 and 'data-testid="metrics-error"' in response.text


def test_a_container_on_an_offline_node_keeps_its_history_up_to_the_outage(logged_in, client, pve, ct):
    """rrddata has no proxyto: the node asked answers from the cluster-wide RRD files, whose updates stopped
    with the node; the tab shows that history and says where it ends."""
    assert client.get("/").status_code == 200
    pve.faults.set_node_offline(ct.node)
    pve.faults.offline_since[ct.node] = time.time() - 900  # down for a quarter of an hour
    assert client.get("/").status_code == 200  # the dashboard sees the node offline
    response = client.get(f"/containers/{VMID}/metrics")
    assert response.status_code == 200
    assert f"Node {ct.node} is offline: the graphs stop when it went down." in response.text
    cpu = charts(response.text)["cpu"]
    values = cpu["series"][0]["values"]
    newest = [v for t, v in zip(cpu["times"], values) if t > time.time() - 600]
    older = [v for t, v in zip(cpu["times"], values) if t < time.time() - 1200]
    assert newest and all(v is None for v in newest) and older and all(v is not None for v in older)


def test_a_viewer_sees_the_graphs_and_time_not_running_is_a_gap(auth, client, pve):
    recent = pve.add_container(vmid=VMID, status="running", hostname="just-started")
    recent.started_at = time.time() - 1800
    pve.add_container(vmid=VMID + 1, status="stopped", hostname="never-ran")
    auth.login_as("viewer")
    html = client.get(f"/containers/{VMID}/metrics", headers=TAB).text
    cpu = charts(html)["cpu"]["series"][0]["values"]
    assert cpu[0] is None and cpu[-1] is not None, "before it started the hour has a hole, not zeros"
    assert table(html, "cpu")[-1][1] == "–" and table(html, "cpu")[1][1] != "–"
    html = client.get(f"/containers/{VMID + 1}/metrics", headers=TAB).text
    stopped = charts(html)
    assert set(stopped) == {"memory"}, "a container that never ran has only its limits"
    assert set(stopped["memory"]["series"][0]["values"]) == {512 * 1024 ** 2}
    assert stopped["memory"]["series"][0]["label"] == "Limit"
