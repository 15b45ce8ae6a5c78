"""Provisioning as the rest of the app sees it: start, run, retry, sweep stale jobs (discarding a failed
creation is a container action: ``app.containers.services.discard``)."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app import audit, jobs
from app.credentials import CredentialsKeyError
from app.db_faults import PLAIN_MESSAGE, RETRY_DELAYS, counters, is_db_fault, retry_on_fault
from app.events import record_event
from app.extensions import db
from app.models import Container, Event, Operation, TemplateFile, TemplateScript, WizardDraft, utcnow
from app.presenters import plural
from app.proxmox import ProxmoxClient, ProxmoxError, get_proxmox
from app.ssh import SSHError, SSHPool, open_pool
from app.ssh.settings import SSHProblem, ssh_problem

from .events import EventWriter
from .steps import (
    CONFIGURATION_ERRORS,
    INSIDE_STEPS,
    STEP_NAMES,
    STEPS,
    StepContext,
    StepFailed,
    Timeouts,
    describe_work,
    inside_work,
    step_named,
)

log = logging.getLogger("app.provisioning")
JOB = "provision"  # the job's name in app.jobs (declared in .tasks)

ACTION = "create"
NOT_STARTED = "not_started"  # in a failed operation's params: it ended before its first step ran
INTERRUPTED = "interrupted"  # in params: the job stopped without a verdict; a retry reconciles with Proxmox


class ProvisioningRefused(Exception):
    """Retry or discard is not possible now; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- starting -----------------------------------------------------------------------------


def start_provisioning(container: Container, plan: dict[str, Any], username: str,
                       from_step: str = "create") -> Operation:
    """Record a queued ``create`` Operation, commit, and hand it to the job queue."""
    operation = Operation(container_id=container.id, action=ACTION, state="queued", requested_by=username,
                          step=from_step, progress=step_named(from_step).percent,
                          params={**plan, "from_step": from_step})
    db.session.add(operation)
    db.session.flush()
    what = "Creation" if from_step == "create" else f"Retry from “{step_named(from_step).label}”"
    record_event(container.id, "step", f"{what} requested by {username}",
                 {"step": "queued", "percent": operation.progress, "operation_id": operation.id})
    db.session.commit()
    jobs.enqueue(JOB, operation.id)  # only now: a worker must find the committed row
    return operation


def latest_operation(container: Container) -> Operation | None:
    """The container's most recent provisioning operation."""
    return db.session.scalar(select(Operation).where(Operation.container_id == container.id,
                                                     Operation.action == ACTION).order_by(Operation.id.desc()))


# -- running ------------------------------------------------------------------------------


def _timeouts() -> Timeouts:
    config = current_app.config
    return Timeouts(task=float(config.get("PROVISION_TASK_TIMEOUT", 300)),
                    boot=float(config.get("PROVISION_BOOT_TIMEOUT", 120)),
                    packages=float(config.get("PROVISION_PACKAGES_TIMEOUT", 1800)),
                    script=float(config.get("PROVISION_SCRIPT_TIMEOUT", 1800)))


UNEXPECTED = "an unexpected error in Proxboard (the details are in its log)"


def _describe(exc: BaseException) -> str:
    """What the error event says: Proxmox's, SSH's or the step's own words; never a traceback or SQL."""
    if isinstance(exc, ProxmoxError):
        return exc.message
    if isinstance(exc, (SSHError, StepFailed, CredentialsKeyError)):
        return str(exc)
    if is_db_fault(exc):
        return PLAIN_MESSAGE
    return UNEXPECTED


class NotStarted(Exception):
    """The job cannot start because of the configuration; nothing was done from ``from_step`` on."""


def plan_ssh_problem(plan: dict[str, Any], app=None) -> SSHProblem | None:
    """Why SSH to the plan's node cannot work with the current settings, or None (never connects)."""
    app = app or current_app
    return ssh_problem(app.config, app.instance_path, plan["spec"]["node"])


