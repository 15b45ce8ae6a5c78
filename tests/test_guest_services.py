"""Service refresh end to end: Proxmox simulator + real sshd + database rows."""
from __future__ import annotations

import logging

import pytest

from app.credentials import decrypt, reveal_service_credentials
from app.extensions import db as _db
from app.models import ContainerTemplate, Credential, Container, Event, Operation, Service, TemplateService
from app.proxmox import get_proxmox
from app.guest_services import RefreshRefused, refresh_container_services, refresh_running_containers, request_refresh
from app.ssh import open_pool
from tests.fixtures.factories import make_container, make_operation, make_template
from tests.fixtures.ssh import FakeUnit
from tests.sshsim import FakeService

PASSWORD = "db-pass-SECRET-42"


@pytest.fixture
def app_overrides(ssh_config):
    return dict(ssh_config)


@pytest.fixture
def running(app, pve):
    """Running containers of the simulator, as (vmid, node), sorted."""
    return sorted((ct.vmid, ct.node) for ct in get_proxmox().list_containers() if ct.is_running)


def add_container(db, vmid, node, template=None, hostname=None) -> Container:
    return make_container(vmid, node, hostname=hostname or f"ct{vmid}", template=template)


def web_template(db) -> ContainerTemplate:
    return make_template(services=[TemplateService(name="site", unit="nginx.service", port=80, scheme="http",
                                                   web_path="/admin")])


def services_of(db, container_id) -> dict[str, Service]:
    db.session.expire_all()
    return {s.name: s for s in db.session.scalars(db.select(Service).filter_by(container_id=container_id))}


def test_refresh_stores_services_links_and_encrypted_credentials(db, ssh_containers, running):
    vmid, node = running[0]
    ct = ssh_containers.container(vmid)
    ct.set_units([
        FakeUnit("nginx.service", child_ports=[80]),
        FakeUnit("postgresql@15-main.service", ports=[("127.0.0.1", 5432)]),
        FakeUnit("ssh.service", ports=[22]),
        FakeUnit("worker.service", active="activating", sub="start-pre"),
        FakeUnit("broken.service", active="failed", sub="failed"),
        FakeUnit("stopped-app.service", active="inactive", sub="dead"),
    ])
    ct.set_credentials("postgresql", {"POSTGRES_USER": "admin", "POSTGRES_PASSWORD": PASSWORD})
    container = add_container(db, vmid, node, web_template(db))

    result = refresh_container_services(container.id)

    assert result.ok, result.error
    services = services_of(db, container.id)
    ip = next(a for i in get_proxmox().container_interfaces(node, vmid) for a in i.ipv4 if not a.startswith("127."))
    assert services["nginx"].web_url == f"http://{ip}/admin" and services["nginx"].status == "running"
    assert services["ssh"].kind == "system"
    assert services["worker"].status == "activating"
    assert services["broken"].status == "failed"
    assert services["stopped-app"].status == "stopped"
    assert all(s.checked_at for s in services.values())
    credentials = {c.key: c for c in services["postgresql@15-main"].credentials}
    assert decrypt(credentials["POSTGRES_PASSWORD"].value_encrypted) == PASSWORD
    raw = db.session.execute(db.text("SELECT value_encrypted FROM credentials")).scalars().all()
    assert raw and all(PASSWORD.encode() not in bytes(value) for value in raw)


def test_vanished_services_and_credentials(db, ssh_containers, running):
    vmid, node = running[0]
    ct = ssh_containers.container(vmid)
    ct.set_units([FakeUnit("app.service", ports=[8000]), FakeUnit("other.service")])
    ct.set_credentials("app", {"TOKEN": "t1"})
    container = add_container(db, vmid, node)
    refresh_container_services(container.id)

    ct.set_units([FakeUnit("app.service", ports=[8000])])
    ct.remove_credentials("app")
    refresh_container_services(container.id)

    services = services_of(db, container.id)
    assert services["other"].status == "stopped" and services["other"].last_error
    app_cred = services["app"].credentials[0]
    assert app_cred.stale and decrypt(app_cred.value_encrypted) == "t1"

    ct.set_credentials("app", {"TOKEN": "t2"})
    refresh_container_services(container.id)
    app_cred = services_of(db, container.id)["app"].credentials[0]
    assert not app_cred.stale and decrypt(app_cred.value_encrypted) == "t2"


def test_stopped_container_marks_services_stopped_without_ssh(db, ssh_containers, pve, running):
    stopped = next(ct for ct in get_proxmox().list_containers() if not ct.is_running and not ct.template)
    container = add_container(db, stopped.vmid, stopped.node)
    db.session.add(Service(container_id=container.id, name="nginx", status="running"))
    db.session.commit()
    assert refresh_container_services(container.id).ok
    assert services_of(db, container.id)["nginx"].status == "stopped"


