"""Several Proxmox clusters in one Proxboard: the environment's cluster ("default", the session simulator) and
two more added as an admin would ("lab", "office"), each a simulator of its own with the same VMIDs as the others.

A guest is its cluster and VMID: its card, page, actions, record and audit line name the right cluster; one
cluster that stops answering shows its banner and last known state while the others stay live.
"""
from __future__ import annotations

import re
import pytest

from app.clusters import use_cluster
from app.extensions import db as _db
from app.models import AuditEntry, Cluster, Container
from tests.fixtures.clusters import register_cluster
from tests.fixtures.pve import pve_config
from tests.pvesim import PVESimulator

HTMX = {"HX-Request": "true"}


@pytest.fixture
def app_overrides():
    return {"DASHBOARD_PAGE_SIZE": 200}  # every cluster's guests on one page


@pytest.fixture(scope="module")
def lab(pve_version):
    sim = PVESimulator(nodes=2, containers=4, cluster_name="lab", node_prefix="lab", task_delay=0.05,
                       pve_version=pve_version).start()
    yield sim
    sim.stop()


@pytest.fixture
def office(pve_version):
    sim = PVESimulator(nodes=1, containers=3, node_prefix="office", task_delay=0.05, pve_version=pve_version).start()
    yield sim
    sim.stop()


@pytest.fixture
def three(app, pve, lab, office, tmp_path, logged_in):
    """The app watching default (``pve``), lab and office, signed in as an admin."""
    lab.reset()  # shared by the module: each test starts from its seed
    register_cluster(app, lab, "lab", tmp_path)
    register_cluster(app, office, "office", tmp_path)
    return {"default": pve, "lab": lab, "office": office}


def cards(html: str) -> dict[tuple[str, int], str]:
    """(cluster, VMID) → status of each card on a dashboard page."""
    return {(cluster, int(vmid)): status for vmid, cluster, status in
            re.findall(r'<div class="col" id="ct-[^"]+" data-vmid="(\d+)" data-cluster="([^"]+)" data-status="([^"]+)"',
                       html)}


def test_the_dashboard_shows_every_cluster_with_a_line_each_and_guests_named_by_cluster_and_vmid(three, client):
    html = client.get("/").text
    shown = cards(html)
    for name, sim in three.items():
        assert {vmid for cluster, vmid in shown if cluster == name} == set(sim.containers), name
    shared = sorted(set(three["lab"].containers) & set(three["default"].containers))[0]
    assert f'href="/containers/{shared}"' in html and f'href="/clusters/lab/containers/{shared}"' in html
    assert f'id="ct-lab-{shared}"' in html and f'id="ct-{shared}"' in html
    lines = re.findall(r'data-cluster-filter="([a-z]+)" data-testid="cluster-summary" data-reachable="(\w+)"', html)
    assert lines == [("default", "yes"), ("lab", "yes"), ("office", "yes")]
    running = sum(ct.status == "running" for sim in three.values() for ct in sim.containers.values())
    assert re.search(rf'data-testid="stat-running".*?stat-value">{running}<', html, re.S)


def test_the_cluster_filter_and_the_search_narrow_to_one_cluster(three, client):
    only_lab = cards(client.get("/?cluster=lab").text)
    assert only_lab and {cluster for cluster, _ in only_lab} == {"lab"}
    assert set(cards(client.get("/?q=office").text)) == {("office", vmid) for vmid in three["office"].containers}
    everything = cards(client.get("/?cluster=nosuch").text)  # an unknown name filters nothing out
    assert {cluster for cluster, _ in everything} == {"default", "lab", "office"}


def test_a_guests_page_and_action_reach_its_own_cluster_only(three, client, auth, app):
    lab, default = three["lab"], three["default"]
    vmid = next(v for v, ct in lab.containers.items() if ct.status == "running" and v in default.containers)
    before = default.containers[vmid].status
    page = client.get(f"/clusters/lab/containers/{vmid}")
    assert page.status_code == 200
    assert lab.containers[vmid].hostname in page.text
    assert f'action="/clusters/lab/containers/{vmid}/' in page.text or f'/clusters/lab/containers/{vmid}/actions' in page.text
    response = auth.post(f"/clusters/lab/containers/{vmid}/actions/stop", data={"next": "/"})
    assert response.status_code in (200, 302, 303)
    assert lab.wait_idle()
    assert lab.containers[vmid].status == "stopped"
    assert default.containers[vmid].status == before
    with app.app_context():
        lab_id = _db.session.scalar(_db.select(Cluster.id).where(Cluster.name == "lab"))
        record = Container.current(vmid, lab_id)
        assert record is not None and record.cluster_id == lab_id
        entry = _db.session.scalar(_db.select(AuditEntry).where(AuditEntry.vmid == vmid,
                                                                AuditEntry.action.like("%stop%")))
        assert entry is not None and entry.cluster == "lab" and entry.target.startswith(f"lab/CT {vmid}")
    log = client.get("/audit").text
    assert re.search(rf"<a href=\"/clusters/lab/containers/{vmid}\">lab/CT {vmid}", log)


