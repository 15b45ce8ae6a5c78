"""Parsing and mapping of the discovery output: pure functions, no SSH."""
from __future__ import annotations

import logging

import pytest

from app.guest_services.classify import is_system_unit, openrc_status, status_colour, unit_status, web_url
from app.guest_services.discovery import DeclaredService, build_services
from app.guest_services.parse import (
    Listener, parse_credentials, parse_discovery, parse_netstat, parse_openrc, parse_proc_stat, parse_ps, parse_ss,
    parse_units, read_proc_tcp,
)

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


def script_output(credentials: dict[str, str] | None = None, end: bool = True, ss: str = SS) -> str:
    parts = ["@@proxboard ss", ss, "@@proxboard units", UNITS, "@@proxboard show", SHOW, "@@proxboard ps", PS,
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
    clean_ss = SS.replace("LISTEN 0      511          0.0.0.0:\n", "")
    services = by_name(build_services(parse_discovery(script_output(ss=clean_ss)), declared, "10.0.0.5"))
    assert services["nginx"].web_url == "https://10.0.0.5:80/admin"
    assert services["app"].status == "degraded" and "9999" in services["app"].last_error
    assert services["grafana-server"].status == "stopped"  # declared, never installed


def test_an_unreadable_port_line_never_makes_a_service_degraded():
    output = parse_discovery(script_output())  # SS ends with a line cut before its port
    services = by_name(build_services(output, [DeclaredService("app", port=9999)], "10.0.0.5"))
    assert services["app"].status == "running"
    assert services["app"].last_error == "port 9999 not checked: 1 unreadable line(s) in the ss output"
    assert [str(gap) for gap in output.gaps] == ["listening ports: 1 unreadable line(s) in the ss output"]


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
    caplog.set_level(logging.WARNING, "app.guest_services")
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


# -- guests that are not Debian: real-shaped outputs ------------------------------------------------

# ss of iproute2 before the pid=/fd= labels (CentOS 6/7, Debian 7 era): "*" and ":::" wildcards
OLD_SS = """State      Recv-Q Send-Q        Local Address:Port          Peer Address:Port 
LISTEN     0      128                       *:22                       *:*      users:(("sshd",1123,3))
LISTEN     0      128                      :::22                      :::*      users:(("sshd",1123,4))
LISTEN     0      100               127.0.0.1:25                       *:*      users:(("master",1400,13))
LISTEN     0      511                       *:80                       *:*      users:(("nginx",2001,6),("nginx",2000,6))
LISTEN     0      128      ::ffff:127.0.0.1:8080                      :::*
"""
# busybox netstat -tlnp (networking/netstat.c): "-" for an unknown owner, the name cut by the column
BUSYBOX_NETSTAT = """Active Internet connections (only servers)
Proto Recv-Q Send-Q Local Address           Foreign Address         State       PID/Program name    
tcp        0      0 0.0.0.0:80              0.0.0.0:*               LISTEN      312/nginx: master p
tcp        0      0 0.0.0.0:22              0.0.0.0:*               LISTEN      250/sshd
tcp        0      0 127.0.0.1:6379          0.0.0.0:*               LISTEN      -
tcp        0      0 :::22                   :::*                    LISTEN      250/sshd
tcp        0      0
"""
# rc-status --all (OpenRC's rc-status.c: name, then the bracketed state; supervised daemons show uptime)
RC_STATUS_ALL = """Runlevel: default
 crond                                                             [  started  ]
 sshd                                                              [  started  ]
 nginx                                                             [  started  ]
 gitea                                                             [  started 2 day(s) 03:04:05 (0)  ]
 myapp                                                             [  crashed  ]
 redis                                                             [  stopped  ]
Runlevel: boot
 hostname                                                          [  started  ]
 bootmisc                                                          [  started  ]
 savecache                                                         [  stopped  ]
Runlevel: sysinit
 devfs                                                             [  started  ]
Dynamic Runlevel: hotplugged
Dynamic Runlevel: needed/wanted
 localmount                                                        [  started  ]
Dynamic Runlevel: manual
 * Caching service dependencies ...                                [ ok ]
 we;rd                                                             [  started  ]
"""
RC_DAEMONS = """nginx exec=/usr/sbin/nginx
nginx argv_0=/usr/sbin/nginx
nginx pidfile=/run/nginx/nginx.pid
sshd exec=/usr/sbin/sshd
sshd pidfile=/run/sshd.pid
gitea child_pid=705
crond exec=/usr/sbin/crond
crond pidfile=
garbage
"""
PIDFILES = """/run/nginx/nginx.pid 312
/var/run/sshd.pid 250
/run/supervise-gitea.pid 700
/run/empty.pid 
"""
# ps -o pid,ppid,comm of busybox with its header
BUSYBOX_PS = """PID   PPID  COMMAND
    1     0 init
  200     1 crond
  250     1 sshd
  312     1 nginx
  313   312 nginx
  700     1 supervise-daem
  705   700 gitea
"""


def alpine_output(ports: str, port_section: str = "netstat") -> str:
    return "\n".join([
        "@@proxboard begin", f"@@proxboard {port_section}", ports, "@@proxboard init openrc",
        "@@proxboard openrc", RC_STATUS_ALL, "@@proxboard openrc-list", RC_STATUS_ALL + " grafana  [  stopped  ]",
        "@@proxboard openrc-daemons", RC_DAEMONS, "@@proxboard pidfiles", PIDFILES,
        "@@proxboard ps", BUSYBOX_PS, "@@proxboard credentials", "@@proxboard end",
    ])


def test_old_iproute2_ss_without_pid_labels():
    listeners = parse_ss(OLD_SS.splitlines())
    assert [(item.address, item.port, item.pids) for item in listeners] == [
        ("*", 22, (1123,)), ("::", 22, (1123,)), ("127.0.0.1", 25, (1400,)), ("*", 80, (2001, 2000)),
        ("::ffff:127.0.0.1", 8080, ()),
    ]
    assert [item.loopback_only for item in listeners] == [False, False, True, False, True]


def test_busybox_netstat(caplog):
    listeners = parse_netstat(BUSYBOX_NETSTAT.splitlines())
    assert [(item.address, item.port, item.pids) for item in listeners] == [
        ("0.0.0.0", 80, (312,)), ("0.0.0.0", 22, (250,)), ("127.0.0.1", 6379, ()), ("::", 22, (250,)),
    ]
    assert "skipping unreadable netstat line" in caplog.text


def test_netstat_without_program_column_reports_the_owner_gap():
    no_p = "\n".join(line[:80].rstrip() for line in BUSYBOX_NETSTAT.splitlines()[:4])  # netstat -tln
    output = parse_discovery(f"@@proxboard netstat\n{no_p}\n@@proxboard init none\n@@proxboard ps\n{BUSYBOX_PS}\n"
                             "@@proxboard end")
    assert [listener.port for listener in output.listeners] == [80, 22] and output.ports_checked
    assert "which process holds each port: netstat named no processes" in [str(gap) for gap in output.gaps]


def test_openrc_states_map_like_systemd_ones_and_ports_follow_pidfiles():
    output = parse_discovery(alpine_output(BUSYBOX_NETSTAT.rsplit("tcp        0      0\n", 1)[0]))
    assert output.init == "openrc" and output.port_source == "netstat" and output.gaps == []
    declared = [DeclaredService("web", unit="nginx.service", port=80), DeclaredService("grafana", port=3000),
                DeclaredService("absent", port=1)]
    services = by_name(build_services(output, declared, "10.0.0.7"))
    assert services["nginx"].status == "running" and services["nginx"].web_url == "http://10.0.0.7/"
    assert services["nginx"].unit == "nginx" and services["nginx"].kind == "application"
    assert services["sshd"].port == 22 and services["sshd"].kind == "system"  # /var/run/sshd.pid
    assert services["gitea"].status == "running"  # supervise-daemon's child
    assert services["myapp"].status == "failed" and services["myapp"].last_error == "OpenRC reports crashed"
    assert services["redis"].status == "stopped"
    assert services["grafana"].status == "stopped" and services["grafana"].last_error is None  # in no runlevel
    assert services["absent"].status == "stopped" and "no such service" in services["absent"].last_error
    assert "savecache" not in services and "devfs" in services  # stopped system scripts are noise
    assert "we;rd" not in services and "*" not in services


def test_openrc_ini_format_and_state_words():
    units = parse_openrc(["[default]", "sshd =  started ", "nginx = crashed", "[Dynamic manual]", "x = "])
    assert [(unit.name, unit.active) for unit in units] == [("sshd", "started"), ("nginx", "crashed")]
    assert [openrc_status(word) for word in ("started", "stopped", "crashed", "starting", "inactive", "odd")] == [
        "running", "stopped", "failed", "activating", "activating", "unknown"]


def test_busybox_ps_formats():
    assert {p.pid: (p.ppid, p.comm) for p in parse_ps(BUSYBOX_PS.splitlines()).values()}[313] == (312, "nginx")
    plain = ["PID   USER     TIME  COMMAND", "    1 root      0:00 /sbin/init", "  312 root      0:00 nginx: master process",
             "    2 root      0:00 [kthreadd]"]
    assert {p.pid: (p.ppid, p.comm) for p in parse_ps(plain).values()} == {
        1: (0, "init"), 312: (0, "nginx"), 2: (0, "kthreadd")}
    old = ["  PID  Uid     VmSize Stat Command", "    1 root        404 S   init", "    2 root            SW  [keventd]"]
    assert {p.pid: p.comm for p in parse_ps(old).values()} == {1: "init", 2: "keventd"}


def test_proc_net_tcp_and_fd_sockets():
    tcp = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 16123 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 17555 1 0000000000000000 100 0 0 10 0
   2: 0F02000A:0016 0202000A:C350 01 00000000:00000000 02:000A7F5B 00000000     0        0 18555 4 0000000000000000 20 4 30 10 -1
   3: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 16125 1 0000000000000000 100 0 0 10 0
   4: 00000000000000000000000001000000:0277 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 19000 1 0000000000000000 100 0 0 10 0
   5: zz
"""
    fds = ["pid 250", "socket:[16123]", "socket:[16125]", "pid 400", "socket:[17555]", "pid x", "socket:[19000]"]
    listeners, skipped = read_proc_tcp(tcp.splitlines(), fds)
    assert listeners == [
        Listener("0.0.0.0", 22, (250,)), Listener("127.0.0.1", 8080, (400,)), Listener("[::]", 22, (250,)),
        Listener("[::1]", 631, ()),
    ]
    assert skipped == 1 and listeners[3].loopback_only
    stat = ["1 (init) S 0 1 1 0 -1 4194560", "412 (my app (2)) S 1 412 412 0", "garbage", "9 (x) S"]
    assert {p.pid: (p.ppid, p.comm) for p in parse_proc_stat(stat).values()} == {1: (0, "init"), 412: (1, "my app (2)")}


def test_no_init_system_reports_what_it_can():
    text = "\n".join(["@@proxboard begin", "@@proxboard netstat", BUSYBOX_NETSTAT, "@@proxboard init none",
                      "@@proxboard gap states no-init-system", "@@proxboard proc-stat",
                      "1 (tini) S 0", "250 (sshd) S 1", "312 (nginx) S 1", "313 (nginx) S 312", "@@proxboard end"])
    output = parse_discovery(text)
    assert [str(gap) for gap in output.gaps] == ["service states: no systemd or OpenRC",
                                                 "listening ports: 1 unreadable line(s) in the netstat output"]
    discovery = build_services(output, [DeclaredService("web", unit="nginx", port=80),
                                        DeclaredService("worker")], "10.0.0.8")
    services = by_name(discovery)
    assert not discovery.states_checked
    assert services["nginx"].status == "running" and services["nginx"].web_url == "http://10.0.0.8/"
    assert services["sshd"].kind == "system" and services["sshd"].port == 22
    assert services["worker"].status == "unknown"
    assert services["worker"].last_error == "service states not checked: no systemd or OpenRC"


def test_no_port_tool_keeps_the_init_state_and_names_the_gap():
    text = alpine_output("", port_section="unused").replace("@@proxboard unused",
                                                            "@@proxboard gap ports no-port-tool")
    output = parse_discovery(text)
    assert output.port_source is None and not output.ports_checked
    services = by_name(build_services(output, [DeclaredService("web", unit="nginx", port=80)], "10.0.0.7"))
    assert services["nginx"].status == "running" and services["nginx"].web_url == "http://10.0.0.7/"
    assert services["nginx"].last_error == "port 80 not checked: no ss, netstat or /proc/net/tcp"
    assert [gap.as_dict() for gap in output.gaps] == [
        {"key": "ports", "what": "listening ports", "why": "no ss, netstat or /proc/net/tcp"}]


@pytest.mark.parametrize("section", ["ss", "netstat", "proc-tcp", "proc-fd", "openrc", "openrc-list",
                                     "openrc-daemons", "pidfiles", "ps", "proc-stat", "units", "show"])
def test_garbage_in_any_section_is_skipped_never_raised(section):
    garbage = "\n".join(["", "   ", "\x00\xff", "[ ]", "a = ", "=", ":", "0A 0A 0A", "pid", "1 (", ") 1",
                         "LISTEN : : : :", "tcp 0 0 x:y z LISTEN a/b", "PID", "PID PPID", "1 2", "-1 -2 -3"])
    init = {"openrc": "openrc", "openrc-list": "openrc", "openrc-daemons": "openrc", "pidfiles": "openrc"}
    text = f"@@proxboard init {init.get(section, 'systemd')}\n@@proxboard {section}\n{garbage}\n@@proxboard end"
    build_services(parse_discovery(text), [DeclaredService("x", port=1)], "10.0.0.1")


def test_a_unit_declared_twice_is_one_service_whether_running_or_missing():
    """AdGuard Home's template declares AdGuardHome.service for its web UI and its DNS port."""
    declared = [DeclaredService("adguardhome", unit="AdGuardHome.service", port=80, scheme="http"),
                DeclaredService("dns", unit="AdGuardHome.service", port=53)]
    missing = build_services(parse_discovery(script_output()), declared, "10.0.0.5")
    assert [s.name for s in missing.services].count("AdGuardHome") == 1
    assert len({s.name for s in missing.services}) == len(missing.services)
    running = build_services(parse_discovery(script_output()), [
        DeclaredService("web", unit="nginx.service", port=80, scheme="http"),
        DeclaredService("status", unit="nginx.service", port=8080)], "10.0.0.5")
    names = [s.name for s in running.services]
    assert names.count("nginx") == 1 and len(set(names)) == len(names)


def test_debian_minbase_one_shots_are_system_services():
    assert is_system_unit("pam_namespace") and is_system_unit("e2scrub_fail@sda1")  # as parse_units names them


def test_an_umbrella_unit_and_its_instance_are_one_declared_service():
    """Debian's PostgreSQL: postgresql.service (one-shot, exited) starts postgresql@15-main, the server."""
    units = UNITS.replace("postgresql@15-main.service", "postgresql.service loaded active exited PostgreSQL RDBMS\n"
                                                          "postgresql@15-main.service", 1)
    text = script_output({"postgresql": "POSTGRES_USER=admin\nPOSTGRES_PASSWORD='s3cret'\n"}).replace(UNITS, units)
    declared = [DeclaredService("postgresql", unit="postgresql.service", port=5432, scheme="tcp")]
    services = by_name(build_services(parse_discovery(text), declared, "10.0.0.5"))
    postgres = [name for name in services if name.startswith("postgresql")]
    assert postgres == ["postgresql"]  # one card, under the template's name
    server = services["postgresql"]
    assert server.unit.startswith("postgresql@15-main") and server.status == "running" and server.port == 5432
    assert server.credentials["POSTGRES_USER"] == "admin"
