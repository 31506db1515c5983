"""Sweeping 100,000 expired payloads: time, and resident memory before, after and at peak.

The records are written straight into a fresh store (minted, expired, 1 KiB of ciphertext
each); then a separate process opens the store and runs the sweeper exactly as the worker does
(``Worker.sweep``: shred in batches, queue a burn for each, checkpoint and truncate the WAL), so
its memory figures belong to the sweep alone. ``python -m bench.sweep --child DB`` is that
process.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import PYTHON, ROOT, Options, Row, fmt_bytes, peak_rss_bytes, rss_bytes

CIPHERTEXT = 1024 + 28  # a 1 KiB payload sealed: nonce + ciphertext + tag


def fill(path: Path, n: int) -> None:
    """Write ``n`` minted payloads that expired a minute ago, as the vault would have."""
    from backend.store import SQLiteStore

    store = SQLiteStore(path)
    now = time.time()
    expired = now - 60
    owner = "0x" + "ab" * 20
    chunk = 5000
    with store.transaction() as db:
        for start in range(0, n, chunk):
            ids = [f"token_{secrets.token_hex(16)}" for _ in range(min(chunk, n - start))]
            db.executemany(
                "INSERT INTO payloads (id, owner, custody, secret_hash, kind, content_type, size,"
                " reward_score, commitment, created_at, expires_at, end_time, switchable, status,"
                " chain_token_id, mint_tx)"
                " VALUES (?, ?, 0, NULL, 'text', 'text/plain; charset=utf-8', 1024, 0.2, ?, ?, ?,"
                " ?, 1, 'minted', ?, ?)",
                [
                    (pid, owner, os.urandom(32), now - 3600, expired, int(expired),
                     start + i + 1, "0x" + "11" * 32)
                    for i, pid in enumerate(ids)
                ],
            )  # fmt: skip
            db.executemany(
                "INSERT INTO secrets (payload_id, key_version, wrapped_key, ciphertext, emotion_ct)"
                " VALUES (?, 1, ?, ?, ?)",
                [(pid, os.urandom(60), os.urandom(CIPHERTEXT), os.urandom(47)) for pid in ids],
            )
            db.executemany(
                "INSERT INTO outbox (kind, payload_id, state, attempts, next_attempt_at,"
                " created_at) VALUES ('mint', ?, 'done', 1, ?, ?)",
                [(pid, now - 3600, now - 3600) for pid in ids],
            )
    store.checkpoint()
    store.close()


def child(path: Path) -> dict[str, Any]:
    """In a fresh process: open the store, sweep, report time and memory."""
    from backend.store import SQLiteStore
    from backend.worker import Worker

    store = SQLiteStore(path)
    worker = Worker(store, None, time.time)  # type: ignore[arg-type]  # the sweeper needs no chain
    checkpoint_s = [0.0]
    real_checkpoint = store.checkpoint

    def timed_checkpoint() -> None:
        t = time.perf_counter()
        real_checkpoint()
        checkpoint_s[0] += time.perf_counter() - t

    store.checkpoint = timed_checkpoint  # type: ignore[method-assign]
    store.count_payloads()  # the connection and the schema are loaded before measuring
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS starts from here
    before, peak_before = rss_bytes(), peak_rss_bytes()
    t0 = time.perf_counter()
    n = worker.sweep()
    elapsed = time.perf_counter() - t0
    after, peak = rss_bytes(), peak_rss_bytes()
    counts = store.outbox_counts()
    left = store.db.execute(
        "SELECT (SELECT COUNT(*) FROM secrets),"
        " (SELECT COUNT(*) FROM payloads WHERE shredded_at IS NULL)"
    ).fetchone()
    wal = path.with_name(path.name + "-wal")
    return {
        "shredded": n,
        "seconds": elapsed,
        "checkpoint_seconds": checkpoint_s[0],
        "rss_before": before,
        "rss_after": after,
        "rss_peak": max(peak, peak_before),
        "burns_queued": counts.get("burn:pending", 0),
        "secrets_left": left[0],
        "live_left": left[1],
        "wal_bytes_after": wal.stat().st_size if wal.exists() else 0,
    }


def run(opts: Options) -> list[Row]:
    import tempfile

    n = opts.pick(100_000, 2_000)
    with tempfile.TemporaryDirectory(prefix="slt-bench-sweep-") as tmp:
        path = Path(tmp) / "slt.sqlite3"
        t0 = time.monotonic()
        fill(path, n)
        size = path.stat().st_size
        opts.log(f"  sweep: wrote {n:,} expired payloads ({fmt_bytes(size)}) in"
                 f" {time.monotonic() - t0:.1f} s")  # fmt: skip
        out = subprocess.run(
            [PYTHON, "-m", "bench.sweep", "--child", str(path)],
            cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
        )  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
    ok = r["shredded"] == n and r["secrets_left"] == 0 and r["live_left"] == 0
    growth = r["rss_after"] - r["rss_before"]
    peak_growth = r["rss_peak"] - r["rss_before"]
    flat = peak_growth <= 32 << 20
    return [
        Row(
            "sweep",
            f"sweep {n:,} expired records (shred, queue burns, checkpoint)",
            f"{r['seconds']:.2f} s ({n / r['seconds']:,.0f}/s; checkpoint"
            f" {r['checkpoint_seconds']:.2f} s)",
            "—",
            "—",
            "≤ 10 s" if n >= 100_000 else "≤ 10 s (at 100,000)",
            ok and r["seconds"] <= 10 * n / 100_000,
            {**r, "db_bytes": size},
        ),
        Row(
            "sweep",
            "sweeper memory (RSS before → after; peak)",
            f"{fmt_bytes(r['rss_before'])} → {fmt_bytes(r['rss_after'])};"
            f" peak {fmt_bytes(r['rss_peak'])}",
            "—",
            f"+{fmt_bytes(growth)}; peak +{fmt_bytes(peak_growth)}",
            "flat (peak within 32 MiB of the start)",
            flat,
            {
                "note": (
                    f"sweep: {r['burns_queued']:,} burns queued, {r['secrets_left']} secrets"
                    f" left, WAL {fmt_bytes(r['wal_bytes_after'])} after; store"
                    f" {fmt_bytes(size)} before."
                )
            },
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", type=Path, required=True)
    print(json.dumps(child(parser.parse_args().child)))
    sys.exit(0)
