"""A slow Proxmox: one deadline per request over all its Proxmox calls, parallel reads, last known state.

The simulator's latency fault (``pve.faults.delay``, seconds before every API answer) makes
Proxmox slow; each page must answer within the request deadline plus a margin, show the
"Proxmox is slow" banner and what Proxboard last knew, and change nothing it has recorded.
"""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from app.models import Container
from app.proxmox import ProxmoxClient, ProxmoxSlow
from app.proxmox.deadline import deadline, gather, missed, submit
from tests.fixtures.pve import sim_settings

DEADLINE = 1.0
SLOW = 4.0  # seconds per Proxmox answer: a page waiting for even one of them would miss the deadline
MARGIN = 2.0  # rendering, the database and a loaded CI machine


@pytest.fixture
def app_overrides() -> dict:
    return {"PVE_REQUEST_DEADLINE": DEADLINE}


def timed(client, url: str):
    started = time.monotonic()
    response = client.get(url)
    return response, time.monotonic() - started


def known_state(db) -> dict[int, tuple[str, str | None]]:
    db.session.expire_all()
    return {row.vmid: (row.lifecycle, (row.snapshot or {}).get("name"))
            for row in db.session.scalars(select(Container))}


def test_dashboard_shows_the_last_known_state_when_proxmox_is_slow(logged_in, client, pve, db):
    assert client.get("/").status_code == 200  # Proxmox answers: Proxboard records what it lists
    before = known_state(db)
    pve.faults.delay = SLOW
    response, elapsed = timed(client, "/")
    html = response.text
    assert response.status_code == 200 and elapsed < DEADLINE + MARGIN, elapsed
    assert html.count('data-testid="slow-banner"') == 1 and "Proxmox is slow" in html
    assert f"did not answer within {DEADLINE:g} s" in html and "Cannot reach Proxmox" not in html
    for lifecycle, name in before.values():
        assert lifecycle == "ready" and name in html
    assert known_state(db) == before  # nothing marked gone, nothing forgotten


def test_dashboard_refresh_fragment_carries_the_banner(logged_in, client, pve):
    client.get("/")
    pve.faults.delay = SLOW
    response = client.get("/", headers={"HX-Request": "true"})
    assert response.status_code == 200 and "<html" not in response.text
    assert response.text.count('data-testid="slow-banner"') == 1


def test_container_page_shows_the_last_known_state_when_proxmox_is_slow(logged_in, client, pve, db):
    client.get("/")
    pve.faults.delay = SLOW
    response, elapsed = timed(client, "/containers/100")
    html = response.text
    assert response.status_code == 200 and elapsed < DEADLINE + MARGIN, elapsed
    assert 'data-testid="slow-banner"' in html and pve.containers[100].hostname in html
    assert 'data-testid="stale-reason"' in html and "Proxmox is slow" in html
    assert known_state(db)[100][0] == "ready"


@pytest.mark.parametrize("tab", ["services", "events"])
def test_container_tabs_answer_within_the_deadline(logged_in, client, pve, tab):
    # The dashboard records the container first; on a loaded machine its own first answer may miss the
    # deadline, which records nothing: ask again until it has.
    for _ in range(5):
        if 'id="ct-100"' in client.get("/").text:
            break
    pve.faults.delay = SLOW
    response, elapsed = timed(client, f"/containers/100/{tab}")
    assert response.status_code == 200 and elapsed < DEADLINE + MARGIN, elapsed
    assert 'data-testid="slow-banner"' in response.text


def test_wizard_and_template_form_answer_within_the_deadline(logged_in, client, pve):
    logged_in.post("/containers/create/template", {"template": "scratch", "next": "1"})
    pve.faults.delay = SLOW
    for url in ("/containers/create/configure", "/templates/new"):
        response, elapsed = timed(client, url)
        assert response.status_code == 200 and elapsed < DEADLINE + MARGIN, (url, elapsed)
        assert 'data-testid="slow-banner"' in response.text, url
        assert "did not answer within" in response.text, url  # the form says why its lists are empty


def test_about_answers_within_the_deadline(logged_in, client, pve):
    pve.faults.delay = SLOW
    response, elapsed = timed(client, "/about")
    assert response.status_code == 200 and elapsed < DEADLINE + MARGIN, elapsed
    assert 'data-testid="slow-banner"' in response.text


def test_no_banner_when_proxmox_answers_in_time(logged_in, client, pve, app):
    app.config["PVE_REQUEST_DEADLINE"] = 10
    pve.faults.delay = 0.1
    for url in ("/", "/containers/100", "/about", "/templates/new"):
        response = client.get(url)
        assert response.status_code == 200 and "slow-banner" not in response.text, url


# -- parallel reads ------------------------------------------------------------------------------

@pytest.fixture
def patient(app):
    """A deadline far beyond the simulated latency: what is measured is the calls' order."""
    app.config["PVE_REQUEST_DEADLINE"] = 30


@pytest.mark.parametrize("url, answers, chain", [
    ("/containers/100", 3, 1),  # status, config, interfaces (a running DHCP container): all at once
    ("/templates/new", 9, 3),  # nodes, then per online node storages -> content, beside storages, bridges
    ("/containers/create/configure", 6, 3),  # nodes, then storages -> content, beside storages, bridges, nextid
    ("/containers/create/configure/node-fields?node=pve2", 5, 2),  # a named node: its lists beside the node list
])
def test_independent_calls_of_a_page_run_in_parallel(logged_in, client, pve, patient, url, answers, chain):
    logged_in.post("/containers/create/template", {"template": "scratch", "next": "1"})
    client.get("/")  # records (and their last status) exist, as in use
    latency = 1.0
    pve.faults.delay = latency
    pve.clear_requests()
    response, elapsed = timed(client, url)
    assert response.status_code == 200 and "slow-banner" not in response.text
    assert len(pve.requests) >= answers
    # In turn these answers would take answers * latency; in parallel, the longest chain of
    # answers that wait for each other (plus less than one latency for everything else).
    assert elapsed < (chain + 1) * latency < answers * latency, elapsed


# -- the deadline in worker threads --------------------------------------------------------------

def test_the_deadline_covers_calls_made_in_worker_threads(pve):
    pve.faults.delay = SLOW
    with ProxmoxClient(sim_settings(pve)) as client, deadline(0.5):
        started = time.monotonic()
        reads = [submit(client.cluster_snapshot), submit(client.nodes), submit(client.version)]
        for read in reads:
            with pytest.raises(ProxmoxSlow):
                read.result()
        assert time.monotonic() - started < 0.5 + MARGIN
        assert missed() == 0.5  # the request learns that its workers missed the deadline
        with pytest.raises(ProxmoxSlow):  # once passed, later calls fail at once
            gather(client.nodes, client.version)
    assert missed() is None


def test_gather_returns_results_in_order(pve):
    with ProxmoxClient(sim_settings(pve)) as client, deadline(10):
        nodes, version = gather(client.nodes, client.version)
    assert [node.name for node in nodes] == sorted(node.name for node in nodes) and version.release
