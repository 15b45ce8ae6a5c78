"""Every page at a 375 px phone width and at 1400 px, in the light and the dark theme, under the
Content-Security-Policy: no page scrolls sideways on a phone, none cuts its open tab, none goes without the
policy, and none logs a console error (a CSP violation is one) at either width.

The pages come from the app's URL map, filled with the ids the seeded data really has (a container of each
state), so a new page is walked (or has to be named below as not being a page) without anyone listing it here.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from werkzeug.routing import AnyConverter

from app.container_templates import manifest
from app.security_headers import CONTENT_SECURITY_POLICY
from tests.fixtures.app import TEST_PASSWORD
from tests.fixtures.clusters import register_cluster

pytestmark = pytest.mark.browser

CATALOG = Path(__file__).resolve().parent.parent / "catalog"

PHONE = {"width": 375, "height": 800}
DESKTOP = {"width": 1400, "height": 900}
FAILED_VMID = 950

# GET endpoints that answer something other than a page, and why.
SNAPSHOT = "before-upgrade"
NOT_PAGES = {
    "static": "files",
    "wizard.static": "files",
    "health.healthz": "JSON for monitoring",
    "container_templates.export": "a manifest download",
    "containers.operation_status": "htmx polling fragment",
    "containers.refresh_services_status": "htmx polling fragment",
    "containers.progress_events": "htmx polling fragment",
    "containers.backup_task": "htmx polling fragment (a backup task's new log lines)",
    "wizard.node_fields": "htmx fragment of the configure step",
    "containers.console_ws": "the console page's WebSocket (opened by tests/test_console.py and its browser walk)",
    "audit.export": "a CSV download",
    "auth.oidc_login": "a redirect to the single sign-on provider (404 while single sign-on is off)",
    "auth.oidc_callback": "the provider's redirect back (404 while single sign-on is off)",
    "observability.metrics": "Prometheus text for a scraper",
    "observability.widget_summary": "JSON for Homepage's and Homarr's widgets",
    "bulk.show": "a bulk action's progress: one exists only once started (walked by tests/test_bulk_actions_browser.py)",
    # The JSON API: answers for scripts, checked against their OpenAPI document by tests/test_api_schemathesis.py.
    **dict.fromkeys(("api.openapi", "api.containers", "api.container", "api.container_status", "api.container_services",
                     "api.container_events", "api.operation", "api.templates", "api.template_export"),
                    "JSON API (tests/test_api.py, tests/test_api_schemathesis.py)"),
    "api.docs": "Swagger UI's own page (walked at both widths under the policy by tests/test_api_docs_browser.py)",
}


@pytest.fixture
def seeded(live_server, pve, tmp_path):
    """The starter catalog, a container with services and a long timeline, and a failed creation."""
    from app.extensions import db
    from app.models import Container, Event, Operation, Service, utcnow

    with live_server.app.app_context():
        manifest.apply_specs(manifest.read_path(CATALOG))
        now = utcnow()
        web = Container(vmid=100, node="pve1", hostname="web01", lifecycle="ready", managed=True)
        failed = Container(vmid=FAILED_VMID, node="pve1", hostname="broken-app", lifecycle="error", managed=True)
        db.session.add_all([web, failed])
        db.session.flush()
        web.services = [
            Service(name="nginx", unit="nginx.service", port=80, protocol="tcp", status="active",
                    web_url="http://10.0.0.100/", checked_at=now),
            Service(name="postgresql-with-a-rather-long-service-name", unit="postgresql@16-main.service",
                    port=5432, protocol="tcp", status="failed", checked_at=now,
                    last_error="Job for postgresql@16-main.service failed because the control process exited"),
        ]
        for i in range(60):
            kind = ("log", "step", "error", "complete")[i % 4]
            db.session.add(Event(container_id=web.id, type=kind, created_at=now - timedelta(minutes=i),
                                 message=f"Event {i}: " + "a long line without spaces/" * (3 if i == 1 else 0)))
        db.session.add(Operation(container_id=failed.id, action="create", state="failed", step="packages",
                                 progress=40, params={"spec": {}}, finished_at=now,
                                 error="apt-get install exited with 100"))
        for kind, message in (("step", "Create the container"), ("log", "Waiting for the network"),
                              ("step", "Install packages"), ("error", "E: Unable to locate package nginx-extras")):
            db.session.add(Event(container_id=failed.id, type=kind, message=message))
        db.session.commit()
        from app.auth.services import create_user
        from app.auth.tokens import create_token
        from app.models import ApiToken, User

        if db.session.scalar(db.select(User).filter_by(username="bob-the-operator-with-a-long-name")) is None:
            create_user("bob-the-operator-with-a-long-name", TEST_PASSWORD, role="operator")
        alice = db.session.scalar(db.select(User).filter_by(username="alice"))
        if not db.session.scalar(db.select(db.func.count()).select_from(ApiToken).filter_by(user_id=alice.id)):
            create_token(alice, "backup script", role="viewer")
        db.session.commit()
        seed_alerts(web)
        db.session.remove()
        from app.proxmox import get_proxmox

        pve_client = get_proxmox()  # a snapshot tree to show (its rollback and delete pages are walked)
        if SNAPSHOT not in {s.name for s in pve_client.snapshots("pve1", 100)}:
            pve_client.wait_task(pve_client.create_snapshot("pve1", 100, SNAPSHOT, "before the upgrade"))
    register_cluster(live_server.app, pve, "lab", tmp_path)  # a second cluster: its line, cards, settings pages
    return live_server


def seed_alerts(web) -> None:
    """A channel, a rule with an open incident on ``web`` (the banners show) and a resolved one, and a
    maintenance window: every Alerts page has something to show."""
    from app.alerts.services import add_maintenance, create_channel, create_rule
    from app.extensions import db
    from app.models import AlertChannel, AlertIncident, utcnow

    if db.session.scalar(db.select(AlertChannel.id).limit(1)) is not None:
        return
    now = utcnow()
    channel = create_channel("ops team on ntfy with a long channel name", "ntfy://proxboard-alerts-topic")
    rule = create_rule("service_failed", [channel], for_minutes=5, repeat_minutes=60)
    db.session.add_all([
        AlertIncident(rule_id=rule.id, container_id=web.id, subject="svc:100:postgresql-with-a-rather-long-service-name",
                      state="open", first_seen_at=now - timedelta(minutes=9), opened_at=now - timedelta(minutes=4),
                      notified=True, message="Service postgresql-with-a-rather-long-service-name on web01 (CT 100) is "
                                             "failed: Job for postgresql@16-main.service failed."),
        AlertIncident(rule_id=rule.id, container_id=web.id, subject="svc:100:nginx", state="resolved",
                      first_seen_at=now - timedelta(hours=3), opened_at=now - timedelta(hours=3),
                      resolved_at=now - timedelta(hours=2), notified=True,
                      message="Service nginx on web01 (CT 100) is failed."),
    ])
    db.session.commit()
    add_maintenance(now + timedelta(days=1), now + timedelta(days=1, hours=2), scope="node:pve1",
                    note="kernel update on pve1")


def argument_values(app, pve) -> dict[str, list]:
    """Every real value of each URL argument in the seeded data."""
    from app.containers.services import ACTIONS
    from app.extensions import db
    from app.models import AlertChannel, AlertRule, ApiToken, ContainerTemplate, PackageBucket, User

    with app.app_context():
        templates = db.session.scalars(db.select(ContainerTemplate.id).order_by(ContainerTemplate.id)).all()
        buckets = db.session.scalars(db.select(PackageBucket.id).order_by(PackageBucket.id)).all()
        users = db.session.scalars(db.select(User.id).order_by(User.id)).all()
        tokens = db.session.scalars(db.select(ApiToken.id).order_by(ApiToken.id)).all()
        rules = db.session.scalars(db.select(AlertRule.id).order_by(AlertRule.id)).all()
        channels = db.session.scalars(db.select(AlertChannel.id).order_by(AlertChannel.id)).all()
        db.session.remove()
    assert templates and buckets, "the catalog seeds templates and package buckets"
    assert len(users) > 1 and tokens, "the seeded fixture adds a second user and a token"
    # Containers in every state the seeded cluster has (running, HA, locked, template, stopped, no hostname), the
    # longest name, and the failed creation; the other seeded containers repeat these pages.
    longest = max(pve.containers, key=lambda vmid: len(pve.containers[vmid].name))
    vmids = sorted({100, 101, 102, 103, 104, longest} & set(pve.containers)) + [FAILED_VMID]
    return {"vmid": vmids, "template_id": templates, "bucket_id": buckets,
            "action": list(ACTIONS), "user_id": users, "token_id": tokens, "snapname": [SNAPSHOT],
            "disk": ["rootfs"], "index": [0], "rule_id": rules[:1], "channel_id": channels[:1],
            "node": sorted(pve.cluster.nodes), "name": ["lab"]}


def page_urls(app, pve) -> list[tuple[str, str]]:
    """(page name, path) of every GET page: the URL map's rules with every real argument value."""
    values = argument_values(app, pve)
    pages, seen = [], set()
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in rule.methods or rule.endpoint in NOT_PAGES or "cluster" in rule.arguments:
            continue  # another cluster's pages are the same pages (tests/test_clusters_browser.py walks them)
        combos = [{}]
        for name in sorted(rule.arguments):
            converter = rule._converters[name]
            options = list(converter.items) if isinstance(converter, AnyConverter) else values[name]
            combos = [{**combo, name: option} for combo in combos for option in options]
        with app.test_request_context():
            from flask import url_for

            for combo in combos:
                path = url_for(rule.endpoint, **combo)
                if path not in seen:
                    seen.add(path)
                    pages.append((rule.endpoint + "".join(f"-{v}" for v in combo.values()), path))
    return pages


