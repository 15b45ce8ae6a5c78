"""The Nodes pages as an operator reads them: every node with its versions, uptime, figures and guests; a node's own
page with its storages; an offline node shown as such with what it showed last (both releases, both databases)."""
from __future__ import annotations

import json
import re

from app.presenters import filesize
from tests.fixtures.app import join_app_threads
from tests.pvesim.api import RELEASES, status_time

GIB = 1024**3


def node_cards(html: str) -> dict[str, str]:
    """Each node's card on the list page, by node name."""
    parts = re.split(r'(?=<div class="col" data-node=")', html)
    return {re.match(r'<div class="col" data-node="([^"]+)"', part).group(1): part
            for part in parts[1:]}


def bar(html: str, label: str) -> tuple[int | None, str]:
    """A resource bar's percentage and its text (``3.5 GiB of 64 GiB``)."""
    match = re.search(rf'data-resource="{label}".*?<span class="text-end[^"]*">\s*(\d+%|–)\s*'
                      r'(?:<span class="text-body-secondary ms-1">· ([^<]*)</span>)?', html, re.S)
    assert match, f"no {label} bar"
    value = match.group(1)
    return (None if value == "–" else int(value[:-1])), (match.group(2) or "")


def storage_rows(html: str) -> dict[str, str]:
    parts = re.split(r'(?=<li class="list-group-item" data-storage=")', html)
    return {re.match(r'<li class="list-group-item" data-storage="([^"]+)"', part).group(1): part
            for part in parts[1:]}


def expected_guests(pve, node: str) -> tuple[int, int]:
    """(containers, running) the simulator has on ``node``, templates left out."""
    cts = [ct for ct in pve.containers.values() if ct.node == node and not ct.template]
    return len(cts), sum(ct.status == "running" for ct in cts)


