"""Anonymous payloads: held in the relayer's custody on chain, opened by their secret alone."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from flask.testing import FlaskClient
from slt_harness import ANVIL_KEYS, Anvil, wait_for

RELAYER = Account.from_key(ANVIL_KEYS[1]).address
ALICE = ANVIL_KEYS[2]


def _create(client: FlaskClient, prompt: str = "marker-anon", **extra: Any) -> dict[str, Any]:
    resp = client.post("/generate", json={"prompt": prompt, **extra})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


def _secret(secret: str) -> dict[str, str]:
    return {"X-SLT-Secret": secret}


def _minted(client: FlaskClient, payload_id: str, secret: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = client.get(f"/tokens/{payload_id}", headers=_secret(secret)).get_json()
        return body if body["chain"]["token_id"] is not None else None

    return wait_for(check)  # type: ignore[no-any-return]


def _error(resp: Any, status: int, code: str) -> None:
    assert resp.status_code == status, resp.get_json()
    body = resp.get_json()
    assert set(body) == {"code", "name", "description"}
    assert body["code"] == code


def test_anonymous_generate_returns_a_secret_once(client: FlaskClient) -> None:
    body = _create(client, emotion="excited", user_id="twin-7")
    secret = body["secret"]
    assert isinstance(secret, str) and len(secret) >= 40
    token = body["token"]
    assert token["chain"]["owner"] == RELAYER.lower()
    assert token["chain"]["status"] == "pending_mint"
    assert token["metadata"]["digital_twin"] == {"user_id": "twin-7"}
    assert token["metadata"]["reward_score"] == 0.5

    other = _create(client)
    assert other["secret"] != secret
    assert _create(client)["token"]["metadata"]["digital_twin"] == {"user_id": "anonymous"}


def test_secret_reads_decrypts_and_deletes(client: FlaskClient) -> None:
    body = _create(client, "marker-anon-read", emotion="calm")
    payload_id, secret = body["token"]["id"], body["secret"]

    status = client.get(f"/tokens/{payload_id}", headers=_secret(secret))
    assert status.status_code == 200
    assert status.get_json()["id"] == payload_id
    opened = client.post(f"/tokens/{payload_id}/decrypt", headers=_secret(secret))
    assert opened.get_json() == {
        "id": payload_id,
        "kind": "text",
        "prompt": "marker-anon-read",
        "emotion": "calm",
    }

    deleted = client.delete(f"/tokens/{payload_id}", headers=_secret(secret))
    assert deleted.status_code == 200
    receipt = deleted.get_json()["receipt"]
    assert receipt["token"] == payload_id
    assert receipt["shredded_at"] is not None


def test_delete_through_the_original_path_works_with_the_secret(client: FlaskClient) -> None:
    body = _create(client)
    resp = client.delete(f"/delete/{body['token']['id']}", headers=_secret(body["secret"]))
    assert resp.status_code == 200
    assert resp.get_json()["response"].endswith("deleted, data swiped clean.")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/tokens/{id}"),
        ("POST", "/tokens/{id}/decrypt"),
        ("DELETE", "/tokens/{id}"),
        ("DELETE", "/delete/{id}"),
        ("GET", "/tokens/{id}/receipt"),
        ("POST", "/tokens/{id}/persist"),
    ],
)
def test_without_the_secret_is_401_secret_required(
    client: FlaskClient, sign_in: Any, method: str, path: str
) -> None:
    payload_id = _create(client)["token"]["id"]
    url = path.format(id=payload_id)
    _error(client.open(url, method=method), 401, "secret_required")
    _error(client.open(url, method=method, headers={"X-SLT-Secret": ""}), 401, "secret_required")
    # A wallet session is no substitute, not even the custody wallet's own.
    _error(client.open(url, method=method, headers=sign_in(ANVIL_KEYS[1])), 401, "secret_required")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/tokens/{id}"),
        ("POST", "/tokens/{id}/decrypt"),
        ("DELETE", "/tokens/{id}"),
        ("GET", "/tokens/{id}/receipt"),
        ("POST", "/tokens/{id}/persist"),
    ],
)
def test_another_payloads_secret_is_403_wrong_secret(
    client: FlaskClient, method: str, path: str
) -> None:
    mine = _create(client, "marker-anon-mine")
    theirs = _create(client)
    url = path.format(id=mine["token"]["id"])
    for secret in (theirs["secret"], mine["secret"] + "x", mine["secret"][:-1], "guess"):
        resp = client.open(url, method=method, headers=_secret(secret))
        _error(resp, 403, "wrong_secret")
        assert "marker-anon-mine" not in resp.get_data(as_text=True)
    # The refused attempts changed nothing.
    opened = client.post(f"/tokens/{mine['token']['id']}/decrypt", headers=_secret(mine["secret"]))
    assert opened.get_json()["prompt"] == "marker-anon-mine"


def test_token_is_minted_to_the_custody_address(
    client: FlaskClient, anvil: Anvil, record: dict[str, Any]
) -> None:
    body = _create(client)
    status = _minted(client, body["token"]["id"], body["secret"])
    contract = anvil.w3().eth.contract(address=record["address"], abi=record["abi"])
    assert contract.functions.ownerOf(status["chain"]["token_id"]).call() == RELAYER
    assert status["status"] == "minted"
    assert status["chain"]["owner"] == RELAYER.lower()
    assert status["chain"]["mint_tx"].startswith("0x")
    token_id = status["chain"]["token_id"]
    assert contract.functions.endTime(token_id).call() == int(status["expires_at"])
    logs = contract.events.CommitmentPublished().get_logs(
        from_block=record["block_number"], argument_filters={"tokenId": token_id}
    )
    assert ["0x" + bytes(e["args"]["commitment"]).hex() for e in logs] == [
        status["chain"]["commitment"]
    ]


def test_secret_never_appears_in_later_responses(client: FlaskClient) -> None:
    body = _create(client)
    payload_id, secret = body["token"]["id"], body["secret"]
    status = _minted(client, payload_id, secret)
    responses = [
        client.get(f"/tokens/{payload_id}", headers=_secret(secret)),
        client.get(f"/tokens/{payload_id}/receipt", headers=_secret(secret)),
        client.post(f"/tokens/{payload_id}/decrypt", headers=_secret(secret)),
        client.get(f"/metadata/{status['chain']['token_id']}"),
        client.delete(f"/tokens/{payload_id}", headers=_secret(secret)),
    ]
    for resp in responses:
        assert resp.status_code == 200, resp.get_json()
        assert secret not in resp.get_data(as_text=True)
        assert "secret" not in resp.get_json()


def test_secret_is_stored_only_as_a_hash(client: FlaskClient, app: Any) -> None:
    body = _create(client)
    store = app.extensions["slt"].store
    for path in (store.path, store.path.with_name(store.path.name + "-wal")):
        if path.exists():
            assert body["secret"].encode() not in path.read_bytes()


def test_anonymous_tokens_are_not_listed_for_any_wallet(client: FlaskClient, sign_in: Any) -> None:
    body = _create(client)
    _minted(client, body["token"]["id"], body["secret"])
    for key in (ANVIL_KEYS[1], ALICE):
        listed = client.get("/tokens", headers=sign_in(key)).get_json()["tokens"]
        assert body["token"]["id"] not in [t["id"] for t in listed]


def test_persist_with_the_secret_is_sent_by_the_relayer(client: FlaskClient) -> None:
    body = _create(client, switchable=True)
    payload_id, secret = body["token"]["id"], body["secret"]
    _minted(client, payload_id, secret)
    resp = client.post(f"/tokens/{payload_id}/persist", headers=_secret(secret))
    assert resp.status_code == 202
    assert resp.get_json() == {"status": "pending"}

    def persistent() -> dict[str, Any] | None:
        s = client.get(f"/tokens/{payload_id}", headers=_secret(secret)).get_json()
        return s if s["persistent"] else None

    status = wait_for(persistent)
    assert status["status"] == "persistent"
    assert status["expires_at"] is None


def test_after_delete_the_secret_still_reads_the_receipt(client: FlaskClient) -> None:
    body = _create(client)
    payload_id, secret = body["token"]["id"], body["secret"]
    assert client.delete(f"/tokens/{payload_id}", headers=_secret(secret)).status_code == 200
    _error(
        client.post(f"/tokens/{payload_id}/decrypt", headers=_secret(secret)), 410, "token_deleted"
    )
    receipt = client.get(f"/tokens/{payload_id}/receipt", headers=_secret(secret))
    assert receipt.status_code == 200
