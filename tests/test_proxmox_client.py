"""ProxmoxClient through proxmoxer over real HTTPS against the simulator (nothing mocked)."""
from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
from flask import Flask
from proxmoxer import ProxmoxAPI

from app.proxmox import (
    ProxmoxPermissionError,
    ProxmoxSlow,
    ContainerSpec,
    ProxmoxAPIError,
    ProxmoxAuthError,
    ProxmoxClient,
    ProxmoxConfigError,
    ProxmoxSettings,
    ProxmoxUnreachable,
    TaskFailed,
    TaskTimeout,
    get_proxmox,
    init_app,
)
from app.proxmox.cli import pve_cli
from app.proxmox.permissions import check_requirements
from tests.fixtures.pve import SIM_PASSWORD, SIM_TOKEN_VALUE, pve_config, sim_settings

DEBIAN = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
FAST = {"timeout": 5, "poll": 0.05}


def proxmox_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "app.proxmox" and r.levelno >= logging.WARNING]


def assert_no_secrets(caplog, *secrets: str) -> None:
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        for secret in secrets:
            assert secret not in text, f"secret leaked in log record from {record.name}"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ticket_client(pve):
    """A client using password (ticket) auth instead of the API token."""
    settings = sim_settings(pve, token_name=None, token_value=None, password=SIM_PASSWORD)
    with ProxmoxClient(settings) as client:
        yield client


@pytest.fixture
def cached_client(pve):
    """A client with a 5 s read cache."""
    with ProxmoxClient(sim_settings(pve, cache_seconds=5)) as client:
        yield client


# -- settings ------------------------------------------------------------------------------


def test_settings_coerce_environment_strings(pve):
    settings = ProxmoxSettings.from_config(
        {
            "PVE_HOST": "pve.example",
            "PVE_PORT": "8443",
            "PVE_TOKEN_NAME": "admin@pve!dash",
            "PVE_TOKEN_VALUE": "tok",
            "PVE_VERIFY_SSL": "false",
            "PVE_TIMEOUT": "2.5",
            "PVE_CACHE_SECONDS": "0",
            "PVE_NODE": "",
        }
    )
    assert (settings.port, settings.timeout, settings.cache_seconds) == (8443, 2.5, 0.0)
    assert settings.verify_ssl is False and settings.node is None
    assert (settings.user, settings.token_name, settings.auth_method) == ("admin@pve", "dash", "token")
    bundle = ProxmoxSettings.from_config({**pve_config(pve), "PVE_VERIFY_SSL": pve.ca_cert_path})
    assert bundle.verify_ssl == pve.ca_cert_path


def test_settings_repr_hides_token_and_password():
    settings = ProxmoxSettings(
        host="h", token_name="t", token_value="TOKEN-SECRET", password="PASSWORD-SECRET"
    )
    assert "TOKEN-SECRET" not in repr(settings) and "PASSWORD-SECRET" not in repr(settings)
    assert "TOKEN-SECRET" not in settings.describe()
    assert "TOKEN-SECRET" not in repr(ProxmoxClient(settings))


@pytest.mark.parametrize(
    "config, complaint",
    [
        ({"PVE_HOST": "h"}, "no Proxmox credentials"),
        ({"PVE_HOST": "h", "PVE_PASSWORD": "x", "PVE_PORT": "eighty"}, "PVE_PORT"),
        ({"PVE_HOST": "h", "PVE_TOKEN_NAME": "t"}, "PVE_TOKEN_VALUE"),
        ({"PVE_HOST": "h", "PVE_PASSWORD": "x", "PVE_VERIFY_SSL": "/nope/ca.pem"}, "CA bundle"),
    ],
)
def test_settings_reject_unusable_config(config, complaint):
    with pytest.raises(ProxmoxConfigError, match=complaint):
        ProxmoxSettings.from_config(config)


# -- reads ---------------------------------------------------------------------------------


def test_list_containers_is_one_cluster_resources_call_without_templates(pve, pve_client):
    containers = pve_client.list_containers()
    assert [ct.vmid for ct in containers] == [v for v in range(100, 120) if v != 103]
    assert pve.count_requests("GET", "/cluster/resources") == 1
    assert pve.requests[-1]["params"] == {"type": "vm"}
    web = containers[0]
    assert (web.vmid, web.node, web.name, web.status) == (100, "pve1", "web01", "running")
    assert 0 < web.cpu_percent < 100 and 0 < web.mem_percent < 100 and 0 < web.disk_percent < 100
    assert web.swap is None  # cluster/resources does not report swap
    everything = pve_client.list_containers(include_templates=True)
    assert [ct.vmid for ct in everything if ct.template] == [103]


