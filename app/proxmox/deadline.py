"""One deadline for all the Proxmox calls a web request makes.

A page that makes three calls to a Proxmox answering in 10 s each would take 30 s; with a
deadline every call gets only what is left of it, and once it has passed calls fail at once
with ``ProxmoxSlow``, so the page shows the last known state instead of waiting.
The deadline is a context variable: threads that work for the request run inside a copy of
its context (``in_context``).
"""
from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

_deadline: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar("pve_deadline", default=None)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Within the block, Proxmox calls share ``seconds`` in total (None or 0: no deadline)."""
    token = _deadline.set((time.monotonic() + seconds, seconds) if seconds else None)
    try:
        yield
    finally:
        _deadline.reset(token)


def start(seconds: float | None) -> contextvars.Token:
    """Start a deadline for the rest of the current context; ``stop(token)`` ends it."""
    return _deadline.set((time.monotonic() + seconds, seconds) if seconds else None)


def stop(token: contextvars.Token) -> None:
    """End a deadline begun with ``start``."""
    _deadline.reset(token)


def remaining() -> tuple[float, float] | None:
    """(seconds left, seconds in all) of the current deadline, or None without one."""
    current = _deadline.get()
    if current is None:
        return None
    return current[0] - time.monotonic(), current[1]


def in_context(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` bound to a copy of the caller's context, for running in a worker thread."""
    context = contextvars.copy_context()
    return lambda *args, **kwargs: context.run(fn, *args, **kwargs)