def _preflight(plan: dict[str, Any], from_step: str) -> SSHProblem | None:
    """Check what the steps from ``from_step`` on need from the configuration, before doing any.

    Returns the SSH problem that only makes discovery skip; raises NotStarted when a needed
    piece is missing (SSH for files, packages or scripts; the credentials key for the password).
    """
    problem = plan_ssh_problem(plan)
    remaining = STEP_NAMES[STEP_NAMES.index(from_step):]
    work = {name: count for name, count in inside_work(plan).items() if name in remaining}
    if problem is not None and work:
        raise NotStarted(f"{describe_work(work)} must be put into the container over SSH, but {problem}")
    if from_step == "create":
        try:
            _password(plan.get("draft_id"))
        except CredentialsKeyError as exc:
            raise NotStarted(f"the stored root password cannot be read: {exc}. Set PROXBOARD_CREDENTIALS_KEY to "
                             f"the key the web app uses (or give both the same instance folder)") from exc
    return problem


class _LazyPool:
    """The job's SSH pool, opened by the first step that uses SSH (a run without SSH needs no settings)."""

    def __init__(self, pool: SSHPool | None) -> None:
        self._pool, self._own = pool, pool is None

    def get(self) -> SSHPool:
        if self._pool is None:
            self._pool = open_pool()
        return self._pool

    def close(self) -> None:
        if self._own and self._pool is not None:
            self._pool.close()


def wipe_secret(draft_id: str | None) -> None:
    """Forget the root password a wizard draft kept for a Retry."""
    if draft_id:
        db.session.execute(update(WizardDraft).where(WizardDraft.id == draft_id).values(secret_encrypted=None))
        db.session.commit()


def _password(draft_id: str | None) -> str | None:
    from app.credentials import decrypt

    secret = db.session.scalar(select(WizardDraft.secret_encrypted).where(WizardDraft.id == draft_id)) if draft_id else None
    return decrypt(secret) if secret else None


def _load(model, ids: list[int]) -> list[Any]:
    rows = {row.id: row for row in db.session.scalars(select(model).where(model.id.in_(ids)))} if ids else {}
    return [rows[i] for i in ids if i in rows]


def _discover(container_id: int, pool: SSHPool, proxmox: ProxmoxClient) -> str:
    from app.guest_services.refresh import refresh_container_services

    result = refresh_container_services(container_id, pool=pool, proxmox=proxmox)
    if not result.ok:
        raise StepFailed(f"service discovery failed: {result.error}")
    container = db.session.get(Container, container_id)
    credentials = sum(len(service.credentials) for service in container.services)
    return f"Found {plural(result.services, 'service')} and {plural(credentials, 'credential')}"