def test_cluster_snapshot_gives_containers_and_node_totals_from_one_call(pve, pve_client):
    snapshot = pve_client.cluster_snapshot()
    assert pve.count_requests("GET", "/cluster/resources") == 1
    assert "type" not in pve.requests[-1]["params"]
    assert len(snapshot.containers) == 20
    assert [n.name for n in snapshot.nodes] == ["pve1", "pve2", "pve3"]
    assert snapshot.maxcpu == 40
    assert 0 < snapshot.cpu_percent < 100 and 0 < snapshot.mem_percent < 100
    assert {s.storage for s in snapshot.storages} == {"local", "local-lvm", "backup-nfs", "pbs"}
    assert snapshot.running_count == sum(ct.running for ct in pve.containers.values())


def test_pinned_node_limits_containers_and_nodes(pve):
    with ProxmoxClient(sim_settings(pve, node="pve2")) as client:
        assert {ct.node for ct in client.list_containers()} == {"pve2"}
        assert [n.name for n in client.nodes()] == ["pve2"]
        snapshot = client.cluster_snapshot()
        assert {ct.node for ct in snapshot.containers} == {"pve2"}
        assert [n.name for n in snapshot.nodes] == ["pve2"]


def test_container_status_reports_ha_and_swap(pve, pve_client):
    node = pve.containers[101].node
    ha = pve_client.container_status(node, 101)
    assert (ha.vmid, ha.status, ha.ha_managed, ha.ha_state) == (101, "running", True, "started")
    assert ha.maxswap is not None
    plain = pve_client.container_status("pve1", 100)
    assert (plain.ha_managed, plain.ha_state) == (False, None)


def test_container_config_is_typed(pve, pve_client):
    config = pve_client.container_config("pve1", 100)
    assert config.hostname == "web01"
    assert (config.rootfs_storage, config.rootfs_size_gb) == ("local-lvm", 8.0)
    (net,) = config.nets
    assert (net.index, net.name, net.bridge, net.ip, net.firewall) == (0, "eth0", "vmbr0", "dhcp", True)
    assert config.unprivileged is True
    assert config.features.nesting is True
    assert config.digest


def test_nodes_storages_templates_bridges(pve, pve_client):
    nodes = pve_client.nodes()
    assert [(n.name, n.status, n.maxcpu) for n in nodes] == [
        ("pve1", "online", 16), ("pve2", "online", 8), ("pve3", "online", 16)
    ]
    assert all(0 < n.free_cpus < n.maxcpu and n.free_mem > 0 for n in nodes)
    assert [s.storage for s in pve_client.storages("pve1")] == ["backup-nfs", "local", "local-lvm", "pbs"]
    assert [s.storage for s in pve_client.storages("pve1", content="rootdir")] == ["local-lvm"]
    templates = pve_client.os_templates("pve1")
    assert "debian-12-standard_12.7-1_amd64" in [t.name for t in templates]
    assert {t.volid for t in templates} >= {DEBIAN}
    assert [b.iface for b in pve_client.bridges("pve1")] == ["vmbr0", "vmbr1"]
    assert [b.iface for b in pve_client.bridges("pve2")] == ["vmbr0"]
    assert pve_client.bridges("pve1")[1].comments == "internal"


def test_container_interfaces_running_and_stopped(pve, pve_client):
    interfaces = {i.name: i for i in pve_client.container_interfaces("pve1", 100)}
    assert interfaces["eth0"].ipv4 and interfaces["eth0"].hwaddr
    stopped = pve.containers[104]
    assert pve_client.container_interfaces(stopped.node, 104) == ()


def test_version_vmids_and_find_node(pve, pve_client):
    version = pve_client.version()
    assert version.release == pve.pve_version and version.version.startswith(pve.pve_version + ".")
    assert pve_client.next_vmid() == 120
    assert pve_client.is_vmid_free(100) is False
    assert pve_client.is_vmid_free(5000) is True
    assert pve_client.find_container_node(101) == pve.containers[101].node
    assert pve_client.find_container_node(4242) is None


