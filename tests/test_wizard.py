"""The creation wizard as a person walks it: steps, validation, Back, redirects, server-side state."""
from __future__ import annotations

import re

import pytest

from app.container_templates.services import add_package, add_script, create_template
from app.models import Container, Operation, WizardDraft

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ8h4bG0u6r5gM4pW1Qm3lq8m0wVh2bqC2G1m0O8lq3b alice@laptop"


@pytest.fixture
def template(app, db):
    """A template with packages in two managers and three scripts."""
    t = create_template({"name": "web", "description": "nginx site", "cores": 2, "memory": 1024, "swap": 256,
                         "disk": 10, "tags": "web;prod", "ostemplate": "debian-12", "unprivileged": True,
                         "nesting": True, "keyctl": False, "fuse": False, "storage": None, "bridge": None})
    add_package(t, "apt", "nginx", None)
    add_package(t, "pip", "requests", "2.32.3")
    for name in ("first", "second", "third"):
        add_script(t, name, f"log_info {name} ran\n")
    db.session.commit()
    return t


def configure_data(**overrides) -> dict:
    data = {"node": "pve1", "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            "hostname": "web01", "vmid": "900", "password": "s3cret-pass", "password_confirm": "s3cret-pass",
            "ssh_public_keys": "", "cores": "2", "memory": "1024", "swap": "256", "disk": "10",
            "storage": "local-lvm", "bridge": "vmbr0", "ip_mode": "dhcp", "ip_cidr": "", "gateway": "",
            "nameserver": "", "unprivileged": "y", "tags": "web prod", "next": "1"}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def walk_to(logged_in, template_choice, until="review", **configure):
    """POST each step up to ``until`` (exclusive); returns the last response."""
    response = logged_in.post("/containers/create/template", {"template": str(template_choice), "next": "1"})
    assert response.status_code == 302, response.text
    if until == "configure":
        return response
    response = logged_in.post("/containers/create/configure", configure_data(**configure))
    assert response.status_code == 302, _errors(response.text)
    if until == "packages":
        return response
    response = logged_in.post("/containers/create/packages", {"groups": ["apt", "pip"], "next": "1"})
    assert response.status_code == 302, _errors(response.text)
    if until == "scripts":
        return response
    response = logged_in.post("/containers/create/scripts", {"enabled": [], "next": "1"})
    assert response.status_code == 302
    return response


def _errors(html: str) -> list[str]:
    return re.findall(r'<div class="invalid-feedback">([^<]+)</div>', html)


def draft_of(db) -> WizardDraft:
    db.session.expire_all()
    return db.session.scalars(db.select(WizardDraft).order_by(WizardDraft.created_at.desc())).first()


def test_header_button_opens_the_first_step(logged_in, client):
    page = client.get("/")
    assert 'href="/containers/create"' in page.text
    response = client.get("/containers/create")
    assert response.headers["Location"].endswith("/containers/create/template")


def test_template_step_lists_cards_and_searches(logged_in, client, template):
    page = client.get("/containers/create/template")
    assert "Start from scratch" in page.text and "web" in page.text
    assert 'aria-current="step"' in page.text
    assert "web" not in client.get("/containers/create/template?q=postgres").text.split("template-cards")[1]
    assert "nginx site" in client.get("/containers/create/template?tag=prod").text


def test_later_step_redirects_to_first_incomplete(logged_in, client, template):
    assert client.get("/containers/create/review").headers["Location"].endswith("/template")
    walk_to(logged_in, template.id, until="configure")
    assert client.get("/containers/create/scripts").headers["Location"].endswith("/configure")


