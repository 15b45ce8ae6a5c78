"""pvesim as Proxmox VE 9.1 and 8.4: per-release schema and behaviour, offline nodes, limited
API tokens, task warnings, HA states, interfaces and nextid. Everything over real HTTPS."""
from __future__ import annotations

import json
import re
import time

import pytest
import requests

from tests.fixtures.pvesim_http import ct_url, task_log, wait_task
from tests.pvesim import PVESimulator

TOKEN = "root@pam!proxboard=sim-secret-9"
DEBIAN = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"


@pytest.fixture(scope="module", params=["9.1", "8.4"])
def sim_module(request):
    sim = PVESimulator(nodes=3, containers=20, token=TOKEN, password="pvepass9", task_delay=0.03,
                       seed=1, time_scale=0.01, pve_version=request.param).start()
    yield sim
    sim.stop()


def admin(api, sim, method, what, payload=None):
    r = api.request(method, f"{sim.base_url}/_sim/{what}", data=json.dumps(payload) if payload is not None else None)
    assert r.status_code == 200, r.text
    return r.json()


def v9(sim):
    return sim.pve_version == "9.1"


# --------------------------------------------------------------------------------------------
# release identity and schema
# --------------------------------------------------------------------------------------------

def test_version_and_node_status_match_the_release(sim, api):
    assert sim.pve_version in ("9.1", "8.4")
    ver = api.get(f"{sim.url}/version").json()["data"]
    st = api.get(f"{sim.url}/nodes/pve1/status").json()["data"]
    if v9(sim):
        assert ver["release"] == "9.1" and ver["version"].startswith("9.1.")
        assert st["pveversion"].startswith("pve-manager/9.1.") and st["current-kernel"]["release"].startswith("6.17")
    else:
        assert ver == {"version": "8.4.1", "release": "8.4", "repoid": "2a5fa54a8503f96d"}
        assert st["pveversion"] == "pve-manager/8.4.1/2a5fa54a8503f96d" and "6.8.12" in st["kversion"]
    assert admin(api, sim, "GET", "state")["pve_version"] == sim.pve_version


def test_entrypoint_env_and_host_managed_are_91_only(sim, api):
    data = {"vmid": "950", "ostemplate": DEBIAN, "rootfs": "local-lvm:4", "entrypoint": "/usr/bin/app --serve",
            "env": "FOO=1\0BAR=two", "net0": "name=eth0,bridge=vmbr0,ip=dhcp,host-managed=1"}
    r = api.post(f"{sim.url}/nodes/pve1/lxc", data=data)
    if not v9(sim):
        assert (r.status_code, r.reason) == (400, "Parameter verification failed.")
        errors = r.json()["errors"]
        not_defined = "property is not defined in schema and the schema does not allow additional properties"
        assert errors["entrypoint"] == not_defined and errors["env"] == not_defined
        assert errors["net0"] == "invalid format - invalid key in comma-separated list property: host-managed\n"
        assert 950 not in sim.containers
        return
    assert wait_task(api, sim, r.json()["data"])["exitstatus"] == "OK"
    cfg = api.get(f"{sim.url}/nodes/pve1/lxc/950/config").json()["data"]
    assert cfg["entrypoint"] == "/usr/bin/app --serve" and cfg["env"] == "FOO=1\0BAR=two"
    assert "host-managed=1" in cfg["net0"]


@pytest.mark.parametrize("given", [None, "0", "1"])
def test_unprivileged_default_differs(sim, api, given):
    data = {"vmid": "951", "ostemplate": DEBIAN, "rootfs": "local-lvm:4"}
    if given is not None:
        data["unprivileged"] = given
    upid = api.post(f"{sim.url}/nodes/pve1/lxc", data=data).json()["data"]
    assert wait_task(api, sim, upid)["exitstatus"] == "OK"
    cfg = api.get(f"{sim.url}/nodes/pve1/lxc/951/config").json()["data"]
    expected = (given == "1") or (given is None and v9(sim))
    assert cfg.get("unprivileged") == (1 if expected else None)