def test_taken_vmid_is_an_answer_not_a_logged_error(pve, pve_client, caplog):
    assert pve_client.is_vmid_free(100) is False
    assert proxmox_records(caplog) == []
    with pytest.raises(ProxmoxAPIError) as info:
        pve_client.is_vmid_free(99)  # below the minimum: a real error
    assert "vmid" in info.value.errors
    assert len(proxmox_records(caplog)) == 1


# -- quirks --------------------------------------------------------------------------------


def test_old_pve_quirks_are_normalised(pve, pve_client):
    pve.remove_all_containers()
    ct = pve.add_container(vmid=150, node="pve1", hostname="legacy", ha=True)
    ct.vmid = "150"  # PVE < 8.2 sent vmid as a string
    ct.status = "unknown"  # no RRD data yet
    ct.config["tags"] = "Prod, web;db  web"
    ct.config["onboot"] = "1"
    ct.config["unprivileged"] = "0"
    (summary,) = pve_client.list_containers()
    assert summary.vmid == 150 and isinstance(summary.vmid, int)
    assert summary.status == "unknown" and not summary.is_running
    assert summary.tags == ("Prod", "web", "db")
    assert (summary.ha_managed, summary.ha_state) == (True, "stopped")  # from "hastate"
    config = pve_client.container_config("pve1", 150)
    assert (config.onboot, config.unprivileged) == (True, False)


def test_container_without_hostname_or_optional_fields(pve, pve_client):
    pve.remove_all_containers()
    pve.add_container(vmid=160, node="pve3", cores=None)
    config = pve_client.container_config("pve3", 160)
    assert (config.hostname, config.cores, config.tags, config.description) == ("CT160", None, (), "")
    (summary,) = pve_client.list_containers()
    assert (summary.name, summary.lock, summary.tags) == ("CT160", None, ())


# -- actions and tasks ---------------------------------------------------------------------


def test_start_then_stop_returns_upids_and_changes_state(pve, pve_client):
    node = pve.containers[104].node
    upid = pve_client.start(node, 104)
    assert upid.startswith(f"UPID:{node}:") and ":vzstart:104:" in upid
    task = pve_client.wait_task(upid, **FAST)
    assert task.ok and task.user == "root@pam" and task.tokenid == "proxboard"
    assert pve_client.container_status(node, 104).status == "running"
    assert pve_client.task_log(node, upid)[-1].text == "TASK OK"
    pve_client.wait_task(pve_client.stop(node, 104), **FAST)
    assert pve.containers[104].status == "stopped"


def test_task_status_is_running_before_it_stops(pve, pve_client):
    node = pve.containers[104].node
    upid = pve_client.start(node, 104)
    first = pve_client.task_status(node, upid)
    assert first.running and first.exitstatus is None and not first.ok
    assert pve_client.wait_task(upid, **FAST).status == "stopped"
    assert pve.count_requests("GET", f"/nodes/{node}/tasks/") >= 2  # never cached


def test_shutdown_sends_force_stop_as_one(pve, pve_client):
    pve.faults.ignore_shutdown(100)
    upid = pve_client.shutdown("pve1", 100, timeout=0, force_stop=True)
    assert pve.requests[-1]["params"]["forceStop"] == "1"
    pve_client.wait_task(upid, **FAST)
    assert pve.containers[100].status == "stopped"


def test_shutdown_without_force_fails_task_when_container_ignores_it(pve, pve_client, caplog):
    pve.faults.ignore_shutdown(100)
    upid = pve_client.shutdown("pve1", 100, timeout=0)
    with pytest.raises(TaskFailed) as info:
        pve_client.wait_task(upid, **FAST)
    assert info.value.exitstatus == "container did not stop"
    assert "container did not stop" in info.value.message
    assert pve.containers[100].status == "running"
    (record,) = proxmox_records(caplog)
    assert "vmid=100" in record.getMessage() and "node=pve1" in record.getMessage()


