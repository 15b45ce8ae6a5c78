"""The core flow in Chromium: wizard → progress (real huey consumer thread, real sshd) → ready → detail page."""
from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import expect

from tests.fixtures.app import TEST_PASSWORD, app_config
from tests.fixtures.browser import BrowserPage, LiveServer
from tests.fixtures.database import upgrade_database
from tests.fixtures.ssh import FakeUnit

pytestmark = pytest.mark.browser
VMID = 901


@pytest.fixture(scope="module")
def provisioning_server(tmp_path_factory, pve_sim_session, ssh_server):
    """A live server whose jobs go through SQLite-backed huey to a consumer running in threads."""
    from huey.storage import MemoryStorage

    from app import create_app, jobs
    from app.auth.services import create_user
    from app.container_templates.services import add_package, add_script, create_template, save_service
    from app.extensions import db

    folder = tmp_path_factory.mktemp("provision-live")
    known_hosts = folder / "known_hosts"
    shutil.copyfile(ssh_server.known_hosts_path, known_hosts)
    url = f"sqlite:///{folder / 'live.db'}"
    upgrade_database(url)
    saved = (jobs.huey._immediate, jobs.huey.storage_class, jobs.huey.storage_kwargs, jobs.huey.storage, jobs._app)
    app = create_app(app_config(
        url, pve_sim_session, PVE_CACHE_SECONDS=0, JOBS_IMMEDIATE=False, HUEY_SQLITE_PATH=str(folder / "jobs.db"),
        SSH_HOSTS={f"pve{i}": ssh_server.host for i in range(1, 4)}, SSH_PORT=ssh_server.port,
        SSH_KEY_FILE=str(ssh_server.user_key_path), SSH_KNOWN_HOSTS=str(known_hosts), PROVISION_BOOT_TIMEOUT=10,
    ), instance_path=str(folder))
    with app.app_context():
        create_user("alice", TEST_PASSWORD)
        t = create_template({"name": "nginx-site", "description": "nginx with a generated admin password", "cores": 1,
                             "memory": 512, "swap": 0, "disk": 4, "tags": "web", "ostemplate": "debian-12",
                             "unprivileged": True, "nesting": False, "keyctl": False, "fuse": False,
                             "storage": None, "bridge": None})
        add_package(t, "apt", "nginx", None)
        add_script(t, "install", 'log_step "Configuring nginx"\nfor i in 1 2 3; do echo "line $i"; sleep 0.3; done\n'
                                 'save_credential nginx ADMIN_PASSWORD "$(gen_password 16)"\nlog_info done\n')
        save_service(t, {"name": "nginx", "unit": "nginx.service", "port": 80, "scheme": "http", "web_path": "/"})
        db.session.remove()
    consumer = jobs.huey.create_consumer(workers=2, worker_type="thread", periodic=False)
    consumer.start()
    server = LiveServer(app).start()
    yield server
    server.stop()
    consumer.stop(graceful=True)
    jobs.huey._immediate, jobs.huey.storage_class, jobs.huey.storage_kwargs, jobs.huey.storage, jobs._app = saved
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def page(chromium, provisioning_server, pve, request):
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, base_url=provisioning_server.url)
    browser_page = BrowserPage(context.new_page(), provisioning_server.url, request.node.name)
    yield browser_page
    context.close()


