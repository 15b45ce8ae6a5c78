"""The task queue (huey): SQLite in instance/ by default, Redis with REDIS_URL, inline in tests.

Tasks are declared at import time on the module-level ``huey`` and wrapped with
``in_app_context``; ``init_app`` points ``huey`` at the configured storage and remembers the
app its tasks run in. A consumer started any other way than ``flask worker`` builds the app
itself (``create_app()``, once per process). Web requests only enqueue.
"""
from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import click
from flask import Flask
from huey import Huey
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage

log = logging.getLogger("app.jobs")

P = ParamSpec("P")
R = TypeVar("R")
TASK_MODULES = ("app.guest_services.tasks", "app.provisioning.tasks", "app.wizard.tasks")

# Inline until init_app says otherwise, so nothing is queued nowhere.
huey = Huey("proxboard", immediate=True, storage_class=MemoryStorage, utc=True)
_app: Flask | None = None


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
        huey.storage_class = SqliteStorage
        huey.storage_kwargs = {"filename": path}
    huey._immediate = bool(immediate)
    huey.storage = huey.create_storage()
    load_tasks()
    app.extensions["huey"] = huey
    return huey


def load_tasks() -> None:
    """Import the modules that declare tasks, so a consumer knows them all."""
    for name in TASK_MODULES:
        importlib.import_module(name)


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
