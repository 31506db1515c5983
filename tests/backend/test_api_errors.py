"""Every bad request gets a clear JSON error; headers keep the page and the API safe."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from slt_harness import ANVIL_KEYS, Anvil
from werkzeug.test import TestResponse

from backend import Settings, create_app

ALICE = ANVIL_KEYS[2]
BOB = ANVIL_KEYS[3]
UNKNOWN_ID = "token_" + "0" * 32
PUBLIC_ORIGIN = "http://127.0.0.1:8080"


@pytest.fixture(scope="module")
def shared_app(
    anvil: Anvil, record: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flask]:
    """One app (real Anvil, real SQLite file) for the whole module: these tests only read it.

    No chain work is needed here: ownership of an unminted token is its recorded owner.
    """
    tmp = tmp_path_factory.mktemp("api-errors")
    deployment = tmp / "deployment.json"
    deployment.write_text(json.dumps(record))
    settings = Settings(
        data_dir=tmp / "var",
        rpc_url=anvil.url,
        deployment_file=deployment,
        relayer_key=ANVIL_KEYS[1],
        public_url=PUBLIC_ORIGIN,
        rate_limits_enabled=False,
        chain_timeout=2.0,
    )
    app = create_app(settings, clock=time.time, start_workers=False)
    app.config["TESTING"] = True
    yield app
    app.extensions["slt"].store.close()


@pytest.fixture
def app(shared_app: Flask) -> Flask:
    return shared_app


def assert_error(resp: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """The error contract: a 4xx JSON body with exactly code, name and description."""
    text = resp.get_data(as_text=True)
    assert "Traceback" not in text
    assert resp.status_code == status, text
    assert 400 <= resp.status_code < 500
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert isinstance(body, dict)
    assert set(body) == {"code", "name", "description"}, body
    assert all(isinstance(v, str) and v for v in body.values())
    if code is not None:
        assert body["code"] == code, body
    return body


def _create(client: FlaskClient, headers: dict[str, str], prompt: str = "marker-p") -> str:
    resp = client.post("/generate", json={"prompt": prompt}, headers=headers)
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["token"]["id"])


# Request bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    ["{", '{"prompt": }', "{'prompt': 'single quotes'}", '{"prompt": "x"} trailing', ""],
    ids=["unclosed", "missing-value", "single-quotes", "trailing", "empty"],
)
def test_malformed_json_is_400_invalid_json(client: FlaskClient, data: str) -> None:
    resp = client.post("/generate", data=data, content_type="application/json")
    body = assert_error(resp, 400, "invalid_json")
    assert body["description"] == "The body must be a JSON object."
    assert body["name"] == "Bad Request"


@pytest.mark.parametrize("data", ["[]", '["prompt"]', '"prompt"', "42", "null", "true"])
def test_json_that_is_not_an_object_is_400_invalid_json(client: FlaskClient, data: str) -> None:
    assert_error(
        client.post("/generate", data=data, content_type="application/json"), 400, "invalid_json"
    )


def test_binary_garbage_sent_as_json_is_400(client: FlaskClient) -> None:
    garbage = bytes(range(256)) * 4 + b"\xff\xfe\xc3\x28\x00"
    resp = client.post("/generate", data=garbage, content_type="application/json")
    assert_error(resp, 400, "invalid_json")


def test_json_without_a_content_type_is_400_invalid_json(client: FlaskClient) -> None:
    resp = client.post("/generate", data='{"prompt": "x"}', content_type="text/plain")
    assert_error(resp, 400, "invalid_json")


def test_missing_prompt_is_400_missing_prompt(client: FlaskClient) -> None:
    body = assert_error(client.post("/generate", json={"emotion": "happy"}), 400, "missing_prompt")
    assert "prompt" in body["description"]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("prompt", 42, "invalid_prompt"),
        ("prompt", None, "invalid_prompt"),
        ("prompt", ["a"], "invalid_prompt"),
        ("prompt", {"text": "a"}, "invalid_prompt"),
        ("prompt", "   ", "invalid_prompt"),
        ("ttl_seconds", "abc", "invalid_ttl"),
        ("ttl_seconds", True, "invalid_ttl"),
        ("ttl_seconds", False, "invalid_ttl"),
        ("ttl_seconds", 59, "invalid_ttl"),
        ("ttl_seconds", 0, "invalid_ttl"),
        ("ttl_seconds", -3600, "invalid_ttl"),
        ("ttl_seconds", "-3600", "invalid_ttl"),
        ("ttl_seconds", 30 * 24 * 3600 + 1, "invalid_ttl"),
        ("ttl_seconds", 10**30, "invalid_ttl"),
        ("ttl_seconds", 3600.5, "invalid_ttl"),
        ("ttl_seconds", [3600], "invalid_ttl"),
        ("switchable", "maybe", "invalid_switchable"),
        ("switchable", 1, "invalid_switchable"),
        ("switchable", [True], "invalid_switchable"),
        ("emotion", "furious", "invalid_emotion"),
        ("emotion", 3, "invalid_emotion"),
        ("emotion", ["happy"], "invalid_emotion"),
        ("user_id", "u" * 129, "bad_user"),
        ("user_id", 12345, "bad_user"),
        ("user_id", {"id": 1}, "bad_user"),
    ],
)
def test_wrong_field_type_or_range_is_400_with_its_code(
    client: FlaskClient, app: Flask, field: str, value: Any, code: str
) -> None:
    store = app.extensions["slt"].store
    before = store.count_payloads()
    body = {"prompt": "marker-wrong-type", field: value}
    body = assert_error(client.post("/generate", json=body), 400, code)
    assert field.split("_")[0] in body["description"]
    assert store.count_payloads() == before  # nothing was stored


def test_ttl_range_error_names_the_bounds(client: FlaskClient) -> None:
    body = assert_error(client.post("/generate", json={"prompt": "p", "ttl_seconds": 1}), 400)
    assert body["description"] == "'ttl_seconds' must be between 60 and 2592000."


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ttl_seconds", 60),
        ("ttl_seconds", "120"),
        ("ttl_seconds", 30 * 24 * 3600),
        ("switchable", "false"),
        ("switchable", False),
        ("emotion", "CALM"),
        ("user_id", "u" * 128),
    ],
)
def test_edge_values_that_are_accepted(client: FlaskClient, field: str, value: Any) -> None:
    resp = client.post("/generate", json={"prompt": "p", field: value})
    assert resp.status_code == 201, resp.get_json()


@pytest.mark.parametrize("value", ["²", "1" * 5000], ids=["superscript", "5000-digits"])
def test_ttl_digit_strings_int_cannot_read_are_400(client: FlaskClient, value: str) -> None:
    resp = client.post("/generate", json={"prompt": "p", "ttl_seconds": value})
    assert_error(resp, 400, "invalid_ttl")


def test_prompt_over_max_prompt_chars_is_413(make_app: Callable[..., Flask]) -> None:
    client = make_app(start_workers=False, max_prompt_chars=100).test_client()
    body = assert_error(
        client.post("/generate", json={"prompt": "x" * 101}), 413, "prompt_too_long"
    )
    assert "101" in body["description"] and "100" in body["description"]
    assert body["name"] == "Request Entity Too Large"
    assert client.post("/generate", json={"prompt": "x" * 100}).status_code == 201


def test_huge_prompt_at_default_limit_is_413(client: FlaskClient) -> None:
    assert_error(client.post("/generate", json={"prompt": "x" * 20_001}), 413, "prompt_too_long")


def test_json_body_above_max_content_length_is_413(make_app: Callable[..., Flask]) -> None:
    client = make_app(start_workers=False, max_upload_bytes=1024).test_client()
    resp = client.post("/generate", json={"prompt": "x" * (1024 + 64 * 1024 + 10)})
    assert_error(resp, 413)


# Unicode -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt",
    [
        "🧠💭🏳️‍🌈 family: 👨‍👩‍👧‍👦",
        "שלום עולם مرحبا بالعالم \u202eevil\u202c",
        "before\u0000after",
        "zero\u200bwidth\ufeffbom",
        "e\u0301 combining",
    ],
    ids=["emoji", "rtl", "nul", "zero-width", "combining"],
)
def test_unicode_prompt_round_trips(client: FlaskClient, sign_in: Any, prompt: str) -> None:
    alice = sign_in(ALICE)
    payload_id = _create(client, alice, prompt)
    opened = client.post(f"/tokens/{payload_id}/decrypt", headers=alice)
    assert opened.status_code == 200
    assert opened.get_json()["prompt"] == prompt


@pytest.mark.parametrize(
    "raw",
    ['{"prompt": "\\ud800"}', '{"prompt": "ok \\udfff ok"}', '{"prompt": "\\ud83d"}'],
    ids=["high", "low", "half-emoji"],
)
def test_lone_surrogate_in_prompt_is_400_not_500(client: FlaskClient, raw: str) -> None:
    resp = client.post("/generate", data=raw, content_type="application/json")
    body = assert_error(resp, 400, "invalid_prompt")
    assert "surrogate" in body["description"]


def test_lone_surrogate_in_emotion_is_400(client: FlaskClient) -> None:
    raw = '{"prompt": "p", "emotion": "\\ud800"}'
    assert_error(
        client.post("/generate", data=raw, content_type="application/json"), 400, "invalid_emotion"
    )


def test_lone_surrogate_in_user_id_is_echoed_escaped_not_a_500(client: FlaskClient) -> None:
    # user_id is only echoed back (never stored or encrypted); JSON escapes it safely.
    raw = '{"prompt": "p", "user_id": "\\ud800"}'
    resp = client.post("/generate", data=raw, content_type="application/json")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert '"user_id":"\\ud800"' in resp.get_data(as_text=True)


def test_escaped_pair_of_surrogates_is_one_emoji(client: FlaskClient, sign_in: Any) -> None:
    alice = sign_in(ALICE)
    raw = '{"prompt": "\\ud83e\\udde0"}'
    resp = client.post("/generate", data=raw, content_type="application/json", headers=alice)
    assert resp.status_code == 201
    opened = client.post(f"/tokens/{resp.get_json()['token']['id']}/decrypt", headers=alice)
    assert opened.get_json()["prompt"] == "🧠"


# Routes and methods --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/tokens/x/y/z", "/metadata/abc", "/api/generate"])
def test_unknown_route_is_404_json(client: FlaskClient, path: str) -> None:
    body = assert_error(client.get(path), 404, "not_found")
    assert body["name"] == "Not Found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/generate"),
        ("PUT", "/generate"),
        ("POST", "/tokens"),
        ("DELETE", "/config"),
        ("PATCH", f"/tokens/{UNKNOWN_ID}"),
        ("GET", "/auth/verify"),
        ("GET", "/auth/logout"),
    ],
)
def test_wrong_method_is_405_json(client: FlaskClient, method: str, path: str) -> None:
    body = assert_error(client.open(path, method=method), 405, "method_not_allowed")
    assert body["name"] == "Method Not Allowed"


def test_wrong_method_405_keeps_the_allow_header(client: FlaskClient) -> None:
    resp = client.get("/generate")
    assert resp.status_code == 405
    assert "POST" in resp.headers.get("Allow", "")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/tokens/{UNKNOWN_ID}"),
        ("POST", f"/tokens/{UNKNOWN_ID}/decrypt"),
        ("POST", f"/tokens/{UNKNOWN_ID}/persist"),
        ("DELETE", f"/tokens/{UNKNOWN_ID}"),
        ("DELETE", f"/delete/{UNKNOWN_ID}"),
        ("GET", f"/tokens/{UNKNOWN_ID}/receipt"),
        ("GET", "/tokens/not-even-an-id"),
        ("GET", "/metadata/999999"),
    ],
)
def test_unknown_token_id_is_404_token_not_found(
    client: FlaskClient, sign_in: Any, method: str, path: str
) -> None:
    body = assert_error(
        client.open(path, method=method, headers=sign_in(ALICE)), 404, "token_not_found"
    )
    assert "token" in body["description"]


# Authentication and ownership ----------------------------------------------------------------


def test_listing_tokens_without_auth_is_401(client: FlaskClient) -> None:
    body = assert_error(client.get("/tokens"), 401, "auth_required")
    assert body["name"] == "Unauthorized"


def test_session_without_auth_is_401(client: FlaskClient) -> None:
    assert_error(client.get("/auth/session"), 401, "auth_required")


@pytest.mark.parametrize(
    "header",
    ["Basic YWxpY2U6cGFzcw==", "Token abc", "Bearer", "Bearer    ", "bearerabc", "abc"],
    ids=["basic", "token", "bearer-empty", "bearer-blank", "no-space", "bare"],
)
def test_bad_authorization_scheme_is_400(client: FlaskClient, header: str) -> None:
    for resp in (
        client.get("/tokens", headers={"Authorization": header}),
        client.post("/generate", json={"prompt": "p"}, headers={"Authorization": header}),
    ):
        body = assert_error(resp, 400, "invalid_auth_header")
        assert "Bearer <token>" in body["description"]


@pytest.mark.parametrize("token", ["unknown-token", "x" * 500, "🧠"])
def test_unknown_bearer_token_is_401(client: FlaskClient, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    assert_error(client.get("/tokens", headers=headers), 401, "session")
    assert_error(client.post("/generate", json={"prompt": "p"}, headers=headers), 401, "session")


def test_bearer_scheme_is_case_insensitive(client: FlaskClient, sign_in: Any) -> None:
    token = sign_in(ALICE)["Authorization"].split(" ", 1)[1]
    assert client.get("/tokens", headers={"Authorization": f"bearer {token}"}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/tokens/{id}"),
        ("POST", "/tokens/{id}/decrypt"),
        ("POST", "/tokens/{id}/persist"),
        ("DELETE", "/tokens/{id}"),
        ("DELETE", "/delete/{id}"),
        ("GET", "/tokens/{id}/receipt"),
    ],
)
def test_other_wallets_token_is_403_not_owner(
    client: FlaskClient, sign_in: Any, app: Flask, method: str, path: str
) -> None:
    alice, bob = sign_in(ALICE), sign_in(BOB)
    payload_id = _create(client, alice, "marker-alice-only")
    resp = client.open(path.format(id=payload_id), method=method, headers=bob)
    body = assert_error(resp, 403, "not_owner")
    assert "marker-alice-only" not in resp.get_data(as_text=True)
    assert body["name"] == "Forbidden"
    # Still alive and readable by its owner.
    opened = client.post(f"/tokens/{payload_id}/decrypt", headers=alice)
    assert opened.get_json()["prompt"] == "marker-alice-only"
    assert payload_id not in [
        t["id"] for t in client.get("/tokens", headers=bob).get_json()["tokens"]
    ]


def test_wallet_token_without_auth_is_401_auth_required(client: FlaskClient, sign_in: Any) -> None:
    payload_id = _create(client, sign_in(ALICE))
    assert_error(client.get(f"/tokens/{payload_id}"), 401, "auth_required")
    assert_error(client.post(f"/tokens/{payload_id}/decrypt"), 401, "auth_required")
    assert_error(client.delete(f"/tokens/{payload_id}"), 401, "auth_required")


def test_secret_header_does_not_open_a_wallet_token(client: FlaskClient, sign_in: Any) -> None:
    payload_id = _create(client, sign_in(ALICE))
    resp = client.post(f"/tokens/{payload_id}/decrypt", headers={"X-SLT-Secret": "guess"})
    assert_error(resp, 401, "auth_required")


# Headers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/config", "/health", "/nope", "/tokens", "/auth/nonce"])
def test_security_headers_on_every_response(client: FlaskClient, path: str) -> None:
    h = client.get(path).headers
    assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
    assert "default-src 'self'" in h["Content-Security-Policy"]
    assert "object-src 'none'" in h["Content-Security-Policy"]
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["X-Frame-Options"] == "DENY"
    assert h["Referrer-Policy"] == "no-referrer"
    assert h["Cache-Control"] == "no-store"
    assert "Origin" in h.get_all("Vary") or "Origin" in h.get("Vary", "")


def test_created_and_decrypted_responses_are_not_cached(client: FlaskClient, sign_in: Any) -> None:
    alice = sign_in(ALICE)
    created = client.post("/generate", json={"prompt": "p"}, headers=alice)
    assert created.headers["Cache-Control"] == "no-store"
    payload_id = created.get_json()["token"]["id"]
    opened = client.post(f"/tokens/{payload_id}/decrypt", headers=alice)
    assert opened.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/config", "/nope"])
def test_cors_allows_the_public_origin(client: FlaskClient, path: str) -> None:
    h = client.get(path, headers={"Origin": PUBLIC_ORIGIN}).headers
    assert h["Access-Control-Allow-Origin"] == PUBLIC_ORIGIN
    assert "Authorization" in h["Access-Control-Allow-Headers"]
    assert "X-SLT-Secret" in h["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in h


def test_cors_preflight_from_the_public_origin(client: FlaskClient) -> None:
    resp = client.options(
        "/generate",
        headers={"Origin": PUBLIC_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == PUBLIC_ORIGIN
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://x.wixsite.com",
        "null",
        "http://127.0.0.1:8081",
        "https://127.0.0.1:8080",
        "http://127.0.0.1:8080.evil.example",
        "http://localhost:8080",
    ],
)
def test_cors_refuses_foreign_origins(client: FlaskClient, origin: str) -> None:
    for resp in (
        client.get("/config", headers={"Origin": origin}),
        client.options(
            "/generate", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
        ),
        client.get("/tokens", headers={"Origin": origin}),
    ):
        assert "Access-Control-Allow-Origin" not in resp.headers
        assert "Access-Control-Allow-Headers" not in resp.headers


def test_cors_origins_setting_replaces_the_public_origin(make_app: Callable[..., Flask]) -> None:
    client = make_app(start_workers=False, cors_origins=("https://app.example",)).test_client()
    ok = client.get("/config", headers={"Origin": "https://app.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example"
    other = client.get("/config", headers={"Origin": PUBLIC_ORIGIN})
    assert "Access-Control-Allow-Origin" not in other.headers