def test_pressure_fields_only_on_9_and_only_for_running(sim, api):
    keys = {"pressurecpusome", "pressureiosome", "pressureiofull", "pressurememorysome", "pressurememoryfull"}
    lst = {c["vmid"]: c for c in api.get(f"{sim.url}/nodes/{sim.containers[100].node}/lxc").json()["data"]}
    cur = api.get(ct_url(sim, 100, "/status/current")).json()["data"]
    stopped = api.get(ct_url(sim, 104, "/status/current")).json()["data"]
    if v9(sim):
        assert keys <= set(lst[100]) and keys <= set(cur)
        assert all(re.fullmatch(r"\d+\.\d\d", cur[k]) for k in keys)  # PSI avg10 as read: "0.42"
        assert not keys & set(stopped)  # vmstatus sets them only for running CTs
    else:
        assert not keys & set(lst[100]) and not keys & set(cur)


def test_status_current_ha_object(sim, api):
    ha = api.get(ct_url(sim, 101, "/status/current")).json()["data"]["ha"]
    assert ha == ({"managed": 1, "state": "started"} if v9(sim) else {"managed": 1, "group": None, "state": "started"})
    assert api.get(ct_url(sim, 100, "/status/current")).json()["data"]["ha"] == {"managed": 0}


# --------------------------------------------------------------------------------------------
# HA resources, status, groups and rules
# --------------------------------------------------------------------------------------------

def test_ha_resources_and_status(sim, api):
    sim.add_container(vmid=300, node="pve2", status="stopped", ha_state="error")
    res = api.get(f"{sim.url}/cluster/ha/resources").json()["data"]
    assert [(r["sid"], r["type"], r["state"]) for r in res] == [("ct:101", "ct", "started"), ("ct:300", "ct", "started")]
    st = api.get(f"{sim.url}/cluster/ha/status/current").json()["data"]
    assert st[0]["type"] == "quorum" and st[0]["quorate"] == 1
    svc = {e["sid"]: e for e in st if e["type"] == "service"}
    assert svc["ct:300"]["crm_state"] == "error" and svc["ct:300"]["status"] == "ct:300 (pve2, error)"
    assert svc["ct:101"]["state"] == "started" and {e["type"] for e in st} >= {"master", "lrm"}


def test_ha_groups_and_rules_per_release(sim, api):
    groups = api.get(f"{sim.url}/cluster/ha/groups")
    rules = api.get(f"{sim.url}/cluster/ha/rules")
    if v9(sim):
        assert (groups.status_code, groups.reason) == (500, "cannot index groups: ha groups have been migrated to rules")
        r = api.post(f"{sim.url}/cluster/ha/groups", data={"group": "g1", "nodes": "pve1"})
        assert r.reason == "cannot create group: ha groups have been migrated to rules"
        assert rules.json()["data"] == []
        r = api.post(f"{sim.url}/cluster/ha/rules", data={"rule": "keep-101", "type": "node-affinity",
                                                            "resources": "ct:101", "nodes": "pve1:2,pve2"})
        assert r.status_code == 200, r.reason
        got = api.get(f"{sim.url}/cluster/ha/rules").json()["data"]
        assert [(g["rule"], g["type"], g["resources"], g["nodes"]) for g in got] == [
            ("keep-101", "node-affinity", "ct:101", "pve1:2,pve2")]
        r = api.post(f"{sim.url}/cluster/ha/rules", data={"rule": "rule-x", "type": "node-affinity",
                                                            "resources": "ct:100", "nodes": "pve1"})
        assert (r.status_code, r.reason) == (500, "create ha rule failed: cannot use unmanaged resource(s) ct:100.")
    else:
        assert groups.json() == {"data": []}
        assert (rules.status_code, rules.reason) == (501, "Method 'GET /cluster/ha/rules' not implemented")
        assert api.post(f"{sim.url}/cluster/ha/groups", data={"group": "g1", "nodes": "pve1"}).status_code == 200
        assert [g["group"] for g in api.get(f"{sim.url}/cluster/ha/groups").json()["data"]] == ["g1"]


@pytest.mark.parametrize("state,result,runs,final", [
    ("error", "command 'ha-manager set ct:310 --state started' failed: exit code 255", False, "error"),
    ("disabled", "OK", True, "started"),
    ("stopped", "OK", True, "started"),
    ("fence", "OK", False, "fence"),
    ("freeze", "OK", False, "freeze"),
])
def test_ha_start_request_per_state(sim, api, state, result, runs, final):
    sim.add_container(vmid=310, node="pve1", status="stopped")
    admin(api, sim, "PATCH", "containers/310", {"ha_state": state})
    upid = api.post(f"{sim.url}/nodes/pve1/lxc/310/status/start").json()["data"]
    assert ":hastart:310:" in upid
    assert wait_task(api, sim, upid)["exitstatus"] == result
    assert task_log(api, sim, upid)[0] == "Requesting HA start for CT 310"
    assert sim.wait_idle(5)
    assert sim.containers[310].running is runs
    res = {e["vmid"]: e for e in api.get(f"{sim.url}/cluster/resources", params={"type": "vm"}).json()["data"]}
    assert res[310]["hastate"] == final


