"""Real-world situations as a person sees them in Chromium: an offline node, a missing privilege,
an IPv6-only container and a guest in HA error (screenshots at 1400 px and 375 px)."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_an_offline_node_as_a_user_sees_it(browser, pve):
    browser.login()  # the first render records every guest's last known state
    guest = next(ct for ct in pve.containers.values() if ct.node == "pve2" and ct.hostname and ct.running
                 and not ct.ha and not ct.lock)
    pve.faults.set_node_offline("pve2")
    page = browser.page
    browser.goto("/")
    expect(page.get_by_test_id("node-offline-banner")).to_contain_text("Node pve2 is offline since")
    expect(page.get_by_test_id("proxmox-banner")).to_have_count(0)
    card = page.locator(f"#ct-{guest.vmid}")
    expect(card).to_contain_text(guest.hostname)
    expect(card.get_by_test_id("stale-reason")).to_contain_text("Node pve2 is offline")
    browser.both_widths("dashboard")
    card.get_by_role("link", name=guest.hostname).click()
    expect(page.get_by_test_id("stale-reason")).to_contain_text("Node pve2 is offline")
    expect(page.locator('#ct-header button[data-action="stop"]')).to_be_disabled()
    browser.both_widths("detail")


def test_a_missing_privilege_as_a_user_sees_it(browser, pve):
    pve.set_token_privileges({"/vms": ["VM.Audit"], "/": ["Sys.Audit"]})
    browser.login()
    page = browser.page
    browser.goto("/containers/104")
    page.locator('#ct-header [data-action="start"]').click()
    toast = page.locator("#toasts .toast", has_text="lacks VM.PowerMgmt on /vms/104")
    expect(toast).to_be_visible()
    expect(toast).to_contain_text("Start of ")
    expect(page.get_by_test_id("proxmox-banner")).to_have_count(0)
    browser.both_widths("toast")
    browser.goto("/about")
    expect(page.locator('[data-privilege="VM.PowerMgmt"]')).to_have_attribute("data-state", "missing")
    browser.both_widths("about")


def test_an_ipv6_only_container_as_a_user_sees_it(browser, pve):
    pve.add_container(vmid=160, node="pve1", status="running", hostname="v6only",
                      net0="name=eth0,bridge=vmbr0,ip6=auto,hwaddr=BC:24:11:00:16:00,type=veth",
                      net1="name=eth1,bridge=vmbr0,ip6=2001:db8:5::10/64,gw6=2001:db8:5::1,hwaddr=BC:24:11:00:16:02")
    browser.login()
    browser.goto("/containers/160")
    page = browser.page
    expect(page.locator('[data-fact="ip"]')).to_contain_text("2001:db8:")
    expect(page.locator('[data-net="eth0"] [data-family="ipv6"]')).to_contain_text("SLAAC")
    expect(page.locator('[data-net="eth1"] [data-family="ipv6"]')).to_contain_text("gateway 2001:db8:5::1")
    browser.both_widths("overview")


def test_a_guest_in_ha_error_as_a_user_sees_it(browser, pve):
    pve.containers[104].ha_state = "error"
    browser.login()
    page = browser.page
    card = page.locator("#ct-104")
    expect(card.get_by_test_id("ha-state")).to_have_text("HA: error")
    browser.both_widths("dashboard")
    browser.goto("/containers/104")
    start = page.locator('#ct-header button[data-action="start"]')
    expect(start).to_be_disabled()
    why = start.locator("xpath=..").evaluate("el => el.getAttribute('title') || el.getAttribute('data-bs-original-title')")
    assert "HA error is cleared" in why
    browser.both_widths("detail")
