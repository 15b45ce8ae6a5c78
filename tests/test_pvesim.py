"""The Proxmox VE simulator (tests/pvesim) checked against the PVE 8.4 schema and behaviour.

Everything goes over real HTTPS with plain ``requests`` (and once through proxmoxer).
"""
from __future__ import annotations

import itertools
import json
import re
import threading
import time

import pytest
import requests

from tests.fixtures.pvesim_http import ct_url, sim_session, task_log, wait_task
from tests.pvesim import PVESimulator

TOKEN = "root@pam!proxboard=sim-secret-value"
PASSWORD = "pvepass-sim"
UPID_RE = re.compile(r"^UPID:pve\d:[0-9A-F]{8}:[0-9A-F]{8,9}:[0-9A-F]{8}:[a-z]+:\d+:[^:]+:$")
DEBIAN = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"


@pytest.fixture(scope="module")
def sim_module():
    sim = PVESimulator(nodes=3, containers=20, token=TOKEN, password=PASSWORD,
                       task_delay=0.05, seed=1, time_scale=0.01).start()
    yield sim
    sim.stop()


# --------------------------------------------------------------------------------------------
# 400 Parameter verification failed.
# --------------------------------------------------------------------------------------------

INVALID = [
    # id, method, path (vmid placeholders resolved against the seeded cluster), params, key, message
    ("unknown-param", "POST", "ct:104/status/start", {"foo": "1"}, "foo",
     "property is not defined in schema and the schema does not allow additional properties"),
    ("vmid-99", "GET", "/nodes/pve1/lxc/99/status/current", {}, "vmid",
     "invalid format - value does not look like a valid VM ID\n"),
    ("vmid-abc", "GET", "/nodes/pve1/lxc/abc/status/current", {}, "vmid",
     "type check ('integer') failed - got 'abc'"),
    ("bad-node", "GET", "/nodes/pve_1/lxc", {}, "node",
     "invalid format - value does not look like a valid node name\n"),
    ("bad-hostname", "POST", "/nodes/pve1/lxc",
     {"vmid": "900", "ostemplate": DEBIAN, "hostname": "bad_host!"}, "hostname",
     "invalid format - value does not look like a valid DNS name\n"),
    ("type-lxc", "GET", "/cluster/resources", {"type": "lxc"}, "type",
     "value 'lxc' does not have a value in the enumeration 'vm, storage, node, sdn'"),
    ("bool-True", "POST", "ct:100/status/shutdown", {"forceStop": "True"}, "forceStop",
     "type check ('boolean') failed - got 'True'"),
    ("missing-ostemplate", "POST", "/nodes/pve1/lxc", {"vmid": "900"}, "ostemplate",
     "property is missing and it is not optional"),
    ("net0-bad-key", "POST", "/nodes/pve1/lxc",
     {"vmid": "900", "ostemplate": DEBIAN, "net0": "name=eth0,bridgee=vmbr0"}, "net0",
     "invalid format - invalid key in comma-separated list property: bridgee\n"),
    ("net0-needs-name", "POST", "/nodes/pve1/lxc",
     {"vmid": "900", "ostemplate": DEBIAN, "net0": "bridge=vmbr0,ip=dhcp"}, "net0",
     "invalid format - format error\nnet0.name: property is missing and it is not optional\n"),
    ("net-without-index", "POST", "/nodes/pve1/lxc",
     {"vmid": "900", "ostemplate": DEBIAN, "net": "name=eth0"}, "net",
     "property is not defined in schema and the schema does not allow additional properties"),
    ("tag-invalid-chars", "PUT", "ct:104/config", {"tags": "ok,b@d"}, "tags",
     "invalid format - invalid characters in tag\n"),
    ("memory-minimum", "PUT", "ct:104/config", {"memory": "8"}, "memory",
     "value must have a minimum value of 16"),
    ("cores-maximum", "PUT", "ct:104/config", {"cores": "9000"}, "cores",
     "value must have a maximum value of 8192"),
    ("password-too-short", "POST", "/nodes/pve1/lxc",
     {"vmid": "900", "ostemplate": DEBIAN, "password": "abc"}, "password",
     "value must be at least 5 characters long"),
    ("delete-string-int", "DELETE", "ct:104", {"purge": "yes"}, "purge",
     "type check ('boolean') failed - got 'yes'"),
    ("log-limit-negative", "GET", "/nodes/pve1/tasks/UPID:pve1:00000001:00000001:00000001:vzstart:100:root@pam:/log",
     {"limit": "-1"}, "limit", "value must have a minimum value of 0"),
]


