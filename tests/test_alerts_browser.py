"""Alerts walked in Chromium, as issue 17's "Done when" says: an admin adds a webhook channel and a rule through the
forms, a container stopped behind Proxboard's back brings one message and a banner, its restart one recovery and a
resolved line in the history; an operator mutes it from its page; a maintenance window is added and ended.
Messages arrive at a real HTTP server; the worker's pass is the huey task itself. Screenshots at 1400 and 375 px,
in the light and the dark theme."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from app.alerts.tasks import evaluate_alerts_task
from app.extensions import db
from app.models import User
from tests.fixtures.factories import make_user

pytestmark = pytest.mark.browser

TOKEN = "hOOk7oken5ecret"  # the secret part of the webhook URL, never to be shown again
RULE = "Container stopped outside Proxboard"
CHANNEL = "ops webhook"
ALERT_TABLES = ("alert_deliveries", "alert_incidents", "alert_mutes", "alert_observations", "alert_rule_channels",
                "alert_rules", "alert_channels", "maintenance_windows")


def worker_pass(live_server) -> None:
    """One pass of the worker's periodic task, as it runs a minute after the last one (its own gate,
    ALERT_INTERVAL_SECONDS, has run out). The inventory's record throttle (SNAPSHOT_SECONDS, 60 s here)
    is left as it is: the pass must record what Proxmox says now, not what a page stored a minute ago."""
    live_server.app.extensions.pop("alerts_last_pass", None)
    assert evaluate_alerts_task.call_local() is True


def toast(page, text: str):
    return page.locator("#toasts .toast").filter(has_text=text).last


def set_theme(browser, name: str) -> None:
    """Choose a theme from the header's user menu, as a person does."""
    browser.open_menu()
    browser.page.get_by_role("button", name=name).click()
    expect(browser.page.locator("html")).to_have_attribute("data-bs-theme", name.lower())


def clean_up(live_server, pve, vmid: int) -> None:
    """Remove every alert row this walk made (the live server is shared) and put the container back."""
    pve.containers[vmid].status = "running"
    with live_server.app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            if table.name in ALERT_TABLES:
                db.session.execute(table.delete())
        db.session.execute(db.update(User).values(theme="auto"))
        db.session.commit()
        live_server.app.extensions.pop("alerts_last_pass", None)
        db.session.remove()


