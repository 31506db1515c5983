"""Persistence: the only module with SQL. SQLite is the embedded default engine.

Tables:
- ``payloads``  what may be shown about a payload: status, lifetime, chain fields. No plaintext.
- ``secrets``   the wrapped data key and the ciphertext: deleting this row is the crypto-shred.
- ``outbox``    durable chain jobs (mint, burn, persist), retried with backoff.
- ``auth_nonces``, ``sessions``, ``kv`` (follower and mint cursors, worker lease).

The database runs in WAL mode with ``secure_delete``, so freed pages are zeroed; after a shred
the worker checkpoints and truncates the WAL so no old page image of a secret stays in a file.
Every write is one transaction (``BEGIN IMMEDIATE`` … ``COMMIT``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

try:
    import fcntl
except ImportError:  # pragma: no cover (not POSIX: SQLite's own busy waiting alone)
    fcntl = None  # type: ignore[assignment]

# Checkpoints run in the background (``SQLiteStore.fold_wal``, called by a checkpointer thread
# in every process every ``SLT_CHECKPOINT_INTERVAL``), so no request's commit pays for one. A
# WAL holding this many frames (32 MiB) is folded in completely, with writers queued for the
# last few frames (and two fsyncs: a few milliseconds), so that the next writer starts it over
# from its beginning instead of growing it. Under a paced load the WAL mostly starts over by
# itself, in the gaps between commits.
WAL_RESTART_FRAMES = 8_000
# The bound on the WAL for a store with no checkpointer running: a committing connection then
# folds the WAL in itself once it holds this many pages. It must stay above the restart
# threshold, with room for what commits add between two checkpointer rounds.
WAL_AUTOCHECKPOINT_PAGES = 20_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS payloads (
    id             TEXT PRIMARY KEY,
    owner          TEXT NOT NULL,
    custody        INTEGER NOT NULL DEFAULT 0,
    secret_hash    BLOB,
    kind           TEXT NOT NULL,
    content_type   TEXT NOT NULL,
    size           INTEGER NOT NULL,
    reward_score   REAL NOT NULL,
    commitment     BLOB NOT NULL UNIQUE,
    created_at     REAL NOT NULL,
    expires_at     REAL,
    end_time       INTEGER NOT NULL,
    switchable     INTEGER NOT NULL,
    status         TEXT NOT NULL,
    chain_token_id INTEGER,
    mint_tx        TEXT,
    burn_tx        TEXT,
    burn_status    TEXT,
    shredded_at    REAL,
    shred_reason   TEXT
);
-- Partial: a new payload has no token id yet, and its insert stays out of this index.
CREATE UNIQUE INDEX IF NOT EXISTS payloads_chain_token ON payloads (chain_token_id)
    WHERE chain_token_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS payloads_owner ON payloads (owner);
CREATE INDEX IF NOT EXISTS payloads_live_expiry ON payloads (expires_at)
    WHERE shredded_at IS NULL AND expires_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS secrets (
    payload_id  TEXT PRIMARY KEY REFERENCES payloads (id),
    key_version INTEGER NOT NULL,
    wrapped_key BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    emotion_ct  BLOB
);

CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY,  -- rows are never deleted: ids never come back
    kind            TEXT NOT NULL,
    payload_id      TEXT NOT NULL REFERENCES payloads (id),
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    tx_hash         TEXT,
    last_error      TEXT,
    created_at      REAL NOT NULL,
    UNIQUE (kind, payload_id)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, kind, next_attempt_at);

CREATE TABLE IF NOT EXISTS transactions (
    tx_hash  TEXT PRIMARY KEY,
    kind     TEXT NOT NULL,
    raw      BLOB NOT NULL,
    nonce    INTEGER NOT NULL,
    sent_at  REAL NOT NULL,
    state    TEXT NOT NULL DEFAULT 'sent',
    replaces TEXT  -- the transaction of the same nonce it replaced, fees raised (or NULL)
);

CREATE TABLE IF NOT EXISTS auth_nonces (
    nonce      TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS sessions (
    token_hash BLOB PRIMARY KEY,
    address    TEXT NOT NULL,
    chain_id   INTEGER NOT NULL,
    expires_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# The mint cursor (kv ``mint_cursor``): the last payload, by row id, whose mint job is in the
# outbox (SQLiteStore.queue_new_mints). A store from before the cursor had a job for every
# payload from its insert on, so it starts at the last of those; a new store at 0.
START_MINT_CURSOR_SQL = (
    "INSERT OR IGNORE INTO kv (key, value) SELECT 'mint_cursor', COALESCE(MAX(p.rowid), 0)"
    " FROM payloads AS p JOIN outbox AS o ON o.kind = 'mint' AND o.payload_id = p.id"
)
# New payloads whose mint job the chain worker has not queued yet; with the outbox's pending
# and sent jobs, the chain jobs still to do. Any connection can run them (see open_jobs).
NEW_MINTS_SQL = (
    "SELECT COUNT(*) FROM payloads WHERE status = 'pending_mint' AND rowid >"
    " (SELECT CAST(value AS INTEGER) FROM kv WHERE key = 'mint_cursor')"
)
OPEN_JOBS_SQL = (
    f"SELECT (SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sent')) + ({NEW_MINTS_SQL})"
)

# Whether any payload's lifetime is over, through the partial index payloads_live_expiry.
ANY_EXPIRED_SQL = (
    "SELECT 1 FROM payloads"
    " WHERE shredded_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ? LIMIT 1"
)

LIVE = ("pending_mint", "minted", "persistent")


@dataclass(frozen=True)
class Payload:
    """What the store knows about a payload, secrets excluded."""

    id: str
    owner: str
    custody: bool
    secret_hash: bytes | None
    kind: str
    content_type: str
    size: int
    reward_score: float
    commitment: bytes
    created_at: float
    expires_at: float | None
    end_time: int
    switchable: bool
    status: str
    chain_token_id: int | None
    mint_tx: str | None
    burn_tx: str | None
    burn_status: str | None
    shredded_at: float | None
    shred_reason: str | None

    @property
    def shredded(self) -> bool:
        return self.shredded_at is not None


@dataclass(frozen=True)
class Secret:
    payload_id: str
    key_version: int
    wrapped_key: bytes
    ciphertext: bytes
    emotion_ct: bytes | None


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    payload_id: str
    state: str
    attempts: int
    tx_hash: str | None
    last_error: str | None = None


@dataclass(frozen=True)
class Session:
    address: str
    chain_id: int
    expires_at: float


class Store(Protocol):
    """What the rest of the backend needs from a store; other engines implement this."""

    def insert_payload(self, payload: Payload, secret: Secret, now: float) -> None: ...
    def get_payload(self, payload_id: str) -> Payload | None: ...
    def get_by_chain_id(self, token_id: int) -> Payload | None: ...
    def get_secret(self, payload_id: str) -> Secret | None: ...
    def list_for_owner(self, owner: str) -> list[Payload]: ...
    def shred(self, payload_id: str, reason: str, now: float) -> bool: ...
    def sweep_expired(self, now: float, limit: int) -> int: ...


def _payload(row: sqlite3.Row) -> Payload:
    d = dict(row)
    d["custody"] = bool(d["custody"])
    d["switchable"] = bool(d["switchable"])
    return Payload(**d)


class SQLiteStore:
    """The embedded store: one SQLite file, one connection per thread."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        # Writers queue on a lock file before BEGIN IMMEDIATE: a blocked writer wakes as soon as
        # the lock is free, where SQLite's busy handler sleeps 1, 2, 5, 10 … ms between tries.
        self.lock_path = self.path.with_name(self.path.name + "-writer.lock")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock_fds: list[int] = []
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db.executescript(SCHEMA)
        if _missing_columns(self.db):  # a store made before them: added once, writers queued
            with self.transaction() as db:
                for table, column, sql_type in _missing_columns(db):
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
        if self.get_kv("mint_cursor") is None:  # once per store: it scans the mint jobs
            with self.transaction() as db:
                db.execute(START_MINT_CURSOR_SQL)

    # Connections -----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA secure_delete=ON")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=10000")
        db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        # One lock file descriptor per connection: flock() locks belong to an open file, so
        # threads of one process exclude each other as processes do. Never the database file
        # itself: closing any descriptor of it would drop SQLite's own POSIX locks.
        fd = None
        if fcntl is not None:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        with self._lock:
            self._all.append(db)
            if fd is not None:
                self._lock_fds.append(fd)
        self._local.lock_fd = fd
        return db

    @property
    def db(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "db", None)
        if conn is None:
            conn = self._local.db = self._connect()
        return conn

    @contextmanager
    def _writers_queued(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, holding the lock file: other writers queue behind it."""
        db = self.db
        fd: int | None = self._local.lock_fd
        if fd is not None:  # only a queue: SQLite's locking still guards every write
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield db
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: all of it lands, or none of it.

        One opened inside another (on the same thread) is a savepoint of the outer one: if it
        fails, its own changes are undone, and the outer transaction's commit lands the rest.
        """
        local = self._local
        if getattr(local, "in_transaction", False):
            db = self.db
            db.execute("SAVEPOINT nested")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK TO nested")
                db.execute("RELEASE nested")
                raise
            db.execute("RELEASE nested")
            return
        with self._writers_queued() as db:
            db.execute("BEGIN IMMEDIATE")
            local.in_transaction = True
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            finally:
                local.in_transaction = False

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
            for fd in self._lock_fds:
                os.close(fd)
            self._lock_fds.clear()
        self._local = threading.local()

    def checkpoint(self) -> None:
        """Fold the WAL into the database file and truncate it to zero bytes."""
        if getattr(self._local, "in_transaction", False):
            raise RuntimeError("checkpoint() inside a transaction: call it after the commit")
        # A TRUNCATE checkpoint keeps writers out while it runs: they queue on the lock file
        # meanwhile, and start the moment it is done rather than after a busy-handler sleep.
        with self._writers_queued() as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def fold_wal(self, restart_frames: int = WAL_RESTART_FRAMES) -> tuple[int, int]:
        """Copy the WAL's frames into the database file, beside the writers.

        A PASSIVE checkpoint never waits and never makes a writer wait. But the WAL is only
        started over by a writer that begins once all of it is folded in, and under a steady
        stream of commits the next writer has always begun already. So once the WAL holds
        ``restart_frames`` frames, a second pass runs with the writers queued (it folds only the
        frames of the commits made meanwhile): the writer after it starts the WAL from its
        beginning. Returns (frames in the WAL, frames folded in).
        """
        _, frames, folded = self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames >= restart_frames:
            with self._writers_queued() as db:
                _, frames, folded = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(frames), int(folded)

    def pragma(self, name: str) -> Any:
        return self.db.execute(f"PRAGMA {name}").fetchone()[0]

    # Payloads --------------------------------------------------------------------------------

    def insert_payload(self, payload: Payload, secret: Secret, now: float) -> None:
        """Store a new payload and its secret in one transaction.

        Its mint job is not written here but by the chain worker (:meth:`queue_new_mints`), a
        batch at a time: the job's row and its two indexes were a quarter of a new payload's
        commit, paid by the request.
        """
        p = payload
        with self.transaction() as db:
            db.execute(
                "INSERT INTO payloads (id, owner, custody, secret_hash, kind, content_type, size,"
                " reward_score, commitment, created_at, expires_at, end_time, switchable, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    p.id, p.owner, int(p.custody), p.secret_hash, p.kind, p.content_type, p.size,
                    p.reward_score, p.commitment, p.created_at, p.expires_at, p.end_time,
                    int(p.switchable), p.status,
                ),
            )  # fmt: skip
            db.execute(
                "INSERT INTO secrets (payload_id, key_version, wrapped_key, ciphertext, emotion_ct)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    p.id,
                    secret.key_version,
                    secret.wrapped_key,
                    secret.ciphertext,
                    secret.emotion_ct,
                ),
            )

    def get_payload(self, payload_id: str) -> Payload | None:
        row = self.db.execute("SELECT * FROM payloads WHERE id = ?", (payload_id,)).fetchone()
        return _payload(row) if row else None

    def get_payloads(self, payload_ids: Sequence[str]) -> dict[str, Payload]:
        """The payloads of ``payload_ids`` that exist, by id, in one query."""
        found: dict[str, Payload] = {}
        for start in range(0, len(payload_ids), 500):  # SQLite's bound on ? parameters
            chunk = payload_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT * FROM payloads WHERE id IN ({marks})", chunk)
            found.update((row["id"], _payload(row)) for row in rows)
        return found

    def get_by_chain_id(self, token_id: int) -> Payload | None:
        row = self.db.execute(
            "SELECT * FROM payloads WHERE chain_token_id = ?", (token_id,)
        ).fetchone()
        return _payload(row) if row else None

    def get_by_commitment(self, commitment: bytes) -> Payload | None:
        row = self.db.execute(
            "SELECT * FROM payloads WHERE commitment = ?", (commitment,)
        ).fetchone()
        return _payload(row) if row else None

    def get_secret(self, payload_id: str) -> Secret | None:
        row = self.db.execute(
            "SELECT * FROM secrets WHERE payload_id = ?", (payload_id,)
        ).fetchone()
        return Secret(**dict(row)) if row else None

    def list_for_owner(self, owner: str) -> list[Payload]:
        rows = self.db.execute(
            "SELECT * FROM payloads WHERE owner = ? AND custody = 0 ORDER BY created_at DESC",
            (owner.lower(),),
        ).fetchall()
        return [_payload(r) for r in rows]

    def count_payloads(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, COUNT(*) FROM payloads GROUP BY status")
        return {r[0]: r[1] for r in rows}

    def shred_count(self) -> int:
        """Shreds ever made in this store, by any process: a change means one happened."""
        row = self.db.execute("SELECT value FROM kv WHERE key = 'shreds'").fetchone()
        return int(row[0]) if row else 0

    # Shredding -------------------------------------------------------------------------------

    def shred(self, payload_id: str, reason: str, now: float) -> bool:
        """Destroy the data key and the ciphertext, and queue the burn, in one transaction.

        Returns False when the payload was already shredded (or never existed).
        """
        with self.transaction() as db:
            return _shred(db, payload_id, reason, now)

    def sweep_expired(self, now: float, limit: int) -> int:
        """Shred up to ``limit`` payloads whose lifetime is over; returns how many.

        The same shred as :meth:`shred` for each (key and ciphertext deleted, an unsent mint
        cancelled, else a burn queued for a minted token), set-wise: one statement of each kind
        for the whole batch, in one transaction. With nothing expired, a read says so: the
        sweeper's rounds (one a second) take the writer lock only when there is work.
        """
        if self.db.execute(ANY_EXPIRED_SQL, (now,)).fetchone() is None:
            return 0
        with self.transaction() as db:
            rows = db.execute(
                "SELECT p.id, p.chain_token_id, o.state FROM payloads AS p"
                " LEFT JOIN outbox AS o ON o.kind = 'mint' AND o.payload_id = p.id"
                " WHERE p.shredded_at IS NULL AND p.expires_at IS NOT NULL AND p.expires_at <= ?"
                " LIMIT ?",
                (now, limit),
            ).fetchall()
            # Never sent: cancel the mint instead of minting and burning (as in _shred).
            # (No job yet: the chain worker had not queued it, and now never will.)
            unsent = {r[0] for r in rows if r[1] is None and r[2] in (None, "pending")}
            db.executemany("DELETE FROM secrets WHERE payload_id = ?", [(r[0],) for r in rows])
            db.executemany(
                "UPDATE outbox SET state = 'cancelled' WHERE kind = 'mint' AND payload_id = ?",
                [(i,) for i in unsent],
            )
            db.executemany(
                "INSERT OR IGNORE INTO outbox (kind, payload_id, next_attempt_at, created_at)"
                " VALUES ('burn', ?, ?, ?)",
                [(r[0], now, now) for r in rows if r[0] not in unsent and r[1] is not None],
            )
            db.executemany(
                "UPDATE payloads SET status = 'expired', shredded_at = ?, shred_reason = 'expired',"
                " secret_hash = NULL, burn_status = COALESCE(burn_status, ?) WHERE id = ?",
                [(now, "not_minted" if r[0] in unsent else "pending", r[0]) for r in rows],
            )
            _count_shreds(db, len(rows))
        return len(rows)

    # Chain facts (from receipts and the event follower) ---------------------------------------

    def set_minted(
        self, commitment: bytes, token_id: int, tx_hash: str, owner: str | None
    ) -> str | None:
        """Record a mint seen on chain; returns the payload id, or None if unknown here."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT id, chain_token_id, shredded_at FROM payloads WHERE commitment = ?",
                (commitment,),
            ).fetchone()
            if row is None:
                return None
            if row["chain_token_id"] is None:
                status_sql = "CASE WHEN shredded_at IS NULL THEN 'minted' ELSE status END"
                db.execute(
                    f"UPDATE payloads SET chain_token_id = ?, mint_tx = ?, status = {status_sql},"
                    " owner = CASE WHEN custody = 1 THEN owner ELSE COALESCE(?, owner) END"
                    " WHERE id = ?",
                    (token_id, tx_hash, owner.lower() if owner else None, row["id"]),
                )
            db.execute(
                "UPDATE outbox SET state = 'done' WHERE kind = 'mint' AND payload_id = ?",
                (row["id"],),
            )
            if row["shredded_at"] is not None:
                # Deleted or expired while the mint was in flight: the token must go too.
                _enqueue(db, "burn", row["id"], 0.0)
            return str(row["id"])

    def set_owner(self, token_id: int, owner: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE payloads SET owner = ?, custody = 0, secret_hash = NULL"
                " WHERE chain_token_id = ?",
                (owner.lower(), token_id),
            )

    def set_persistent(self, token_id: int) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE payloads SET expires_at = NULL, end_time = 0, status = 'persistent'"
                " WHERE chain_token_id = ? AND shredded_at IS NULL",
                (token_id,),
            )
            db.execute(
                "UPDATE outbox SET state = 'done' WHERE kind = 'persist' AND payload_id ="
                " (SELECT id FROM payloads WHERE chain_token_id = ?)",
                (token_id,),
            )

    def set_burned(self, token_id: int, tx_hash: str, now: float) -> str | None:
        """A burn seen on chain: shred if still live (a wallet burn) and record the burn."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT id FROM payloads WHERE chain_token_id = ?", (token_id,)
            ).fetchone()
            if row is None:
                return None
            _shred(db, row["id"], "burned", now)
            db.execute(
                "UPDATE payloads SET burn_tx = ?, burn_status = 'burned' WHERE id = ?",
                (tx_hash, row["id"]),
            )
            db.execute(
                "UPDATE outbox SET state = 'done' WHERE kind = 'burn' AND payload_id = ?",
                (row["id"],),
            )
            return str(row["id"])

    # Key rotation ----------------------------------------------------------------------------

    def rewrap_all(self, rewrap: Callable[[str, int, bytes], tuple[int, bytes]]) -> int:
        """Replace every wrapped key by ``rewrap(payload_id, version, wrapped)``, atomically."""
        with self.transaction() as db:
            rows = db.execute("SELECT payload_id, key_version, wrapped_key FROM secrets").fetchall()
            for r in rows:
                version, wrapped = rewrap(r[0], r[1], r[2])
                db.execute(
                    "UPDATE secrets SET key_version = ?, wrapped_key = ? WHERE payload_id = ?",
                    (version, wrapped, r[0]),
                )
        return len(rows)

    def key_versions(self) -> dict[int, int]:
        rows = self.db.execute("SELECT key_version, COUNT(*) FROM secrets GROUP BY key_version")
        return {r[0]: r[1] for r in rows}

    # Outbox ----------------------------------------------------------------------------------

    def enqueue(self, kind: str, payload_id: str, now: float) -> None:
        with self.transaction() as db:
            _enqueue(db, kind, payload_id, now)

    def queue_new_mints(self, limit: int) -> int:
        """Put the mint jobs of up to ``limit`` new payloads in the outbox; returns how many.

        New payloads are those after the ``mint_cursor`` in row id order: payloads are never
        deleted and writers take turns, so a payload committed later always has a higher row
        id, and one pass over the ids above the cursor finds each new payload once. A payload
        shredded before its turn gets no job (its mint is cancelled, as in :meth:`shred`). The
        jobs and the cursor land in one transaction.
        """
        cursor = int(self.get_kv("mint_cursor") or 0)
        if self.db.execute("SELECT 1 FROM payloads WHERE rowid > ?", (cursor,)).fetchone() is None:
            return 0  # nothing new: no write, no writer lock
        with self.transaction() as db:
            cursor = int(db.execute("SELECT value FROM kv WHERE key = 'mint_cursor'").fetchone()[0])
            rows = db.execute(
                "SELECT rowid, id, status, created_at FROM payloads WHERE rowid > ?"
                " ORDER BY rowid LIMIT ?",
                (cursor, limit),
            ).fetchall()
            if not rows:
                return 0
            jobs = [(r["id"], r["created_at"], r["created_at"]) for r in rows
                    if r["status"] == "pending_mint"]  # fmt: skip
            db.executemany(
                "INSERT OR IGNORE INTO outbox (kind, payload_id, next_attempt_at, created_at)"
                " VALUES ('mint', ?, ?, ?)",
                jobs,
            )
            db.execute(
                "UPDATE kv SET value = ? WHERE key = 'mint_cursor'", (str(rows[-1]["rowid"]),)
            )
        return len(jobs)

    def due_jobs(self, kind: str, now: float, limit: int) -> list[Job]:
        """Pending jobs of ``kind`` whose time has come, the longest due first.

        In ``outbox_due``'s own order (its last column is the row id), so the query stops after
        ``limit`` rows: ordered by id alone, it sorted every due job first, the whole backlog.
        """
        rows = self.db.execute(
            "SELECT id, kind, payload_id, state, attempts, tx_hash, last_error FROM outbox"
            " WHERE state = 'pending' AND kind = ? AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at, id LIMIT ?",
            (kind, now, limit),
        ).fetchall()
        return [Job(**dict(r)) for r in rows]

    def sent_jobs(self, tx_hash: str | None = None) -> list[Job]:
        """Jobs waiting on a transaction (on ``tx_hash`` only, if given), oldest first."""
        where = "state = 'sent'" + (" AND tx_hash = ?" if tx_hash is not None else "")
        rows = self.db.execute(
            "SELECT id, kind, payload_id, state, attempts, tx_hash, last_error FROM outbox"
            f" WHERE {where} ORDER BY id",
            () if tx_hash is None else (tx_hash,),
        ).fetchall()
        return [Job(**dict(r)) for r in rows]

    def awaited_transactions(self) -> dict[str, str]:
        """The transactions that sent jobs wait on, oldest first: tx hash → their jobs' kind.

        A handful of rows where :meth:`sent_jobs` builds one per job (800 with a backlog in
        flight), every outbox round: most rounds need only the hashes.
        """
        rows = self.db.execute(
            "SELECT tx_hash, MIN(kind) FROM outbox WHERE state = 'sent'"
            " GROUP BY tx_hash ORDER BY MIN(id)"
        ).fetchall()
        return {str(r[0]): str(r[1]) for r in rows}

    def record_sent(
        self, job_ids: Sequence[int], kind: str, tx_hash: str, raw: bytes, nonce: int, now: float,
        lease: tuple[str, str] | None = None,
    ) -> None:  # fmt: skip
        """Remember a signed transaction before it is broadcast, so a crash can resend it.

        With ``lease`` (name, holder): only while that holder still holds the lease, checked in
        the same transaction; else :class:`LeaseLost`, and nothing is recorded. A process that
        stalled past its lease (signing with a nonce its successor may use too) then never
        broadcasts, and a successor finds every transaction recorded under the lease.
        """
        with self.transaction() as db:
            if lease is not None:
                _check_lease(db, lease, now)
            db.execute(
                "INSERT OR REPLACE INTO transactions (tx_hash, kind, raw, nonce, sent_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (tx_hash, kind, raw, nonce, now),
            )
            db.executemany(
                "UPDATE outbox SET state = 'sent', tx_hash = ?, attempts = attempts + 1"
                " WHERE id = ?",
                [(tx_hash, i) for i in job_ids],
            )

    def get_raw_tx(self, tx_hash: str) -> tuple[bytes, int, float] | None:
        """A recorded transaction's signed bytes, nonce and time sent."""
        row = self.db.execute(
            "SELECT raw, nonce, sent_at FROM transactions WHERE tx_hash = ?", (tx_hash,)
        ).fetchone()
        return (bytes(row[0]), int(row[1]), float(row[2])) if row else None

    def record_replacement(
        self, old_hash: str, tx_hash: str, raw: bytes, now: float, lease: tuple[str, str]
    ) -> None:
        """Record ``tx_hash``, signed to replace ``old_hash`` (same nonce), before broadcast;
        the jobs waiting on the old one wait on it. Only while ``lease`` is held (see
        :meth:`record_sent`)."""
        with self.transaction() as db:
            _check_lease(db, lease, now)
            db.execute(
                "INSERT OR REPLACE INTO transactions (tx_hash, kind, raw, nonce, sent_at, replaces)"
                " SELECT ?, kind, ?, nonce, ?, tx_hash FROM transactions WHERE tx_hash = ?",
                (tx_hash, raw, now, old_hash),
            )
            db.execute("UPDATE transactions SET state = 'replaced' WHERE tx_hash = ?", (old_hash,))
            db.execute(
                "UPDATE outbox SET tx_hash = ? WHERE tx_hash = ? AND state = 'sent'",
                (tx_hash, old_hash),
            )

    def undo_replacement(self, tx_hash: str) -> bool:
        """If ``tx_hash`` replaced a transaction, drop it and give its jobs back to that one
        (which may still be mined); False if it replaced none."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT replaces FROM transactions WHERE tx_hash = ?", (tx_hash,)
            ).fetchone()
            if row is None or row[0] is None:
                return False
            db.execute("UPDATE transactions SET state = 'dropped' WHERE tx_hash = ?", (tx_hash,))
            db.execute(
                "UPDATE transactions SET state = 'sent' WHERE tx_hash = ? AND state = 'replaced'",
                (row[0],),
            )
            db.execute(
                "UPDATE outbox SET tx_hash = ? WHERE tx_hash = ? AND state = 'sent'",
                (row[0], tx_hash),
            )
            return True

    def finish_tx(self, tx_hash: str, state: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE transactions SET state = ? WHERE tx_hash = ?", (state, tx_hash))
            if state == "mined":
                # Jobs of a mined tx are done; mints are confirmed through their events.
                db.execute(
                    "UPDATE outbox SET state = 'done' WHERE tx_hash = ? AND state = 'sent'",
                    (tx_hash,),
                )

    def mark_mined(self, tx_hashes: Iterable[str]) -> None:
        """Our transactions among ``tx_hashes`` (those of events seen on chain) were mined, even
        one given up as dropped meanwhile (its jobs, retried, find their tokens on chain)."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE transactions SET state = 'mined' WHERE tx_hash = ? AND state != 'mined'",
                [(h,) for h in tx_hashes],
            )

    def retry_jobs(self, job_ids: Sequence[int], error: str, next_at: float) -> None:
        with self.transaction() as db:
            db.executemany(
                "UPDATE outbox SET state = 'pending', tx_hash = NULL, last_error = ?,"
                " next_attempt_at = ? WHERE id = ?",
                [(error[:200], next_at, i) for i in job_ids],
            )

    def finish_jobs(self, job_ids: Sequence[int], state: str = "done") -> None:
        with self.transaction() as db:
            db.executemany(
                "UPDATE outbox SET state = ? WHERE id = ?", [(state, i) for i in job_ids]
            )

    def outbox_counts(self) -> dict[str, int]:
        """Open jobs by ``kind:state``; a new payload's mint not yet queued is a pending mint."""
        rows = self.db.execute(
            "SELECT kind || ':' || state, COUNT(*) FROM outbox"
            " WHERE state IN ('pending', 'sent') GROUP BY kind, state"
        )
        counts = {r[0]: r[1] for r in rows}
        new = self.db.execute(NEW_MINTS_SQL).fetchone()[0]
        if new:
            counts["mint:pending"] = counts.get("mint:pending", 0) + new
        return counts

    # Auth ------------------------------------------------------------------------------------

    def add_nonce(self, nonce: str, expires_at: float, now: float) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM auth_nonces WHERE expires_at <= ?", (now,))
            db.execute("INSERT INTO auth_nonces VALUES (?, ?)", (nonce, expires_at))

    def consume_nonce(self, nonce: str, now: float) -> bool:
        """True once for a live nonce; never again (deleted in the same transaction)."""
        with self.transaction() as db:
            cur = db.execute(
                "DELETE FROM auth_nonces WHERE nonce = ? AND expires_at > ?", (nonce, now)
            )
            return cur.rowcount == 1

    def add_session(self, token_hash: bytes, session: Session, now: float) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?)",
                (token_hash, session.address, session.chain_id, session.expires_at),
            )

    def get_session(self, token_hash: bytes, now: float) -> Session | None:
        row = self.db.execute(
            "SELECT address, chain_id, expires_at FROM sessions"
            " WHERE token_hash = ? AND expires_at > ?",
            (token_hash, now),
        ).fetchone()
        return Session(**dict(row)) if row else None

    def delete_session(self, token_hash: bytes) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    # Key-value state -------------------------------------------------------------------------

    def get_kv(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_kv(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))

    def acquire_lease(self, name: str, holder: str, now: float, ttl: float) -> bool:
        """Take or renew a lease; only one process runs the chain worker at a time.

        A read answers when there is nothing to write: another holder's lease still runs
        (False), or this holder's has more than half of ``ttl`` left (True). So the worker's
        rounds, several a second, take the writer lock only to take the lease or renew it.
        """
        current, until = _lease(self.db, name)
        if until > now and (current != holder or until - now > ttl / 2):
            return current == holder
        with self.transaction() as db:
            current, until = _lease(db, name)
            if current != holder and until > now:  # (no lease yet: until is 0)
                return False
            db.execute(
                "INSERT OR REPLACE INTO kv VALUES (?, ?)",
                (f"lease:{name}", f"{holder}@{now + ttl}"),
            )
            return True


