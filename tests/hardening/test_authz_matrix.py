"""Authorization matrix: every endpoint that touches a token, called by every kind of caller.

Each cell runs on a payload of its own, created and minted on a real chain beforehand, so a
cell that succeeds (a delete) cannot change another cell's answer. Callers that only *try* to
get a session (a forged or replayed sign-in) make their call with whatever that attempt gave
them, which must be nothing. After a refused call the payload must be untouched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hardening_support import (
    address_of,
    figure,
    settings_for,
    wait_until,
)
from slt_harness import ANVIL_KEYS, Anvil, Clock, sign_text, siwe_message

from backend import create_app
from backend.auth import Auth

ALICE, BOB, MALLORY = ANVIL_KEYS[2], ANVIL_KEYS[3], ANVIL_KEYS[4]

# (label, method, path template); {id} is the payload's id.
ENDPOINTS = [
    ("GET /tokens/{id}", "GET", "/tokens/{id}"),
    ("POST decrypt", "POST", "/tokens/{id}/decrypt"),
    ("POST persist", "POST", "/tokens/{id}/persist"),
    ("DELETE /tokens/{id}", "DELETE", "/tokens/{id}"),
    ("DELETE /delete/{id}", "DELETE", "/delete/{id}"),
    ("GET receipt", "GET", "/tokens/{id}/receipt"),
    ("GET /tokens", "GET", "/tokens"),
]
SUCCESS = {"POST persist": 202}  # otherwise 200

CALLERS = [
    "owner",
    "other wallet",
    "no session",
    "expired session",
    "wrong chain",
    "forged: other key",
    "forged: edited",
    "replayed nonce",
    "other secret",
]


def expected(caller: str, endpoint: str) -> int:
    if caller == "owner":
        return SUCCESS.get(endpoint, 200)
    if caller == "other wallet":
        return 200 if endpoint == "GET /tokens" else 403  # the list is theirs, without it
    return 401


ANON_ENDPOINTS = [e for e in ENDPOINTS if e[0] != "GET /tokens"]
ANON_CALLERS = ["its secret", "other secret", "no secret", "wallet session"]


def anon_expected(caller: str, endpoint: str) -> int:
    return {
        "its secret": SUCCESS.get(endpoint, 200),
        "other secret": 403,
        "no secret": 401,
        "wallet session": 401,
    }[caller]


@dataclass
class Matrix:
    app: Flask
    client: FlaskClient
    callers: dict[str, dict[str, str]]
    attempts: dict[str, str]  # caller -> what its sign-in attempt was answered
    targets: dict[tuple[str, str], str]  # (caller, endpoint) -> wallet payload id
    anon_targets: dict[tuple[str, str], tuple[str, str]]  # -> (payload id, secret)
    results: dict[str, dict[str, str]]
    anon_results: dict[str, dict[str, str]]


def _nonce(client: FlaskClient) -> dict[str, Any]:
    return client.get("/auth/nonce").get_json()  # type: ignore[no-any-return]


def _verify(client: FlaskClient, message: str, signature: str) -> tuple[int, dict[str, Any]]:
    resp = client.post("/auth/verify", json={"message": message, "signature": signature})
    return resp.status_code, resp.get_json()


def _headers_from(status: int, body: dict[str, Any]) -> dict[str, str]:
    """What a sign-in attempt gives its caller: a session only if it was accepted."""
    return {"Authorization": f"Bearer {body['token']}"} if status == 200 else {}


def _callers(
    app: Flask, client: FlaskClient, clock: Clock
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    callers: dict[str, dict[str, str]] = {}
    attempts: dict[str, str] = {}

    def sign_in(key: str) -> dict[str, str]:
        message = siwe_message(address_of(key), _nonce(client))
        status, body = _verify(client, message, sign_text(key, message))
        assert status == 200, body
        return _headers_from(status, body)

    callers["owner"] = sign_in(ALICE)
    callers["other wallet"] = sign_in(BOB)
    callers["no session"] = {}

    # Right address, wrong chain: the service refuses a SIWE message for chain 1 ...
    message = siwe_message(address_of(ALICE), _nonce(client), chain_id=1)
    status, body = _verify(client, message, sign_text(ALICE, message))
    assert (status, body["code"]) == (401, "siwe_chain")
    # ... and a session made for chain 1 (same store, an Auth on chain 1) is refused on use.
    s = app.extensions["slt"]
    other_chain = Auth(s.store, s.settings, 1, clock)
    message = siwe_message(address_of(ALICE), other_chain.new_nonce(), chain_id=1)
    session = other_chain.verify(message, sign_text(ALICE, message))
    assert session["chain_id"] == 1
    callers["wrong chain"] = {"Authorization": f"Bearer {session['token']}"}
    attempts["wrong chain"] = "chain-1 SIWE: 401 siwe_chain; chain-1 session used"

    # Forged: Alice's address, Mallory's signature.
    message = siwe_message(address_of(ALICE), _nonce(client))
    status, body = _verify(client, message, sign_text(MALLORY, message))
    callers["forged: other key"] = _headers_from(status, body)
    attempts["forged: other key"] = f"{status} {body.get('code')}"

    # Forged: Alice signed a message; it was edited afterwards (a later Issued At).
    message = siwe_message(address_of(ALICE), _nonce(client))
    signature = sign_text(ALICE, message)
    head, _, issued = message.rpartition("Issued At: ")
    later = datetime.fromisoformat(issued.replace("Z", "+00:00")).timestamp() + 1
    edited = head + "Issued At: " + datetime.fromtimestamp(later, UTC).isoformat()
    edited = edited.replace("+00:00", "Z")
    assert edited != message
    status, body = _verify(client, edited, signature)
    callers["forged: edited"] = _headers_from(status, body)
    attempts["forged: edited"] = f"{status} {body.get('code')}"

    # Replayed: Alice's genuine sign-in, captured and sent again.
    message = siwe_message(address_of(ALICE), _nonce(client))
    signature = sign_text(ALICE, message)
    assert _verify(client, message, signature)[0] == 200
    status, body = _verify(client, message, signature)
    callers["replayed nonce"] = _headers_from(status, body)
    attempts["replayed nonce"] = f"{status} {body.get('code')}"

    # Expired: Alice signed in 1000 s ago; sessions last 900 s. Made last, so that no later
    # sign-in prunes it: the row is still there, only its time is over.
    clock.advance(-1000)
    nonce = _nonce(client)
    message = siwe_message(address_of(ALICE), nonce, issued_at=datetime.fromtimestamp(clock(), UTC))
    status, body = _verify(client, message, sign_text(ALICE, message))
    clock.advance(1000)
    assert status == 200 and body["expires_at"] < time.time()
    callers["expired session"] = _headers_from(status, body)
    rows = s.store.db.execute("SELECT COUNT(*) FROM sessions WHERE expires_at < ?", (clock(),))
    assert rows.fetchone()[0] >= 1
    attempts["expired session"] = "signed in 1000 s ago (TTL 900 s)"
    return callers, attempts


@pytest.fixture(scope="module")
def matrix(
    anvil: Anvil, record: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Matrix]:
    clock = Clock()
    folder = tmp_path_factory.mktemp("authz")
    app = create_app(settings_for(record, anvil.url, Path(folder)), clock=clock)
    app.config["TESTING"] = True
    client = app.test_client()
    try:
        callers, attempts = _callers(app, client, clock)

        def anonymous() -> tuple[str, str]:
            body = client.post("/generate", json={"prompt": "marker-authz-anon"}).get_json()
            return body["token"]["id"], body["secret"]

        # "other secret": the secret of an unrelated anonymous payload.
        callers["other secret"] = {"X-SLT-Secret": anonymous()[1]}
        targets = {}
        for caller in CALLERS:
            for label, _, _ in ENDPOINTS:
                resp = client.post(
                    "/generate",
                    json={"prompt": f"marker-authz {caller} {label}"},
                    headers=callers["owner"],
                )
                assert resp.status_code == 201
                targets[(caller, label)] = resp.get_json()["token"]["id"]
        anon_targets = {(c, e[0]): anonymous() for c in ANON_CALLERS for e in ANON_ENDPOINTS}
        store = app.extensions["slt"].store
        ids = list(targets.values()) + [p for p, _ in anon_targets.values()]
        wait_until(lambda: all(store.get_payload(i).chain_token_id is not None for i in ids), 60)
        yield Matrix(app, client, callers, attempts, targets, anon_targets, {}, {})
    finally:
        app.extensions["slt"].worker.stop()
        app.extensions["slt"].store.close()


def _check_untouched(m: Matrix, payload_id: str, prompt: str) -> None:
    """A refused caller changed nothing: the owner still reads the same plaintext."""
    store = m.app.extensions["slt"].store
    assert store.get_secret(payload_id) is not None
    assert store.get_payload(payload_id).status == "minted"


@pytest.mark.parametrize("endpoint", [e[0] for e in ENDPOINTS])
@pytest.mark.parametrize("caller", CALLERS)
def test_wallet_token_matrix(matrix: Matrix, caller: str, endpoint: str) -> None:
    _, method, template = next(e for e in ENDPOINTS if e[0] == endpoint)
    payload_id = matrix.targets[(caller, endpoint)]
    prompt = f"marker-authz {caller} {endpoint}"
    resp = matrix.client.open(
        template.format(id=payload_id), method=method, headers=matrix.callers[caller]
    )
    matrix.results.setdefault(caller, {})[endpoint] = str(resp.status_code)
    text = resp.get_data(as_text=True)
    want = expected(caller, endpoint)
    assert resp.status_code == want, f"{caller} / {endpoint}: {resp.status_code} {text}"
    body = resp.get_json()
    if want >= 400:
        assert set(body) == {"code", "name", "description"}
        assert prompt not in text
        _check_untouched(matrix, payload_id, prompt)
        return
    store = matrix.app.extensions["slt"].store
    if endpoint == "GET /tokens":
        listed = [t["id"] for t in body["tokens"]]
        assert (payload_id in listed) == (caller == "owner")
    elif endpoint == "POST decrypt":
        assert body["prompt"] == prompt
    elif endpoint.startswith("DELETE"):
        assert store.get_secret(payload_id) is None
        assert body["receipt"]["shredded_at"] is not None
    elif endpoint == "POST persist":
        assert body["status"] == "awaiting_wallet"


@pytest.mark.parametrize("endpoint", [e[0] for e in ANON_ENDPOINTS])
@pytest.mark.parametrize("caller", ANON_CALLERS)
def test_anonymous_token_matrix(matrix: Matrix, caller: str, endpoint: str) -> None:
    _, method, template = next(e for e in ENDPOINTS if e[0] == endpoint)
    payload_id, secret = matrix.anon_targets[(caller, endpoint)]
    headers = {
        "its secret": {"X-SLT-Secret": secret},
        "other secret": matrix.callers["other secret"],
        "no secret": {},
        "wallet session": matrix.callers["owner"],
    }[caller]
    resp = matrix.client.open(template.format(id=payload_id), method=method, headers=headers)
    matrix.anon_results.setdefault(caller, {})[endpoint] = str(resp.status_code)
    want = anon_expected(caller, endpoint)
    assert resp.status_code == want, f"{caller} / {endpoint}: {resp.get_data(as_text=True)}"
    if want >= 400:
        assert "marker-authz-anon" not in resp.get_data(as_text=True)
        _check_untouched(matrix, payload_id, "marker-authz-anon")
    elif endpoint == "POST decrypt":
        assert resp.get_json()["prompt"] == "marker-authz-anon"
    elif endpoint == "POST persist":
        assert resp.get_json() == {"status": "pending"}


def test_zz_record_the_tables(matrix: Matrix) -> None:
    """Runs last in this module: puts both tables (actual statuses) in the figures."""
    cols = [e[0] for e in ENDPOINTS]
    cells = {c: {e: matrix.results.get(c, {}).get(e, "-") for e in cols} for c in CALLERS}
    mismatches = [f"{c} / {e}" for c in CALLERS for e in cols if cells[c][e] != str(expected(c, e))]
    anon_cols = [e[0] for e in ANON_ENDPOINTS]
    anon_cells = {
        c: {e: matrix.anon_results.get(c, {}).get(e, "-") for e in anon_cols} for c in ANON_CALLERS
    }
    figure(
        "authz",
        wallet_token={"rows": CALLERS, "cols": cols, "cells": cells},
        anonymous_token={"rows": ANON_CALLERS, "cols": anon_cols, "cells": anon_cells},
        sign_in_attempts=matrix.attempts,
        cells=len(CALLERS) * len(cols) + len(ANON_CALLERS) * len(anon_cols),
        mismatches=len(mismatches),
    )
    assert not mismatches, mismatches
    json.dumps(cells)  # the table is plain data (written to the figures file)