def test_reboot_and_failing_start_task(pve, pve_client, caplog):
    assert pve_client.wait_task(pve_client.reboot("pve1", 100, timeout=5), **FAST).ok
    node = pve.containers[104].node
    pve.faults.fail_next_task(type="vzstart", vmid=104, message="mount failed: disk gone")
    with pytest.raises(TaskFailed) as info:
        pve_client.wait_task(pve_client.start(node, 104), **FAST)
    assert info.value.exitstatus == "mount failed: disk gone"
    assert info.value.message == "Start of CT 104 failed: mount failed: disk gone"
    assert pve.containers[104].status == "stopped"
    (record,) = proxmox_records(caplog)
    message = record.getMessage()
    assert "task vzstart" in message and "mount failed: disk gone" in message and "elapsed_ms=" in message


def test_wait_task_times_out(pve, pve_client, caplog):
    pve.faults.ignore_shutdown(100)
    upid = pve_client.shutdown("pve1", 100, timeout=1, force_stop=True)
    with pytest.raises(TaskTimeout) as info:
        pve_client.wait_task(upid, timeout=0.2, poll=0.05)
    assert info.value.upid == upid and isinstance(info.value, TimeoutError)
    assert len(proxmox_records(caplog)) == 1


def test_ha_managed_container_start_and_stop_go_through_ha_manager(pve, pve_client):
    pve.add_container(vmid=170, node="pve2", hostname="ha-web", ha=True)
    upid = pve_client.start("pve2", 170)
    assert ":hastart:170:" in upid
    assert pve_client.wait_task(upid, **FAST).ok
    assert pve_client.container_status("pve2", 170).ha_state == "started"
    pve.wait_idle(5)  # ha-manager starts the CT with its own vzstart task afterwards
    assert pve_client.container_status("pve2", 170).is_running
    upid = pve_client.stop("pve2", 170)
    assert ":hastop:170:" in upid
    assert pve_client.wait_task(upid, **FAST).ok
    assert pve_client.container_status("pve2", 170).ha_state == "stopped"


def test_create_sends_booleans_and_property_strings_proxmox_accepts(pve, pve_client):
    spec = ContainerSpec(
        node="pve1",
        vmid=pve_client.next_vmid(),
        ostemplate=DEBIAN,
        hostname="fresh",
        cores=2,
        memory=1024,
        storage="local-lvm",
        disk_gb=12,
        ip="10.0.0.5/24",
        gateway="10.0.0.1",
        nesting=True,
        keyctl=True,
        unprivileged=True,
        password="root-pass-SECRET",
        tags=("web", "prod"),
        onboot=True,
        start=True,
    )
    upid = pve_client.create_container(spec)
    sent = pve.requests[-1]["params"]
    assert (sent["unprivileged"], sent["onboot"], sent["start"]) == ("1", "1", "1")
    assert sent["features"] == "nesting=1,keyctl=1"
    assert pve_client.wait_task(upid, **FAST).ok
    config = pve_client.container_config("pve1", 120)
    assert (config.hostname, config.cores, config.memory, config.rootfs_size_gb) == ("fresh", 2, 1024, 12.0)
    assert (config.features.nesting, config.features.keyctl, config.unprivileged) == (True, True, True)
    assert (config.nets[0].ip, config.nets[0].gw) == ("10.0.0.5/24", "10.0.0.1")
    assert config.tags == ("prod", "web")
    pve.wait_idle(5)
    assert pve_client.container_status("pve1", 120).is_running


def test_proxmox_rejects_python_true_which_is_why_the_client_converts():
    from app.proxmox.wire import wire_params

    assert wire_params({"force": True, "purge": False, "x": None}) == {"force": 1, "purge": 0}


def test_raw_proxmoxer_true_is_rejected_by_the_simulator(pve):
    api = ProxmoxAPI(
        pve.host, port=pve.port, user=pve.token_user, token_name=pve.token_name,
        token_value=pve.token_value, verify_ssl=pve.ca_cert_path, timeout=5,
    )
    try:
        with pytest.raises(Exception, match="type check"):
            api.nodes("pve1").lxc(100).status.shutdown.post(forceStop=True)
    finally:
        api._store["session"].close()


def test_delete_removes_container(pve, pve_client):
    node = pve.containers[104].node
    upid = pve_client.delete(node, 104)
    sent = pve.requests[-1]["params"]
    assert (sent["purge"], sent["force"], sent["destroy-unreferenced-disks"]) == ("1", "0", "1")
    pve_client.wait_task(upid, **FAST)
    assert 104 not in pve.containers
    with pytest.raises(ProxmoxAPIError) as info:
        pve_client.container_config(node, 104)
    assert info.value.not_found


