"""Roles: the permission map covers every endpoint, and the server holds each role to it, on SQLite and PostgreSQL.

The walk (``test_every_role_at_every_url``) signs in a viewer, an operator and an admin and sends, for each
rule of ``app.url_map`` and each method it allows, one request with real ids (a container the simulator has,
a template with its parts, a bucket, an operation, a service):

- where the map refuses the role, the real view is in place and the request carries a valid CSRF token
  (Flask-WTF checks CSRF *before* the role check: a CSRF-less POST would be answered 400 and prove nothing).
  It must answer 403 naming the role needed, and so must its htmx variant, with the message as a toast;
  nothing in the database may change (every table but the audit log, which gains the refusal, and the
  sessions' last-seen time), so a view that ran anyway would show;
- where the map allows the role, every view function is swapped for a stub answering "reached <endpoint>":
  the request went through CSRF, the sign-in check and the role check and arrived at its view. Nothing slow
  runs (no Proxmox action, no provisioning), and no allowed sign-out ends the walk's session.

One app per database, module scope: the walk is a few hundred requests. What the map *says* is checked apart
(``test_the_map_says_what_the_issue_asks``): the walk proves enforcement matches the map, not that the map
is right.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import uuid
from types import SimpleNamespace

import pytest
from flask import g, request
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import make_url

from app import create_app
from app.auth import PUBLIC_ENDPOINTS
from app.auth.roles import PERMISSIONS, allows, can, current_role, enforce, refusal, rule_for, unclassified
from app.containers.services import ACTIONS
from app.extensions import db as _db
from app.models import AuditEntry, Container, ROLES
from tests.fixtures.app import TEST_PASSWORD, IsolatedClient, app_config, csrf_token_from
from tests.fixtures.clusters import register_cluster
from tests.fixtures.database import _drop_database
from tests.fixtures.factories import make_container, make_operation, make_services, make_user

# Tables a refused request may touch: the refusal is audited, the session's last-seen time moves.
BOOKKEEPING = {"audit_log", "user_sessions", "login_attempts", "alembic_version"}
# Values for URL parts that are not ids (every choice of an ``any(...)`` part is walked on its own).
STRING_PARTS = {"action": sorted(ACTIONS), "filename": ["wizard.css"], "cluster": ["lab"], "name": ["lab"]}


# -- the app the walk shares -------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def walk(request, tmp_path_factory, pve_sim_session, migrated_sqlite_template):
    """One app on a migrated database, a client signed in per role and the ids URLs point at."""
    folder = tmp_path_factory.mktemp("roles")
    drop = None
    if request.param == "sqlite":
        shutil.copyfile(migrated_sqlite_template, folder / "roles.db")
        url = f"sqlite:///{folder / 'roles.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        template = request.getfixturevalue("postgres_template")
        name = f"proxboard_test_{uuid.uuid4().hex[:12]}"
        admin_engine = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin_engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
        drop = (admin_engine, name)
    pve_sim_session.reset()
    application = create_app(app_config(url, pve_sim_session), instance_path=str(folder))
    application.test_client_class = IsolatedClient
    try:
        with application.app_context():
            if request.param == "sqlite":  # hundreds of one-row commits (sessions, audit): no fsync for each
                event.listen(_db.engine, "connect", lambda connection, _: connection.execute("PRAGMA synchronous=OFF"))
            register_cluster(application, pve_sim_session, "lab", folder)  # for /clusters/lab/… and its settings
            clients = {}
            for role in ROLES:
                make_user(role, role=role)
                client = application.test_client()
                login = client.get("/login")
                response = client.post("/login", data={"username": role, "password": TEST_PASSWORD,
                                                       "csrf_token": csrf_token_from(login.text)})
                assert response.status_code == 302, f"{role} could not sign in"
                clients[role] = SimpleNamespace(client=client, token=csrf_token_from(client.get("/about").text))
            assert clients["admin"].client.get("/").status_code == 200  # records the simulator's containers
            yield SimpleNamespace(app=application, clients=clients, ids=seed())
            _db.session.remove()
            _db.engine.dispose()
    finally:
        if drop:
            _drop_database(*drop)
            drop[0].dispose()


def seed() -> dict:
    """Rows for every id a URL names: a template with a script, file, package and service, a bucket with a
    package, an operation and a service on a container the simulator has."""
    from app.container_templates.services import (
        add_package, add_script, create_bucket, create_template, save_file, save_service,
    )

    container = _db.session.scalar(select(Container).order_by(Container.vmid))
    operation = make_operation(container, action="start", state="succeeded")
    service = make_services(container, 1)[0]
    template = create_template({"name": "base", "description": "", "cores": 1, "memory": 512, "swap": 0, "disk": 4,
                                "tags": ["web"], "ostemplate": None, "unprivileged": True, "nesting": False,
                                "keyctl": False, "fuse": False, "storage": None, "bridge": None})
    script = add_script(template, "setup", "echo hi\n")
    file = save_file(template, {"name": "site.conf", "target_path": "/etc/nginx", "policy": "replace", "content": "x"})
    package = add_package(template, "apt", "curl", None)
    bucket = create_bucket("tools")
    bucket_package = add_package(bucket, "pip", "httpie", "3.2.4")
    save_service(template, {"name": "web", "unit": None, "port": 80, "scheme": "http", "web_path": "/"})
    return {"vmid": container.vmid, "template_id": template.id, "bucket_id": bucket.id, "operation_id": operation.id,
            "service_id": service.id, "script_id": script.id, "file_id": file.id, "item_id": package.id,
            "package_id": bucket_package.id, "session_id": 1}


def requests_to_send(app, ids: dict):
    """(endpoint, method, URL, URL arguments) for every rule, method and choice of its parts."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.websocket:
            continue  # a handshake the test client cannot make: tests/test_console.py opens it for real, per role
        choices = []
        for name, converter in rule._converters.items():
            if type(converter).__name__ == "AnyConverter":
                choices.append([(name, item) for item in sorted(converter.items)])
            elif name in STRING_PARTS:
                choices.append([(name, value) for value in STRING_PARTS[name]])
            else:
                choices.append([(name, ids.get(name, 1))])
        for combo in itertools.product(*choices):
            values = dict(combo)
            if rule.endpoint == "static":
                values["filename"] = "css/app.css"
            url = rule.build(values, append_unknown=False)[1]
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule.endpoint, method, url, values