def test_configure_prefills_from_template_and_proxmox(logged_in, client, template, pve):
    walk_to(logged_in, template.id, until="configure")
    page = client.get("/containers/create/configure").text
    assert re.search(r'id="cores"[^>]*value="2"', page)
    assert re.search(r'id="memory"[^>]*value="1024"', page)
    next_id = min(set(range(100, 2000)) - set(pve.containers))
    assert re.search(rf'id="vmid"[^>]*value="{next_id}"', page)
    assert "debian-12-standard" in page and "selected" in page
    assert "local-lvm" in page and "vmbr0" in page
    assert "GiB free" in page  # free memory per node
    # Only storages holding container disks are offered.
    assert not re.search(r'<option[^>]*value="local"', page.split('id="storage"')[1].split("</select>")[0])


@pytest.mark.parametrize(("field", "value", "message"), [
    ("hostname", "bad_host!", "letters, digits and hyphens"),
    ("hostname", "a" * 64, "longer than 63"),
    ("vmid", "99", "from 100"),
    ("vmid", "1000000000", "from 100"),
    ("memory", "8", "At least 16"),
    ("cores", "0", "Between 1 and 8192"),
    ("swap", "-1", "Cannot be negative"),
    ("disk", "0", "At least 1 GiB"),
    ("tags", "ok -bad", "Not a valid tag"),
    ("password", "abc", "At least 5"),
    ("password_confirm", "different", "passwords differ"),
    ("ssh_public_keys", "ssh-rsa notakey", "not an OpenSSH public key"),
    ("nameserver", "dns.example", "not an IP address"),
])
def test_configure_field_errors(logged_in, client, template, field, value, message):
    walk_to(logged_in, template.id, until="configure")
    response = logged_in.post("/containers/create/configure", configure_data(**{field: value}))
    assert response.status_code == 200
    assert any(message in error for error in _errors(response.text)), _errors(response.text)


def test_static_ip_rules(logged_in, client, template):
    walk_to(logged_in, template.id, until="configure")
    post = lambda **kw: logged_in.post("/containers/create/configure", configure_data(ip_mode="static", **kw))
    assert "static address is required" in " ".join(_errors(post().text))
    assert "prefix length" in " ".join(_errors(post(ip_cidr="10.0.0.5").text))
    assert "inside 10.0.0.0/24" in " ".join(_errors(post(ip_cidr="10.0.0.5/24", gateway="10.0.1.1").text))
    assert post(ip_cidr="10.0.0.5/24", gateway="10.0.0.1").status_code == 302


def test_password_or_key_required_and_key_accepted(logged_in, client, template):
    walk_to(logged_in, template.id, until="configure")
    response = logged_in.post("/containers/create/configure", configure_data(password="", password_confirm=""))
    assert "password or an SSH public key" in " ".join(_errors(response.text))
    response = logged_in.post("/containers/create/configure",
                              configure_data(password="", password_confirm="", ssh_public_keys=SSH_KEY))
    assert response.status_code == 302


def test_a_password_survives_another_fields_error(logged_in, client, db, template, pve):
    walk_to(logged_in, template.id, until="configure")
    taken = next(iter(pve.containers))
    response = logged_in.post("/containers/create/configure", configure_data(vmid=str(taken)))
    assert response.status_code == 200 and "A password is stored (encrypted) for this draft." in response.text
    assert "Proxboard wipes it once the container exists and never shows it again." in response.text
    response = logged_in.post("/containers/create/configure", configure_data(password="", password_confirm=""))
    assert response.status_code == 302  # nothing to retype


def test_start_over_returns_to_step_one(logged_in, client, template):
    walk_to(logged_in, template.id, until="packages")
    response = logged_in.post("/containers/create/cancel", {})
    assert response.headers["Location"].endswith("/containers/create/template")
    assert "The creation wizard was reset." in client.get(response.headers["Location"]).text


def test_start_from_scratch_preselects_debian_12(logged_in, client):
    logged_in.post("/containers/create/template", {"template": "scratch", "next": "1"})
    page = client.get("/containers/create/configure").text
    assert re.search(r'<option selected value="[^"]*debian-12-standard[^"]*"', page), page.split('name="ostemplate"')[1][:600]


