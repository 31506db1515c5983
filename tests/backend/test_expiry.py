"""Expiry: reads refuse from expires_at on; the sweeper shreds and burns."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from slt_harness import ANVIL_KEYS, Anvil, wait_for

ERIN = ANVIL_KEYS[2]


def test_expired_payload_is_refused_then_shredded_and_burned(
    make_app: Any, clock: Any, anvil: Anvil, record: dict[str, Any]
) -> None:
    app: Flask = make_app(sweep_interval=0.2)
    client: FlaskClient = app.test_client()
    from eth_account import Account
    from slt_harness import sign_text, siwe_message

    nonce = client.get("/auth/nonce").get_json()
    message = siwe_message(Account.from_key(ERIN).address, nonce)
    token = client.post(
        "/auth/verify", json={"message": message, "signature": sign_text(ERIN, message)}
    ).get_json()["token"]
    erin = {"Authorization": f"Bearer {token}"}

    body = client.post(
        "/generate", json={"prompt": "marker-expiry", "ttl_seconds": 120}, headers=erin
    )
    payload_id = body.get_json()["token"]["id"]
    token_id = wait_for(
        lambda: client.get(f"/tokens/{payload_id}", headers=erin).get_json()["chain"]["token_id"]
    )
    store = app.extensions["slt"].store
    contract = anvil.w3().eth.contract(address=record["address"], abi=record["abi"])
    assert client.post(f"/tokens/{payload_id}/decrypt", headers=erin).status_code == 200

    # One second before the end it still reads.
    expires_at = store.get_payload(payload_id).expires_at
    app.extensions["slt"].worker.stop()  # hold the sweeper: reads alone must refuse
    clock.advance(expires_at - clock() - 1)
    assert client.post(f"/tokens/{payload_id}/decrypt", headers=erin).status_code == 200
    clock.advance(1)
    refused = client.post(f"/tokens/{payload_id}/decrypt", headers=erin)
    assert refused.status_code == 410
    assert refused.get_json()["code"] == "token_expired"
    assert store.get_secret(payload_id) is not None  # not yet swept

    # The chain's clock moves too, so the token is expired there as well.
    anvil.increase_time(200)
    assert contract.functions.isTokenExpired(token_id).call() is True

    app.extensions["slt"].worker.start(0.1, 0.1, 0.2, 0.1)
    wait_for(lambda: store.get_secret(payload_id) is None, timeout=5.0)
    assert store.get_payload(payload_id).status == "expired"

    def burned() -> bool:
        try:
            contract.functions.ownerOf(token_id).call()
            return False
        except Exception:
            return True

    wait_for(burned, timeout=10.0)
    receipt = client.get(f"/tokens/{payload_id}/receipt", headers=erin).get_json()
    wait_for(
        lambda: client.get(f"/tokens/{payload_id}/receipt", headers=erin).get_json()["burn_tx"]
    )
    assert receipt["shredded_at"] is not None