def snapshot() -> str:
    """A digest of every row of every table but the bookkeeping ones."""
    _db.session.expire_all()
    digest = hashlib.sha256()
    for table in _db.metadata.sorted_tables:
        if table.name in BOOKKEEPING:
            continue
        for row in _db.session.execute(select(table).order_by(*table.primary_key.columns)):
            digest.update(repr((table.name, tuple(row))).encode())
    _db.session.rollback()
    return digest.hexdigest()


def refusals_recorded() -> int:
    count = _db.session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.outcome == "refused"))
    _db.session.rollback()
    return count


class StubViews:
    """Every view answers "reached <endpoint>" while active: what got there passed every check before it."""

    def __init__(self, app):
        self.app = app

    def __enter__(self):
        self.saved = dict(self.app.view_functions)
        for endpoint in self.saved:
            self.app.view_functions[endpoint] = lambda **_: f"reached {request.endpoint}"
        return self

    def __exit__(self, *exc):
        self.app.view_functions.update(self.saved)


# -- the walk ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_role_at_every_url(walk, role):
    """Refused: 403 page and htmx toast naming the role needed, nothing changed, the refusal audited.
    Allowed: the request reaches its view."""
    session = walk.clients[role]
    client, problems, refused, allowed = session.client, [], 0, 0
    state = snapshot()  # what the database holds before each refused request (allowed ones reach a stub)
    for endpoint, method, url, values in requests_to_send(walk.app, walk.ids):
        rule = rule_for(endpoint, values)
        data = {"csrf_token": session.token} if method != "GET" else None
        if allows(role, rule):
            allowed += 1
            with StubViews(walk.app):
                response = client.open(url, method=method, data=data)
            if response.status_code != 200 or response.text != f"reached {endpoint}":
                problems.append(f"{role} {method} {url}: allowed but answered {response.status_code}")
            continue
        refused += 1
        audited = refusals_recorded()
        page = client.open(url, method=method, data=data)
        fragment = client.open(url, method=method, data=data, headers={"HX-Request": "true"})
        needed = {"operator": "Operators and admins can", "admin": "Admins can"}[rule.role]
        if page.status_code != 403 or needed not in page.text or f"you are {'an' if role[0] in 'ao' else 'a'} {role}" not in page.text:
            problems.append(f"{role} {method} {url}: expected the 403 page naming {rule.role}, got {page.status_code}")
        toast = json.loads(fragment.headers.get("HX-Trigger") or "{}").get("toast") or {}
        if url.startswith("/api/"):  # the JSON API: a problem document whatever the headers, never a toast
            if fragment.status_code != 403 or fragment.mimetype != "application/problem+json" \
                    or fragment.json.get("needs") != rule.role:
                problems.append(f"{role} {method} {url}: expected a problem+json 403, got {fragment.mimetype}")
        elif fragment.status_code != 403 or not toast.get("message", "").startswith(needed) or toast.get("category") != "danger":
            problems.append(f"{role} {method} {url} (htmx): expected 403 with a toast, got {fragment.status_code} {toast}")
        if (after := snapshot()) != state:
            problems.append(f"{role} {method} {url}: refused, yet the database changed")
        state = after
        if refusals_recorded() != audited + 2:
            problems.append(f"{role} {method} {url}: the refusals were not both audited")
    assert problems == []
    expected_refusals = {"viewer": 60, "operator": 40, "admin": 0}[role]
    assert refused >= expected_refusals and allowed > 20, (refused, allowed)


