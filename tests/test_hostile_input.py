"""Hostile input at every URL, query string, form and import: a clear 4xx or a re-rendered form, never a 500,
nothing stored when refused, and nothing reaches Proxmox that its real schema would refuse.

The requests are generated, not hand-listed: URLs from the app's route table (every rule, converter and
method), field values from the WTForms classes (each field's kind and its Length limit, which comes from
the database column), and the forms actually posted from the pages that render them. A new route, form
or field is attacked without anyone adding it here.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib
import inspect
import io
import itertools
import json
import pkgutil
import re
import time
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.routing import IntegerConverter
from wtforms import (
    BooleanField,
    FileField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
)
from wtforms.validators import Length, NumberRange

import app as app_package
from app.alerts.services import add_maintenance, create_channel, create_rule
from app.container_templates.services import add_package, add_script, create_bucket, create_template, save_file
from app.forms import INT32_MAX, PVE_RANGES
from app.models import (
    AlertChannel,
    AlertMute,
    AlertRule,
    Container,
    ContainerTemplate,
    Credential,
    PackageBucket,
    TemplateFile,
    TemplatePackage,
    TemplateScript,
    TemplateService,
    MaintenanceWindow,
    User,
    utcnow,
)

SIM = Path(__file__).resolve().parent / "pvesim"
# Values every text field must survive, whatever it means: the layers below each refuse some on their own.
TEXT_ATTACKS = (
    "a\x00b", "\x1b[31m\x7f", "/../../x", "/etc/../../x", "//evil.example/x", "/a\nb", "pip:a/../../x",
    "npm:owner/repo", "pip:x @ https://evil.example/x.whl", "npm:git+https://github.com/a/b.git",
    "<script>alert(1)</script>", "\r\nSet-Cookie: x=1", "",
)
# What a database itself may keep or refuse (NUL and control bytes, the empty string; lengths and integer ranges
# come from each field's kind): the only text values parts 3 and 4 send the second database.
DATABASE_TEXT_ATTACKS = ("a\x00b", "\x1b[31m\x7f", "")
# Sent to every POST route at once (every field name set to it), with some of the above.
ANY_FIELD_ATTACKS = ("../../etc/passwd", "apt:../x.deb", "' OR 1=1 --", "${jndi:ldap://x}", "%00", "[]", "{}")
INT_ATTACKS = ("-1", "0", str(INT32_MAX + 1), str(2**63), "9" * 30, "-" + "9" * 30, "1e309", "NaN", "abc", "0x10",
               " 7 ", "\x00")
CHOICE_ATTACKS = ("../../x", "9" * 30, "x" * 300, "\x00", "")
MANY = 5000  # "thousands of list values"
QUERY_KEYS = ("status", "page", "q", "type", "node", "next", "view", "timeout", "tag", "tags", "search", "after")


# -- what the app declares ------------------------------------------------------------------


def form_classes() -> list[type[FlaskForm]]:
    """Every FlaskForm subclass in ``app.forms`` and every ``app.<feature>.forms``."""
    modules = [importlib.import_module("app.forms")]
    for info in pkgutil.iter_modules(app_package.__path__):
        if info.ispkg:
            try:
                modules.append(importlib.import_module(f"app.{info.name}.forms"))
            except ModuleNotFoundError:
                continue
    found = []
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, FlaskForm) and cls is not FlaskForm and cls.__module__ == module.__name__:
                found.append(cls)
    return found


def unbound_fields(form_class: type[FlaskForm]) -> dict[str, object]:
    """Field name -> unbound field (``field_class``, ``kwargs``) of ``form_class`` and its bases."""
    fields: dict[str, object] = {}
    for base in reversed(form_class.__mro__):
        fields.update({name: value for name, value in vars(base).items() if hasattr(value, "field_class")})
    return fields


def _validators(unbound) -> list:
    return list(unbound.kwargs.get("validators") or (unbound.args[1] if len(unbound.args) > 1 else []))


def attacks_for(unbound, text_attacks: tuple[str, ...] = TEXT_ATTACKS) -> list[object]:
    """Hostile values for one WTForms field, from its kind and its limits (a list value posts a key many times);
    ``text_attacks`` for a text field, besides the over-long values and the list."""
    kind = unbound.field_class
    if issubclass(kind, (SubmitField, FileField)):
        return []
    if issubclass(kind, IntegerField):
        values = list(INT_ATTACKS)
        for validator in _validators(unbound):
            if isinstance(validator, NumberRange):
                values += [str(bound + step) for bound, step in ((validator.min, -1), (validator.max, 1))
                           if bound is not None]
        return values
    if issubclass(kind, SelectMultipleField):
        return [["x"] * MANY, [str(i) for i in range(MANY)], ["\x00"], ["../../x"]]
    if issubclass(kind, (SelectField, RadioField, BooleanField)):
        return list(CHOICE_ATTACKS)
    longest = max((v.max for v in _validators(unbound) if isinstance(v, Length) and v.max not in (None, -1)),
                  default=None)
    over_long = ["x" * (longest + 1), "é" * (longest + 1)] if longest else ["x" * 100_000]
    return [*over_long, *text_attacks, [f"v{i}" for i in range(MANY)]]


def routes(app, method: str, ids: dict):
    """(rule, URL) for each rule of ``method``, ids filled in and every choice of an ``any`` converter."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint.startswith("auth."), r.rule)):
        if method not in rule.methods or rule.endpoint in (  # the auth.* ones would sign the client out
                "static", "auth.logout", "auth.sign_out_everywhere", "auth.end_session"):
            continue
        choices = []
        for name, converter in rule._converters.items():
            kind = type(converter).__name__
            choices.append([(name, item) for item in sorted(converter.items)] if kind == "AnyConverter"
                           else [(name, ids.get(name, 1))])
        for combo in itertools.product(*choices):
            yield rule, rule.build(dict(combo), append_unknown=False)[1]


