"""Single sign-on in Chromium: "Sign in with Example SSO", the provider's own sign-in page (a real OpenID
Connect provider on loopback, tests/fixtures/oidc.py), and back on the dashboard with the role the person's
group maps to. Screenshots of the login page at desktop and 375 px."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.models import User
from tests.fixtures.browser import SCREENSHOTS, LiveServer
from tests.fixtures.database import upgrade_database
from tests.fixtures.factories import make_container, make_template
from tests.fixtures.app import app_config
from tests.fixtures.oidc import PROVIDER_WARNINGS

pytestmark = [pytest.mark.browser, PROVIDER_WARNINGS]

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1400, "height": 900}


@pytest.fixture(scope="module")
def sso_server(tmp_path_factory, pve_sim_session, oidc_provider):
    """Proxboard served on loopback with single sign-on through the test provider, on its own database."""
    from app import create_app

    folder = tmp_path_factory.mktemp("sso-live")
    url = f"sqlite:///{folder / 'live.db'}"
    upgrade_database(url)
    app = create_app(app_config(url, pve_sim_session, PVE_CACHE_SECONDS=0, **oidc_provider.config()),
                     instance_path=str(folder))
    server = LiveServer(app).start()
    yield server
    server.stop()
    with app.app_context():
        db.engine.dispose()


class Walk:
    """A Chromium page on ``sso_server``; console errors of Proxboard's pages fail the test (the provider's
    page asks a CDN for its stylesheet, which is refused here: no request leaves the machine)."""

    def __init__(self, page, server, name):
        self.page, self.server, self.name = page, server, name
        self.console_errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.console_errors.append(str(exc)))

    def _console(self, message):
        if message.type == "error" and message.location.get("url", "").startswith(self.server.url):
            self.console_errors.append(message.text)

    def goto(self, path):
        return self.page.goto(self.server.url + path)

    def screenshot(self, name, *, phone=False):
        """A full-page screenshot, and with ``phone`` one more at 375 px wide."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{self.name}--{name}.png"), full_page=True, caret="initial")
        if phone:
            self.page.set_viewport_size(PHONE)
            self.page.screenshot(path=str(SCREENSHOTS / f"{self.name}--{name}-375.png"), full_page=True,
                                 caret="initial")
            self.page.set_viewport_size(DESKTOP)

    def sign_in_at_provider(self, sub):
        """On the provider's page: type the subject and press Authorize, as a person would."""
        expect(self.page.get_by_role("heading", name="Authorize Client")).to_be_visible()
        self.page.get_by_placeholder("sub").fill(sub)
        self.page.get_by_role("button", name="Authorize").click()


@pytest.fixture
def walk(chromium, sso_server, pve, request):
    """A fresh browser on ``sso_server`` with empty tables (users and all) and the simulator at its seed."""
    from app import jobs

    with sso_server.app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            if table.name == "clusters":  # the default cluster stays: the environment's, every record's by default
                db.session.execute(table.delete().where(table.c.name != "default"))
            else:
                db.session.execute(table.delete())
        db.session.commit()
    jobs.init_app(sso_server.app)  # the queue is process-wide; the last app built claims it
    context = chromium.new_context(viewport=DESKTOP)
    context.set_default_timeout(10_000)
    context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), lambda route: route.abort())
    page = Walk(context.new_page(), sso_server, request.node.name)
    yield page
    context.close()
    assert not page.console_errors, f"console errors: {page.console_errors}"


def test_an_ops_group_member_signs_in_and_works_as_an_operator(walk, sso_server, oidc_provider):
    with sso_server.app.app_context():
        make_container(100, "pve1", hostname="web01", created_by="alice")
        template_id = make_template("web").id
    oidc_provider.set_user("sub-oscar", preferred_username="oscar", name="Oscar Ops", groups=["proxboard-ops"])
    page = walk.page

    walk.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    button = page.get_by_role("link", name="Sign in with Example SSO")
    expect(button).to_be_visible()
    expect(page.get_by_label("Password")).to_be_visible()  # local sign-in stays offered below
    walk.screenshot("login", phone=True)

    button.click()
    walk.sign_in_at_provider("sub-oscar")
    expect(page).to_have_url(sso_server.url + "/")
    expect(page.get_by_test_id("user-menu")).to_contain_text("oscar")
    page.locator("#ct-100 [data-testid=card-menu]").click()
    expect(page.locator("#ct-100 .dropdown-menu a[data-action=stop]")).to_be_visible()
    walk.screenshot("dashboard")

    walk.goto(f"/templates/{template_id}")
    expect(page.get_by_test_id("edit-template")).to_be_disabled()
    with sso_server.app.app_context():
        oscar = db.session.scalar(db.select(User).filter_by(username="oscar"))
        assert (oscar.role, oscar.oidc_subject) == ("operator", "sub-oscar")


def test_a_person_in_no_mapped_group_reads_why_on_the_login_page(walk, oidc_provider):
    oidc_provider.set_user("sub-mallory", preferred_username="mallory", groups=["marketing"])
    page = walk.page
    walk.goto("/login")
    page.get_by_role("link", name="Sign in with Example SSO").click()
    walk.sign_in_at_provider("sub-mallory")
    expect(page).to_have_url(re.compile(r"/login(\?|$)"))
    expect(page.get_by_test_id("sso-error")).to_contain_text(
        "Your Example SSO account is in no group that may use Proxboard. Please ask an administrator")
    walk.screenshot("refused", phone=True)

    page.get_by_role("link", name="Sign in with Example SSO").click()
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_test_id("sso-error")).to_have_text(re.compile(r"^\s*Sign-in was cancelled at Example SSO\."))


def test_with_local_sign_in_off_the_provider_is_the_only_way_in(walk, sso_server, monkeypatch):
    monkeypatch.setitem(sso_server.app.config, "LOCAL_LOGIN", False)
    page = walk.page
    walk.goto("/login")
    expect(page.get_by_role("link", name="Sign in with Example SSO")).to_have_class(re.compile(r"\bbtn-primary\b"))
    expect(page.get_by_label("Password")).to_have_count(0)
    expect(page.get_by_label("Username")).to_have_count(0)
    walk.screenshot("sso-only", phone=True)