def run_provisioning(operation_id: int, *, proxmox: ProxmoxClient | None = None,
                     pool: SSHPool | None = None) -> bool:
    """Run a queued provisioning operation from its ``from_step``; True when the container is ready.

    Every outcome ends in the database: lifecycle ``ready`` with a Complete event, or
    ``error`` with an Error event naming the failed step. A configuration problem (SSH needed
    but not set up, host key not trusted, credentials key missing) ends it at once, before the
    first step when it can be seen beforehand, and Retry is offered for after the fix.

    The operation is claimed with a conditional UPDATE, so a job enqueued twice (the sweep
    re-sends a job it thinks lost) runs once. A dropped database connection is bookkeeping, not
    the step's failure: the step runs again once the database answers, reconciling with what
    Proxmox already did (``StepContext.reconcile``). When the database stays away the job stops
    without a verdict; the stale sweep then ends it as interrupted, and Retry reconciles.
    """
    claim = utcnow()  # this job's mark: a retry after a lost COMMIT answer recognises its own claim
    claimed = retry_on_fault(lambda: _claim(operation_id, claim),
                             what=f"provisioning operation {operation_id}: claiming it")
    if claimed is None:
        log.warning("provisioning operation %s is gone or no longer queued; skipped", operation_id)
        return False
    container_id, vmid, plan = claimed
    from_step = plan.get("from_step") or "create"
    current = step_named(from_step)
    pools = _LazyPool(pool)
    try:
        try:
            problem = _bookkeeping(lambda: _preflight(plan, from_step), operation_id, "checking its configuration")
        except NotStarted as exc:
            log.warning("provisioning CT %s not started: %s", vmid, exc)
            _bookkeeping(lambda: _fail(operation_id, container_id, from_step, f"Provisioning not started: {exc}",
                                       config=True, nothing_done=True), operation_id, "recording failure")
            return False
        proxmox = proxmox or get_proxmox()
        heartbeat = float(current_app.config.get("PROVISION_HEARTBEAT_SECONDS", 5))
        writer = EventWriter(db.engine, container_id, operation_id, heartbeat_seconds=heartbeat)
        ctx = StepContext(
            plan=plan, proxmox=proxmox, ssh=lambda: pools.get().node(plan["spec"]["node"]),
            log=lambda message, level: writer.add("log", message, {"level": level}),
            password=lambda: _password(plan.get("draft_id")),
            load_files=lambda ids: _load(TemplateFile, ids), load_scripts=lambda ids: _load(TemplateScript, ids),
            script_body=_script_body, discover=lambda: _discover(container_id, pools.get(), proxmox),
            timeouts=_timeouts(), ssh_problem=str(problem) if problem else None,
            reconcile=bool(plan.get(INTERRUPTED)),
        )
        with writer:
            for current in STEPS[STEP_NAMES.index(from_step):]:
                if not _bookkeeping(lambda: _enter_step(operation_id, current.name, current.percent),
                                    operation_id, "recording its step"):
                    log.warning("provisioning operation %s was ended elsewhere; stopping", operation_id)
                    return False
                skipped = current.skip(ctx)
                if skipped:
                    writer.add("step", f"{current.label}: skipped",
                               {"step": current.name, "percent": current.percent, "skipped": True})
                    writer.add("log", skipped, {"level": "info", "step": current.name, "skipped": True}, now=True)
                    continue
                writer.add("step", current.label, {"step": current.name, "percent": current.percent}, now=True)
                started = time.monotonic()
                _run_step(current, ctx, operation_id, plan)
                writer.add("log", f"{current.label}: done in {time.monotonic() - started:.2f} s",
                           {"level": "info", "step": current.name, "seconds": round(time.monotonic() - started, 3)})
        _bookkeeping(lambda: _succeed(operation_id, container_id, ctx.found_ip), operation_id, "recording success")
        return True
    except Exception as exc:  # every failure must end the operation visibly
        db.session.rollback()
        if is_db_fault(exc):
            log.error("provisioning CT %s stopped at %s: the database stayed unreachable; the stale-job sweep "
                      "ends it as interrupted and Retry continues from there", vmid, current.name, exc_info=exc)
            return False
        message = _describe(exc)
        log.warning("provisioning CT %s failed at %s: %s", vmid, current.name, message,
                    exc_info=exc if message == UNEXPECTED else None)
        _bookkeeping(lambda: _fail(operation_id, container_id, current.name, f"{current.label} failed: {message}",
                                   config=isinstance(exc, CONFIGURATION_ERRORS)), operation_id, "recording failure")
        return False
    finally:
        pools.close()


def _claim(operation_id: int, claim) -> tuple[int, int, dict[str, Any]] | None:
    """Move the operation from queued to running, once: (container id, vmid, plan), or None if not queued.

    ``claim`` (a timestamp) is written as the first heartbeat: finding it means this job's own
    earlier attempt committed the claim.
    """
    mine = (Operation.state == "queued") | ((Operation.state == "running") & (Operation.heartbeat_at == claim))
    claimed = db.session.execute(update(Operation).where(Operation.id == operation_id, mine)
                                 .values(state="running", heartbeat_at=claim))
    db.session.commit()
    if claimed.rowcount != 1:
        return None
    operation = db.session.get(Operation, operation_id)
    return operation.container_id, operation.container.vmid, dict(operation.params or {})


def _bookkeeping(write: Callable[[], Any], operation_id: int, what: str) -> Any:
    """``write`` (one transaction) again after each dropped connection, for about half a minute."""
    return retry_on_fault(write, what=f"provisioning operation {operation_id}: {what}")


def _run_step(step, ctx: StepContext, operation_id: int, plan: dict[str, Any]) -> None:
    """Run one step; a dropped database connection runs it again (reconciling) instead of failing it.

    The root password kept for the create step is wiped once that step has an outcome of its own
    (never after a database fault, when the step runs again and needs it).
    """
    for delay in (*RETRY_DELAYS, None):
        try:
            step.run(ctx)
        except Exception as exc:
            if is_db_fault(exc) and delay is not None:
                db.session.rollback()
                counters.worker_retries += 1
                log.warning("provisioning operation %s: %s during “%s”; running it again in %g s", operation_id,
                            PLAIN_MESSAGE, step.label, delay)
                ctx.log(f"{step.label}: the database connection was lost; running the step again", "warn")
                time.sleep(delay)
                ctx.reconcile = True
                continue
            if step.name == "create" and not is_db_fault(exc):
                _wipe_quietly(plan.get("draft_id"))
            raise
        if step.name == "create":
            _wipe_quietly(plan.get("draft_id"))
        return