def test_a_refusal_is_audited_with_who_what_and_the_role_needed(walk):
    session = walk.clients["viewer"]
    vmid = walk.ids["vmid"]
    response = session.client.post(f"/containers/{vmid}/actions/stop", data={"csrf_token": session.token})
    assert response.status_code == 403
    assert "Operators and admins can stop containers; you are a viewer. Ask an admin." in response.text
    entry = _db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert (entry.outcome, entry.username, entry.vmid) == ("refused", "viewer", vmid)
    assert "stop" in entry.action  # named by app.audit from the endpoint (container.stop)
    assert {"method": "POST", "needs": "operator", "role": "viewer"}.items() <= entry.detail.items()
    assert str(vmid) in entry.target
    _db.session.rollback()


# -- what the map says ---------------------------------------------------------------------------


def test_every_endpoint_is_in_the_map(walk):
    """A new view nobody classified fails here (and answers 403 to all but admins meanwhile)."""
    assert unclassified(walk.app) == []


def test_the_account_prefix_covers_only_the_signed_in_users_own_pages(walk):
    """``auth.`` is open to viewers as a whole: each of its signed-in URLs must be the user's own account (an
    ``auth.`` view acting on other people would need its own line in the map)."""
    for rule in walk.app.url_map.iter_rules():
        if rule.endpoint.startswith("auth.") and rule.endpoint not in PUBLIC_ENDPOINTS | set(PERMISSIONS):
            assert rule.rule.startswith(("/account", "/logout", "/theme")), rule.rule


# (endpoint, URL arguments) -> the lowest role, straight from the issue.
ISSUE = {
    ("dashboard.index", ()): "viewer",
    ("containers.detail", ()): "viewer",
    ("containers.detail_tab", ()): "viewer",
    ("container_templates.index", ()): "viewer",
    ("container_templates.detail", ()): "viewer",
    ("container_templates.export", ()): "viewer",
    ("about.index", ()): "viewer",
    ("auth.password", ()): "viewer",
    ("auth.sessions", ()): "viewer",
    ("auth.theme", ()): "viewer",
    ("containers.run_action", (("action", "start"),)): "operator",
    ("containers.run_action", (("action", "stop"),)): "operator",
    ("containers.run_action", (("action", "shutdown"),)): "operator",
    ("containers.run_action", (("action", "reboot"),)): "operator",
    ("containers.refresh_services", ()): "operator",
    ("containers.reveal_credentials", ()): "operator",
    ("wizard.start", ()): "operator",
    ("wizard.create", ()): "operator",
    ("containers.run_action", (("action", "delete"),)): "admin",
    ("containers.confirm_action", (("action", "delete"),)): "admin",
    ("containers.progress_delete", ()): "admin",
    ("container_templates.create", ()): "admin",
    ("container_templates.edit", ()): "admin",
    ("container_templates.import_file", ()): "admin",
    ("container_templates.delete", ()): "admin",
    ("users.index", ()): "admin",
    ("audit.index", ()): "admin",
    ("alerts.index", ()): "viewer",
    ("alerts.history", ()): "viewer",
    ("alerts.mute", ()): "operator",
    ("alerts.add_maintenance", ()): "operator",
    ("alerts.create_rule", ()): "admin",
    ("alerts.create_channel", ()): "admin",
    ("alerts.test_channel", ()): "admin",
}
# GET pages that are only the form of an action: they need that action's role.
ACTION_FORMS = {"containers.confirm_action", "wizard.start", "wizard.node_fields", "wizard.review",
                "containers.snapshot_new", "containers.snapshot_confirm_rollback", "containers.snapshot_confirm_delete",
                "containers.backup_form", "containers.backup_restore_form", "containers.backup_delete_form",
                "bulk.confirm", "containers.config_edit", "containers.config_net_new", "containers.config_net_edit",
                "containers.config_net_confirm_remove", "containers.console", "containers.console_ws",
                "containers.clone_form", "containers.migrate_form", "containers.template_form",
                "containers.disk_grow_form", "containers.mount_point_form"}
