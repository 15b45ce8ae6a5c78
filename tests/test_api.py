"""``/api/v1`` as a script uses it: a Bearer token held to its role, problem+json for every error, paged lists
with ETags, lifecycle actions to poll, templates in and out, and creating a container with exactly the
wizard's rules, all against the Proxmox simulator on SQLite and PostgreSQL."""
from __future__ import annotations

import re
import time

import pytest
from openapi_spec_validator import validate

from app.auth import tokens
from app.models import AuditEntry, Container, ContainerTemplate, User
from tests.fixtures.app import csrf_token_from
from tests.test_wizard import SSH_KEY

PROBLEM = "application/problem+json"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def token_for(make, db):
    """``token_for(role)``: the secret of a token of that role, owned by a user of that role."""

    def issue(role: str) -> dict[str, str]:
        user = db.session.scalar(db.select(User).filter_by(username=role)) or make.user(role, role=role)
        return bearer(tokens.create_token(user, f"{role} script", role)[1])

    return issue


def startable(pve) -> int:
    """A stopped container that can be started (no Proxmox template, no lock, no HA error)."""
    return next(vmid for vmid, ct in sorted(pve.containers.items())
                if ct.status == "stopped" and not ct.template and not ct.lock and not getattr(ct, "ha_state", None))


def assert_problem(response, status: int, detail_part: str = "") -> dict:
    """A problem document (RFC 9457) with ``status``, whose detail mentions ``detail_part``."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.mimetype == PROBLEM, response.mimetype
    body = response.get_json(force=True)
    assert body["status"] == status and body["type"] == "about:blank" and body["title"]
    assert detail_part in body["detail"], body["detail"]
    return body


# -- the document ---------------------------------------------------------------------------------


@SQLITE_ONLY
def test_openapi_document_is_valid_3_1_and_lists_every_api_endpoint(app, client):
    response = client.get("/api/v1/openapi.json")  # public: what the API offers is no secret
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    validate(document)  # openapi-spec-validator picks the 3.1 schema from the version
    paths = document["paths"]
    assert set(paths) >= {"/api/v1/containers", "/api/v1/containers/{vmid}", "/api/v1/containers/{vmid}/status",
                          "/api/v1/containers/{vmid}/services", "/api/v1/containers/{vmid}/events",
                          "/api/v1/containers/{vmid}/actions/{action}", "/api/v1/operations/{operation_id}",
                          "/api/v1/templates", "/api/v1/templates/{template_id}/export", "/api/v1/templates/import"}
    documented = {rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api.")}
    assert documented - {"api.openapi", "api.docs"} == {
        "api.containers", "api.container", "api.container_status", "api.container_services", "api.container_events",
        "api.container_action", "api.operation", "api.create", "api.templates", "api.template_export",
        "api.template_import"}
    action = paths["/api/v1/containers/{vmid}/actions/{action}"]["post"]
    assert {p["name"]: p["schema"].get("enum") for p in action["parameters"]}["action"] == sorted(
        ["start", "shutdown", "stop", "reboot", "delete"])
    assert "application/problem+json" in action["responses"]["409"]["content"]


@SQLITE_ONLY
def test_docs_page_reads_the_document_with_vendored_swagger_ui(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page.text
    assert 'data-spec-url="/api/v1/openapi.json"' in page.text
    assert "<script>" not in page.text  # no inline script: the CSP would block it
    assert client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static/js/api-docs.js").status_code == 200


# -- authentication, roles, problems --------------------------------------------------------------


def test_no_token_bad_token_and_unknown_urls_are_problems_never_pages(client, make, db):
    assert_problem(client.get("/api/v1/containers"), 401, "API token")
    refused = client.get("/api/v1/containers", headers=bearer("pxb_" + "x" * 43))
    body = assert_problem(refused, 401, "not known")
    assert refused.headers["WWW-Authenticate"].startswith("Bearer ") and "Location" not in refused.headers
    assert body["title"] == "Unauthorized"
    secret = bearer(tokens.create_token(make.user("vera", role="viewer"), "s", "viewer")[1])
    assert_problem(client.get("/api/v1/nothing-here", headers=secret), 404)
    assert_problem(client.get("/api/v1/containers/99999", headers=secret), 404, "no container 99999")
    assert_problem(client.get("/api/v1/operations/424242", headers=secret), 404, "no operation 424242")
    not_allowed = client.delete("/api/v1/containers", headers=secret)
    assert_problem(not_allowed, 405)
    assert set(not_allowed.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert_problem(client.get("/api/v1/containers?per_page=1000", headers=secret), 400, "query string")
    assert "per_page" in client.get("/api/v1/containers?per_page=0", headers=secret).get_json()["errors"]


@SQLITE_ONLY
def test_refused_tokens_are_throttled_with_a_problem(app, client, token_for):
    app.config["LOGIN_LIMIT_PER_CLIENT"] = "2 per minute"
    viewer = token_for("viewer")
    for _ in range(2):
        assert_problem(client.get("/api/v1/containers", headers=bearer("pxb_" + "y" * 43)), 401)
    throttled = client.get("/api/v1/containers", headers=viewer)  # even a good token waits
    assert_problem(throttled, 429, "Too many refused API tokens")
    assert int(throttled.headers["Retry-After"]) >= 1


def test_roles_are_the_pages_roles(client, token_for, pve, db):
    viewer, operator, admin = token_for("viewer"), token_for("operator"), token_for("admin")
    vmid = startable(pve)
    refused = client.post(f"/api/v1/containers/{vmid}/actions/start", headers=viewer)
    body = assert_problem(refused, 403,
                          "Operators and admins can start containers; this API token is limited to viewer")
    assert body["needs"] == "operator"
    assert_problem(client.post("/api/v1/containers", json={"hostname": "x"}, headers=viewer), 403, "create containers")
    assert_problem(client.post("/api/v1/templates/import", json={"name": "t"}, headers=operator), 403,
                   "Admins can import container templates")
    assert_problem(client.post(f"/api/v1/containers/{vmid}/actions/delete", headers=operator), 403,
                   "Admins can delete containers")
    assert client.get("/api/v1/templates", headers=viewer).status_code == 200
    assert client.post("/api/v1/templates/import", json={"format": "proxboard-template/1", "name": "from-api"},
                       headers=admin).status_code == 201
    refusal = db.session.scalar(db.select(AuditEntry).filter_by(outcome="refused", action="api.container_action"))
    assert refusal is not None and refusal.username == "viewer"


def test_a_cookie_session_may_read_but_must_send_csrf_for_actions(logged_in, client, pve):
    vmid = startable(pve)
    assert client.get("/api/v1/containers").status_code == 200
    assert_problem(client.post(f"/api/v1/containers/{vmid}/actions/start"), 400, "CSRF")
    assert pve.containers[vmid].status == "stopped"
    token = csrf_token_from(client.get("/").text)
    started = client.post(f"/api/v1/containers/{vmid}/actions/start", headers={"X-CSRFToken": token})
    assert started.status_code == 202


# -- lists ---------------------------------------------------------------------------------------


def test_container_list_pages_filters_and_answers_304_while_unchanged(client, token_for, pve):
    viewer = token_for("viewer")
    everything = client.get("/api/v1/containers?per_page=100", headers=viewer).get_json()
    assert everything["page"]["total"] == len(pve.containers) == everything["counts"]["all"]
    assert everything["proxmox"]["reachable"] is True

    first = client.get("/api/v1/containers?per_page=5", headers=viewer)
    body = first.get_json()
    assert [c["vmid"] for c in body["items"]] == sorted(pve.containers)[:5]
    assert body["page"] == {"number": 1, "per_page": 5, "pages": -(-len(pve.containers) // 5),
                            "total": len(pve.containers)}
    links = dict((rel, url) for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', first.headers["Link"]))
    assert set(links) == {"first", "next", "last"} and "page=2" in links["next"] and "per_page=5" in links["next"]
    second = client.get(links["next"], headers=viewer).get_json()
    assert [c["vmid"] for c in second["items"]] == sorted(pve.containers)[5:10]

    # Running containers' figures move every second: the stopped ones' list stays the same until one changes.
    stopped = client.get("/api/v1/containers?status=stopped", headers=viewer)
    etag = stopped.headers["ETag"]
    again = client.get("/api/v1/containers?status=stopped", headers={**viewer, "If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    pve.containers[startable(pve)].status = "running"
    changed = client.get("/api/v1/containers?status=stopped", headers={**viewer, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    running = client.get("/api/v1/containers?status=running&per_page=100", headers=viewer).get_json()
    assert running["items"] and {c["status"] for c in running["items"]} == {"running"}
    name = body["items"][0]["name"]
    found = client.get(f"/api/v1/containers?q={name}", headers=viewer).get_json()
    assert name in [c["name"] for c in found["items"]] and found["page"]["total"] < len(pve.containers)
    # The same filters and numbers as the dashboard's pills.
    page = client.get(f"/?q={name}", headers=viewer).text
    assert f'data-count="{found["counts"]["all"]}"' in page or str(found["counts"]["all"]) in page


def test_proxmox_down_lists_the_last_known_state_and_actions_answer_503(client, token_for, pve):
    operator = token_for("operator")
    known = client.get("/api/v1/containers?per_page=100", headers=operator).get_json()["items"]
    pve.faults.unreachable = True
    listed = client.get("/api/v1/containers?per_page=100", headers=operator)
    assert listed.status_code == 200
    body = listed.get_json()
    assert body["proxmox"]["reachable"] is False and body["proxmox"]["error"]
    assert {c["vmid"] for c in body["items"]} == {c["vmid"] for c in known}
    assert all(c["stale"] for c in body["items"])
    vmid = known[0]["vmid"]
    detail = client.get(f"/api/v1/containers/{vmid}", headers=operator)
    assert detail.status_code == 200 and detail.get_json()["stale"] is True
    assert_problem(client.post(f"/api/v1/containers/{vmid}/actions/stop", headers=operator), 503,
                   "Proxmox cannot be reached")
    assert_problem(client.get("/api/v1/containers/4242/status", headers=operator), 503, "Proxmox cannot be reached")


# -- one container -------------------------------------------------------------------------------


def test_detail_status_services_and_events(client, token_for, make, pve, db):
    viewer = token_for("viewer")
    vmid = next(vmid for vmid, ct in sorted(pve.containers.items()) if ct.status == "running" and not ct.template)
    record = make.container(vmid=vmid, node=pve.containers[vmid].node, hostname=pve.containers[vmid].hostname)
    make.services(record, 2)
    make.events(record, 7)
    detail = client.get(f"/api/v1/containers/{vmid}", headers=viewer).get_json()
    assert detail["vmid"] == vmid and detail["status"] == "running" and detail["stale"] is False
    assert detail["actions"]["start"] == "The container is already running." and detail["actions"]["stop"] is None
    assert [s["name"] for s in detail["services"]] == ["application-00", "application-01"]
    status = client.get(f"/api/v1/containers/{vmid}/status", headers=viewer).get_json()
    assert status["pve_status"] == "running" and status["pending"] is None
    services = client.get(f"/api/v1/containers/{vmid}/services", headers=viewer).get_json()
    assert [(s["name"], s["status"], s["port"]) for s in services["items"]] == [
        ("application-00", "running", 8000), ("application-01", "running", 8001)]
    events = client.get(f"/api/v1/containers/{vmid}/events?per_page=5", headers=viewer)
    body = events.get_json()
    assert body["page"] == {"number": 1, "per_page": 5, "pages": 2, "total": 7}
    assert body["counts"]["log"] == 7 and len(body["items"]) == 5
    assert 'rel="next"' in events.headers["Link"]
    assert client.get(f"/api/v1/containers/{vmid}/events?per_page=5",
                      headers={**viewer, "If-None-Match": events.headers["ETag"]}).status_code == 304


def test_lifecycle_walk_list_start_poll_stop(client, token_for, pve, db):
    operator = token_for("operator")
    listing = client.get("/api/v1/containers?status=stopped&per_page=100", headers=operator).get_json()
    vmid = next(c["vmid"] for c in listing["items"] if c["vmid"] == startable(pve))

    started = client.post(f"/api/v1/containers/{vmid}/actions/start", headers=operator)
    assert started.status_code == 202, started.text
    operation = started.get_json()
    assert operation["action"] == "start" and operation["state"] == "running" and operation["vmid"] == vmid
    assert started.headers["Location"] == operation["url"] == f"/api/v1/operations/{operation['id']}"
    assert _poll(client, operation["url"], operator)["state"] == "succeeded"
    assert client.get(f"/api/v1/containers/{vmid}/status", headers=operator).get_json()["pve_status"] == "running"

    refused = client.post(f"/api/v1/containers/{vmid}/actions/start", headers=operator)
    assert_problem(refused, 409, "already running")
    assert_problem(client.post("/api/v1/containers/999/actions/start", headers=operator), 404, "does not exist")
    stopped = client.post(f"/api/v1/containers/{vmid}/actions/stop", headers=operator)
    assert stopped.status_code == 202
    assert _poll(client, stopped.headers["Location"], operator)["state"] == "succeeded"
    assert pve.containers[vmid].status == "stopped"
    entry = db.session.scalar(db.select(AuditEntry).filter_by(action="api.container_action", outcome="succeeded"))
    assert entry is not None and entry.username == "operator"


def _poll(client, url: str, headers: dict, seconds: float = 20) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        body = client.get(url, headers=headers).get_json()
        if body["state"] not in ("queued", "running") or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


# -- templates -----------------------------------------------------------------------------------


def test_templates_list_export_and_import_round_trip(client, token_for, make, db):
    admin = token_for("admin")
    make.template("web", description="nginx site", tags="web;prod")
    make.template("db", tags="db")
    listed = client.get("/api/v1/templates?tags=web", headers=admin).get_json()
    assert [t["name"] for t in listed["items"]] == ["web"] and listed["items"][0]["tags"] == ["web", "prod"]
    exported = client.get(listed["items"][0]["export_url"], headers=admin)
    assert exported.status_code == 200 and exported.mimetype == "application/json"
    manifest = exported.get_json()
    page_export = client.get(f"/templates/{listed['items'][0]['id']}/export", headers=admin)
    assert manifest == page_export.get_json()  # the file the Export button downloads

    manifest["name"], manifest["description"] = "web copy", "imported through the API"
    imported = client.post("/api/v1/templates/import", json=manifest, headers=admin)
    assert imported.status_code == 201, imported.text
    body = imported.get_json()
    assert body["created"] is True and body["template"]["name"] == "web copy"
    again = client.post("/api/v1/templates/import", json=manifest, headers=admin)
    assert again.status_code == 200 and again.get_json()["created"] is False

    broken = client.post("/api/v1/templates/import", json={**manifest, "resources": {"cores": 0}}, headers=admin)
    assert_problem(broken, 422, "resources.cores: must be at least 1")
    assert_problem(client.post("/api/v1/templates/import", data="x", headers=admin), 415)
    assert_problem(client.post("/api/v1/templates/import", data="{", headers=admin,
                               content_type="application/json"), 422)
    nul = client.post("/api/v1/templates/import", json={**manifest, "description": "a\u0000b"}, headers=admin)
    assert_problem(nul, 400, "control characters")
    assert db.session.scalar(db.select(db.func.count(ContainerTemplate.id))) == 3


# -- creating a container ------------------------------------------------------------------------


def create_body(**overrides) -> dict:
    body = {"hostname": "api01", "password": "s3cret-pass", "cores": 2, "memory": 1024, "tags": "web prod"}
    body.update(overrides)
    return body


@pytest.mark.parametrize(("field", "value", "message"), [
    ("hostname", "bad_host!", "letters, digits and hyphens"),
    ("vmid", 99, "Proxmox VMIDs go from 100"),
    ("memory", 8, "At least 16 MiB"),
    ("cores", 0, "Between 1 and 8192."),
    ("swap", -1, "Cannot be negative"),
    ("tags", "ok -bad", "Not a valid tag"),
    ("password", "abc", "At least 5 characters."),
    ("password_confirm", "different", "The passwords differ."),
    ("ssh_public_keys", "ssh-rsa notakey", "not an OpenSSH public key"),
    ("nameserver", "dns.example", "not an IP address"),
    ("node", "nowhere", "Not a valid choice"),
    ("node", "../../access/users", "Not a valid choice"),
    ("cores", "many", "Not a valid integer value."),
])
def test_create_refuses_what_the_wizard_refuses_with_its_messages(client, token_for, db, pve, field, value, message):
    before = set(pve.containers)
    pve.clear_requests()
    refused = client.post("/api/v1/containers", json=create_body(**{field: value}), headers=token_for("operator"))
    body = assert_problem(refused, 422)
    assert any(message in text for text in body["errors"][field]), body["errors"]
    assert set(pve.containers) == before
    assert db.session.scalar(db.select(db.func.count(Container.id)).filter_by(lifecycle="creating")) == 0
    assert pve.count_requests("POST") == 0
    assert not [r["path"] for r in pve.requests if "access" in r["path"] or ".." in r["path"]]


@SQLITE_ONLY
def test_create_refuses_the_same_as_the_wizard_page(client, logged_in, token_for, pve):
    """One rule set: the page and the API name the same fields with the same sentences."""
    from tests.test_wizard import _errors, configure_data

    logged_in.post("/containers/create/template", {"template": "scratch", "next": "1"})
    page = logged_in.post("/containers/create/configure",
                          configure_data(hostname="-bad", vmid="99", password="", password_confirm=""))
    api = client.post("/api/v1/containers", json=create_body(hostname="-bad", vmid=99, password=None),
                      headers=token_for("operator")).get_json()["errors"]
    assert sorted(_errors(page.text)) == sorted(message for messages in api.values() for message in messages)
    assert set(api) == {"hostname", "vmid", "ssh_public_keys"}


def test_create_refuses_a_taken_vmid_a_password_or_key_and_bad_json(client, token_for, pve):
    operator = token_for("operator")
    taken = next(iter(pve.containers))
    body = assert_problem(client.post("/api/v1/containers", json=create_body(vmid=taken), headers=operator), 422)
    assert body["errors"] == {"vmid": [f"VMID {taken} is already in use."]}
    body = assert_problem(client.post("/api/v1/containers", json=create_body(password=None), headers=operator), 422)
    assert body["errors"] == {"ssh_public_keys": ["Set a root password or an SSH public key (or both)."]}
    assert_problem(client.post("/api/v1/containers", data="hostname=x", headers=operator), 415)
    huge = client.post("/api/v1/containers", data="x" * (3 * 1024 * 1024), headers=operator,
                       content_type="application/json")
    assert_problem(huge, 413, "larger than this server accepts")
    assert_problem(client.post("/api/v1/containers", data="[1", headers=operator,
                               content_type="application/json"), 400, "not valid JSON")
    nested = client.post("/api/v1/containers", json=create_body(cores={"a": 1}), headers=operator)
    assert assert_problem(nested, 422)["errors"] == {"cores": ["Not a valid value: give text, a number or true/false."]}
    assert_problem(client.post("/api/v1/containers", json=create_body(hostname="a\u0000b"), headers=operator), 400,
                   "control characters")


def test_create_makes_the_container_in_proxmox_and_answers_its_operation(client, token_for, pve, db):
    operator = token_for("operator")
    created = client.post("/api/v1/containers", json=create_body(ssh_public_keys=SSH_KEY, unprivileged=False),
                          headers=operator)
    assert created.status_code == 202, created.text
    body = created.get_json()
    vmid = body["vmid"]
    assert body["operation"]["action"] == "create" and created.headers["Location"] == body["operation"]["url"]
    assert _poll(client, body["operation"]["url"], operator, 60)["state"] == "succeeded"
    ct = pve.containers[vmid]
    assert ct.hostname == "api01" and sorted(ct.tags) == ["prod", "web"]
    assert (int(ct.config["cores"]), int(ct.config["memory"]), int(ct.config.get("unprivileged", 0))) == (2, 1024, 0)
    record = db.session.scalar(db.select(Container).filter_by(vmid=vmid, lifecycle="ready"))
    assert record is not None and record.created_by == "operator" and record.managed
    detail = client.get(body["url"], headers=operator).get_json()
    assert detail["hostname"] == "api01" and detail["created_by"] == "operator"