@pytest.mark.parametrize("method,path,params,key,message", [i[1:] for i in INVALID], ids=[i[0] for i in INVALID])
def test_invalid_requests_are_rejected_like_pve(sim, api, method, path, params, key, message):
    if path.startswith("ct:"):
        vmid, _, rest = path[3:].partition("/")
        url = ct_url(sim, int(vmid), "/" + rest if rest else "")
    else:
        url = sim.url + path
    tasks_before = len(sim.cluster.tasks)
    config_before = {v: dict(c.config) for v, c in sim.containers.items()}
    kw = {"params": params} if method in ("GET", "DELETE") else {"data": params}
    r = api.request(method, url, **kw)
    assert (r.status_code, r.reason) == (400, "Parameter verification failed.")
    body = r.json()
    assert body["data"] is None
    assert body["errors"][key] == message
    assert len(sim.cluster.tasks) == tasks_before  # nothing was started
    assert {v: c.config for v, c in sim.containers.items()} == config_before


def test_path_param_repeated_in_body_is_rejected(sim, api):
    # pve-manager HTTPServer.pm (a2beaf13, PVE 6.3+): equal duplicates pass, conflicting ones fail
    r = api.post(ct_url(sim, 104, "/status/start"), data={"vmid": "105"})
    assert r.status_code == 400
    assert r.json()["errors"] == {"vmid": "duplicate parameter (already defined in URI) with conflicting values!"}
    assert sim.containers[104].status == "stopped"
    r = api.post(ct_url(sim, 104, "/status/start"), data={"vmid": "104"})
    assert r.status_code == 200 and ":vzstart:104:" in r.json()["data"]


def test_valid_property_strings_and_list_formats_pass(sim, api):
    r = api.put(ct_url(sim, 104, "/config"), data={
        "net1": "name=eth1,bridge=vmbr1,firewall=yes,ip=10.0.0.5/24,gw=10.0.0.1,tag=20",
        "features": "nesting=1", "tags": "Zeta b;a", "description": "x"})  # keyctl: root@pam only, no token
    assert (r.status_code, r.json()) == (200, {"data": None})
    cfg = api.get(ct_url(sim, 104, "/config")).json()["data"]
    assert cfg["tags"] == "a;b;zeta"
    assert cfg["net1"].startswith("name=eth1,bridge=vmbr1,firewall=1,")  # parse_boolean('yes') -> 1
    assert "hwaddr=BC:24:11:" in cfg["net1"] and cfg["net1"].endswith("type=veth")
    assert cfg["features"] == "nesting=1"


# --------------------------------------------------------------------------------------------
# envelope, reason phrases, pre-fork errors
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method,vmid,suffix,params,status,message", [
    ("POST", 100, "/status/start", {}, 500, "CT 100 already running"),
    ("POST", 104, "/status/stop", {}, 500, "CT 104 not running"),
    ("POST", 104, "/status/shutdown", {}, 500, "CT 104 not running"),
    ("POST", 104, "/status/reboot", {}, 500, "VM 104 not running"),
    ("DELETE", 100, "", {}, 500, "unable to destroy CT 100 - container is running"),
    ("DELETE", 101, "", {"force": "1"}, 500,
     "unable to remove CT 101 - used in HA resources and purge parameter not set."),
    ("DELETE", 102, "", {}, 500, "CT is locked (backup)"),
], ids=["start-running", "stop-stopped", "shutdown-stopped", "reboot-stopped", "delete-running",
        "delete-ha", "delete-locked"])
def test_prefork_errors_use_reason_phrase_and_message(sim, api, method, vmid, suffix, params, status, message):
    status_before = sim.containers[vmid].status
    r = api.request(method, ct_url(sim, vmid, suffix), params=params)
    assert (r.status_code, r.reason) == (status, message)
    assert r.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert r.json() == {"data": None, "message": message + "\n"}
    assert vmid in sim.containers and sim.containers[vmid].status == status_before