def test_counts_read_1_core_and_2_cores(logged_in, client, template):
    from app.presenters import plural

    assert (plural(1, "core"), plural(2, "core"), plural(1.0, "core"), plural([1, 2], "script")) == (
        "1 core", "2 cores", "1 core", "2 scripts")
    walk_to(logged_in, template.id, until="review", cores="1")
    assert "1 core ·" in client.get("/containers/create/review").text


def test_vmid_in_use_is_refused(logged_in, client, template, pve):
    walk_to(logged_in, template.id, until="configure")
    taken = next(iter(pve.containers))
    response = logged_in.post("/containers/create/configure", configure_data(vmid=str(taken)))
    assert f"VMID {taken} is already in use." in _errors(response.text)


def test_unknown_choices_never_pass(logged_in, client, template):
    walk_to(logged_in, template.id, until="configure")
    for field, value in (("storage", "local"), ("bridge", "eth9"), ("ostemplate", "local:vztmpl/evil.tar.zst")):
        response = logged_in.post("/containers/create/configure", configure_data(**{field: value}))
        assert response.status_code == 200 and "Not a valid choice" in response.text


def test_password_is_stored_encrypted_never_in_the_cookie(logged_in, client, db, template):
    walk_to(logged_in, template.id, until="packages")
    draft = draft_of(db)
    assert draft.secret_encrypted and b"s3cret-pass" not in draft.secret_encrypted
    assert "s3cret-pass" not in str(draft.data)
    cookie = client.get_cookie("session")
    assert "s3cret" not in cookie.value and draft.id  # the cookie only carries the draft id
    # Back on the step: the stored password still counts, nothing to retype.
    response = logged_in.post("/containers/create/configure", configure_data(password="", password_confirm=""))
    assert response.status_code == 302


def test_abandoned_drafts_and_their_password_expire(logged_in, client, db, template):
    from datetime import timedelta

    from app.models import utcnow
    from app.wizard.tasks import expire_wizard_drafts_task

    walk_to(logged_in, template.id, until="packages")
    draft = draft_of(db)
    assert expire_wizard_drafts_task.call_local() == 0  # still fresh
    draft.updated_at = utcnow() - timedelta(hours=25)
    db.session.commit()
    assert expire_wizard_drafts_task.call_local() == 1
    db.session.expire_all()
    assert db.session.scalar(db.select(db.func.count()).select_from(WizardDraft)) == 0
    response = client.get("/containers/create/packages")  # the wizard starts over instead of failing
    assert response.status_code == 302 and response.headers["Location"].endswith("/containers/create/template")


def test_back_keeps_data_and_refresh_keeps_it(logged_in, client, template):
    walk_to(logged_in, template.id, until="configure")
    response = logged_in.post("/containers/create/configure",
                              configure_data(hostname="half-typed", memory="8", next=None, back="1"))
    assert response.headers["Location"].endswith("/template")
    page = client.get("/containers/create/configure").text
    assert 'value="half-typed"' in page and re.search(r'id="memory"[^>]*value="8"', page)
    # The invalid step is not complete: later steps stay closed.
    assert client.get("/containers/create/packages").headers["Location"].endswith("/configure")


def test_changing_template_resets_later_steps(logged_in, client, db, template):
    walk_to(logged_in, template.id, until="packages")
    logged_in.post("/containers/create/template", {"template": "scratch", "next": "1"})
    draft = draft_of(db)
    assert draft.template_id is None and draft.secret_encrypted is None
    page = client.get("/containers/create/configure").text
    assert re.search(r'id="memory"[^>]*value="512"', page) and 'value="web01"' not in page
    # Choosing the same template again keeps what was entered.
    walk_to(logged_in, "scratch", until="packages")
    logged_in.post("/containers/create/template", {"template": "scratch", "next": "1"})
    assert "configure" in draft_of(db).data["done"]


