"""Roles in Chromium: a viewer sees no control they cannot use and is refused when forcing one (htmx toast,
403 page); an operator sees the lifecycle actions but not deleting nor template editing. Screenshots at
desktop and 375 px."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app.credentials import store_service_credentials
from app.extensions import db
from app.models import Service, User, utcnow
from tests.fixtures.factories import make_container, make_template, make_user

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 812}
VIEWER_STOP = "Operators and admins can stop containers; you are a viewer."


def seed(live_server, role: str) -> int:
    """A user named after ``role``, the record of CT 100 (running in the simulator) with a web service holding
    credentials, and a template; returns the template's id."""
    with live_server.app.app_context():
        if db.session.scalar(db.select(User).filter_by(username=role)) is None:
            make_user(role, role=role)
        container = make_container(100, "pve1", hostname="web01", created_by="alice")
        web = Service(container_id=container.id, name="grafana", kind="application", status="running", port=3000,
                      web_url="http://10.0.1.144:3000/", checked_at=utcnow())
        db.session.add(web)
        db.session.flush()
        store_service_credentials(web, {"username": "admin", "password": "s3cret-Pa55"})
        db.session.commit()
        if role == "viewer":
            from app.container_templates.services import add_package, create_bucket

            add_package(create_bucket("tools"), "pip", "httpie", "3.2.4")
        return make_template("web").id


def at_phone_width(browser, name: str) -> None:
    browser.page.set_viewport_size(PHONE)
    browser.screenshot(f"{name}-375")
    browser.page.set_viewport_size({"width": 1400, "height": 900})


def test_a_viewer_sees_no_actions_and_forcing_a_stop_is_refused(browser, live_server, pve):
    template_id = seed(live_server, "viewer")
    browser.login("viewer")
    page = browser.page

    card = page.locator("#ct-100")
    expect(card.locator(".status-badge")).to_have_text("running")
    expect(page.locator("[data-testid=card-menu]")).to_have_count(0)
    expect(page.locator("[data-testid=create-container]")).to_have_count(0)
    browser.screenshot("dashboard")
    at_phone_width(browser, "dashboard")

    browser.goto("/containers/100")
    toolbar = page.locator("#ct-header [role=toolbar]")
    expect(toolbar.locator("[data-action]")).to_have_count(5)
    expect(toolbar.locator("[data-action]:not([disabled])")).to_have_count(0)
    toolbar.locator("[data-action=stop]").locator("..").hover()
    expect(page.locator(".tooltip")).to_have_text(VIEWER_STOP)
    expect(page.locator(".tooltip")).to_have_css("opacity", "0.9")  # faded in, for the screenshot
    browser.screenshot("detail")
    at_phone_width(browser, "detail")

    page.get_by_role("tab", name="Services").click()
    expect(page.locator("[data-testid=show-credentials]")).to_be_disabled()
    expect(page.locator("[data-testid=refresh-services]")).to_be_disabled()
    expect(page.locator("#ct-tab")).not_to_contain_text("s3cret-Pa55")

    # Forcing the stop through htmx, as a crafted request from the page would: a 403 and its toast only.
    page.evaluate("htmx.ajax('POST', '/containers/100/actions/stop', "
                  "{source: document.body, target: '#ct-header', swap: 'none', values: {view: 'header'}})")
    refused_toast = page.locator("#toasts .toast").filter(has_text=f"{VIEWER_STOP} Ask an admin.")
    expect(refused_toast).to_be_visible()
    expect(refused_toast).to_have_css("opacity", "1")  # faded in, for the screenshot
    expect(page.locator("#toasts .toast").filter(has_text="The server answered")).to_have_count(0)
    browser.screenshot("forced-stop-toast", full_page=False)

    # A confirmation link left on a page from before (say, the role was lowered since): the toast, no dialog.
    page.evaluate("""() => {
        const link = document.createElement('a');
        link.href = '/containers/100/actions/shutdown';
        link.dataset.confirm = '';
        link.id = 'stale-link';
        link.textContent = 'Shutdown';
        document.querySelector('main').append(link);
    }""")
    page.locator("#stale-link").click()
    shutdown_toast = page.locator("#toasts .toast").filter(has_text="Operators and admins can shut down containers")
    expect(shutdown_toast).to_have_css("opacity", "1")
    expect(page.locator("#confirm-modal")).to_be_hidden()

    # And through a plain form (no JavaScript needed): the 403 page says which role is needed.
    page.evaluate("""() => {
        const form = document.createElement('form');
        form.method = 'post';
        form.action = '/containers/100/actions/stop';
        const token = document.createElement('input');
        token.type = 'hidden'; token.name = 'csrf_token';
        token.value = document.querySelector('meta[name=csrf-token]').content;
        form.append(token);
        document.body.append(form);
        form.submit();
    }""")
    expect(page.locator("[data-testid=refused]")).to_have_text("Your role does not allow this")
    expect(page.locator("[data-testid=refused-reason]")).to_have_text(f"{VIEWER_STOP} Ask an admin.")
    expect(page.locator("[data-testid=needed-role]")).to_have_text("operator")
    browser.screenshot("refused-page")
    at_phone_width(browser, "refused-page")

    browser.goto("/")
    expect(card.locator(".status-badge")).to_have_text("running")  # the stop never reached Proxmox
    # The two refusals are the only console errors (Chromium logs every 4xx; htmx logs its error event).
    assert browser.console_errors and all("403" in error for error in browser.console_errors), browser.console_errors
    browser.console_errors.clear()

    browser.goto(f"/templates/{template_id}")
    expect(page.locator("[data-testid=edit-template]")).to_be_disabled()
    expect(page.locator("[data-testid=delete-template]")).to_be_disabled()
    expect(page.get_by_role("link", name="Export")).to_be_visible()

    browser.goto("/templates/packages")
    expect(page.locator("[data-testid=read-only]")).to_contain_text("Admins can edit package lists; you are a viewer.")
    expect(page.locator("[data-bucket=tools] [data-package=httpie]")).to_be_visible()
    expect(page.locator("#buckets form")).to_have_count(0)
    browser.screenshot("buckets-read-only")
    at_phone_width(browser, "buckets-read-only")


