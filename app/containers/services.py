"""Lifecycle actions (start, shutdown, stop, reboot, delete) and the other Proxmox tasks Proxboard follows
for a container (snapshots, backups, restores): the one place they are decided and settled.

A request checks the live state, records an ``Operation`` and asks Proxmox; the
pending operation lives on the server with its task id, so spinners survive page
refreshes, and ``refresh_operation`` settles it when the Proxmox task ends.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from app import audit
from app.containers.inventory import record_for, snapshot_of
from app.db_faults import PLAIN_MESSAGE, is_db_fault
from app.events import record_event
from app.extensions import db
from app.models import Container, Operation, utcnow
from app.provisioning import ProvisioningRefused, latest_operation, wipe_secret
from app.proxmox import ContainerSummary, ProxmoxError, Task, get_proxmox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Action:
    """What an action is called, when Proxmox accepts it, and how it is confirmed."""

    name: str
    label: str
    icon: str
    done: str  # "CT 101 (web) is <done>"
    needs: str  # "stopped", "running" or "any"
    confirm: bool
    danger: bool


ACTIONS: dict[str, Action] = {
    "start": Action("start", "Start", "bi-play-fill", "running", "stopped", False, False),
    "shutdown": Action("shutdown", "Shutdown", "bi-power", "shut down", "running", True, False),
    "stop": Action("stop", "Stop", "bi-stop-fill", "stopped", "running", True, True),
    "reboot": Action("reboot", "Restart", "bi-arrow-clockwise", "restarted", "running", True, False),
    "delete": Action("delete", "Delete", "bi-trash", "deleted", "any", True, True),
}


@dataclass(frozen=True)
class TaskAction:
    """A Proxmox task Proxboard follows for a container besides the lifecycle ``ACTIONS`` (``Operation.action``)."""

    name: str
    label: str
    backups: bool = False  # it adds or removes a backup: the backup index is swept again when it ends


TASK_ACTIONS: dict[str, TaskAction] = {
    "snapshot": TaskAction("snapshot", "Snapshot"),
    "rollback": TaskAction("rollback", "Rollback"),
    "snapshot-delete": TaskAction("snapshot-delete", "Snapshot deletion"),
    "backup": TaskAction("backup", "Backup", backups=True),
    "restore": TaskAction("restore", "Restore", backups=False),
    "backup-delete": TaskAction("backup-delete", "Backup deletion", backups=True),
    "clone": TaskAction("clone", "Clone"),
    "migrate": TaskAction("migrate", "Migration"),
    "template": TaskAction("template", "Conversion to template"),
    "resize": TaskAction("resize", "Disk resize"),
}


class ActionRefused(Exception):
    """The action cannot be done now; ``message`` says why, and nothing was changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ContainerMissing(ActionRefused):
    """The container is not in Proxmox (the API answers 404, the pages say it like any refusal)."""


HA_ERROR_REASON = ("Its HA state is error: Proxmox will not start it until the HA error is cleared "
                   "(set the HA resource to disabled, then to started again).")
TEMPLATE_REASON = "A Proxmox template cannot be started or stopped; clone it to make a container."


def unavailable_reason(action: str, status: str, *, lock: str | None = None, reachable: bool = True,
                       pending: Operation | None = None, lifecycle: str | None = None, template: bool = False,
                       ha_state: str | None = None, blocked: str | None = None) -> str | None:
    """Why ``action`` is not possible for a container in this state, or None when it is.

    ``blocked`` is a reason that rules out every action (the guest's node is offline, Proxmox
    did not list it); ``ha_state`` is the HA manager's state (``error`` keeps a guest stopped).
    """
    spec = ACTIONS[action]
    if pending is not None:
        return f"Another operation is in progress ({pending.action})."
    if lifecycle == "gone":
        return "Proxmox no longer has this container."
    if blocked:
        return blocked
    if not reachable:  # delete too: Proxboard could not confirm or follow it
        return "Proxmox cannot be reached."
    if lifecycle == "creating":
        return "The container is still being created."
    if lock:
        return f"The container is locked ({lock})."
    if template and action != "delete":
        return TEMPLATE_REASON
    if spec.needs == "stopped" and status != "stopped":
        return "The container is already running." if status == "running" else f"Not possible while {status}."
    if spec.needs == "running" and status != "running":
        return "The container is not running."
    if action == "start" and ha_state == "error":
        return HA_ERROR_REASON
    return None


