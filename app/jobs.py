"""The task queue (huey): SQLite in instance/ by default, Redis with REDIS_URL, inline in tests.

Tasks are declared at import time on the module-level ``huey`` and wrapped with
``in_app_context``; ``init_app`` points ``huey`` at the configured storage and remembers the
app its tasks run in. A consumer started any other way than ``flask worker`` builds the app
itself (``create_app()``, once per process). Web requests only enqueue.

Services enqueue by name (``enqueue("provision", operation_id)``) after committing the record
the job works on, so they never import the task modules that import them; a record whose job was
lost (enqueue failed, storage wiped) is found by its feature's sweep, which ``requeue`` helps.
Sweeps registered with ``@sweep`` run in the worker (periodic tasks) and, at most once per
``JOBS_WEB_SWEEP_SECONDS``, from the web process too, in a background thread: a job whose worker
died ends in Error even while no worker runs. ``worker_missing()`` tells pages when queued work
has waited longer than ``JOBS_WORKER_MISSING_SECONDS`` (no worker is consuming).
"""
from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import threading
import time
from datetime import timedelta

import click
from flask import Flask, current_app, g
from huey import Huey
from huey.api import TaskWrapper
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage

from app.config import create_private_file

log = logging.getLogger("app.jobs")

P = ParamSpec("P")
R = TypeVar("R")
TASK_MODULES = ("app.guest_services.tasks", "app.provisioning.tasks", "app.wizard.tasks", "app.audit.tasks",
                "app.bulk.tasks", "app.alerts.tasks")

# Inline until init_app says otherwise, so nothing is queued nowhere.
huey = Huey("proxboard", immediate=True, storage_class=MemoryStorage, utc=True)
_app: Flask | None = None
_named: dict[str, TaskWrapper] = {}
_sweeps: list[Callable[[], object]] = []
# Operation actions whose work is a job here (lifecycle actions are Proxmox tasks, followed by pages).
JOB_ACTIONS = ("create", "refresh-services")


def init_app(app: Flask) -> Huey:
    """Configure ``huey`` from ``app.config`` and make ``app`` the one tasks run in."""
    global _app
    _app = app
    immediate = app.config.get("JOBS_IMMEDIATE")
    if immediate is None:
        immediate = app.testing
    if app.config.get("REDIS_URL"):
        huey.storage_class = RedisStorage
        huey.storage_kwargs = {"url": app.config["REDIS_URL"]}
    else:
        path = app.config.get("HUEY_SQLITE_PATH") or str(Path(app.instance_path) / "jobs.db")
        create_private_file(Path(path))
        huey.storage_class = SqliteStorage
        huey.storage_kwargs = {"filename": path}
    huey._immediate = bool(immediate)
    huey.storage = huey.create_storage()
    load_tasks()
    app.extensions["huey"] = huey
    _init_web_sweep(app)
    app.jinja_env.globals["worker_missing"] = worker_missing  # init_app runs again on a live test server that has served pages
    return huey


def load_tasks() -> None:
    """Import the modules that declare tasks, so a consumer knows them all."""
    for name in TASK_MODULES:
        importlib.import_module(name)


def named(name: str) -> Callable[[TaskWrapper], TaskWrapper]:
    """Register a huey task under ``name`` for ``enqueue``/``requeue`` (stack it above ``@huey.task()``)."""

    def register(task: TaskWrapper) -> TaskWrapper:
        _named[name] = task
        return task

    return register


def sweep(func: Callable[[], object]) -> Callable[[], object]:
    """Register a housekeeping function (no arguments, runs in an app context) for the web process too."""
    _sweeps.append(func)
    return func


def enqueue(name: str, *args: object) -> bool:
    """Hand the job ``name`` to the queue, after the caller committed the record it works on.

    Returns False when the queue could not take it (storage locked or down): the record stays
    queued and its feature's sweep enqueues it again, so the request that asked still succeeds.
    In immediate mode (tests) the job runs here and now.
    """
    if name not in _named:
        load_tasks()
    try:
        _named[name](*args)
    except Exception:
        if huey.immediate:
            raise
        log.exception("could not enqueue %s%r; the sweep will enqueue it again", name, args)
        return False
    return True