def test_ha_ignored_acts_directly(sim, api):
    sim.add_container(vmid=311, node="pve1", status="stopped", ha_state="ignored")
    upid = api.post(f"{sim.url}/nodes/pve1/lxc/311/status/start").json()["data"]
    assert ":vzstart:311:" in upid and wait_task(api, sim, upid)["exitstatus"] == "OK"
    cur = api.get(f"{sim.url}/nodes/pve1/lxc/311/status/current").json()["data"]
    assert cur["status"] == "running" and cur["ha"] == {"managed": 0}
    res = {e["vmid"]: e for e in api.get(f"{sim.url}/cluster/resources", params={"type": "vm"}).json()["data"]}
    assert res[311]["hastate"] == "ignored"


def test_ha_state_validation_on_admin_endpoint(sim, api):
    r = api.patch(f"{sim.base_url}/_sim/containers/100", data=json.dumps({"ha_state": "bogus"}))
    assert r.status_code == 400
    for st in ("started", "stopped", "disabled", "ignored", "error", "fence", "freeze", "migrate",
               "relocate", "request_start", "request_stop"):
        admin(api, sim, "PATCH", "containers/100", {"ha_state": st})
        res = {e["vmid"]: e for e in api.get(f"{sim.url}/cluster/resources", params={"type": "vm"}).json()["data"]}
        assert res[100]["hastate"] == st


# --------------------------------------------------------------------------------------------
# offline node
# --------------------------------------------------------------------------------------------

def test_offline_node(sim, api):
    admin(api, sim, "POST", "faults", {"node_offline": ["pve2"]})
    assert sim.faults.node_offline == {"pve2"}
    nodes = {n["node"]: n for n in api.get(f"{sim.url}/nodes").json()["data"]}
    assert nodes["pve2"]["status"] == "offline" and not {"cpu", "mem", "maxcpu", "maxmem", "uptime"} & set(nodes["pve2"])
    assert nodes["pve1"]["status"] == "online" and nodes["pve1"]["maxmem"] > 0
    res = api.get(f"{sim.url}/cluster/resources").json()["data"]
    on2 = [e for e in res if e["type"] == "lxc" and e["node"] == "pve2"]
    assert on2
    for e in on2:
        ct = sim.containers[e["vmid"]]
        allowed = {"id", "type", "vmid", "node", "status", "tags", "lock", "pool", "hastate"}
        assert set(e) <= allowed and e["status"] == "unknown" and e["id"] == f"lxc/{ct.vmid}"
        assert ("tags" in e) == bool(ct.config.get("tags"))  # config is still readable via pmxcfs
    assert all("name" in e for e in res if e["type"] == "lxc" and e["node"] != "pve2")
    vmid = on2[0]["vmid"]
    for method, path in [("GET", f"/nodes/pve2/lxc/{vmid}/status/current"), ("GET", "/nodes/pve2/lxc"),
                         ("POST", f"/nodes/pve2/lxc/{vmid}/status/start"), ("GET", "/nodes/pve2/status")]:
        r = api.request(method, sim.url + path)
        assert (r.status_code, r.reason, r.content) == (595, "No route to host", b"")
    admin(api, sim, "POST", "faults", {"clear": True})
    assert api.get(f"{sim.url}/nodes/pve2/lxc").status_code == 200


# --------------------------------------------------------------------------------------------
# limited API token
# --------------------------------------------------------------------------------------------