def get_or_create_record(live: ContainerSummary) -> Container:
    """Proxboard's record of the guest ``live``, created (unmanaged) on first touch.

    A record that belonged to an earlier guest with the same VMID is never reused (see
    ``inventory.record_for``).
    """
    container = record_for(live)
    if container is None:
        container = Container(vmid=live.vmid, node=live.node, managed=False, lifecycle="ready",
                              snapshot=snapshot_of(live), snapshot_at=utcnow())
        db.session.add(container)
        db.session.flush()
    elif container.node != live.node:
        container.node = live.node
    return container


def locate(vmid: int) -> ContainerSummary:
    """The live summary of a container, wherever it runs, read from Proxmox now (an action is decided on it);
    ContainerMissing when it does not exist."""
    live = get_proxmox().locate_container(vmid, fresh=True)
    if live is None:
        raise ContainerMissing(f"CT {vmid} does not exist in Proxmox.")
    return live


def request_action(vmid: int, action: str, username: str) -> Operation:
    """Ask Proxmox to run ``action`` on CT ``vmid``; returns the pending operation.

    Raises ActionRefused when the state does not allow it or Proxmox refuses the request (nothing
    changes on Proxmox; a refusal by Proxmox is kept as an error event naming the action and the
    container, then Proxmox's message), and ProxmoxError when the container cannot be looked up.
    """
    if action not in ACTIONS:
        raise ActionRefused(f"Unknown action {action!r}.")
    spec = ACTIONS[action]
    live = locate(vmid)
    container = get_or_create_record(live)
    pending = db.session.scalar(select(Operation).where(
        Operation.container_id == container.id, Operation.state.in_(("queued", "running"))))
    reason = unavailable_reason(action, live.status, lock=live.lock, pending=pending, lifecycle=container.lifecycle,
                                template=live.template, ha_state=live.ha_state)
    if reason:
        db.session.rollback()
        raise ActionRefused(reason)

    operation = Operation(container_id=container.id, action=action, state="running", requested_by=username,
                          params=_params(action, live))
    db.session.add(operation)
    try:
        db.session.flush()
    except IntegrityError:  # the partial unique index: someone else started an action first
        db.session.rollback()
        raise ActionRefused("Another operation is in progress.") from None

    name = container.hostname or live.name or f"CT {vmid}"
    try:
        operation.upid = _call_proxmox(action, live, operation.params or {})
    except ProxmoxError as exc:
        operation.state, operation.error, operation.finished_at = "failed", exc.message, utcnow()
        message = f"{spec.label} of {name} (CT {vmid}) failed: {exc.message}"
        record_event(container.id, "error", message,
                     {"action": action, "node": live.node, "vmid": vmid, "requested_by": username})
        db.session.commit()
        raise ActionRefused(message) from exc
    operation.heartbeat_at = utcnow()
    record_event(container.id, "step", f"{spec.label} requested by {username}",
                 {"action": action, "upid": operation.upid, "node": live.node, **(operation.params or {})})
    try:
        db.session.commit()
    except Exception as exc:
        if not is_db_fault(exc):
            raise
        # Proxmox accepted the action: record it on a fresh connection rather than lose its spinner.
        db.session.rollback()
        log.warning("%s of CT %s: %s after Proxmox accepted it; recording it again", action, vmid, PLAIN_MESSAGE)
        operation = _record_accepted(live, action, username, operation.upid, _params(action, live))
    return operation


def _record_accepted(live: ContainerSummary, action: str, username: str, upid: str | None, params: dict) -> Operation:
    """Record an action Proxmox accepted as a running Operation (after the first commit was lost)."""
    container = get_or_create_record(live)
    operation = Operation(container_id=container.id, action=action, state="running", requested_by=username,
                          params=params, upid=upid, heartbeat_at=utcnow())
    db.session.add(operation)
    record_event(container.id, "step", f"{ACTIONS[action].label} requested by {username}",
                 {"action": action, "upid": upid, "node": live.node, **params})
    try:
        db.session.commit()
    except IntegrityError:  # the first commit did reach the database; only its answer was lost
        db.session.rollback()
        return db.session.scalar(select(Operation).where(Operation.upid == upid, Operation.action == action))
    return operation