def representative(pages: list[tuple[str, str]], redirects: set[str]) -> list[tuple[str, str]]:
    """One page per endpoint and non-id argument (the first id that is not a redirect), for the screenshots."""
    chosen, kinds = [], set()
    for name, path in pages:
        kind = "-".join(part for part in name.split("-") if not part.isdigit())
        if kind not in kinds and path not in redirects:
            kinds.add(kind)
            chosen.append((name, path))
    return chosen


def fill_wizard(browser):
    """Walk the wizard's forms once so that every step (review included) can be opened."""
    page = browser.page
    browser.goto("/containers/create")
    page.locator("label", has_text="nginx web server").click()
    page.get_by_test_id("next").click()
    page.fill("#hostname", "phone-test")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#password_confirm")).not_to_have_value("")
    page.get_by_test_id("next").click()
    for step in ("Packages", "Scripts", "Review"):
        expect(page.locator('[aria-current="step"]')).to_contain_text(step)
        if step != "Review":
            page.get_by_test_id("next").click()


def overflow(page) -> int:
    """How many pixels the page scrolls sideways (0 when it fits)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


WIDEST = """() => Array.from(document.body.querySelectorAll("*"))
  .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1 && !el.querySelector("*"))
  .slice(0, 3).map(el => el.tagName.toLowerCase() + (el.className ? "." + String(el.className).trim().replace(/\\s+/g, ".") : ""))"""


# Open tabs (.nav-tabs scroll sideways on a phone) that do not show whole.
CUT_TABS = """() => Array.from(document.querySelectorAll(".nav-tabs .nav-link.active")).filter(tab => {
  const box = tab.getBoundingClientRect(), bar = tab.closest(".nav-tabs").getBoundingClientRect();
  return box.left < bar.left - 1 || box.right > bar.right + 1;
}).map(tab => tab.textContent.trim())"""


def test_every_page_fits_a_phone_and_reads_in_both_themes(browser, seeded, pve):
    page = browser.page
    pages = page_urls(seeded.app, pve)
    walked = {name.split("-")[0] for name, _ in pages}
    get_endpoints = {r.endpoint for r in seeded.app.url_map.iter_rules() if "GET" in r.methods}
    assert get_endpoints - walked == set(NOT_PAGES)
    assert len(pages) > 30

    page.set_viewport_size(PHONE)
    browser.login()
    fill_wizard(browser)
    pages.append(("error-404", "/no-such-page"))
    # the console page alone may also reach its own WebSocket (connect-src 'self' does not cover ws: everywhere)
    console_policy = f"{CONTENT_SECURITY_POLICY}; connect-src 'self' ws://{browser.base_url.split('//', 1)[1]}"

    too_wide, cut_tabs, unprotected, redirects = [], [], [], set()
    for name, path in pages:
        policy = browser.goto(path).headers.get("content-security-policy")
        if policy != CONTENT_SECURITY_POLICY and not (path.endswith("/console") and policy == console_policy):
            unprotected.append(path)
        page.wait_for_load_state()
        if page.url != browser.base_url + path:
            redirects.add(path)
        if (extra := overflow(page)) > 0:
            too_wide.append(f"{name} ({path}): {extra} px too wide, at {', '.join(page.evaluate(WIDEST))}")
        if cut := page.evaluate(CUT_TABS):
            cut_tabs.append(f"{name} ({path}): {cut}")

    # Each kind of page once per theme: the light one loaded at desktop width, the dark one on a phone, so
    # every script runs at both widths with the console watched.
    for scheme, sizes in (("light", (("1400", DESKTOP), ("375", PHONE))), ("dark", (("375", PHONE), ("1400", DESKTOP)))):
        page.emulate_media(color_scheme=scheme)
        for name, path in representative(pages, redirects):
            page.set_viewport_size(sizes[0][1])
            browser.goto(path)
            page.wait_for_load_state()
            assert page.evaluate("document.documentElement.dataset.bsTheme") == scheme, name
            for label, size in sizes:
                page.set_viewport_size(size)
                browser.screenshot(f"{name}-{label}-{scheme}")
    page.emulate_media(color_scheme=None)
    # The 404 page's own status is the one console error expected.
    browser.console_errors = [e for e in browser.console_errors if "404 (NOT FOUND)" not in e]
    assert not unprotected, f"pages without the policy: {unprotected}"
    assert not too_wide, "pages scroll sideways at 375 px:\n" + "\n".join(too_wide)
    assert not cut_tabs, "open tabs cut at 375 px:\n" + "\n".join(cut_tabs)


def test_login_page_fits_a_phone_in_both_themes(browser):
    page = browser.page
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for label, size in (("1400", DESKTOP), ("375", PHONE)):
            page.set_viewport_size(size)
            browser.goto("/login")
            assert overflow(page) <= 0, f"login: {overflow(page)} px too wide at {label}"
            assert page.evaluate("document.documentElement.dataset.bsTheme") == scheme
            browser.screenshot(f"login-{label}-{scheme}")


def test_sidebar_is_an_offcanvas_menu_on_a_phone(browser):
    browser.login()
    page = browser.page
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Templates")).to_be_visible()
    expect(page.get_by_test_id("menu-toggle")).to_be_hidden()

    page.set_viewport_size(PHONE)
    expect(nav.get_by_role("link", name="Templates")).to_be_hidden()
    expect(page.get_by_role("link", name="Create Container")).to_be_visible()
    page.get_by_test_id("menu-toggle").click()
    expect(nav.get_by_role("link", name="Templates")).to_be_visible()
    browser.screenshot("menu-open-375", full_page=False)
    nav.get_by_role("link", name="Templates").click()
    expect(page).to_have_url(f"{browser.base_url}/templates")
    expect(nav.get_by_role("link", name="Templates")).to_be_hidden()


def test_auto_theme_follows_the_system_and_a_choice_sticks(browser, live_server):
    page = browser.page
    page.emulate_media(color_scheme="dark")
    browser.login()
    root = page.locator("html")
    expect(root).to_have_attribute("data-theme", "auto")
    expect(root).to_have_attribute("data-bs-theme", "dark")
    page.emulate_media(color_scheme="light")  # the system switches while the page is open
    expect(root).to_have_attribute("data-bs-theme", "light")

    try:
        browser.open_menu()
        page.get_by_role("button", name="Dark").click()
        expect(root).to_have_attribute("data-bs-theme", "dark")
        expect(root).to_have_attribute("data-theme", "dark")
        assert page.url.rstrip("/") == browser.base_url
        browser.screenshot("dark-chosen")

        browser.open_menu()
        expect(page.get_by_role("button", name="Dark")).to_have_attribute("aria-pressed", "true")
        page.get_by_role("button", name="Sign out").click()
        browser.login()
        expect(root).to_have_attribute("data-bs-theme", "dark")  # the light system does not win
    finally:
        from app.extensions import db
        from app.models import User

        with live_server.app.app_context():
            db.session.execute(db.update(User).values(theme="auto"))
            db.session.commit()
            db.session.remove()


CUT_TEXT = """el => {
  // Text cut by its box: wider content than box (ellipsis, overflow), or a placeholder wider than the field.
  if (el.placeholder !== undefined && el.placeholder) {
    const style = getComputedStyle(el);
    const ctx = document.createElement("canvas").getContext("2d");
    ctx.font = style.font;
    const room = el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    return ctx.measureText(el.placeholder).width > room + 0.5;
  }
  return el.scrollWidth > el.clientWidth;
}"""


def test_demo_badge_and_template_search_are_not_cut_on_a_phone(browser, seeded, monkeypatch):
    monkeypatch.setitem(seeded.app.config, "DEMO_MODE", True)
    page = browser.page
    browser.login()
    for label, size in (("375", PHONE), ("1400", DESKTOP)):
        page.set_viewport_size(size)
        browser.goto("/templates")
        browser.screenshot(f"header-demo-{label}", full_page=False)
        badge = page.get_by_test_id("demo-badge")
        expect(badge).to_be_visible()
        expect(badge).to_contain_text("Demo")
        assert not badge.evaluate(CUT_TEXT), f"the demo badge is cut at {label} px"
        search = page.get_by_role("searchbox", name="Search templates")
        assert not search.evaluate(CUT_TEXT), f"the search placeholder is cut at {label} px"
        assert overflow(page) <= 0
    assert "(simulated)" in badge.inner_text()  # the whole label where there is room
