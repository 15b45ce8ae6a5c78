"""The web console walked in Chromium: from the container page to its console, `hostname` typed in xterm.js and
answered on screen; a stopped container's console says why there is none."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_console_types_hostname_and_reads_the_answer(browser, live_server, pve):
    ct = next(c for c in sorted(pve.containers.values(), key=lambda c: c.vmid)
              if c.status == "running" and not c.template)
    browser.login()
    browser.goto(f"/containers/{ct.vmid}")
    page = browser.page
    browser.both_widths("container-page")  # the header's Console button beside the lifecycle actions
    page.get_by_test_id("console-link").click()
    page.wait_for_url(f"**/containers/{ct.vmid}/console")
    expect(page.get_by_test_id("console-state")).to_have_text("Connected")
    rows = page.locator("#console .xterm-rows > div")
    expect(rows.filter(has_text=f"root@{ct.hostname}:~#").first).to_be_visible()

    page.locator("#console").click()
    page.keyboard.type("hostname")
    page.keyboard.press("Enter")
    expect(rows.filter(has_text=re.compile(rf"^\s*{re.escape(ct.hostname)}\s*$"))).to_have_count(1)
    page.keyboard.type("uname -a")
    page.keyboard.press("Enter")
    expect(rows.filter(has_text=f"Linux {ct.hostname} ")).to_have_count(1)
    browser.both_widths("console")

    page.keyboard.type("exit")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("console-state")).to_have_text("The console closed: the shell ended.")
    expect(page.locator("#console-reconnect")).to_be_visible()

    stopped = next(c for c in pve.containers.values() if c.status == "stopped" and not c.template and not c.lock)
    browser.goto(f"/containers/{stopped.vmid}/console")
    expect(page.get_by_test_id("console-unavailable")).to_contain_text("start it to open its console")
    browser.both_widths("console-stopped")