def _params(action: str, live: ContainerSummary) -> dict:
    config = current_app.config
    if action == "shutdown":
        return {"timeout": int(config["SHUTDOWN_TIMEOUT"]), "force_stop": bool(config["SHUTDOWN_FORCE_AFTER_TIMEOUT"])}
    if action == "delete":
        return {"force": live.is_running, "purge": True}
    return {}


def _call_proxmox(action: str, live: ContainerSummary, params: dict) -> str:
    pve = get_proxmox()
    node, vmid = live.node, live.vmid
    if action == "start":
        return pve.start(node, vmid)
    if action == "stop":
        return pve.stop(node, vmid)
    if action == "shutdown":
        return pve.shutdown(node, vmid, timeout=params["timeout"], force_stop=params["force_stop"])
    if action == "reboot":
        return pve.reboot(node, vmid, timeout=int(current_app.config["SHUTDOWN_TIMEOUT"]))
    return pve.delete(node, vmid, purge=True, force=params["force"], destroy_unreferenced_disks=True)


@dataclass(frozen=True)
class Outcome:
    """What a person should be told when an operation has just ended."""

    message: str
    category: str  # "success" or "danger"


def refresh_operation(operation: Operation) -> Outcome | None:
    """Settle a pending lifecycle or ``TASK_ACTIONS`` operation whose Proxmox task has ended.

    Returns the outcome when it ended now, None while it is still running (or when
    Proxmox cannot be asked right now: the spinner simply keeps polling).
    """
    if not operation.pending or not operation.upid:
        return None
    if operation.action in TASK_ACTIONS:
        return _settle_task(operation)
    if operation.action not in ACTIONS:
        return None
    container = operation.container
    spec = ACTIONS[operation.action]
    name = container.hostname or (container.snapshot or {}).get("name") or f"CT {container.vmid}"
    task = _ended_task(operation, container.node, timedelta(seconds=int(current_app.config["ACTION_TIMEOUT"]) * 5))
    if task is None:
        return None
    if isinstance(task, ProxmoxError):
        return _fail(operation, name, spec, f"Gave up waiting for Proxmox: {task.message}")
    if task.ok:
        return _succeed(operation, container, name, spec)
    return _fail(operation, name, spec, task.exitstatus or "task failed")


def end_operation(operation: Operation, ok: bool, reason: str | None = None) -> Outcome | None:
    """End a pending lifecycle operation whose result was learnt elsewhere than from its own task (a bulk
    action's single task and its log), as ``refresh_operation`` would: event, audit entry, outcome. None
    when another request ended it first."""
    container = operation.container
    spec = ACTIONS[operation.action]
    if ok:
        return _succeed(operation, container, container.display_name(), spec)
    return _fail(operation, container.display_name(), spec, reason or "task failed")


def _ended_task(operation: Operation, node: str, give_up: timedelta) -> Task | ProxmoxError | None:
    """The operation's Proxmox task once it has ended; None while it runs (its heartbeat is recorded) or while
    Proxmox cannot be asked; the error once Proxmox could not be asked for longer than ``give_up``."""
    try:
        task = get_proxmox().task_status(node, operation.upid)
    except ProxmoxError as exc:
        return exc if utcnow() - operation.started_at > give_up else None
    if task.running:
        operation.heartbeat_at = utcnow()
        db.session.commit()
        return None
    return task


def settle_within(operation: Operation, seconds: float, interval: float = 0.25) -> Outcome | None:
    """Wait up to ``seconds`` for ``operation`` to end: its outcome, or None while it still runs.

    For a page without JavaScript, which has no spinner polling the operation: most actions end
    within a few seconds, and the page after the redirect can then say how it went.
    """
    deadline = time.monotonic() + seconds
    while True:
        outcome = refresh_operation(operation)
        if outcome is not None or not operation.pending or time.monotonic() >= deadline:
            return outcome
        time.sleep(interval)


