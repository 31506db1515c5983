"""Durability: the chain going away, the process restarting, the master key rotating."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from slt_harness import ANVIL_KEYS, Anvil, deploy, sign_text, siwe_message, tool_env, wait_for

from backend import Settings
from backend.errors import ChainUnavailable

FRANK = ANVIL_KEYS[2]


def _login(client: Any, key: str) -> dict[str, str]:
    from eth_account import Account

    nonce = client.get("/auth/nonce").get_json()
    message = siwe_message(Account.from_key(key).address, nonce)
    body = client.post(
        "/auth/verify", json={"message": message, "signature": sign_text(key, message)}
    )
    return {"Authorization": f"Bearer {body.get_json()['token']}"}


def _token_id(client: Any, headers: dict[str, str], payload_id: str) -> int:
    return int(
        wait_for(
            lambda: client.get(f"/tokens/{payload_id}", headers=headers).get_json()["chain"][
                "token_id"
            ],
            timeout=20,
        )
    )


def test_api_creates_and_deletes_while_the_chain_is_down_then_drains(
    make_app: Any, settings: Settings, tmp_path: Path
) -> None:
    node = Anvil(state_file=tmp_path / "anvil-state.json").start()
    try:
        record = deploy(node.url, tmp_path / "outage-record.json")
        app: Flask = make_app(rpc_url=node.url, deployment_file=tmp_path / "outage-record.json")
        client = app.test_client()
        frank = _login(client, FRANK)
        first = client.post("/generate", json={"prompt": "marker-outage-1"}, headers=frank)
        first_id = first.get_json()["token"]["id"]
        first_token = _token_id(client, frank, first_id)

        node.stop()  # dumps its state; the chain is gone
        health = client.get("/health").get_json()
        assert health["status"] == "degraded" and health["chain"]["ok"] is False

        second = client.post("/generate", json={"prompt": "marker-outage-2"}, headers=frank)
        assert second.status_code == 201
        second_id = second.get_json()["token"]["id"]
        opened = client.post(f"/tokens/{second_id}/decrypt", headers=frank)
        assert opened.get_json()["prompt"] == "marker-outage-2"
        deleted = client.delete(f"/tokens/{first_id}", headers=frank)
        assert deleted.status_code == 200
        store = app.extensions["slt"].store
        assert store.get_secret(first_id) is None  # shredded at once, chain or no chain
        assert store.outbox_counts().get("mint:pending") == 1
        assert store.outbox_counts().get("burn:pending") == 1

        down_at = time.monotonic()
        node.start(load_state=tmp_path / "anvil-state.json")
        second_token = _token_id(client, frank, second_id)
        contract = node.w3().eth.contract(address=record["address"], abi=record["abi"])

        def burned() -> bool:
            try:
                contract.functions.ownerOf(first_token).call()
                return False
            except Exception:
                return True

        wait_for(burned, timeout=20)
        wait_for(lambda: not store.outbox_counts(), timeout=20)
        drained = time.monotonic() - down_at
        print(f"outbox drained {drained:.2f}s after the chain came back")
        from eth_account import Account

        assert contract.functions.ownerOf(second_token).call() == Account.from_key(FRANK).address
        assert client.get("/health").get_json()["status"] == "ok"
    finally:
        node.stop()


def test_payloads_survive_a_restart_and_a_key_rotation(
    make_app: Any, settings: Settings, record: dict[str, Any]
) -> None:
    first: Flask = make_app()
    client = first.test_client()
    frank = _login(client, FRANK)
    created = client.post(
        "/generate", json={"prompt": "marker-restart", "emotion": "sad"}, headers=frank
    )
    payload_id = created.get_json()["token"]["id"]
    _token_id(client, frank, payload_id)
    first.extensions["slt"].worker.stop()
    first.extensions["slt"].store.close()

    # A new process on the same files reads it back.
    second: Flask = make_app()
    client = second.test_client()
    frank = _login(client, FRANK)
    assert client.post(f"/tokens/{payload_id}/decrypt", headers=frank).get_json()["prompt"] == (
        "marker-restart"
    )
    second.extensions["slt"].worker.stop()
    second.extensions["slt"].store.close()

    env = tool_env()
    env.update(
        SLT_DATA_DIR=str(settings.data_dir),
        SLT_RPC_URL=settings.rpc_url,
        SLT_DEPLOYMENT_FILE=str(settings.deployment_file),
    )
    rotated = subprocess.run(
        [sys.executable, "-m", "backend", "rotate-keys"], env=env, capture_output=True, text=True
    )
    assert rotated.returncode == 0, rotated.stderr
    assert "version 2" in rotated.stdout

    third: Flask = make_app()
    store = third.extensions["slt"].store
    assert (
        store.key_versions() == {2: store.key_versions().get(2, 0)} and store.key_versions()[2] >= 1
    )
    client = third.test_client()
    frank = _login(client, FRANK)
    opened = client.post(f"/tokens/{payload_id}/decrypt", headers=frank).get_json()
    assert opened["prompt"] == "marker-restart" and opened["emotion"] == "sad"


def test_a_relayer_out_of_funds_stalls_nothing_once_funded_again(
    make_app: Any, clock: Any, anvil: Anvil, monkeypatch: Any
) -> None:
    # The node refuses a transaction whose fee cap the relayer's balance no longer covers (the
    # base fee rose after it was signed, or the relayer ran dry), and would refuse the same
    # bytes every time: the outbox must sign the jobs again rather than send them round after
    # round, and mint once the relayer is funded.
    app = make_app(start_workers=False)
    worker = app.extensions["slt"].worker
    store, chain = worker.store, worker.chain
    relayer = chain.relayer_address
    w3 = anvil.w3()
    funds = w3.eth.get_balance(relayer)

    def fund(wei: int) -> None:
        w3.provider.make_request("anvil_setBalance", [relayer, hex(wei)])  # type: ignore[arg-type]

    def txs() -> list[tuple[str, str]]:
        return [tuple(r) for r in store.db.execute("SELECT tx_hash, state FROM transactions")]

    def job() -> tuple[str, str | None]:
        row = store.db.execute("SELECT state, last_error FROM outbox WHERE kind = 'mint'")
        return tuple(row.fetchone())  # type: ignore[return-value]

    created = app.test_client().post("/generate", json={"prompt": "a dry relayer"}).get_json()
    try:
        fund(0)
        worker.process_outbox()  # signed and recorded, refused at its first broadcast
        [(first, state)] = txs()
        assert state == "dropped"
        assert job()[0] == "pending" and "nsufficient funds" in str(job()[1])

        # Sent, but lost on the way (a timeout): recorded, unknown to the node. Sent again
        # later, when the relayer cannot pay for it.
        fund(funds)
        clock.advance(120)  # past the job's back-off
        lost = chain.broadcast

        def timed_out(raw: bytes) -> None:
            raise ChainUnavailable("the chain is unreachable (ReadTimeout)")

        monkeypatch.setattr(chain, "broadcast", timed_out)
        with pytest.raises(ChainUnavailable):  # the worker's loop backs off on it
            worker.process_outbox()
        monkeypatch.setattr(chain, "broadcast", lost)
        second = next(h for h, s in txs() if s == "sent")
        fund(0)
        worker.process_outbox()
        assert dict(txs()) == {first: "dropped", second: "dropped"}
        assert job()[0] == "pending"
    finally:
        fund(funds)
    clock.advance(120)
    worker.process_outbox()
    worker.follow()
    minted = store.get_payload(created["token"]["id"])
    assert minted is not None and minted.chain_token_id is not None
    states = dict(txs())  # (signed again alike, a transaction has the same hash: one row)
    assert states[str(minted.mint_tx)] == "mined" and "sent" not in states.values()
