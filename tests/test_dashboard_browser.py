"""Dashboard scenarios walked in Chromium, as a person would."""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.fixtures.app import join_app_threads
from tests.pvesim.api import STATUS_CYCLE_SECONDS

pytestmark = pytest.mark.browser


@pytest.fixture
def dashboard(browser):
    browser.login()
    browser.page.evaluate("window.__noReload = true")
    return browser


def card(page, vmid):
    return page.locator(f"#ct-{vmid}")


def open_menu_item(page, vmid, action):
    card(page, vmid).get_by_test_id("card-menu").click()
    card(page, vmid).locator(f'.dropdown-menu [data-action="{action}"]').click()


def toast(page, text):
    return page.locator("#toasts .toast", has_text=text)


def assert_no_reload(page):
    assert page.evaluate("window.__noReload") is True


def test_summary_grid_and_create_button(dashboard, pve):
    page = dashboard.page
    expect(page.get_by_test_id("stat-total")).to_contain_text(str(len(pve.containers)))
    expect(page.get_by_role("link", name="Create Container").first).to_be_visible()
    expect(card(page, 100)).to_contain_text("web01")
    expect(card(page, 100).locator(".status-badge")).to_have_text("running")
    expect(card(page, 102).locator(".status-badge")).to_have_text("locked")
    expect(card(page, 103).locator(".status-badge")).to_have_text("template")
    dashboard.screenshot("grid")
    card(page, 100).get_by_role("link", name="web01").click()
    expect(page).to_have_url(re.compile(r"/containers/100"))


def test_filter_pills_are_links_and_survive_refresh(dashboard):
    page = dashboard.page
    page.locator('[data-filter="running"]').click()
    expect(page).to_have_url(re.compile(r"status=running"))
    expect(page.locator('[data-filter="running"]')).to_have_class(re.compile("btn-primary"))
    expect(page.locator('[data-filter="all"]')).to_have_class(re.compile("btn-outline-primary"))
    statuses = page.locator("[data-testid=grid] > .col").evaluate_all("els => els.map(e => e.dataset.status)")
    assert statuses and set(statuses) == {"running"}
    page.evaluate("window.__noReload = true")
    page.locator("[data-refresh-now]").click()
    page.wait_for_timeout(500)
    statuses = page.locator("[data-testid=grid] > .col").evaluate_all("els => els.map(e => e.dataset.status)")
    assert set(statuses) == {"running"}
    assert_no_reload(page)
    dashboard.screenshot("filtered-running")


def test_start_from_menu_spinner_then_running_and_toast(dashboard, pve):
    page = dashboard.page
    pve.task_delay = 1.5
    open_menu_item(page, 104, "start")
    expect(card(page, 104).get_by_test_id("pending")).to_be_visible()
    dashboard.screenshot("start-pending")
    expect(card(page, 104).locator(".status-badge")).to_have_text("running", timeout=10_000)
    expect(card(page, 104).get_by_test_id("pending")).to_have_count(0)
    expect(toast(page, "mail01 (CT 104) is running.")).to_be_visible()
    dashboard.screenshot("start-done")
    assert_no_reload(page)


def test_stop_asks_for_confirmation_in_a_dialog(dashboard, pve):
    page = dashboard.page
    open_menu_item(page, 100, "stop")
    dialog = page.locator("#confirm-modal")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("immediately")
    dashboard.screenshot("stop-dialog")
    dialog.get_by_test_id("confirm").click()
    expect(dialog).to_be_hidden()
    expect(card(page, 100).locator(".status-badge")).to_have_text("stopped", timeout=10_000)
    expect(toast(page, "is stopped")).to_be_visible()
    assert_no_reload(page)


def test_delete_running_container_dialog_is_red_and_card_disappears(dashboard, pve):
    page = dashboard.page
    open_menu_item(page, 106, "delete")
    dialog = page.locator("#confirm-modal")
    expect(dialog).to_contain_text("git01")
    expect(dialog).to_contain_text("CT 106")
    expect(dialog.get_by_test_id("stops-first")).to_be_visible()
    expect(dialog.get_by_test_id("confirm")).to_have_class(re.compile("btn-danger"))
    dashboard.screenshot("delete-dialog")
    dialog.get_by_test_id("confirm").click()
    expect(card(page, 106)).to_have_count(0, timeout=10_000)
    expect(toast(page, "deleted")).to_be_visible()
    assert 106 not in pve.containers
    assert_no_reload(page)


def test_spinner_survives_refresh_and_second_action_is_refused(dashboard, pve):
    page = dashboard.page
    pve.task_delay = 3.0
    open_menu_item(page, 104, "start")
    expect(card(page, 104).get_by_test_id("pending")).to_be_visible()
    page.locator("[data-refresh-now]").click()
    page.wait_for_timeout(400)
    expect(card(page, 104).get_by_test_id("pending")).to_be_visible()
    page.reload()
    expect(card(page, 104).get_by_test_id("pending")).to_be_visible()
    card(page, 104).get_by_test_id("card-menu").click()
    expect(card(page, 104).locator('.dropdown-menu [data-action="stop"]')).to_have_class(re.compile("disabled"))
    dashboard.screenshot("pending-after-reload")
    expect(card(page, 104).locator(".status-badge")).to_have_text("running", timeout=10_000)


