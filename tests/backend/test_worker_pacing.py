"""The chain worker's threads pause after a burst of CPU work, between batches, so that a
block's events or a backlog of mints never takes a core from the API processes for long."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from flask import Flask

from backend import worker as worker_module
from backend.store import SQLiteStore
from backend.worker import CPU_BURST, LEASE, PAUSE_PER_CPU_SECOND, Worker


def _burn_cpu(seconds: float) -> None:
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass


def _in_thread(fn: Callable[[], float]) -> float:
    """Run ``fn`` in a thread of its own (its own CPU clock and pause mark); return its result."""
    out: list[float] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(timeout=30)
    return out[0]


def _worker(make_app: Callable[..., Flask]) -> Worker:
    worker: Worker = make_app().extensions["slt"].worker
    return worker


def _worker_with_payloads(make_app: Callable[..., Flask], n: int) -> Worker:
    """A worker without threads (rounds run by the test), mint batches of 10, and ``n`` new
    payloads; its follower already past the events of other tests' tokens on this chain."""
    app = make_app(start_workers=False, mint_batch_max=10)
    worker: Worker = app.extensions["slt"].worker
    worker.follow()
    client = app.test_client()
    for i in range(n):
        assert client.post("/generate", json={"prompt": f"pace {i}"}).status_code == 201
    return worker


def test_a_thread_pauses_in_proportion_to_the_cpu_it_has_just_used(
    make_app: Callable[..., Flask],
) -> None:
    worker = _worker(make_app)

    def burst_then_pace() -> float:
        worker._cpu_mark.at = time.thread_time()  # as a round begins
        _burn_cpu(3 * CPU_BURST)
        used = time.thread_time() - worker._cpu_mark.at
        t0 = time.monotonic()
        worker._pace()
        return (time.monotonic() - t0) / (used * PAUSE_PER_CPU_SECOND)

    assert 0.9 <= _in_thread(burst_then_pace) < 3  # the pause, relative to the CPU used

    def little_then_pace() -> float:
        worker._cpu_mark.at = time.thread_time()
        _burn_cpu(CPU_BURST / 4)
        t0 = time.monotonic()
        worker._pace()
        return time.monotonic() - t0

    assert _in_thread(little_then_pace) < CPU_BURST  # under a burst: no pause

    def two_bursts() -> float:
        worker._cpu_mark.at = time.thread_time()
        _burn_cpu(2 * CPU_BURST)
        worker._pace()  # a pause resets the mark: the next burst is counted from here
        _burn_cpu(CPU_BURST / 4)
        t0 = time.monotonic()
        worker._pace()
        return time.monotonic() - t0

    assert _in_thread(two_bursts) < CPU_BURST


def test_stopping_the_worker_cuts_a_pause_short(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _worker(make_app)
    monkeypatch.setattr(worker_module, "PAUSE_PER_CPU_SECOND", 1000.0)  # a pause of seconds

    def paused() -> float:
        worker._cpu_mark.at = time.thread_time()
        _burn_cpu(2 * CPU_BURST)
        t0 = time.monotonic()
        worker._pace()
        return time.monotonic() - t0

    timer = threading.Timer(0.2, worker.stop)
    timer.start()
    assert _in_thread(paused) < 2.0
    timer.join()


def test_the_outbox_and_the_follower_pause_between_batches_never_holding_the_writer_lock(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _worker_with_payloads(make_app, 25)  # three mint batches: 10, 10 and 5
    store = worker.store
    monkeypatch.setattr(worker_module, "EVENTS_PER_TRANSACTION", 10)
    other = SQLiteStore(store.path)  # another writer, as an API process is
    pauses: list[tuple[int, int]] = []

    def pace() -> None:
        # Another writer commits at once: the pause is between transactions, not inside one.
        probe = threading.Thread(target=other.set_kv, args=("probe", str(len(pauses))))
        probe.start()
        probe.join(timeout=5)
        assert not probe.is_alive(), "a pause held the writer lock"
        sent = store.db.execute("SELECT COUNT(*) FROM transactions").fetchone()[0]
        minted = store.db.execute(
            "SELECT COUNT(*) FROM payloads WHERE chain_token_id IS NOT NULL"
        ).fetchone()[0]
        pauses.append((sent, minted))

    monkeypatch.setattr(worker, "_pace", pace)
    try:
        worker.process_outbox()  # Anvil mines each transaction as it comes
        assert pauses == [(1, 0), (2, 0)]  # after each full batch, none after the last
        worker.follow()  # 50 events (a Transfer and a CommitmentPublished a token), 10 a chunk
        assert [p[1] for p in pauses[2:]] == [5, 10, 15, 20, 25]
    finally:
        other.close()


def test_a_round_whose_lease_passed_to_another_during_a_pause_is_given_up(
    make_app: Callable[..., Flask],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = _worker_with_payloads(make_app, 20)
    store = worker.store
    worker.process_outbox()  # two batches sent (and mined), their events not yet applied
    cursor = store.get_kv("follower_block")
    monkeypatch.setattr(worker_module, "EVENTS_PER_TRANSACTION", 10)
    monkeypatch.setattr(worker_module, "CPU_BURST", 0.0)  # every unit of work ends in a pause

    def another_holder_takes_over(timeout: float | None = None) -> bool:
        with store.transaction() as db:  # as if this process had stalled past its lease
            db.execute(
                "INSERT OR REPLACE INTO kv VALUES (?, ?)",
                (f"lease:{LEASE}", f"other-1@{time.time() + 3600}"),
            )
        return False

    monkeypatch.setattr(worker._stop, "wait", another_holder_takes_over)
    assert worker.follow() == 0
    assert "follower round given up" in caplog.text
    # The chunk before the pause landed; the cursor stays, so the new holder reads them all.
    minted = store.db.execute(
        "SELECT COUNT(*) FROM payloads WHERE chain_token_id IS NOT NULL"
    ).fetchone()[0]
    assert minted == 5
    assert store.get_kv("follower_block") == cursor