class LeaseLost(Exception):
    """The lease a write was made under has passed to another holder (or run out)."""


# Columns added since the first schema, for a store made before them: (table, column, type).
NEW_COLUMNS = (("transactions", "replaces", "TEXT"),)


def _missing_columns(db: sqlite3.Connection) -> list[tuple[str, str, str]]:
    return [
        (table, column, sql_type)
        for table, column, sql_type in NEW_COLUMNS
        if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    ]


def _lease(db: sqlite3.Connection, name: str) -> tuple[str | None, float]:
    """(holder, held until) of a lease; (None, 0) if no one ever took it."""
    row = db.execute("SELECT value FROM kv WHERE key = ?", (f"lease:{name}",)).fetchone()
    if row is None:
        return None, 0.0
    holder, _, until = str(row[0]).rpartition("@")
    return holder, float(until)


def _holds(db: sqlite3.Connection, name: str, holder: str, now: float) -> bool:
    current, until = _lease(db, name)
    return current == holder and until > now


def _check_lease(db: sqlite3.Connection, lease: tuple[str, str], now: float) -> None:
    """Raise :class:`LeaseLost` unless ``lease`` (name, holder) is still held."""
    if not _holds(db, *lease, now):
        raise LeaseLost(f"lease {lease[0]!r} is no longer held by {lease[1]}")