def test_missing_ct_unknown_path_and_existing_vmid(sim, api):
    r = api.get(f"{sim.url}/nodes/pve1/lxc/4242/status/current")
    assert (r.status_code, r.reason) == (500, "Configuration file 'nodes/pve1/lxc/4242.conf' does not exist")
    other = "pve2" if sim.containers[100].node != "pve2" else "pve3"
    r = api.get(f"{sim.url}/nodes/{other}/lxc/100/config")  # right vmid, wrong node
    assert r.reason == f"Configuration file 'nodes/{other}/lxc/100.conf' does not exist"
    r = api.get(f"{sim.url}/nodes/pve1/nothing-here")
    assert (r.status_code, r.reason) == (501, "Method 'GET /nodes/pve1/nothing-here' not implemented")
    r = api.post(f"{sim.url}/nodes/pve1/lxc", data={"vmid": "100", "ostemplate": DEBIAN})
    assert (r.status_code, r.reason) == (500, f"CT 100 already exists on node '{sim.containers[100].node}'")


def test_nextid(sim, api):
    assert api.get(f"{sim.url}/cluster/nextid").json() == {"data": 120}
    r = api.get(f"{sim.url}/cluster/nextid", params={"vmid": "105"})
    assert (r.status_code, r.json()) == (400, {"data": None, "errors": {"vmid": "VM 105 already exists"}})
    assert api.get(f"{sim.url}/cluster/nextid", params={"vmid": "555"}).json()["data"] == "555"


# --------------------------------------------------------------------------------------------
# authentication
# --------------------------------------------------------------------------------------------

def test_wrong_token_and_missing_auth_are_401_with_empty_body(sim, anon):
    bad = sim.auth_header[:-1] + "x"
    r = anon.get(f"{sim.url}/version", headers={"Authorization": bad})
    assert (r.status_code, r.reason, r.content) == (401, "Authentication failed!", b"")
    r = anon.get(f"{sim.url}/cluster/resources")
    assert (r.status_code, r.reason, r.content) == (401, "No ticket", b"")


def test_ticket_auth_csrf_and_renewal(sim, anon):
    r = anon.post(f"{sim.url}/access/ticket", data={"username": "root@pam", "password": "wrong"})
    assert (r.status_code, r.reason, r.json()) == (401, "authentication failure", {"data": None})

    r = anon.post(f"{sim.url}/access/ticket", data={"username": "root@pam", "password": PASSWORD})
    data = r.json()["data"]
    assert data["username"] == "root@pam"
    assert re.match(r"^PVE:root@pam:[0-9A-F]{8}::\S+$", data["ticket"])
    assert re.match(r"^[0-9A-F]{8}:\S+$", data["CSRFPreventionToken"])
    cookies = {"PVEAuthCookie": data["ticket"]}

    assert anon.get(f"{sim.url}/nodes", cookies=cookies).status_code == 200
    url = ct_url(sim, 104, "/status/start")
    r = anon.post(url, cookies=cookies)
    assert (r.status_code, r.reason, r.content) == (401, "Permission denied - invalid csrf token", b"")
    assert sim.containers[104].status == "stopped"
    r = anon.post(url, cookies=cookies, headers={"CSRFPreventionToken": data["CSRFPreventionToken"]})
    assert r.status_code == 200 and ":vzstart:104:root@pam:" in r.json()["data"]

    # proxmoxer renews by posting the current ticket as password
    r = anon.post(f"{sim.url}/access/ticket", data={"username": "root@pam", "password": data["ticket"]})
    assert r.status_code == 200 and r.json()["data"]["ticket"].startswith("PVE:root@pam:")

    sim.ticket_lifetime = -1  # every ticket is now expired
    r = anon.get(f"{sim.url}/nodes", cookies=cookies)
    assert (r.status_code, r.content) == (401, b"")


def test_token_on_ticket_only_endpoint_is_403(sim, api):
    r = api.get(f"{sim.url}/access/ticket")  # exempt from auth: fine
    assert r.status_code == 200
    r = api.get(f"{sim.url}/access/users/root@pam/token")
    assert r.status_code in (501, 403)  # not simulated, but never a 200


