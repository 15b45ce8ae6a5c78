"""The container detail page as a person sees it: header, tabs, services, credentials, events, actions."""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from app.credentials import store_service_credentials
from app.models import Container, Event, Operation, Service, utcnow
from tests.fixtures.factories import (
    make_container,
    make_event,
    make_events,
    make_operation,
    make_services,
    make_template,
)
from tests.htmx import HX, toast_of, wait_operation

LIVE = {**HX, "HX-Target": "ct-live"}
TAB = {**HX, "HX-Target": "ct-tab"}


def run(logged_in, client, db, vmid, action):
    """Request ``action`` from the detail header and wait for its task; returns the final header response."""
    response = logged_in.post(f"/containers/{vmid}/actions/{action}", {"view": "header"}, headers=HX)
    assert response.status_code == 200, response.text
    operation = db.session.scalars(db.select(Operation).join(Container).where(Container.vmid == vmid)
                                   .order_by(Operation.id.desc())).first()
    assert operation is not None, toast_of(response)
    return wait_operation(client, vmid, operation.id, view="header")


# -- header and tabs ------------------------------------------------------------------------------

def test_header_shows_identity_status_uptime_tags_and_the_dhcp_lease(logged_in, client, pve):
    html = client.get("/containers/100").text
    header = html.split('id="ct-header"')[1].split('role="tablist"')[0]
    sim = pve.containers[100]
    assert "web01" in header and 'data-fact="vmid">100<' in header and 'data-fact="node">pve1<' in header
    assert 'data-status="running"' in header and re.search(r'data-fact="uptime">\d+h \d+m<', header)
    for tag in sim.tags:
        assert f">{tag}</span>" in header
    lease = re.search(r'data-fact="ip"[^>]*>([\d.]+)<', header).group(1)
    assert lease.startswith("10.") and pve.count_requests("GET", "/nodes/pve1/lxc/100/interfaces") == 1
    assert [a.strip() for a in re.findall(r'data-tab="\w+"\s*(?:aria-current="page")?><i[^>]*></i>[^<]*<span[^>]*>([^<]+)<',
                                          html)] \
        == ["Overview", "Metrics", "Config", "Disks", "Services", "Snapshots", "Backups", "Events"]


def test_a_stopped_container_costs_no_interfaces_call(logged_in, client, pve):
    html = client.get("/containers/104").text
    assert 'data-fact="ip" class="font-monospace">–<' in html
    assert pve.count_requests("GET", "/nodes/pve2/lxc/104/interfaces") == 0
    assert pve.count_requests("GET", "/nodes/pve2/lxc/104/status/current") == 1
    assert pve.count_requests("GET", "/nodes/pve2/lxc/104/config") == 1


@pytest.mark.parametrize("tab", ["overview", "config", "disks", "services", "snapshots", "backups", "events"])
def test_each_tab_has_its_own_url_and_fragments_vary_on_htmx(logged_in, client, tab):
    page = client.get(f"/containers/100/{tab}")
    assert page.status_code == 200 and "<html" in page.text
    assert re.search(rf'class="nav-link active"[^>]*data-tab="{tab}"', page.text)
    assert f'id="ct-tab" data-tab="{tab}"' in page.text
    assert {"HX-Request", "HX-Target"} <= set(page.vary)
    live = client.get(f"/containers/100/{tab}", headers=LIVE)
    assert "<html" not in live.text and 'id="ct-header"' in live.text and f'data-tab="{tab}"' in live.text
    alone = client.get(f"/containers/100/{tab}", headers=TAB)
    assert 'id="ct-header"' not in alone.text and f'data-testid="{tab}"' in alone.text


def test_overview_is_the_default_tab_and_auto_refresh_keeps_the_tab(logged_in, client):
    html = client.get("/containers/100").text
    assert 'class="nav-link active"' in html and 'data-tab="overview"' in html
    assert 'data-refresh-seconds="30" hx-get="/containers/100/overview" hx-trigger="refresh, toast from:body"' in html
    events = client.get("/containers/100/events?type=error", headers=LIVE).text
    assert 'hx-get="/containers/100/events?type=error" hx-trigger="refresh' in events


