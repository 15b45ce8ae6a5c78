"""The Proxmox read cache: one load per key and cache interval, in this process or across several.

Built on dogpile.cache, whose lock elects one loader per key while the others wait for its
value (or, once a value exists, keep serving the expired one until the new one is there).
Without a Redis URL the values live in this process's memory; with one (``REDIS_URL``) they
live in Redis under ``prefix`` and the lock is a Redis lock, so the gunicorn workers and hosts
sharing that Redis make one upstream call per key per interval between them. A web request
waits for another process's load no longer than its deadline (``_DeadlineLock``).

``invalidate()`` bumps a generation number that is part of every key (kept in Redis when
Redis is used, so one process's invalidation is every process's); a load that was already
running stores its value under the old generation, where nobody reads it again.
"""
from __future__ import annotations

import logging
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from dogpile.cache import make_region, register_backend
from dogpile.cache.api import NO_VALUE
from dogpile.cache.backends.redis import RedisBackend

from . import deadline as request_deadline

T = TypeVar("T")

log = logging.getLogger("app.proxmox")

# Longer than the cache interval, so an expired value can still be served while one process
# reloads it; Redis drops it for good after this many intervals.
_KEEP_INTERVALS = 4


class ReadCache:
    """Cache read results for ``ttl`` seconds; concurrent misses of one key share one load.

    ``ttl == 0`` disables caching (every read loads). Errors are never cached: the next
    reader loads again. ``redis_url`` shares the cache (and its load lock) between processes
    through Redis under ``prefix``; ``lock_timeout`` (seconds) frees the lock of a process
    that died while loading. Values stored in Redis must pickle (Proxboard's models do). In memory, dogpile
    keeps an expired value until its key is written again: ``max_entries`` bounds a cache whose keys come
    from users (searches), forgetting the oldest written first; Redis drops them after a few intervals.
    When Redis cannot be reached, reads load directly (logged once) instead of failing.
    """

    def __init__(self, ttl: float, *, redis_url: str | None = None, prefix: str = "proxboard:pve",
                 lock_timeout: float = 30.0, max_entries: int | None = None) -> None:
        self._ttl = ttl
        self.prefix = prefix
        self.shared = bool(redis_url)
        self._generation = 0
        self._redis_failed = False
        self._lock = threading.Lock()
        if redis_url:
            # dogpile's redis backend pickles values; keys are ours (strings), never user input.
            self._region = make_region(deserializer=_Decoder()).configure(
                "proxboard.redis",
                expiration_time=ttl or None,
                arguments={
                    "url": redis_url,
                    "distributed_lock": True,
                    "thread_local_lock": False,  # dogpile may release the lock from another thread
                    "lock_timeout": max(int(lock_timeout + 0.999), 1),
                    "lock_sleep": 0.02,
                    "redis_expiration_time": max(int(ttl * _KEEP_INTERVALS + 0.999), 1) if ttl else 0,
                    "socket_timeout": 2.0,
                    "socket_connect_timeout": 2.0,
                },
            )
            self._redis = self._region.backend.writer_client
        else:
            arguments = {"cache_dict": _Bounded(max_entries)} if max_entries else {}
            self._region = make_region().configure("dogpile.cache.memory", expiration_time=ttl or None,
                                                   arguments=arguments)
            self._redis = None

    @property
    def ttl(self) -> float:
        """Seconds a value is served before it is loaded again (0: every read loads)."""
        return self._ttl

    @ttl.setter
    def ttl(self, seconds: float) -> None:
        self._ttl = seconds
        self._region.expiration_time = seconds or None

    def get_or_load(self, key: Hashable, loader: Callable[[], T], ttl: float | None = None) -> T:
        """Return the cached value for ``key`` or load it (once, however many threads or processes ask).

        ``ttl`` (seconds) serves this key for its own interval instead of the cache's; with Redis it is kept
        no longer than the cache's own ``ttl`` allows, so give such a cache the longest interval it will hold.
        Raises whatever ``loader`` raises (nothing is stored then).
        """
        if self.ttl <= 0:
            return loader()
        if self._redis is None:
            full_key = self._key(self._generation, key)
            return self._region.get_or_create(full_key, self._unless_fresh(full_key, loader, ttl), ttl)
        try:
            full_key = self._key(self._shared_generation(), key)
            return self._region.get_or_create(full_key, self._unless_fresh(full_key, _Marked(loader), ttl), ttl)
        except _LoaderFailed as failed:
            raise failed.error from None
        except _LockWaitExpired:
            return loader()  # the request's deadline has passed: the call says so (ProxmoxSlow)
        except Exception as exc:  # noqa: BLE001 - any Redis failure: serve without the cache
            self._report_redis(exc)
            return loader()

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` for ``key`` now (fresh for one interval), replacing what was there."""
        if self.ttl <= 0:
            return
        try:
            generation = self._shared_generation() if self._redis is not None else self._generation
            self._region.set(self._key(generation, key), value)
        except Exception as exc:  # noqa: BLE001 - a cache that cannot be written is simply not updated
            self._report_redis(exc)

    def peek(self, key: Hashable) -> Any:
        """The cached value of ``key`` (expired or not), or None; never loads."""
        if self.ttl <= 0:
            return None
        try:
            generation = self._shared_generation() if self._redis is not None else self._generation
            value = self._region.get(self._key(generation, key), ignore_expiration=True)
        except Exception as exc:  # noqa: BLE001 - a cache that cannot be read holds nothing
            self._report_redis(exc)
            return None
        return None if value is NO_VALUE else value

    def generation(self) -> int:
        """How many times the cache was invalidated (in every process sharing it): a value derived from what
        it held names it to know when that is out of date. -1 when Redis cannot be asked."""
        if self._redis is None:
            return self._generation
        try:
            return self._shared_generation()
        except Exception as exc:  # noqa: BLE001 - no generation: whatever is derived is drawn afresh
            self._report_redis(exc)
            return -1

    def invalidate(self) -> None:
        """Forget everything (in every process sharing the cache); loads in flight will not be seen."""
        with self._lock:
            self._generation += 1
        if self._redis is None:
            self._region.backend._cache.clear()  # dogpile's memory backend: a dict (or a _Bounded one)
            return
        try:
            self._redis.incr(f"{self.prefix}:generation")
        except Exception as exc:  # noqa: BLE001
            self._report_redis(exc)

    def close(self) -> None:
        """Release the Redis connections (nothing to do in memory)."""
        if self._redis is not None:
            self._redis.connection_pool.disconnect()

    # -- helpers -----------------------------------------------------------------------------

    def _unless_fresh(self, full_key: str, loader: Callable[[], T], ttl: float | None = None) -> Callable[[], T]:
        """``loader``, unless a fresh value arrived meanwhile.

        dogpile lets a reader holding an expired value take the lock without looking again,
        so a reader that saw the value just before another process stored the new one would
        load a second time in the same interval.
        """

        def load() -> T:
            value = self._region.get(full_key, expiration_time=ttl)
            return loader() if value is NO_VALUE else value

        return load

    def _key(self, generation: int, key: Hashable) -> str:
        return f"{self.prefix}:{generation}:{key!r}"

    def _shared_generation(self) -> int:
        value = self._redis.get(f"{self.prefix}:generation")
        if self._redis_failed:
            self._redis_failed = False
            log.info("Redis answers again: the Proxmox read cache is shared again")
        return int(value or 0)

    def _report_redis(self, exc: BaseException) -> None:
        if not self._redis_failed:
            self._redis_failed = True
            log.warning("Redis unavailable for the Proxmox read cache, reading Proxmox directly: %s: %s",
                        type(exc).__name__, exc)


class _Bounded(OrderedDict):
    """dogpile's memory store, holding at most ``limit`` keys: writing one more forgets the oldest written."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit
        self._write = threading.Lock()

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._write:
            super().__setitem__(key, value)
            self.move_to_end(key)
            while len(self) > self._limit:
                self.popitem(last=False)


class _LockWaitExpired(Exception):
    """Another process still held a key's load lock when the request's deadline passed."""


class _DeadlineLock:
    """A Redis lock that a request waits for no longer than its deadline (see ``deadline.py``).

    Without this, a page could wait past its deadline for a load that another process (a job
    worker, which has no deadline) is making.
    """

    __slots__ = ("_lock", "__weakref__")

    def __init__(self, lock: Any) -> None:
        self._lock = lock

    def acquire(self, wait: bool = True) -> bool:
        left = request_deadline.remaining() if wait else None
        if left is None:
            return bool(self._lock.acquire(blocking=wait))
        if self._lock.acquire(blocking=True, blocking_timeout=max(left[0], 0.01)):
            return True
        raise _LockWaitExpired()

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return bool(self._lock.locked())


class _RedisBackend(RedisBackend):
    """dogpile's Redis backend with ``_DeadlineLock`` as the load lock."""

    def get_mutex(self, key: str) -> _DeadlineLock | None:
        mutex = super().get_mutex(key)
        return _DeadlineLock(mutex.mutex) if mutex is not None else None


register_backend("proxboard.redis", __name__, "_RedisBackend")


class _Decoder:
    """``pickle.loads`` that remembers what it decoded: a value read from Redis again and again
    (every page within the interval) is unpickled once per process, not once per read.

    Redis is trusted like the job queue's (huey pickles too): it must not be open to others.
    """

    MAX_BYTES = 32 * 1024 * 1024  # of remembered payloads; the oldest are forgotten first

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._memo: OrderedDict[bytes, Any] = OrderedDict()
        self._bytes = 0

    def __call__(self, payload: bytes) -> Any:
        with self._lock:
            if payload in self._memo:
                self._memo.move_to_end(payload)
                return self._memo[payload]
        value = pickle.loads(payload)
        with self._lock:
            if payload not in self._memo and len(payload) <= self.MAX_BYTES:
                self._memo[payload] = value
                self._bytes += len(payload)
                while self._bytes > self.MAX_BYTES:
                    old, _ = self._memo.popitem(last=False)
                    self._bytes -= len(old)
        return value


class _LoaderFailed(Exception):
    """Carries the loader's own error past the Redis fallback (which would otherwise load again)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _Marked:
    """A loader whose errors are wrapped, so they are told apart from Redis errors."""

    def __init__(self, loader: Callable[[], Any]) -> None:
        self._loader = loader

    def __call__(self) -> Any:
        try:
            return self._loader()
        except Exception as exc:
            raise _LoaderFailed(exc) from exc
