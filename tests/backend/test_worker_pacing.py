"""The chain worker's threads pause after a burst of CPU work, between batches, so that a
block's events or a backlog of mints never takes a core from the API processes for long; and
longer while they had to wait for a CPU, so that minting yields to requests on busy cores."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from backend import worker as worker_module
from backend.store import SQLiteStore
from backend.worker import (
    CPU_BURST,
    LEASE,
    MAX_PAUSE_PER_CPU_SECOND,
    PAUSE_PER_CPU_SECOND,
    PAUSE_PER_WAIT_SECOND,
    Worker,
    _thread_times,
)


def _burn_cpu(seconds: float) -> None:
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass


def _since_mark(worker: Worker) -> tuple[float, float]:
    """This thread's CPU seconds and seconds waiting for a CPU since its pause mark."""
    (ran, waited), (ran_at, waited_at) = _thread_times(), worker._cpu_mark.at
    return ran - ran_at, waited - waited_at


def _in_thread(fn: Callable[[], float]) -> float:
    """Run ``fn`` in a thread of its own (its own CPU clock and pause mark); return its result."""
    out: list[float] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(timeout=30)
    return out[0]


def _worker(make_app: Callable[..., Flask], **settings: object) -> Worker:
    worker: Worker = make_app(**settings).extensions["slt"].worker
    return worker


def _worker_recording_pauses(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> tuple[Worker, list[float]]:
    """A worker without threads whose pauses are recorded (their lengths) instead of waited."""
    worker = _worker(make_app, start_workers=False)  # no thread of its own waits on the fake
    pauses: list[float] = []
    monkeypatch.setattr(worker._stop, "wait", lambda timeout=None: pauses.append(timeout))
    return worker, pauses


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
        worker._cpu_mark.at = _thread_times()  # as a round begins
        _burn_cpu(3 * CPU_BURST)
        ran, waited = _since_mark(worker)
        t0 = time.monotonic()
        worker._pace()
        due = min(ran * PAUSE_PER_CPU_SECOND + waited * PAUSE_PER_WAIT_SECOND,
                  ran * MAX_PAUSE_PER_CPU_SECOND)  # fmt: skip
        return (time.monotonic() - t0) / due

    assert 0.9 <= _in_thread(burst_then_pace) < 3  # the pause, relative to the one due

    def little_then_pace() -> float:
        worker._cpu_mark.at = _thread_times()
        _burn_cpu(CPU_BURST / 4)
        t0 = time.monotonic()
        worker._pace()
        return time.monotonic() - t0

    assert _in_thread(little_then_pace) < CPU_BURST  # under a burst: no pause

    def two_bursts() -> float:
        worker._cpu_mark.at = _thread_times()
        _burn_cpu(2 * CPU_BURST)
        worker._pace()  # a pause resets the mark: the next burst is counted from here
        _burn_cpu(CPU_BURST / 4)
        t0 = time.monotonic()
        worker._pace()
        return time.monotonic() - t0

    assert _in_thread(two_bursts) < CPU_BURST


def test_the_pause_grows_with_the_time_spent_waiting_for_a_cpu_up_to_a_bound(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, pauses = _worker_recording_pauses(make_app, monkeypatch)
    clock = {"ran": 0.0, "waited": 0.0}
    monkeypatch.setattr(worker_module, "_thread_times", lambda: (clock["ran"], clock["waited"]))

    def pace_after(ran: float, waited: float) -> float | None:
        worker._cpu_mark.at = (clock["ran"], clock["waited"])
        clock["ran"] += ran
        clock["waited"] += waited
        before = len(pauses)
        worker._pace()
        return pauses[-1] if len(pauses) > before else None

    assert pace_after(0.010, 0.0) == pytest.approx(0.010 * PAUSE_PER_CPU_SECOND)  # idle cores
    assert pace_after(0.010, 0.005) == pytest.approx(
        0.010 * PAUSE_PER_CPU_SECOND + 0.005 * PAUSE_PER_WAIT_SECOND
    )
    assert pace_after(0.010, 1.0) == pytest.approx(0.010 * MAX_PAUSE_PER_CPU_SECOND)  # bounded
    assert pace_after(CPU_BURST / 2, 1.0) is None  # under a burst, however long it waited


@pytest.mark.skipif(
    not Path("/proc/thread-self/schedstat").exists() or not hasattr(os, "sched_setaffinity"),
    reason="run-queue waits are read from Linux's schedstat",
)
def test_a_thread_sharing_its_cpu_with_busy_processes_pauses_longer(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, pauses = _worker_recording_pauses(make_app, monkeypatch)
    cpu = min(os.sched_getaffinity(0))
    # Two busy processes on one CPU, as busy API processes are; the thread joins them there.
    hog = f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(2)]

    def crowded_burst() -> float:
        os.sched_setaffinity(0, {cpu})  # this thread only
        time.sleep(0.2)  # the hogs are running
        worker._cpu_mark.at = _thread_times()
        _burn_cpu(10 * CPU_BURST)
        ran, waited = _since_mark(worker)
        worker._pace()
        assert waited > ran / 2, (ran, waited)  # a third of the CPU: it waited about twice
        return pauses[-1] / ran

    try:
        ratio = _in_thread(crowded_burst)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert ratio >= 2 * PAUSE_PER_CPU_SECOND  # an idle CPU's pause was PAUSE_PER_CPU_SECOND


def test_stopping_the_worker_cuts_a_pause_short(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _worker(make_app)
    monkeypatch.setattr(worker_module, "PAUSE_PER_CPU_SECOND", 1000.0)  # a pause of seconds

    def paused() -> float:
        worker._cpu_mark.at = _thread_times()
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
