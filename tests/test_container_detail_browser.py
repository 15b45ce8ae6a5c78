"""The container detail page walked in Chromium: tabs, services, credentials, events, lifecycle, outages."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from app.credentials import store_service_credentials
from app.extensions import db
from app.models import Event, Operation, Service, utcnow
from tests.fixtures.factories import make_container

pytestmark = pytest.mark.browser


def seed(live_server, vmid=100, node="pve1", services=True, events=3):
    """A record for CT ``vmid`` with a web service holding credentials, a system service and events."""
    with live_server.app.app_context():
        container = make_container(vmid, node, hostname="web01" if vmid == 100 else None, created_by="alice")
        if services:
            web = Service(container_id=container.id, name="grafana", kind="application", status="running",
                          port=3000, web_url="http://10.0.1.144:3000/", checked_at=utcnow() - timedelta(minutes=3))
            db.session.add_all([web, Service(container_id=container.id, name="ssh", kind="system", status="running",
                                             port=22, checked_at=utcnow())])
            db.session.flush()
            store_service_credentials(web, {"username": "admin", "password": "s3cret-Pa55"})
        for i in range(events):
            db.session.add(Event(container_id=container.id, type=("log", "step", "error")[i % 3],
                                 message=f"event number {i}", meta={"step": i, "by": "alice"},
                                 created_at=utcnow() - timedelta(minutes=10 - i)))
        db.session.commit()
        return container.id


def toast(page, text):
    expect(page.locator("#toasts .toast").filter(has_text=text).last).to_be_visible()


def shown(page):
    """Wait for the confirmation dialog's fade-in to finish (for screenshots)."""
    expect(page.locator("#confirm-modal")).to_have_css("opacity", "1")  # no wait_for_function: the CSP forbids its eval


def open_detail(browser, vmid=100, tab=""):
    browser.login()
    browser.goto(f"/containers/{vmid}{'/' + tab if tab else ''}")
    expect(browser.page.locator("#ct-header")).to_be_visible()
    return browser.page


def test_card_opens_the_page_and_tabs_switch_without_reload(browser, live_server):
    seed(live_server)
    browser.login()
    page = browser.page
    page.locator("#ct-100 a.stretched-link").click()
    expect(page).to_have_url(re.compile(r"/containers/100$"))
    header = page.locator("#ct-header")
    expect(header.locator("h1")).to_have_text("web01")
    expect(header.locator('[data-fact="ip"]')).to_have_text(re.compile(r"^10\.\d+\.\d+\.\d+$"))
    expect(page.locator('[data-config="network"]')).to_contain_text("DHCP (10.")
    browser.screenshot("overview")
    page.evaluate("window.__sameDocument = true")
    page.get_by_role("tab", name="Services").click()
    expect(page).to_have_url(re.compile(r"/containers/100/services$"))
    expect(page.locator('[data-service="grafana"][data-kind]')).to_be_visible()
    page.get_by_role("tab", name="Events").click()
    expect(page).to_have_url(re.compile(r"/containers/100/events$"))
    expect(page.locator(".timeline-item")).to_have_count(3)
    assert page.evaluate("window.__sameDocument") is True  # no full reload
    page.go_back()
    expect(page).to_have_url(re.compile(r"/containers/100/services$"))
    expect(page.get_by_role("tab", name="Services")).to_have_class(re.compile("active"))