# --------------------------------------------------------------------------------------------
# tasks and power semantics
# --------------------------------------------------------------------------------------------

def test_start_task_runs_and_finishes_ok(sim, api):
    r = api.post(ct_url(sim, 104, "/status/start"))
    upid = r.json()["data"]
    assert UPID_RE.match(upid), upid
    assert upid.split(":")[5:8] == ["vzstart", "104", "root@pam!proxboard"]
    first = api.get(f"{sim.url}/nodes/{upid.split(':')[1]}/tasks/{upid}/status").json()["data"]
    assert first["status"] == "running" and "exitstatus" not in first
    st = wait_task(api, sim, upid)
    assert st["exitstatus"] == "OK" and st["user"] == "root@pam" and st["tokenid"] == "proxboard"
    assert task_log(api, sim, upid)[-1] == "TASK OK"
    cur = api.get(ct_url(sim, 104, "/status/current")).json()["data"]
    assert cur["status"] == "running" and cur["ha"] == {"managed": 0} and cur["pid"] > 0
    listed = [t for t in api.get(f"{sim.url}/cluster/tasks").json()["data"] if t["upid"] == upid]
    assert listed and listed[0]["status"] == "OK" and "endtime" in listed[0]


def test_ha_managed_container_gets_ha_tasks(sim, api):
    cur = api.get(ct_url(sim, 101, "/status/current")).json()["data"]
    assert cur["ha"]["managed"] == 1 and cur["ha"]["state"] == "started"
    upid = api.post(ct_url(sim, 101, "/status/shutdown")).json()["data"]
    assert ":hastop:101:" in upid
    assert wait_task(api, sim, upid)["exitstatus"] == "OK"
    assert sim.wait_idle(5)
    cur = api.get(ct_url(sim, 101, "/status/current")).json()["data"]
    assert cur["status"] == "stopped" and cur["ha"]["state"] == "stopped"
    upid = api.post(ct_url(sim, 101, "/status/start")).json()["data"]
    assert ":hastart:101:" in upid


def test_shutdown_ignored_without_and_with_force_stop(sim, api):
    sim.faults.ignore_shutdown(100)
    upid = api.post(ct_url(sim, 100, "/status/shutdown"), data={"timeout": "5"}).json()["data"]
    st = wait_task(api, sim, upid)
    assert st["exitstatus"] == "container did not stop"
    assert task_log(api, sim, upid)[-1] == "TASK ERROR: container did not stop"
    assert sim.containers[100].status == "running"

    upid = api.post(ct_url(sim, 100, "/status/shutdown"), data={"timeout": "5", "forceStop": "1"}).json()["data"]
    assert wait_task(api, sim, upid)["exitstatus"] == "OK"
    assert sim.containers[100].status == "stopped"


def test_shutdown_timeout_is_scaled(sim, api):
    sim.faults.ignore_shutdown(100)
    sim.time_scale = 0.05
    t0 = time.monotonic()
    upid = api.post(ct_url(sim, 100, "/status/shutdown"), data={"timeout": "4"}).json()["data"]
    wait_task(api, sim, upid)
    assert time.monotonic() - t0 >= 0.2  # 4 s * 0.05


def test_failing_task_and_template_start(sim, api):
    sim.faults.fail_next_task(type="vzstart", vmid=104, message="simulated start failure")
    upid = api.post(ct_url(sim, 104, "/status/start")).json()["data"]
    assert wait_task(api, sim, upid)["exitstatus"] == "simulated start failure"
    assert task_log(api, sim, upid)[-1] == "TASK ERROR: simulated start failure"
    assert sim.containers[104].status == "stopped"
    upid = api.post(ct_url(sim, 104, "/status/start")).json()["data"]  # one-shot fault
    assert wait_task(api, sim, upid)["exitstatus"] == "OK"
    upid = api.post(ct_url(sim, 103, "/status/start")).json()["data"]  # 103 is a template
    assert wait_task(api, sim, upid)["exitstatus"] == "you can't start a CT if it's a template"