ADMIN_AREAS = ("users.", "audit.", "settings.")  # the issue: users, settings (and the audit log) are for admins


@pytest.mark.parametrize(("endpoint", "values"), sorted(ISSUE), ids=lambda v: str(v))
def test_the_map_says_what_the_issue_asks(endpoint, values):
    assert rule_for(endpoint, dict(values)).role == ISSUE[(endpoint, values)]


def test_every_read_only_page_is_open_to_viewers_and_every_change_needs_more(walk):
    """GET-only endpoints (pages, fragments, polls) are for everyone, but the forms of an action; every
    POST-only endpoint outside the user's own account needs an operator at least."""
    rules = {}
    for rule in walk.app.url_map.iter_rules():
        rules.setdefault(rule.endpoint, set()).update(rule.methods - {"HEAD", "OPTIONS"})
    for endpoint, methods in rules.items():
        if endpoint in PUBLIC_ENDPOINTS:
            continue
        rule = PERMISSIONS.get(endpoint)
        roles = {r.role for r in rule.rules.values()} if hasattr(rule, "rules") else {rule_for(endpoint).role}
        if endpoint.startswith(ADMIN_AREAS):
            assert roles == {"admin"}, endpoint
        elif methods == {"GET"} and endpoint not in ACTION_FORMS:
            assert roles == {"viewer"}, endpoint
        elif methods == {"POST"} and not endpoint.startswith("auth."):
            assert "viewer" not in roles, endpoint


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the check reads no table of its own
def test_an_unclassified_endpoint_is_refused_to_all_but_admins(app, make):
    """A view added without a line in the map: operators get 403, admins get through, and it is listed."""
    app.add_url_rule("/unmapped", "unmapped", lambda: "open")
    assert unclassified(app) == ["unmapped"]
    answers = {}
    for role in ("operator", "admin"):
        make.user(role, role=role)
        client = app.test_client()
        client.post("/login", data={"username": role, "password": TEST_PASSWORD,
                                    "csrf_token": csrf_token_from(client.get("/login").text)})
        answers[role] = client.get("/unmapped")
    assert answers["operator"].status_code == 403
    assert "Admins can use this page; you are an operator. Ask an admin." in answers["operator"].text
    assert (answers["admin"].status_code, answers["admin"].text) == (200, "open")


def test_an_api_token_acts_with_its_own_role_never_above_its_owners(walk):
    """With a token, ``current_role`` is the lower of the token's role and its owner's (a script held below its
    owner; an owner demoted since takes it down)."""
    admin = SimpleNamespace(role="admin")
    with walk.app.app_context(), walk.app.test_request_context():
        g.user = admin
        assert current_role() == "admin" and can("containers.run_action", action="stop")
        g.api_token = SimpleNamespace(role="viewer", id=None)
        assert current_role() == "viewer"
        assert not can("containers.run_action", action="stop")
        assert refusal("containers.run_action", action="stop") == \
            "Operators and admins can stop containers; this API token is limited to viewer."
        assert can("containers.run_action", user=admin, action="delete")  # asking about a user ignores the token
        g.user, g.api_token = SimpleNamespace(role="viewer"), SimpleNamespace(role="operator", id=None)
        assert current_role() == "viewer"  # an owner demoted since takes the token down too
        g.api_token_role = "viewer"  # what app.auth.tokens sets: the lower of the two
        g.user = admin
        assert current_role() == "viewer"