def test_change_node_without_js_rerenders_node_fields(logged_in, client, template):
    walk_to(logged_in, template.id, until="configure")
    response = logged_in.post("/containers/create/configure", configure_data(node="pve2", next=None, change_node="1"))
    assert response.status_code == 200 and not _errors(response.text)
    assert re.search(r'<option selected value="pve2">|<option value="pve2" selected>', response.text)
    fragment = client.get("/containers/create/configure/node-fields?node=pve3", headers={"HX-Request": "true"})
    assert 'id="node-fields"' in fragment.text and "<html" not in fragment.text


def test_packages_and_scripts_steps(logged_in, client, db, template):
    walk_to(logged_in, template.id, until="packages")
    page = client.get("/containers/create/packages").text
    assert "nginx" in page and "requests==2.32.3" in page
    bad = logged_in.post("/containers/create/packages", {"groups": ["apt"], "additional": "bogus:thing", "next": "1"})
    assert "unknown package manager" in bad.text
    logged_in.post("/containers/create/packages", {"groups": ["pip"], "additional": "htop\nnpm:pm2", "next": "1"})
    scripts = {s.name: str(s.id) for s in template.scripts}
    order = ",".join(scripts[n] for n in ("first", "second", "third"))
    logged_in.post("/containers/create/scripts", {"order": order, "enabled": [scripts["first"], scripts["third"]],
                                                   "move": f"{scripts['third']}:up"})
    page = client.get("/containers/create/scripts").text
    assert page.index(">third<") < page.index(">second<")
    assert not re.search(rf'value="{scripts["second"]}"[^>]*checked', page)
    logged_in.post("/containers/create/scripts", {"order": f"{scripts['first']},{scripts['third']},{scripts['second']}",
                                                   "enabled": [scripts["first"], scripts["third"]], "next": "1"})
    review = client.get("/containers/create/review").text
    assert "pip:" in review and "requests==2.32.3" in review and "pm2" in review and "nginx" not in review
    assert review.index("<li>first</li>") < review.index("<li>third</li>") and "Skipped: second" in review
    assert review.count("bi-pencil") == 4


def test_configure_never_proposes_a_vmid_proxboard_holds_for_a_creation(logged_in, client, db, template, pve):
    next_id = min(set(range(100, 2000)) - set(pve.containers))
    db.session.add(Container(vmid=next_id, node="pve1", hostname="failed-earlier", lifecycle="error"))
    db.session.commit()
    walk_to(logged_in, template.id, until="configure")
    page = client.get("/containers/create/configure").text
    proposed = int(re.search(r'id="vmid"[^>]*value="(\d+)"', page).group(1))
    assert proposed != next_id and proposed not in pve.containers
    response = logged_in.post("/containers/create/configure", configure_data(vmid=str(proposed)))
    assert response.status_code == 302, _errors(response.text)
    refused = logged_in.post("/containers/create/configure", configure_data(vmid=str(next_id)))
    assert f"VMID {next_id} is already in use." in _errors(refused.text)


def test_a_vmid_freed_in_proxmox_is_proposed_and_gets_a_record_of_its_own(logged_in, client, db, template, pve):
    client.get("/")  # Proxboard records CT 104 ...
    with pve.cluster.lock:
        del pve.cluster.containers[104]  # ... which is then destroyed in the Proxmox UI
    old = db.session.scalar(db.select(Container).where(Container.vmid == 104))
    walk_to(logged_in, template.id, until="packages", vmid="104", hostname="reborn")
    logged_in.post("/containers/create/packages", {"groups": [], "next": "1"})  # nothing inside: no SSH needed
    logged_in.post("/containers/create/scripts", {"enabled": [], "next": "1"})
    response = logged_in.post("/containers/create/review", {"draft_id": draft_of(db).id})
    assert "/containers/104/progress" in response.headers["Location"]
    db.session.expire_all()
    rows = db.session.scalars(db.select(Container).where(Container.vmid == 104).order_by(Container.id)).all()
    assert [(r.id, r.lifecycle) for r in rows][0] == (old.id, "deleted")
    assert rows[-1].hostname == "reborn" and rows[-1].id != old.id and rows[-1].managed