def _claim_end(operation: Operation, state: str, error: str | None = None) -> bool:
    """End ``operation`` as ``state`` if it is still pending; False when another request ended it first.

    The spinner of the card, the header and a tab may all poll the same operation: one conditional
    UPDATE decides which of them tells its outcome, so it is recorded (event, audit entry) once.
    """
    values = {"state": state, "finished_at": utcnow(), "error": error}
    if state == "succeeded":
        values["progress"] = 100
    claimed = db.session.execute(
        update(Operation).where(Operation.id == operation.id, Operation.state.in_(("queued", "running")))
        .values(**values).execution_options(synchronize_session=False)).rowcount == 1
    if not claimed:
        db.session.rollback()
        return False
    for key, value in values.items():
        set_committed_value(operation, key, value)
    return True


def _succeed(operation: Operation, container: Container, name: str, spec: Action) -> Outcome | None:
    if not _claim_end(operation, "succeeded"):
        return None
    message = f"{name} (CT {container.vmid}) is {spec.done}."
    meta = {"action": spec.name, "upid": operation.upid}
    params = operation.params or {}
    if spec.name == "shutdown" and params.get("force_stop"):
        elapsed = (operation.finished_at - operation.started_at).total_seconds()
        if elapsed >= params.get("timeout", 30):
            message = f"{name} (CT {container.vmid}) did not shut down in {params['timeout']} s and was stopped: forced after timeout."
            meta["forced_after_timeout"] = True
    if _task_type(operation.upid).startswith("ha"):
        # hastart/hastop only hand the request to ha-manager, which acts a moment later.
        message = f"{name} (CT {container.vmid}): the HA manager accepted the request; it will be {spec.done} shortly."
        meta["ha_managed"] = True
        if spec.name == "start" and _ha_state(container) == "error":
            message = (f"{name} (CT {container.vmid}): the HA manager accepted the request, but the container "
                       f"will not start: {HA_ERROR_REASON[0].lower()}{HA_ERROR_REASON[1:]}")
            meta["ha_state"] = "error"
    if spec.name == "delete":
        container.lifecycle = "deleted"
    record_event(container.id, "complete", message, meta)
    audit.record_result(operation, container, "succeeded", message)
    db.session.commit()
    get_proxmox().invalidate()
    return Outcome(message, "success")


def _ha_state(container: Container) -> str | None:
    """The guest's HA state right now (None when it cannot be read)."""
    try:
        return get_proxmox().container_status(container.node, container.vmid).ha_state
    except ProxmoxError:
        return None


def _task_type(upid: str | None) -> str:
    """The task type field of a UPID (``vzstart``, ``hastop``…)."""
    parts = (upid or "").split(":")
    return parts[5] if len(parts) > 5 else ""


def _fail(operation: Operation, name: str, spec: Action, reason: str) -> Outcome | None:
    container = operation.container
    if not _claim_end(operation, "failed", reason):
        return None
    message = f"{spec.label} of {name} (CT {container.vmid}) failed: {reason}"
    if shutdown_timed_out(operation):
        timeout = (operation.params or {}).get("timeout", 30)
        message = (f"{name} (CT {container.vmid}) did not shut down within {timeout} s and is still running. "
                   "Use Stop to force it off.")
    record_event(container.id, "error", message, {"action": spec.name, "upid": operation.upid, "exitstatus": reason})
    audit.record_result(operation, container, "failed", message)
    db.session.commit()
    log.warning("%s of CT %s on %s failed: %s", spec.name, container.vmid, container.node, reason)
    get_proxmox().invalidate()
    return Outcome(message, "danger")


