"""Provisioning end to end (huey immediate mode): simulator for Proxmox, real sshd for pct exec/push."""
from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import pytest

from app.container_templates.services import add_package, add_script, create_template, save_file, save_service
from app.models import AuditEntry, Container, Credential, Event, Operation, Service, WizardDraft, utcnow
from app.provisioning import start_provisioning, sweep_stale
from tests.fixtures.factories import make_container, make_operation
from tests.fixtures.ssh import FakeUnit
from tests.test_wizard import configure_data

VMID = 900


class PortWatch:
    """A TCP port that counts the connections made to it (where SSH would go if anything tried)."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _address = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def ssh_port_watch():
    watch = PortWatch()
    yield watch
    watch.close()


@pytest.fixture
def app_overrides(request, ssh_config):
    """SSH to the test sshd; ``indirect`` param ``"no_ssh"``: no credentials, nodes pointed at a PortWatch."""
    base = {"PROVISION_BOOT_TIMEOUT": 5, "PROVISION_HEARTBEAT_TIMEOUT": 120}
    if getattr(request, "param", None) == "no_ssh":
        watch = request.getfixturevalue("ssh_port_watch")
        return {**base, "SSH_HOSTS": {f"pve{i}": "127.0.0.1" for i in range(1, 4)}, "SSH_PORT": watch.port}
    return {**ssh_config, **base}


no_ssh = pytest.mark.parametrize("app_overrides", ["no_ssh"], indirect=True)


@pytest.fixture
def template(app, db):
    t = create_template({"name": "web", "description": "nginx", "cores": 1, "memory": 512, "swap": 0, "disk": 4,
                         "tags": "web", "ostemplate": "debian-12", "unprivileged": True, "nesting": False,
                         "keyctl": False, "fuse": False, "storage": None, "bridge": None})
    add_package(t, "apt", "nginx", None)
    add_package(t, "pip", "requests", "2.32.3")
    save_file(t, {"name": "default", "target_path": "/etc/nginx/sites-enabled", "policy": "backup",
                  "content": "server { listen 80; }\n"})
    save_file(t, {"name": "motd", "target_path": "/etc", "policy": "default", "content": "new motd\n"})
    add_script(t, "configure", 'log_info "configuring $(hostname)"\necho plain output\nlog_warn careful\n'
                                'save_credential nginx ADMIN_PASSWORD hunter22\n')
    add_script(t, "second", "log_step second ran\n")
    save_service(t, {"name": "nginx", "unit": "nginx.service", "port": 80, "scheme": "http", "web_path": "/"})
    db.session.commit()
    return t


@pytest.fixture
def fake_ct(ssh_containers):
    ct = ssh_containers.container(VMID)
    ct.set_units([FakeUnit("nginx.service", ports=[80])])
    ct.file("/etc/nginx/sites-enabled").mkdir(parents=True)
    ct.file("/etc/nginx/sites-enabled/default").write_text("old site\n")
    ct.file("/etc/motd").write_text("old motd\n")
    return ct


def submit(logged_in, template_id, **configure):
    """Walk the wizard and press Create; returns the Create response."""
    logged_in.post("/containers/create/template", {"template": str(template_id), "next": "1"})
    response = logged_in.post("/containers/create/configure", configure_data(vmid=str(VMID), **configure))
    assert response.status_code == 302, response.text
    logged_in.post("/containers/create/packages", {"groups": ["apt", "pip"], "additional": "npm:pm2", "next": "1"})
    logged_in.post("/containers/create/scripts", {"enabled": [str(s.id) for s in template_scripts(template_id)],
                                                   "next": "1"})
    draft_id = logged_in._client.get("/containers/create/review").text.split('name="draft_id" value="')[1][:36]
    return logged_in.post("/containers/create/review", {"draft_id": draft_id}), draft_id


def template_scripts(template_id):
    from app.container_templates.services import get_template

    return get_template(template_id).scripts if template_id != "scratch" else []


def container(db) -> Container:
    db.session.expire_all()
    return db.session.scalar(db.select(Container).where(Container.vmid == VMID))


def messages(db, type_=None) -> list[str]:
    query = db.select(Event).join(Container).where(Container.vmid == VMID).order_by(Event.id)
    return [e.message for e in db.session.scalars(query) if type_ is None or e.type == type_]


def test_chatty_output_is_grouped_into_few_events_with_every_line_kept(logged_in, client, db, template, fake_ct):
    add_script(template, "chatty", 'for i in $(seq 1 300); do echo "Unpacking libfoo$i (1.$i) ..."; done\n'
                                   'for p in 5 10 100; do echo "(Reading database ... $p%"; done\n'
                                   'echo "(Reading database ... 1234 files and directories currently installed.)"\n'
                                   'log_info "chatty done"\n')
    db.session.commit()
    submit(logged_in, template.id)
    output = [e for e in db.session.scalars(db.select(Event).join(Container).where(Container.vmid == VMID))
              if (e.meta or {}).get("level") == "output"]
    lines = "\n".join(e.message for e in output).splitlines()
    chatty = [line for line in lines if line.startswith("Unpacking libfoo")]
    assert chatty == [f"Unpacking libfoo{i} (1.{i}) ..." for i in range(1, 301)]
    assert len(output) < 30, f"{len(output)} output events for {len(lines)} lines"
    database = [line for line in lines if line.startswith("(Reading database")]  # dpkg's counter says nothing
    assert database == ["(Reading database ... 1234 files and directories currently installed.)"]
    page = logged_in._client.get(f"/containers/{VMID}/progress").text
    assert "Unpacking libfoo1 (1.1) ...\nUnpacking libfoo2 (1.2) ..." in page


def test_full_flow_creates_a_ready_container_with_services_and_credentials(logged_in, client, db, template, fake_ct, pve):
    response, draft_id = submit(logged_in, template.id)
    assert response.headers["Location"].endswith(f"/containers/{VMID}/progress")
    ct = container(db)
    assert ct.lifecycle == "ready" and ct.managed and ct.created_by == "alice" and ct.ip
    assert VMID in pve.containers and pve.containers[VMID].running
    steps = [e for e in db.session.scalars(db.select(Event).where(Event.type == "step", Event.container_id == ct.id))]
    assert [e.meta["step"] for e in steps][1:] == ["create", "start", "wait", "files", "packages", "scripts", "discover"]
    assert all("percent" in e.meta for e in steps)
    logs = messages(db, "log")
    assert "configuring" in " ".join(logs) and "plain output" in logs and "careful" in logs
    levels = {e.message: e.meta["level"] for e in db.session.scalars(db.select(Event).where(Event.type == "log"))}
    assert levels["careful"] == "warn" and levels["second ran"] == "step"
    assert logs.index("configuring " + logs[logs.index("plain output") - 1].split(" ", 1)[1]) < logs.index("second ran")
    assert messages(db, "complete") == [f"web01 (CT {VMID}) is ready."]
    # packages, files with their policies, scripts through the helper library
    commands = fake_ct.commands()
    assert any(c.startswith("apt-get install") and "nginx" in c for c in commands)
    assert any(c.startswith("pip3 install") and "requests==2.32.3" in c for c in commands)
    assert any(c.startswith("npm install -g pm2") for c in commands)
    assert fake_ct.file("/etc/nginx/sites-enabled/default").read_text() == "server { listen 80; }\n"
    assert fake_ct.file("/etc/nginx/sites-enabled/default.bak").read_text() == "old site\n"
    assert fake_ct.file("/etc/motd").read_text() == "old motd\n"
    # discovery and credentials
    service = db.session.scalar(db.select(Service).where(Service.container_id == ct.id, Service.name == "nginx"))
    assert service and service.port == 80
    assert [c.key for c in db.session.scalars(db.select(Credential).where(Credential.container_id == ct.id))] == ["ADMIN_PASSWORD"]
    operation = db.session.scalar(db.select(Operation).where(Operation.container_id == ct.id))
    assert (operation.action, operation.state, operation.progress) == ("create", "succeeded", 100)
    draft = db.session.get(WizardDraft, draft_id)
    assert draft.consumed_at and draft.container_id == ct.id and draft.secret_encrypted is None
    # the progress page shows it all, and the detail page no longer redirects
    page = client.get(f"/containers/{VMID}/progress").text
    assert "is ready" in page and "configuring" in page and 'data-state="done"' in page
    assert client.get(f"/containers/{VMID}").status_code == 200
    # the audit log: the request and what came of it (here the job ran inline, before the request ended)
    entries = {(e.action, e.channel, e.outcome, e.username) for e in db.session.scalars(
        db.select(AuditEntry).where(AuditEntry.vmid == VMID))}
    assert entries == {("container.create", "web", "succeeded", "alice"),
                       ("container.create", "worker", "succeeded", "alice")}


def test_double_submit_creates_one_container(logged_in, client, db, template, fake_ct):
    response, draft_id = submit(logged_in, template.id)
    again = logged_in.post("/containers/create/review", {"draft_id": draft_id})
    assert again.headers["Location"].endswith(f"/containers/{VMID}/progress")
    assert db.session.scalar(db.select(db.func.count(Operation.id)).where(Operation.action == "create")) == 1


def test_create_failure_offers_delete_not_retry(logged_in, client, db, template, fake_ct, pve):
    pve.faults.fail_next_task(type="vzcreate", message="storage 'local-lvm' is full")
    submit(logged_in, template.id)
    ct = container(db)
    assert ct.lifecycle == "error"
    error = messages(db, "error")[-1]
    assert "Create the container failed" in error and "is full" in error
    result = db.session.scalars(db.select(AuditEntry).where(AuditEntry.channel == "worker")).one()
    assert (result.action, result.outcome, result.vmid) == ("container.create", "failed", VMID)
    assert "is full" in result.detail["result"]
    page = client.get(f"/containers/{VMID}/progress").text
    assert "Retry from the failed step" not in page and "Delete this container" in page
    assert db.session.scalar(db.select(WizardDraft.secret_encrypted)) is None
    response = logged_in.post(f"/containers/{VMID}/progress/delete")
    assert response.headers["Location"].endswith("/")
    assert container(db).lifecycle == "deleted"


def test_script_failure_then_retry_from_that_step(logged_in, client, db, template, fake_ct):
    script = template.scripts[1]
    script.content = "log_error about to fail\nexit 3\n"
    db.session.commit()
    submit(logged_in, template.id)
    assert container(db).lifecycle == "error"
    error = messages(db, "error")[-1]
    assert error.startswith("Run scripts failed") and "second" in error and "exited 3" in error
    assert "about to fail" in messages(db, "log")
    page = client.get(f"/containers/{VMID}/progress").text
    assert 'data-step="scripts" data-state="failed"' in page and "Retry from the failed step" in page
    script.content = "log_info fixed\n"
    db.session.commit()
    fake_ct.commands().clear()
    response = logged_in.post(f"/containers/{VMID}/progress/retry")
    assert response.headers["Location"].endswith(f"/containers/{VMID}/progress")
    assert container(db).lifecycle == "ready"
    steps = [e.meta["step"] for e in db.session.scalars(db.select(Event).where(Event.type == "step"))]
    assert steps.count("create") == 1 and steps.count("scripts") == 2
    assert "fixed" in messages(db, "log")


def test_start_failure_delete_goes_through_proxmox(logged_in, client, db, template, fake_ct, pve):
    pve.faults.fail_next_task(type="vzstart", message="cgroup error")
    submit(logged_in, template.id)
    assert container(db).lifecycle == "error" and "cgroup error" in messages(db, "error")[-1]
    response = logged_in.post(f"/containers/{VMID}/progress/delete")
    assert response.status_code == 302
    delete = db.session.scalar(db.select(Operation).where(Operation.action == "delete"))
    assert delete is not None and delete.upid
    pve.wait_idle()
    assert VMID not in pve.containers


def test_ssh_failure_is_reported_with_its_message(logged_in, client, db, template, ssh_containers):
    submit(logged_in, template.id)  # no fake container 900 on the SSH server: pct exec refuses
    assert container(db).lifecycle == "error"
    assert messages(db, "error")[-1].startswith("Wait for systemd and network failed")


def test_worker_killed_mid_job_is_marked_failed(app, db, logged_in, template):
    old = utcnow() - timedelta(seconds=600)
    make_operation(make_container(VMID, lifecycle="creating"), "create", step="packages", progress=45,
                   params={"spec": {}}, started_at=old, heartbeat_at=old)
    assert len(sweep_stale()) == 1
    assert container(db).lifecycle == "error"
    assert "stopped responding" in messages(db, "error")[-1]
    assert sweep_stale() == []  # once


def test_fresh_heartbeat_is_not_swept(app, db):
    make_operation(make_container(VMID, lifecycle="creating"), "create", step="scripts", heartbeat_at=utcnow())
    assert sweep_stale() == [] and container(db).lifecycle == "creating"


def test_progress_fragment_returns_only_new_events(logged_in, client, db, template, fake_ct):
    submit(logged_in, template.id)
    ids = [e.id for e in db.session.scalars(db.select(Event).order_by(Event.id))]
    fragment = client.get(f"/containers/{VMID}/progress/events?after={ids[-3]}", headers={"HX-Request": "true"}).text
    assert fragment.count("data-event-id=") == 2
    assert 'hx-swap-oob="beforeend:#provision-log"' in fragment and 'hx-trigger' not in fragment  # finished: stop polling


# -- no SSH where nothing uses it; configuration failures end at once ----------------------------


def submit_plain(logged_in, **configure):
    """Walk the wizard from scratch (no packages, no scripts) and press Create."""
    logged_in.post("/containers/create/template", {"template": "scratch", "next": "1"})
    response = logged_in.post("/containers/create/configure", configure_data(vmid=str(VMID), **configure))
    assert response.status_code == 302, response.text
    logged_in.post("/containers/create/packages", {"next": "1"})
    logged_in.post("/containers/create/scripts", {"next": "1"})
    review = logged_in._client.get("/containers/create/review").text
    assert 'data-testid="review-ssh-note"' in review and "created through Proxmox alone" in review
    draft_id = review.split('name="draft_id" value="')[1][:36]
    return logged_in.post("/containers/create/review", {"draft_id": draft_id})


@no_ssh
def test_plain_container_without_ssh_is_ready_with_skip_notes(logged_in, client, db, pve, ssh_port_watch):
    response = submit_plain(logged_in)
    assert response.headers["Location"].endswith(f"/containers/{VMID}/progress")
    ct = container(db)
    assert ct.lifecycle == "ready" and ct.ip
    assert VMID in pve.containers and pve.containers[VMID].running
    assert messages(db, "complete") == [f"web01 (CT {VMID}) is ready."]
    logs = messages(db, "log")
    nothing = "No files, packages or scripts: nothing to run inside the container"
    assert logs.count(nothing) == 3
    discovery = next(message for message in logs if message.startswith("Service discovery skipped"))
    assert "PROXBOARD_SSH_KEY_FILE" in discovery and "node pve1 is not configured" in discovery
    skipped = [e.meta["step"] for e in db.session.scalars(db.select(Event).where(Event.type == "step"))
               if e.meta.get("skipped")]
    assert skipped == ["files", "packages", "scripts", "discover"]
    assert ssh_port_watch.connections == 0  # nothing even tried to reach a node over SSH
    page = client.get(f"/containers/{VMID}/progress").text
    assert 'data-step="packages" data-state="skipped"' in page and 'data-step="wait" data-state="done"' in page


def _plan_for_worker(logged_in, db, template_id):
    """Walk the wizard to Review (SSH is fine for the web app) and return its plan and a Container row,
    as ``drafts.submit`` hands them to the job queue."""
    from app.wizard import services as drafts

    logged_in.post("/containers/create/template", {"template": str(template_id), "next": "1"})
    assert logged_in.post("/containers/create/configure", configure_data(vmid=str(VMID))).status_code == 302
    logged_in.post("/containers/create/packages", {"groups": ["apt", "pip"], "next": "1"})
    logged_in.post("/containers/create/scripts", {"enabled": [str(s.id) for s in template_scripts(template_id)],
                                                   "next": "1"})
    assert 'data-testid="review-ssh-warning"' not in logged_in._client.get("/containers/create/review").text
    draft = db.session.scalars(db.select(WizardDraft)).one()
    plan = drafts.build_plan(draft, drafts.template_of(draft))
    return plan, make_container(VMID, hostname="web01", lifecycle="creating")


@pytest.mark.parametrize("broken", ["no_credentials", "host_key_unknown"])
def test_worker_without_ssh_fails_at_once_and_retries_after_the_fix(app, logged_in, client, db, template, fake_ct,
                                                                     pve, ssh_config, tmp_path, broken):
    plan, ct = _plan_for_worker(logged_in, db, template.id)
    # the worker's configuration lacks what the web app had
    if broken == "no_credentials":
        del app.config["SSH_KEY_FILE"]
    else:
        app.config["SSH_KNOWN_HOSTS"] = str(tmp_path / "empty_known_hosts")
    app.config["PROVISION_BOOT_TIMEOUT"] = 60
    started = time.monotonic()
    start_provisioning(ct, plan, "alice")
    assert time.monotonic() - started < 5
    assert container(db).lifecycle == "error"
    error = db.session.scalars(db.select(Event).where(Event.type == "error")).one()
    assert error.message.startswith("Provisioning not started: 2 files, 2 packages and 2 scripts must be put into")
    if broken == "no_credentials":
        assert "PROXBOARD_SSH_KEY_FILE" in error.message
    else:
        assert "`flask ssh trust pve1`" in error.message
    assert error.meta["configuration"] is True and error.meta["retryable"] is True
    assert VMID not in pve.containers  # nothing was created
    assert db.session.scalar(db.select(WizardDraft.secret_encrypted)) is not None  # kept for the retry
    page = client.get(f"/containers/{VMID}/progress").text
    assert "Retry from the failed step" in page and "stopped responding" not in page
    # the operator fixes the configuration, then retries
    app.config.update(ssh_config)
    response = logged_in.post(f"/containers/{VMID}/progress/retry")
    assert response.headers["Location"].endswith(f"/containers/{VMID}/progress")
    assert container(db).lifecycle == "ready"
    assert VMID in pve.containers and any(c.startswith("apt-get install") for c in fake_ct.commands())
    assert db.session.scalar(db.select(WizardDraft.secret_encrypted)) is None


def test_rejected_ssh_key_ends_the_job_at_once_not_at_the_boot_timeout(app, logged_in, db, template, fake_ct,
                                                                        ssh_server):
    app.config.update(SSH_KEY_FILE=str(ssh_server.other_key_path), PROVISION_BOOT_TIMEOUT=60)
    started = time.monotonic()
    submit(logged_in, template.id)
    assert time.monotonic() - started < 20
    assert container(db).lifecycle == "error"
    error = db.session.scalars(db.select(Event).where(Event.type == "error")).one()
    assert error.message.startswith("Wait for systemd and network failed: authentication failed")
    assert error.meta["configuration"] is True and error.meta["retryable"] is True


def test_unreadable_root_password_ends_at_once_and_retries_after_the_fix(app, logged_in, db, template, fake_ct, pve):
    from cryptography.fernet import Fernet

    from app.credentials.vault import get_vault, reset_vault

    plan, ct = _plan_for_worker(logged_in, db, template.id)
    right_key = ",".join(get_vault().keys)
    app.config["CREDENTIALS_KEY"] = Fernet.generate_key().decode()  # the worker has another key
    reset_vault(app)
    start_provisioning(ct, plan, "alice")
    error = messages(db, "error")[-1]
    assert error.startswith("Provisioning not started: the stored root password cannot be read")
    assert "PROXBOARD_CREDENTIALS_KEY" in error and VMID not in pve.containers
    app.config["CREDENTIALS_KEY"] = right_key
    reset_vault(app)
    logged_in.post(f"/containers/{VMID}/progress/retry")
    assert container(db).lifecycle == "ready"


@pytest.mark.parametrize("lines,expected", [
    (["Downloading…", "curl: (6) Could not resolve host: repo.jellyfin.org", "gpg: no valid OpenPGP data found."],
     "cannot reach repo.jellyfin.org (name lookup failed)"),
    (["E: Unable to locate package nginx-extras"], "no package named nginx-extras in the configured repositories"),
    (["Err:1 http://deb.debian.org bookworm InRelease", "  Temporary failure resolving 'deb.debian.org'"],
     "cannot reach deb.debian.org (name lookup failed)"),
    (["all good", "exit 3"], None),
])
def test_a_failed_script_or_install_names_its_cause(lines, expected):
    from app.provisioning.steps import failure_cause

    assert failure_cause(lines) == expected
