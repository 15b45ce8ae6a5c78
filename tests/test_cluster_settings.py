"""Settings → Clusters (admins only): the clusters listed without a secret, one added through the form (a second
simulator, "lab") whose guests then show on the dashboard and at /clusters/lab/…, checked, edited (a secret left
empty is kept), and removed after a confirmation; every refused input shows its sentence and changes nothing.

Through the real login form with CSRF on; ``alice`` (the first user, so an admin) is the one signed in.
"""
from __future__ import annotations

import html
import re
import shutil

import pytest
from sqlalchemy import func

from app.credentials.vault import get_vault
from app.extensions import db as _db
from app.models import AuditEntry, Cluster, Container, Service
from tests.fixtures.app import FormPoster
from tests.fixtures.factories import make_event, make_services
from tests.fixtures.pve import SIM_TOKEN_VALUE, pve_config
from tests.pvesim import PVESimulator

LAB_SECRET = "lab-3f9c1e-token-SECRET"
SSH_SECRET = "ssh-pass-8d2b-SECRET"
CARD = re.compile(r'<div class="col" id="[^"]+" data-vmid="(\d+)" data-cluster="([^"]+)"')


def _simulator(name: str) -> PVESimulator:
    return PVESimulator(nodes=2, containers=4, cluster_name=name, node_prefix=name, task_delay=0.05,
                        token=f"root@pam!proxboard={LAB_SECRET}").start()


@pytest.fixture(scope="module")
def lab():
    sim = _simulator("lab")
    yield sim
    sim.stop()


@pytest.fixture
def admin(logged_in, client) -> FormPoster:
    return FormPoster(client, "/settings/clusters")


def form_for(sim: PVESimulator, tmp_path, name: str = "lab", **changes) -> dict:
    """The Add cluster form filled in for ``sim`` (its CA bundle copied, as a real one outlives Proxmox)."""
    bundle = tmp_path / f"{name}-ca.pem"
    shutil.copy(pve_config(sim)["PVE_VERIFY_SSL"], bundle)
    data = {"name": name, "host": sim.host, "port": str(sim.port), "token_id": sim.token_id,
            "token_secret": sim.token_value, "verify_ssl": str(bundle), "ssh_user": "root", "ssh_port": "22",
            "ssh_hosts": f"{name}1=127.0.0.1,{name}2=127.0.0.1", "ssh_password": SSH_SECRET}
    data.update(changes)
    return data


def names() -> list[str]:
    _db.session.expire_all()
    return list(_db.session.scalars(_db.select(Cluster.name).order_by(Cluster.name)))


def toasts(response) -> list[tuple[str, str]]:
    """(category, message) of each flashed message the page shows."""
    return [(category, html.unescape(message)) for category, message in re.findall(
        r'data-category="(\w+)">\s*<div class="d-flex">\s*<div class="toast-body">([^<]*)</div>', response.text)]


def cards(text: str) -> set[tuple[str, int]]:
    return {(cluster, int(vmid)) for vmid, cluster in CARD.findall(text)}