def test_a_container_stopped_behind_proxboards_back_alerts_once_and_recovers_once(browser, live_server, pve, webhook):
    port, hooks = webhook
    vmid = 100  # running in the simulator's seed
    hostname = pve.containers[vmid].hostname
    page = browser.page
    try:
        browser.login()
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Alerts").click()
        expect(page).to_have_url(f"{browser.base_url}/alerts")
        expect(page.get_by_test_id("open-incidents")).to_contain_text("Nothing is wrong that a rule watches.")

        # 1. A webhook channel, typed into its form, and its test message.
        page.get_by_test_id("new-channel").click()
        form = page.get_by_test_id("channel-form")
        form.get_by_label("Name").fill(CHANNEL)
        form.get_by_label("Apprise URL").fill(f"json://127.0.0.1:{port}/hook/{TOKEN}")
        browser.both_widths("channel-form")
        form.get_by_role("button", name="Add channel").click()
        expect(toast(page, f"Channel “{CHANNEL}” added. Send a test to check it.")).to_be_visible()
        row = page.get_by_test_id("channel-row").filter(has_text=CHANNEL)
        expect(row).to_contain_text("json://")
        row.get_by_test_id("send-test").click()
        expect(toast(page, f"A test message went to {CHANNEL}.")).to_be_visible()
        assert [(hook["path"], hook["title"]) for hook in hooks] == [(f"/hook/{TOKEN}", "[Proxboard] Test message")]
        hooks.clear()
        assert TOKEN not in page.content()
        page.get_by_role("link", name=f"Edit {CHANNEL}").click()
        expect(page.get_by_test_id("channel-form").get_by_label("Apprise URL")).to_have_value("")
        expect(page.get_by_test_id("channel-form")).to_contain_text("A json:// channel. Its URL is not shown again")
        assert TOKEN not in page.content()
        browser.both_widths("channel-edit")
        page.get_by_role("link", name="Cancel").click()

        # 2. A rule: stopped outside Proxboard, at once, to that channel (ticked to begin with).
        page.get_by_test_id("new-rule").click()
        form = page.get_by_test_id("rule-form")
        form.get_by_label("Alert when").select_option(label="CPU above a threshold")
        expect(form.get_by_label("Threshold")).to_be_visible()
        form.get_by_label("Alert when").select_option(label=RULE)
        expect(form.get_by_label("Threshold")).to_be_hidden()  # a stopped container has none
        form.get_by_label("Name").fill(RULE)
        form.get_by_label("For at least (minutes)").fill("0")
        expect(form.get_by_label(CHANNEL)).to_be_checked()
        browser.both_widths("rule-form")
        form.get_by_role("button", name="Add rule").click()
        expect(toast(page, f"Rule “{RULE}” added.")).to_be_visible()
        rule_row = page.get_by_test_id("rule-row").filter(has_text=RULE)
        expect(rule_row.get_by_role("rowheader").get_by_text(RULE)).to_have_count(1)  # named after its kind: said once
        expect(rule_row).to_contain_text(CHANNEL)
        expect(rule_row.locator(".badge")).to_have_text("On")

        # 3. The worker sees it running, it stops behind Proxboard's back, the next pass says so once.
        worker_pass(live_server)
        assert not hooks
        pve.containers[vmid].status = "stopped"
        worker_pass(live_server)
        assert len(hooks) == 1, hooks
        alert = hooks.pop()
        assert alert["title"] == f"[Proxboard] {hostname} (CT {vmid}) stopped", alert
        assert "nobody stopped it through Proxboard" in alert["message"]
        worker_pass(live_server)
        assert not hooks  # no repeat: the rule repeats never

        browser.goto("/")
        banner = page.get_by_test_id("alert-banner")
        expect(banner).to_contain_text("1 open alert")
        expect(banner.get_by_test_id("alert-incident")).to_contain_text(f"{RULE}: {hostname} (CT {vmid})")
        expect(banner.get_by_test_id("mute")).to_have_count(0)  # muting is per container, from its page
        browser.both_widths("dashboard-banner")
        banner.get_by_role("link", name=f"CT {vmid}").click()
        expect(page).to_have_url(f"{browser.base_url}/containers/{vmid}")
        banner = page.get_by_test_id("alert-banner")
        expect(banner.get_by_test_id("alert-incident")).to_contain_text(f"{hostname} (CT {vmid}) on ")
        expect(banner.get_by_test_id("mute")).to_be_visible()
        expect(banner.get_by_test_id("mute-for")).to_have_value("1440")
        browser.both_widths("container-banner")
        banner.get_by_role("link", name="All alerts").click()
        expect(page.get_by_test_id("open-incident")).to_contain_text(f"{hostname} (CT {vmid})")
        browser.both_widths("alerts-page")

        set_theme(browser, "Dark")
        browser.both_widths("alerts-page-dark")
        browser.goto("/")
        expect(page.get_by_test_id("alert-banner")).to_be_visible()
        browser.both_widths("dashboard-banner-dark")
        browser.goto(f"/containers/{vmid}")
        expect(page.get_by_test_id("alert-banner").get_by_test_id("mute")).to_be_visible()
        browser.both_widths("container-banner-dark")
        browser.goto("/alerts/rules/new")
        browser.both_widths("rule-form-dark")
        browser.goto("/alerts/channels/new")
        browser.both_widths("channel-form-dark")
        set_theme(browser, "Light")

        # 4. Started again: one recovery, no banner, the history says resolved.
        pve.containers[vmid].status = "running"
        worker_pass(live_server)
        assert len(hooks) == 1, hooks
        recovery = hooks.pop()
        assert recovery["title"] == f"[Proxboard] Resolved: {RULE} ({hostname} (CT {vmid}))", recovery
        browser.goto("/")
        expect(page.locator("#ct-100")).to_be_visible()
        expect(page.get_by_test_id("alert-banner")).to_have_count(0)
        browser.goto("/alerts")
        expect(page.get_by_test_id("open-incidents")).to_contain_text("Nothing is wrong that a rule watches.")
        page.get_by_test_id("alert-history").click()
        history = page.get_by_test_id("history-row")
        expect(history).to_have_count(1)
        expect(history).to_have_attribute("data-state", "resolved")
        expect(history).to_contain_text(f"{hostname} (CT {vmid})")
        expect(history.locator("td").nth(2)).not_to_have_text("–")  # the Resolved column holds a time
        expect(history.locator("td").nth(3)).to_have_text("2")  # the alert and its recovery
        browser.both_widths("history")

        # 5. Stopped again; an operator mutes it from its page for an hour, then unmutes it.
        pve.containers[vmid].status = "stopped"
        worker_pass(live_server)
        assert [hook["title"] for hook in hooks] == [f"[Proxboard] {hostname} (CT {vmid}) stopped"]
        hooks.clear()
        with live_server.app.app_context():
            if db.session.scalar(db.select(User).filter_by(username="operator")) is None:
                make_user("operator", role="operator")
            db.session.remove()
        browser.open_menu()
        page.get_by_role("button", name="Sign out").click()
        browser.login("operator")
        browser.goto(f"/containers/{vmid}")
        banner = page.get_by_test_id("alert-banner")
        banner.get_by_test_id("mute-for").select_option(label="1 hour")
        banner.get_by_test_id("mute").click()
        expect(toast(page, f"Alerts of CT {vmid} are muted until")).to_be_visible()
        banner = page.get_by_test_id("alert-banner")
        expect(banner.get_by_test_id("muted-until")).to_contain_text("Alerts of this container are muted until")
        expect(banner.get_by_test_id("unmute")).to_be_visible()
        expect(banner.get_by_test_id("mute")).to_have_count(0)
        browser.both_widths("container-muted")
        pve.containers[vmid].status = "running"
        worker_pass(live_server)
        assert not hooks  # muted: its recovery goes unsaid too
        browser.goto(f"/containers/{vmid}")
        banner = page.get_by_test_id("alert-banner")
        expect(banner).not_to_contain_text("open alert")
        banner.get_by_test_id("unmute").click()
        expect(toast(page, f"Alerts of CT {vmid} are no longer muted.")).to_be_visible()
        expect(page.get_by_test_id("alert-banner")).to_have_count(0)
    finally:
        clean_up(live_server, pve, vmid)