def test_create_start_and_destroy(sim, api):
    r = api.post(f"{sim.url}/nodes/pve2/lxc", data={
        "vmid": "900", "ostemplate": DEBIAN, "hostname": "new-ct", "rootfs": "local-lvm:8",
        "net0": "name=eth0,bridge=vmbr0,ip=dhcp", "tags": "Web,db;web", "memory": "1024",
        "unprivileged": "1", "start": "1"})
    upid = r.json()["data"]
    assert ":vzcreate:900:" in upid
    assert sim.containers[900].lock == "create"  # config exists, locked, while the task runs
    assert wait_task(api, sim, upid)["exitstatus"] == "OK"
    cfg = api.get(f"{sim.url}/nodes/pve2/lxc/900/config").json()["data"]
    assert cfg["tags"] == "db;web" and cfg["memory"] == 1024 and cfg["unprivileged"] == 1
    assert cfg["rootfs"] == "local-lvm:vm-900-disk-0,size=8G" and "lock" not in cfg
    assert re.fullmatch(r"[0-9a-f]{40}", cfg["digest"])
    cur = api.get(f"{sim.url}/nodes/pve2/lxc/900/status/current").json()["data"]
    assert (cur["status"], cur["name"], cur["maxdisk"], cur["maxmem"]) == ("running", "new-ct", 8 << 30, 1 << 30)
    ifs = api.get(f"{sim.url}/nodes/pve2/lxc/900/interfaces").json()["data"]
    assert {i["name"] for i in ifs} == {"lo", "eth0"} and any("inet" in i for i in ifs if i["name"] == "eth0")

    upid = api.delete(f"{sim.url}/nodes/pve2/lxc/900", params={"force": "1", "purge": "1"}).json()["data"]
    assert ":vzdestroy:900:" in upid and wait_task(api, sim, upid)["exitstatus"] == "OK"
    assert 900 not in sim.containers


def test_create_with_default_rootfs_on_dir_storage_fails(sim, api):
    r = api.post(f"{sim.url}/nodes/pve1/lxc", data={"vmid": "901", "ostemplate": DEBIAN})
    assert r.status_code == 400
    assert r.json()["errors"] == {"storage": "storage 'local' does not support container directories"}
    assert 901 not in sim.containers


def test_put_config_is_synchronous_and_checks_digest(sim, api):
    url = ct_url(sim, 104, "/config")
    assert api.put(url, data={"hostname": "renamed", "delete": "onboot"}).json() == {"data": None}
    assert sim.containers[104].hostname == "renamed"
    r = api.put(url, data={"memory": "256", "digest": "0" * 40})
    assert r.status_code == 500 and r.reason.startswith("detected modified configuration")
    r = api.put(ct_url(sim, 102, "/config"), data={"memory": "256"})
    assert (r.status_code, r.reason) == (500, "CT is locked (backup)")


# --------------------------------------------------------------------------------------------
# read endpoints
# --------------------------------------------------------------------------------------------

def test_cluster_resources_guest_entries(sim, api):
    res = api.get(f"{sim.url}/cluster/resources", params={"type": "vm"}).json()["data"]
    assert len(res) == 20 and all(e["type"] == "lxc" for e in res)
    by = {e["vmid"]: e for e in res}
    assert all(e["template"] in (0, 1) and e["id"] == f"lxc/{e['vmid']}" for e in res)
    assert by[101]["hastate"] == "started" and "hastate" not in by[100]
    assert by[102]["lock"] == "backup" and by[103]["template"] == 1
    assert by[103]["name"] == "CT103"  # no hostname configured
    assert {e["status"] for e in res} == {"running", "stopped"}
    assert any("tags" in e for e in res)
    allres = api.get(f"{sim.url}/cluster/resources").json()["data"]
    assert {e["type"] for e in allres} >= {"lxc", "node", "storage"}