def test_failed_action_shows_red_toast_with_proxmox_message(dashboard, pve):
    page = dashboard.page
    pve.faults.fail_next_task(type="vzstart", vmid=104, message="unable to mount rootfs volume")
    open_menu_item(page, 104, "start")
    failure = toast(page, "unable to mount rootfs volume")
    expect(failure).to_be_visible(timeout=10_000)
    expect(failure).to_have_class(re.compile("text-bg-danger"))
    expect(card(page, 104).locator(".status-badge")).to_have_text("stopped")
    dashboard.screenshot("failed-toast")


def test_refresh_now_swaps_the_grid_in_place(dashboard, pve):
    page = dashboard.page
    expect(page.locator("[data-countdown]")).to_have_text(re.compile(r"\d+s"))
    pve.add_container(vmid=555, node="pve1", status="running", hostname="newcomer")
    page.locator("[data-refresh-now]").click()
    expect(card(page, 555)).to_contain_text("newcomer")
    assert_no_reload(page)


def test_a_refresh_with_nothing_new_is_a_304_and_leaves_the_grid_alone(dashboard, pve):
    page = dashboard.page
    # What may change without anyone acting: the backup index the first page started sweeping (its badges), and
    # the simulator's figures, which change with pvestatd's 10 s cycle. The page is loaded again once the sweep
    # ended, early enough in a cycle for the refresh to fall in the same one.
    join_app_threads()
    left = STATUS_CYCLE_SECONDS - time.time() % STATUS_CYCLE_SECONDS
    if left < 4:
        time.sleep(left + 0.1)
    page.reload()
    page.evaluate("window.__noReload = true")
    page.evaluate("document.querySelector('#ct-104').dataset.untouched = 'yes'")
    with page.expect_response(lambda r: r.request.headers.get("hx-request") and r.url.endswith("/")) as answer:
        page.locator("[data-refresh-now]").click()
    assert answer.value.status == 304
    assert answer.value.request.headers.get("if-none-match")
    expect(card(page, 104)).to_have_attribute("data-untouched", "yes")  # nothing was swapped
    expect(card(page, 104).locator(".status-badge")).to_have_text("stopped")
    pve.add_container(vmid=555, node="pve1", status="running", hostname="newcomer")
    with page.expect_response(lambda r: r.request.headers.get("hx-request") and r.url.endswith("/")) as answer:
        page.locator("[data-refresh-now]").click()
    assert answer.value.status == 200
    expect(card(page, 555)).to_contain_text("newcomer")
    expect(card(page, 104)).not_to_have_attribute("data-untouched", "yes")
    assert_no_reload(page)


def test_unreachable_proxmox_banner_stale_cards_then_recovery(dashboard, pve):
    page = dashboard.page
    pve.faults.unreachable = True
    page.locator("[data-refresh-now]").click()
    banner = page.get_by_test_id("proxmox-banner")
    expect(banner).to_contain_text("Cannot reach Proxmox at 127.0.0.1")
    expect(card(page, 100)).to_contain_text("web01")
    card(page, 100).get_by_test_id("card-menu").click()
    expect(card(page, 100).locator('.dropdown-menu [data-action="stop"]')).to_have_class(re.compile("disabled"))
    dashboard.screenshot("unreachable")
    page.keyboard.press("Escape")
    pve.faults.unreachable = False
    page.locator("[data-refresh-now]").click()
    expect(banner).to_have_count(0)


def test_stop_without_javascript_uses_a_confirmation_page(nojs_browser, pve):
    page = nojs_browser.page
    nojs_browser.login()
    open_menu_item(page, 100, "stop")
    expect(page).to_have_url(re.compile(r"/containers/100/actions/stop"))
    expect(page.get_by_test_id("confirm")).to_be_visible()
    nojs_browser.screenshot("stop-confirm-page")
    page.get_by_test_id("confirm").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("#toasts")).to_contain_text("web01 (CT 100) is stopped.")  # the result, after the redirect
    pve.wait_idle(5)
    page.wait_for_timeout(1200)
    page.reload()
    expect(card(page, 100).locator(".status-badge")).to_have_text("stopped")


def test_search_box_narrows_the_grid(dashboard):
    page = dashboard.page
    page.get_by_role("searchbox", name="Search containers").fill("team-a")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"q=team-a"))
    shown = page.locator("[data-testid=grid] > .col")
    expect(shown.first).to_be_visible()
    for text in shown.all_inner_texts():
        assert "team-a" in text
    dashboard.screenshot("search")
    page.get_by_role("link", name="Clear").click()
    expect(page.get_by_test_id("grid").locator("> .col")).to_have_count(20)  # the template CT 103 included
