"""The rate limiter alone: budgets per scope and key, the 429's headers, no thread per hit; the
table shared by forked processes (gunicorn's workers)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from backend import ratelimit
from backend.errors import TooManyRequests
from backend.ratelimit import PROBES, RateLimiter, SharedCounters


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


# The table shared by forked processes -----------------------------------------------------------


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> Iterator[SharedCounters]:
    """This process's limiters count in a shared table, as in a gunicorn master."""
    monkeypatch.setattr(ratelimit, "_shared", None)
    ratelimit.share_between_processes(slots=1024)
    assert ratelimit._shared is not None
    storage = ratelimit._shared.storage
    assert isinstance(storage, SharedCounters)
    yield storage


def _in_children(n: int, work: Callable[[], int]) -> list[int]:
    """Run ``work`` in ``n`` forked children at once; the number (0-255) each one returns."""
    read, write = os.pipe()
    pids = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            code = 255
            try:
                os.write(write, bytes([work()]))
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(write)
    assert all(os.waitpid(pid, 0)[1] == 0 for pid in pids)
    with os.fdopen(read, "rb") as answers:
        return list(answers.read())


def _allowed(limiter: RateLimiter, hits: int, key: str = "ip:127.0.0.9") -> int:
    ok = 0
    for _ in range(hits):
        try:
            limiter.hit("create", "create:ip", key)
            ok += 1
        except TooManyRequests:
            pass
    return ok


def test_forked_processes_draw_on_one_budget(shared: SharedCounters) -> None:
    limiter = _limiter(create="30/minute")  # made before the fork, as gunicorn's app may be
    allowed = _in_children(4, lambda: _allowed(limiter, 20))
    assert len(allowed) == 4 and sum(allowed) == 30, allowed  # not 4 × 20 nor 4 × 30
    assert _allowed(limiter, 1) == 0  # the parent sees the children's counts too
    assert _allowed(_limiter(create="30/minute"), 1) == 0  # and so does a limiter made later


def test_a_shared_window_ends_and_the_429_says_when(shared: SharedCounters) -> None:
    limiter = _limiter(create="3/second")
    assert _allowed(limiter, 5, "wallet:0xabc") == 3
    with pytest.raises(TooManyRequests) as refused:
        limiter.hit("create", "create:ip", "wallet:0xabc")
    assert 0 < int(refused.value.headers["X-RateLimit-Reset"]) - time.time() <= 2
    time.sleep(1.05)
    assert _allowed(limiter, 5, "wallet:0xabc") == 3  # a new window, a new budget
    limiter.reset()
    assert _allowed(limiter, 5, "wallet:0xabc") == 3


def test_the_shared_table_holds_keyed_digests_not_addresses(shared: SharedCounters) -> None:
    limiter = _limiter()
    limiter.hit("create", "create:w", "wallet:0x70997970c51812dc3a010c7d01b50e0d17dc79c8")
    limiter.hit("create", "create:ip", "ip:203.0.113.77")
    table = bytes(shared._table)
    assert table.count(b"\x00") < len(table)  # something was written
    for text in (b"70997970c51812dc3a010c7d01b50e0d17dc79c8", b"203.0.113.77", b"wallet", b"ip:"):
        assert text not in table


def test_a_key_whose_slots_are_all_taken_pushes_out_the_soonest_to_end() -> None:
    storage = SharedCounters(slots=PROBES)  # every key probes the same PROBES slots
    for i in range(PROBES):
        storage.incr(f"k{i}", expiry=60 + i)
    assert storage.incr("k0", 60) == 2  # still there, counted on
    assert storage.incr("newcomer", 60) == 1  # k0's window ends first: it gives way
    assert storage.get("newcomer") == 1 and storage.get("k0") == 0
    assert [storage.get(f"k{i}") for i in range(1, PROBES)] == [1] * (PROBES - 1)


def test_a_process_that_dies_holding_the_table_does_not_block_the_others(
    shared: SharedCounters,
) -> None:
    def die_holding_it() -> int:
        with shared._locked():
            os._exit(0)  # as if SIGKILLed mid-update: the kernel drops its record lock

    _in_children(1, die_holding_it)
    assert shared.incr("k", 60) == 1


def test_a_busy_table_makes_a_hit_count_in_its_own_process(
    shared: SharedCounters, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = _limiter(create="1/minute")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child: holds the table for a second)
        with shared._locked():
            os.write(write, b"x")
            time.sleep(1.0)
        os._exit(0)
    try:
        assert os.read(read, 1) == b"x"
        with caplog.at_level(logging.WARNING, logger="backend.ratelimit"):
            limiter.hit("create", "s", "k")  # not an error: counted here
            with pytest.raises(TooManyRequests):  # and still limited, by this process's count
                limiter.hit("create", "s", "k")
        assert "rate-limit table busy" in caplog.text
    finally:
        os.waitpid(pid, 0)
        os.close(read)
        os.close(write)
    assert shared.get("LIMITER/s/k/1/1/minute") == 0  # nothing was counted in the shared table