def test_an_admin_sees_every_cluster_and_never_a_secret(admin, lab, tmp_path):
    assert admin.post("/settings/clusters", data=form_for(lab, tmp_path)).status_code == 302
    assert admin.get("/settings/").headers["Location"] == "/settings/clusters"
    page = admin.get("/settings/clusters")
    assert page.status_code == 200
    rows = dict(re.findall(r'data-testid="cluster-row" data-cluster="([a-z0-9-]+)"(.*?)</tr>', page.text, re.S))
    assert list(rows) == ["default", "lab"]
    assert "from the environment" in rows["default"] and "from the environment" not in rows["lab"]
    assert f"127.0.0.1:{lab.port}" in rows["lab"] and "<code>root@pam!proxboard</code>" in rows["lab"]
    assert str(tmp_path / "lab-ca.pem") in rows["lab"] and "root@…:22" in rows["lab"]
    assert 'href="/settings/clusters/lab/edit"' in rows["lab"] and "/settings/clusters/default/edit" not in page.text
    assert re.search(r'class="nav-link active"\s+href="/settings/clusters" data-testid="nav-settings"', page.text)
    edit = admin.get("/settings/clusters/lab/edit")
    assert edit.status_code == 200 and f'value="{lab.port}"' in edit.text
    for text in (page.text, edit.text):
        for secret in (LAB_SECRET, SSH_SECRET, SIM_TOKEN_VALUE):
            assert secret not in text


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_viewers_and_operators_are_refused(auth, client, lab, tmp_path, role):
    auth.login_as(role)
    assert 'data-testid="nav-settings"' not in client.get("/about").text
    page = client.get("/settings/clusters")
    assert page.status_code == 403 and "Admins can change settings" in page.text
    assert auth.post("/settings/clusters", data=form_for(lab, tmp_path)).status_code == 403
    assert client.get("/settings/clusters/default/remove").status_code == 403
    assert names() == ["default"]