def start_task(vmid: int, action: str, username: str, call: Callable[[ContainerSummary], str], *, what: str,
               done: str, params: dict | None = None, container: Container | None = None,
               live: ContainerSummary | None = None) -> Operation:
    """Start a ``TASK_ACTIONS`` task on CT ``vmid`` and record it as a pending Operation; returns it.

    ``call(live)`` asks Proxmox and returns the UPID. ``what`` names the work in messages ("Snapshot
    'before-upgrade' of web (CT 101)") and ``done`` is the message once it succeeded; both are kept in the
    operation's params with ``params``. ``container`` is the record to attach it to (default: CT
    ``vmid``'s, created on first touch). Raises ActionRefused when another operation is pending, the
    container is locked or being created, or Proxmox refuses (then kept as an error event; nothing
    changed), and ProxmoxError when the container cannot be looked up.
    """
    spec = TASK_ACTIONS[action]
    live = live or locate(vmid)
    container = container or get_or_create_record(live)
    pending = db.session.scalar(select(Operation).where(
        Operation.container_id == container.id, Operation.state.in_(("queued", "running"))))
    if pending is not None:
        db.session.rollback()
        raise ActionRefused(f"Another operation is in progress ({pending.action}).")
    if container.lifecycle == "creating":
        db.session.rollback()
        raise ActionRefused("The container is still being created.")
    operation = Operation(container_id=container.id, action=action, state="running", requested_by=username,
                          params={**(params or {}), "what": what, "done": done, "node": live.node})
    db.session.add(operation)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise ActionRefused("Another operation is in progress.") from None
    try:
        operation.upid = call(live)
    except ProxmoxError as exc:
        operation.state, operation.error, operation.finished_at = "failed", exc.message, utcnow()
        message = f"{what} failed: {exc.message}"
        record_event(container.id, "error", message, {"action": action, "node": live.node, "vmid": vmid,
                                                     "requested_by": username})
        db.session.commit()
        raise ActionRefused(message) from exc
    operation.heartbeat_at = utcnow()
    record_event(container.id, "step", f"{spec.label} requested by {username}: {what}",
                 {"action": action, "upid": operation.upid, "node": live.node})
    db.session.commit()
    return operation


def _settle_task(operation: Operation) -> Outcome | None:
    """``refresh_operation`` for a ``TASK_ACTIONS`` operation."""
    container, spec, params = operation.container, TASK_ACTIONS[operation.action], operation.params or {}
    node = params.get("node") or container.node
    what = params.get("what") or f"{spec.label} of CT {container.vmid}"
    task = _ended_task(operation, node, timedelta(hours=int(current_app.config["TASK_GIVE_UP_HOURS"])))
    if task is None:
        return None
    if isinstance(task, ProxmoxError):
        return _end_task(operation, spec, f"{what} failed: gave up waiting for Proxmox: {task.message}", False)
    if task.ok:
        return _end_task(operation, spec, params.get("done") or f"{what} succeeded.", True)
    return _end_task(operation, spec, f"{what} failed: {task_error(node, operation.upid, task.exitstatus)}", False)


def task_error(node: str, upid: str, exitstatus: str | None) -> str:
    """The reason a task failed: its exit status, or for ``job errors`` (vzdump) the log's ``ERROR:`` lines."""
    reason = exitstatus or "task failed"
    if reason != "job errors":
        return reason
    try:
        lines = get_proxmox().task_log(node, upid, limit=1000)
    except ProxmoxError:
        return reason
    errors = [line.text.removeprefix("ERROR:").strip() for line in lines if line.text.startswith("ERROR:")]
    return "; ".join(errors) or reason


def _end_task(operation: Operation, spec: TaskAction, message: str, ok: bool) -> Outcome | None:
    container = operation.container
    if not _claim_end(operation, "succeeded" if ok else "failed", None if ok else message):
        return None
    if not ok and (operation.params or {}).get("new_guest"):
        container.lifecycle = "deleted"  # a failed restore or clone to a new VMID: Proxmox removes the half-made guest
    if ok and (operation.params or {}).get("target_node"):
        container.node = operation.params["target_node"]  # a migration: the record follows the guest
    record_event(container.id, "complete" if ok else "error", message, {"action": spec.name, "upid": operation.upid})
    audit.record_result(operation, container, "succeeded" if ok else "failed", message)
    db.session.commit()
    if not ok:
        log.warning("%s of CT %s failed: %s", spec.name, container.vmid, message)
    pve = get_proxmox()
    pve.invalidate()
    if spec.backups:
        pve.refresh_backup_index()
    return Outcome(message, "success" if ok else "danger")