def test_one_cluster_down_shows_its_banner_and_last_known_state_while_the_others_stay_live(three, client):
    office = three["office"]
    client.get("/")  # office's guests are recorded while it answers
    office.stop()
    html = client.get("/").text
    banners = re.findall(r'data-testid="proxmox-banner" data-cluster="(\w+)"', html)
    assert banners == ["office"]
    lines = dict(re.findall(r'data-cluster-filter="([a-z]+)" data-testid="cluster-summary" data-reachable="(\w+)"', html))
    assert lines == {"default": "yes", "lab": "yes", "office": "no"}
    shown = cards(html)
    assert {vmid for cluster, vmid in shown if cluster == "office"} == set(office.containers)
    stale = re.findall(r'id="ct-office-\d+"[^>]*>\s*<div class="card ct-card h-100 stale', html)
    assert len(stale) == len(office.containers)
    assert not re.search(r'id="ct-lab-\d+"[^>]*>\s*<div class="card ct-card h-100 stale', html)
    assert client.get(f"/clusters/office/containers/{min(office.containers)}").status_code == 200


def test_a_cluster_answering_in_part_says_so_under_its_name_and_changes_nothing_elsewhere(three, client):
    """lab with a node offline, then with a token that sees no guest (Proxmox answers, lists nothing): its
    banners name it, its guests keep their last known state, and the other clusters' cards stay live."""
    lab = three["lab"]
    client.get("/")  # lab's guests recorded
    lab.faults.set_node_offline("lab2")
    html = client.get("/").text
    assert re.search(r'data-testid="node-offline-banner" data-node="lab2">.*?Cluster <strong>lab</strong>: node', html, re.S)
    on_lab2 = [vmid for vmid, ct in lab.containers.items() if ct.node == "lab2"]
    assert on_lab2 and all(re.search(rf'id="ct-lab-{vmid}"[^>]*>\s*<div class="card ct-card h-100 stale', html)
                           for vmid in on_lab2)
    lab.faults.set_node_offline("lab2", False)
    lab.set_token_privileges({"/": ["Sys.Audit"]})  # a 403 on every guest: /cluster/resources lists none
    try:
        html = client.get("/").text
    finally:
        lab.set_token_privileges(None)
    hidden = re.findall(r'data-testid="hidden-banner">.*?</div>', html, re.S)
    assert len(hidden) == 1 and "Cluster <strong>lab</strong>" in hidden[0]
    assert set(cards(html)) >= {("lab", vmid) for vmid in lab.containers}  # nothing removed while hidden
    assert not re.search(r'id="ct-\d+"[^>]*>\s*<div class="card ct-card h-100 stale', html)  # default live


def test_a_slow_cluster_keeps_only_itself_waiting(three, client, app):
    """Every cluster is asked at once: past the request's deadline the slow one shows its last known state,
    the one asked after it is live all the same."""
    lab, office = three["lab"], three["office"]
    client.get("/")  # lab's guests are recorded while it answers at once
    app.config["PVE_REQUEST_DEADLINE"] = 1.5
    lab.faults.delay = 4
    try:
        html = client.get("/").text
    finally:
        lab.faults.delay = 0
    lines = dict(re.findall(r'data-cluster-filter="([a-z]+)" data-testid="cluster-summary" data-reachable="(\w+)"', html))
    assert lines == {"default": "yes", "lab": "no", "office": "yes"}
    assert re.search(r'data-cluster-filter="lab"[^>]*>.*?· slow</span>', html, re.S)
    assert re.search(r'id="ct-lab-\d+"[^>]*>\s*<div class="card ct-card h-100 stale', html)
    assert not re.search(r'id="ct-office-\d+"[^>]*>\s*<div class="card ct-card h-100 stale', html)
    assert len(office.containers) == len(re.findall(r'id="ct-office-\d+"', html))


def test_unknown_clusters_and_the_default_clusters_prefix_are_not_found(three, client):
    assert client.get("/clusters/nosuch/containers/100").status_code == 404
    assert client.get("/clusters/default/containers/100").status_code == 404  # its guests have one address


def test_a_vmid_is_unique_within_a_cluster_not_across_clusters(app, three):
    from sqlalchemy.exc import IntegrityError

    with app.app_context():
        with use_cluster("lab"):
            _db.session.add(Container(vmid=4242, node="lab1"))
        _db.session.add(Container(vmid=4242, node="pve1"))
        _db.session.commit()
        assert {c.cluster.name for c in _db.session.scalars(_db.select(Container).where(Container.vmid == 4242))} \
            == {"default", "lab"}
        with use_cluster("lab"):
            _db.session.add(Container(vmid=4242, node="lab2"))
        with pytest.raises(IntegrityError):
            _db.session.commit()
        _db.session.rollback()


