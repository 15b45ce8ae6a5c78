"""What real clusters do to Proxboard, on PVE 9.1 and 8.4: reused VMIDs, guests deleted behind its back,
offline nodes, tokens with few privileges, HA errors, IPv6-only guests and Proxmox templates."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.events import record_event
from app.models import Container, Event, Service
from tests.fixtures.factories import make_container
from tests.htmx import HX, toast_of


@pytest.fixture
def app_overrides() -> dict:
    """Sync the inventory on every render, so each step of a test is recorded at once."""
    return {"SNAPSHOT_SECONDS": 0}


def card(html: str, vmid: int) -> str:
    match = re.search(rf'<div class="col" id="ct-{vmid}".*?(?=<div class="col" id="ct-|\Z)', html, re.S)
    assert match, f"no card for CT {vmid}"
    return match.group(0)


def records(db, vmid: int) -> list[Container]:
    db.session.expire_all()
    return list(db.session.scalars(select(Container).where(Container.vmid == vmid).order_by(Container.id)))


def replace_guest(pve, vmid: int, **kw):
    """Destroy a guest and create another with the same VMID, as someone in the Proxmox UI would."""
    with pve.cluster.lock:
        del pve.cluster.containers[vmid]
    return pve.add_container(vmid=vmid, **kw)


# -- container identity ----------------------------------------------------------------------------

def test_a_reused_vmid_is_a_new_container_that_never_shows_the_old_ones_history(logged_in, client, db, pve):
    client.get("/")
    (old,) = records(db, 104)
    record_event(old.id, "log", "old guest's private history")
    db.session.add(Service(container_id=old.id, name="old-db", status="running"))
    db.session.commit()

    replace_guest(pve, 104, node="pve3", hostname="newcomer", status="running")
    html = card(client.get("/").text, 104)
    assert "newcomer" in html and "pve3" in html and "unmanaged" in html
    events = client.get("/containers/104/events").text
    assert "private history" not in events
    assert "old-db" not in client.get("/containers/104/services").text

    archived, current = records(db, 104)
    assert (archived.id, archived.lifecycle) == (old.id, "deleted") and current.lifecycle == "ready"
    kept = [e.message for e in db.session.scalars(select(Event).where(Event.container_id == old.id))]
    assert "old guest's private history" in kept and any("now belongs to another guest" in m for m in kept)


def test_same_vmid_and_name_recreated_is_told_apart_by_its_mac_addresses(logged_in, client, db, pve):
    for _ in range(4):  # fingerprints are learnt a few guests per sync
        client.get("/")
    (old,) = records(db, 100)
    assert old.fingerprint
    name = pve.containers[100].hostname
    replace_guest(pve, 100, node="pve1", hostname=name, status="running",
                  net0="name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AB:CD:EF,ip=dhcp,type=veth")
    for _ in range(4):  # re-checked in rotation
        client.get("/")
    archived, current = records(db, 100)
    assert archived.lifecycle == "deleted" and current.fingerprint == "bc:24:11:ab:cd:ef"


def test_a_renamed_guest_keeps_its_record_and_history(logged_in, client, db, pve):
    for _ in range(4):
        client.get("/")
    (record,) = records(db, 100)
    assert record.fingerprint
    pve.containers[100].hostname = "renamed-in-proxmox"
    assert "renamed-in-proxmox" in card(client.get("/").text, 100)
    (same,) = records(db, 100)
    assert same.id == record.id and same.lifecycle == "ready"


def test_a_guest_deleted_outside_proxboard_is_shown_gone_until_cleared(logged_in, client, db, pve):
    client.get("/")
    with pve.cluster.lock:
        del pve.cluster.containers[104]
    html = card(client.get("/").text, 104)
    assert 'data-status="gone"' in html and "Proxmox no longer has this container" in html
    assert 'data-action="clear"' in html and 'data-action="delete"' not in html
    detail = client.get("/containers/104")
    assert detail.status_code == 200 and 'data-testid="gone-note"' in detail.text

    response = logged_in.post("/containers/104/clear", data={"next": "/"})
    assert response.status_code == 302
    assert 'id="ct-104"' not in client.get("/").text
    assert [r.lifecycle for r in records(db, 104)] == ["deleted"]
    assert client.get("/containers/104").status_code == 404


def test_the_detail_page_of_a_guest_deleted_outside_confirms_it_gone(logged_in, client, db, pve):
    client.get("/")
    with pve.cluster.lock:
        del pve.cluster.containers[105]
    detail = client.get("/containers/105")
    assert detail.status_code == 200 and 'data-testid="gone-note"' in detail.text
    assert [r.lifecycle for r in records(db, 105)] == ["gone"]


def test_the_wizard_proposes_a_freed_vmid_and_a_new_record_holds_it(logged_in, client, db, pve):
    from app.containers.inventory import propose_vmid, release_vmid, vmid_available

    client.get("/")
    with pve.cluster.lock:
        del pve.cluster.containers[104]
    client.get("/")  # confirmed gone
    assert vmid_available(104)
    make_container(200, lifecycle="creating")
    pve.next_id_range = None
    assert propose_vmid() == pve.cluster.next_free_vmid()
    release_vmid(104)
    make_container(104, hostname="fresh", lifecycle="creating")
    assert [r.lifecycle for r in records(db, 104)] == ["deleted", "creating"]


# -- partial answers ---------------------------------------------------------------------------------

def test_a_guest_hidden_from_the_token_is_not_deleted_and_comes_back(logged_in, client, db, pve):
    client.get("/")
    everything_but_105 = {"/vms": ["VM.Audit", "VM.PowerMgmt"], "/vms/105": [], "/": ["Sys.Audit"]}
    pve.set_token_privileges(everything_but_105)
    html = card(client.get("/").text, 105)
    assert 'data-testid="stale-reason"' in html and "VM.Audit" in html
    assert [r.lifecycle for r in records(db, 105)] == ["ready"]
    pve.set_token_privileges(None)
    assert 'data-testid="stale-reason"' not in card(client.get("/").text, 105)


def test_no_guest_visible_says_the_token_may_lack_vm_audit_and_loses_nothing(logged_in, client, db, pve):
    client.get("/")
    known = len(pve.containers)
    pve.set_token_privileges({"/": ["Sys.Audit"]})
    html = client.get("/").text
    assert 'data-testid="hidden-banner"' in html and "VM.Audit" in html
    assert 'data-testid="proxmox-banner"' not in html  # Proxmox answered: it is not "unreachable"
    assert 'data-status="gone"' not in html
    pve.set_token_privileges(None)
    html = client.get("/").text
    assert 'data-testid="hidden-banner"' not in html and 'data-status="gone"' not in html
    assert len(re.findall(r'<div class="col" id="ct-', html)) == min(known, 24)


# -- offline node ----------------------------------------------------------------------------------

def test_an_offline_node_keeps_its_guests_last_known_state_and_disables_their_actions(logged_in, client, db, pve):
    client.get("/")
    guest = next(ct for ct in pve.containers.values() if ct.node == "pve2" and ct.hostname and ct.running
                 and not ct.ha and not ct.lock)
    pve.faults.set_node_offline("pve2")
    html = client.get("/").text
    banner = re.search(r'data-testid="node-offline-banner" data-node="pve2".*?</div>', html, re.S)
    assert banner and "Node <strong>pve2</strong> is offline since" in banner.group(0)
    assert 'data-testid="proxmox-banner"' not in html and "Cannot reach Proxmox" not in html
    html = card(html, guest.vmid)
    assert guest.hostname in html and 'data-status="running"' in html
    assert "Node pve2 is offline" in html and 'title="Node pve2 is offline' in html  # actions disabled, with why
    (record,) = records(db, guest.vmid)
    assert record.snapshot["name"] == guest.hostname and record.snapshot["status"] == "running"

    detail = client.get(f"/containers/{guest.vmid}")
    assert detail.status_code == 200 and "Node pve2 is offline" in detail.text
    assert "Cannot reach Proxmox" not in detail.text
    pve.faults.node_offline.clear()
    assert 'data-testid="node-offline-banner"' not in client.get("/").text


# -- permissions -------------------------------------------------------------------------------------

def test_a_missing_privilege_is_named_and_never_called_unreachable(logged_in, client, pve):
    pve.set_token_privileges({"/vms": ["VM.Audit"], "/": ["Sys.Audit"]})
    response = logged_in.post("/containers/104/actions/start", data={"view": "card", "next": "/"}, headers=HX)
    message = toast_of(response)["message"]
    assert message.startswith("Start of ") and "lacks VM.PowerMgmt on /vms/104" in message
    assert "reach" not in message.lower()
    html = client.get("/").text
    assert 'data-testid="proxmox-banner"' not in html
    assert pve.containers[104].status == "stopped"


def test_about_page_lists_the_token_privileges_and_what_a_missing_one_disables(logged_in, client, pve):
    pve.set_token_privileges({"/vms": ["VM.Audit", "VM.PowerMgmt"], "/": ["Sys.Audit"]})
    html = client.get("/about").text
    assert f"(release {pve.pve_version})" in html
    assert re.search(r'data-privilege="VM.PowerMgmt" data-state="granted"', html)
    missing = re.search(r'data-privilege="VM.Allocate" data-state="missing">.*?</tr>', html, re.S).group(0)
    assert "Delete is refused" in missing
    privileged = re.search(r'data-privilege="Sys.Modify" data-state="missing">.*?</tr>', html, re.S).group(0)
    assert "Privileged containers (PVE 9.x)" in privileged and "creating a privileged container is refused" in privileged


# -- HA, templates, networks, application containers -------------------------------------------------

def test_a_guest_in_ha_error_shows_it_and_start_says_why_it_will_not_run(logged_in, client, pve):
    pve.containers[104].ha_state = "error"
    html = card(client.get("/").text, 104)
    assert 'data-ha-state="error"' in html and "HA: error" in html
    assert "HA error is cleared" in html  # the disabled Start says why
    response = logged_in.post("/containers/104/actions/start", data={"view": "card", "next": "/"}, headers=HX)
    assert "will not start it until the HA error is cleared" in toast_of(response)["message"]
    assert pve.containers[104].status == "stopped"


def test_a_proxmox_template_cannot_be_started_and_its_delete_says_template(logged_in, client, pve):
    detail = client.get("/containers/103").text
    assert 'data-testid="template-note"' in detail and "Delete template" in detail
    response = logged_in.post("/containers/103/actions/start", data={"view": "card", "next": "/"}, headers=HX)
    assert "template cannot be started" in toast_of(response)["message"]
    confirm = client.get("/containers/103/actions/delete").text
    assert "Delete the template" in confirm


def test_ipv6_only_and_dual_stack_guests_show_their_addresses(logged_in, client, pve):
    pve.add_container(vmid=160, node="pve1", status="running", hostname="v6only",
                      net0="name=eth0,bridge=vmbr0,ip6=auto,hwaddr=BC:24:11:00:16:00,type=veth")
    pve.add_container(vmid=161, node="pve1", status="running", hostname="dual",
                      net0="name=eth0,bridge=vmbr0,ip=dhcp,hwaddr=BC:24:11:00:16:01,type=veth",
                      net1="name=eth1,bridge=vmbr0,ip6=2001:db8:5::10/64,gw6=2001:db8:5::1,hwaddr=BC:24:11:00:16:02")
    html = client.get("/containers/160").text
    network = re.search(r'data-config="network">(.*?)</dd>', html, re.S).group(1)
    assert "SLAAC" in network and "2001:db8:" in network
    assert re.search(r'data-family="ipv4">IPv4:\s*<span class="text-body-secondary">none', network)
    ip = re.search(r'data-fact="ip"[^>]*>([^<]+)<', html).group(1)
    assert ip.startswith("2001:db8:") and "/" not in ip
    dual = re.search(r'data-config="network">(.*?)</dd>', client.get("/containers/161").text, re.S).group(1)
    dual = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dual))
    assert "IPv4: DHCP (10." in dual and "IPv6: 2001:db8:5::10/64 · gateway 2001:db8:5::1" in dual


def test_an_application_container_shows_its_entrypoint_and_variable_names_only(logged_in, client, pve):
    if pve.pve_version.startswith("8."):
        pytest.skip("application containers (entrypoint, env) arrived in PVE 9.1")
    pve.add_container(vmid=170, node="pve1", status="running", hostname="whoami", ostype="unmanaged",
                      entrypoint="/usr/bin/whoami --port 8080", env="PORT=8080\0API_KEY=s3cr3t-value")
    html = client.get("/containers/170").text
    application = re.search(r'data-config="application">(.*?)</dd>', html, re.S).group(1)
    assert "/usr/bin/whoami --port 8080" in application and "API_KEY" in application and "PORT" in application
    assert "s3cr3t-value" not in html
    assert 'data-testid="app-container"' in html