def shutdown_timed_out(operation: Operation | None) -> bool:
    """Whether ``operation`` is a graceful shutdown that failed because the container did not stop in time."""
    return (operation is not None and operation.action == "shutdown" and operation.state == "failed"
            and "did not stop" in (operation.error or "").lower())


def action_reasons(view, reachable: bool) -> dict[str, str | None]:
    """For each action, why it is unavailable for this container view (None: available)."""
    return {name: view_reason(name, view, reachable) for name in ACTIONS}


def view_reason(action: str, view, reachable: bool = True) -> str | None:
    """``unavailable_reason`` for a ``ContainerView``."""
    return unavailable_reason(action, view.pve_status, lock=view.lock, reachable=reachable and not
                              (view.stale and view.stale_reason is None), pending=view.pending,
                              lifecycle=view.lifecycle, template=view.template, ha_state=view.ha_state,
                              blocked=view.stale_reason if view.stale else None)


def still_pending(view, last: Operation | None, settle: bool) -> Operation | None:
    """``last`` (a tab's latest operation) if it is still pending, else None. With ``settle`` (a page without
    JavaScript, where no spinner polls) it is settled first if its task ended; one that ended is no longer the
    view's pending operation, so the header and the buttons stop waiting for it."""
    if last is None or not last.pending:
        return None
    if settle:
        refresh_operation(last)
    if last.pending:
        return last
    if view.pending is last:
        view.pending = None
    return None


def task_busy_reason(view) -> str | None:
    """Why no ``TASK_ACTIONS`` task (snapshot, backup…) can start on a ``ContainerView`` now (another operation,
    the guest gone or unreachable, being created, locked), or None: what ``start_task`` and Proxmox would refuse."""
    if view.pending is not None:
        return f"Another operation is in progress ({view.pending.action})."
    if view.lifecycle == "gone":
        return "Proxmox no longer has this container."
    if view.stale:
        return view.stale_reason or "Proxmox cannot be reached."
    if view.lifecycle == "creating":
        return "The container is still being created."
    if view.lock:
        return f"The container is locked ({view.lock})."
    return None


def clear_gone(vmid: int, username: str) -> Container:
    """Archive the record of a container Proxmox no longer has (lifecycle ``gone`` -> ``deleted``).

    Its events, services and credentials stay in the database with the archived record, and
    the VMID is free for the record of any later guest. Raises ActionRefused (nothing changes)
    when CT ``vmid`` has no record or its guest is not gone.
    """
    container = Container.current(vmid)
    if container is None or container.lifecycle != "gone":
        raise ActionRefused(f"CT {vmid} is not a container Proxmox no longer has; nothing to clear.")
    container.lifecycle = "deleted"
    record_event(container.id, "log", f"Cleared from the dashboard by {username}.", {"vmid": vmid})
    db.session.commit()
    return container


def discard(container: Container, username: str) -> Operation | None:
    """Delete a container whose creation failed: in Proxmox when it exists there, else just the record.

    Returns the delete Operation when Proxmox was asked (it ends like any lifecycle delete).
    Raises ProvisioningRefused when the creation did not fail or Proxmox cannot be asked.
    """
    if container.lifecycle != "error":
        raise ProvisioningRefused("Only a container whose creation failed can be deleted from here.")
    operation = latest_operation(container)
    # the root password was kept only in case of a Retry
    wipe_secret((operation.params or {}).get("draft_id") if operation else None)
    try:
        node = get_proxmox().find_container_node(container.vmid)
    except ProxmoxError as exc:
        raise ProvisioningRefused(f"Proxmox cannot be asked: {exc.message}") from exc
    if node is None:
        container.lifecycle = "deleted"
        record_event(container.id, "complete", f"CT {container.vmid} removed by {username} (it never existed in Proxmox).",
                     {"action": "delete"})
        db.session.commit()
        return None
    try:
        return request_action(container.vmid, "delete", username)
    except ActionRefused as exc:
        raise ProvisioningRefused(exc.message) from exc
