"""Every page, with Proxmox down or failing: a rendered page, never a server error."""
from __future__ import annotations

import pytest

from app.container_templates.services import create_template
from app.models import Container

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
