"""Rate limits: per scope, one budget per wallet (or per IP when anonymous) and one per IP.

Built on the ``limits`` library (the one Flask-Limiter wraps), called directly with a fixed
window, as Flask-Limiter's default was. Flask-Limiter's per-request work (resolving every limit
of the route, exemption checks, response headers for each limit) was a fifth of a
``POST /generate``; here a request costs one counter increment per budget.

Counters live in the process (``limits``' memory storage) unless :func:`share_between_processes`
was called before the server forked its workers, as ``backend.gunicorn_conf`` does: then every
worker counts in one table in shared memory (:class:`SharedCounters`), and a limit is the
server's, not each worker's.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import mmap
import os
import secrets
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, Storage
from limits.strategies import FixedWindowRateLimiter

from .errors import TooManyRequests

__all__ = ["RateLimiter", "SharedCounters", "share_between_processes"]

log = logging.getLogger(__name__)

# The shared table: 65,536 slots of 32 bytes (2 MiB). A key lives in one of PROBES slots from
# its hash; a slot whose window has ended is free again.
SHARED_SLOTS = 1 << 16
PROBES = 8
# How long a hit waits for the shared table before counting in its own process instead.
SHARED_LOCK_WAIT = 0.05


class _InlineExpiryMemoryStorage(MemoryStorage):
    """limits' in-process storage, without a new timer thread per request.

    ``MemoryStorage`` starts a ``threading.Timer`` on every hit whose only job is to drop old
    keys; under load that thread start was a fifth of a request's time. Counters expire lazily on
    read anyway, so here the clean-up runs inline, at most once a second. (Overrides a private
    method of limits, pinned in requirements.lock; tests/backend/test_ratelimit.py covers it.)
    """

    _last_expiry = 0.0

    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now - self._last_expiry >= 1.0:
            self._last_expiry = now
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


class SharedCounters(Storage):
    """Fixed-window counters in shared memory, for a process and those it forks afterwards.

    ``limits`` stores counters in the process, or in a service (Redis, Memcached, …); none is
    shared by the worker processes of one gunicorn server on its own. Here a table of slots lives
    in a memory file (``memfd``, never on disk) mapped shared, so forked workers inherit it. A
    slot holds a keyed BLAKE2b digest of its key (no wallet address or IP address), the end of
    its window and its count. Processes take turns on the table with a POSIX record lock on the
    memory file, which the kernel drops if its holder dies; threads of one process with a thread
    lock. When the slots of a key are all held by other live keys, the one whose window ends
    first gives way.
    """

    STORAGE_SCHEME = ["slt-shared"]
    SLOT = struct.Struct("=16sdq")  # key digest, end of window (epoch seconds), count

    def __init__(self, slots: int = SHARED_SLOTS) -> None:
        super().__init__()
        self.slots = slots
        size = slots * self.SLOT.size
        if hasattr(os, "memfd_create"):
            self._fd = os.memfd_create("slt-rate-limits", os.MFD_CLOEXEC)
        else:  # pragma: no cover (not Linux): an unlinked file, holding digests only
            self._fd = os.dup(tempfile.TemporaryFile().fileno())
        os.ftruncate(self._fd, size)
        self._table = mmap.mmap(self._fd, size)  # MAP_SHARED: seen by forked children
        self._salt = secrets.token_bytes(16)
        self._threads = threading.Lock()
        os.register_at_fork(after_in_child=self._new_thread_lock)

    def _new_thread_lock(self) -> None:
        self._threads = threading.Lock()

    @property
    def base_exceptions(self) -> type[Exception]:
        return OSError

    @contextmanager
    def _locked(self, wait: float = SHARED_LOCK_WAIT) -> Iterator[None]:
        if not self._threads.acquire(timeout=wait):
            raise TimeoutError("rate-limit table busy")
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except (BlockingIOError, PermissionError):
                    if time.monotonic() >= deadline:
                        raise TimeoutError("rate-limit table busy") from None
                    time.sleep(0.0002)
            try:
                yield
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _slot(self, key: str, now: float) -> tuple[int, bytes, float, int]:
        """The slot of ``key``: (offset, digest, end of window, count); count 0 if none is live."""
        digest = hashlib.blake2b(key.encode(), key=self._salt, digest_size=16).digest()
        start = int.from_bytes(digest[:8], "little") % self.slots
        free: int | None = None
        soonest: int | None = None
        soonest_end = math.inf
        for i in range(PROBES):
            offset = ((start + i) % self.slots) * self.SLOT.size
            held, end, count = self.SLOT.unpack_from(self._table, offset)
            if end <= now:
                if free is None:
                    free = offset
            elif held == digest:
                return offset, digest, end, count
            elif end < soonest_end:
                soonest, soonest_end = offset, end
        chosen = free if free is not None else soonest
        assert chosen is not None
        return chosen, digest, now, 0

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self._locked():
            offset, digest, end, count = self._slot(key, now)
            if count == 0:
                end = now + expiry
            count += amount
            self.SLOT.pack_into(self._table, offset, digest, end, count)
        return count

    def get(self, key: str) -> int:
        with self._locked():
            return self._slot(key, time.time())[3]

    def get_expiry(self, key: str) -> float:
        with self._locked():
            return self._slot(key, time.time())[2]

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._locked():
            self._table[:] = bytes(len(self._table))
        return None

    def clear(self, key: str) -> None:
        with self._locked():
            offset, _, _, count = self._slot(key, time.time())
            if count:
                self.SLOT.pack_into(self._table, offset, bytes(16), 0.0, 0)


_shared: FixedWindowRateLimiter | None = None


def share_between_processes(slots: int = SHARED_SLOTS) -> None:
    """Count every limiter of this process, and of the processes it forks from now on, in one
    shared table. Call it before forking: gunicorn's master does (``backend.gunicorn_conf``)."""
    global _shared
    if _shared is None:
        _shared = FixedWindowRateLimiter(SharedCounters(slots))