def test_refused_action_is_an_api_error_with_proxmox_message(pve, pve_client, caplog):
    node = pve.containers[104].node
    with pytest.raises(ProxmoxAPIError) as info:
        pve_client.stop(node, 104)
    assert (info.value.status_code, info.value.message) == (500, "CT 104 not running")
    (record,) = proxmox_records(caplog)
    message = record.getMessage()
    for part in ("op=stop", f"node={node}", "vmid=104", "status=500", "CT 104 not running", "elapsed_ms="):
        assert part in message
    assert record.pve_status == 500 and record.pve_vmid == 104


def test_parameter_errors_carry_the_field(pve, pve_client):
    spec = ContainerSpec(node="pve1", vmid=121, ostemplate=DEBIAN, hostname="bad_host!", memory=4)
    with pytest.raises(ProxmoxAPIError) as info:
        pve_client.create_container(spec)
    assert info.value.status_code == 400
    assert {"hostname", "memory"} <= set(info.value.errors)
    assert "hostname" in info.value.message
    assert 121 not in pve.containers


# -- errors --------------------------------------------------------------------------------


def test_app_starts_while_proxmox_is_down_and_reconnects(pve, caplog):
    pve.faults.unreachable = True
    app = Flask("t")
    app.config.update(pve_config(pve))
    client = init_app(app)
    try:
        assert pve.count_requests() == 0  # nothing at app creation
        with app.app_context():
            assert get_proxmox() is client
            with pytest.raises(ProxmoxUnreachable) as info:
                get_proxmox().list_containers()
        assert info.value.message.startswith(f"Cannot reach Proxmox at {pve.host}:{pve.port}")
        (record,) = proxmox_records(caplog)
        assert "op=list_containers" in record.getMessage()
        pve.faults.unreachable = False
        assert len(client.list_containers()) == 19
    finally:
        client.close()


def test_connection_refused_and_timeout_are_unreachable(pve, caplog):
    with ProxmoxClient(sim_settings(pve, port=closed_port())) as client:
        with pytest.raises(ProxmoxUnreachable, match="connection refused"):
            client.nodes()
        assert client.health() == "unreachable"
    pve.faults.delay = 1.0
    with ProxmoxClient(sim_settings(pve, timeout=0.3)) as client:
        with pytest.raises(ProxmoxUnreachable, match=r"no answer within 0.3 s"):
            client.version()
    pve.faults.delay = 0
    records = proxmox_records(caplog)
    assert len(records) == 3 and all("status=-" in r.getMessage() for r in records)


def test_untrusted_certificate_is_unreachable_with_tls_reason(pve):
    with ProxmoxClient(sim_settings(pve, verify_ssl="true")) as client:
        with pytest.raises(ProxmoxUnreachable, match="TLS"):
            client.version()


def test_bad_token_is_auth_error_and_never_logged(pve, caplog):
    caplog.set_level(logging.DEBUG)
    with ProxmoxClient(sim_settings(pve, token_value="WRONG-TOKEN-SECRET")) as client:
        with pytest.raises(ProxmoxAuthError) as info:
            client.list_containers()
        assert info.value.status_code == 401
        assert client.health() == "auth failed"
    records = proxmox_records(caplog)
    assert records and "status=401" in records[0].getMessage()
    assert_no_secrets(caplog, "WRONG-TOKEN-SECRET")


def test_permission_denied_names_the_missing_privilege_and_path(pve, pve_client, caplog):
    pve.set_token_privileges({"/vms": ["VM.Audit"], "/": ["Sys.Audit"]})
    node = pve.containers[104].node
    with pytest.raises(ProxmoxPermissionError) as info:
        pve_client.start(node, 104)
    assert isinstance(info.value, ProxmoxAuthError) and not isinstance(info.value, ProxmoxUnreachable)
    assert info.value.status_code == 403
    assert (info.value.privilege, info.value.path) == ("VM.PowerMgmt", "/vms/104")
    assert info.value.message == "The Proxmox API token lacks VM.PowerMgmt on /vms/104."
    assert "status=403" in proxmox_records(caplog)[0].getMessage()
    assert pve.containers[104].status == "stopped"


