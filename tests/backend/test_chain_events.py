"""The event follower: wallet burns shred, persists persist, transfers move the right to read."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from eth_account import Account
from flask import Flask
from flask.testing import FlaskClient
from slt_harness import ANVIL_KEYS, Anvil, wait_for

CAROL = ANVIL_KEYS[4]
DAVE = ANVIL_KEYS[3]


def send(anvil: Anvil, key: str, tx: dict[str, Any]) -> dict[str, Any]:
    w3 = anvil.w3()
    account = Account.from_key(key)
    tx = {
        "chainId": w3.eth.chain_id,
        "gas": 300_000,
        "gasPrice": w3.eth.gas_price,
        "nonce": w3.eth.get_transaction_count(account.address),
        **tx,
    }
    signed = account.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signed.raw_transaction)
    )
    assert receipt["status"] == 1
    return dict(receipt)


def minted(client: FlaskClient, headers: dict[str, str], payload_id: str) -> int:
    def token_id() -> int | None:
        return client.get(f"/tokens/{payload_id}", headers=headers).get_json()["chain"]["token_id"]

    return int(wait_for(token_id))


def test_wallet_burn_shreds_within_two_seconds(
    app: Flask, client: FlaskClient, sign_in: Any, anvil: Anvil, record: dict[str, Any]
) -> None:
    carol = sign_in(CAROL)
    payload_id = client.post("/generate", json={"prompt": "marker-wallet-burn"}, headers=carol)
    payload_id = payload_id.get_json()["token"]["id"]
    token_id = minted(client, carol, payload_id)
    contract = anvil.w3().eth.contract(address=record["address"], abi=record["abi"])
    store = app.extensions["slt"].store
    assert store.get_secret(payload_id) is not None

    data = contract.encode_abi("burn", args=[token_id])
    receipt = send(anvil, CAROL, {"to": record["address"], "data": data})
    burned_at = time.monotonic()
    wait_for(lambda: store.get_secret(payload_id) is None, timeout=2.0)
    elapsed = time.monotonic() - burned_at
    assert elapsed <= 2.0

    status = client.get(f"/tokens/{payload_id}", headers=carol).get_json()
    assert status["status"] == "deleted"
    assert status["chain"]["burn_tx"] == "0x" + receipt["transactionHash"].hex()
    assert client.post(f"/tokens/{payload_id}/decrypt", headers=carol).status_code == 410


def test_transfer_of_persistent_token_moves_the_right_to_read(
    client: FlaskClient, sign_in: Any, anvil: Anvil, record: dict[str, Any]
) -> None:
    carol, dave = sign_in(CAROL), sign_in(DAVE)
    body = client.post(
        "/generate", json={"prompt": "marker-moves", "emotion": "calm"}, headers=carol
    )
    payload_id = body.get_json()["token"]["id"]
    token_id = minted(client, carol, payload_id)
    tx = client.post(f"/tokens/{payload_id}/persist", headers=carol).get_json()["transaction"]
    send(anvil, CAROL, {"to": tx["to"], "data": tx["data"]})
    wait_for(lambda: client.get(f"/tokens/{payload_id}", headers=carol).get_json()["persistent"])

    contract = anvil.w3().eth.contract(address=record["address"], abi=record["abi"])
    carol_addr, dave_addr = Account.from_key(CAROL).address, Account.from_key(DAVE).address
    data = contract.encode_abi("transferFrom", args=[carol_addr, dave_addr, token_id])
    send(anvil, CAROL, {"to": record["address"], "data": data})

    # Ownership is read from the chain at once; the follower moves the listing shortly after.
    assert client.post(f"/tokens/{payload_id}/decrypt", headers=carol).status_code == 403
    opened = client.post(f"/tokens/{payload_id}/decrypt", headers=dave)
    assert opened.status_code == 200
    assert opened.get_json()["prompt"] == "marker-moves"
    wait_for(lambda: [t["id"] for t in client.get("/tokens", headers=dave).get_json()["tokens"]])
    assert payload_id not in [
        t["id"] for t in client.get("/tokens", headers=carol).get_json()["tokens"]
    ]


def test_non_switchable_token_cannot_be_persisted(client: FlaskClient, sign_in: Any) -> None:
    carol = sign_in(CAROL)
    body = client.post("/generate", json={"prompt": "x", "switchable": False}, headers=carol)
    payload_id = body.get_json()["token"]["id"]
    minted(client, carol, payload_id)
    resp = client.post(f"/tokens/{payload_id}/persist", headers=carol)
    assert resp.status_code == 409
    assert resp.get_json()["code"] == "not_switchable"


def test_the_follower_closes_the_transactions_whose_events_it_applies(
    make_app: Callable[..., Flask],
) -> None:
    # The follower may confirm a batch before the outbox has read its receipt. Its jobs are then
    # done, so no receipt is ever asked for: the events must close the transaction.
    app = make_app(start_workers=False)
    worker = app.extensions["slt"].worker
    store = worker.store
    client = app.test_client()

    def states() -> dict[str, str]:
        rows = store.db.execute("SELECT kind, state FROM transactions").fetchall()
        return {kind: state for kind, state in rows}

    created = client.post("/generate", json={"prompt": "followed first"}).get_json()
    worker.process_outbox()  # signs and broadcasts the mint; Anvil mines it at once
    assert states() == {"mint": "sent"}
    assert worker.follow() > 0
    assert states() == {"mint": "mined"}
    assert store.sent_jobs() == []

    headers = {"X-SLT-Secret": created["secret"]}
    assert client.delete(f"/delete/{created['token']['id']}", headers=headers).status_code == 200
    worker.process_outbox()  # the burn
    assert states() == {"mint": "mined", "burn": "sent"}
    # Given up meanwhile as dropped (its receipt late, its nonce spent): its events say mined.
    [burn_tx] = [
        h for (h,) in store.db.execute("SELECT tx_hash FROM transactions WHERE kind = 'burn'")
    ]
    store.finish_tx(burn_tx, "dropped")
    assert worker.follow() > 0
    assert states() == {"mint": "mined", "burn": "mined"}
    worker.process_outbox()  # nothing left to ask the chain about
    assert states() == {"mint": "mined", "burn": "mined"} and store.sent_jobs() == []


def test_the_outbox_reads_events_before_receipts(make_app: Callable[..., Flask]) -> None:
    # A mined batch's receipt carries the logs of all its tokens: the largest answer the worker
    # would read. The outbox's round applies new events first, and asks no receipt of a
    # transaction they closed.
    app = make_app(start_workers=False)
    worker = app.extensions["slt"].worker
    client = app.test_client()
    for i in range(3):
        client.post("/generate", json={"prompt": f"no receipt needed {i}"})
    worker.process_outbox()  # signs and broadcasts the mint; Anvil mines it at once
    [(mint_tx, state)] = worker.store.db.execute("SELECT tx_hash, state FROM transactions")
    assert state == "sent"

    asked: list[str] = []
    receipt_statuses = worker.chain.receipt_statuses

    def recording(tx_hashes: list[str]) -> dict[str, int | None]:
        asked.extend(tx_hashes)
        return receipt_statuses(tx_hashes)

    worker.chain.receipt_statuses = recording  # type: ignore[method-assign]
    worker.process_outbox()
    assert asked == []
    assert [tuple(r) for r in worker.store.db.execute("SELECT state FROM transactions")] == [
        ("mined",)
    ]
    assert worker.store.sent_jobs() == [] and worker.store.awaited_transactions() == {}
    assert worker.store.count_payloads().get("minted") == 3