def test_container_being_created_redirects_to_its_progress(logged_in, client, db, app):
    from app.containers.detail import PROGRESS_ENDPOINT

    make_container(vmid=150, node="pve2", hostname="newbie", lifecycle="creating")
    progress = PROGRESS_ENDPOINT in app.view_functions
    for url in ("/containers/150", "/containers/150/services") + (("/containers/150/events",) if progress else ()):
        response = client.get(url)
        expected = "/containers/150/progress" if progress else "/containers/150/events"
        assert response.status_code == 302 and response.headers["Location"] == expected
    if not progress:
        events = client.get("/containers/150/events")
        assert events.status_code == 200 and "newbie" in events.text


def test_container_whose_creation_failed_shows_its_page_from_the_record(logged_in, client, db):
    container = make_container(vmid=151, node="pve2", hostname="broken", lifecycle="error")
    make_events(container, 1, "error")
    response = client.get("/containers/151/events")
    assert response.status_code == 200 and "broken" in response.text and 'data-event-type="error"' in response.text


def test_a_failed_creation_says_why_and_links_to_retry_and_back(logged_in, client, db):
    from app.provisioning.services import ACTION

    container = make_container(vmid=151, node="pve2", hostname="broken", lifecycle="error", managed=True)
    make_event(container, "error", "apt-get install nginx exited 100")
    make_operation(container, ACTION, "failed", error="apt-get install nginx exited 100")
    page = client.get("/containers/151").text
    failed = page.split('data-testid="creation-failed"')[1].split("</div>\n</div>")[0]
    assert "The creation failed: apt-get install nginx exited 100" in failed
    assert 'href="/containers/151/progress" data-testid="retry-link"' in failed
    progress = client.get("/containers/151/progress").text
    assert 'data-testid="provision-failed"' in progress
    assert 'href="/containers/151" data-testid="open-container"' in progress


def test_a_stopped_container_shows_its_services_as_unknown(logged_in, client, db, pve):
    container = make_container(vmid=104, node=pve.containers[104].node)
    make_services(container, 1)
    services = client.get("/containers/104/services").text
    assert 'data-testid="service-status">unknown<' in services and ">running<" not in services
    dots = client.get("/?status=stopped").text.split('id="ct-104"')[1].split('data-testid="service-dots"')[1][:400]
    assert 'data-status="unknown"' in dots and 'data-status="running"' not in dots


def test_without_javascript_no_countdown_but_a_refresh_link(logged_in, client):
    page = client.get("/containers/100").text
    assert '<span data-countdown-label hidden>Refresh in' in page
    assert 'href="/containers/100/overview" data-refresh-now' in page


def test_unknown_container_is_a_404_page_with_a_way_back(logged_in, client):
    response = client.get("/containers/999/services")
    assert response.status_code == 404
    assert "There is no container 999." in response.text and 'href="/"' in response.text


# -- overview -------------------------------------------------------------------------------------

def test_overview_lists_configuration_and_live_resources(logged_in, client, pve):
    sim = pve.containers[101]
    sim.config.update({"features": "nesting=1,keyctl=1", "onboot": 1, "net1": "name=eth1,bridge=vmbr1,ip=10.9.0.5/24,gw=10.9.0.1,hwaddr=BC:24:11:00:00:01"})
    html = client.get("/containers/101").text
    grid = html.split('data-testid="config"')[1].split('data-testid="resources"')[0]
    value = lambda key: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.search(rf'data-config="{key}">(.*?)</dd>', grid, re.S).group(1))).strip()
    assert value("cores") == str(sim.config["cores"])
    assert value("memory") == f"{sim.config['memory']} MiB" and value("swap") == f"{sim.config['swap']} MiB"
    assert value("disk").endswith("GiB on local-lvm")
    network = value("network")
    assert "eth0 on vmbr0 IPv4: DHCP (10." in network and "MAC" in network
    assert "eth1 on vmbr1 IPv4: 10.9.0.5/24 · gateway 10.9.0.1" in network
    assert "IPv6" not in network  # neither NIC configures IPv6: nothing is invented
    assert value("features") == "nesting yes keyctl yes fuse no"
    assert value("unprivileged") == "yes" and value("onboot") == "yes" and value("node") == sim.node
    resources = html.split('data-testid="resources"')[1]
    assert [r for r in re.findall(r'data-resource="(\w+)"', resources)] == ["cpu", "memory", "swap", "disk"]
    assert re.search(r'data-resource="memory" data-level="(success|warning|danger)"', resources)
    assert " MiB / " in resources or " GiB / " in resources


def test_overview_names_the_template_and_who_created_it(logged_in, client, db):
    template = make_template("Nginx web", ostemplate="local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst")
    make_container(vmid=104, node="pve2", hostname="mail", managed=True, template_id=template.id, created_by="alice")
    html = client.get("/containers/104").text
    assert "Nginx web" in html and "debian-12-standard" in html and "by alice" in html


