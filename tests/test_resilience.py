"""Every page, with Proxmox or the database down or failing: a rendered page, never a server error;
bookkeeping that fails never fails what Proxmox did."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from app import create_app, jobs
from app.container_templates.services import create_template
from app.db_faults import counters
from app.extensions import db as _db
from app.models import Container, Event, Operation, utcnow
from tests.fixtures.app import AuthActions, IsolatedClient, app_config

FAULTS = {
    "unreachable": lambda sim: setattr(sim.faults, "unreachable", True),
    "500 everywhere": lambda sim: sim.faults.fail_path("GET", ".*", status=500, message="pveproxy exploded"),
    "401": lambda sim: setattr(sim.faults, "auth_fail", True),
}


def get_routes(app, values):
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        args = {}
        for name, converter in rule._converters.items():
            kind = type(converter).__name__
            args[name] = sorted(converter.items)[0] if kind == "AnyConverter" else values.get(name, 1)
        yield rule.build(args, append_unknown=False)[1]


@pytest.mark.parametrize("fault", FAULTS)
def test_no_page_fails_with_a_server_error_when_proxmox_does(logged_in, client, db, pve, fault):
    template = create_template({"name": "base", "description": "", "cores": 1, "memory": 512, "swap": 0, "disk": 4,
                                "tags": "", "ostemplate": None, "unprivileged": True, "nesting": False,
                                "keyctl": False, "fuse": False, "storage": None, "bridge": None})
    client.get("/")  # Proxboard remembers the cluster while Proxmox still answers
    db.session.add(Container(vmid=990, node="pve1", hostname="never-seen", lifecycle="ready", managed=True))
    db.session.commit()
    FAULTS[fault](pve)
    values = {"vmid": 100, "template_id": template.id, "id": template.id, "bucket_id": 1, "operation_id": 1,
              "service_id": 1, "op_id": 1}
    failures = []
    for url in get_routes(client.application, values):
        response = client.get(url)
        if response.status_code >= 500:
            failures.append((url, response.status_code))
    assert failures == []
    page = client.get("/")
    assert page.status_code == 200 and 'data-testid="proxmox-banner"' in page.text
    detail = client.get("/containers/100")
    assert detail.status_code == 200 and "web01" in detail.text


GARBAGE = {"name": "x" * 5000, "vmid": "-1", "cores": "many", "memory": "1e309", "tags": "Bad Tag!", "policy": "yolo",
           "manager": "cargo", "hostname": "-not-a-host-", "text": "\x00\x01", "view": "<script>", "next": "//evil",
           "choice": "999999", "target_path": "relative/path", "port": "99999", "order": "sideways"}


def test_garbage_posts_get_an_answer_not_a_server_error(logged_in, client, db, pve):
    template = create_template({"name": "base", "description": "", "cores": 1, "memory": 512, "swap": 0, "disk": 4,
                                "tags": "", "ostemplate": None, "unprivileged": True, "nesting": False,
                                "keyctl": False, "fuse": False, "storage": None, "bridge": None})
    values = {"vmid": 100, "template_id": template.id, "id": template.id, "bucket_id": 1, "operation_id": 1,
              "service_id": 1, "op_id": 1, "script_id": 1, "file_id": 1, "package_id": 1}
    failures = []
    for rule in client.application.url_map.iter_rules():
        if "POST" not in rule.methods or rule.endpoint == "auth.logout":
            continue
        args = {}
        for name, converter in rule._converters.items():
            kind = type(converter).__name__
            args[name] = sorted(converter.items)[0] if kind == "AnyConverter" else values.get(name, 1)
        url = rule.build(args, append_unknown=False)[1]
        for headers in ({}, {"HX-Request": "true"}):
            response = logged_in.post(url, dict(GARBAGE), headers=headers)
            if response.status_code >= 500:
                failures.append((url, headers, response.status_code))
    assert failures == []
    assert "<script>" not in client.get("/").text


# -- the database: a dropped connection, a database that stays down ------------------------------

class BackendKiller:
    """Terminates the backend of the app's next ``times`` statements (matching ``sql``) just before they run."""

    def __init__(self, engine, admin_url: str, sql: str = "", times: int = 1) -> None:
        self.engine, self.sql, self.left = engine, sql, times
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.killed = 0
        self._lock = threading.Lock()

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._kill)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._kill)
        self.admin.dispose()

    def _kill(self, conn, cursor, statement, parameters, context, executemany):
        with self._lock:
            if self.left <= 0 or self.sql not in statement:
                return
            self.left -= 1
        pid = conn.connection.dbapi_connection.info.backend_pid
        with self.admin.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        self.killed += 1


@pytest.fixture
def pg_app(migrated_postgres_url, postgres_server, pve, tmp_path):
    """An app on its own PostgreSQL database, and the admin URL to hurt it with."""
    application = create_app(app_config(migrated_postgres_url, pve), instance_path=str(tmp_path))
    application.test_client_class = IsolatedClient
    with application.app_context():
        yield application
        _db.session.remove()
        _db.engine.dispose()