def test_review_refuses_taken_vmid_at_create(logged_in, client, db, template, pve):
    walk_to(logged_in, template.id)
    pve.add_container(vmid=900, node="pve1")
    draft = draft_of(db)
    response = logged_in.post("/containers/create/review", {"draft_id": draft.id})
    assert response.headers["Location"].endswith("/configure")
    assert db.session.scalar(db.select(Operation).where(Operation.action == "create")) is None
    assert draft_of(db).consumed_at is None


def test_review_warns_and_refuses_when_ssh_is_not_configured(logged_in, client, db, template):
    walk_to(logged_in, template.id)  # packages from two managers: they go in over SSH, which this app lacks
    review = client.get("/containers/create/review").text
    warning = review.split('data-testid="review-ssh-warning"')[1].split("<form")[0]
    assert "SSH to node pve1 is needed but not ready" in warning and "2 packages" in warning
    assert "PROXBOARD_SSH_KEY_FILE" in warning and "PROXBOARD_SSH_HOSTS" in warning
    assert re.search(r'<button[^>]*data-testid="create"[^>]*disabled', review)
    response = logged_in.post("/containers/create/review", {"draft_id": draft_of(db).id})
    assert response.headers["Location"].endswith("/containers/create/review")
    assert "needs SSH to node pve1 for 2 packages" in client.get("/containers/create/review").text  # the flash
    assert db.session.scalar(db.select(Operation).where(Operation.action == "create")) is None
    assert draft_of(db).consumed_at is None


def test_review_asks_to_trust_the_host_key_until_it_is(app, logged_in, client, runner, template, ssh_server, tmp_path):
    app.config.update(SSH_HOSTS={"pve1": ssh_server.host}, SSH_PORT=ssh_server.port,
                      SSH_KEY_FILE=str(ssh_server.user_key_path), SSH_KNOWN_HOSTS=str(tmp_path / "known_hosts"))
    walk_to(logged_in, template.id)
    review = client.get("/containers/create/review").text
    assert 'data-testid="review-ssh-warning"' in review and "`flask ssh trust pve1`" in review
    assert "host key of node pve1" in review
    result = runner.invoke(args=["ssh", "trust", "pve1", "--yes"])
    assert result.exit_code == 0, result.output
    review = client.get("/containers/create/review").text
    assert 'data-testid="review-ssh' not in review
    assert not re.search(r'<button[^>]*data-testid="create"[^>]*disabled', review)


def test_review_of_a_container_with_nothing_inside_needs_no_ssh(logged_in, client, template):
    walk_to(logged_in, template.id, until="packages")
    logged_in.post("/containers/create/packages", {"groups": [], "next": "1"})
    logged_in.post("/containers/create/scripts", {"enabled": [], "next": "1"})
    review = client.get("/containers/create/review").text
    assert 'data-testid="review-ssh-warning"' not in review
    note = review.split('data-testid="review-ssh-note"')[1].split("<form")[0]
    assert "created through Proxmox alone" in note and "Service discovery will be skipped" in note
    assert not re.search(r'<button[^>]*data-testid="create"[^>]*disabled', review)


def test_review_in_the_demo_says_a_non_debian_template_runs_on_debian(app, logged_in, client, template):
    app.config["DEMO_MODE"] = True
    walk_to(logged_in, template.id, ostemplate="local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst")
    note = client.get("/containers/create/review").text.split('data-testid="demo-os-note"')[1].split("</div>")[0]
    assert "root here is Debian 12" in note and "only exists on Ubuntu" in " ".join(note.split())
    walk_to(logged_in, template.id)  # the Debian template: nothing to say
    assert 'data-testid="demo-os-note"' not in client.get("/containers/create/review").text