def test_unreachable_node_marks_unknown_and_records_error(app, db, ssh_containers, running):
    vmid, node = running[0]
    container = add_container(db, vmid, node)
    db.session.add(Service(container_id=container.id, name="nginx", status="running"))
    db.session.commit()
    app.config["SSH_KNOWN_HOSTS"] = str(app.instance_path) + "/nothing"
    result = refresh_container_services(container.id)
    assert not result.ok and "not trusted" in result.error
    nginx = services_of(db, container.id)["nginx"]
    assert nginx.status == "unknown" and "flask ssh trust" in nginx.last_error


def test_malformed_output_does_not_break_other_services(db, ssh_containers, running, caplog):
    vmid, node = running[0]
    ct = ssh_containers.container(vmid)
    ct.set_units([FakeUnit("nginx.service", ports=[80])])
    ss = (ct.sim / "ss.txt").read_text() + "LISTEN 0 511 0.0.0.0:\n"
    units = (ct.sim / "units.txt").read_text() + "b@d$(x).service loaded active running x\n"
    ct.write_raw(ss=ss, units=units)
    ct.set_credentials("nginx", "USER=web\nnot a pair\n")
    container = add_container(db, vmid, node)
    assert refresh_container_services(container.id).ok
    nginx = services_of(db, container.id)["nginx"]
    assert nginx.port == 80 and [c.key for c in nginx.credentials] == ["USER"]
    assert "skipping unreadable ss line" in caplog.text and "skipping unreadable unit line" in caplog.text


def test_refresh_job_updates_the_operation(db, ssh_containers, running):
    vmid, node = running[0]
    ssh_containers.container(vmid).set_units([FakeUnit("nginx.service", ports=[80])])
    container = add_container(db, vmid, node)
    operation = request_refresh(container.id, "alice")  # immediate mode: runs inline, in its own context
    db.session.expire_all()
    operation = db.session.get(Operation, operation.id)
    assert operation.action == "refresh-services" and operation.state == "succeeded"
    assert operation.finished_at and operation.requested_by == "alice"
    assert services_of(db, container.id)["nginx"].status == "running"


def test_refresh_job_failure_is_reported(app, db, ssh_containers, running):
    vmid, node = running[0]
    container = add_container(db, vmid, node)  # no fake container on the node: pct exits 2
    operation = request_refresh(container.id, "alice")
    db.session.expire_all()
    operation = db.session.get(Operation, operation.id)
    assert operation.state == "failed" and "does not exist" in operation.error


def test_refresh_refused_while_another_operation_is_pending(db, running):
    vmid, node = running[0]
    container = add_container(db, vmid, node)
    make_operation(container)
    with pytest.raises(RefreshRefused):
        request_refresh(container.id, "alice")


def test_batch_uses_one_connection_per_node(db, ssh_containers, running, ssh_server, monkeypatch):
    for vmid, node in running:
        ssh_containers.container(vmid).set_units([FakeUnit("nginx.service", ports=[80])])
        add_container(db, vmid, node)
    with open_pool() as pool:
        results = refresh_running_containers(pool=pool)
        assert len(pool._connections) == len({node for _v, node in running})
    assert len(results) == len(running) and all(r.ok for r in results)
    # checked several at a time over each connection, every container got its own result
    db.session.expire_all()
    stored = db.session.scalars(db.select(Service).where(Service.name == "nginx")).all()
    assert sorted(service.container.vmid for service in stored) == sorted(vmid for vmid, _ in running)
    assert refresh_running_containers(due_only=True) == []  # all fresh


def test_reveal_records_an_event_without_values(db, ssh_containers, running, caplog):
    caplog.set_level(logging.DEBUG)
    vmid, node = running[0]
    ct = ssh_containers.container(vmid)
    ct.set_units([FakeUnit("app.service")])
    ct.set_credentials("app", {"PASSWORD": PASSWORD})
    container = add_container(db, vmid, node)
    refresh_container_services(container.id)
    service = services_of(db, container.id)["app"]
    assert reveal_service_credentials(service.id, "alice") == [("PASSWORD", PASSWORD, False)]
    event = db.session.scalars(db.select(Event).filter_by(container_id=container.id)).one()
    assert event.message == "Credentials of app revealed by alice" and event.type == "log"
    assert PASSWORD not in str(event.meta) and PASSWORD not in caplog.text
    assert db.session.scalar(db.select(db.func.count()).select_from(Credential)) == 1


def test_periodic_check_refreshes_due_running_containers(db, ssh_containers, running):
    from app.guest_services.tasks import check_services_task

    vmid, node = running[0]
    ssh_containers.container(vmid).set_units([FakeUnit("nginx.service", ports=[80])])
    container = add_container(db, vmid, node)
    check_services_task()  # immediate mode: the task runs inline
    nginx = services_of(db, container.id)["nginx"]
    assert nginx.status == "running"
    checked = nginx.checked_at
    check_services_task()  # checked within SERVICE_CHECK_SECONDS: left alone
    assert services_of(db, container.id)["nginx"].checked_at == checked


