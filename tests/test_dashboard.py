"""The dashboard as a person sees it: grid, summary, filters, actions, outages."""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time

import pytest

from app.models import Event, Operation
from tests.fixtures.app import join_app_threads
from tests.fixtures.factories import make_container
from tests.htmx import HX, toast_of, wait_operation


def card(html: str, vmid: int) -> str:
    match = re.search(rf'<div class="col" id="ct-{vmid}".*?(?=<div class="col" id="ct-|\Z)', html, re.S)
    assert match, f"no card for CT {vmid}"
    return match.group(0)


def stat(html: str, name: str) -> int:
    match = re.search(rf'data-testid="stat-{name}".*?stat-value">([^<]+)<', html, re.S)
    return int(match.group(1))


def test_grid_shows_every_container_and_marks_proxmox_templates(logged_in, client, pve):
    html = client.get("/").text
    assert stat(html, "total") == len(pve.containers)
    assert stat(html, "running") == sum(ct.status == "running" for ct in pve.containers.values())
    template = card(html, 103)  # CT 103 is a Proxmox template: shown, badged, never startable
    assert 'data-status="template"' in template
    assert 'title="A Proxmox template cannot be started or stopped; clone it to make a container."' in template
    assert "Delete template" in template
    web = card(html, 100)
    assert "web01" in web and "pve1" in web and 'data-status="running"' in web
    assert "unmanaged" in web
    assert 'data-resource="cpu"' in web and 'data-resource="memory"' in web and 'data-resource="disk"' in web
    assert 'data-status="locked"' in card(html, 102)
    # a template and a locked guest are "other", not an alarm; a failed creation is
    other = html.split('data-testid="stat-other"')[1].split('stat-value')[0]
    assert "Other" in other and "Other / Error" not in other and "bi-exclamation-triangle" not in other
    make_container(990, "pve1", lifecycle="error", hostname="broken")
    other = client.get("/").text.split('data-testid="stat-other"')[1].split('stat-value')[0]
    assert "Other / Error" in other


def test_card_name_falls_back_to_proxmox_name(logged_in, client, pve):
    pve.add_container(vmid=150, node="pve2", status="stopped", hostname=None)
    assert "CT150" in card(client.get("/").text, 150)


def test_managed_container_uses_its_hostname_and_is_not_marked_unmanaged(logged_in, client, db):
    make_container(104, "pve2", hostname="mail-primary", managed=True)
    html = card(client.get("/").text, 104)
    assert "mail-primary" in html and "unmanaged" not in html


@pytest.mark.parametrize("status,expected", [("running", {100, 101}), ("stopped", {104}), ("other", {102})])
def test_filter_pills_show_only_matching_containers(logged_in, client, status, expected):
    html = client.get(f"/?status={status}").text
    shown = {int(v) for v in re.findall(r'<div class="col" id="ct-(\d+)"', html)}
    assert expected <= shown
    assert all(f'data-status="{status}"' in card(html, vmid) for vmid in shown) or status == "other"
    active = re.search(r'class="btn btn-sm rounded-pill btn-primary"[^>]*data-filter="(\w+)"', html)
    assert active.group(1) == status


def test_refresh_fragment_keeps_the_filter_and_varies_on_hx_request(logged_in, client):
    response = client.get("/?status=stopped", headers=HX)
    assert "HX-Request" in response.headers["Vary"]
    assert "<html" not in response.text and 'data-testid="summary"' in response.text
    assert 'data-status="running"' not in response.text.split('data-testid="grid"')[1]
    page = client.get("/?status=stopped").text
    assert 'hx-get="/?status=stopped"' in page


def test_containers_url_redirects_to_dashboard(logged_in, client):
    response = client.get("/containers")
    assert response.status_code in (301, 308) and response.headers["Location"].endswith("/")


def test_empty_cluster_shows_friendly_empty_state(logged_in, client, pve):
    pve.remove_all_containers()
    html = client.get("/").text
    assert "No containers yet" in html
    assert html.count('href="/containers/create"') >= 2  # header button and empty state


@pytest.mark.parametrize("size", [10, 500])
def test_one_proxmox_call_and_constant_queries_per_render(logged_in, client, pve, count_queries, size):
    pve.remove_all_containers()
    for i in range(size):
        pve.add_container(vmid=1000 + i, node=f"pve{i % 3 + 1}", status="running" if i % 2 else "stopped",
                          hostname=f"ct{i}")
    client.get("/")  # first render records the new containers (a bulk insert)
    join_app_threads()  # and starts the backup index's first sweep: its calls are not the render's
    for path, headers in (("/", {}), ("/?status=running", HX)):
        pve.clear_requests()
        with count_queries() as queries:
            response = client.get(path, headers=headers)
        assert response.status_code == 200
        assert len(pve.requests) == 1
        assert pve.count_requests("GET", "/cluster/resources") == 1
        assert queries.count <= 7, queries.statements  # session, user, clusters, records, operations, services, alerts


