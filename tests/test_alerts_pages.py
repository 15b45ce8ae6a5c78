"""The Alerts pages: an admin sets up a channel (its URL never shown again) and a rule, "Send test" reaches a
real webhook server, operators mute a container and plan maintenance windows, everyone sees open incidents
on the dashboard and the container's page, and bad input changes nothing."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.alerts.engine import evaluate, gather_facts
from app.alerts.services import create_channel, create_rule
from app.extensions import db
from app.models import AlertChannel, AlertMute, AlertRule, AuditEntry, Container, MaintenanceWindow, utcnow

TOKEN = "pageT0ken5e7b1"


@pytest.fixture
def app_overrides() -> dict:
    return {"SNAPSHOT_SECONDS": 0}


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_admin_sets_up_a_channel_and_a_rule_and_sends_a_test(app, logged_in, client, webhook):
    port, received = webhook
    url = f"json://127.0.0.1:{port}/hook/{TOKEN}"
    page = client.get("/alerts")
    assert page.status_code == 200 and "No rule yet" in page.text and "No channel yet" in page.text

    bad = logged_in.post("/alerts/channels/new", {"name": "ops", "url": "notaservice://x", "rate_limit": "20"})
    assert bad.status_code == 200 and "Apprise does not recognise" in bad.text and count(AlertChannel) == 0
    assert "notaservice" not in bad.text  # a URL typed is never echoed back, good or bad
    response = logged_in.post("/alerts/channels/new", {"name": "ops", "url": url, "rate_limit": "20", "enabled": "y"})
    assert response.status_code == 302
    channel = db.session.scalar(select(AlertChannel))
    same = logged_in.post("/alerts/channels/new", {"name": "OPS", "url": url, "rate_limit": "20"})
    assert "already a channel named OPS" in same.text and count(AlertChannel) == 1

    page = client.get("/alerts")
    assert "ops" in page.text and "json://" in page.text and TOKEN not in page.text
    edit = client.get(f"/alerts/channels/{channel.id}")
    assert TOKEN not in edit.text and "not shown again" in edit.text

    tested = logged_in.post(f"/alerts/channels/{channel.id}/test")
    assert tested.status_code == 302
    assert received.pop()["title"] == "[Proxboard] Test message"
    assert "A test message went to ops" in client.get("/alerts").text

    # Saving the channel without a URL keeps the stored one; a new rate limit is taken.
    assert logged_in.post(f"/alerts/channels/{channel.id}", {"name": "ops", "url": "", "rate_limit": "5",
                                                             "enabled": "y"}).status_code == 302
    db.session.expire_all()
    assert channel.rate_limit == 5
    logged_in.post(f"/alerts/channels/{channel.id}/test")
    assert received.pop()["title"] == "[Proxboard] Test message"

    for data, message in (({"kind": "cpu_high", "threshold": "150"}, "A percentage between 0.1 and 100"),
                          ({"kind": "nonsense"}, "Pick one of the conditions"),
                          ({"kind": "cpu_high", "for_minutes": "-1"}, "Between 0 and 10080 minutes"),
                          ({"kind": "cpu_high", "channels": "999"}, "not one of the choices")):
        form = {"for_minutes": "5", "repeat_minutes": "0", **data}
        answer = logged_in.post("/alerts/rules/new", form)
        assert answer.status_code == 200 and message in answer.text, data
    assert count(AlertRule) == 0

    created = logged_in.post("/alerts/rules/new", {"kind": "memory_high", "threshold": "80", "for_minutes": "10",
                                                   "repeat_minutes": "60", "channels": str(channel.id), "enabled": "y"})
    assert created.status_code == 302
    rule = db.session.scalar(select(AlertRule))
    assert (rule.name, rule.threshold, rule.for_minutes, [c.name for c in rule.channels]) == \
        ("Memory above a threshold", 80.0, 10, ["ops"])
    page = client.get("/alerts").text
    assert "at 80%, for 10 min; repeats every 60 min" in page

    logged_in.post(f"/alerts/rules/{rule.id}/toggle")
    db.session.expire_all()
    assert not rule.enabled and "Turn on" in client.get("/alerts").text

    assert "Its incidents and their history go with it" in client.get(f"/alerts/rules/{rule.id}/delete").text
    assert count(AlertRule) == 1  # the GET only asks
    logged_in.post(f"/alerts/rules/{rule.id}/delete")
    confirm = client.get(f"/alerts/channels/{channel.id}/delete").text
    assert "No rule sends to it" in confirm
    logged_in.post(f"/alerts/channels/{channel.id}/delete")
    assert count(AlertRule) == 0 and count(AlertChannel) == 0
    actions = set(db.session.scalars(select(AuditEntry.action)))
    assert {"alert.create_channel", "alert.test_channel", "alert.create_rule", "alert.delete_rule",
            "alert.delete_channel"} <= actions
    targets = set(db.session.scalars(select(AuditEntry.target).where(AuditEntry.action == "alert.delete_channel")))
    assert targets == {"alert channel ops"}
    assert client.get("/alerts/rules/424242").status_code == 404


def test_open_incidents_show_on_dashboard_and_container_page_and_a_mute_silences(app, pve, auth, client):
    auth.login_as("operator")
    create_rule("container_stopped", [], for_minutes=0)
    running = sorted(vmid for vmid, ct in pve.containers.items() if ct.status == "running")
    vmid, other = running[:2]
    t0 = utcnow()
    evaluate(gather_facts(), t0 - timedelta(minutes=1))
    assert "alert-banner" not in client.get("/").text

    pve.containers[vmid].status = "stopped"
    evaluate(gather_facts(), t0)
    dashboard = client.get("/").text
    assert 'data-testid="alert-banner"' in dashboard and "1 open alert" in dashboard
    assert f"(CT {vmid})" in dashboard and "nobody stopped it" in dashboard
    page = client.get(f"/containers/{vmid}").text
    assert "1 open alert" in page and 'data-testid="mute"' in page
    assert "alert-banner" not in client.get(f"/containers/{other}").text  # only its own incidents

    assert auth.post(f"/alerts/containers/{vmid}/mute", {"minutes": "forever"}).status_code == 302
    assert count(AlertMute) == 0
    assert auth.post(f"/alerts/containers/{vmid}/mute", {"minutes": "240"}).status_code == 302
    page = client.get(f"/containers/{vmid}").text
    assert "muted until" in page and 'data-testid="unmute"' in page
    container_id = db.session.scalar(select(Container.id).where(Container.vmid == vmid))
    mute = db.session.scalar(select(AlertMute).where(AlertMute.container_id == container_id))
    assert timedelta(minutes=239) < mute.until - utcnow() <= timedelta(minutes=240)
    auth.post(f"/alerts/containers/{vmid}/unmute")
    assert "muted until" not in client.get(f"/containers/{vmid}").text
    assert auth.post("/alerts/containers/999999/mute", {"minutes": "60"}).status_code == 404

    # An operator sees the rules but may not change them, nor add a channel.
    assert 'data-testid="new-rule"' not in client.get("/alerts").text
    assert auth.post("/alerts/channels/new", {"name": "x", "url": "json://127.0.0.1/x"}).status_code == 403
    assert count(AlertChannel) == 0

    pve.containers[vmid].status = "running"
    evaluate(gather_facts(), t0 + timedelta(minutes=1))
    assert "alert-banner" not in client.get("/").text
    history = client.get("/alerts/history").text
    assert "nobody stopped it" in history and 'data-state="resolved"' in history


def test_maintenance_windows_from_the_page(app, auth, client):
    auth.login_as("operator")
    bad = auth.post("/alerts/maintenance", {"hours": "0", "scope": "node:elsewhere", "vmid": "12"})
    assert bad.status_code == 200 and count(MaintenanceWindow) == 0
    assert "Between 0.25 and 720 hours" in bad.text and "Not a VMID" in bad.text
    assert "Pick everything or one of the nodes" in bad.text

    assert auth.post("/alerts/maintenance", {"hours": "2", "note": "kernel update"}).status_code == 302
    later = (utcnow() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert auth.post("/alerts/maintenance", {"starts_at": later, "hours": "1", "vmid": "101"}).status_code == 302
    page = client.get("/alerts").text
    assert "Everything:" in page and "kernel update" in page and "CT 101:" in page and "Planned" in page
    now_window, planned = db.session.scalars(select(MaintenanceWindow).order_by(MaintenanceWindow.starts_at)).all()
    assert now_window.created_by == "operator" and timedelta(minutes=119) < now_window.ends_at - utcnow()
    auth.post(f"/alerts/maintenance/{planned.id}/end")
    auth.post(f"/alerts/maintenance/{now_window.id}/end")
    assert count(MaintenanceWindow) == 1  # the planned one is gone, the current one ended now
    assert "kernel update" not in client.get("/alerts").text
    assert auth.post(f"/alerts/maintenance/{now_window.id}/end").status_code == 404


def test_viewer_sees_alerts_without_any_button(app, auth, client):
    channel = create_channel("team", "json://127.0.0.1:9/x")
    create_rule("node_offline", [channel])
    auth.login_as("viewer")
    page = client.get("/alerts").text
    assert "Node offline" in page and "team" in page
    for button in ("new-rule", "new-channel", "send-test", "toggle-rule", "maintenance-form"):
        assert f'data-testid="{button}"' not in page
    assert auth.post(f"/alerts/channels/{channel.id}/test").status_code == 403