def _wipe_quietly(draft_id: str | None) -> None:
    try:
        retry_on_fault(lambda: wipe_secret(draft_id), what="wiping the wizard's root password")
    except Exception:  # the draft expires (and takes the secret with it) after WIZARD_DRAFT_HOURS anyway
        db.session.rollback()
        log.warning("could not wipe the root password of wizard draft %s; it expires with the draft", draft_id,
                    exc_info=True)


def _script_body(content: str) -> str:
    from app.container_templates.helpers import script_with_helpers

    return script_with_helpers(content)


def _enter_step(operation_id: int, step: str, percent: int) -> bool:
    """Record the step the operation is at; False when it is no longer running (ended elsewhere)."""
    entered = db.session.execute(update(Operation).where(Operation.id == operation_id, Operation.state == "running")
                                 .values(step=step, progress=percent, heartbeat_at=utcnow()))
    db.session.commit()
    return entered.rowcount == 1


def _succeed(operation_id: int, container_id: int, ip: str | None) -> None:
    operation = db.session.get(Operation, operation_id)
    container = db.session.get(Container, container_id)
    if operation.state == "succeeded":  # an earlier attempt committed; only its answer was lost
        return
    operation.state, operation.progress, operation.step = "succeeded", 100, "complete"
    operation.finished_at = operation.heartbeat_at = utcnow()
    container.lifecycle = "ready"
    if ip:
        container.ip = ip
    record_event(container_id, "complete", f"{container.display_name()} (CT {container.vmid}) is ready.",
                 {"step": "complete", "percent": 100, "operation_id": operation_id})
    audit.record_result(operation, container, "succeeded", f"{container.display_name()} is ready.")
    db.session.commit()
    get_proxmox().invalidate()


def _fail(operation_id: int, container_id: int, step: str, message: str, *, config: bool = False,
          nothing_done: bool = False) -> None:
    operation = db.session.get(Operation, operation_id)
    container = db.session.get(Container, container_id)
    if not operation.pending:  # an earlier attempt committed; only its answer was lost
        return
    operation.state, operation.error, operation.step = "failed", message, step
    operation.finished_at = utcnow()
    if nothing_done:  # Retry may then start from this step even when it is "create"
        operation.params = {**(operation.params or {}), NOT_STARTED: True}
    container.lifecycle = "error"
    record_event(container_id, "error", message,
                 {"step": step, "percent": operation.progress, "operation_id": operation_id,
                  "retryable": step != "create" or nothing_done, "configuration": config})
    audit.record_result(operation, container, "failed", f"{step}: {message}")
    db.session.commit()
    get_proxmox().invalidate()


# -- after a failure ------------------------------------------------------------------------


def retry_reason(container: Container, operation: Operation | None) -> str | None:
    """Why "Retry from the failed step" is not offered, or None when it is."""
    if container.lifecycle != "error" or operation is None or operation.state != "failed":
        return "Only a failed creation can be retried."
    params = operation.params or {}
    if operation.step in (None, "create") and not (params.get(NOT_STARTED) or params.get(INTERRUPTED)):
        return "Creating the container itself failed; it is not retried automatically (delete it and start again)."
    return None


def retry(container: Container, username: str) -> Operation:
    """Queue the failed provisioning again from its failed step.

    The create step is queued again only when it never started or was interrupted (its run then
    first asks Proxmox whether the container exists); a create Proxmox refused is not.
    """
    operation = latest_operation(container)
    reason = retry_reason(container, operation)
    if reason:
        raise ProvisioningRefused(reason)
    container.lifecycle = "creating"
    plan = {key: value for key, value in (operation.params or {}).items() if key != NOT_STARTED}
    try:
        return start_provisioning(container, plan, username, from_step=operation.step)
    except IntegrityError:  # the one-pending-operation index: a second click got here first
        db.session.rollback()
        raise ProvisioningRefused("A retry is already running.") from None


# -- a killed worker --------------------------------------------------------------------------