# -- guests that are not Debian --------------------------------------------------------------------

ALPINE_SERVICES = [
    FakeService("sshd", ports=[22, ("::", 22)]), FakeService("crond"), FakeService("nginx", child_ports=[80]),
    FakeService("myapp", state="crashed"), FakeService("hostname", runlevel="boot"),
]


def alpine(ssh_containers, vmid, ports, old_ps=False):
    ct = ssh_containers.container(vmid)
    ct.make_alpine(ports=ports, old_ps=old_ps)
    ct.set_openrc(ALPINE_SERVICES)
    return ct


def listed_container(db, vmid, node, template):
    """A record the dashboard takes for the simulator's guest (same VMID and name)."""
    name = next(ct.name for ct in get_proxmox().list_containers() if ct.vmid == vmid)
    return add_container(db, vmid, node, template, hostname=name)


def services_tab(client, vmid):
    html = client.get(f"/containers/{vmid}/services").text
    cards = {}
    for chunk in html.split('service-card" data-service="')[1:]:
        cards[chunk.split('"', 1)[0]] = chunk.split('<div class="col">', 1)[0]
    return html, cards


def test_alpine_guest_without_ss_or_port_tool_shows_the_gap_not_degraded(db, ssh_containers, running, logged_in, client):
    vmid, node = running[0]
    alpine(ssh_containers, vmid, ports=None)
    container = listed_container(db, vmid, node, web_template(db))
    operation = request_refresh(container.id, "alice")
    db.session.expire_all()
    assert db.session.get(Operation, operation.id).state == "succeeded"

    html, cards = services_tab(client, vmid)
    note = html.split('data-testid="service-gaps"', 1)[1].split("</p>", 1)[0]
    assert "Could not check:" in note and "listening ports (no ss, netstat or /proc/net/tcp)" in note
    nginx = cards["nginx"]
    assert 'data-testid="service-status">running<' in nginx and "degraded" not in nginx  # its port could not be checked: not its fault
    assert "port 80 not checked: no ss, netstat or /proc/net/tcp" in nginx and "text-danger" not in nginx
    assert 'data-testid="web-ui"' in nginx and "/admin" in nginx
    assert 'data-testid="service-status">failed<' in cards["myapp"] and "OpenRC reports crashed" in cards["myapp"]

    assert {"sshd", "crond", "hostname"} <= set(cards)
    event = db.session.scalars(db.select(Event).filter_by(container_id=container.id)).one()
    assert event.message == "Service check: could not check listening ports (no ss, netstat or /proc/net/tcp)"

    # the guest gains netstat: the next check sees the port and the note goes away
    alpine(ssh_containers, vmid, ports="netstat")
    refresh_container_services(container.id)
    html, cards = services_tab(client, vmid)
    assert 'data-testid="service-gaps"' not in html and "not checked" not in cards["nginx"]
    assert "port 22/tcp" in cards["sshd"]
    messages = [e.message for e in db.session.scalars(db.select(Event).filter_by(container_id=container.id))]
    assert "Service check: everything could be checked again" in messages


@pytest.mark.parametrize(("ports", "old_ps"), [("netstat", False), ("ss-old", False), ("proc", True)])
def test_alpine_guest_ports_map_to_openrc_services(db, ssh_containers, running, logged_in, client, ports, old_ps):
    vmid, node = running[0]
    alpine(ssh_containers, vmid, ports=ports, old_ps=old_ps)
    container = listed_container(db, vmid, node, web_template(db))
    assert refresh_container_services(container.id).ok
    services = services_of(db, container.id)
    assert services["nginx"].status == "running" and services["nginx"].port == 80  # a grandchild holds it
    assert services["nginx"].last_error is None and services["nginx"].web_url.endswith("/admin")
    assert services["sshd"].port == 22 and services["sshd"].kind == "system"
    assert services["myapp"].status == "failed"
    html, _cards = services_tab(client, vmid)
    assert 'data-testid="service-gaps"' not in html



def test_demo_says_why_its_web_ui_link_cannot_open(app, db, ssh_containers, running, logged_in, client):
    vmid, node = running[0]
    alpine(ssh_containers, vmid, ports=None)
    container = listed_container(db, vmid, node, web_template(db))
    request_refresh(container.id, "alice")
    app.config["DEMO_MODE"] = True
    nginx = services_tab(client, vmid)[1]["nginx"]
    assert 'data-testid="web-ui-demo-note"' in nginx and "private to the demo" in nginx
    assert 'target="_blank"' not in nginx  # no link that would only time out