def _signed_in(app):
    client = app.test_client()
    auth = AuthActions(client, app)
    assert auth.login().status_code == 302
    return client, auth


@pytest.mark.postgres
def test_a_page_whose_connection_drops_is_read_again(pg_app, postgres_server):
    client, _ = _signed_in(pg_app)
    counters.reset()
    with BackendKiller(_db.engine, postgres_server, sql="FROM containers") as killer:
        page = client.get("/")
    assert killer.killed == 1
    assert page.status_code == 200 and "web01" in page.text
    assert counters.read_retries == counters.read_retries_ok == 1


@pytest.mark.postgres
def test_a_form_whose_connection_drops_is_refused_whole_with_503(pg_app, postgres_server):
    client, auth = _signed_in(pg_app)
    token = auth.token("/templates/new")
    form = {"csrf_token": token, "name": "dropped", "description": "", "cores": "1", "memory": "512", "swap": "0",
            "disk": "4", "tags": "", "unprivileged": "y"}
    with BackendKiller(_db.engine, postgres_server, sql="INSERT INTO container_templates"):
        response = client.post("/templates/new", data=form)
    assert response.status_code == 503
    assert "The database is not answering" in response.text and "Nothing was changed" in response.text
    assert "INSERT" not in response.text and "psycopg" not in response.text
    assert "dropped" not in client.get("/templates").text  # nothing half-saved
    again = client.post("/templates/new", data=form)
    assert again.status_code == 302 and "dropped" in client.get("/templates").text


@pytest.mark.postgres
def test_a_database_that_stays_down_gets_the_operator_page_not_500(pg_app, postgres_server):
    client, _ = _signed_in(pg_app)
    name = make_url(pg_app.config["SQLALCHEMY_DATABASE_URI"]).database
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                           {"n": name})
    try:
        for path, headers in (("/", {}), ("/containers/100", {}), ("/templates", {"HX-Request": "true"})):
            response = client.get(path, headers=headers)
            assert response.status_code == 503, path
            assert response.headers["Retry-After"] == "5"
            assert "does not allow connections" not in response.text and "psycopg" not in response.text
        assert 'data-testid="database-unavailable"' in client.get("/").text
        assert client.post("/containers/100/actions/stop", data={"csrf_token": "x"}).status_code in (400, 503)
        health = client.get("/healthz")
        assert health.status_code == 503 and health.get_json()["database"] == "unreachable"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
    assert client.get("/").status_code == 200  # back as soon as the database is


# -- bookkeeping never fails what Proxmox did --------------------------------------------------------


@pytest.fixture
def app_overrides(request):
    """``indirect`` param: extra configuration (none by default)."""
    return getattr(request, "param", {})


with_a_queue = pytest.mark.parametrize("app_overrides", [{"JOBS_IMMEDIATE": False, "PROVISION_BOOT_TIMEOUT": 10}],
                                       indirect=True, ids=["queue"])


@with_a_queue
def test_retry_of_an_interrupted_create_reconciles_with_proxmox(app, db, logged_in, client, pve):
    from app.provisioning import sweep_stale
    from app.proxmox import ContainerSpec, get_proxmox
    from tests.test_wizard import configure_data

    logged_in.post("/containers/create/template", {"template": "scratch", "next": "1"})
    assert logged_in.post("/containers/create/configure", configure_data(vmid="960", hostname="again")).status_code == 302
    logged_in.post("/containers/create/packages", {"next": "1"})
    logged_in.post("/containers/create/scripts", {"next": "1"})
    draft_id = client.get("/containers/create/review").text.split('name="draft_id" value="')[1][:36]
    assert logged_in.post("/containers/create/review", {"draft_id": draft_id}).status_code == 302
    operation = db.session.scalar(db.select(Operation).where(Operation.action == "create"))
    plan = operation.params["spec"]
    # An earlier run got Proxmox to create the container, then its worker died before saying so.
    pve_client = get_proxmox()
    pve_client.wait_task(pve_client.create_container(ContainerSpec(
        **{**plan, "tags": tuple(plan.get("tags") or ())})), timeout=10, poll=0.1)
    jobs.huey.flush()
    old = utcnow() - timedelta(seconds=600)
    operation.state, operation.started_at, operation.heartbeat_at = "running", old, old
    db.session.commit()
    assert sweep_stale() == [operation.id]
    progress = client.get("/containers/960/progress").text
    assert "interrupted" in progress and "Retry" in progress

    assert logged_in.post("/containers/960/progress/retry", {}).status_code == 302
    pve.clear_requests()
    jobs.huey.execute(jobs.huey.dequeue())
    db.session.expire_all()
    assert pve.count_requests("POST", "/nodes/pve1/lxc") - pve.count_requests("POST", "/nodes/pve1/lxc/") == 0
    container = db.session.scalar(db.select(Container).where(Container.vmid == 960))
    assert container.lifecycle == "ready"
    messages = [e.message for e in db.session.scalars(db.select(Event).where(Event.container_id == container.id))]
    assert "CT 960 already exists in Proxmox (an earlier attempt created it): kept" in messages