def open_jobs(db: sqlite3.Connection) -> int:
    """How many chain jobs a store still has to do (mints not yet queued included), through
    any connection to it: benchmarks and tests wait on it with read-only ones."""
    return int(db.execute(OPEN_JOBS_SQL).fetchone()[0])


def _enqueue(db: sqlite3.Connection, kind: str, payload_id: str, now: float) -> None:
    db.execute(
        "INSERT OR IGNORE INTO outbox (kind, payload_id, next_attempt_at, created_at)"
        " VALUES (?, ?, ?, ?)",
        (kind, payload_id, now, now),
    )


def _shred(db: sqlite3.Connection, payload_id: str, reason: str, now: float) -> bool:
    row = db.execute(
        "SELECT chain_token_id, shredded_at FROM payloads WHERE id = ?", (payload_id,)
    ).fetchone()
    if row is None or row["shredded_at"] is not None:
        return False
    db.execute("DELETE FROM secrets WHERE payload_id = ?", (payload_id,))
    mint = db.execute(
        "SELECT state FROM outbox WHERE kind = 'mint' AND payload_id = ?", (payload_id,)
    ).fetchone()
    if row["chain_token_id"] is None and (mint is None or mint["state"] == "pending"):
        # Never sent: cancel the mint instead of minting and burning (with no job yet, the
        # chain worker will not queue one: the payload is no longer pending_mint).
        db.execute(
            "UPDATE outbox SET state = 'cancelled' WHERE kind = 'mint' AND payload_id = ?",
            (payload_id,),
        )
        burn_status = "not_minted"
    else:
        burn_status = "pending"
        if reason != "burned" and row["chain_token_id"] is not None:
            _enqueue(db, "burn", payload_id, now)
    status = "expired" if reason == "expired" else "deleted"
    db.execute(
        "UPDATE payloads SET status = ?, shredded_at = ?, shred_reason = ?,"
        " burn_status = COALESCE(burn_status, ?) WHERE id = ?",
        (status, now, reason, burn_status, payload_id),
    )
    _count_shreds(db, 1)
    return True


def _count_shreds(db: sqlite3.Connection, n: int) -> None:
    """Tell the sweepers a WAL may hold a shredded secret's old page image (see shred_count)."""
    if n:
        db.execute(
            "INSERT INTO kv (key, value) VALUES ('shreds', ?) ON CONFLICT (key)"
            " DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value",
            (str(n),),
        )