def test_limited_token(sim, api):
    admin(api, sim, "POST", "token", {"privileges": {"/": ["Sys.Audit"], "/vms/101": ["VM.Audit", "VM.PowerMgmt"],
                                                     "/vms/104": ["VM.Audit"]}})
    res = api.get(f"{sim.url}/cluster/resources", params={"type": "vm"}).json()["data"]
    assert sorted(e["vmid"] for e in res) == [101, 104]
    node = sim.containers[104].node
    lst = api.get(f"{sim.url}/nodes/{node}/lxc").json()["data"]
    assert [c["vmid"] for c in lst] == sorted(v for v in (101, 104) if sim.containers[v].node == node)
    r = api.post(ct_url(sim, 104, "/status/start"))
    assert (r.status_code, r.reason) == (403, "Permission check failed (/vms/104, VM.PowerMgmt)")
    assert r.json() == {"data": None, "message": "Permission check failed (/vms/104, VM.PowerMgmt)\n"}
    r = api.get(ct_url(sim, 100, "/status/current"))
    assert (r.status_code, r.reason) == (403, "Permission check failed (/vms/100, VM.Audit)")
    r = api.post(ct_url(sim, 104, "/status/start"), data={"bogus": "1"})  # permissions come before validation
    assert r.status_code == 403
    assert api.post(ct_url(sim, 101, "/status/shutdown")).status_code == 200
    perms = api.get(f"{sim.url}/access/permissions").json()["data"]
    assert perms["/"] == {"Sys.Audit": 1} and perms["/vms/101"] == {"VM.Audit": 1, "VM.PowerMgmt": 1}
    assert perms["/nodes"] == {"Sys.Audit": 1}  # propagated from /
    one = api.get(f"{sim.url}/access/permissions", params={"path": "/vms/100"}).json()["data"]
    assert one == {"/vms/100": {"Sys.Audit": 1}}
    r = api.post(f"{sim.url}/nodes/pve1/lxc", data={"vmid": "960", "ostemplate": DEBIAN, "rootfs": "local-lvm:4",
                                                    "unprivileged": "1"})
    assert (r.status_code, r.reason) == (403, "Permission check failed (/vms/960, VM.Allocate)")
    admin(api, sim, "DELETE", "token")
    assert len(api.get(f"{sim.url}/cluster/resources", params={"type": "vm"}).json()["data"]) == 20
    full = api.get(f"{sim.url}/access/permissions").json()["data"]
    assert full["/vms"]["VM.PowerMgmt"] == 1 and ("VM.Monitor" in full["/"]) is (not v9(sim))


def test_limited_token_python_api_and_reset(sim, api):
    sim.set_token_privileges({"/vms": ["VM.Audit"]})
    assert sim.token_privileges == {"/vms": ["VM.Audit"]}
    assert len(api.get(f"{sim.url}/cluster/resources", params={"type": "vm"}).json()["data"]) == 20
    r = api.get(f"{sim.url}/cluster/ha/resources")
    assert (r.status_code, r.reason) == (403, "Permission check failed (/, Sys.Audit)")
    with pytest.raises(ValueError):
        sim.set_token_privileges({"/": ["No.Such"]})
    sim.reset()
    assert sim.token_privileges is None


# --------------------------------------------------------------------------------------------
# tasks with warnings
# --------------------------------------------------------------------------------------------

def test_task_with_warnings(sim, api):
    admin(api, sim, "POST", "faults", {"warn_next_task": {"type": "vzstart", "vmid": 104, "warnings": 2}})
    upid = api.post(ct_url(sim, 104, "/status/start")).json()["data"]
    st = wait_task(api, sim, upid)
    assert st["exitstatus"] == "WARNINGS: 2"
    log = task_log(api, sim, upid)
    assert log[-1] == "TASK WARNINGS: 2" and sum(line.startswith("WARN: ") for line in log) == 2
    assert sim.containers[104].running  # the work was done
    listed = [t for t in api.get(f"{sim.url}/cluster/tasks").json()["data"] if t["upid"] == upid]
    assert listed[0]["status"] == "WARNINGS: 2"


# --------------------------------------------------------------------------------------------
# interfaces
# --------------------------------------------------------------------------------------------

