"""The Config tab as an operator uses it, through the simulator's real pending-change semantics (both releases,
both databases): what a running container takes at once or after a restart, a stopped one taking everything,
refusals that send nothing, and network interfaces added, edited and removed."""
from __future__ import annotations

import html as htmllib
import re

from app.models import AuditEntry, Event
from tests.htmx import HX, toast_of, wait_operation

LIVE = {**HX, "HX-Target": "ct-live"}
TAB = {**HX, "HX-Target": "ct-tab"}


def form_values(page: str) -> dict[str, str]:
    """The values a dialog's form would send as filled (inputs, checked boxes and radios, textareas, selects)."""
    values = {}
    for tag in re.findall(r"<input\b[^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if not name or name.group(1) == "csrf_token":
            continue
        if kind and kind.group(1) in ("checkbox", "radio") and "checked" not in tag:
            continue
        values[name.group(1)] = htmllib.unescape(value.group(1)) if value else ""
    for name, text in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>\n?(.*?)</textarea>', page, re.S):
        values[name] = htmllib.unescape(text)
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option selected value="([^"]*)"', options) or re.search(r'value="([^"]*)"', options)
        values[name] = chosen.group(1) if chosen else ""
    return values


def dialog(client, url: str) -> dict[str, str]:
    response = client.get(url, headers=HX)
    assert response.status_code == 200, response.text
    return form_values(response.text)


def tab(client, vmid: int) -> str:
    response = client.get(f"/containers/{vmid}/config", headers=TAB)
    assert response.status_code == 200, response.text
    return response.text


def send(logged_in, url: str, values: dict, **changes):
    data = {**values, **changes}
    for key in [k for k, v in data.items() if v is False]:
        del data[key]
    return logged_in.post(url, data, headers=LIVE)


def puts(pve) -> int:
    return pve.count_requests("PUT")


def test_a_running_container_takes_memory_at_once_and_nesting_after_a_restart(logged_in, client, db, pve):
    ct = pve.containers[105]
    assert ct.running and "features" not in ct.config
    values = dialog(client, "/containers/105/config/edit")
    assert values["memory"] == "1024" and "nesting" not in values

    response = send(logged_in, "/containers/105/config", values, memory="2048", nesting="y")
    assert response.status_code == 200 and "HX-Retarget" not in response.headers, response.text
    message = toast_of(response)["message"]
    assert "applied: memory (MiB) 1024 → 2048" in message and "pending until the next restart: features" in message
    assert ct.config["memory"] == 2048 and "features" not in ct.config and ct.pending == {"features": "nesting=1"}

    html = tab(client, 105)
    assert 'data-testid="config-pending"' in html and "restart to apply" in html
    assert 'data-pending-key="features"' in html and 'data-pending-key="memory"' not in html
    assert 'data-testid="config-restart"' in html and "/containers/105/actions/reboot" in html
    assert re.search(r'data-testid="value-memory">2048 MiB<', html)

    db.session.expire_all()
    entry = db.session.scalars(db.select(AuditEntry).where(AuditEntry.action == "container.config")).one()
    assert entry.outcome == "succeeded" and entry.vmid == 105
    assert entry.detail["changes"]["memory"] == ["1024", "2048"] and entry.detail["pending"] == ["features"]
    assert db.session.scalars(db.select(Event).where(Event.message.like("Configuration of %"))).one().meta[
        "requested_by"] == "alice"

    restart = logged_in.post("/containers/105/actions/reboot", {"view": "header"}, headers=HX)
    assert restart.status_code == 200, restart.text
    wait_operation(client, 105, _operation_id(db, 105), view="header")
    assert ct.config["features"] == "nesting=1" and not ct.pending
    assert 'data-testid="config-pending"' not in tab(client, 105)


def _operation_id(db, vmid: int) -> int:
    from app.models import Container, Operation

    db.session.expire_all()
    return db.session.scalars(db.select(Operation.id).join(Container).where(Container.vmid == vmid)
                              .order_by(Operation.id.desc())).first()


def test_a_stopped_container_takes_everything_and_refusals_send_nothing(logged_in, client, db, pve):
    ct = pve.containers[104]
    values = dialog(client, "/containers/104/config/edit")
    notes = "# Web\n**prod** box <script>alert(1)</script> [docs](javascript:alert(2))"
    response = send(logged_in, "/containers/104/config", values, cores="2", cpulimit="1.5", swap="0", onboot="y",
                    order="3", up="20", tags="web prod", notes=notes, nesting="y")
    assert response.status_code == 200 and "HX-Retarget" not in response.headers, response.text
    assert "pending" not in toast_of(response)["message"]
    assert {k: ct.config.get(k) for k in ("cores", "cpulimit", "swap", "onboot", "startup", "tags", "features")} == {
        "cores": 2, "cpulimit": "1.5", "swap": 0, "onboot": 1, "startup": "order=3,up=20", "tags": "prod;web",
        "features": "nesting=1"}
    assert not ct.pending
    html = tab(client, 104)
    assert 'data-testid="config-pending"' not in html
    notes_html = html.split('data-testid="notes">', 1)[1].split("</div>", 1)[0]
    assert "<h1>Web</h1>" in notes_html and "<strong>prod</strong>" in notes_html
    assert "<script" not in notes_html and "&lt;script&gt;" in notes_html and "href=\"javascript" not in notes_html

    values = dialog(client, "/containers/104/config/edit")
    pve.clear_requests()
    bad = send(logged_in, "/containers/104/config", values, memory="8")
    assert bad.headers.get("HX-Retarget") == "#confirm-modal .modal-content" and "At least 16 MiB" in bad.text
    assert puts(pve) == 0

    ct.config["cores"] = 4  # someone changes the container in the Proxmox UI meanwhile
    stale = send(logged_in, "/containers/104/config", values, memory="1024")
    assert "changed meanwhile" in stale.text and 'data-testid="config-refused"' in stale.text
    assert puts(pve) == 0 and ct.config["memory"] == 512

    values = dialog(client, "/containers/104/config/edit")
    refused = send(logged_in, "/containers/104/config", values, keyctl="y")  # Proxmox: only root@pam, never a token
    assert "only allowed for root@pam" in refused.text and 'data-testid="config-refused"' in refused.text
    assert "keyctl" not in ct.config["features"]
    db.session.expire_all()
    assert db.session.scalars(db.select(AuditEntry.outcome).where(AuditEntry.action == "container.config")
                              .order_by(AuditEntry.id.desc())).first() == "failed"


def test_network_interfaces_are_added_edited_and_removed(logged_in, client, pve):
    ct = pve.containers[104]
    values = dialog(client, "/containers/104/config/net/new")
    assert values["name"] == "eth1" and values["bridge"] == "vmbr0" and values["ip"] == "dhcp"
    pve.clear_requests()
    bad = send(logged_in, "/containers/104/config/net", values, tag="5000", ip="static", cidr="10.0.0.300/24",
               gateway="10.0.0.1")
    assert "A VLAN tag is from 1 to 4094." in bad.text and "Not a valid IPv4 address" in bad.text
    assert "The gateway must be inside" not in bad.text  # one message for one mistake
    assert puts(pve) == 0

    added = send(logged_in, "/containers/104/config/net", values, tag="10", ip="static", cidr="10.0.0.5/24",
                 gateway="10.0.0.1", ip6="auto", firewall="y")
    assert added.status_code == 200 and "HX-Retarget" not in added.headers, added.text
    net1 = dict(p.split("=", 1) for p in ct.config["net1"].split(","))
    assert {k: net1.get(k) for k in ("name", "bridge", "tag", "ip", "gw", "ip6", "firewall")} == {
        "name": "eth1", "bridge": "vmbr0", "tag": "10", "ip": "10.0.0.5/24", "gw": "10.0.0.1", "ip6": "auto",
        "firewall": "1"}
    mac = net1["hwaddr"]

    values = dialog(client, "/containers/104/config/net/1")
    assert values["cidr"] == "10.0.0.5/24" and values["ip6"] == "auto" and values["tag"] == "10"
    edited = send(logged_in, "/containers/104/config/net/1", values, ip="dhcp", tag="", firewall=False)
    assert edited.status_code == 200 and "HX-Retarget" not in edited.headers, edited.text
    net1 = dict(p.split("=", 1) for p in ct.config["net1"].split(","))
    assert net1["ip"] == "dhcp" and net1["hwaddr"] == mac and "tag" not in net1 and "gw" not in net1
    assert "firewall" not in net1

    values = dialog(client, "/containers/104/config/net/1/remove")
    removed = send(logged_in, "/containers/104/config/net/1/remove", values)
    assert removed.status_code == 200 and "net1 removed" in toast_of(removed)["message"]
    assert "net1" not in ct.config and 'data-net="net1"' not in tab(client, 104)
    # without JavaScript: a plain POST and a redirect back to the tab
    plain = logged_in.post("/containers/105/config/net", {**dialog(client, "/containers/105/config/net/new")})
    assert plain.status_code == 302 and plain.headers["Location"].endswith("/containers/105/config")
    assert "net1" in pve.containers[105].config and not pve.containers[105].pending  # hot-plugged while running