def queued_args(name: str) -> set[tuple]:
    """The argument tuples of the ``name`` jobs waiting in the queue (not those a worker runs now)."""
    if name not in _named:
        load_tasks()
    task_class = _named[name].task_class
    return {tuple(task.args) for task in huey.pending() if isinstance(task, task_class)}


def requeue(name: str, args: tuple) -> bool:
    """Enqueue ``name(*args)`` unless such a job already waits in the queue; True when it was sent.

    The job itself must tolerate a duplicate (claim its record with a conditional UPDATE).
    """
    if huey.immediate or args in queued_args(name):
        return False
    return enqueue(name, *args)


def run_sweeps() -> None:
    """Run every registered sweep now (in the current app context), each on its own."""
    for func in _sweeps:
        try:
            func()
        except Exception as exc:  # one sweep failing (database down) must not stop the others
            from app.db_faults import is_db_fault, rollback_quietly

            rollback_quietly()
            log.warning("sweep %s failed; next round tries again: %s", func.__qualname__, exc,
                        exc_info=not is_db_fault(exc))


def _init_web_sweep(app: Flask) -> None:
    """Run the sweeps from the web process at most every ``JOBS_WEB_SWEEP_SECONDS`` (piggy-backed on requests).

    Off when jobs run inline, and under TESTING unless ``JOBS_WEB_SWEEP_SECONDS`` is set there.
    """
    seconds = app.config.get("JOBS_WEB_SWEEP_SECONDS")
    if seconds is None:
        seconds = 0 if app.testing else 60
    if not seconds or huey.immediate:
        return
    state = {"next": 0.0, "running": False}
    lock = threading.Lock()

    def run() -> None:
        try:
            with app.app_context():
                run_sweeps()
        finally:
            state["running"] = False

    @app.before_request
    def _maybe_sweep() -> None:
        now = time.monotonic()
        with lock:
            if state["running"] or now < state["next"]:
                return
            state["next"], state["running"] = now + float(seconds), True
        threading.Thread(target=run, name="proxboard-web-sweep", daemon=True).start()


def worker_missing() -> int | None:
    """Minutes the oldest queued job has waited, when longer than ``JOBS_WORKER_MISSING_SECONDS``; else None.

    A queued Operation (provisioning, a services refresh) that old means no worker consumes
    the queue. One indexed query per page, at most once per request; a database error says None.
    """
    if "_worker_missing" in g:
        return g._worker_missing
    g._worker_missing = None
    limit = float(current_app.config.get("JOBS_WORKER_MISSING_SECONDS") or 0)
    if not limit or huey.immediate:
        return None
    from sqlalchemy import func, select
    from sqlalchemy.exc import SQLAlchemyError

    from app.extensions import db
    from app.models import Operation, utcnow

    try:
        oldest = db.session.scalar(select(func.min(Operation.started_at)).where(
            Operation.state == "queued", Operation.action.in_(JOB_ACTIONS)))
    except SQLAlchemyError:
        db.session.rollback()
        return None
    if oldest is not None and utcnow() - oldest > timedelta(seconds=limit):
        g._worker_missing = max(1, int((utcnow() - oldest).total_seconds() // 60))
    return g._worker_missing


def task_app() -> Flask:
    """The app tasks run in: the one given to ``init_app``, else one built for this process."""
    global _app
    if _app is None:
        from app import create_app

        _app = create_app()
    return _app


def in_app_context(func: Callable[P, R]) -> Callable[P, R]:
    """Run a task body inside a fresh app context (its own database session)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with task_app().app_context():
            return func(*args, **kwargs)

    return wrapper


@click.command("worker")
@click.option("-w", "--workers", type=int, default=None, help="Concurrent workers (default JOBS_WORKERS, 2).")
@click.option(
    "-k", "--worker-type", type=click.Choice(["thread", "process"]), default="thread", show_default=True
)
def worker_command(workers: int | None, worker_type: str) -> None:
    """Run the job consumer (provisioning, service refreshes, the periodic service check)."""
    from flask import current_app

    if huey.immediate:
        raise click.ClickException("JOBS_IMMEDIATE is on: jobs run inline, there is nothing to consume")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    workers = workers or int(current_app.config.get("JOBS_WORKERS") or 2)
    click.echo(f"Consuming jobs from {huey.storage_class.__name__} with {workers} {worker_type} workers.")
    huey.create_consumer(workers=workers, worker_type=worker_type, periodic=True).run()
