"""Store size per payload against the plaintext's own size.

Payloads are created through the vault (fresh data key, sealed content and emotion, wrapped
key, commitment, the row and its mint job) into a fresh store per size; the figure is the growth
of the database file per payload once the WAL is checkpointed and truncated, and the overhead is
that growth minus the plaintext.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from backend.crypto import KeyRing
from backend.payloads import Plaintext, emotion_reward, text_plaintext
from backend.store import SQLiteStore
from backend.vault import Vault

from .common import Options, Row, fmt_bytes

PNG = b"\x89PNG\r\n\x1a\n"
# Tables a payload never writes to: their one page each only shows up divided by the count.
UNRELATED = {"auth_nonces", "sessions", "kv", "transactions", "sqlite_sequence"}


def _plaintext(kind: str, size: int) -> Plaintext:
    if kind == "text":
        return text_plaintext("a" * size, "calm")
    return Plaintext("image", "image/png", PNG + os.urandom(size - len(PNG)), None)


def _measure(kind: str, size: int, n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="slt-bench-storage-") as tmp:
        path = Path(tmp) / "slt.sqlite3"
        store = SQLiteStore(path)
        chain = SimpleNamespace(
            chain_id=31337, address="0x5FbDB2315678afecb367f032d93F642f64180aa3"
        )
        vault = Vault(store, KeyRing({1: os.urandom(32)}, 1), chain, "0x" + "ab" * 20,  # type: ignore[arg-type]
                      emotion_reward, time.time)  # fmt: skip
        store.checkpoint()
        before = path.stat().st_size
        plain = _plaintext(kind, size)
        for i in range(n):
            vault.create(plain, None if i % 2 else "0x" + "cd" * 20, 3600, True)
        store.checkpoint()
        after = path.stat().st_size
        wal = path.with_name(path.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0
        tables = {}
        try:  # the share of each table and index, where SQLite has the dbstat table
            rows = store.db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
            tables = {r[0]: r[1] / n for r in rows}
        except Exception:
            pass
        store.close()
    per = (after - before) / n
    return {"plaintext": size, "per_payload": per, "overhead": per - size, "tables": tables}


def run(opts: Options) -> list[Row]:
    cases = [
        ("text", 100, opts.pick(4000, 200)),
        ("text", 1024, opts.pick(4000, 200)),
        ("image", 64 * 1024, opts.pick(400, 20)),
        ("image", 1024 * 1024, opts.pick(40, 4)),
    ]
    rows = []
    for kind, size, n in cases:
        r = _measure(kind, size, n)
        mine = {k: v for k, v in r["tables"].items() if k not in UNRELATED}
        top = sorted(mine.items(), key=lambda kv: -kv[1])[:4]
        where = ", ".join(f"{k} {v:,.0f} B" for k, v in top)
        rows.append(
            Row(
                "storage",
                f"store size per payload, {kind} of {fmt_bytes(size)} ({n:,} payloads)",
                f"{r['per_payload']:,.0f} B per payload",
                f"plaintext {size:,} B",
                f"+{r['overhead']:,.0f} B ({r['per_payload'] / size:.2f}×)",
                "print overhead bytes per record",
                None,
                {**r, "n": n, "note": f"storage, {kind} {fmt_bytes(size)}: {where} per payload"},
            )
        )
    return rows