def sweep_stale(timeout: float | None = None, requeue_after: float | None = None) -> list[int]:
    """End provisioning jobs whose worker stopped, and send again the jobs that were lost.

    A running operation without a heartbeat for ``timeout`` seconds (PROVISION_HEARTBEAT_TIMEOUT)
    ends in Error as *interrupted*: its Retry reconciles with Proxmox, even at the create step.
    A queued one older than ``requeue_after`` seconds (JOBS_REQUEUE_SECONDS) whose job is not in
    the queue (the enqueue failed, the queue was wiped) is enqueued again; one whose job waits
    stays queued (the banner of ``app.jobs.worker_missing`` says when no worker runs).
    Each row is ended with a conditional UPDATE, so sweeps of several processes act once.
    Returns the ids of the operations ended.
    """
    config = current_app.config
    timeout = float(timeout if timeout is not None else config.get("PROVISION_HEARTBEAT_TIMEOUT", 120))
    requeue_after = float(requeue_after if requeue_after is not None else config.get("JOBS_REQUEUE_SECONDS", 60))
    now = utcnow()
    _requeue_lost(now - timedelta(seconds=requeue_after))
    stale = db.session.execute(select(Operation.id, Operation.step).where(
        Operation.action == ACTION, Operation.state == "running",
        func.coalesce(Operation.heartbeat_at, Operation.started_at) < now - timedelta(seconds=timeout),
    )).all()
    ended = []
    for operation_id, step in stale:
        label = step_named(step).label if step in STEP_NAMES else "Queued"
        message = (f"{label} was interrupted: the provisioning job stopped responding (no heartbeat for more "
                   f"than {timeout:g} s; the worker was probably stopped or killed). Retry continues from "
                   f"this step with what Proxmox already has.")
        if _end_stale(operation_id, step, message, now):
            ended.append(operation_id)
    return ended


def _requeue_lost(queued_before) -> list[int]:
    """Enqueue again the queued operations older than ``queued_before`` whose job is not waiting."""
    lost = list(db.session.scalars(select(Operation.id).where(
        Operation.action == ACTION, Operation.state == "queued", Operation.started_at < queued_before)))
    db.session.rollback()  # no transaction held open while the queue is read
    sent = [operation_id for operation_id in lost if jobs.requeue(JOB, (operation_id,))]
    for operation_id in sent:
        log.warning("provisioning operation %s was queued without a job waiting; enqueued it again", operation_id)
    return sent


def _end_stale(operation_id: int, step: str | None, message: str, now) -> bool:
    """Fail one stale running operation (if no other sweep did): True when this call ended it."""
    operation = db.session.get(Operation, operation_id)
    ended = db.session.execute(update(Operation).where(Operation.id == operation_id, Operation.state == "running")
                               .values(state="failed", error=message, finished_at=now,
                                       params={**(operation.params or {}), INTERRUPTED: True}))
    if ended.rowcount != 1:
        db.session.rollback()
        return False
    container = operation.container
    container.lifecycle = "error"
    record_event(container.id, "error", message,
                 {"step": step, "percent": operation.progress, "operation_id": operation_id, "stale": True,
                  "retryable": True})
    db.session.commit()
    log.warning("provisioning operation %s (CT %s) marked interrupted: no heartbeat", operation_id, container.vmid)
    return True


# -- reading, for the progress page ------------------------------------------------------------


def events_after(container_id: int, after: int = 0, limit: int = 2000) -> list[Event]:
    """The container's events with an id above ``after``, oldest first."""
    return list(db.session.scalars(select(Event).where(Event.container_id == container_id, Event.id > after)
                                   .order_by(Event.id).limit(limit)))


def step_states(operation: Operation | None, lifecycle: str) -> list[tuple[Any, str]]:
    """Each step with ``done``, ``skipped``, ``running``, ``failed`` or ``pending``.

    ``skipped`` marks the files, packages and scripts steps the plan has nothing for.
    """
    if operation is None:
        return [(step, "pending") for step in STEPS]
    work = inside_work(operation.params or {})
    passed = lambda step: "skipped" if step.name in INSIDE_STEPS and step.name not in work else "done"  # noqa: E731
    if operation.state == "succeeded" or lifecycle == "ready":
        return [(step, passed(step)) for step in STEPS]
    current = STEP_NAMES.index(operation.step) if operation.step in STEP_NAMES else 0
    failed = operation.state == "failed"
    states = []
    for index, step in enumerate(STEPS):
        if index < current:
            states.append((step, passed(step)))
        elif index == current:
            states.append((step, "failed" if failed else ("running" if operation.state == "running" else "pending")))
        else:
            states.append((step, "pending"))
    return states