# -- services -------------------------------------------------------------------------------------

def test_services_tab_puts_applications_first_and_system_services_under_a_toggle(logged_in, client, db):
    container = make_container()
    db.session.add_all([
        Service(container_id=container.id, name="ssh", kind="system", status="running"),
        Service(container_id=container.id, name="nginx", kind="application", status="running", port=80,
                protocol="tcp", web_url="http://10.0.0.5/", checked_at=utcnow() - timedelta(minutes=3)),
        Service(container_id=container.id, name="worker", kind="application", status="failed"),
    ])
    db.session.commit()
    html = client.get("/containers/100/services").text
    apps, system = html.split('data-testid="system-services"')
    assert re.findall(r'data-service="([\w-]+)" data-kind', apps) == ["nginx", "worker"]
    assert re.findall(r'data-service="([\w-]+)" data-kind', system) == ["ssh"]
    assert '<details id="system-services-100"' in html
    nginx = apps.split('data-service="nginx" data-kind')[1].split('data-service="worker" data-kind')[0]
    assert 'href="http://10.0.0.5/" target="_blank" rel="noopener"' in nginx and "Open web UI" in nginx
    assert "port 80/tcp" in nginx and "3 min ago" in nginx
    assert 'data-status="failed"' in apps


def test_refresh_services_is_a_post_that_queues_the_check(logged_in, client, db, pve):
    container = make_container()
    assert client.post("/containers/100/services/refresh").status_code == 400  # no CSRF token
    response = logged_in.post("/containers/100/services/refresh", headers=TAB)
    assert response.status_code == 200 and 'data-testid="services"' in response.text
    operation = db.session.scalar(db.select(Operation).where(Operation.container_id == container.id))
    assert operation.action == "refresh-services" and operation.requested_by == "alice"
    plain = logged_in.post("/containers/100/services/refresh")
    assert plain.status_code == 302 and plain.headers["Location"].endswith("/containers/100/services")


def test_the_services_tab_polls_a_pending_refresh_until_it_ends(logged_in, client, db):
    container = make_container()
    operation = make_operation(container, "refresh-services", requested_by="alice")
    html = client.get("/containers/100/services").text
    poll = f"/containers/100/services/refresh/{operation.id}"
    assert f'hx-get="{poll}"' in html and 'data-testid="refresh-services"' not in html
    assert client.get(poll, headers=TAB).status_code == 204
    operation.state, operation.finished_at = "succeeded", utcnow()
    make_services(container, 1)
    done = client.get(poll, headers=TAB)
    assert done.status_code == 200 and "application-00" in done.text and 'data-testid="refresh-services"' in done.text
    assert toast_of(done) == {"message": "Services of CT 100 checked.", "category": "success"}


# -- credentials ----------------------------------------------------------------------------------

@pytest.fixture
def service_with_credentials(db):
    container = make_container()
    service = Service(container_id=container.id, name="grafana", kind="application", status="running")
    db.session.add(service)
    db.session.flush()
    store_service_credentials(service, {"username": "admin", "password": "pa55-Wörd<&>"})
    db.session.commit()
    return service