def out_of_range_urls(app):
    """Every rule with an integer part, that part beyond each range (the column, Proxmox's VMID, negative)."""
    for rule in app.url_map.iter_rules():
        kinds = {name: "int" if isinstance(c, IntegerConverter) else type(c).__name__
                 for name, c in rule._converters.items()}
        if "int" not in kinds.values() or rule.websocket:  # a WebSocket URL asked as plain HTTP is a 400 first
            continue
        for bad in (INT32_MAX + 1, 2**63, 10**21):
            args = {name: bad if kind == "int" else sorted(rule._converters[name].items)[0]
                    if kind == "AnyConverter" else "x" for name, kind in kinds.items()}
            path = rule.build(args, append_unknown=False)[1]
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield method, path
        marker = 987_654_321
        args = {name: marker if kind == "int" else sorted(rule._converters[name].items)[0]
                if kind == "AnyConverter" else "x" for name, kind in kinds.items()}
        yield "GET", rule.build(args, append_unknown=False)[1].replace(str(marker), "-1")  # not even a route


# -- what the pages render -------------------------------------------------------------------


class PostForms(HTMLParser):
    """The POST forms of a page: action and their fields with the values a browser would send."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self._form = self._select = self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (a.get("method") or "").lower() == "post":
            self._form = {"action": a.get("action") or "", "fields": {}, "submit": None}
            self.forms.append(self._form)
        if self._form is None or not a.get("name"):
            return
        fields, name = self._form["fields"], a["name"]
        if tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind == "submit":
                self._form["submit"] = self._form["submit"] or (name, a.get("value") or "1")
            elif kind in ("checkbox", "radio"):
                if "checked" in a:
                    fields.setdefault(name, a.get("value") or "y")
                else:
                    fields.setdefault(name, None)
            elif kind != "file":
                fields[name] = a.get("value") or ""
        elif tag == "button" and (a.get("type") or "submit") == "submit":
            self._form["submit"] = self._form["submit"] or (name, a.get("value") or "1")
        elif tag == "textarea":
            fields[name], self._textarea = "", name
        elif tag == "select":
            fields[name], self._select = None, name
        if tag == "option" and self._select and (fields.get(self._select) is None or "selected" in a):
            fields[self._select] = a.get("value", "")

    def handle_data(self, data):
        if self._form is not None and self._textarea:
            self._form["fields"][self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def page_forms(html: str) -> list[dict]:
    parser = PostForms()
    parser.feed(html)
    return [form for form in parser.forms if set(form["fields"]) - {"csrf_token"}]


def field_kinds(names: set[str]) -> dict[str, object]:
    """Posted name -> unbound field, from the form class whose fields best match ``names`` (prefixes stripped)."""
    best: dict[str, object] = {}
    for form_class in form_classes():
        fields = unbound_fields(form_class)
        matched = {}
        for name in names:
            for field_name, unbound in fields.items():
                if name == field_name or name.endswith(f"-{field_name}"):
                    matched[name] = unbound
        if len(matched) > len(best):
            best = matched
    return best


# -- what must not change -------------------------------------------------------------------

STORED = (ContainerTemplate, TemplateScript, TemplateFile, TemplatePackage, TemplateService, PackageBucket,
          Credential, AlertRule, AlertChannel, MaintenanceWindow, AlertMute)


def snapshot(db) -> str:
    """A digest of everything a form can write (templates and their parts, buckets, credentials, users)."""
    db.session.expire_all()
    digest = hashlib.sha256()
    for model in STORED:
        for row in db.session.scalars(select(model).order_by(model.id)):
            digest.update(repr([getattr(row, c.key) for c in model.__table__.columns]).encode())
    for row in db.session.execute(select(User.username, User.password_hash, User.theme).order_by(User.id)):
        digest.update(repr(tuple(row)).encode())
    db.session.rollback()
    return digest.hexdigest()


def schema_refusals(pve) -> list[tuple[dict, dict]]:
    """Each request the simulator recorded whose parameters its copy of the real schema refuses, with why.

    (A 400 alone is not that: ``GET /cluster/nextid?vmid=`` answers 400 for a taken VMID, by design.)
    """
    refused = []
    for request in pve.requests:
        endpoint, path_params = pve.schema.lookup(request["method"], request["path"])
        if endpoint is None:
            refused.append((request, {"path": "no such endpoint"}))
        elif errors := endpoint.validate({**request["params"], **path_params}):
            refused.append((request, errors))
    return refused


# -- the test --------------------------------------------------------------------------------


@pytest.fixture
def app_overrides() -> dict:
    """The production read cache: thousands of refused forms re-render pages whose Proxmox reads (storages,
    bridges, templates) do not change between them; every distinct request still reaches the simulator."""
    return {"PVE_CACHE_SECONDS": 60}


@pytest.fixture
def seeded(db):
    """One template with a script, a file, two packages, a service and a bucket: the ids URLs point at."""
    template = create_template({"name": "base", "description": "", "cores": 1, "memory": 512, "swap": 0, "disk": 4,
                                "tags": ["web"], "ostemplate": None, "unprivileged": True, "nesting": False,
                                "keyctl": False, "fuse": False, "storage": None, "bridge": None})
    script = add_script(template, "setup", "echo hi\n")
    file = save_file(template, {"name": "site.conf", "target_path": "/etc/nginx", "policy": "replace",
                                "content": "x"})
    package = add_package(template, "apt", "curl", None)
    bucket = create_bucket("tools")
    add_package(bucket, "pip", "httpie", "3.2.4")
    channel = create_channel("ops", "json://127.0.0.1:9/hook")  # port 9: refused at once, "Send test" fails fast
    rule = create_rule("cpu_high", [channel], threshold=95)
    window = add_maintenance(utcnow(), utcnow() + timedelta(hours=1), note="seeded")
    return {"rule_id": rule.id, "channel_id": channel.id, "window_id": window.id,
            "vmid": 100, "template_id": template.id, "id": template.id, "bucket_id": bucket.id,
            "operation_id": 1, "service_id": 1, "op_id": 1, "script_id": script.id, "file_id": file.id,
            "package_id": package.id, "disk": "rootfs", "index": 0}


class Thrower:
    """Sends hostile requests, counts them and collects what went wrong."""

    def __init__(self, client, db, token: str):
        self.client, self.db, self.token = client, db, token
        self.sent, self.failures, self.stored = 0, [], []
        self.last: str | None = None

    def send(self, method: str, url: str, what: str, data=None, *, must_not_store=False, **kwargs):
        before = (self.last or snapshot(self.db)) if must_not_store else None
        self.last = None
        if isinstance(data, dict) and method != "GET":
            data = {"csrf_token": self.token, **data}
        response = self.client.open(url, method=method, data=data, **kwargs)
        self.sent += 1
        if response.status_code >= 500:
            self.failures.append((what, response.status_code))
        elif must_not_store:
            self.last = snapshot(self.db)  # the state the next checked request starts from
            # a success redirects, or answers 201 Created with what it shows once (a generated password, a token)
            if response.status_code not in (201, 301, 302, 303) and self.last != before:
                self.stored.append((what, response.status_code))
        return response


def test_hostile_input_never_gets_a_server_error_nor_reaches_proxmox_invalid(logged_in, client, db, pve, seeded):
    client.get("/")  # records the cluster, so ids in URLs point at real rows
    app = client.application
    token = logged_in.token()
    thrower = Thrower(client, db, token)
    pve.clear_requests()
    marks = []

    marks.append((0, thrower.sent, time.monotonic()))
    # SQLite gets every attack. PostgreSQL gets those whose outcome a database can change: parts 1 and 2 store
    # nothing (GET, and URLs no rule accepts) and skip it; parts 3 and 4 send it only the values a database keeps
    # or refuses (NUL and control bytes, lengths, integer ranges), parts 5 and 6 everything.
    every_attack = db.engine.dialect.name == "sqlite"
    # 1. Query strings: every QueryForm field, on every GET route, with every hostile value of its kind.
    query_fields = {name: unbound for form_class in form_classes() if "Query" in form_class.__name__
                    for name, unbound in unbound_fields(form_class).items()}
    attacks = {name: attacks_for(unbound) for name, unbound in query_fields.items()}
    for _, url in routes(app, "GET", seeded) if every_attack else ():
        for index in range(8):  # every query field hostile at once, the index-th attack of its kind each
            query = {name: values[index % len(values)] for name, values in attacks.items()}
            thrower.send("GET", url, f"GET {url} {index}", query_string=query)
        thrower.send("GET", url, f"GET {url} with thousands of values",
                     query_string={"status": ["running"] * MANY, "tag": [str(i) for i in range(MANY)],
                                   "tags": ",".join(str(i) for i in range(MANY))})

    marks.append((1, thrower.sent, time.monotonic()))
    # 2. Integers in URLs beyond every range: 404 (or 405 for a method the rule lacks), whatever the method.
    for method, path in out_of_range_urls(app) if every_attack else ():
        response = thrower.send(method, path, f"{method} {path}", data={} if method == "POST" else None)
        if response.status_code not in (404, 405, 302):
            thrower.failures.append((f"{method} {path} should be 404", response.status_code))

    marks.append((2, thrower.sent, time.monotonic()))
    # 3. The forms as pages render them: each field in turn gets each hostile value of its kind,
    #    the others keep what the page filled in. A refusal must leave the database as it was.
    logged_in.post("/containers/create/template", {"template": str(seeded["template_id"]), "next": "1"})
    seen = set()
    for _, url in routes(app, "GET", seeded):
        response = client.get(url)
        if response.status_code != 200 or "html" not in response.content_type:
            continue
        for form in page_forms(response.text):
            action = form["action"] or url
            key = (re.sub(r"\d+", "N", action), tuple(sorted(form["fields"])))
            if key in seen or action.endswith("/logout"):
                continue
            seen.add(key)
            base = {name: value for name, value in form["fields"].items() if value is not None and name != "csrf_token"}
            if form["submit"]:
                base.setdefault(*form["submit"])
            names = set(form["fields"]) - {"csrf_token"}
            kinds = {name: StringField() for name in names} | field_kinds(names)  # no WTForms field: text
            for name, unbound in kinds.items():
                for value in attacks_for(unbound, TEXT_ATTACKS if every_attack else DATABASE_TEXT_ATTACKS):
                    thrower.send("POST", action, f"POST {action} {name}={str(value)[:30]!r}",
                                 {**base, name: value}, must_not_store=True)

    marks.append((3, thrower.sent, time.monotonic()))
    # 4. Every POST route with every field name any form knows, all at once, plain or under htmx.
    fields = sorted({name for form_class in form_classes() for name in unbound_fields(form_class)})
    values = (*TEXT_ATTACKS[::4], *ANY_FIELD_ATTACKS) if every_attack else DATABASE_TEXT_ATTACKS
    for number, value in enumerate((*values, "x" * 70_000)):
        for _, url in routes(app, "POST", seeded):
            for headers in ({"HX-Request": "true"} if number % 2 else {},):  # plain and under htmx, in turn
                thrower.send("POST", url, f"POST {url} {headers} {value[:20]!r}",
                             {name: value for name in fields}, headers=headers)

    marks.append((4, thrower.sent, time.monotonic()))
    # 5. Imports: nesting, size, shape, and each list beyond its bound.
    logged_in.login()
    thrower.token = logged_in.token()
    nested = '{"format": "proxboard-template/1", "name": "deep", "x": ' + '{"x": ' * 5000 + "1" + "}" * 5001
    manifests = [
        nested, "{" * 100_000, "\x00" * 100, json.dumps([{}] * 50_000), "[" * 40 + "]" * 40,
        *[json.dumps({"format": "proxboard-template/1", "name": "many", key: [item] * 2000})
          for key, item in (("packages", {"manager": "apt", "name": "curl"}), ("scripts", {"name": "s", "content": ""}),
                            ("files", {"name": "f", "target_path": "/etc"}), ("services", {"name": "s"}),
                            ("buckets", {"name": "b"}), ("tags", "t"))],
        *[json.dumps({"format": "proxboard-template/1", "name": "hostile", "packages": [{"manager": manager,
                                                                                          "name": name}]})
          for manager, name in (("pip", "a/../../x"), ("npm", "owner/repo"), ("pip", "x @ https://e/x.whl"),
                                ("npm", "https://e/x.tgz"), ("apt", "./x.deb"), ("npm", "a" * 300))],
        *[json.dumps({"format": "proxboard-template/1", "name": "hostile", "files": [{"name": "f",
                                                                                      "target_path": target}]})
          for target in ("/../../x", "etc", "/a\x00", "/a\nb", "//x", "/" + "a" * 2000)],
        *[json.dumps({"format": "proxboard-template/1", "name": "hostile", "resources": {key: value}})
          for key in ("cores", "memory", "swap", "disk") for value in (-1, 2**31, 2**63, 10**30, "1", 1.5)],
    ]
    for body in manifests:
        thrower.send("POST", "/templates/import", f"import {body[:40]!r}",
                     {"file": (io.BytesIO(body.encode()), "t.json")}, content_type="multipart/form-data",
                     must_not_store=True)
    thrower.send("POST", "/templates/import", "3 MiB upload", b"x" * 3 * 2**20,
                 content_type="multipart/form-data; boundary=x", must_not_store=True)

    marks.append((5, thrower.sent, time.monotonic()))
    # 6. The wizard to the end with each limit value of its configure step: what passes reaches Proxmox.
    for number, (field, value) in enumerate(
            [(name, str(value)) for name, (low, high) in PVE_RANGES.items() if name != "port"
             for value in (low - 1, low, high, high + 1)]):
        data = {"node": "pve1", "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                "hostname": f"h{number}", "vmid": str(2000 + number), "password": "s3cret-pass",
                "password_confirm": "s3cret-pass", "cores": "1", "memory": "512", "swap": "0", "disk": "4",
                "storage": "local-lvm", "bridge": "vmbr0", "ip_mode": "dhcp", "unprivileged": "y", "next": "1",
                field: value}
        thrower.send("POST", "/containers/create/template", "wizard template", {"template": "scratch", "next": "1"})
        if thrower.send("POST", "/containers/create/configure", f"wizard {field}={value}", data).status_code != 302:
            continue
        thrower.send("POST", "/containers/create/packages", "wizard packages", {"groups": [], "next": "1"})
        thrower.send("POST", "/containers/create/scripts", "wizard scripts", {"enabled": [], "next": "1"})
        review = client.get("/containers/create/review").text
        draft = re.search(r'name="draft_id"[^>]*value="([^"]+)"', review)
        if draft:
            thrower.send("POST", "/containers/create/review", f"create {field}={value}", {"draft_id": draft.group(1)})

    marks.append((6, thrower.sent, time.monotonic()))
    parts = ("query strings", "out-of-range URLs", f"fields of {len(seen)} page forms", "every POST route",
             "imports", "wizard runs")
    print("\n" + ", ".join(f"{parts[a[0]]}: {b[1] - a[1]} ({b[2] - a[2]:.0f} s)" for a, b in zip(marks, marks[1:])))
    print(f"\n{thrower.sent} hostile inputs thrown: {len(thrower.failures)} server errors, "
          f"{len(thrower.stored)} stored on refusal, {len(pve.requests)} Proxmox requests")
    assert thrower.sent >= 500, f"only {thrower.sent} hostile requests were generated"
    assert thrower.failures == [], thrower.failures[:20]
    assert thrower.stored == [], thrower.stored[:20]
    refused = schema_refusals(pve)
    assert refused == [], f"the real schema refuses {len(refused)} requests Proxboard sent: {refused[:3]}"
    creates = [r for r in pve.requests if r["method"] == "POST" and r["path"] == "/nodes/pve1/lxc"]
    assert creates, "no wizard run reached Proxmox: the schema check above proved nothing"
    assert db.session.query(Container).count() >= 1


@pytest.mark.parametrize("apidoc", ["apidoc.json.gz", "apidoc-9.1.json.gz"])
def test_integer_limits_are_proxmox_own(apidoc):
    """The ranges forms and imports enforce are those of the real schema (8.4 and 9.1), capped by the column."""
    tree = json.loads(gzip.decompress((SIM / apidoc).read_bytes()))

    def find(nodes):
        for node in nodes:
            if node.get("path") == "/nodes/{node}/lxc":
                return node["info"]["POST"]["parameters"]["properties"]
            if found := find(node.get("children", [])):
                return found

    schema = find(tree)
    for name in ("vmid", "cores", "memory", "swap"):
        low, high = PVE_RANGES[name]
        assert low == schema[name]["minimum"], name
        assert high == schema[name].get("maximum", INT32_MAX), name


@pytest.mark.parametrize("destination", ["/../../x", "/etc/../../../root/.ssh/authorized_keys", "etc/x",
                                         "/a\nb", "/a\x00b", "//host/x"])
def test_pct_push_refuses_a_destination_outside_the_container_before_connecting(tmp_path, destination):
    from app.ssh.client import NodeConnection
    from app.ssh.settings import SSHSettings

    # Port 1 on loopback: a push that got as far as connecting would fail with SSHUnreachable instead.
    node = NodeConnection("pve1", SSHSettings(default_host="127.0.0.1", known_hosts=str(tmp_path / "known_hosts"),
                                              port=1, password="unused"))
    with pytest.raises(ValueError):
        node.pct_push(100, b"data", destination)
    assert node._client is None
