"""Provisioning as the rest of the app sees it: start, run, retry, sweep stale jobs (discarding a failed
creation is a container action: ``app.containers.services.discard``)."""
from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.credentials import CredentialsKeyError
from app.events import record_event
from app.extensions import db
from app.models import Container, Event, Operation, TemplateFile, TemplateScript, WizardDraft, utcnow
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

ACTION = "create"
NOT_STARTED = "not_started"  # in a failed operation's params: it ended before its first step ran


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
    from .tasks import provision_task

    provision_task(operation.id)
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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ProxmoxError):
        return exc.message
    if isinstance(exc, (SSHError, StepFailed, CredentialsKeyError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


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
    return f"Found {result.services} services and {credentials} credentials"


def run_provisioning(operation_id: int, *, proxmox: ProxmoxClient | None = None,
                     pool: SSHPool | None = None) -> bool:
    """Run a queued provisioning operation from its ``from_step``; True when the container is ready.

    Every outcome ends in the database: lifecycle ``ready`` with a Complete event, or
    ``error`` with an Error event naming the failed step. A configuration problem (SSH needed
    but not set up, host key not trusted, credentials key missing) ends it at once, before the
    first step when it can be seen beforehand, and Retry is offered for after the fix.
    """
    operation = db.session.get(Operation, operation_id)
    if operation is None or operation.state != "queued":
        log.warning("provisioning operation %s is gone or no longer queued; skipped", operation_id)
        return False
    container = operation.container
    plan = dict(operation.params or {})
    from_step = plan.get("from_step") or "create"
    operation.state, operation.heartbeat_at = "running", utcnow()
    db.session.commit()
    container_id, vmid = container.id, container.vmid
    current = step_named(from_step)
    pools = _LazyPool(pool)
    try:
        try:
            problem = _preflight(plan, from_step)
        except NotStarted as exc:
            log.warning("provisioning CT %s not started: %s", vmid, exc)
            _fail(operation_id, container_id, from_step, f"Provisioning not started: {exc}", config=True,
                  nothing_done=True)
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
        )
        with writer:
            for current in STEPS[STEP_NAMES.index(from_step):]:
                if not _still_ours(operation_id):
                    log.warning("provisioning operation %s was ended elsewhere; stopping", operation_id)
                    return False
                _enter_step(operation_id, current.name, current.percent)
                skipped = current.skip(ctx)
                if skipped:
                    writer.add("step", f"{current.label}: skipped",
                               {"step": current.name, "percent": current.percent, "skipped": True})
                    writer.add("log", skipped, {"level": "info", "step": current.name, "skipped": True}, now=True)
                    continue
                writer.add("step", current.label, {"step": current.name, "percent": current.percent}, now=True)
                started = time.monotonic()
                try:
                    current.run(ctx)
                finally:
                    if current.name == "create":
                        wipe_secret(plan.get("draft_id"))
                writer.add("log", f"{current.label}: done in {time.monotonic() - started:.2f} s",
                           {"level": "info", "step": current.name, "seconds": round(time.monotonic() - started, 3)})
            writer.flush()
            _succeed(operation_id, container_id, ctx.found_ip)
            return True
    except Exception as exc:  # every failure must end the operation visibly
        db.session.rollback()
        message = _describe(exc)
        log.warning("provisioning CT %s failed at %s: %s", vmid, current.name, message)
        _fail(operation_id, container_id, current.name, f"{current.label} failed: {message}",
              config=isinstance(exc, CONFIGURATION_ERRORS))
        return False
    finally:
        pools.close()


def _script_body(content: str) -> str:
    from app.container_templates.helpers import script_with_helpers

    return script_with_helpers(content)


def _still_ours(operation_id: int) -> bool:
    state = db.session.scalar(select(Operation.state).where(Operation.id == operation_id))
    return state == "running"


def _enter_step(operation_id: int, step: str, percent: int) -> None:
    db.session.execute(update(Operation).where(Operation.id == operation_id)
                       .values(step=step, progress=percent, heartbeat_at=utcnow()))
    db.session.commit()


def _succeed(operation_id: int, container_id: int, ip: str | None) -> None:
    operation = db.session.get(Operation, operation_id)
    container = db.session.get(Container, container_id)
    operation.state, operation.progress, operation.step = "succeeded", 100, "complete"
    operation.finished_at = operation.heartbeat_at = utcnow()
    container.lifecycle = "ready"
    if ip:
        container.ip = ip
    record_event(container_id, "complete", f"{container.display_name()} (CT {container.vmid}) is ready.",
                 {"step": "complete", "percent": 100, "operation_id": operation_id})
    db.session.commit()
    get_proxmox().invalidate()


def _fail(operation_id: int, container_id: int, step: str, message: str, *, config: bool = False,
          nothing_done: bool = False) -> None:
    operation = db.session.get(Operation, operation_id)
    container = db.session.get(Container, container_id)
    operation.state, operation.error, operation.step = "failed", message, step
    operation.finished_at = utcnow()
    if nothing_done:  # Retry may then start from this step even when it is "create"
        operation.params = {**(operation.params or {}), NOT_STARTED: True}
    container.lifecycle = "error"
    record_event(container_id, "error", message,
                 {"step": step, "percent": operation.progress, "operation_id": operation_id,
                  "retryable": step != "create" or nothing_done, "configuration": config})
    db.session.commit()
    get_proxmox().invalidate()


# -- after a failure ------------------------------------------------------------------------


def retry_reason(container: Container, operation: Operation | None) -> str | None:
    """Why "Retry from the failed step" is not offered, or None when it is."""
    if container.lifecycle != "error" or operation is None or operation.state != "failed":
        return "Only a failed creation can be retried."
    if operation.step in (None, "create") and not (operation.params or {}).get(NOT_STARTED):
        return "Creating the container itself failed; it is not retried automatically (delete it and start again)."
    return None


def retry(container: Container, username: str) -> Operation:
    """Queue the failed provisioning again from its failed step (never the create step)."""
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


def sweep_stale(timeout: float | None = None) -> list[int]:
    """Fail provisioning operations whose worker stopped: no heartbeat for ``timeout`` seconds.

    Queued ones get five times longer (a busy queue is not a dead one). Returns their ids.
    """
    timeout = float(timeout if timeout is not None else current_app.config.get("PROVISION_HEARTBEAT_TIMEOUT", 120))
    now = utcnow()
    stale = db.session.scalars(select(Operation).where(
        Operation.action == ACTION,
        ((Operation.state == "running") & (func.coalesce(Operation.heartbeat_at, Operation.started_at)
                                           < now - timedelta(seconds=timeout)))
        | ((Operation.state == "queued") & (Operation.started_at < now - timedelta(seconds=timeout * 5))),
    )).all()
    for operation in stale:
        label = step_named(operation.step).label if operation.step in STEP_NAMES else "Queued"
        message = (f"{label} failed: the provisioning job stopped responding (no heartbeat for more than "
                   f"{timeout:g} s; the worker was probably stopped or killed).")
        operation.state, operation.error, operation.finished_at = "failed", message, now
        operation.container.lifecycle = "error"
        record_event(operation.container_id, "error", message,
                     {"step": operation.step, "percent": operation.progress, "operation_id": operation.id,
                      "stale": True, "retryable": operation.step not in (None, "create")})
        log.warning("provisioning operation %s (CT %s) marked failed: no heartbeat", operation.id,
                    operation.container.vmid)
    db.session.commit()
    return [operation.id for operation in stale]


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