def test_services_credentials_reveal_copy_hide_and_survive_refresh(browser, live_server):
    seed(live_server)
    page = open_detail(browser, tab="services")
    browser.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    assert "s3cret" not in page.content()
    grafana = page.locator('[data-service="grafana"][data-kind]')
    expect(grafana.get_by_role("link", name="Open web UI")).to_have_attribute("target", "_blank")
    expect(page.locator('[data-service="ssh"][data-kind]')).to_be_hidden()  # system services are collapsed
    page.get_by_text("System services (1)").click()
    expect(page.locator('[data-service="ssh"][data-kind]')).to_be_visible()
    grafana.get_by_role("button", name="Show credentials").click()
    expect(grafana.locator('[data-credential="password"]')).to_have_value("s3cret-Pa55")
    grafana.get_by_role("button", name="Copy password").click()
    toast(page, "Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == "s3cret-Pa55"
    browser.screenshot("credentials")
    page.locator("[data-refresh-now]").click()  # the auto-refresh keeps revealed values and open sections
    expect(page.locator("#detail-refresh-spinner")).to_be_hidden()
    page.wait_for_load_state("networkidle")
    expect(grafana.locator('[data-credential="password"]')).to_have_value("s3cret-Pa55")
    expect(page.locator('[data-service="ssh"][data-kind]')).to_be_visible()
    grafana.get_by_role("link", name="Hide").click()
    expect(grafana.locator('[data-credential="password"]')).to_have_count(0)
    expect(grafana.get_by_role("button", name="Show credentials")).to_be_visible()
    with live_server.app.app_context():
        reveal = db.session.scalar(db.select(Event).where(Event.message.like("Credentials of grafana%")))
        assert reveal.message == "Credentials of grafana revealed by alice"


def test_refresh_services_shows_progress_until_the_operation_ends(browser, live_server):
    container_id = seed(live_server)
    page = open_detail(browser, tab="services")
    page.get_by_role("button", name="Refresh services").click()  # jobs run inline in tests: ends at once
    expect(page.locator('[data-testid="last-refresh"]')).to_be_visible()
    with live_server.app.app_context():
        operation = db.session.scalar(db.select(Operation).where(Operation.action == "refresh-services"))
        operation.state, operation.finished_at = "running", None  # as if a worker were still busy
        db.session.commit()
        operation_id = operation.id
    page.locator("[data-refresh-now]").click()
    expect(page.locator('[data-testid="services-refreshing"]')).to_be_visible()
    browser.screenshot("services-refreshing")
    with live_server.app.app_context():
        operation = db.session.get(Operation, operation_id)
        operation.state, operation.finished_at = "succeeded", utcnow()
        db.session.add(Service(container_id=container_id, name="prometheus", kind="application", status="degraded"))
        db.session.commit()
    toast(page, "Services of CT 100 checked.")
    expect(page.locator('[data-service="prometheus"][data-kind]')).to_be_visible()
    browser.screenshot("services")


def test_events_filter_and_metadata_stay_open_across_refresh(browser, live_server):
    seed(live_server, events=5)
    page = open_detail(browser, tab="events")
    first = page.locator(".timeline-item").first
    expect(first).to_contain_text("event number 4")
    expect(first.locator("time")).to_have_attribute("title", re.compile(r"UTC$"))
    first.get_by_text("Details").click()
    expect(first.locator("pre")).to_contain_text('"step": 4')
    page.locator("[data-refresh-now]").click()
    page.wait_for_load_state("networkidle")
    expect(page.locator(".timeline-item").first.locator("pre")).to_be_visible()
    browser.screenshot("events")
    page.locator('[data-filter="error"]').click()
    expect(page).to_have_url(re.compile(r"/events\?type=error$"))
    expect(page.locator(".timeline-item")).to_have_count(1)
    expect(page.locator(".timeline-item .bi-x-octagon-fill.text-danger")).to_have_count(1)


def test_shutdown_timeout_offers_stop_then_stop_turns_it_off(browser, live_server, pve):
    seed(live_server, services=False, events=0)
    pve.time_scale = 0.02  # the 30 s timeout passes in 0.6 s
    pve.faults.ignore_shutdown(100)
    page = open_detail(browser)
    page.locator('#ct-header [data-action="shutdown"]').click()
    dialog = page.locator("#confirm-modal")
    expect(dialog).to_contain_text("stop cleanly")
    shown(page)
    browser.screenshot("confirm-shutdown")
    dialog.get_by_role("button", name="Shutdown").click()
    expect(page.locator('#ct-header [data-testid="pending"]')).to_be_visible()
    toast(page, "did not shut down within 30 s")
    alert = page.locator('[data-testid="shutdown-timeout"]')
    expect(alert).to_be_visible()
    browser.screenshot("shutdown-timeout")
    alert.get_by_role("link", name="Stop now").click()
    expect(dialog).to_contain_text("immediately")
    dialog.get_by_role("button", name="Stop").click()
    toast(page, "web01 (CT 100) is stopped.")
    expect(page.locator("#ct-header")).to_have_attribute("data-status", "stopped")
    expect(alert).to_have_count(0)
    expect(page.locator('#ct-header button[data-action="stop"]')).to_be_disabled()


def test_ha_container_and_a_failed_start_from_the_header(browser, live_server, pve):
    page = open_detail(browser, vmid=101)
    page.locator('#ct-header [data-action="shutdown"]').click()
    page.locator("#confirm-modal").get_by_role("button", name="Shutdown").click()
    toast(page, "(CT 101): the HA manager accepted the request; it will be shut down shortly.")
    pve.wait_idle()
    pve.faults.fail_next_task(type="vzstart", vmid=104, message="startup for container '104' failed")
    browser.goto("/containers/104/events")
    page.locator('#ct-header button[data-action="start"]').click()
    toast(page, "startup for container '104' failed")
    # the toast refreshes the open tab: the error is already in the timeline
    expect(page.locator('.timeline-item[data-event-type="error"]')).to_contain_text("startup for container '104' failed")
    browser.screenshot("failed-start")


def test_delete_confirms_by_name_and_returns_to_the_dashboard(browser, live_server):
    seed(live_server, services=False, events=0)
    page = open_detail(browser)
    page.locator('#ct-header [data-action="delete"]').click()
    dialog = page.locator("#confirm-modal")
    expect(dialog).to_contain_text("Delete web01 (CT 100)")
    shown(page)
    browser.screenshot("confirm-delete")
    dialog.get_by_role("button", name="Delete CT 100").click()
    expect(page).to_have_url(re.compile(r"/$"))
    toast(page, "is deleted")
    expect(page.locator("#ct-100")).to_have_count(0)


def test_unreachable_proxmox_shows_last_known_state(browser, live_server, pve):
    seed(live_server, services=False, events=0)
    browser.login()  # the dashboard stores the last-known snapshot
    pve.faults.unreachable = True
    browser.goto("/containers/100")
    page = browser.page
    expect(page.locator('[data-testid="proxmox-banner"]')).to_be_visible()
    expect(page.locator('#ct-header button[data-action="start"]')).to_be_disabled()
    # Delete too: Proxboard could neither confirm it nor follow its task while Proxmox is unreachable.
    expect(page.locator('#ct-header button[data-action="delete"]')).to_be_disabled()
    browser.screenshot("unreachable")


def test_without_javascript_tabs_confirmations_and_credentials_work(nojs_browser, live_server):
    seed(live_server)
    browser = nojs_browser
    page = open_detail(browser)
    page.get_by_role("tab", name="Services").click()
    expect(page).to_have_url(re.compile(r"/containers/100/services$"))
    page.get_by_role("button", name="Show credentials").click()
    expect(page.locator('[data-credential="username"]')).to_have_value("admin")
    browser.screenshot("credentials")
    page.get_by_role("tab", name="Events").click()
    expect(page.locator(".timeline-item")).to_have_count(4)  # three seeded plus the reveal
    page.locator('#ct-header [data-action="shutdown"]').click()
    expect(page).to_have_url(re.compile(r"/containers/100/actions/shutdown"))
    page.get_by_role("button", name="Shutdown").click()
    expect(page).to_have_url(re.compile(r"/containers/100$"))
    expect(page.locator("#toasts")).to_contain_text("web01 (CT 100) is shut down.")  # the result, after the redirect
