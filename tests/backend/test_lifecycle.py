"""Create, list, decrypt, persist, delete: the whole life of a payload, on a real chain."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
from eth_account import Account
from flask import Flask
from flask.testing import FlaskClient
from slt_harness import ANVIL_KEYS, Anvil, wait_for
from web3 import Web3

from backend import GIL_SWITCH_INTERVAL
from backend.vault import new_payload_id

ALICE = ANVIL_KEYS[2]
BOB = ANVIL_KEYS[3]


def _contract(anvil: Anvil, record: dict[str, Any]) -> Any:
    return anvil.w3().eth.contract(address=record["address"], abi=record["abi"])


def _minted(client: FlaskClient, headers: dict[str, str], payload_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = client.get(f"/tokens/{payload_id}", headers=headers).get_json()
        return body if body["chain"]["token_id"] is not None else None

    return wait_for(check)  # type: ignore[no-any-return]


def test_create_list_decrypt_delete(
    client: FlaskClient, sign_in: Any, anvil: Anvil, record: dict[str, Any]
) -> None:
    alice = sign_in(ALICE)
    resp = client.post(
        "/generate", json={"prompt": "marker-lifecycle-1", "emotion": "happy"}, headers=alice
    )
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    token = body["token"]
    assert token["value"] == "Symbiotic Learning Token"
    assert token["metadata"]["reward_score"] == 0.5
    assert token["metadata"]["switchable"] is True
    assert "marker-lifecycle-1" not in resp.get_data(as_text=True)
    assert "secret" not in body

    status = _minted(client, alice, token["id"])
    contract = _contract(anvil, record)
    alice_address = Account.from_key(ALICE).address
    assert contract.functions.ownerOf(status["chain"]["token_id"]).call() == alice_address
    assert status["status"] == "minted"

    listed = client.get("/tokens", headers=alice).get_json()["tokens"]
    assert [t["id"] for t in listed] == [token["id"]]

    opened = client.post(f"/tokens/{token['id']}/decrypt", headers=alice).get_json()
    assert opened == {"id": token["id"], "kind": "text", "prompt": "marker-lifecycle-1",
                      "emotion": "happy"}  # fmt: skip

    deleted = client.delete(f"/delete/{token['id']}", headers=alice)
    assert deleted.status_code == 200
    receipt = deleted.get_json()["receipt"]
    assert receipt["token"] == token["id"]
    assert receipt["commitment"] == status["chain"]["commitment"]
    assert receipt["shredded_at"] is not None

    gone = client.post(f"/tokens/{token['id']}/decrypt", headers=alice)
    assert gone.status_code == 410
    assert gone.get_json()["code"] == "token_deleted"

    def burned() -> dict[str, Any] | None:
        r = client.get(f"/tokens/{token['id']}/receipt", headers=alice).get_json()
        return r if r["burn_tx"] else None

    final = wait_for(burned)
    assert final["burn_status"] == "burned"
    token_id = status["chain"]["token_id"]
    assert contract.functions.balanceOf(alice_address).call() == 0 or not _exists(
        contract, token_id
    )
    assert not _exists(contract, token_id)


def _exists(contract: Any, token_id: int) -> bool:
    try:
        contract.functions.ownerOf(token_id).call()
        return True
    except Exception:
        return False


def test_persist_through_wallet(
    client: FlaskClient, sign_in: Any, anvil: Anvil, record: dict[str, Any], app: Flask
) -> None:
    bob = sign_in(BOB)
    token = client.post("/generate", json={"prompt": "p", "switchable": True}, headers=bob)
    payload_id = token.get_json()["token"]["id"]
    _minted(client, bob, payload_id)
    resp = client.post(f"/tokens/{payload_id}/persist", headers=bob)
    assert resp.status_code == 202
    tx = resp.get_json()["transaction"]
    w3: Web3 = anvil.w3()
    bob_account = Account.from_key(BOB)
    signed = bob_account.sign_transaction(
        {"to": tx["to"], "data": tx["data"], "chainId": tx["chain_id"], "gas": 200_000,
         "gasPrice": w3.eth.gas_price, "nonce": w3.eth.get_transaction_count(bob_account.address)}
    )  # fmt: skip
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
    status = wait_for(
        lambda: (
            (s := client.get(f"/tokens/{payload_id}", headers=bob).get_json())["persistent"] and s
        )
    )
    assert status["status"] == "persistent"
    assert status["expires_at"] is None


def test_in_process_workers_shorten_the_gil_switch_interval(make_app: Any) -> None:
    # The chain worker's threads must not hold a request off the GIL for 5 ms at a time.
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        make_app(start_workers=False)
        assert sys.getswitchinterval() == pytest.approx(0.005)
        make_app(start_workers=True)
        assert sys.getswitchinterval() <= GIL_SWITCH_INTERVAL
    finally:
        sys.setswitchinterval(before)


def test_payload_ids_are_time_ordered_and_unguessable(client: FlaskClient) -> None:
    start = 1_700_000_000.0
    ids = [new_payload_id(start + i / 1000) for i in range(2000)]
    assert all(re.fullmatch(r"token_[0-9a-f]{32}", i) for i in ids)
    assert ids == sorted(ids)  # a new id goes at the end of the id indexes
    assert int(ids[0][6:18], 16) == 1_700_000_000_000  # milliseconds first
    same_moment = {new_payload_id(start) for _ in range(2000)}
    assert len(same_moment) == 2000  # then 80 random bits
    assert len({i[18:] for i in same_moment}) == 2000
    made = [
        client.post("/generate", json={"prompt": f"p{i}"}).get_json()["token"]["id"]
        for i in range(3)
    ]
    times = [i[6:18] for i in made]  # within one millisecond, the random part orders them
    assert times == sorted(times) and len(set(made)) == 3
