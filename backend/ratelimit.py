"""Rate limits: per scope, one budget per wallet (or per IP when anonymous) and one per IP.

Built on the ``limits`` library (the one Flask-Limiter wraps), called directly with a fixed
window, as Flask-Limiter's default was. Flask-Limiter's per-request work (resolving every limit
of the route, exemption checks, response headers for each limit) was a fifth of a
``POST /generate``; here a request costs one counter increment per budget.

Counters live in the process (``limits``' memory storage): under gunicorn with N workers a
client gets up to N times each limit (see docs/HARDENING.md).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from .errors import TooManyRequests

__all__ = ["RateLimiter"]


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


class RateLimiter:
    """Named limits (``{"create": "60/minute", ...}``), each drawn on per scope and per key."""

    def __init__(self, limits: dict[str, str], *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._items: dict[str, RateLimitItem] = {name: parse(text) for name, text in limits.items()}
        self._storage = _InlineExpiryMemoryStorage()
        self._window = FixedWindowRateLimiter(self._storage)

    def hit(self, limit: str, scope: str, *keys: str) -> None:
        """Count one request against ``limit`` for each key in ``scope``.

        Raises :class:`~backend.errors.TooManyRequests`, with ``Retry-After``, as soon as one
        key's budget is spent (the keys after it are not counted).
        """
        if not self.enabled:
            return
        item = self._items[limit]
        for key in keys:
            if not self._window.hit(item, scope, key):
                reset_at = self._window.get_window_stats(item, scope, key).reset_time
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

    def reset(self) -> None:
        """Forget every count (for tests and operators)."""
        self._storage.reset()