def test_credentials_are_revealed_only_by_a_post_never_cached_and_audited(logged_in, client, db, service_with_credentials):
    service = service_with_credentials
    html = client.get("/containers/100/services").text
    assert "pa55" not in html and 'data-testid="show-credentials"' in html
    url = f"/containers/100/services/{service.id}/credentials"
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 400  # no CSRF token
    response = logged_in.post(url, headers={**HX, "HX-Target": f"credentials-{service.id}"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert 'value="admin"' in response.text and 'value="pa55-Wörd&lt;&amp;&gt;"' in response.text
    assert response.text.count("data-copy=") == 2 and "data-hide-credentials" in response.text
    assert 'hx-history="false"' in response.text  # never saved in htmx's localStorage history
    event = db.session.scalar(db.select(Event).where(Event.container_id == service.container_id))
    assert event.message == "Credentials of grafana revealed by alice" and "pa55" not in json.dumps(event.meta)
    page = logged_in.post(url)  # without JavaScript: the services tab with the values inline
    assert page.status_code == 200 and "<html" in page.text and 'value="admin"' in page.text
    assert page.headers["Cache-Control"] == "no-store"


def test_credentials_of_another_container_are_not_found(logged_in, client, db, service_with_credentials):
    make_container(vmid=104, node="pve2")
    assert logged_in.post(f"/containers/104/services/{service_with_credentials.id}/credentials").status_code == 404


# -- events ---------------------------------------------------------------------------------------

def test_events_are_newest_first_filterable_paginated_with_metadata(logged_in, client, db):
    container = make_container()
    make_events(container, 60, "log")
    make_events(container, 2, "error", start=utcnow() - timedelta(minutes=3))
    html = client.get("/containers/100/events").text
    items = re.findall(r'data-event-type="(\w+)"', html)
    assert len(items) == 50 and items[:2] == ["error", "error"]
    assert re.findall(r'data-filter="(\w+)"', html) == ["all", "log", "step", "complete", "error"]
    assert 'href="/containers/100/events?page=2"' in html
    assert '<details id="event-' in html and "&#34;i&#34;: 59" in html or '"i": 59' in html
    assert re.search(r'<time [^>]*title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">1 h ago</time>', html) or "min ago" in html
    page2 = client.get("/containers/100/events?page=2").text
    assert len(re.findall(r'data-event-type="', page2)) == 12
    errors = client.get("/containers/100/events?type=error").text
    assert re.findall(r'data-event-type="(\w+)"', errors) == ["error", "error"]
    assert 'aria-current="page">Error' in errors
    assert "bi-x-octagon-fill text-danger" in errors


# -- lifecycle from the header --------------------------------------------------------------------

def test_header_buttons_follow_the_state_and_delete_confirms_naming_the_container(logged_in, client):
    header = client.get("/containers/104").text.split('role="tablist"')[0]
    assert re.search(r'title="The container is not running\.">\s*<button[^>]*disabled data-action="stop"', header)
    assert 'data-action="start"' in header and "<form" in header  # start needs no confirmation
    confirm = client.get("/containers/104/actions/delete?view=header&next=/containers/104").text
    assert "Delete mail" in confirm or "(CT 104)" in confirm
    locked = client.get("/containers/102").text.split('role="tablist"')[0]
    # the five lifecycle actions and the More menu's clone, migrate and convert to template
    assert locked.count("The container is locked (backup).") == 8


def test_shutdown_and_stop_confirmations_explain_the_difference(logged_in, client):
    shutdown = client.get("/containers/100/actions/shutdown?view=header", headers=HX).text
    stop = client.get("/containers/100/actions/stop?view=header", headers=HX).text
    assert "stop cleanly" in shutdown and "waits up to 30 s" in shutdown
    assert "immediately" in stop and "Prefer <em>Shutdown</em>" in stop


def test_shutdown_that_times_out_offers_stop_in_the_header(logged_in, client, db, pve):
    pve.time_scale = 0.02  # the 30 s shutdown timeout passes in 0.6 s
    pve.faults.ignore_shutdown(100)
    final = run(logged_in, client, db, 100, "shutdown")
    assert "did not shut down within 30 s" in toast_of(final)["message"]
    assert 'data-testid="shutdown-timeout"' in final.text and "Stop now" in final.text
    assert 'data-testid="shutdown-timeout"' in client.get("/containers/100/events").text
    pve.faults.ignore_shutdown(100, False)
    stopped = run(logged_in, client, db, 100, "stop")
    assert 'data-status="stopped"' in stopped.text and 'data-testid="shutdown-timeout"' not in stopped.text


@pytest.mark.parametrize("app_overrides", [{"SHUTDOWN_FORCE_AFTER_TIMEOUT": True, "SHUTDOWN_TIMEOUT": 1}])
def test_forced_shutdown_says_so_in_the_timeline(logged_in, client, db, pve, app_overrides):
    pve.faults.ignore_shutdown(100)
    final = run(logged_in, client, db, 100, "shutdown")
    assert "forced after timeout" in toast_of(final)["message"]
    assert "forced after timeout" in client.get("/containers/100/events?type=complete").text


def test_ha_managed_container_shuts_down_starts_and_stops_from_its_page(logged_in, client, db, pve):
    # ha-manager acts shortly after its hastart/hastop task has ended, so the page is read once idle.
    for action, status in (("shutdown", "stopped"), ("start", "running"), ("stop", "stopped")):
        final = run(logged_in, client, db, 101, action)
        assert toast_of(final)["category"] == "success", toast_of(final)
        pve.wait_idle()
        assert f'id="ct-header" class="mb-3" data-vmid="101" data-status="{status}"' in client.get("/containers/101").text
    assert {"hastop", "hastart"} <= {task.type for task in pve.task_list}
    events = client.get("/containers/101/events").text
    assert "error" not in re.findall(r'data-event-type="(\w+)"', events)


def test_a_failed_task_is_a_toast_with_proxmox_message_and_an_error_event(logged_in, client, db, pve, caplog):
    pve.faults.fail_next_task(type="vzstart", vmid=104, message="startup for container '104' failed")
    final = run(logged_in, client, db, 104, "start")
    assert toast_of(final)["category"] == "danger" and "startup for container '104' failed" in toast_of(final)["message"]
    assert "CT 104" in caplog.text and "startup for container" in caplog.text
    errors = client.get("/containers/104/events?type=error").text
    assert "startup for container &#39;104&#39; failed" in errors or "startup for container '104' failed" in errors


def test_a_refused_request_is_a_toast_and_an_error_event(logged_in, client, db, pve):
    pve.faults.fail_path("POST", r"/lxc/104/status/start", status=500, message="storage 'local-lvm' is offline")
    response = logged_in.post("/containers/104/actions/start", {"view": "header"}, headers=HX)
    assert "storage 'local-lvm' is offline" in toast_of(response)["message"]
    assert 'id="ct-header"' in response.text
    assert "storage &#39;local-lvm&#39; is offline" in client.get("/containers/104/events?type=error").text


def test_delete_without_javascript_returns_to_the_dashboard(logged_in, client, db, pve):
    response = logged_in.post("/containers/104/actions/delete", {"view": "header", "next": "/containers/104"})
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_delete_from_the_header_redirects_to_the_dashboard_with_a_toast(logged_in, client, db, pve):
    final = run(logged_in, client, db, 104, "delete")
    assert final.headers["HX-Redirect"] == "/"
    assert "is deleted" in client.get("/").text
    assert client.get("/containers/104").status_code == 404


# -- Proxmox unreachable --------------------------------------------------------------------------

def test_unreachable_proxmox_renders_the_last_known_state_with_a_banner(logged_in, client, db, pve):
    client.get("/")  # the dashboard records the last-known snapshot
    record_ = db.session.scalar(db.select(Container).where(Container.vmid == 100))
    assert record_ is not None and record_.snapshot
    pve.faults.unreachable = True
    for tab in ("overview", "config", "disks", "services", "snapshots", "backups", "events"):
        response = client.get(f"/containers/100/{tab}")
        assert response.status_code == 200
        assert 'data-testid="proxmox-banner"' in response.text and "web01" in response.text
    header = response.text.split('role="tablist"')[0]
    # Delete too: Proxboard could neither confirm it nor follow its task
    # the five lifecycle actions, the console and the More menu's three
    assert header.count('title="Proxmox cannot be reached."') == 9 and 'data-action="delete" href=' not in header
    banner = response.text.split('data-testid="proxmox-banner"')[1].split("</div>")[0]
    assert banner.count("Cannot reach Proxmox") == 1 and "connection failed" in banner, banner
    overview = client.get("/containers/100").text
    assert 'data-testid="config-unavailable"' in overview and 'data-resource="memory"' in overview


def test_unreachable_proxmox_and_no_record_is_not_a_500(logged_in, client, pve):
    pve.faults.unreachable = True
    response = client.get("/containers/100")
    assert response.status_code == 503 and "Back to the dashboard" in response.text


# -- cost per render ------------------------------------------------------------------------------

@pytest.mark.parametrize("tab", ["overview", "config", "disks", "services", "snapshots", "backups", "events"])
def test_queries_and_proxmox_calls_per_render_are_constant(logged_in, client, db, pve, count_queries, tab):
    counts = []
    for vmid, node, size in ((100, "pve1", 3), (104, "pve2", 30)):
        container = make_container(vmid=vmid, node=node, managed=True)
        make_events(container, size)
        make_services(container, size)
        make_services(container, size, kind="system")
        client.get(f"/containers/{vmid}/{tab}")  # warm the session user lookups alike
        with count_queries() as queries:
            assert client.get(f"/containers/{vmid}/{tab}").status_code == 200
        counts.append(queries.count)
    assert counts[0] == counts[1], counts
    pve.clear_requests()
    client.get(f"/containers/100/{tab}")
    assert pve.count_requests("GET", "/nodes/pve1/lxc/100/status/current") == 1
    assert pve.count_requests("GET", "/nodes/pve1/lxc/100/config") == 1
    assert pve.count_requests("GET", "/nodes/pve1/lxc/100/interfaces") == 1