def test_lists_storage_templates_and_bridges(sim, api):
    cts = api.get(f"{sim.url}/nodes/pve1/lxc").json()["data"]
    assert cts and all(isinstance(c["vmid"], int) and c["type"] == "lxc" for c in cts)
    st = api.get(f"{sim.url}/nodes/pve1/storage", params={"content": "rootdir"}).json()["data"]
    assert [s["storage"] for s in st] == ["local-lvm"]
    tpl = api.get(f"{sim.url}/nodes/pve1/storage/local/content", params={"content": "vztmpl"}).json()["data"]
    assert {t["volid"] for t in tpl} >= {DEBIAN} and {t["format"] for t in tpl} == {"tzst", "txz"}
    br = api.get(f"{sim.url}/nodes/pve1/network", params={"type": "bridge"}).json()["data"]
    assert {b["iface"] for b in br} >= {"vmbr0"} and all(b["type"] == "bridge" for b in br)
    assert api.get(ct_url(sim, 104, "/interfaces")).json() == {"data": None}
    node = api.get(f"{sim.url}/nodes/pve1/status").json()["data"]
    assert node["memory"]["total"] > node["memory"]["used"] > 0 and node["cpuinfo"]["cpus"] > 0


def test_task_log_paging(sim, api):
    upid = api.post(f"{sim.url}/nodes/pve1/lxc", data={
        "vmid": "902", "ostemplate": DEBIAN, "rootfs": "local-lvm:4"}).json()["data"]
    wait_task(api, sim, upid)
    body = api.get(f"{sim.url}/nodes/pve1/tasks/{upid}/log", params={"start": "2", "limit": "2"}).json()
    assert body["total"] > 4 and [e["n"] for e in body["data"]] == [3, 4]


# --------------------------------------------------------------------------------------------
# faults, request log, admin endpoint
# --------------------------------------------------------------------------------------------

def test_unreachable_fault_and_admin_toggle(sim, api, anon):
    sim.faults.unreachable = True
    with pytest.raises(requests.ConnectionError):
        api.get(f"{sim.url}/version", timeout=2)
    r = anon.post(f"{sim.base_url}/_sim/faults", data=json.dumps({"unreachable": False}))
    assert r.json()["unreachable"] is False
    assert api.get(f"{sim.url}/version").status_code == 200


def test_fail_path_delay_and_auth_fail_faults(sim, api, anon):
    sim.faults.fail_path("GET", r"^/cluster/resources", status=500, message="boom from sim")
    r = api.get(f"{sim.url}/cluster/resources")
    assert (r.status_code, r.reason, r.json()["message"]) == (500, "boom from sim", "boom from sim\n")
    anon.post(f"{sim.base_url}/_sim/faults", data=json.dumps({"clear": True, "delay": 0.3}))
    t0 = time.monotonic()
    assert api.get(f"{sim.url}/version").status_code == 200
    assert time.monotonic() - t0 >= 0.3
    sim.faults.clear()
    sim.faults.auth_fail = True
    r = api.get(f"{sim.url}/version")
    assert (r.status_code, r.content) == (401, b"")


def test_request_log_counts_upstream_calls(sim, api, anon):
    for _ in range(3):
        api.get(f"{sim.url}/cluster/resources", params={"type": "vm"})
    api.get(f"{sim.url}/version")
    assert sim.count_requests("GET", "/cluster/resources") == 3
    assert sim.requests[0]["params"] == {"type": "vm"}
    assert len(anon.get(f"{sim.base_url}/_sim/requests").json()) == 4
    sim.clear_requests()
    assert sim.count_requests("GET", "/") == 0


def test_thousand_containers_start_fast():
    t0 = time.monotonic()
    with PVESimulator(containers=1000, token=TOKEN, task_delay=0.01) as big:
        elapsed = time.monotonic() - t0
        with sim_session(big, Authorization=big.auth_header) as s:
            res = s.get(f"{big.url}/cluster/resources", params={"type": "vm"}).json()["data"]
    assert elapsed < 2.0
    assert len(res) == 1000 and len({e["vmid"] for e in res}) == 1000


# --------------------------------------------------------------------------------------------
# through proxmoxer itself
# --------------------------------------------------------------------------------------------

