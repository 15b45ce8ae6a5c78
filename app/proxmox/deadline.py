"""One deadline for all the Proxmox calls a web request makes.

A page that makes three calls to a Proxmox answering in 10 s each would take 30 s; with a
deadline every call gets only what is left of it, and once it has passed calls fail at once
with ``ProxmoxSlow``, so the page shows the last known state instead of waiting.
The deadline is a context variable: threads that work for the request run inside a copy of
its context (``in_context``, or ``submit``/``gather`` on the shared pool below), so calls made
in parallel share it too. A call that found the deadline passed marks it ``missed``; pages
then show the "Proxmox is slow" banner.
"""
from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


class _Deadline:
    """One request's deadline; shared (not copied) by the threads working for the request."""

    __slots__ = ("ends", "seconds", "missed")

    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds
        self.seconds = seconds
        self.missed = False


_deadline: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar("pve_deadline", default=None)
# Proxmox calls of all requests run here in parallel; the size bounds the calls one process
# has in flight (queued calls wait, and that wait counts against their request's deadline).
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="proxmox-call")


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Within the block, Proxmox calls share ``seconds`` in total (None or 0: no deadline)."""
    token = start(seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def start(seconds: float | None) -> contextvars.Token:
    """Start a deadline for the rest of the current context; ``stop(token)`` ends it."""
    return _deadline.set(_Deadline(seconds) if seconds else None)


def stop(token: contextvars.Token) -> None:
    """End a deadline begun with ``start``."""
    _deadline.reset(token)


def remaining() -> tuple[float, float] | None:
    """(seconds left, seconds in all) of the current deadline, or None without one."""
    current = _deadline.get()
    if current is None:
        return None
    return current.ends - time.monotonic(), current.seconds


def mark_missed() -> None:
    """Record that a call of the current request gave up because the deadline had passed."""
    current = _deadline.get()
    if current is not None:
        current.missed = True


def missed() -> float | None:
    """The current deadline's length in seconds if a call missed it, else None."""
    current = _deadline.get()
    return current.seconds if current is not None and current.missed else None


def in_context(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` bound to a copy of the caller's context, for running in ONE worker thread.

    A context can be entered by one thread at a time: wrap once per submitted call.
    """
    context = contextvars.copy_context()
    return lambda *args, **kwargs: context.run(fn, *args, **kwargs)


def submit(fn: Callable[..., T], *args: object, **kwargs: object) -> Future[T]:
    """Run ``fn(*args, **kwargs)`` on the shared pool under the caller's deadline.

    The worker sees the caller's context (Flask's too), but must not use the database:
    Flask-SQLAlchemy would hand it the request's own session, which is not thread-safe.
    """
    return _POOL.submit(in_context(fn), *args, **kwargs)


def gather(*calls: Callable[[], T]) -> list[T]:
    """Run independent calls in parallel under the caller's deadline; their results, in order.

    Waits for all of them, then raises the first error (in the order of ``calls``) if any failed.
    """
    outcomes = settle(*calls)
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome
    return outcomes  # type: ignore[return-value]


def settle(*calls: Callable[[], T]) -> list[T | Exception]:
    """Like ``gather``, but each call's result or the exception it raised, never raising.

    A single call runs in the caller's thread.
    """
    if len(calls) == 1:
        return [_outcome(calls[0])]
    futures = [submit(_outcome, call) for call in calls]
    return [future.result() for future in futures]


def _outcome(call: Callable[[], T]) -> T | Exception:
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - handed to the caller, who decides
        return exc