class RateLimiter:
    """Named limits (``{"create": "60/minute", ...}``), each drawn on per scope and per key."""

    def __init__(self, limits: dict[str, str], *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._items: dict[str, RateLimitItem] = {name: parse(text) for name, text in limits.items()}
        self._storage = _InlineExpiryMemoryStorage()
        self._own = FixedWindowRateLimiter(self._storage)

    def hit(self, limit: str, scope: str, *keys: str) -> None:
        """Count one request against ``limit`` for each key in ``scope``.

        Raises :class:`~backend.errors.TooManyRequests`, with ``Retry-After``, as soon as one
        key's budget is spent (the keys after it are not counted).
        """
        if not self.enabled:
            return
        item = self._items[limit]
        for key in keys:
            try:
                allowed, reset_at = self._hit(_shared or self._own, item, scope, key)
            except TimeoutError:  # a process stalled on the shared table: count here meanwhile
                log.warning("rate-limit table busy: counting in this process")
                allowed, reset_at = self._hit(self._own, item, scope, key)
            if not allowed:
                retry = max(1, math.ceil(reset_at - time.time()))
                raise TooManyRequests(
                    "Too many requests; slow down.",
                    headers={
                        "Retry-After": str(retry),
                        "X-RateLimit-Limit": str(item.amount),
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": str(math.ceil(reset_at)),
                    },
                )

    @staticmethod
    def _hit(
        window: FixedWindowRateLimiter, item: RateLimitItem, scope: str, key: str
    ) -> tuple[bool, float]:
        """Count one hit: (allowed, when the window ends; 0 when allowed)."""
        if window.hit(item, scope, key):
            return True, 0.0
        return False, window.get_window_stats(item, scope, key).reset_time

    def reset(self) -> None:
        """Forget every count (for tests and operators)."""
        self._storage.reset()
        if _shared is not None:
            _shared.storage.reset()