def test_an_operator_sees_stop_but_neither_delete_nor_template_editing(browser, live_server, pve):
    template_id = seed(live_server, "operator")
    browser.login("operator")
    page = browser.page
    expect(page.locator("[data-testid=create-container]")).to_be_visible()

    page.locator("#ct-100 [data-testid=card-menu]").click()
    menu = page.locator("#ct-100 .dropdown-menu")
    expect(menu.locator("a[data-action=stop]")).to_be_visible()
    expect(menu.locator("[data-action=delete]")).to_have_class(re.compile("disabled"))
    expect(menu.locator("[data-action=delete]")).to_have_attribute(
        "title", "Admins can delete containers; you are an operator.")
    browser.screenshot("dashboard-menu")
    at_phone_width(browser, "dashboard-menu")

    browser.goto("/containers/100")
    toolbar = page.locator("#ct-header [role=toolbar]")
    expect(toolbar.locator("a[data-action=stop]")).to_be_visible()
    expect(toolbar.locator("button[data-action=delete]")).to_be_disabled()
    toolbar.locator("[data-action=delete]").locator("..").hover()
    expect(page.locator(".tooltip")).to_have_text("Admins can delete containers; you are an operator.")
    expect(page.locator(".tooltip")).to_have_css("opacity", "0.9")
    browser.screenshot("detail")
    at_phone_width(browser, "detail")

    page.get_by_role("tab", name="Services").click()
    page.locator("[data-testid=show-credentials]").click()
    expect(page.locator('[data-credential="password"]')).to_have_value("s3cret-Pa55")  # operators may see them

    browser.goto(f"/templates/{template_id}")
    expect(page.locator("[data-testid=edit-template]")).to_be_disabled()
    expect(page.locator("[data-testid=delete-template]")).to_be_disabled()
    browser.screenshot("template")
    at_phone_width(browser, "template")
    browser.goto(f"/templates/{template_id}/edit")
    expect(page.locator("[data-testid=refused-reason]")).to_have_text(
        "Admins can edit container templates; you are an operator. Ask an admin.")
    assert [error for error in browser.console_errors if "403" not in error] == []  # Chromium logs the 403
    browser.console_errors.clear()
