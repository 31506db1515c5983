"""Chain outage: Anvil frozen under load, then Anvil restarted from a state dump under load.

While the chain is gone the API keeps creating, reading and deleting; a delete shreds at once
(the key and ciphertext leave the database before the burn can be sent); ``/health`` reports
the chain degraded. When the chain is back every pending mint and burn lands; the drain time
is printed. Freeze: ``SLT_HARDENING_OUTAGE`` seconds (5 short, 30 full), SIGSTOP then
SIGCONT; the restart keeps Anvil down for a third of that (at least 3 s).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests
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

OUTAGE = knob("outage", 5, 30)
SEED = 11


def _health(base: str) -> tuple[dict[str, Any], float]:
    began = time.monotonic()
    body = requests.get(f"{base}/health", timeout=30).json()
    return body, time.monotonic() - began


def _delete_shreds_at_once(
    backend: BackendProcess, db: Path, who: dict[str, str], payload_id: str
) -> float:
    """DELETE answers 200 and the secret row is gone when it answers; returns its latency."""
    began = time.monotonic()
    resp = requests.delete(f"{backend.url}/tokens/{payload_id}", headers=who, timeout=30)
    took = time.monotonic() - began
    assert resp.status_code == 200, resp.text
    with read_db(db) as conn:
        assert (
            conn.execute("SELECT 1 FROM secrets WHERE payload_id = ?", (payload_id,)).fetchone()
            is None
        )
    return took


def _statuses_during(
    ledger: Ledger, before: dict[str, dict[int, int]]
) -> dict[str, dict[int, int]]:
    out: dict[str, dict[int, int]] = {}
    for op, by in ledger.statuses.items():
        for status, n in by.items():
            d = n - before.get(op, {}).get(status, 0)
            if d:
                out.setdefault(op, {})[status] = d
    return out


def _snapshot(ledger: Ledger) -> dict[str, dict[int, int]]:
    with ledger.lock:
        return {op: dict(by) for op, by in ledger.statuses.items()}


def test_api_keeps_working_through_a_freeze_and_a_restart_then_drains(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    node = Anvil(state_file=state).start()
    backend: BackendProcess | None = None
    try:
        record = deploy(node.url, tmp_path / "deployment.json")
        data = tmp_path / "var"
        db = data / "slt.sqlite3"
        backend = BackendProcess(
            backend_settings(
                data,
                node.url,
                tmp_path / "deployment.json",
                ANVIL_KEYS[1],
                SLT_RATE_LIMITS_ENABLED="0",
            ),  # fmt: skip
            tmp_path / "logs",
        )
        backend.start()
        http = http_session()
        alice = sign_in_http(http, backend.url, ANVIL_KEYS[2])
        identities = [
            Identity("alice", alice),
            Identity("bob", sign_in_http(http, backend.url, ANVIL_KEYS[3])),
            Identity("anonymous", {}),
        ]
        # Minted payloads to delete during each outage (their burns must wait for the chain).
        spare = []
        for i in range(2):
            resp = http.post(f"{backend.url}/generate", json={"prompt": f"spare {i}"},
                             headers=alice, timeout=30)  # fmt: skip
            spare.append(resp.json()["token"]["id"])
        wait_until(lambda: settled(db, node.w3()), 60)
        ledger = Ledger()
        load = LoadGenerator(lambda: backend.url, identities, ledger, seed=SEED, threads=3,
                             pause=0.05)  # fmt: skip

        # 1. Freeze (SIGSTOP): the RPC accepts connections and never answers.
        load.start()
        time.sleep(1.0)
        before = _snapshot(ledger)
        node.pause()
        frozen_at = time.monotonic()
        health, health_s = _health(backend.url)
        assert health["status"] == "degraded" and health["chain"]["ok"] is False, health
        delete_s = _delete_shreds_at_once(backend, db, alice, spare[0])
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - frozen_at)))
        during_freeze = _statuses_during(ledger, before)
        node.resume()
        resumed = time.monotonic()
        load.stop()
        wait_until(lambda: settled(db, node.w3()), 180)
        freeze_drain = time.monotonic() - resumed
        wait_until(lambda: _health(backend.url)[0]["status"] == "ok", 30)

        # 2. Restart from a state dump: Anvil exits (writing its state), and is started again.
        load = LoadGenerator(lambda: backend.url, identities, ledger, seed=SEED + 1, threads=3,
                             pause=0.05)  # fmt: skip
        load.start()
        time.sleep(1.0)
        before = _snapshot(ledger)
        node.stop()
        stopped_at = time.monotonic()
        down_health, _ = _health(backend.url)
        assert down_health["status"] == "degraded", down_health
        delete_down_s = _delete_shreds_at_once(backend, db, alice, spare[1])
        time.sleep(max(0.0, max(3.0, OUTAGE / 3) - (time.monotonic() - stopped_at)))
        during_restart = _statuses_during(ledger, before)
        node.start(load_state=state)
        back = time.monotonic()
        load.stop()
        wait_until(lambda: settled(db, node.w3()), 180)
        restart_drain = time.monotonic() - back
        wait_until(lambda: _health(backend.url)[0]["status"] == "ok", 30)

        view = chain_view(node.w3(), record["address"], record["block_number"])
        with read_db(db) as conn:
            rows = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM payloads")}
            secrets = {r[0] for r in conn.execute("SELECT payload_id FROM secrets")}
    finally:
        if backend is not None:
            backend.stop()
        node.stop()

    problems = audit(ledger, rows, secrets, view)
    figure(
        "chain outage",
        freeze_seconds=OUTAGE,
        answered_during_freeze=during_freeze,
        health_during_freeze=f"{health['status']} in {health_s:.1f}s",
        delete_during_freeze_s=round(delete_s, 2),
        drain_after_freeze_s=round(freeze_drain, 1),
        restart_down_seconds=max(3.0, OUTAGE / 3),
        answered_while_down=during_restart,
        delete_while_down_s=round(delete_down_s, 2),
        drain_after_restart_s=round(restart_drain, 1),
        creates_answered=len(ledger.created),
        deletes_answered=len(ledger.deleted),
        violations=len(problems),
    )
    for during in (during_freeze, during_restart):
        assert during.get("create", {}).get(201, 0) > 0, during  # it kept creating ...
        reads = during.get("read", {}).get(200, 0) + during.get("decrypt", {}).get(200, 0)
        assert reads > 0, during  # ... and reading ...
        bad = {op: s for op, by in during.items() for s in by if s >= 500}
        assert not bad, during  # ... and nothing failed on our side
    assert not ledger.wrong, ledger.wrong[:10]
    assert not problems, problems[:20]
