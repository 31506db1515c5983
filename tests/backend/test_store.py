"""The SQLite store on its own: nested write transactions, batched reads, WAL checkpoints."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.store import LeaseLost, Payload, Secret, SQLiteStore, open_jobs

NOW = 1_700_000_000.0


def _new(payload_id: str) -> tuple[Payload, Secret]:
    payload = Payload(
        id=payload_id,
        owner="0x" + "ab" * 20,
        custody=False,
        secret_hash=None,
        kind="text",
        content_type="text/plain",
        size=300,
        reward_score=0.2,
        commitment=os.urandom(32),
        created_at=NOW,
        expires_at=NOW + 3600,
        end_time=int(NOW) + 3600,
        switchable=True,
        status="pending_mint",
        chain_token_id=None,
        mint_tx=None,
        burn_tx=None,
        burn_status=None,
        shredded_at=None,
        shred_reason=None,
    )
    return payload, Secret(payload_id, 1, os.urandom(60), os.urandom(340), os.urandom(48))


def _insert(store: SQLiteStore, payload_id: str) -> Payload:
    payload, secret = _new(payload_id)
    store.insert_payload(payload, secret, NOW)
    return payload


def _ids(store: SQLiteStore) -> set[str]:
    return {row[0] for row in store.db.execute("SELECT id FROM payloads")}


def _wal_frames(store: SQLiteStore) -> int:
    """Frames in the WAL now: where the next commit will append (0 once started over)."""
    # A checkpoint that cannot run (another one is running) still reports the WAL's length.
    return int(store.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "slt.sqlite3")
    yield s
    s.close()


def test_a_failed_nested_transaction_is_undone_and_the_outer_one_lands(
    store: SQLiteStore,
) -> None:
    with store.transaction():
        _insert(store, "token_a")
        with pytest.raises(RuntimeError, match="inner"), store.transaction():
            _insert(store, "token_b")
            raise RuntimeError("inner")
        _insert(store, "token_c")
    assert _ids(store) == {"token_a", "token_c"}
    assert store.get_secret("token_b") is None
    store.queue_new_mints(10)
    jobs = store.db.execute("SELECT payload_id FROM outbox ORDER BY payload_id").fetchall()
    assert [row[0] for row in jobs] == ["token_a", "token_c"]


def test_a_failed_outer_transaction_undoes_everything_in_it(store: SQLiteStore) -> None:
    with pytest.raises(RuntimeError, match="outer"), store.transaction():
        _insert(store, "token_a")  # itself a transaction: here a savepoint of the outer one
        raise RuntimeError("outer")
    assert _ids(store) == set()
    assert store.outbox_counts() == {}
    # The connection left no transaction open and the lock file is free: writes go on.
    assert not store.db.in_transaction
    _insert(store, "token_b")
    assert _ids(store) == {"token_b"}


def test_checkpoint_inside_a_transaction_is_refused(store: SQLiteStore) -> None:
    with store.transaction():
        _insert(store, "token_a")
        with pytest.raises(RuntimeError, match="after the commit"):
            store.checkpoint()
    store.checkpoint()
    assert _ids(store) == {"token_a"}


def test_get_payloads_reads_many_ids_at_once(store: SQLiteStore) -> None:
    ids = [f"token_{i:04d}" for i in range(700)]  # more than one query's worth of parameters
    with store.transaction():
        made = {i: _insert(store, i) for i in ids}
    found = store.get_payloads([*ids, "token_missing"])
    assert set(found) == set(ids)
    assert found == made


def test_fold_wal_lets_the_next_writer_start_the_wal_over(store: SQLiteStore) -> None:
    for i in range(60):
        _insert(store, f"token_{i}")
    frames_before = _wal_frames(store)
    assert frames_before > 300  # each insert appends several pages to the WAL

    # Below the threshold only a passive pass; the WAL is folded in but not started over
    # unless the pass caught up, which it does here (no other writer).
    frames, folded = store.fold_wal(restart_frames=100)
    assert frames == folded >= frames_before
    _insert(store, "token_next")
    assert _wal_frames(store) < 40  # the next commit wrote from the WAL's beginning


def test_fold_wal_keeps_the_wal_short_beside_a_busy_writer(tmp_path: Path) -> None:
    path = tmp_path / "slt.sqlite3"
    folder, writer_store = SQLiteStore(path), SQLiteStore(path)
    total = 1500
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(total):
                _insert(writer_store, f"token_{i:05d}")
                time.sleep(0.0002)  # a request's other work, between two of its commits
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    longest = 0
    while not done.is_set():
        frames, _ = folder.fold_wal(restart_frames=300)
        longest = max(longest, frames)
        time.sleep(0.005)
    writer.join()
    assert errors == []
    # Without folding, the WAL grows to SQLite's automatic checkpoint (10,000 pages here);
    # folded every few milliseconds and started over past 300 frames, it stays far below.
    assert longest < 2000, longest
    assert len(folder.get_payloads([f"token_{i:05d}" for i in range(total)])) == total
    assert folder.pragma("integrity_check") == "ok"
    folder.close()
    writer_store.close()


def test_shred_count_moves_with_every_shred_and_only_then(store: SQLiteStore) -> None:
    for i in range(5):
        _insert(store, f"token_{i}")
    assert store.shred_count() == 0
    assert store.shred("token_0", "deleted", NOW) is True
    assert store.shred("token_0", "deleted", NOW) is False  # already shredded: no change
    assert store.shred_count() == 1
    # The sweeper's set-wise shred counts each payload it shreds.
    with store.transaction() as db:
        db.execute("UPDATE payloads SET expires_at = ? WHERE id IN ('token_1', 'token_2')", (NOW,))
    assert store.sweep_expired(NOW + 1, limit=100) == 2
    assert store.shred_count() == 3
    _insert(store, "token_new")  # a create is not a shred
    assert store.shred_count() == 3
    # Another connection (another process, in production) sees the same count.
    other = SQLiteStore(store.path)
    assert other.shred_count() == 3
    other.close()


def test_due_jobs_come_longest_due_first_without_sorting_the_backlog(store: SQLiteStore) -> None:
    for i in range(5):
        _insert(store, f"p{i}")
    store.queue_new_mints(100)  # mint jobs due at NOW, in id order
    first = store.due_jobs("mint", NOW, 10)
    assert [j.payload_id for j in first] == [f"p{i}" for i in range(5)]
    # A retried job is due later: jobs due before it come first, and one not yet due stays out.
    store.retry_jobs([first[0].id], "try again", NOW + 5)
    assert [j.payload_id for j in store.due_jobs("mint", NOW + 5, 10)] == [
        "p1", "p2", "p3", "p4", "p0"
    ]  # fmt: skip
    assert [j.payload_id for j in store.due_jobs("mint", NOW, 2)] == ["p1", "p2"]
    # The query walks the due index in order and stops at the limit: no sort of every due job.
    seen: list[str] = []
    store.db.set_trace_callback(seen.append)  # the statement, its parameters filled in
    store.due_jobs("mint", NOW, 2)
    store.db.set_trace_callback(None)
    (query,) = [q for q in seen if "FROM outbox" in q]
    plan = store.db.execute(f"EXPLAIN QUERY PLAN {query}").fetchall()
    assert any("outbox_due" in row[3] for row in plan)
    assert not any("TEMP B-TREE" in row[3] for row in plan)


def _mint_jobs(store: SQLiteStore) -> list[str]:
    rows = store.db.execute("SELECT payload_id FROM outbox WHERE kind = 'mint' ORDER BY id")
    return [r[0] for r in rows]


def test_new_payloads_mint_jobs_are_queued_once_in_order_a_batch_at_a_time(
    store: SQLiteStore,
) -> None:
    for i in range(5):
        _insert(store, f"p{i}")
    assert _mint_jobs(store) == []  # the request's commit writes no job
    assert store.outbox_counts() == {"mint:pending": 5} and open_jobs(store.db) == 5
    assert store.queue_new_mints(3) == 3
    assert _mint_jobs(store) == ["p0", "p1", "p2"]
    assert store.queue_new_mints(3) == 2 and store.queue_new_mints(3) == 0
    assert _mint_jobs(store) == [f"p{i}" for i in range(5)]
    assert store.outbox_counts() == {"mint:pending": 5} and open_jobs(store.db) == 5
    _insert(store, "p5")
    assert store.queue_new_mints(10) == 1 and _mint_jobs(store)[-1] == "p5"


def test_a_payload_shredded_before_its_mint_is_queued_never_gets_one(store: SQLiteStore) -> None:
    _insert(store, "deleted")
    _insert(store, "expired")
    late = _insert(store, "expired_too")
    assert store.shred("deleted", "deleted", NOW + 1)
    assert store.sweep_expired(late.expires_at or 0.0, 10) == 2
    for pid in ("deleted", "expired", "expired_too"):
        assert store.get_payload(pid).burn_status == "not_minted"  # type: ignore[union-attr]
    assert store.queue_new_mints(10) == 0
    assert _mint_jobs(store) == [] and open_jobs(store.db) == 0
    assert store.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0  # no burn either


def test_a_store_from_before_the_mint_cursor_queues_no_job_twice(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = SQLiteStore(path)
    for i in range(3):
        _insert(old, f"old{i}")
    old.queue_new_mints(10)  # as the old insert did: every payload with its job
    old.db.execute("DELETE FROM kv WHERE key = 'mint_cursor'")  # ... and no cursor
    old.close()
    store = SQLiteStore(path)
    assert store.get_kv("mint_cursor") == str(
        store.db.execute("SELECT rowid FROM payloads WHERE id = 'old2'").fetchone()[0]
    )
    assert store.queue_new_mints(10) == 0
    _insert(store, "new")
    assert store.queue_new_mints(10) == 1
    assert _mint_jobs(store) == ["old0", "old1", "old2", "new"]
    store.close()


def test_a_sweep_with_nothing_expired_does_not_take_the_writer_lock(store: SQLiteStore) -> None:
    _insert(store, "token_live")
    _insert(store, "token_old")
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    try:
        assert store.sweep_expired(NOW + 60, limit=100) == 0  # nothing over: a read, no write
        assert not any(s.startswith("BEGIN") for s in statements), statements
        assert store.sweep_expired(NOW + 3600, limit=100) == 2  # both over: swept
        assert statements.count("BEGIN IMMEDIATE") == 1
    finally:
        store.db.set_trace_callback(None)
    assert store.get_secret("token_live") is None and store.get_secret("token_old") is None


def test_a_lease_is_written_only_to_take_or_renew_it(store: SQLiteStore) -> None:
    def stored() -> str:
        return str(store.get_kv("lease:chain-worker"))

    def writes() -> int:  # rows changed by this connection so far
        return int(store.db.total_changes)

    assert store.acquire_lease("chain-worker", "a", NOW, ttl=10)
    assert stored() == f"a@{NOW + 10}"
    before = writes()
    assert store.acquire_lease("chain-worker", "a", NOW + 4, ttl=10)  # 6 s left: held, as is
    assert not store.acquire_lease("chain-worker", "b", NOW + 4, ttl=10)  # a's: refused, as is
    assert writes() == before and stored() == f"a@{NOW + 10}"
    assert store.acquire_lease("chain-worker", "a", NOW + 6, ttl=10)  # 4 s left: renewed
    assert writes() == before + 1 and stored() == f"a@{NOW + 16}"
    assert not store.acquire_lease("chain-worker", "b", NOW + 15, ttl=10)
    assert store.acquire_lease("chain-worker", "b", NOW + 16, ttl=10)  # a's ran out: b's now
    assert stored() == f"b@{NOW + 26}"
    assert not store.acquire_lease("chain-worker", "a", NOW + 17, ttl=10)


def test_a_transaction_is_recorded_only_while_its_lease_is_held(store: SQLiteStore) -> None:
    _insert(store, "p0")
    store.queue_new_mints(10)
    [job] = store.due_jobs("mint", NOW, 10)
    a, b = ("chain-worker", "a"), ("chain-worker", "b")
    assert store.acquire_lease("chain-worker", "a", NOW, ttl=10)
    store.record_sent([job.id], "mint", "0x01", b"raw 1", 7, NOW + 5, lease=a)
    assert not store.acquire_lease("chain-worker", "b", NOW + 9, ttl=10)  # a holds it still
    assert store.acquire_lease("chain-worker", "b", NOW + 11, ttl=10)  # a stalled past it
    with pytest.raises(LeaseLost):  # a, back from its stall
        store.record_sent([job.id], "mint", "0x02", b"raw 2", 8, NOW + 12, lease=a)
    with pytest.raises(LeaseLost):  # b, past its own lease with no one renewing it
        store.record_sent([job.id], "mint", "0x03", b"raw 3", 8, NOW + 22, lease=b)
    store.record_sent([job.id], "mint", "0x04", b"raw 4", 8, NOW + 15, lease=b)
    assert [tuple(r) for r in store.db.execute("SELECT tx_hash FROM transactions ORDER BY 1")] == [
        ("0x01",), ("0x04",)
    ]  # fmt: skip
    row = store.db.execute("SELECT tx_hash FROM outbox WHERE id = ?", (job.id,)).fetchone()
    assert row[0] == "0x04"


def test_a_store_from_before_replacements_gets_the_column_once(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = SQLiteStore(path)
    old.db.execute("ALTER TABLE transactions DROP COLUMN replaces")  # as the old schema made it
    old.db.execute(
        "INSERT INTO transactions (tx_hash, kind, raw, nonce, sent_at)"
        " VALUES ('0x1', 'mint', x'00', 0, 1)"
    )
    old.close()
    stores = [SQLiteStore(path) for _ in range(2)]  # the second finds it there already
    rows = stores[1].db.execute("SELECT tx_hash, state, replaces FROM transactions").fetchall()
    assert [tuple(r) for r in rows] == [("0x1", "sent", None)]
    for store in stores:
        store.close()
