"""Alerts: the evaluation pass delivers real messages through Apprise to real receivers on loopback
(an HTTP webhook server and an SMTP server in this process), never a mocked Apprise."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.alerts.engine import evaluate, gather_facts
from app.alerts.tasks import evaluate_alerts_task
from app.alerts.services import add_maintenance, create_channel, create_rule, mute_container, send_test
from app.extensions import db
from app.models import AlertChannel, AlertIncident, Container, utcnow
from tests.fixtures.receivers import MAIL_PASSWORD

TOKEN = "hookT0ken9f3a"


@pytest.fixture
def app_overrides() -> dict:
    return {"SNAPSHOT_SECONDS": 0, "BASE_URL": "https://proxboard.example"}


def test_alerts_reach_webhook_and_mail_once_and_keep_quiet(app, pve, logged_in, webhook, smtp, caplog):
    """Stopped behind Proxboard's back: one alert after the delay, a repeat only after its interval, one
    recovery; a stop through Proxboard, a muted container and a maintenance window stay silent; the rate
    limit drops what is beyond it; no Proxmox request during a pass; the channel URLs never in a log."""
    caplog.set_level(logging.DEBUG)
    hook_port, hooks = webhook
    mail_port, mails = smtp
    hook_url = f"json://127.0.0.1:{hook_port}/alerts/{TOKEN}"
    mail_url = (f"mailto://alerts:{MAIL_PASSWORD}@127.0.0.1:{mail_port}"
                f"?from=proxboard@example.com&to=ops@example.com")
    hook = create_channel("ops webhook", hook_url, rate_limit=4)
    mail = create_channel("ops mail", mail_url)
    assert MAIL_PASSWORD.encode() not in mail.url_encrypted and TOKEN.encode() not in hook.url_encrypted
    assert send_test(hook).ok and hooks.pop()["title"] == "[Proxboard] Test message"
    create_rule("container_stopped", [hook, mail], for_minutes=2, repeat_minutes=30)

    running = sorted(vmid for vmid, ct in pve.containers.items() if ct.status == "running")
    assert len(running) >= 5
    behind, through, muted, windowed, extra = running[:5]
    t0 = utcnow()
    evaluate(gather_facts(), t0 - timedelta(minutes=1))  # records every container; the pass sees them running
    ids = dict(db.session.execute(select(Container.vmid, Container.id)).all())
    mute_container(ids[muted], t0 + timedelta(hours=2))
    add_maintenance(t0 - timedelta(minutes=1), t0 + timedelta(hours=1), scope=f"ct:{windowed}")
    assert logged_in.post(f"/containers/{through}/actions/stop", {"next": "/"}).status_code == 302
    pve.wait_idle(5)
    assert pve.containers[through].status == "stopped"
    for vmid in (behind, muted, windowed):
        pve.containers[vmid].status = "stopped"
    facts = gather_facts()

    pve.clear_requests()
    assert evaluate(facts, t0).opened == 0 and not hooks and not mails  # the delay has not passed
    result = evaluate(facts, t0 + timedelta(minutes=3))
    assert pve.count_requests() == 0  # the pass itself never asks Proxmox
    assert (result.opened, result.sent, result.silenced) == (3, 2, 2), result
    name = db.session.get(Container, ids[behind]).hostname or pve.containers[behind].hostname
    assert len(hooks) == 1 and len(mails) == 1
    alert = hooks.pop()
    assert alert["path"] == f"/alerts/{TOKEN}" and f"(CT {behind})" in alert["title"] and name in alert["title"]
    assert f"https://proxboard.example/containers/{behind}" in alert["message"] and "Since " in alert["message"]
    assert f"(CT {behind})" in mails.pop()
    open_subjects = {i.subject for i in db.session.scalars(select(AlertIncident).where(AlertIncident.state == "open"))}
    assert open_subjects == {f"ct:{behind}", f"ct:{muted}", f"ct:{windowed}"}  # silenced ones still recorded

    assert evaluate(facts, t0 + timedelta(minutes=10)).sent == 0  # no repeat before repeat_minutes
    assert evaluate(facts, t0 + timedelta(minutes=34)).sent == 2  # one reminder on each channel
    assert hooks.pop()["title"].startswith("[Proxboard] Still:")
    mails.clear()

    pve.containers[behind].status = "running"
    result = evaluate(gather_facts(), t0 + timedelta(minutes=40))
    assert (result.resolved, result.sent) == (1, 2)
    recovery = hooks.pop()
    assert recovery["title"].startswith("[Proxboard] Resolved:") and f"(CT {behind})" in recovery["title"]
    assert len(mails) == 1 and not hooks

    # Rate limit: 4 per hour on the webhook, 3 sent within the last hour of this moment.
    for vmid in (behind, extra):
        pve.containers[vmid].status = "stopped"
    facts = gather_facts()
    evaluate(facts, t0 + timedelta(minutes=41))
    result = evaluate(facts, t0 + timedelta(minutes=45))
    assert (result.opened, result.dropped) == (2, 1) and len(hooks) == 1
    db.session.expire_all()
    assert db.session.get(AlertChannel, hook.id).dropped == 1
    assert "over its rate limit" in caplog.text

    pve.clear_requests()
    assert evaluate_alerts_task.call_local() and not evaluate_alerts_task.call_local()  # once per interval
    assert pve.count_requests("GET", "/cluster/resources") == 1

    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log"))
    assert "apprise" in {r.name.split(".")[0] for r in caplog.records}  # Apprise did log, with the URL blanked
    assert TOKEN not in ours and MAIL_PASSWORD not in ours and hook_url not in ours
