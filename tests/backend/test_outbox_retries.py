"""The outbox's retries on a real chain: what goes back in batches, what goes alone, and a job
whose transaction landed after all is recorded, never minted twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from slt_harness import Anvil, Clock

from backend.errors import CONTRACT_REFUSED
from backend.worker import Worker


def _created(app: Flask, n: int) -> list[str]:
    client = app.test_client()
    return [
        client.post("/generate", json={"prompt": f"retry {i}"}).get_json()["token"]["id"]
        for i in range(n)
    ]


def _jobs(worker: Worker) -> list[tuple[str, int, str | None]]:
    rows = worker.store.db.execute(
        "SELECT state, attempts, tx_hash FROM outbox WHERE kind = 'mint' ORDER BY id"
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _give_back(worker: Worker, error: str) -> None:
    """Every mint job back to pending, due now, after a try that failed with ``error``."""
    ids = [r[0] for r in worker.store.db.execute("SELECT id FROM outbox WHERE kind = 'mint'")]
    worker.store.retry_jobs(ids, error, 0.0)


def test_jobs_whose_transaction_was_refused_by_the_node_go_back_in_one_batch(
    make_app: Callable[..., Flask], anvil: Anvil, clock: Clock
) -> None:
    app = make_app(start_workers=False)
    worker = app.extensions["slt"].worker
    relayer, w3 = worker.chain.relayer_address, anvil.w3()
    funds = w3.eth.get_balance(relayer)
    _created(app, 3)
    try:
        w3.provider.make_request("anvil_setBalance", [relayer, "0x0"])  # type: ignore[arg-type]
        worker.process_outbox()  # one batch of 3, refused by the node: dropped
    finally:
        w3.provider.make_request("anvil_setBalance", [relayer, hex(funds)])  # type: ignore[arg-type]
    assert [(state, attempts) for state, attempts, _ in _jobs(worker)] == [("pending", 1)] * 3
    clock.advance(120)
    worker.process_outbox()
    jobs = _jobs(worker)
    assert {state for state, _, _ in jobs} == {"sent"}
    assert len({tx for _, _, tx in jobs}) == 1  # all three in one transaction again
    worker.follow()
    minted = worker.store.db.execute(
        "SELECT COUNT(*) FROM payloads WHERE chain_token_id IS NOT NULL"
    ).fetchone()[0]
    assert minted == 3


def test_a_job_whose_transaction_landed_after_all_is_recorded_not_minted_again(
    make_app: Callable[..., Flask], anvil: Anvil, record: dict[str, Any]
) -> None:
    app = make_app(start_workers=False)
    worker = app.extensions["slt"].worker
    ids = _created(app, 3)
    worker.process_outbox()  # sent and mined (Anvil mines each transaction at once)
    [first_tx] = {tx for _, _, tx in _jobs(worker)}
    contract = anvil.w3().eth.contract(address=record["address"], abi=record["abi"])
    total = contract.functions.totalMinted().call()
    # As if the receipt had never come and the jobs were given back (a "lost" transaction).
    _give_back(worker, "transaction lost")
    worker.process_outbox()  # looks the three commitments up, in one query
    assert contract.functions.totalMinted().call() == total  # nothing minted twice
    assert [state for state, _, _ in _jobs(worker)] == ["done"] * 3
    for payload_id in ids:
        payload = worker.store.get_payload(payload_id)
        assert payload is not None and payload.mint_tx == first_tx
        assert payload.chain_token_id is not None


def test_a_job_the_contract_refused_goes_alone(make_app: Callable[..., Flask]) -> None:
    app = make_app(start_workers=False)
    worker = app.extensions["slt"].worker
    _created(app, 3)
    worker.store.queue_new_mints(100)
    _give_back(worker, CONTRACT_REFUSED + "SLTInvalidEndTime")
    worker.process_outbox()
    states = [state for state, _, _ in _jobs(worker)]
    assert sorted(states) == ["pending", "pending", "sent"]  # one alone, the others wait