def test_permissions_report_what_the_token_may_do(pve, pve_client):
    pve.set_token_privileges({"/vms/101": ["VM.Audit", "VM.PowerMgmt"], "/": ["Sys.Audit"]})
    permissions = pve_client.permissions()
    assert permissions["/vms/101"] >= {"VM.Audit", "VM.PowerMgmt"}
    checks = {(c.requirement.privilege, c.requirement.feature): c.state for c in check_requirements(permissions)}
    assert checks[("VM.Audit", "See containers")] == "partial"
    assert checks[("VM.Allocate", "Delete containers")] == "missing"
    assert checks[("Sys.Audit", "Node figures")] == "granted"


def test_server_error_logged_once(pve, pve_client, caplog):
    pve.faults.fail_path("GET", r"^/cluster/resources", status=500, message="cluster not ready")
    with pytest.raises(ProxmoxAPIError, match="cluster not ready"):
        pve_client.cluster_snapshot()
    (record,) = proxmox_records(caplog)
    assert "status=500" in record.getMessage() and "op=cluster_snapshot" in record.getMessage()


def test_secrets_never_reach_any_log_even_at_debug(pve, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "proxmoxer", "proxmoxer.core", "proxmoxer.backends.https"):
        caplog.set_level(logging.DEBUG, logger=name)
    with ProxmoxClient(sim_settings(pve)) as client:
        client.list_containers()
        spec = ContainerSpec(
            node="pve1", vmid=130, ostemplate=DEBIAN, hostname="x", password="ct-root-SECRET"
        )
        client.wait_task(client.create_container(spec), **FAST)
    settings = sim_settings(pve, token_name=None, token_value=None, password=SIM_PASSWORD)
    with ProxmoxClient(settings) as client:
        client.wait_task(client.stop("pve1", 100), **FAST)
    assert any(r.name.startswith(("urllib3", "proxmoxer")) for r in caplog.records)  # debug was on
    assert_no_secrets(caplog, SIM_TOKEN_VALUE, SIM_PASSWORD, "ct-root-SECRET")


# -- ticket auth ---------------------------------------------------------------------------


def test_ticket_auth_logs_in_once_and_sends_csrf_on_post(pve, ticket_client):
    assert len(ticket_client.list_containers()) == 19
    assert ticket_client.nodes()
    assert pve.count_requests("POST", "/access/ticket") == 1
    upid = ticket_client.stop("pve1", 100)  # rejected without a valid CSRF token
    assert ":vzstop:100:root@pam:" in upid


def test_expired_ticket_leads_to_one_relogin_and_retry(pve, ticket_client, monkeypatch, caplog):
    issue = pve.auth.make_ticket
    backdated = lambda user, ts=None: issue(user, int(time.time()) - 7000)  # noqa: E731
    monkeypatch.setattr(pve.auth, "make_ticket", backdated)
    assert ticket_client.version().release == pve.pve_version  # logged in with a 7000 s old ticket
    monkeypatch.setattr(pve.auth, "make_ticket", issue)
    monkeypatch.setattr(pve, "ticket_lifetime", 3600)  # now that ticket has expired
    assert len(ticket_client.list_containers()) == 19
    assert pve.count_requests("POST", "/access/ticket") == 2
    statuses = [r["status"] for r in pve.requests if r["path"] == "/cluster/resources"]
    assert statuses == [401, 200]
    assert proxmox_records(caplog) == []


def test_proxmoxer_renewal_with_expired_ticket_falls_back_to_password(pve, ticket_client, monkeypatch):
    from proxmoxer.backends.https import ProxmoxHTTPAuth

    assert ticket_client.version()
    monkeypatch.setattr(pve.auth, "secret", b"rotated" * 4)  # every issued ticket is now invalid
    monkeypatch.setattr(ProxmoxHTTPAuth, "renew_age", 0)  # proxmoxer renews with the old ticket
    assert ticket_client.nodes()
    assert pve.count_requests("POST", "/access/ticket") >= 3


def test_wrong_password_is_auth_error_without_retry_storm(pve, caplog):
    settings = sim_settings(pve, token_name=None, token_value=None, password="WRONG-PASSWORD-SECRET")
    with ProxmoxClient(settings) as client:
        with pytest.raises(ProxmoxAuthError, match="rejected the credentials"):
            client.list_containers()
    assert pve.count_requests("POST", "/access/ticket") == 1
    assert_no_secrets(caplog, "WRONG-PASSWORD-SECRET")