def test_a_maintenance_window_is_added_listed_and_ended(browser, live_server, pve):
    page = browser.page
    try:
        browser.login()
        browser.goto("/alerts")
        form = page.get_by_test_id("maintenance-form")
        form.get_by_label("For (hours)").fill("2")
        form.get_by_label("Only CT (VMID)").fill("100")
        form.get_by_label("Note").fill("kernel upgrade on web")
        form.get_by_role("button", name="Add window").click()
        expect(toast(page, "Maintenance window added until")).to_be_visible()
        window = page.get_by_test_id("window")
        expect(window).to_have_count(1)
        expect(window).to_contain_text("CT 100:")
        expect(window).to_contain_text("kernel upgrade on web")
        expect(window).to_contain_text("by alice")
        expect(window.locator(".badge")).to_have_text("Now")
        browser.both_widths("maintenance-window")

        form = page.get_by_test_id("maintenance-form")
        form.get_by_label("For (hours)").fill("0")
        form.get_by_role("button", name="Add window").click()
        expect(toast(page, "The maintenance window was not added: see the form.")).to_be_visible()
        expect(page.get_by_test_id("maintenance-form")).to_contain_text("Between 0.25 and 720 hours.")
        expect(page.get_by_test_id("window")).to_have_count(1)
        browser.both_widths("maintenance-refused")

        tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=2, minute=0)
        form = page.get_by_test_id("maintenance-form")
        form.get_by_label("Starts (UTC)").fill(f"{tomorrow:%Y-%m-%dT%H:%M}")
        form.get_by_label("For (hours)").fill("1.5")
        form.get_by_label("Over").select_option(label="Node pve1")
        form.get_by_label("Note").fill("")
        form.get_by_role("button", name="Add window").click()
        expect(toast(page, f"Maintenance window added until {tomorrow:%Y-%m-%d} 03:30 UTC.")).to_be_visible()
        planned = page.get_by_test_id("window").filter(has_text="Node pve1:")
        expect(planned.locator(".badge")).to_have_text("Planned")
        expect(page.get_by_test_id("window")).to_have_count(2)
        set_theme(browser, "Dark")
        browser.both_widths("maintenance-windows-dark")
        set_theme(browser, "Light")

        planned.get_by_role("button", name="Cancel").click()
        expect(toast(page, "Maintenance window ended.")).to_be_visible()
        window = page.get_by_test_id("window")
        expect(window).to_have_count(1)
        expect(window).to_contain_text("CT 100:")
        window.get_by_role("button", name="End now").click()
        expect(toast(page, "Maintenance window ended.")).to_be_visible()
        expect(page.get_by_test_id("window")).to_have_count(0)
    finally:
        clean_up(live_server, pve, 100)
