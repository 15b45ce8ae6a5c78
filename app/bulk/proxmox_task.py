"""The PVE 9.1+ path of a bulk start or shutdown: ONE Proxmox task (``POST /cluster/bulk-action/guest/start|
shutdown``) for every container, whose result per guest is read from that task's log and the guests' state.

pve-manager ``PVE/API2/Cluster/BulkAction/Guest.pm`` logs ``Starting CT N`` / ``Shutting down CT N (Timeout = T
seconds)`` as it begins each guest, ``Skipping CT N, already running.`` / ``… not running.`` for one it leaves
alone, and ``Starting CT N failed: <exit status>`` / ``Stopping CT N failed: …`` when a guest's own task fails;
the task itself fails with ``Some guests failed to start: N, M``. Each container still has its ordinary pending
``Operation`` (its card's spinner), without a task of its own: ``end_item`` ends it as ``refresh_operation`` would.
"""
from __future__ import annotations

import re
from datetime import timedelta

from flask import current_app
from sqlalchemy.exc import IntegrityError

from app.containers.inventory import ContainerView
from app.containers.services import ACTIONS, end_operation, get_or_create_record, view_reason
from app.events import record_event
from app.extensions import db
from app.models import BulkItem, BulkOperation, Operation, utcnow
from app.proxmox import ProxmoxError, get_proxmox
from app.proxmox.parse import parse_upid

AT_ONCE = 4  # containers acted on at the same time (Proxmox's own bulk actions default to 4 workers)
PROXMOX_BULK = ("start", "shutdown")  # what /cluster/bulk-action/guest offers (there is no bulk stop or reboot)
LOG_SKIPPED = re.compile(r"Skipping CT (\d+), (.+?)\.?$")
LOG_FAILED = re.compile(r"(?:Starting|Stopping) CT (\d+) failed: (.+)$")
LOG_STARTED = re.compile(r"^(?:Starting|Shutting down) CT (\d+)\b")
TARGET_STATUS = {"start": "running", "shutdown": "stopped"}


def has_bulk_endpoint() -> bool:
    try:
        return get_proxmox().supports_bulk_action()
    except ProxmoxError:
        return False


def _shutdown_params() -> dict:
    config = current_app.config
    return {"timeout": int(config["SHUTDOWN_TIMEOUT"]), "force_stop": bool(config["SHUTDOWN_FORCE_AFTER_TIMEOUT"])}


def send_to_proxmox(bulk: BulkOperation, views: dict[int, ContainerView]) -> None:
    """Record a pending Operation for each container that may take the action and ask Proxmox once
    (POST /cluster/bulk-action/guest/start|shutdown); the others are skipped with the reason."""
    pve = get_proxmox()
    spec = ACTIONS[bulk.action]
    params = _shutdown_params() if bulk.action == "shutdown" else {}
    try:
        live = {ct.vmid: ct for ct in pve.list_containers()}
    except ProxmoxError:
        return  # nothing sent: the containers go one by one, each refused or done on its own
    sent: list[BulkItem] = []
    for item in bulk.items:
        view, ct = views.get(item.vmid), live.get(item.vmid)
        reason = "Proxmox no longer lists it." if ct is None else view_reason(bulk.action, view)
        if reason:
            item.state, item.reason = "skipped", reason
            continue
        try:
            with db.session.begin_nested():
                container = get_or_create_record(ct)
                operation = Operation(container_id=container.id, action=bulk.action, state="running",
                                      requested_by=bulk.requested_by, params={**params, "bulk": bulk.id})
                db.session.add(operation)
        except IntegrityError:  # another action started on it meanwhile
            item.state, item.reason = "skipped", "Another operation is in progress."
            continue
        item.state, item.operation_id = "running", operation.id
        record_event(container.id, "step", f"{spec.label} requested by {bulk.requested_by} (bulk action)",
                     {"action": bulk.action, "bulk": bulk.id, "node": ct.node, **params})
        sent.append(item)
    db.session.commit()
    if not sent:
        return
    vmids = [item.vmid for item in sent]
    try:
        if bulk.action == "start":
            upid = pve.bulk_start(vmids, max_workers=AT_ONCE)
        else:
            upid = pve.bulk_shutdown(vmids, timeout=params["timeout"], force_stop=params["force_stop"],
                                     max_workers=AT_ONCE)
    except ProxmoxError as exc:
        for item in sent:
            end_item(item, False, f"Proxmox refused the bulk action: {exc.message}")
        db.session.commit()
        return
    bulk.upid, bulk.node = upid, parse_upid(upid)["node"]
    db.session.commit()


def follow_proxmox_task(bulk: BulkOperation) -> None:
    """Read the one bulk task's state and log, and settle each container it has dealt with."""
    pve = get_proxmox()
    try:
        task = pve.task_status(bulk.node, bulk.upid)
        lines = pve.task_log(bulk.node, bulk.upid, limit=5000)
    except ProxmoxError as exc:
        if utcnow() - bulk.started_at > timedelta(hours=int(current_app.config["TASK_GIVE_UP_HOURS"])):
            for item in bulk.items:
                if not item.ended:
                    end_item(item, False, f"Gave up waiting for Proxmox: {exc.message}")
            db.session.commit()
        return
    skipped, failed, begun = {}, {}, set()
    for line in lines:
        text = line.text.removeprefix("WARN: ")
        if match := LOG_SKIPPED.search(text):
            skipped[int(match.group(1))] = f"Proxmox skipped it: {match.group(2)}."
        elif match := LOG_FAILED.search(text):
            failed[int(match.group(1))] = match.group(2)
        elif match := LOG_STARTED.search(text):
            begun.add(int(match.group(1)))
    pve.invalidate()
    status = {ct.vmid: ct.status for ct in pve.list_containers()}
    target = TARGET_STATUS[bulk.action]
    for item in bulk.items:
        if item.ended:
            continue
        if item.vmid in skipped:
            end_item(item, False, skipped[item.vmid], state="skipped")
        elif item.vmid in failed:
            end_item(item, False, failed[item.vmid])
        elif status.get(item.vmid) == target and (item.vmid in begun or not task.running):
            end_item(item, True)
        elif not task.running and item.vmid in begun:
            end_item(item, True)  # no failure logged for it: an HA-managed guest follows a moment later
        elif not task.running:
            end_item(item, False, f"Proxmox did not {ACTIONS[bulk.action].label.lower()} it: "
                                   f"{task.exitstatus or 'task failed'}")
    db.session.commit()


def end_item(item: BulkItem, ok: bool, reason: str | None = None, state: str | None = None) -> None:
    """End one container of a bulk action and its pending operation (event, audit entry)."""
    item.state, item.reason = state or ("succeeded" if ok else "failed"), reason
    operation = db.session.get(Operation, item.operation_id) if item.operation_id else None
    if operation is not None and operation.pending:
        end_operation(operation, ok, reason)