# (what the form says differently from a valid one, the sentence the page shows)
REFUSED = {
    "bad name": ({"name": "Lab_1"}, "A cluster's name is 1 to 40 lower-case letters, digits and dashes"),
    "empty name": ({"name": ""}, "Give the cluster a name."),
    "duplicate": ({"name": "lab"}, "A cluster named “lab” already exists."),
    "default": ({"name": "default"}, "A cluster named “default” already exists."),
    "bad host": ({"host": "-not-a-host-"}, "“-not-a-host-” is not a host name or IP address."),
    "bad token id": ({"token_id": "proxboard"}, "The API token id is user@realm!tokenname"),
    "no secret": ({"token_secret": ""}, "Give the API token's secret."),
    "port out of range": ({"port": "70000"}, "The Proxmox port is a number from 1 to 65535."),
    "SSH port out of range": ({"ssh_port": "0"}, "The SSH port is a number from 1 to 65535."),
    "missing CA file": ({"verify_ssl": "/nonexistent/lab-ca.pem"}, "/nonexistent/lab-ca.pem is not a file."),
    "SSH hosts without =": ({"ssh_hosts": "lab1"}, "SSH hosts: SSH_HOSTS entry 'lab1' is not NODE=HOST"),
    "bad SSH host": ({"ssh_hosts": "lab1=not a host"}, "SSH hosts: “not a host” (node lab1) is not a host name"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_refused_input_shows_why_and_adds_nothing(admin, lab, tmp_path, case):
    assert admin.post("/settings/clusters", data=form_for(lab, tmp_path)).status_code == 302  # "lab" exists
    changes, message = REFUSED[case]
    data = form_for(lab, tmp_path, name="lab2")
    data.update(changes)
    page = admin.post("/settings/clusters", data=data)
    assert page.status_code == 200  # the form again, as every form of the app answers its errors
    assert message in html.unescape(page.text)
    assert 'id="add-title"' in page.text and f'value="{data["host"]}"' in page.text  # typed values kept...
    assert LAB_SECRET not in page.text and SSH_SECRET not in page.text  # ...but never a secret
    assert names() == ["default", "lab"]
    entry = _db.session.scalars(_db.select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert (entry.action, entry.outcome) == ("cluster.add", "failed")


def test_an_added_cluster_shows_its_guests_on_the_dashboard_and_at_its_own_address(admin, lab, tmp_path):
    response = admin.post("/settings/clusters", data=form_for(lab, tmp_path), follow_redirects=True)
    assert ("success", "Cluster “lab” added. Check it to see that Proxmox answers.") in toasts(response)
    shown = cards(admin.get("/?per_page=100").text)
    assert {vmid for cluster, vmid in shown if cluster == "lab"} == set(lab.containers)
    vmid = min(lab.containers)
    page = admin.get(f"/clusters/lab/containers/{vmid}")
    assert page.status_code == 200 and lab.containers[vmid].hostname in page.text
    listed = admin.get("/settings/clusters").text
    counted = re.search(r'data-cluster="lab".*?data-testid="containers">(\d+)<', listed, re.S)
    assert int(counted.group(1)) == len(lab.containers)
    _db.session.expire_all()
    entry = _db.session.scalar(_db.select(AuditEntry).filter_by(action="cluster.add"))
    assert (entry.target, entry.outcome, entry.username) == ("cluster lab", "succeeded", "alice")
    assert LAB_SECRET not in str(entry.detail) and SSH_SECRET not in str(entry.detail)


@pytest.fixture
def gone(tmp_path):
    """A simulator that stops answering once added (its CA bundle copied first)."""
    sim = _simulator("gone")
    yield sim
    sim.stop()


def test_check_shows_the_version_or_why_not(admin, lab, gone, tmp_path):
    admin.post("/settings/clusters", data=form_for(lab, tmp_path), follow_redirects=True)
    admin.post("/settings/clusters", data=form_for(gone, tmp_path, name="gone"), follow_redirects=True)
    port = gone.port
    gone.stop()
    connected = admin.post("/settings/clusters/lab/check", follow_redirects=True)
    assert connected.status_code == 200
    (category, message), = toasts(connected)
    release = re.escape(lab.pve_version)
    assert category == "success"
    assert re.fullmatch(rf"lab: Connected: pve-manager {release}\.\d+ \(release {release}\)\.", message)
    default = toasts(admin.post("/settings/clusters/default/check", follow_redirects=True))
    assert [category for category, _ in default] == ["success"] and "default: Connected: pve-manager" in default[0][1]
    failed = admin.post("/settings/clusters/gone/check")
    assert failed.status_code == 302
    (category, message), = toasts(admin.get("/settings/clusters"))
    assert category == "danger" and message == f"gone: Cannot reach Proxmox at 127.0.0.1:{port}: connection refused"
    assert admin.post("/settings/clusters/nosuch/check").status_code == 404
    _db.session.expire_all()
    outcomes = [(e.action, e.target, e.outcome) for e in _db.session.scalars(
        _db.select(AuditEntry).filter_by(action="cluster.check").order_by(AuditEntry.id))]
    assert outcomes == [("cluster.check", "cluster lab", "succeeded"),
                        ("cluster.check", "cluster default", "succeeded"),
                        ("cluster.check", "cluster gone", "failed"),
                        ("cluster.check", "cluster nosuch", "failed")]


def secret_of(name: str) -> str:
    _db.session.expire_all()
    cluster = _db.session.scalar(_db.select(Cluster).filter_by(name=name))
    return get_vault().decrypt(cluster.token_secret_encrypted)


def test_editing_keeps_a_secret_left_empty_and_replaces_a_typed_one(admin, lab, tmp_path):
    admin.post("/settings/clusters", data=form_for(lab, tmp_path), follow_redirects=True)
    edit = form_for(lab, tmp_path, token_secret="", ssh_password="", ssh_port="2222", ssh_hosts="lab1=10.0.0.11")
    del edit["name"]
    response = admin.post("/settings/clusters/lab/edit", data=edit, follow_redirects=True)
    assert ("success", "Cluster “lab” saved.") in toasts(response)
    assert "root@…:2222" in response.text
    assert secret_of("lab") == LAB_SECRET
    _db.session.expire_all()
    cluster = _db.session.scalar(_db.select(Cluster).filter_by(name="lab"))
    assert cluster.ssh_hosts == "lab1=10.0.0.11" and get_vault().decrypt(cluster.ssh_password_encrypted) == SSH_SECRET
    assert toasts(admin.post("/settings/clusters/lab/check", follow_redirects=True))[0][0] == "success"

    refused = admin.post("/settings/clusters/lab/edit", data={**edit, "host": "bad host"})
    assert refused.status_code == 200 and "“bad host” is not a host name or IP address." in html.unescape(refused.text)
    _db.session.expire_all()
    assert _db.session.scalar(_db.select(Cluster.host).filter_by(name="lab")) == lab.host

    admin.post("/settings/clusters/lab/edit", data={**edit, "token_secret": "a-wrong-secret"}, follow_redirects=True)
    assert secret_of("lab") == "a-wrong-secret"
    (category, message), = toasts(admin.post("/settings/clusters/lab/check", follow_redirects=True))
    assert category == "danger" and "Connected" not in message  # the new secret is the one Proxmox was asked with


def test_the_default_cluster_is_not_edited_here(admin):
    for response in (admin.get("/settings/clusters/default/edit", follow_redirects=True),
                     admin.post("/settings/clusters/default/edit", data={"host": "10.0.0.1"}, follow_redirects=True)):
        assert toasts(response) == [("danger", "The default cluster is set by the PROXBOARD_PVE_* and "
                                               "PROXBOARD_SSH_* environment variables; change them there.")]
    assert admin.get("/settings/clusters/nosuch/edit").status_code == 404


def test_removal_asks_first_then_forgets_the_records_and_leaves_the_guests(admin, lab, tmp_path):
    admin.post("/settings/clusters", data=form_for(lab, tmp_path), follow_redirects=True)
    admin.get("/")  # the dashboard records lab's guests
    lab_id = _db.session.scalar(_db.select(Cluster.id).filter_by(name="lab"))
    record = Container.current(min(lab.containers), lab_id)
    make_services(record, 2)
    make_event(record, message="kept until the cluster goes")
    confirm = admin.get("/settings/clusters/lab/remove")
    assert confirm.status_code == 200
    assert f'data-testid="records">{len(lab.containers)} container records<' in confirm.text
    assert "stay in Proxmox" in confirm.text and names() == ["default", "lab"]
    response = admin.post("/settings/clusters/lab/remove", follow_redirects=True)
    assert toasts(response) == [("success", f"Cluster “lab” removed; {len(lab.containers)} container records "
                                            "forgotten. Its guests are still in Proxmox.")]
    assert names() == ["default"] and len(lab.containers) == 4
    records = _db.select(func.count()).select_from(Container).where(Container.cluster_id == lab_id)
    assert _db.session.scalar(records) == 0
    assert _db.session.scalar(_db.select(func.count()).select_from(Service)) == 0
    assert admin.get(f"/clusters/lab/containers/{min(lab.containers)}").status_code == 404
    assert not {cluster for cluster, _ in cards(admin.get("/?per_page=100").text)} - {"default"}
    _db.session.expire_all()
    entry = _db.session.scalar(_db.select(AuditEntry).filter_by(action="cluster.remove"))
    assert (entry.target, entry.outcome) == ("cluster lab", "succeeded")
    assert admin.get("/settings/clusters/lab/remove").status_code == 404
    assert admin.post("/settings/clusters/lab/remove").status_code == 404


def test_the_default_cluster_cannot_be_removed(admin):
    asked = admin.get("/settings/clusters/default/remove", follow_redirects=True)
    assert toasts(asked) == [("danger", "The default cluster comes from the environment and cannot be removed.")]
    removed = admin.post("/settings/clusters/default/remove", follow_redirects=True)
    assert toasts(removed) == [("danger", "The default cluster comes from the environment and cannot be removed.")]
    assert names() == ["default"]


@pytest.mark.parametrize(("setting", "shown"),
                         [(False, "off"), ("no", "off"), ("1", "system CAs"), (None, "system CAs")])
def test_the_environments_certificate_check_reads_as_its_proxmox_client_reads_it(admin, app, setting, shown):
    app.config["PVE_VERIFY_SSL"] = setting  # what the list reads; the client was built at startup
    page = admin.get("/settings/clusters").text
    cell = re.search(r'data-cluster="default".*?data-testid="verify">(.*?)</td>', page, re.S).group(1)
    assert shown in cell and "CA bundle" not in cell
