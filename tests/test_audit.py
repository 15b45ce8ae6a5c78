"""The audit log: what gets recorded (who, when, from where, on what, how it ended), the /audit page and its
filters, the CSV export, retention, and a hook that never breaks the request. SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from app.audit import record
from app.audit.services import Swept, safe_cell, sweep_retention
from app.credentials import store_service_credentials
from app.extensions import db as _db
from app.models import AuditEntry, Container, Event, Operation, Service, utcnow
from app.models.user import LoginAttempt
from tests.fixtures.app import TEST_PASSWORD, AuthActions

HX = {"HX-Request": "true"}
# What does not depend on the database runs on SQLite alone; queries, deletes and failures run on both.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def entries(**where) -> list[AuditEntry]:
    """The audit entries matching ``where`` (column=value), oldest first, read afresh."""
    _db.session.rollback()
    return list(_db.session.scalars(select(AuditEntry).filter_by(**where).order_by(AuditEntry.id)))


def one(**where) -> AuditEntry:
    found = entries(**where)
    assert len(found) == 1, [(e.action, e.outcome, e.target) for e in entries()]
    return found[0]


def signed_in(app, username: str, role: str = "admin") -> AuthActions:
    """A client of its own, signed in as a new user ``username`` with ``role``."""
    from app.auth.services import create_user

    create_user(username, TEST_PASSWORD, role=role)
    _db.session.commit()
    actions = AuthActions(app.test_client(), app)
    assert actions.login(username, create=False).status_code == 302
    return actions


# -- what is recorded -------------------------------------------------------------------------------------


def test_sign_in_success_and_failure_are_recorded_with_name_address_and_time(auth, db):
    auth.create_user("alice")
    before = utcnow()
    assert auth.login("alice", password="wrong guess", create=False).status_code == 200
    assert auth.login("alice", create=False).status_code == 302
    failed, succeeded = entries(action="auth.sign_in")
    assert (failed.outcome, failed.username, failed.user_id, failed.ip, failed.channel) == \
        ("failed", "alice", None, "127.0.0.1", "web")
    assert succeeded.outcome == "succeeded" and succeeded.username == "alice" and succeeded.user_id is not None
    assert before <= failed.created_at <= succeeded.created_at <= utcnow()
    assert "wrong guess" not in json.dumps([failed.detail, succeeded.detail])


def test_a_lifecycle_action_is_recorded_once_with_its_container(logged_in, db, pve):
    response = logged_in.post("/containers/100/actions/stop", {"view": "card"}, headers=HX)
    assert response.status_code == 200
    entry = one(action="container.stop")
    container = Container.current(100)
    assert (entry.outcome, entry.username, entry.ip, entry.vmid, entry.container_id) == \
        ("succeeded", "alice", "127.0.0.1", 100, container.id)
    assert entry.target == "CT 100 (web01)"
    assert entry.detail["path"] == "/containers/100/actions/stop" and entry.detail["method"] == "POST"
    assert [e.action for e in entries()] == ["auth.sign_in", "container.stop"]  # the poll (a GET) is not recorded


@sqlite_only
def test_how_proxmox_ended_the_task_is_recorded_for_the_user_who_asked(logged_in, client, db, pve):
    pve.faults.fail_next_task(type="vzstart", vmid=104, message="unable to mount rootfs")
    logged_in.post("/containers/104/actions/start", {"view": "card"}, headers=HX)
    logged_in.post("/containers/100/actions/stop", {"view": "card"}, headers=HX)
    pve.wait_idle(5)
    for operation in db.session.scalars(select(Operation)).all():  # what a page polling the spinner does
        assert client.get(f"/containers/{operation.container.vmid}/operations/{operation.id}").status_code == 200
    started, stopped = entries(channel="worker", action="container.start"), entries(channel="worker", action="container.stop")
    assert [(e.outcome, e.username, e.ip, e.target) for e in started] == [("failed", "alice", None, "CT 104 (mail01)")]
    assert "unable to mount rootfs" in started[0].detail["result"]
    assert [(e.outcome, e.username, e.user_id is not None) for e in stopped] == [("succeeded", "alice", True)]
    asked = [(e.action, e.outcome) for e in entries(channel="web") if e.action.startswith("container.")]
    assert asked == [("container.start", "succeeded"), ("container.stop", "succeeded")]  # accepted, recorded once


@sqlite_only
def test_an_action_the_container_refuses_is_recorded_as_failed_with_the_message(logged_in, db, pve):
    response = logged_in.post("/containers/100/actions/start", {"next": "/"})  # CT 100 runs already
    assert response.status_code == 302  # a plain form: flashed error, then back
    entry = one(action="container.start")
    assert entry.outcome == "failed" and "already running" in entry.detail["message"]
    htmx = logged_in.post("/containers/100/actions/start", {"view": "card"}, headers=HX)
    assert htmx.status_code == 200  # htmx: the card again, with a danger toast
    assert [e.outcome for e in entries(action="container.start")] == ["failed", "failed"]


def test_an_action_on_a_cluster_that_does_not_exist_is_a_404_recorded_under_that_name(logged_in, db, pve, caplog):
    response = logged_in.post("/clusters/nowhere/containers/100/actions/stop", {"next": "/"})
    assert response.status_code == 404
    entry = one(action="container.stop")
    assert (entry.outcome, entry.target, entry.vmid, entry.container_id) == ("failed", "nowhere/CT 100", 100, None)
    assert not [r for r in caplog.records if "lost" in r.getMessage()]


@sqlite_only
def test_a_refused_post_is_recorded_as_refused(app, db, pve):
    viewer = signed_in(app, "victor", role="viewer")
    response = viewer.post("/containers/100/actions/stop", {"next": "/"})
    assert response.status_code == 403
    entry = one(action="container.stop")
    assert (entry.outcome, entry.username, entry.vmid, entry.target) == ("refused", "victor", 100, "CT 100 (web01)")
    assert pve.containers[100].status == "running"


@sqlite_only
def test_a_form_sent_back_with_errors_is_recorded_as_failed_and_a_good_one_as_succeeded(logged_in, db, pve):
    form = {"name": "", "description": "", "cores": "1", "memory": "512", "swap": "0", "disk": "4", "tags": "",
            "unprivileged": "y"}
    bad = logged_in.post("/templates/new", form)
    assert bad.status_code == 200 and "is-invalid" in bad.text
    good = logged_in.post("/templates/new", {**form, "name": "audited"})
    assert good.status_code == 302
    failed, succeeded = entries(action="template.create")
    assert failed.outcome == "failed" and failed.detail["invalid"] == ["name"]
    assert succeeded.outcome == "succeeded"
    template_id = int(good.headers["Location"].split("/")[2])
    edit = logged_in.post(f"/templates/{template_id}/duplicate")
    assert edit.status_code in (302, 303)
    assert one(action="template.duplicate").target == "template audited"


@sqlite_only
def test_a_post_without_its_csrf_token_is_recorded_as_failed(logged_in, client, db, pve):
    assert client.post("/containers/100/actions/stop", data={"next": "/"}).status_code == 400
    entry = one(action="container.stop")
    assert entry.outcome == "failed" and entry.detail["status"] == 400


@sqlite_only
def test_credential_reveal_is_recorded_with_the_labels_never_the_values(logged_in, db, pve):
    container = Container(vmid=100, node="pve1", hostname="web01")
    db.session.add(container)
    db.session.flush()
    service = Service(container_id=container.id, name="grafana", kind="application", status="running")
    db.session.add(service)
    db.session.flush()
    store_service_credentials(service, {"username": "admin", "password": "pa55-Wörd<&>"})
    db.session.commit()
    response = logged_in.post(f"/containers/100/services/{service.id}/credentials", headers=HX)
    assert response.status_code == 200 and "pa55" in response.text
    entry = one(action="credential.reveal")
    assert (entry.outcome, entry.container_id, entry.vmid, entry.target) == ("succeeded", container.id, 100, "CT 100 (web01)")
    assert entry.detail["service"] == "grafana" and sorted(entry.detail["labels"]) == ["password", "username"]
    stored = json.dumps([[e.target, e.detail] for e in entries()], ensure_ascii=False)
    assert "pa55" not in stored
    client = logged_in._client
    assert "pa55" not in client.get("/audit").text and "pa55" not in client.get("/audit.csv", buffered=True).text


@sqlite_only
def test_preferences_reads_and_strangers_are_not_recorded(auth, client, db, pve):
    assert client.post("/containers/100/actions/stop", data={}).status_code in (302, 400)  # a stranger: refused
    auth.login()
    assert client.get("/").status_code == 200 and client.get("/containers/100").status_code == 200
    assert auth.post("/theme", {"theme": "dark", "next": "/"}).status_code == 302
    assert [e.action for e in entries()] == ["auth.sign_in"]


@sqlite_only
def test_a_sign_out_is_recorded_for_the_user_who_left(logged_in, client, db):
    assert logged_in.post("/logout").status_code == 302
    entry = one(action="auth.sign_out")
    assert entry.username == "alice" and entry.outcome == "succeeded"


@sqlite_only
def test_a_throttled_sign_in_is_recorded_as_refused(app, db, pve):
    app.extensions["login_throttle"].reset()
    client = app.test_client()
    actions = AuthActions(client, app)
    actions.create_user("alice")
    statuses = [actions.login("alice", password=f"wrong {i}", create=False).status_code for i in range(6)]
    assert statuses == [200] * 5 + [429]
    refused = one(action="auth.sign_in", outcome="refused")
    assert refused.username == "alice" and refused.detail["reason"] == "too many failed sign-ins"
    assert len(entries(action="auth.sign_in", outcome="failed")) == 5


@sqlite_only
def test_requests_with_an_api_token_are_recorded_reads_included(app, db, pve):
    from app.auth.tokens import create_token
    from app.auth.services import create_user

    db.session.add(Container(vmid=100, node="pve1", hostname="web01"))
    user = create_user("scripter", TEST_PASSWORD, role="operator")
    token, secret = create_token(user, "backup script", "operator", None)
    db.session.commit()
    client = app.test_client()
    bearer = {"Authorization": f"Bearer {secret}"}
    assert client.get("/containers/100", headers=bearer).status_code == 200
    assert client.post("/containers/100/actions/stop", headers={**bearer, **HX}, data={"view": "card"}).status_code == 200
    read, stop = [e for e in entries(channel="token")]
    assert read.action == "container.detail" and read.outcome == "succeeded" and read.target == "CT 100 (web01)"
    assert stop.action == "container.stop" and stop.username == "scripter" and stop.token_id == token.id
    assert secret not in json.dumps([[e.target, e.detail] for e in entries()])


def test_the_hook_never_breaks_the_request_when_the_database_fails(logged_in, db, pve, caplog):
    def fail_audit_insert(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_LOG"):
            raise OperationalError(statement, parameters, Exception("server closed the connection unexpectedly"))

    event.listen(db.engine, "before_cursor_execute", fail_audit_insert)
    try:
        response = logged_in.post("/containers/100/actions/stop", {"view": "card"}, headers=HX)
    finally:
        event.remove(db.engine, "before_cursor_execute", fail_audit_insert)
    assert response.status_code == 200  # the action's answer stands
    assert db.session.scalar(select(Operation).filter_by(action="stop")) is not None  # and so does the action
    assert entries(action="container.stop") == []
    assert "audit entry for POST /containers/100/actions/stop (succeeded) lost" in caplog.text
    assert logged_in._client.get("/").status_code == 200  # the next request is served as usual


@sqlite_only
def test_the_events_tab_names_who_requested_what_an_event_reports(logged_in, client, db):
    container = Container(vmid=100, node="pve1", hostname="web01")
    db.session.add(container)
    db.session.flush()
    db.session.add(Operation(container_id=container.id, action="stop", state="succeeded", upid="UPID:pve1:1:stop",
                             requested_by="bob"))
    db.session.add(Event(container_id=container.id, type="complete", message="web01 (CT 100) is stopped.",
                         meta={"action": "stop", "upid": "UPID:pve1:1:stop"}))
    db.session.add(Event(container_id=container.id, type="step", message="Stop requested by bob",
                         meta={"action": "stop", "upid": "UPID:pve1:1:stop"}))
    db.session.commit()
    html = client.get("/containers/100/events").text
    assert html.count('data-testid="event-by"') == 1  # the message that already names bob says it once
    assert "requested by bob" in html.split("is stopped.")[1].split("</li>")[0]


@sqlite_only
def test_actions_are_named_and_targeted_from_the_url(app, db):
    from app.audit.naming import describe
    from app.models import ContainerTemplate

    template = ContainerTemplate(name="web", description="", tags="")
    db.session.add_all([template, Container(vmid=104, node="pve2", hostname="mail01")])
    db.session.commit()
    stop = describe("containers.run_action", {"vmid": 104, "action": "stop"})
    assert (stop.action, stop.target, stop.vmid, stop.detail) == ("container.stop", "CT 104 (mail01)", 104, {})
    service = describe("container_templates.save_service", {"template_id": template.id, "service_id": 7})
    assert (service.action, service.target, service.detail) == ("template.save_service", "template web", {"service_id": 7})
    assert describe("users.set_role", {"user_id": 999}).target == "user 999"  # gone since: its id stays
    assert describe("containers.run_action", {"vmid": 555, "action": "start"}).target == "CT 555"
    assert describe("container_templates.delete_bucket", {"bucket_id": 3}).action == "package_list.delete"


# -- the page, its filters and the export -----------------------------------------------------------------


@pytest.fixture
def log(app, db):
    """Entries by alice and bob over three days, on CT 100 (web01) and CT 104 (mail01)."""
    web = Container(vmid=100, node="pve1", hostname="web01")
    mail = Container(vmid=104, node="pve2", hostname="mail01")
    db.session.add_all([web, mail])
    db.session.flush()
    now = utcnow()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rows = [
        ("alice", "container.stop", web, "succeeded", now - timedelta(days=2)),
        ("bob", "container.start", mail, "failed", now - timedelta(days=1)),
        # an hour ago, but today even just after midnight (yesterday is the one-day filter's test)
        ("bob", "template.create", None, "succeeded", max(now - timedelta(hours=1), midnight)),
        ("alice", "credential.reveal", mail, "refused", now),
    ]
    for name, action, container, outcome, when in rows:
        entry = record(action, outcome=outcome, username=name, container=container, channel="web",
                       target=f"CT {container.vmid} ({container.hostname})" if container else "template web")
        entry.created_at = when
    db.session.commit()
    return now


def listed(client, query: str = "") -> list[tuple[str, str]]:
    html = client.get(f"/audit?{query}").text
    rows = html.split('data-testid="audit-row"')[1:]
    return [(row.split('data-action="')[1].split('"')[0],
             row.split('data-testid="audit-user">')[1].split("<")[0].strip()) for row in rows]


def test_the_audit_page_lists_newest_first_and_links_existing_containers(logged_in, client, log):
    page = client.get("/audit")
    assert page.status_code == 200
    assert listed(client) == [("credential.reveal", "alice"), ("auth.sign_in", "alice"), ("template.create", "bob"),
                              ("container.start", "bob"), ("container.stop", "alice")]
    assert '<a href="/containers/104">CT 104 (mail01)</a>' in page.text
    suggested = page.text.split('id="audit-actions"')[1].split("</datalist>")[0]
    assert '<option value="container.stop">' in suggested and suggested.count("<option") == 5
    assert '<option value="alice">' in page.text.split('id="audit-users"')[1]
    assert 'href="/audit"' in client.get("/").text  # in the sidebar, for an admin


FILTERS = [
    ("user=bob", [("template.create", "bob"), ("container.start", "bob")]),
    ("user=BOB&action=container", [("container.start", "bob")]),
    ("action=container.stop", [("container.stop", "alice")]),
    ("action=container.st", []),  # a whole name or a dotted prefix, never half a word
    ("container=104", [("credential.reveal", "alice"), ("container.start", "bob")]),
    ("container=web01", [("container.stop", "alice")]),
    ("container=WEB", []),
    ("outcome=refused", [("credential.reveal", "alice")]),
]


def test_the_audit_page_filters(logged_in, client, log):
    assert {query: listed(client, query) for query, _ in FILTERS} == dict(FILTERS)


def test_the_audit_page_filters_by_time(logged_in, client, log):
    day = (log - timedelta(days=1)).strftime("%Y-%m-%d")
    assert listed(client, f"since={day}&until={day}") == [("container.start", "bob")]
    since = (log - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    assert [action for action, _ in listed(client, f"since={since}")] == ["credential.reveal", "auth.sign_in",
                                                                          "template.create"]


BAD_FILTERS = [
    ("since=yesterday", "Not a time: write it as YYYY-MM-DD"),
    ("since=2026-05-02&until=2026-05-01", "“To” is before “From”."),
    ("outcome=maybe", "Pick one of: succeeded, failed, refused."),
]


@sqlite_only
def test_bad_filters_get_a_clear_message_and_list_nothing(logged_in, client, log):
    for query, message in BAD_FILTERS:
        page = client.get(f"/audit?{query}")
        assert page.status_code == 400 and message in page.text, query
        assert 'data-testid="audit-row"' not in page.text and 'data-testid="audit-bad-filter"' in page.text
        export = client.get(f"/audit.csv?{query}", buffered=True)
        assert export.status_code == 400 and message in export.text, query


def test_the_audit_page_is_paginated_on_the_server(logged_in, client, db):
    for i in range(120):
        record("container.stop", username="alice", target=f"CT {1000 + i}", channel="web")
    db.session.commit()
    first = client.get("/audit?user=alice").text
    assert first.count('data-testid="audit-row"') == 50 and 'href="/audit?page=3&amp;user=alice"' in first
    third = client.get("/audit?user=alice&page=3").text
    assert third.count('data-testid="audit-row"') == 21  # 120 + the sign-in


@sqlite_only
def test_the_audit_page_is_for_admins_only(app, db, log):
    operator = signed_in(app, "olga", role="operator")
    assert operator._client.get("/audit").status_code == 403
    assert operator._client.get("/audit.csv").status_code == 403
    assert 'href="/audit"' not in operator._client.get("/").text


def test_the_csv_export_holds_the_filtered_rows_with_a_header(logged_in, client, log):
    response = client.get("/audit.csv?user=bob", buffered=True)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="proxboard-audit-')
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["time", "user", "address", "channel", "action", "target", "vmid", "outcome", "detail"]
    assert [(r[1], r[4], r[5], r[6], r[7]) for r in rows[1:]] == [
        ("bob", "template.create", "template web", "", "succeeded"),
        ("bob", "container.start", "CT 104 (mail01)", "104", "failed"),
    ]


def test_the_csv_is_streamed_in_batches_and_a_client_hanging_up_costs_nothing(logged_in, client, log, monkeypatch):
    from app.audit import services

    monkeypatch.setattr(services, "CSV_BATCH", 2)
    response = client.get("/audit.csv")
    chunks = iter(response.response)
    assert next(chunks).startswith(b"time,user,") and next(chunks).count(b"\n") == 2  # the header, then 2 rows
    response.close()  # the client hung up: the export's own session is closed, nothing is left open
    rows = list(csv.reader(io.StringIO(client.get("/audit.csv", buffered=True).text)))
    assert len(rows) == 1 + 5 and rows[-1][4] == "container.stop"


@sqlite_only
def test_the_csv_export_cannot_smuggle_a_formula_into_a_spreadsheet(logged_in, client, db):
    auth = logged_in
    assert auth.login("=HYPERLINK(\"http://evil\")", password="x", create=False).status_code == 200
    record("template.create", target="+SUM(A1)", detail={"note": "-1"}, channel="web")
    db.session.commit()
    rows = list(csv.reader(io.StringIO(client.get("/audit.csv", buffered=True).text)))
    cells = [cell for row in rows[1:] for cell in row]
    assert "'=HYPERLINK(\"http://evil\")" in cells and "'+SUM(A1)" in cells
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@")]
    assert [safe_cell(v) for v in ("@x", "-2", "\tx", "plain", None, 104)] == ["'@x", "'-2", "'\tx", "plain", "", "104"]


# -- retention ------------------------------------------------------------------------------------------


def test_the_retention_sweep_deletes_old_entries_and_login_attempts_in_batches(app, db):
    app.config.update(AUDIT_RETENTION_DAYS=30, LOGIN_ATTEMPTS_RETENTION_DAYS=7)
    now = utcnow()
    for days in (0, 6, 8, 29, 31, 400):
        entry = record("container.stop", username="alice", target=f"{days} days old", channel="worker")
        entry.created_at = now - timedelta(days=days)
        db.session.add(LoginAttempt(username="alice", outcome="failed", created_at=now - timedelta(days=days)))
    for _ in range(5):
        record("container.start", username="alice", channel="worker").created_at = now - timedelta(days=90)
    db.session.commit()
    swept = sweep_retention(batch=2)
    assert (swept.audit_entries, swept.login_attempts) == (7, 4)
    assert sorted(e.target for e in entries()) == ["0 days old", "29 days old", "6 days old", "8 days old"]
    ages = sorted((now - a.created_at).days for a in db.session.scalars(select(LoginAttempt)))
    assert ages == [0, 6]
    assert sweep_retention() == Swept(0, 0)


@sqlite_only
def test_retention_zero_keeps_everything(app, db):
    app.config.update(AUDIT_RETENTION_DAYS=0, LOGIN_ATTEMPTS_RETENTION_DAYS=0)
    record("container.stop", username="alice", channel="worker").created_at = utcnow() - timedelta(days=4000)
    db.session.add(LoginAttempt(username="alice", outcome="failed", created_at=utcnow() - timedelta(days=4000)))
    db.session.commit()
    assert sweep_retention() == Swept(0, 0)
    assert len(entries()) == 1


@sqlite_only
def test_the_worker_runs_the_retention_sweep_hourly(app, db):
    from datetime import datetime

    from app import jobs
    from app.audit.tasks import audit_retention_task, sweep_retention_logged

    assert "app.audit.tasks" in jobs.TASK_MODULES and sweep_retention_logged in jobs._sweeps
    due = [task.name for task in jobs.huey.read_periodic(datetime(2026, 11, 30, 3, 41))]
    assert any(name.endswith("audit_retention_task") for name in due)
    assert not any(name.endswith("audit_retention_task") for name in
                   (task.name for task in jobs.huey.read_periodic(datetime(2026, 11, 30, 3, 42))))
    record("container.stop", username="alice", channel="worker").created_at = utcnow() - timedelta(days=366)
    db.session.commit()
    assert audit_retention_task.call_local() == 1 and entries() == []