def test_every_node_is_listed_with_versions_uptime_figures_and_its_containers(logged_in, client, pve):
    dashboard = client.get("/").text
    card = re.search(r'<div class="col" id="ct-100".*?(?=<div class="col" id="ct-)', dashboard, re.S).group(0)
    node = pve.containers[100].node
    assert f'href="/nodes/{node}" data-testid="card-node">{node}</a>' in card  # each card links its node

    join_app_threads()  # the dashboard started the backup index's first sweep: its calls are not the page's
    while True:  # again if pvestatd's cycle turned during the request: the figures are then the next cycle's
        pve.clear_requests()
        now = status_time()
        html = client.get("/nodes").text
        if status_time() == now:
            break
    assert pve.count_requests("GET", "/cluster/resources") == 1
    cards = node_cards(html)
    assert sorted(cards) == sorted(pve.cluster.nodes)
    version = RELEASES[pve.pve_version]["version"]["version"]
    kernel = RELEASES[pve.pve_version]["kernel"][0]
    for name, card in cards.items():
        node = pve.cluster.nodes[name]
        usage = pve.cluster.node_usage(name, now)
        assert 'data-status="online"' in card
        assert f'href="/nodes/{name}"' in card
        assert f"Proxmox VE {version}</span>" in card and f"kernel {kernel}</span>" in card
        days, hours = divmod(usage["uptime"] // 3600, 24)
        assert f"Up {days}d {hours}h" in card
        cpu, cpu_text = bar(card, "cpu")
        assert abs(cpu - usage["cpu"] * 100) <= 1 and cpu_text == f"{node['maxcpu']} CPUs"
        mem, mem_text = bar(card, "memory")
        assert abs(mem - usage["mem"] * 100 / node["maxmem"]) <= 1
        assert mem_text.endswith(f" of {node['maxmem'] // GIB} GiB")
        assert bar(card, "root disk") == (9, "9 GiB of 100 GiB")
        stores = [s for s in pve.cluster.storage_status(name)]
        used, total = sum(s["used"] for s in stores), sum(s["total"] for s in stores)
        storage, storage_text = bar(card, "storage")
        assert storage == round(used * 100 / total) and storage_text == f"{filesize(used)} of {filesize(total)}"
        count, running = expected_guests(pve, name)
        assert f'data-testid="container-count">{count} container{"s" if count != 1 else ""}<' in card
        if count:
            assert f'data-testid="running-count">{running}<' in card
    assert 'data-testid="nav-nodes"' in html


def test_a_node_page_lists_its_storages_with_their_use_and_its_containers(logged_in, client, pve):
    assert client.get("/nodes/pve9").status_code == 404
    assert client.get("/nodes/not_a..node").status_code == 404
    name = "pve1"
    join_app_threads()  # a background sweep's calls are not the page's
    pve.clear_requests()
    response = client.get(f"/nodes/{name}")
    assert response.status_code == 200
    html = response.text
    assert pve.count_requests("GET", f"/nodes/{name}/status") == 1
    assert pve.count_requests("GET", f"/nodes/{name}/storage") == 1
    release = RELEASES[pve.pve_version]
    assert (f'data-fact="pveversion">{release["version"]["version"]}<div class="text-body-secondary" '
            f'title="pve-manager/{release["version"]["version"]}/{release["version"]["repoid"]}">'
            f'build {release["version"]["repoid"]}</div></dd>' in html)
    assert f'data-fact="kernel">{release["kernel"][0]}<' in html
    assert "AMD EPYC 7302P 16-Core Processor" in html and 'data-resource="swap"' in html
    rows = storage_rows(html)
    stores = {s["storage"]: s for s in pve.cluster.storage_status(name)}
    assert sorted(rows) == sorted(stores)
    for sid, row in rows.items():
        store = stores[sid]
        pct, text = bar(row, "used")
        assert pct == round(store["used"] * 100 / store["total"])
        assert text == f"{filesize(store['used'])} of {filesize(store['total'])}"
        assert store["type"] in row and ("shared</span>" in row) == bool(store["shared"])
    guests = [ct for ct in pve.containers.values() if ct.node == name]
    listed = re.findall(r'<li class="list-group-item d-flex align-items-center gap-2" data-vmid="(\d+)"', html)
    assert listed == [str(ct.vmid) for ct in sorted(guests, key=lambda ct: ct.vmid)]
    count, running = expected_guests(pve, name)
    assert f'data-testid="container-count">{count} containers<' in html and f"{running} running" in html
    assert f'href="/containers/{guests[0].vmid}"' in html


def test_an_offline_node_shows_offline_with_its_last_known_figures(logged_in, client, pve):
    client.get("/")  # the dashboard records every guest's state
    seen = node_cards(client.get("/nodes").text)["pve2"]
    pve.faults.set_node_offline("pve2")
    response = client.get("/nodes")
    assert response.status_code == 200
    card = node_cards(response.text)["pve2"]
    assert 'data-status="offline"' in card and 'data-testid="offline-note"' in card
    assert "Offline since" in card and "showing the figures it gave" in card
    assert bar(card, "memory")[1] == bar(seen, "memory")[1] and bar(card, "storage") == bar(seen, "storage")
    assert "Proxmox VE" in card  # the version it reported while online
    assert 'data-testid="uptime"' not in card and 'data-testid="running-count"' not in card
    assert 'data-status="online"' in node_cards(response.text)["pve1"]
    assert "1 offline" in response.text

    page = client.get("/nodes/pve2")
    assert page.status_code == 200
    assert 'data-status="offline"' in page.text and "Offline since" in page.text
    assert storage_rows(page.text)  # the storages it last showed
    guest = next(ct for ct in sorted(pve.containers.values(), key=lambda ct: ct.vmid) if ct.node == "pve2")
    row = re.search(rf'data-vmid="{guest.vmid}">(.*?)</li>', page.text, re.S).group(1)
    assert f">{guest.name}</a>" in row and 'title="Last known status"' in row
    assert f'data-status="{guest.status}"' in row
    # rrddata has no proxyto: the node asked answers from the cluster-wide RRD files, which stop at the outage
    assert "Node pve2 is offline: its graphs stop when it went down." in page.text
    assert "data-metrics-chart" in page.text and 'data-testid="metrics-error"' not in page.text

    # pve1 stops answering before Proxmox's list says so: its own calls answer 595
    pve.faults.fail_path("GET", r"^/nodes/pve1/", 595, "No route to host")
    page = client.get("/nodes/pve1")
    assert page.status_code == 200
    assert 'data-status="offline"' in page.text
    assert "Node pve1 is offline, and its history cannot be read: No route to host" in page.text
    assert 'data-status="offline"' in node_cards(client.get("/nodes").text)["pve1"]


def test_a_node_never_seen_online_shows_offline_without_figures_but_with_its_history(logged_in, client, pve):
    pve.faults.set_node_offline("pve3")
    page = client.get("/nodes/pve3")
    assert page.status_code == 200
    assert 'data-status="offline"' in page.text
    assert "Proxboard has not seen its figures since it started." in page.text
    assert bar(page.text, "memory") == (None, "")
    assert "Node pve3 is offline: its graphs stop when it went down." in page.text
    assert "data-metrics-chart" in page.text


def test_proxmox_down_shows_the_last_known_nodes_with_the_reason(logged_in, client, pve):
    client.get("/nodes")
    pve.faults.unreachable = True
    try:
        response = client.get("/nodes")
        detail = client.get("/nodes/pve1")
    finally:
        pve.faults.unreachable = False
    assert response.status_code == 200 and 'data-testid="nodes-error"' in response.text
    assert sorted(node_cards(response.text)) == sorted(pve.cluster.nodes)
    assert detail.status_code == 200 and 'data-testid="nodes-error"' in detail.text


def test_a_token_without_sys_audit_sees_the_nodes_without_their_reports(logged_in, client, pve):
    pve.set_token_privileges({"/vms": ["VM.Audit"], "/storage": ["Datastore.Audit"]})
    try:
        response = client.get("/nodes")
        detail = client.get("/nodes/pve1")
    finally:
        pve.set_token_privileges(None)
    assert response.status_code == 200 and detail.status_code == 200
    card = node_cards(response.text)["pve1"]
    assert 'data-status="online"' in card and 'data-testid="info-error"' in card
    assert bar(card, "cpu") == (None, "") and bar(card, "storage")[0] is not None
    assert 'data-testid="info-error"' in detail.text and storage_rows(detail.text)


def charts(html: str) -> dict[str, dict]:
    """The chart data the page embeds for the graphs, by chart key."""
    blocks = re.findall(r'<script type="application/json" data-metrics-data>(.*?)</script>', html, re.S)
    return {data["key"]: data for data in map(json.loads, blocks)}


def test_a_node_page_draws_its_graphs_and_the_list_reads_no_statistics(logged_in, client, pve, pve_version):
    pve.clear_requests()
    client.get("/nodes")
    client.get("/")
    assert pve.count_requests("GET", "/nodes/pve1/rrddata") == 0

    html = client.get("/nodes/pve1").text
    expected = {"cpu", "load", "memory", "network", "rootfs"}
    if pve_version.startswith("9"):
        expected |= {"pressure-cpu", "pressure-io", "pressure-memory"}
    drawn = charts(html)
    assert set(drawn) == expected
    assert re.search(r'aria-current="page"\s+data-timeframe="hour"', html)
    assert 'href="/nodes/pve1?timeframe=week#graphs"' in html
    rrd_calls = [r for r in pve.requests if r["path"].endswith("/rrddata")]
    assert len(rrd_calls) == pve.count_requests("GET", "/nodes/pve1/rrddata") == 1  # an hour: averages only

    week = client.get("/nodes/pve1?timeframe=week&cf=max").text
    assert 'data-testid="metrics-table-memory"' in week  # the table that stands in without JavaScript
    assert "maxima only" in week
    chosen = r'href="/nodes/pve1\?timeframe=week&amp;cf=MAX#graphs"\s+aria-current="page"\s+data-cf="MAX"'
    assert re.search(chosen, week)
    assert re.search(r'href="/nodes/pve1\?timeframe=week#graphs"\s+data-cf="both"', week)  # back to both
