"""The rate limiter alone: budgets per scope and key, the 429's headers, no thread per hit."""

from __future__ import annotations

import threading
import time

import pytest

from backend.errors import TooManyRequests
from backend.ratelimit import RateLimiter


def _limiter(**limits: str) -> RateLimiter:
    return RateLimiter(limits or {"create": "3/minute", "read": "5/minute"})


def test_the_budget_is_spent_after_its_amount_and_the_429_says_when_to_come_back() -> None:
    limiter = _limiter()
    for _ in range(3):
        limiter.hit("create", "create:w", "wallet:0xabc")
    with pytest.raises(TooManyRequests) as refused:
        limiter.hit("create", "create:w", "wallet:0xabc")
    err = refused.value
    assert err.status_code == 429 and err.code == "rate_limited"
    retry = int(err.headers["Retry-After"])
    assert 1 <= retry <= 60
    assert err.headers["X-RateLimit-Limit"] == "3"
    assert err.headers["X-RateLimit-Remaining"] == "0"
    assert 0 <= int(err.headers["X-RateLimit-Reset"]) - time.time() <= 61


def test_keys_scopes_and_limits_have_budgets_of_their_own() -> None:
    limiter = _limiter()
    for _ in range(3):
        limiter.hit("create", "create:w", "wallet:0xabc")
    # The same key in another scope, another key in the same scope, and another limit: all free.
    limiter.hit("create", "sign-in:w", "wallet:0xabc")
    limiter.hit("create", "create:w", "wallet:0xdef")
    for _ in range(5):
        limiter.hit("read", "create:w", "wallet:0xabc")
    with pytest.raises(TooManyRequests):
        limiter.hit("read", "create:w", "wallet:0xabc")


def test_several_keys_are_counted_until_the_first_one_spent() -> None:
    limiter = _limiter(create="2/minute")
    limiter.hit("create", "s", "ip:1", "ip:2")
    limiter.hit("create", "s", "ip:1")
    with pytest.raises(TooManyRequests):
        limiter.hit("create", "s", "ip:1", "ip:2")  # ip:1 spent: ip:2 is not counted
    limiter.hit("create", "s", "ip:2")
    with pytest.raises(TooManyRequests):
        limiter.hit("create", "s", "ip:2")


def test_a_disabled_limiter_counts_nothing() -> None:
    limiter = RateLimiter({"create": "1/minute"}, enabled=False)
    for _ in range(10):
        limiter.hit("create", "s", "k")


def test_reset_forgets_every_count() -> None:
    limiter = _limiter(create="1/minute")
    limiter.hit("create", "s", "k")
    limiter.reset()
    limiter.hit("create", "s", "k")


def test_an_unknown_limit_name_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        _limiter().hit("delete", "s", "k")


def test_hits_start_no_thread_and_expired_counters_are_dropped() -> None:
    # limits' MemoryStorage starts a timer thread per hit; ours expires counters inline.
    limiter = _limiter(create="1000/second")
    before = threading.active_count()
    for i in range(200):
        limiter.hit("create", "s", f"k{i}")
        assert threading.active_count() == before
    storage = limiter._storage
    assert len(storage.storage) == 200
    time.sleep(1.1)  # every window over, and the clean-up due again
    limiter.hit("create", "s", "fresh")
    assert len(storage.storage) == 1  # only the fresh key's counter is left