def test_create_container_end_to_end(page, ssh_server, pve):
    ssh_server.clear()
    ct = ssh_server.container(VMID)
    ct.set_units([FakeUnit("nginx.service", ports=[80])])
    p = page.page
    page.login()
    p.get_by_test_id("create-container").click()
    expect(p.locator('[aria-current="step"]')).to_contain_text("Template")
    page.screenshot("1-template")
    p.locator("label", has_text="nginx-site").click()
    p.get_by_test_id("next").click()

    expect(p.locator('[aria-current="step"]')).to_contain_text("Configure")
    p.fill("#hostname", "web01")
    p.fill("#vmid", str(VMID))
    p.get_by_role("button", name="Generate").click()
    expect(p.locator("#password_confirm")).not_to_have_value("")
    p.select_option("#node", "pve2")  # htmx re-renders the node's OS templates, storages and bridges
    expect(p.locator("#storage")).to_have_value("local-lvm")
    p.select_option("#node", "pve1")
    page.screenshot("2-configure")
    p.fill("#memory", "8")
    p.get_by_test_id("next").click()
    expect(p.locator(".invalid-feedback").first).to_contain_text("At least 16 MiB")
    page.screenshot("2b-configure-error")
    p.fill("#memory", "512")
    p.get_by_role("button", name="Generate").click()
    p.get_by_test_id("next").click()

    expect(p.locator('[aria-current="step"]')).to_contain_text("Packages")
    page.screenshot("3-packages")
    p.get_by_test_id("next").click()
    expect(p.locator('[aria-current="step"]')).to_contain_text("Scripts")
    page.screenshot("4-scripts")
    p.get_by_test_id("next").click()
    expect(p.locator('[aria-current="step"]')).to_contain_text("Review")
    expect(p.get_by_test_id("review-configure")).to_contain_text("web01 (CT 901)")
    page.screenshot("5-review")
    p.get_by_test_id("create").click()

    expect(p).to_have_url(f"{page.base_url}/containers/{VMID}/progress")
    expect(p.get_by_test_id("provision-log")).to_contain_text("line 2", timeout=20000)
    page.screenshot("6-progress-running")
    expect(p.get_by_test_id("provision-ready")).to_be_visible(timeout=20000)
    expect(p.get_by_test_id("provision-log")).to_contain_text("Configuring nginx")
    expect(p.get_by_test_id("provision-log")).to_contain_text("is ready")
    page.screenshot("7-progress-ready")
    p.get_by_role("link", name="Open container").click()
    expect(p).to_have_url(f"{page.base_url}/containers/{VMID}")
    p.locator('a[data-tab="services"]').click()
    expect(p.locator('[data-service="nginx"]').first).to_be_visible()
    page.screenshot("8-detail-services")
    assert any(c.startswith("apt-get install") and "nginx" in c for c in ct.commands())
    assert (ct.path / "etc/proxboard/credentials/nginx").read_text().startswith("ADMIN_PASSWORD=")


@pytest.fixture
def nojs_page(chromium, provisioning_server, pve, request):
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, base_url=provisioning_server.url,
                                   java_script_enabled=False)
    browser_page = BrowserPage(context.new_page(), provisioning_server.url, request.node.name + "-nojs")
    yield browser_page
    context.close()


def test_create_container_without_javascript(nojs_page, ssh_server, pve):
    """Plain forms and a self-refreshing progress page carry the whole flow."""
    vmid = VMID + 1
    ssh_server.container(vmid).set_units([FakeUnit("nginx.service", ports=[80])])
    p = nojs_page.page
    nojs_page.login()
    nojs_page.goto("/containers/create")
    p.locator("label", has_text="nginx-site").click()
    p.get_by_test_id("next").click()
    expect(p.locator('[aria-current="step"]')).to_contain_text("Configure")
    p.fill("#hostname", "static01")
    p.fill("#vmid", str(vmid))
    p.fill("#password", "a-root-password")
    p.fill("#password_confirm", "a-root-password")
    p.get_by_test_id("next").click()
    expect(p.locator('[aria-current="step"]')).to_contain_text("Packages")
    p.get_by_test_id("back").click()
    expect(p.locator("#hostname")).to_have_value("static01")  # Back keeps what was entered
    p.get_by_test_id("next").click()
    p.get_by_test_id("next").click()
    p.get_by_test_id("next").click()
    expect(p.get_by_test_id("review-configure")).to_contain_text(f"static01 (CT {vmid})")
    nojs_page.screenshot("review")
    p.get_by_test_id("create").click()
    expect(p).to_have_url(f"{nojs_page.base_url}/containers/{vmid}/progress")
    expect(p.get_by_test_id("provision-ready")).to_be_visible(timeout=30000)  # the page reloads itself
    nojs_page.screenshot("ready")
