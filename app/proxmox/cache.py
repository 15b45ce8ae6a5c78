"""A small time-to-live cache with single-flight loading, shared by all threads."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

_MAX_ENTRIES = 2048


class _Flight:
    """One in-progress load that other readers of the same key wait for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class ReadCache:
    """Cache read results for ``ttl`` seconds; concurrent misses of one key share one load.

    ``ttl == 0`` disables caching (every read loads). Errors are never cached: the
    readers waiting on a failed load get the same exception, the next read tries again.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._flights: dict[Hashable, _Flight] = {}
        self._generation = 0

    def get_or_load(self, key: Hashable, loader: Callable[[], T]) -> T:
        """Return the cached value for ``key`` or load it (once, however many threads ask)."""
        if self.ttl <= 0:
            return loader()
        with self._lock:
            now = self._clock()
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                return entry[1]
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
                generation = self._generation
        assert flight is not None
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value
        try:
            flight.value = loader()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                if self._flights.get(key) is flight:
                    del self._flights[key]
                # A load that overlapped an invalidate() may hold pre-change data: don't keep it.
                if flight.error is None and generation == self._generation:
                    if len(self._entries) >= _MAX_ENTRIES:
                        self._prune(self._clock())
                    self._entries[key] = (self._clock() + self.ttl, flight.value)
            flight.done.set()
        return flight.value

    def invalidate(self) -> None:
        """Forget everything; loads already in flight will not be stored."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._flights.clear()

    def _prune(self, now: float) -> None:
        for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