def test_interfaces_report_only_configured_addresses(sim, api):
    sim.add_container(vmid=320, node="pve1", status="running", net0=(
        "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=192.0.2.10/24,ip6=2001:db8:1::10/64,type=veth"),
        net1="name=eth1,bridge=vmbr0,hwaddr=BC:24:11:00:00:02,ip6=auto,type=veth",
        net2="name=eth2,bridge=vmbr0,hwaddr=BC:24:11:00:00:03,ip=manual,ip6=dhcp,type=veth",
        net3="name=eth3,bridge=vmbr0,hwaddr=BC:24:11:00:00:04,ip=dhcp,link_down=1,type=veth")
    ifs = {i["name"]: i for i in api.get(f"{sim.url}/nodes/pve1/lxc/320/interfaces").json()["data"]}
    assert set(ifs) == {"lo", "eth0", "eth1", "eth2", "eth3"}

    def addrs(name):
        return [(a["ip-address"], a["ip-address-type"], a["prefix"]) for a in ifs[name]["ip-addresses"]]
    assert addrs("eth0") == [("192.0.2.10", "inet", 24), ("2001:db8:1::10", "inet6", 64),
                             ("fe80::be24:11ff:fe00:1", "inet6", 64)]
    assert ifs["eth0"]["inet"] == "192.0.2.10/24" and ifs["eth0"]["inet6"] == "fe80::be24:11ff:fe00:1/64"
    e1 = addrs("eth1")
    assert [a[1] for a in e1] == ["inet6", "inet6"] and e1[0][0].startswith("2001:db8:")
    assert e1[0][0].endswith(":be24:11ff:fe00:2") and e1[0][2] == 64  # SLAAC EUI-64
    assert "inet" not in ifs["eth1"] and "inet" not in ifs["eth2"]
    assert [a[1:] for a in addrs("eth2")] == [("inet6", 128), ("inet6", 64)]  # DHCPv6 + link-local
    assert addrs("eth3") == [] and ifs["eth3"]["hwaddr"] == "bc:24:11:00:00:04"


def test_interfaces_no_ip_when_unset(sim, api):
    sim.add_container(vmid=321, node="pve1", status="running", net0="name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:09")
    ifs = {i["name"]: i for i in api.get(f"{sim.url}/nodes/pve1/lxc/321/interfaces").json()["data"]}
    assert [a["ip-address-type"] for a in ifs["eth0"]["ip-addresses"]] == ["inet6"]  # link-local only


# --------------------------------------------------------------------------------------------
# nextid
# --------------------------------------------------------------------------------------------

def test_nextid_reuses_freed_vmid_and_counts_creating_guests(sim, api):
    assert api.get(f"{sim.url}/cluster/nextid").json()["data"] == 120
    upid = api.delete(ct_url(sim, 105), params={"force": "1"}).json()["data"]
    assert wait_task(api, sim, upid)["exitstatus"] == "OK"
    assert api.get(f"{sim.url}/cluster/nextid").json()["data"] == 105
    sim.task_delay = 0.5
    upid = api.post(f"{sim.url}/nodes/pve1/lxc", data={"vmid": "105", "ostemplate": DEBIAN,
                                                       "rootfs": "local-lvm:4"}).json()["data"]
    assert sim.containers[105].lock == "create"
    assert api.get(f"{sim.url}/cluster/nextid").json()["data"] == 120  # config with lock create exists
    r = api.get(f"{sim.url}/cluster/nextid", params={"vmid": "105"})
    assert r.json() == {"data": None, "errors": {"vmid": "VM 105 already exists"}}
    wait_task(api, sim, upid)
    admin(api, sim, "POST", "datacenter", {"next-id": {"lower": 1000, "upper": 1002}})
    assert api.get(f"{sim.url}/cluster/nextid").json()["data"] == 1000
    sim.add_container(vmid=1000)
    sim.add_container(vmid=1001)
    r = api.get(f"{sim.url}/cluster/nextid")
    assert (r.status_code, r.reason) == (500, "unable to get any free VMID in range [1000, 1002]")


# --------------------------------------------------------------------------------------------
# performance
# --------------------------------------------------------------------------------------------

def test_thousand_containers_resources_stay_fast(sim):
    t0 = time.monotonic()
    with PVESimulator(containers=1000, token=TOKEN, task_delay=0.01, pve_version=sim.pve_version) as big:
        assert time.monotonic() - t0 < 2.0
        with requests.Session() as s:
            s.verify, s.trust_env = big.ca_cert_path, False
            s.headers["Authorization"] = big.auth_header
            s.get(f"{big.url}/cluster/resources")
            t1 = time.monotonic()
            for _ in range(5):
                assert len(s.get(f"{big.url}/cluster/resources", params={"type": "vm"}).json()["data"]) == 1000
            assert (time.monotonic() - t1) / 5 < 0.5
