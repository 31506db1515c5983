"""The chain-worker lease: one sender at a time, even when a holder stalls past its lease."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from slt_harness import Clock

from backend.chain import MintRequest, SignedTx
from backend.worker import LEASE_TTL


def test_a_worker_that_stalls_past_its_lease_broadcasts_nothing(
    make_app: Callable[..., Flask], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two processes' apps on one store; their chain workers are driven by hand.
    first, second = make_app(start_workers=False), make_app(start_workers=False)
    stalled, successor = first.extensions["slt"].worker, second.extensions["slt"].worker
    store = stalled.store
    created = first.test_client().post("/generate", json={"prompt": "a lease", "emotion": "calm"})
    payload_id = created.get_json()["token"]["id"]

    signed_by_stalled: list[SignedTx] = []
    late_requests: list[MintRequest] = []
    sign = stalled.chain.sign_mint_batch

    def sign_then_stall(requests: list[MintRequest]) -> SignedTx:
        signed = sign(requests)  # the next nonce, as the chain counts them now
        late_requests.extend(requests)
        signed_by_stalled.append(signed)
        clock.advance(LEASE_TTL + 1)  # a pause longer than the lease (GC, SIGSTOP, swap …)
        # Meanwhile a new payload arrives, and the other process takes over and sends both
        # mints: a different transaction with the same nonce.
        second.test_client().post("/generate", json={"prompt": "after the stall"})
        successor.process_outbox()
        return signed

    monkeypatch.setattr(stalled.chain, "sign_mint_batch", sign_then_stall)
    stalled.process_outbox()  # comes back after its pause: must neither record nor broadcast

    txs: list[Any] = store.db.execute("SELECT tx_hash, nonce, kind FROM transactions").fetchall()
    assert len(txs) == 1, "only the lease holder's transaction is recorded"
    [(tx_hash, nonce, kind)] = txs
    [late] = signed_by_stalled
    assert kind == "mint" and late.tx_hash != tx_hash and len(late_requests) == 1
    assert late.nonce == nonce  # the two were signed with the same nonce: only one may be sent
    assert stalled.chain.receipt(late.tx_hash) is None  # never broadcast
    job = store.db.execute(
        "SELECT state, tx_hash FROM outbox WHERE kind = 'mint' AND payload_id = ?", (payload_id,)
    ).fetchone()
    assert tuple(job) == ("sent", tx_hash)
    # The successor's transaction mints the token, once.
    successor.process_outbox()
    successor.follow()
    minted = store.get_payload(payload_id)
    assert minted is not None and minted.chain_token_id is not None
    assert minted.mint_tx == tx_hash