def test_proxmoxer_reads_reason_phrase_and_waits_for_tasks(sim):
    from proxmoxer import ProxmoxAPI
    from proxmoxer.core import ResourceException
    from proxmoxer.tools import Tasks

    prox = ProxmoxAPI(sim.host, port=sim.port, user=sim.token_user, token_name=sim.token_name,
                      token_value=sim.token_value, verify_ssl=sim.ca_cert_path)
    try:
        node = sim.containers[104].node
        with pytest.raises(ResourceException) as exc:
            prox.nodes(node).lxc(104).status.stop.post()
        assert "CT 104 not running" in str(exc.value) and exc.value.status_code == 500
        with pytest.raises(ResourceException) as exc:
            prox.cluster.resources.get(type="lxc")
        assert exc.value.errors == {"type": "value 'lxc' does not have a value in the enumeration "
                                            "'vm, storage, node, sdn'"}
        upid = prox.nodes(node).lxc(104).status.start.post()
        st = Tasks.blocking_status(prox, upid, timeout=5, polling_interval=0.05)
        assert st["exitstatus"] == "OK" and Tasks.decode_upid(upid)["type"] == "vzstart"
        assert prox.nodes(node).lxc(104).status.current.get()["status"] == "running"
    finally:
        prox._store["session"].close()


def test_saved_cluster_comes_back_with_created_and_changed_containers(sim, api, tmp_path):
    """``--state``: what a restart needs (a created CT, a stopped one, HA, tags) survives save and load."""
    upid = api.post(f"{sim.url}/nodes/pve2/lxc", data={
        "vmid": "900", "ostemplate": DEBIAN, "hostname": "made-here", "rootfs": "local-lvm:8",
        "net0": "name=eth0,bridge=vmbr0,ip=dhcp", "tags": "web", "start": "1"}).json()["data"]
    assert wait_task(api, sim, upid)["exitstatus"] == "OK"
    upid = api.post(ct_url(sim, 100, "/status/stop")).json()["data"]
    assert wait_task(api, sim, upid)["exitstatus"] == "OK"
    path = tmp_path / "state.json"
    sim.cluster.save(path)

    fresh = PVESimulator(nodes=3, containers=20, token=TOKEN, password=PASSWORD, task_delay=0.05, time_scale=0.01)
    fresh.cluster.load(path)
    with fresh:
        with sim_session(fresh, Authorization=fresh.auth_header) as again:
            made = again.get(f"{fresh.url}/nodes/pve2/lxc/900/config").json()["data"]
            listed = {ct["vmid"]: ct for ct in again.get(f"{fresh.url}/nodes/pve1/lxc").json()["data"]}
    assert (made["hostname"], made["tags"], made["net0"]) == ("made-here", "web", sim.containers[900].config["net0"])
    assert fresh.containers[900].status == "running" and listed[100]["status"] == "stopped"
    assert fresh.containers[101].ha_state == "started" and fresh.containers[103].template
    assert sorted(fresh.containers) == sorted(sim.containers)


def test_a_loaded_cluster_never_hands_out_a_mac_it_saw_before(sim, tmp_path, monkeypatch):
    from tests.pvesim import state

    monkeypatch.setattr(state, "_MAC_SERIAL", itertools.count(1))
    made = sim.add_container(vmid=950)
    sim.cluster.save(tmp_path / "state.json")
    monkeypatch.setattr(state, "_MAC_SERIAL", itertools.count(1))  # a new process
    fresh = PVESimulator(nodes=3, containers=0)
    fresh.cluster.load(tmp_path / "state.json")
    del fresh.cluster.containers[950]
    again = fresh.add_container(vmid=950)
    assert again.config["net0"] != made.config["net0"]


def test_a_state_file_of_another_format_is_refused(tmp_path):
    (tmp_path / "state.json").write_text('{"format": 99}')
    with pytest.raises(ValueError, match="format"):
        PVESimulator(containers=0).cluster.load(tmp_path / "state.json")


def test_a_request_in_flight_across_a_reset_is_not_counted_after_it(sim, api):
    """A page that gave up at its deadline leaves its slow call running; the next test must not count it."""
    sim.faults.delay = 0.5
    late = threading.Thread(target=api.get, args=(f"{sim.url}/version",))
    late.start()
    time.sleep(0.1)
    sim.reset()
    late.join(5)
    assert sim.count_requests("GET", "/version") == 0
    api.get(f"{sim.url}/version")
    assert sim.count_requests("GET", "/version") == 1
