"""Hostile input at every URL, query string, form and import: a clear 4xx or a re-rendered form, never a 500,
and nothing reaches Proxmox that its real schema would refuse.

The requests are generated from the app's route table and its WTForms classes, not from a hand list:
a new route or a new form field is attacked without anyone adding it here.
"""
from __future__ import annotations

import inspect
import io
import itertools
import json

import pytest
from flask_wtf import FlaskForm
from werkzeug.routing import IntegerConverter

from app.container_templates.services import create_template
from app.models import Container

# Values that broke something once, or that each layer must refuse on its own.
HOSTILE = (
    "", "0", "-1", "2147483648", "9223372036854775808", "99999999999999999999999", "1e309", "NaN", "abc",
    "\x00", "a\x00b", "\x01\x02\x7f", "x" * 70_000, "é" * 300, "../../etc/passwd", "/../../x", "//evil.example",
    "<script>alert(1)</script>", "' OR 1=1 --", "pip:a/../../x", "npm:owner/repo", "http://127.0.0.1:1/x",
    "\r\nSet-Cookie: x=1", "${jndi:ldap://x}", "%00", "[]", "{}",
)
QUERY_KEYS = ("status", "page", "q", "type", "node", "next", "view", "timeout", "tag", "search", "after")
INT_VALUES = ("0", "-1", "2147483648", "9223372036854775808", "999999999999999999999")


def _forms() -> list[type[FlaskForm]]:
    """Every form class the app defines."""
    import app.auth.forms
    import app.container_templates.forms
    import app.wizard.forms

    found = []
    for module in (app.auth.forms, app.container_templates.forms, app.wizard.forms):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, FlaskForm) and cls is not FlaskForm and cls.__module__ == module.__name__:
                found.append(cls)
    return found


def _field_names(form_class: type[FlaskForm]) -> list[str]:
    names = []
    for name, value in vars(form_class).items():
        if hasattr(value, "field_class"):
            names.append(name)
    for base in form_class.__mro__[1:]:
        if base is FlaskForm:
            break
        names += [n for n, v in vars(base).items() if hasattr(v, "field_class") and n not in names]
    return names


def _urls(app, values, method):
    """Each rule of ``method`` built with the given ids (int converters) and every choice of ``any``."""
    for rule in app.url_map.iter_rules():
        if method not in rule.methods or rule.endpoint in (  # the auth.* ones would sign the client out
                "static", "auth.logout", "auth.sign_out_everywhere", "auth.end_session"):
            continue
        choices = []
        for name, converter in rule._converters.items():
            kind = type(converter).__name__
            choices.append([(name, item) for item in sorted(converter.items)] if kind == "AnyConverter"
                           else [(name, values.get(name, 1))])
        for combo in itertools.product(*choices):
            yield rule, rule.build(dict(combo), append_unknown=False)[1]


def _int_paths(app):
    """URLs whose integer parts are out of every range (database column, Proxmox VMID)."""
    for rule in app.url_map.iter_rules():
        kinds = {name: "IntegerConverter" if isinstance(c, IntegerConverter) else type(c).__name__
                 for name, c in rule._converters.items()}
        if "GET" not in rule.methods or "IntegerConverter" not in kinds.values():
            continue
        for bad in (2**31, 2**63, 10**21):
            args = {name: (bad if kind == "IntegerConverter" else sorted(rule._converters[name].items)[0]
                           if kind == "AnyConverter" else "x") for name, kind in kinds.items()}
            yield rule.build(args, append_unknown=False)[1]


@pytest.fixture
def seeded(db):
    template = create_template({"name": "base", "description": "", "cores": 1, "memory": 512, "swap": 0, "disk": 4,
                                "tags": "", "ostemplate": None, "unprivileged": True, "nesting": False,
                                "keyctl": False, "fuse": False, "storage": None, "bridge": None})
    return {"vmid": 100, "template_id": template.id, "id": template.id, "bucket_id": 1, "operation_id": 1,
            "service_id": 1, "op_id": 1, "script_id": 1, "file_id": 1, "package_id": 1}


def test_hostile_input_never_gets_a_server_error_nor_reaches_proxmox_invalid(logged_in, client, db, pve, seeded):
    client.get("/")  # records the cluster, so ids in URLs point at real rows
    app = client.application
    sent, failures = 0, []

    def check(response, what):
        nonlocal sent
        sent += 1
        if response.status_code >= 500:
            failures.append((what, response.status_code))

    for _, url in _urls(app, seeded, "GET"):
        for key, value in zip(itertools.cycle(QUERY_KEYS), HOSTILE):
            check(client.get(url, query_string={key: value}), f"GET {url}?{key}={value[:20]!r}")
        check(client.get(url, query_string={"status": ["running"] * 5000, "tag": [str(i) for i in range(3000)]}),
              f"GET {url} with thousands of values")
    for path in _int_paths(app):
        response = client.get(path)
        check(response, f"GET {path}")
        if response.status_code not in (404, 302):
            failures.append((f"GET {path} should be 404", response.status_code))

    # Every field name any form knows, posted to every POST route: a route ignores what it does not read.
    fields = sorted({name for form_class in _forms() for name in _field_names(form_class)})
    posts = list(_urls(app, seeded, "POST"))
    for value in HOSTILE[::2]:
        data = {name: value for name in fields}
        for _, url in posts:
            for headers in ({}, {"HX-Request": "true"}):
                check(logged_in.post(url, data, headers=headers), f"POST {url} {headers} {value[:20]!r}")

    nested = ('{"name": "deep", "x": ' + '{"x": ' * 5000 + "1" + "}" * 5001).encode()
    for body in (nested, b"{" * 100_000, b"\x00" * 100, json.dumps([{}] * 50_000).encode(),
                 json.dumps({"name": "t", "packages": {"apt": ["p%d" % i for i in range(30_000)]}}).encode()):
        response = logged_in.post("/templates/import", {"file": (io.BytesIO(body), "t.json")},
                                  content_type="multipart/form-data")
        check(response, f"import {body[:30]!r}")

    assert sent >= 500, f"only {sent} hostile requests were generated"
    assert failures == [], failures[:20]
    refused = [r for r in pve.requests if r.get("status") == 400]
    assert refused == [], f"Proxmox refused {len(refused)} requests Proxboard should have caught: {refused[:3]}"
    assert db.session.query(Container).count() >= 1