def test_flask_clusters_adds_lists_checks_and_removes(app, runner, lab, tmp_path):
    config = pve_config(lab)
    result = runner.invoke(args=["clusters", "add", "lab", "--host", config["PVE_HOST"], "--port", str(lab.port),
                                 "--token-id", f"{lab.token_user}!{lab.token_name}", "--secret-stdin",
                                 "--verify-ssl", config["PVE_VERIFY_SSL"]], input=f"{lab.token_value}\n")
    assert result.exit_code == 0, result.output
    assert "Added cluster lab" in result.output and "pve-manager" in result.output
    assert lab.token_value not in result.output
    listed = runner.invoke(args=["clusters", "list"]).output
    assert re.search(r"^default \(environment\)\s", listed, re.M) and re.search(rf"^lab\s+127\.0\.0\.1:{lab.port}", listed, re.M)
    assert lab.token_value not in listed
    refused = runner.invoke(args=["clusters", "add", "Bad Name", "--host", "x", "--token-id", "a@b!c",
                                  "--secret-stdin"], input="s\n")
    assert refused.exit_code != 0 and "lower-case letters" in refused.output
    assert runner.invoke(args=["clusters", "remove", "default", "--yes"]).exit_code != 0
    removed = runner.invoke(args=["clusters", "remove", "lab", "--yes"])
    assert removed.exit_code == 0 and "Removed cluster lab" in removed.output
    assert "lab" not in runner.invoke(args=["clusters", "list"]).output


def test_the_wizard_creates_a_container_in_the_cluster_it_was_opened_for(three, auth, client, app):
    """Created from /clusters/lab/containers/create: in lab's Proxmox, recorded in lab, with the default
    cluster's VMID of the same number left alone; a draft begun for lab does not carry over to default."""
    from tests.test_wizard import configure_data

    lab, default = three["lab"], three["default"]
    base = "/clusters/lab/containers/create"
    auth.post(f"{base}/template", {"template": "scratch", "next": "1"})
    step = auth.post(f"{base}/configure", configure_data(node="lab1", vmid="950", hostname="lab-new"))
    assert step.status_code == 302 and step.headers["Location"].startswith(f"{base}/"), step.text
    auth.post(f"{base}/packages", {"next": "1"})
    auth.post(f"{base}/scripts", {"next": "1"})
    elsewhere = client.get("/containers/create/review")  # the default cluster's wizard: its own, not begun
    assert elsewhere.status_code == 302 and elsewhere.headers["Location"] == "/containers/create/template"
    review = client.get(f"{base}/review").text
    draft_id = review.split('name="draft_id" value="')[1][:36]
    created = auth.post(f"{base}/review", {"draft_id": draft_id})
    assert created.status_code == 302 and created.headers["Location"].startswith("/clusters/lab/containers/950")
    assert lab.wait_idle() and 950 in lab.containers and 950 not in default.containers
    with app.app_context():
        record = _db.session.scalar(_db.select(Container).where(Container.vmid == 950))
        assert record.cluster.name == "lab" and record.lifecycle == "ready"


def test_the_api_creates_a_container_in_the_cluster_its_address_names(three, client, make, app):
    """POST /api/v1/clusters/lab/containers: lab's node choices and VMIDs, lab's Proxmox, answered with lab's
    addresses; the same VMID in the default cluster is refused there as taken and left alone."""
    from tests.test_api import _poll, assert_problem, create_body

    lab, default = three["lab"], three["default"]
    headers = {"Authorization": f"Bearer {make.token('creator', 'operator')}"}
    taken = sorted(set(default.containers) - set(lab.containers))[0]
    created = client.post("/api/v1/clusters/lab/containers", headers=headers,
                          json=create_body(vmid=taken, node="lab1", hostname="api-lab"))
    assert created.status_code == 202, created.text
    body = created.get_json()
    assert body["vmid"] == taken and body["url"] == f"/api/v1/clusters/lab/containers/{taken}"
    assert _poll(client, body["operation"]["url"], headers, 60)["state"] == "succeeded"
    assert lab.containers[taken].hostname == "api-lab" and default.containers[taken].hostname != "api-lab"
    assert client.get(body["url"], headers=headers).get_json()["cluster"] == "lab"
    refused = client.post("/api/v1/containers", headers=headers, json=create_body(vmid=taken, hostname="api-dft"))
    assert assert_problem(refused, 422)["errors"] == {"vmid": [f"VMID {taken} is already in use."]}
    assert_problem(client.post("/api/v1/clusters/lab/containers", headers=headers, json=create_body(node="pve1")),
                   422)  # the default cluster's node is no choice in lab
    assert_problem(client.post("/api/v1/clusters/nosuch/containers", headers=headers, json=create_body()), 404)


