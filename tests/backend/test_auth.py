"""Sign-In with Ethereum and sessions: what is accepted, and the code of every refusal."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import siwe
from eth_account import Account
from flask import Flask
from flask.testing import FlaskClient
from slt_harness import ANVIL_KEYS, sign_text, siwe_message
from werkzeug.test import TestResponse

from backend.auth import STATEMENT, _hash
from backend.store import Session

ALICE = ANVIL_KEYS[2]
BOB = ANVIL_KEYS[3]
ALICE_ADDRESS = Account.from_key(ALICE).address
PUBLIC_URL = "http://127.0.0.1:8080"


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(start_workers=False)


def _nonce(client: FlaskClient) -> dict[str, Any]:
    resp = client.get("/auth/nonce")
    assert resp.status_code == 200
    return resp.get_json()  # type: ignore[no-any-return]


def _verify(client: FlaskClient, message: Any, signature: Any) -> TestResponse:
    return client.post("/auth/verify", json={"message": message, "signature": signature})


def _refused(resp: TestResponse, status: int, code: str) -> dict[str, str]:
    assert "Traceback" not in resp.get_data(as_text=True)
    assert resp.status_code == status, resp.get_json()
    body = resp.get_json()
    assert set(body) == {"code", "name", "description"}
    assert body["code"] == code, body
    return body  # type: ignore[no-any-return]


def _bearer(resp: TestResponse) -> dict[str, str]:
    assert resp.status_code == 200, resp.get_json()
    return {"Authorization": f"Bearer {resp.get_json()['token']}"}


def _flip(signature: str, index: int) -> str:
    raw = bytearray(bytes.fromhex(signature[2:]))
    raw[index] ^= 0x01
    return "0x" + raw.hex()


# Accepted ------------------------------------------------------------------------------------


def test_nonce_describes_the_message_to_sign(client: FlaskClient, clock: Any) -> None:
    nonce = _nonce(client)
    assert nonce["domain"] == "127.0.0.1:8080"
    assert nonce["uri"] == PUBLIC_URL
    assert nonce["chain_id"] == 31337
    assert nonce["statement"] == STATEMENT
    assert len(nonce["nonce"]) >= 8 and nonce["nonce"].isalnum()
    expires = datetime.fromisoformat(nonce["expires_at"]).timestamp()
    assert abs(expires - (clock() + 300)) < 5
    assert _nonce(client)["nonce"] != nonce["nonce"]


def test_sign_in_returns_a_session_for_the_address(client: FlaskClient, clock: Any) -> None:
    message = siwe_message(ALICE_ADDRESS, _nonce(client))
    resp = _verify(client, message, sign_text(ALICE, message))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["address"] == ALICE_ADDRESS
    assert body["chain_id"] == 31337
    assert abs(body["expires_at"] - (clock() + 900)) < 5
    assert len(body["token"]) >= 40

    session = client.get("/auth/session", headers=_bearer(resp))
    assert session.status_code == 200
    assert session.get_json() == {
        "address": ALICE_ADDRESS.lower(),
        "chain_id": 31337,
        "expires_at": body["expires_at"],
    }


def test_only_the_token_hash_is_stored(client: FlaskClient, app: Flask) -> None:
    message = siwe_message(ALICE_ADDRESS, _nonce(client))
    token = _verify(client, message, sign_text(ALICE, message)).get_json()["token"]
    store = app.extensions["slt"].store
    rows = store.db.execute("SELECT token_hash FROM sessions").fetchall()
    assert [bytes(r[0]) for r in rows] == [_hash(token)]
    for path in (store.path, store.path.with_name(store.path.name + "-wal")):
        if path.exists():
            assert token.encode() not in path.read_bytes()


def test_two_sign_ins_give_two_independent_sessions(client: FlaskClient) -> None:
    heads = []
    for _ in range(2):
        message = siwe_message(ALICE_ADDRESS, _nonce(client))
        heads.append(_bearer(_verify(client, message, sign_text(ALICE, message))))
    assert heads[0] != heads[1]
    client.post("/auth/logout", headers=heads[0])
    assert client.get("/auth/session", headers=heads[1]).status_code == 200


# Refused: nonce ------------------------------------------------------------------------------


def test_replayed_message_and_signature_is_refused_siwe_nonce(client: FlaskClient) -> None:
    message = siwe_message(ALICE_ADDRESS, _nonce(client))
    signature = sign_text(ALICE, message)
    assert _verify(client, message, signature).status_code == 200
    body = _refused(_verify(client, message, signature), 401, "siwe_nonce")
    assert "ask for a new one" in body["description"]


def test_nonce_never_issued_is_refused_siwe_nonce(client: FlaskClient) -> None:
    nonce = {**_nonce(client), "nonce": secrets.token_hex(8)}
    message = siwe_message(ALICE_ADDRESS, nonce)
    _refused(_verify(client, message, sign_text(ALICE, message)), 401, "siwe_nonce")


def test_nonce_older_than_nonce_ttl_is_refused_siwe_nonce(client: FlaskClient, clock: Any) -> None:
    nonce = _nonce(client)
    clock.advance(301)  # past nonce_ttl (300 s), still inside the issued-at window
    message = siwe_message(ALICE_ADDRESS, nonce)
    _refused(_verify(client, message, sign_text(ALICE, message)), 401, "siwe_nonce")


def test_nonce_just_inside_nonce_ttl_is_accepted(client: FlaskClient, clock: Any) -> None:
    nonce = _nonce(client)
    clock.advance(290)
    message = siwe_message(ALICE_ADDRESS, nonce)
    assert _verify(client, message, sign_text(ALICE, message)).status_code == 200


# Refused: times ------------------------------------------------------------------------------


def test_expired_message_is_refused_siwe_expired(client: FlaskClient) -> None:
    now = datetime.now(UTC)
    message = siwe_message(
        ALICE_ADDRESS,
        _nonce(client),
        issued_at=now - timedelta(minutes=2),
        expiration=now - timedelta(minutes=1),
    )
    body = _refused(_verify(client, message, sign_text(ALICE, message)), 401, "siwe_expired")
    assert "expired" in body["description"]


def test_message_expiring_when_the_clock_moves_is_refused(client: FlaskClient, clock: Any) -> None:
    message = siwe_message(
        ALICE_ADDRESS, _nonce(client), expiration=datetime.now(UTC) + timedelta(seconds=60)
    )
    clock.advance(120)
    _refused(_verify(client, message, sign_text(ALICE, message)), 401, "siwe_expired")


def test_message_older_than_nonce_ttl_plus_skew_is_refused(client: FlaskClient, clock: Any) -> None:
    nonce = _nonce(client)
    message = siwe_message(ALICE_ADDRESS, nonce)
    clock.advance(300 + 300 + 5)
    body = _refused(_verify(client, message, sign_text(ALICE, message)), 401, "siwe_expired")
    assert "too old" in body["description"]


def test_message_issued_long_ago_is_refused_even_with_a_fresh_nonce(client: FlaskClient) -> None:
    message = siwe_message(
        ALICE_ADDRESS, _nonce(client), issued_at=datetime.now(UTC) - timedelta(hours=1)
    )
    _refused(_verify(client, message, sign_text(ALICE, message)), 401, "siwe_expired")


def test_message_issued_in_the_future_is_refused_siwe_time(client: FlaskClient) -> None:
    message = siwe_message(
        ALICE_ADDRESS, _nonce(client), issued_at=datetime.now(UTC) + timedelta(hours=1)
    )
    _refused(_verify(client, message, sign_text(ALICE, message)), 401, "siwe_time")


def test_message_not_valid_yet_is_refused_siwe_time(client: FlaskClient) -> None:
    nonce = _nonce(client)
    now = datetime.now(UTC)
    message = siwe.SiweMessage(
        domain=nonce["domain"],
        address=ALICE_ADDRESS,
        statement=nonce["statement"],
        uri=nonce["uri"],
        version="1",
        chain_id=nonce["chain_id"],
        nonce=nonce["nonce"],
        issued_at=now.isoformat().replace("+00:00", "Z"),
        not_before=(now + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
    ).prepare_message()
    _refused(_verify(client, message, sign_text(ALICE, message)), 401, "siwe_time")


# Refused: what the message is for ------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"domain": "evil.example"}, "siwe_domain"),
        ({"domain": "127.0.0.1:8081"}, "siwe_domain"),
        ({"uri": "https://evil.example/"}, "siwe_uri"),
        ({"uri": "http://127.0.0.1:8080/other"}, "siwe_uri"),
        ({"chain_id": 1}, "siwe_chain"),
        ({"chain_id": 11155111}, "siwe_chain"),
    ],
    ids=["domain", "domain-port", "uri", "uri-path", "chain-mainnet", "chain-sepolia"],
)
def test_message_for_elsewhere_is_refused(
    client: FlaskClient, change: dict[str, Any], code: str
) -> None:
    message = siwe_message(ALICE_ADDRESS, _nonce(client), **change)
    _refused(_verify(client, message, sign_text(ALICE, message)), 401, code)


def test_refusal_for_another_chain_names_this_chain(client: FlaskClient) -> None:
    message = siwe_message(ALICE_ADDRESS, _nonce(client), chain_id=1)
    body = _refused(_verify(client, message, sign_text(ALICE, message)), 401, "siwe_chain")
    assert "31337" in body["description"]


# Refused: signature --------------------------------------------------------------------------


def test_signature_by_another_key_is_refused_siwe_signature(client: FlaskClient) -> None:
    message = siwe_message(ALICE_ADDRESS, _nonce(client))
    _refused(_verify(client, message, sign_text(BOB, message)), 401, "siwe_signature")


def test_signature_of_another_message_is_refused(client: FlaskClient) -> None:
    message = siwe_message(ALICE_ADDRESS, _nonce(client))
    other = siwe_message(ALICE_ADDRESS, _nonce(client))
    _refused(_verify(client, message, sign_text(ALICE, other)), 401, "siwe_signature")


@pytest.mark.parametrize(
    "signature",
    ["0x1234", "", "0x", "not hex at all", "0x" + "00" * 65, "0x" + "zz" * 65, "0x" + "ff" * 66],
    ids=["short", "empty", "bare-0x", "words", "zeros", "non-hex", "too-long"],
)
def test_garbage_signature_is_refused_siwe_signature(client: FlaskClient, signature: str) -> None:
    message = siwe_message(ALICE_ADDRESS, _nonce(client))
    _refused(_verify(client, message, signature), 401, "siwe_signature")


@pytest.mark.parametrize("index", [0, 31, 32, 63, 64], ids=["r0", "r31", "s0", "s31", "v"])
def test_signature_with_a_flipped_byte_is_refused(client: FlaskClient, index: int) -> None:
    message = siwe_message(ALICE_ADDRESS, _nonce(client))
    signature = _flip(sign_text(ALICE, message), index)
    _refused(_verify(client, message, signature), 401, "siwe_signature")


def test_refused_signature_leaves_no_session(client: FlaskClient, app: Flask) -> None:
    message = siwe_message(ALICE_ADDRESS, _nonce(client))
    _verify(client, message, sign_text(BOB, message))
    assert (
        app.extensions["slt"].store.db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0
    )


# Refused: malformed ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "hello",
        "",
        "127.0.0.1:8080 wants you to sign in with your Ethereum account:\n0xnot-an-address\n",
        "\ud800",
        "x" * 5000,
    ],
    ids=["words", "empty", "truncated", "surrogate", "too-long"],
)
def test_malformed_message_is_400_invalid_siwe(client: FlaskClient, message: str) -> None:
    _refused(_verify(client, message, "0x1234"), 400, "invalid_siwe")


def test_message_with_a_line_removed_is_400_invalid_siwe(client: FlaskClient) -> None:
    message = siwe_message(ALICE_ADDRESS, _nonce(client))
    broken = "\n".join(line for line in message.split("\n") if not line.startswith("Nonce:"))
    _refused(_verify(client, broken, sign_text(ALICE, broken)), 400, "invalid_siwe")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"message": "m"},
        {"signature": "0x12"},
        {"message": 5, "signature": "0x12"},
        {"message": "m", "signature": ["0x12"]},
        {"message": None, "signature": None},
    ],
    ids=["empty", "no-signature", "no-message", "message-int", "signature-list", "nulls"],
)
def test_verify_with_missing_or_non_string_fields_is_400(
    client: FlaskClient, body: dict[str, Any]
) -> None:
    body = _refused(client.post("/auth/verify", json=body), 400, "invalid_siwe")
    assert "must be strings" in body["description"]


def test_verify_with_non_json_body_is_400_invalid_json(client: FlaskClient) -> None:
    _refused(client.post("/auth/verify", data="message=x"), 400, "invalid_json")


def test_verify_with_overlong_signature_is_400(client: FlaskClient) -> None:
    message = siwe_message(ALICE_ADDRESS, _nonce(client))
    _refused(_verify(client, message, "0x" + "ab" * 600), 400, "invalid_siwe")


# Sessions ------------------------------------------------------------------------------------


def test_session_expires_after_session_ttl(client: FlaskClient, sign_in: Any, clock: Any) -> None:
    alice = sign_in(ALICE)
    clock.advance(890)
    assert client.get("/auth/session", headers=alice).status_code == 200
    clock.advance(20)  # 910 s > session_ttl (900 s)
    body = _refused(client.get("/auth/session", headers=alice), 401, "session")
    assert "sign in again" in body["description"]
    _refused(client.get("/tokens", headers=alice), 401, "session")
    _refused(client.post("/generate", json={"prompt": "p"}, headers=alice), 401, "session")


def test_logout_revokes_the_token(client: FlaskClient, sign_in: Any) -> None:
    alice = sign_in(ALICE)
    assert client.get("/tokens", headers=alice).status_code == 200
    resp = client.post("/auth/logout", headers=alice)
    assert resp.status_code == 204
    assert resp.get_data() == b""
    _refused(client.get("/auth/session", headers=alice), 401, "session")
    _refused(client.get("/tokens", headers=alice), 401, "session")
    assert client.post("/auth/logout", headers=alice).status_code == 204  # idempotent


def test_logout_without_a_session_is_204(client: FlaskClient) -> None:
    assert client.post("/auth/logout").status_code == 204
    assert client.post("/auth/logout", headers={"Authorization": "Basic x"}).status_code == 204


def test_session_for_another_chain_is_refused(client: FlaskClient, app: Flask, clock: Any) -> None:
    token = secrets.token_urlsafe(32)
    store = app.extensions["slt"].store
    store.add_session(_hash(token), Session(ALICE_ADDRESS.lower(), 1, clock() + 900), clock())
    headers = {"Authorization": f"Bearer {token}"}
    body = _refused(client.get("/auth/session", headers=headers), 401, "session")
    assert "another chain" in body["description"]
    _refused(client.get("/tokens", headers=headers), 401, "session")


def test_session_inserted_for_this_chain_is_accepted(
    client: FlaskClient, app: Flask, clock: Any
) -> None:
    # The control for the test above: the same insert with this chain's id works.
    token = secrets.token_urlsafe(32)
    store = app.extensions["slt"].store
    store.add_session(_hash(token), Session(ALICE_ADDRESS.lower(), 31337, clock() + 900), clock())
    resp = client.get("/auth/session", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    assert resp.get_json()["address"] == ALICE_ADDRESS.lower()
