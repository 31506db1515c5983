"""Crashes: ``kill -9`` the backend at random moments under load, restart it, then audit.

A real backend process (``python -m backend serve``) on a real SQLite file mints on a real
Anvil while a load generator creates, decrypts and deletes. The backend is killed with SIGKILL
``SLT_HARDENING_KILLS`` times (5 short, 20 full) at random moments (seeded) and restarted each
time. Once the outbox has drained, every promise and every invariant is checked:

- every create answered 201 exists, and is minted (token alive on chain, data stored) unless a
  delete of it was attempted;
- every delete answered 200 is shredded (no key, no ciphertext) and its token burned, or it was
  never minted (its mint was cancelled and its commitment never reached the chain);
- no live token on chain lacks its data, and no stored data lacks its live token;
- each commitment appears in exactly one ``CommitmentPublished`` event: nothing double-minted.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from hardening_evidence import (
    audit,
    chain_view,
    read_db,
    settled,
)
from hardening_support import (
    BackendProcess,
    Identity,
    Ledger,
    LoadGenerator,
    backend_settings,
    figure,
    http_session,
    knob,
    sign_in_http,
    wait_until,
)
from slt_harness import ANVIL_KEYS, Anvil, deploy

KILLS = int(knob("kills", 5, 20))
SEED = 6


def test_kill_9_under_load_loses_nothing_and_mints_nothing_twice(
    anvil: Anvil, tmp_path: Path
) -> None:
    record = deploy(anvil.url, tmp_path / "deployment.json")
    data = tmp_path / "var"
    backend = BackendProcess(
        backend_settings(
            data,
            anvil.url,
            tmp_path / "deployment.json",
            ANVIL_KEYS[1],
            SLT_RATE_LIMITS_ENABLED="0",
        ),  # fmt: skip
        tmp_path / "logs",
    )
    backend.start()
    http = http_session()
    identities = [
        Identity("alice", sign_in_http(http, backend.url, ANVIL_KEYS[2])),
        Identity("bob", sign_in_http(http, backend.url, ANVIL_KEYS[3])),
        Identity("anonymous", {}),
    ]
    ledger = Ledger()
    load = LoadGenerator(lambda: backend.url, identities, ledger, seed=SEED, threads=3)
    rng = random.Random(SEED)
    restarts = []
    load.start()
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 2.5))  # a random moment of the load
            backend.kill9()
            restarts.append(backend.start())
        time.sleep(1.0)
    finally:
        load.stop()
    try:
        drained = wait_until(lambda: settled(data / "slt.sqlite3", anvil.w3()), timeout=180)
    finally:
        backend.stop()

    view = chain_view(anvil.w3(), record["address"], record["block_number"])
    with read_db(data / "slt.sqlite3") as db:
        rows = {r["id"]: dict(r) for r in db.execute("SELECT * FROM payloads")}
        secrets = {r[0] for r in db.execute("SELECT payload_id FROM secrets")}
        stuck = db.execute(
            "SELECT kind, state, COUNT(*) FROM outbox WHERE state IN ('pending', 'sent')"
            " GROUP BY kind, state"
        ).fetchall()
    problems = audit(ledger, rows, secrets, view)
    figure(
        "crash",
        kills=KILLS,
        restarts=len(restarts),
        mean_restart_s=round(sum(restarts) / len(restarts), 2),
        creates_answered=len(ledger.created),
        deletes_answered=len(ledger.deleted),
        decrypts_answered=ledger.total("decrypt"),
        unanswered=dict(ledger.unanswered),
        server_errors=ledger.server_errors(),
        payloads_stored=len(rows),
        tokens_minted=len(view.minted),
        tokens_burned=len(view.burned),
        drain_s=round(drained, 1),
        violations=len(problems),
    )
    assert not stuck, stuck
    assert not problems, json.dumps(problems[:20], indent=2)
    assert not ledger.wrong, ledger.wrong[:20]
    assert ledger.server_errors() == 0, ledger.statuses
    assert len(ledger.created) > KILLS  # the load did run between the kills