def test_start_shows_spinner_then_running_and_a_toast(logged_in, client, pve, db):
    response = logged_in.post("/containers/104/actions/start", {"view": "card"}, headers=HX)
    assert response.status_code == 200
    assert 'data-testid="pending"' in response.text  # the spinner, at once
    operation = db.session.scalar(db.select(Operation).filter_by(action="start"))
    assert operation.upid and operation.upid.startswith("UPID:pve2:") and operation.requested_by == "alice"
    done = wait_operation(client, 104, operation.id)
    assert 'data-status="running"' in done.text and 'data-testid="pending"' not in done.text
    assert toast_of(done) == {"message": "mail01 (CT 104) is running.", "category": "success"}
    assert pve.containers[104].status == "running"


def test_pending_spinner_survives_a_refresh(logged_in, client, pve):
    pve.task_delay = 2.0
    logged_in.post("/containers/104/actions/start", {"view": "card"}, headers=HX)
    assert 'data-testid="pending"' in card(client.get("/", headers=HX).text, 104)


def test_second_action_on_same_container_is_refused(logged_in, client, pve, db):
    pve.task_delay = 2.0
    logged_in.post("/containers/100/actions/reboot", {"view": "card"}, headers=HX)
    second = logged_in.post("/containers/100/actions/stop", {"view": "card"}, headers=HX)
    assert toast_of(second)["category"] == "danger"
    assert "another operation is in progress" in toast_of(second)["message"].lower()
    assert db.session.scalar(db.select(db.func.count()).select_from(Operation)) == 1


def test_failed_task_shows_proxmox_message_and_records_error_event(logged_in, client, pve, db):
    pve.faults.fail_next_task(type="vzstart", vmid=104, message="unable to mount rootfs")
    logged_in.post("/containers/104/actions/start", {"view": "card"}, headers=HX)
    operation = db.session.scalar(db.select(Operation).filter_by(action="start"))
    done = wait_operation(client, 104, operation.id)
    assert toast_of(done)["category"] == "danger"
    assert "unable to mount rootfs" in toast_of(done)["message"]
    assert 'data-status="stopped"' in done.text
    event = db.session.scalar(db.select(Event).filter_by(type="error"))
    assert "unable to mount rootfs" in event.message


def test_refused_by_proxmox_before_the_task_shows_its_message(logged_in, client, pve, db):
    pve.faults.fail_path("POST", r"/status/start$", status=500, message="CT 104 start refused by policy")
    response = logged_in.post("/containers/104/actions/start", {"view": "card"}, headers=HX)
    assert "CT 104 start refused by policy" in toast_of(response)["message"]
    assert db.session.scalar(db.select(Event).filter_by(type="error")) is not None


def test_action_not_allowed_in_this_state_changes_nothing(logged_in, client, pve, db):
    response = logged_in.post("/containers/100/actions/start", {"view": "card"}, headers=HX)
    assert "already running" in toast_of(response)["message"]
    assert db.session.scalar(db.select(db.func.count()).select_from(Operation)) == 0
    assert not [r for r in pve.requests if r["method"] == "POST"]


def test_delete_running_container_stops_it_first_and_card_disappears(logged_in, client, pve, db):
    confirm = client.get("/containers/100/actions/delete?view=card", headers=HX)
    assert "web01" in confirm.text and "CT 100" in confirm.text
    assert 'data-testid="stops-first"' in confirm.text and "btn-danger" in confirm.text
    logged_in.post("/containers/100/actions/delete", {"view": "card"}, headers=HX)
    operation = db.session.scalar(db.select(Operation).filter_by(action="delete"))
    assert operation.params == {"force": True, "purge": True}
    done = wait_operation(client, 100, operation.id)
    assert done.text == "" and "deleted" in toast_of(done)["message"]
    assert 100 not in pve.containers
    assert 'id="ct-100"' not in client.get("/").text


def test_confirmation_page_without_javascript_posts_the_action(logged_in, client, pve):
    page = client.get("/containers/100/actions/stop?next=/")
    assert page.status_code == 200 and "<html" in page.text
    assert 'action="/containers/100/actions/stop"' in page.text and "kills" in page.text
    response = logged_in.post("/containers/100/actions/stop", {"next": "/"})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    pve.wait_idle(5)
    time.sleep(1.1)
    assert 'data-status="stopped"' in card(client.get("/").text, 100)  # settled by the next render


