"""The app behind a real HTTP server on loopback, driven with `requests` like a browser would."""

from __future__ import annotations

import base64
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from eth_account import Account
from flask import Flask
from slt_harness import ANVIL_KEYS, Anvil, free_port, sign_text, siwe_message, wait_for
from werkzeug.serving import make_server

ALICE = ANVIL_KEYS[2]
ALICE_ADDRESS = Account.from_key(ALICE).address
PUBLIC_ORIGIN = "http://127.0.0.1:8080"


@pytest.fixture
def server(make_app: Callable[..., Flask]) -> Iterator[str]:
    app = make_app()
    port = free_port()
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=5)
        httpd.server_close()
    assert not thread.is_alive()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def _sign_in(http: requests.Session, base: str) -> dict[str, str]:
    nonce = http.get(f"{base}/auth/nonce", timeout=10).json()
    message = siwe_message(ALICE_ADDRESS, nonce)
    resp = http.post(
        f"{base}/auth/verify",
        json={"message": message, "signature": sign_text(ALICE, message)},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['token']}"}


def test_sign_in_create_decrypt_delete_over_http(
    server: str, http: requests.Session, anvil: Anvil, record: dict[str, Any]
) -> None:
    alice = _sign_in(http, server)
    session = http.get(f"{server}/auth/session", headers=alice, timeout=10)
    assert session.json()["address"] == ALICE_ADDRESS.lower()

    created = http.post(
        f"{server}/generate",
        json={"prompt": "marker-http 🧠", "emotion": "happy", "ttl_seconds": 600},
        headers=alice,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    assert created.headers["Content-Type"] == "application/json"
    assert created.headers["Cache-Control"] == "no-store"
    assert "marker-http" not in created.text
    payload_id = created.json()["token"]["id"]

    def minted() -> dict[str, Any] | None:
        body = http.get(f"{server}/tokens/{payload_id}", headers=alice, timeout=10).json()
        return body if body["chain"]["token_id"] is not None else None

    token_id = wait_for(minted)["chain"]["token_id"]
    contract = anvil.w3().eth.contract(address=record["address"], abi=record["abi"])
    assert contract.functions.ownerOf(token_id).call() == ALICE_ADDRESS

    opened = http.post(f"{server}/tokens/{payload_id}/decrypt", headers=alice, timeout=10)
    assert opened.json() == {
        "id": payload_id,
        "kind": "text",
        "prompt": "marker-http 🧠",
        "emotion": "happy",
    }

    deleted = http.delete(f"{server}/tokens/{payload_id}", headers=alice, timeout=10)
    assert deleted.status_code == 200
    assert deleted.json()["receipt"]["shredded_at"] is not None

    gone = http.post(f"{server}/tokens/{payload_id}/decrypt", headers=alice, timeout=10)
    assert gone.status_code == 410
    assert gone.json()["code"] == "token_deleted"

    def burned() -> dict[str, Any] | None:
        r = http.get(f"{server}/tokens/{payload_id}/receipt", headers=alice, timeout=10).json()
        return r if r["burn_tx"] else None

    assert wait_for(burned)["burn_status"] == "burned"

    assert http.post(f"{server}/auth/logout", headers=alice, timeout=10).status_code == 204
    assert http.get(f"{server}/tokens", headers=alice, timeout=10).status_code == 401


def test_multipart_upload_over_http(server: str, http: requests.Session) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00\x80"))
        + chunk(b"IEND", b"")
    )
    created = http.post(
        f"{server}/generate",
        files={"file": ("dot.png", png, "image/png")},
        data={"ttl_seconds": "120"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    opened = http.post(
        f"{server}/tokens/{body['token']['id']}/decrypt",
        headers={"X-SLT-Secret": body["secret"]},
        timeout=10,
    )
    assert base64.b64decode(opened.json()["data_base64"]) == png


def test_errors_and_headers_over_http(server: str, http: requests.Session) -> None:
    missing = http.get(f"{server}/no-such-page", headers={"Origin": PUBLIC_ORIGIN}, timeout=10)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/json"
    assert set(missing.json()) == {"code", "name", "description"}
    assert missing.headers["Access-Control-Allow-Origin"] == PUBLIC_ORIGIN
    assert "frame-ancestors 'none'" in missing.headers["Content-Security-Policy"]

    garbage = http.post(
        f"{server}/generate",
        data=b"\xff\x00garbage",
        headers={"Content-Type": "application/json", "Origin": "https://evil.example"},
        timeout=10,
    )
    assert garbage.status_code == 400
    assert garbage.json()["code"] == "invalid_json"
    assert "Access-Control-Allow-Origin" not in garbage.headers
    assert "Traceback" not in garbage.text