def test_a_cluster_another_process_removed_is_left_out_and_its_pages_are_not_found(three, app, client, database_url,
                                                                                   pve, tmp_path):
    """Each process keeps the list of clusters for a moment (``LIST_SECONDS``). When another process (a gunicorn
    worker, ``flask clusters remove``) removes one meanwhile, this one leaves it out of the dashboard and answers
    its pages 404 at once, never a server error."""
    from app import create_app
    from app.clusters import clusters
    from app.clusters.services import remove_cluster
    from tests.fixtures.app import app_config

    with app.test_request_context("/"):
        assert [info.name for info in clusters()] == ["default", "lab", "office"]  # held by this process now
    other = create_app(app_config(database_url, pve), instance_path=str(tmp_path / "other"))
    with other.app_context():
        remove_cluster("office")
        _db.session.remove()
        _db.engine.dispose()

    vmid = sorted(three["office"].containers)[0]
    assert client.get(f"/clusters/office/containers/{vmid}").status_code == 404
    html = client.get("/").text
    shown = cards(html)
    assert shown and {cluster for cluster, _ in shown} == {"default", "lab"}
    assert 'data-cluster-filter="office"' not in html
    assert client.get(f"/api/v1/clusters/office/containers/{vmid}",
                      headers={"Authorization": f"Bearer {_api_token(app)}"}).status_code == 404


def _api_token(app) -> str:
    from app.auth.tokens import create_token
    from app.models import User

    with app.app_context():
        user = _db.session.scalar(_db.select(User).filter_by(username="alice"))
        return create_token(user, "removal check", "viewer", None)[1]


def test_prometheus_counts_each_clusters_containers_under_its_own_label(three, client, make):
    """Two clusters may both have a node "pve1" and a CT 100: the scrape keeps them apart."""
    from tests.test_prometheus import scrape, total

    client.get("/")  # records every cluster's guests
    token = make.token("scraper")
    samples = scrape(client, token)
    for name, sim in three.items():
        assert total(samples, "proxboard_containers", cluster=name) == len(sim.containers), name
    running = sum(ct.status == "running" for ct in three["lab"].containers.values())
    assert total(samples, "proxboard_containers", cluster="lab", status="running") == running


def test_bulk_selection_is_offered_on_every_clusters_cards(three, client):
    """Each card's checkbox names its cluster and VMID (bulk actions over several clusters: test_bulk_actions)."""
    everything = client.get("/").text
    assert 'data-testid="bulk-bar"' in everything and 'data-testid="bulk-hint"' not in everything
    checked = re.findall(r'name="vmid" value="([a-z]+)/(\d+)" form="bulk-form" data-bulk-select', everything)
    assert sorted(checked) == sorted((name, str(vmid)) for name, sim in three.items() for vmid in sim.containers)
    only_lab = client.get("/?cluster=lab").text
    assert only_lab.count("data-bulk-select") == len(three["lab"].containers)
    assert '<input type="hidden" name="cluster" value="lab">' in only_lab  # "all matching" keeps the cluster filter


def test_alerts_watch_every_cluster_and_keep_their_guests_and_nodes_apart(three, app, client):
    """Rules apply to every cluster: a stopped Proxmox is its own incident, a guest stopped behind Proxboard's
    back in lab is not the default cluster's guest of the same VMID, and a node offline in lab names its cluster."""
    from app.alerts.engine import evaluate, gather_facts
    from app.alerts.services import create_rule
    from app.models import AlertIncident

    lab, office, default = three["lab"], three["office"], three["default"]
    vmid = next(v for v, ct in lab.containers.items() if ct.status == "running" and v in default.containers)
    with app.app_context():
        for kind in ("proxmox_unreachable", "container_stopped", "node_offline"):
            create_rule(kind, [], for_minutes=0)
        evaluate(gather_facts())  # every cluster's guests recorded, nothing wrong yet
        baseline = set(_db.session.scalars(_db.select(AlertIncident.subject)))
        lab.containers[vmid].status = "stopped"  # behind Proxboard's back
        lab.faults.set_node_offline("lab2")
        office.stop()
        evaluate(gather_facts())
        subjects = set(_db.session.scalars(_db.select(AlertIncident.subject))) - baseline
    assert {"pve:office", f"ct:lab/{vmid}", "node:lab/lab2"} <= subjects
    assert "pve" not in subjects and f"ct:{vmid}" not in subjects and "node:lab2" not in subjects