def test_without_javascript_a_stop_tells_its_result_after_the_redirect(logged_in, client, pve):
    response = logged_in.post("/containers/100/actions/stop", {"next": "/"})
    assert response.status_code == 302
    page = client.get("/").text
    toasts = page.split('id="toasts"')[1]
    assert "web01" in toasts and "stopped" in toasts and "in progress" not in toasts
    assert 'data-status="stopped"' in card(page, 100)
    assert 'data-countdown-label hidden>Refresh in' in page and 'data-refresh-now' in page


def test_an_action_on_a_card_refreshes_the_counts_and_filtered_grid_at_once(logged_in, client, pve, db):
    page = client.get("/?status=running").text
    assert 'hx-trigger="refresh, containers-changed from:body"' in page and 'hx-get="/?status=running"' in page
    running = stat(page, "running")
    response = logged_in.post("/containers/100/actions/stop", {"view": "card", "next": "/?status=running"}, headers=HX)
    assert json.loads(response.headers["HX-Trigger"])["containers-changed"]
    operation = db.session.scalar(db.select(Operation).filter_by(action="stop"))
    done = wait_operation(client, 100, operation.id)
    assert json.loads(done.headers["HX-Trigger"])["containers-changed"]
    # what the dashboard then fetches (its hx-get) at once
    body = client.get("/?status=running", headers=HX).text
    assert stat(body, "running") == running - 1 and 'id="ct-100"' not in body
    assert re.search(r'data-filter="running".*?badge[^>]*>%d<' % (running - 1), body, re.S)


def test_unreachable_proxmox_renders_last_known_state_with_banner(logged_in, client, pve):
    client.get("/")  # remember the cluster
    pve.faults.unreachable = True
    response = client.get("/")
    assert response.status_code == 200
    assert "Cannot reach Proxmox at 127.0.0.1" in response.text
    assert response.text.count("Cannot reach Proxmox") == 1  # the reason says it too: once is enough
    web = card(response.text, 100)
    assert "web01" in web and "stale" in web and 'data-status="running"' in web
    assert 'data-action="stop"' in web and "disabled" in web.split('data-action="stop"')[0][-200:]
    pve.faults.unreachable = False
    assert "Cannot reach Proxmox" not in client.get("/").text


def test_proxmox_auth_failure_shows_banner_not_500(logged_in, client, pve):
    pve.faults.auth_fail = True
    response = client.get("/")
    assert response.status_code == 200 and 'data-testid="proxmox-banner"' in response.text


def test_bad_filter_and_page_fall_back(logged_in, client):
    assert client.get("/?status=bogus&page=-3").status_code == 200
    assert client.get("/?page=abc").status_code == 200
    assert client.get("/containers/100/actions/explode").status_code == 404


def test_search_finds_by_name_vmid_node_and_tag_and_survives_refresh(logged_in, client, pve):
    def shown(html):
        return {int(v) for v in re.findall(r'<div class="col" id="ct-(\d+)"', html)}

    assert shown(client.get("/?q=web01").text) == {100}
    assert shown(client.get("/?q=104").text) == {104}
    by_tag = shown(client.get("/?q=team-a").text)
    assert 100 in by_tag and all("team-a" in pve.containers[v].tags for v in by_tag)
    both = shown(client.get("/?q=pve1&status=running").text)
    assert both and all(pve.containers[v].node == "pve1" and pve.containers[v].status == "running" for v in both)
    page = client.get("/?q=web01").text
    assert 'hx-get="/?q=web01"' in page  # the auto-refresh keeps the search
    assert 'data-filter="running"' in page and "/?status=running&amp;q=web01" in page
    empty = client.get("/?q=no-such-container").text
    assert 'data-testid="no-match"' in empty and "no-such-container" in empty


def test_search_on_last_known_state_while_proxmox_is_down(logged_in, client, pve):
    client.get("/")
    pve.faults.unreachable = True
    html = client.get("/?q=web01").text
    assert "Cannot reach Proxmox" in html and 'id="ct-100"' in html and 'id="ct-101"' not in html


def test_a_ca_file_that_vanished_is_unreachable_not_a_500(app, logged_in, client, pve, tmp_path):
    """The demo's simulator stopped and took its CA file along: pages and /healthz still answer."""
    ca = tmp_path / "pve-root-ca.pem"
    shutil.copyfile(pve.ca_cert_path, ca)
    proxmox = app.extensions["proxmox"]
    proxmox.settings = dataclasses.replace(proxmox.settings, verify_ssl=str(ca))
    proxmox.close()
    assert "web01" in client.get("/").text  # remember the cluster
    ca.unlink()
    proxmox.cache.invalidate()
    response = client.get("/")
    assert response.status_code == 200
    assert "the CA certificate file PVE_VERIFY_SSL names cannot be read" in response.text
    assert "web01" in card(response.text, 100)
    assert client.get("/containers/100").status_code == 200
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json["proxmox"] == "unreachable"  # the app itself is up
