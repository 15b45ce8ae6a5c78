"""Parsing and mapping of the discovery output: pure functions, no SSH."""
from __future__ import annotations

import logging

import pytest

from app.services.classify import is_system_unit, status_colour, unit_status, web_url
from app.services.discovery import DeclaredService, build_services
from app.services.parse import parse_credentials, parse_discovery, parse_ss, parse_units

SS = """State  Recv-Q Send-Q Local Address:Port  Peer Address:Port Process
LISTEN 0      511          0.0.0.0:80         0.0.0.0:*     users:(("nginx",pid=1235,fd=6),("nginx",pid=1234,fd=6))
LISTEN 0      4096            [::]:22            [::]:*     users:(("sshd",pid=99,fd=4))
LISTEN 0      128        127.0.0.1:5432       0.0.0.0:*     users:(("postgres",pid=300,fd=5))
LISTEN 0      128          0.0.0.0:8000       0.0.0.0:*     users:(("gunicorn",pid=402,fd=5))
LISTEN 0      511          0.0.0.0:
"""
UNITS = """nginx.service loaded active running A high performance web server
ssh.service loaded active running OpenBSD Secure Shell server
postgresql@15-main.service loaded active running PostgreSQL Cluster 15-main
app.service loaded active running My app
broken.service loaded failed failed Broken thing
cron.service loaded inactive dead Regular background program processing daemon
getty@tty1.service loaded inactive dead Getty on tty1
we;rd$(name).service loaded active running Odd
missing.service not-found inactive dead missing.service
"""
SHOW = """MainPID=1234
Id=nginx.service

Id=ssh.service
MainPID=99

Id=postgresql@15-main.service
MainPID=300

Id=app.service
MainPID=400

Id=broken.service
MainPID=0
"""
PS = """    1     0 systemd
   99     1 sshd
  300     1 postgres
  400     1 gunicorn
  401   400 gunicorn
  402   401 gunicorn
 1234     1 nginx
 1235  1234 nginx
"""


def script_output(credentials: dict[str, str] | None = None, end: bool = True) -> str:
    parts = ["@@proxboard ss", SS, "@@proxboard units", UNITS, "@@proxboard show", SHOW, "@@proxboard ps", PS,
             "@@proxboard credentials"]
    for name, text in (credentials or {}).items():
        parts += [f"@@proxboard credfile {name}", text]
    if end:
        parts.append("@@proxboard end")
    return "\n".join(parts)


def by_name(discovery):
    return {service.name: service for service in discovery.services}


def test_ports_map_to_units_through_child_processes():
    services = by_name(build_services(parse_discovery(script_output()), [], "10.0.0.5"))
    assert services["nginx"].port == 80 and services["nginx"].web_url == "http://10.0.0.5/"
    assert services["app"].port == 8000  # held by a grandchild of the main PID
    assert services["app"].web_url == "http://10.0.0.5:8000/"
    assert services["postgresql@15-main"].port == 5432
    assert services["postgresql@15-main"].web_url is None  # loopback only
    assert services["ssh"].kind == "system" and services["ssh"].web_url is None
    assert services["nginx"].kind == "application"


def test_inactive_system_units_and_unknown_units_are_left_out():
    services = by_name(build_services(parse_discovery(script_output()), [], None))
    assert "cron" not in services and "getty@tty1" not in services and "missing" not in services
    assert services["broken"].status == "failed" and services["broken"].last_error


def test_template_declaration_sets_scheme_path_and_degraded():
    declared = [
        DeclaredService("web", unit="nginx.service", port=80, scheme="https", web_path="/admin"),
        DeclaredService("app", port=9999),
        DeclaredService("grafana", unit="grafana-server", port=3000),
    ]
    services = by_name(build_services(parse_discovery(script_output()), declared, "10.0.0.5"))
    assert services["nginx"].web_url == "https://10.0.0.5:80/admin"
    assert services["app"].status == "degraded" and "9999" in services["app"].last_error
    assert services["grafana-server"].status == "stopped"  # declared, never installed


def test_credentials_match_services_and_template_units():
    output = parse_discovery(script_output({
        "postgresql": "POSTGRES_USER=admin\nPOSTGRES_PASSWORD='s3cret'\n",
        "nginx": "# comment\nexport HTPASSWD=x=y\n",
        "orphan": "A=1\n",
    }))
    discovery = build_services(output, [], None)
    services = by_name(discovery)
    assert services["postgresql@15-main"].credentials == {"POSTGRES_USER": "admin", "POSTGRES_PASSWORD": "s3cret"}
    assert services["nginx"].credentials == {"HTPASSWD": "x=y"}
    assert services["app"].credentials is None
    assert discovery.unmatched_credentials == ["orphan"]


def test_malformed_output_is_skipped_with_warnings(caplog):
    caplog.set_level(logging.WARNING, "app.services")
    output = parse_discovery(script_output({"app": "TOKEN=abc\nthis is not a pair hunter2\n"}))
    assert [listener.port for listener in output.listeners] == [80, 22, 5432, 8000]
    assert "we;rd$(name)" not in {unit.name for unit in output.units}
    assert output.credentials["app"] == {"TOKEN": "abc"}
    messages = caplog.text
    assert "skipping unreadable ss line" in messages
    assert "skipping unreadable unit line" in messages
    assert "line 2 of credential file app" in messages
    assert "hunter2" not in messages  # a bad credential line may be a secret


def test_truncated_output_keeps_what_arrived(caplog):
    text = script_output(end=False)
    cut = text[: text.index("@@proxboard ps") + 40]
    output = parse_discovery(cut)
    assert not output.complete and output.units
    assert "ended early" in caplog.text


@pytest.mark.parametrize(
    ("active", "sub", "status", "colour"),
    [
        ("active", "running", "running", "green"),
        ("active", "exited", "running", "green"),
        ("active", "reload-notify", "degraded", "yellow"),
        ("activating", "start-pre", "activating", "yellow"),
        ("weird", "weird", "unknown", "yellow"),
        ("failed", "failed", "failed", "red"),
        ("inactive", "dead", "stopped", "red"),
    ],
)
def test_status_and_colour(active, sub, status, colour):
    assert unit_status(active, sub) == status
    assert status_colour(status) == colour


def test_classification_and_links():
    for name in ("ssh", "sshd", "cron", "dbus", "getty@tty1", "systemd-journald", "container-getty@1",
                 "console-getty", "networking", "rsyslog", "postfix@-"):
        assert is_system_unit(name), name
    for name in ("nginx", "postgresql@15-main", "grafana-server", "myapp"):
        assert not is_system_unit(name), name
    assert web_url("10.0.0.5", 443) == "https://10.0.0.5/"
    assert web_url("fd00::5", 8080) == "http://[fd00::5]:8080/"
    assert web_url("10.0.0.5", 5432) is None
    assert web_url(None, 80) is None


def test_parsers_tolerate_headers_and_bullets():
    assert parse_ss(["Netid State Recv-Q", "garbage"]) == []
    assert parse_units(["● foo.service loaded failed failed Foo"])[0].name == "foo"
    assert parse_credentials("x", ["", "#c", "A = 1 "]) == {"A": "1"}