# -- cache ---------------------------------------------------------------------------------


def test_concurrent_reads_share_one_upstream_call(pve, cached_client):
    pve.faults.delay = 0.2  # keep the first call in flight while the others arrive
    barrier = threading.Barrier(20)
    results, errors = [], []

    def read():
        barrier.wait()
        try:
            results.append(cached_client.list_containers())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors and len(results) == 20
    assert pve.count_requests("GET", "/cluster/resources") == 1
    assert all(r == results[0] for r in results)


def test_cache_serves_repeats_and_actions_invalidate_it(pve, cached_client):
    node = pve.containers[104].node
    assert cached_client.container_status(node, 104).status == "stopped"
    cached_client.list_containers()
    cached_client.list_containers()
    assert pve.count_requests("GET", "/cluster/resources") == 1
    upid = cached_client.start(node, 104)
    cached_client.list_containers()
    assert pve.count_requests("GET", "/cluster/resources") == 2
    cached_client.wait_task(upid, **FAST)
    assert cached_client.container_status(node, 104).status == "running"
    cached_client.invalidate()
    pve.clear_requests()
    cached_client.nodes()
    cached_client.nodes()
    assert [r["path"] for r in pve.requests] == ["/nodes"]


def test_failed_reads_are_not_cached(pve, cached_client):
    pve.faults.fail_path("GET", r"^/nodes$", status=500, message="boom", times=1)
    with pytest.raises(ProxmoxAPIError):
        cached_client.nodes()
    assert len(cached_client.nodes()) == 3


# -- health, Flask, CLI --------------------------------------------------------------------


def test_health_ok_uses_version(pve, pve_client):
    assert pve_client.health() == "ok"
    assert pve.count_requests("GET", "/version") == 1


def test_unconfigured_app_still_starts(caplog):
    app = Flask("t")
    client = init_app(app)
    assert client.health() == "not configured"
    with pytest.raises(ProxmoxConfigError, match="PVE_HOST"):
        client.list_containers()


def _cli_app(config: dict) -> Flask:
    app = Flask("t")
    app.config.update(config)
    init_app(app)
    app.cli.add_command(pve_cli)
    return app


def test_cli_check_reports_cluster(pve):
    app = _cli_app(pve_config(pve))
    try:
        result = app.test_cli_runner().invoke(args=["pve", "check"])
    finally:
        app.extensions["proxmox"].close()
    assert result.exit_code == 0, result.output
    assert f"https://{pve.host}:{pve.port} as API token root@pam!proxboard" in result.output
    assert f"release {pve.pve_version}" in result.output and "pve1 (online)" in result.output
    assert "[granted] VM.PowerMgmt on /vms" in result.output
    assert "Containers: 19 (+ 1 template)" in result.output
    assert SIM_TOKEN_VALUE not in result.output


def test_cli_check_explains_failure_with_exit_code_1(pve):
    app = _cli_app({**pve_config(pve), "PVE_TOKEN_VALUE": "WRONG"})
    try:
        result = app.test_cli_runner().invoke(args=["pve", "check"])
    finally:
        app.extensions["proxmox"].close()
    assert result.exit_code == 1
    assert "FAILED: Proxmox rejected the credentials" in result.output
    assert "WRONG" not in result.output


def test_calls_share_one_deadline_and_fail_fast_as_slow_once_it_passed(pve, pve_client):
    from app.proxmox.deadline import deadline

    pve.faults.delay = 0.6
    started = time.monotonic()
    with deadline(1.0):
        pve_client.version()  # 0.6 s of the 1 s
        with pytest.raises(ProxmoxSlow, match="did not answer within 1 s"):
            pve_client.nodes()  # gets only what is left
        with pytest.raises(ProxmoxSlow):
            pve_client.list_containers()  # nothing left: fails without asking
    # Cut at the deadline rather than at the 10 s client timeout (a loaded CI machine needs the margin;
    # the raises above and the request count below are what tell a shared deadline from calls in turn).
    assert time.monotonic() - started < 2.5
    assert pve.count_requests("GET", "/cluster/resources") == 0  # the third call never reached Proxmox
    assert isinstance(ProxmoxSlow("x"), ProxmoxUnreachable)
    pve.faults.delay = 0
    assert pve_client.version().release == pve.pve_version  # no deadline outside the block