def test_a_request_with_no_role_is_refused_should_the_sign_in_check_let_it_by(walk):
    """Fail closed: the role check does not rely on the sign-in check having sent strangers away."""
    with walk.app.app_context(), walk.app.test_request_context("/about"):
        g.user = None
        response = enforce()
        assert response.status_code == 403
        assert "Everyone can see this page; you are signed out. Ask an admin." in response.get_data(as_text=True)
    _db.session.rollback()


# -- what each role sees -------------------------------------------------------------------------


def test_a_viewer_sees_pages_without_the_controls_they_cannot_use(walk):
    client, vmid, ids = walk.clients["viewer"].client, walk.ids["vmid"], walk.ids
    dashboard = client.get("/").text
    assert 'data-testid="card-menu"' not in dashboard  # no action menu on any card
    assert 'data-testid="create-container"' not in dashboard
    header = client.get(f"/containers/{vmid}").text
    assert "Operators and admins can stop containers; you are a viewer." in header
    assert 'hx-post="/containers/' not in header.split('id="ct-header"')[1].split("</div>\n</div>")[0]
    services = client.get(f"/containers/{vmid}/services").text
    assert "Operators and admins can refresh services; you are a viewer." in services
    template = client.get(f"/templates/{ids['template_id']}").text
    assert "Admins can edit container templates; you are a viewer." in template
    assert f'href="/templates/{ids["template_id"]}/edit"' not in template
    assert f'/templates/{ids["template_id"]}/export' in template  # a download is reading
    index = client.get("/templates").text
    assert 'data-testid="import-form"' not in index and 'href="/templates/new"' not in index
    buckets = client.get("/templates/packages").text
    assert 'data-testid="read-only"' in buckets and "/templates/packages/new" not in buckets


def test_an_operator_sees_lifecycle_actions_but_not_delete_nor_template_editing(walk):
    client, vmid, ids = walk.clients["operator"].client, walk.ids["vmid"], walk.ids
    dashboard = client.get("/").text
    assert 'data-testid="card-menu"' in dashboard and 'data-testid="create-container"' in dashboard
    assert 'title="Admins can delete containers; you are an operator."' in dashboard
    header = client.get(f"/containers/{vmid}").text
    assert "Admins can delete containers; you are an operator." in header
    assert "Operators and admins can" not in header
    template = client.get(f"/templates/{ids['template_id']}").text
    assert "Admins can edit container templates; you are an operator." in template


def test_an_admin_sees_every_control(walk):
    client, vmid, ids = walk.clients["admin"].client, walk.ids["vmid"], walk.ids
    assert "you are an admin" not in client.get("/").text + client.get(f"/containers/{vmid}").text
    template = client.get(f"/templates/{ids['template_id']}").text
    assert f'href="/templates/{ids["template_id"]}/edit"' in template and "data-refused" not in template


def test_a_failed_creation_offers_retry_to_operators_and_delete_to_admins(walk):
    """The progress page of a failed creation: viewers see both buttons disabled with the reason, operators may
    retry, only admins delete (it deletes the guest in Proxmox)."""
    from app.provisioning.services import ACTION

    container = make_container(990, "pve1", lifecycle="error")
    make_operation(container, action=ACTION, state="failed", step="packages", error="apt failed")
    pages = {role: walk.clients[role].client.get("/containers/990/progress").text for role in ROLES}
    assert "Operators and admins can retry a failed creation; you are a viewer." in pages["viewer"]
    assert "Admins can delete containers; you are a viewer." in pages["viewer"]
    assert 'action="/containers/990/progress/retry"' not in pages["viewer"]
    assert 'action="/containers/990/progress/retry"' in pages["operator"]
    assert "Admins can delete containers; you are an operator." in pages["operator"]
    assert 'action="/containers/990/progress/delete"' not in pages["operator"]
    assert 'action="/containers/990/progress/delete"' in pages["admin"] and "data-refused" not in pages["admin"]
