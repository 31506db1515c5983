"""Bad input: schemathesis generates requests from ``/openapi.json`` for every operation.

Each operation is fuzzed with schema-valid (positive) and, where the schema allows it,
schema-violating (negative) data, and each case is sent as generated, with a valid wallet
session, or with a valid ``X-SLT-Secret``; path ids are generated or point at real payloads.
Every response must be no 5xx, a documented status, the documented content type, and match
the documented schema (errors: exactly ``{code, name, description}``).

Scale: ``SLT_HARDENING_CASES`` cases in all (200 short, 1,200 full); the seed is fixed
(``SLT_HARDENING_SEED``) so a failure replays, and a failing case prints its curl command.
"""

from __future__ import annotations

import io
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hardening_evidence import tiny_png, tiny_wav
from hardening_support import address_of, figure, knob, settings_for, wait_until
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from slt_harness import ANVIL_KEYS, Anvil, Clock, sign_text, siwe_message

from backend import create_app
from backend.openapi import openapi_document
from backend.payloads import sniff

CASES = int(knob("cases", 200, 1200))
SEED = int(os.environ.get("SLT_HARDENING_SEED", "20251123"))
ALICE = ANVIL_KEYS[2]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
OPERATIONS = [
    f"{method.upper()} {path}"
    for path, item in openapi_document()["paths"].items()
    for method in item
    if method != "parameters"
]
# Operations without parameters or a body have only a handful of distinct cases.
TRIVIAL = {"GET /auth/nonce", "POST /auth/logout", "GET /health", "GET /config"}
AUTH = ["as generated", "session", "secret"]
TARGET = ["generated", "wallet", "anonymous"]


@dataclass
class Fuzz:
    app: Flask
    client: FlaskClient
    schema: Any
    session: dict[str, str] = field(default_factory=dict)
    wallet_id: str = ""
    anon_id: str = ""
    anon_secret: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    auth_modes: dict[str, int] = field(default_factory=dict)

    def sign_in(self) -> None:
        """A fresh wallet session (a fuzzed logout revokes the current one)."""
        nonce = self.client.get("/auth/nonce").get_json()
        message = siwe_message(address_of(ALICE), nonce)
        body = {"message": message, "signature": sign_text(ALICE, message)}
        token = self.client.post("/auth/verify", json=body).get_json()["token"]
        self.session = {"Authorization": f"Bearer {token}"}

    def fresh(self) -> None:
        """Real payloads for path ids; replaced once a fuzzed DELETE has shredded them."""
        store = self.app.extensions["slt"].store
        wallet = store.get_payload(self.wallet_id) if self.wallet_id else None
        if wallet is None or wallet.shredded:
            body = self.client.post("/generate", json={"prompt": "fuzz"}, headers=self.session)
            self.wallet_id = body.get_json()["token"]["id"]
        anon = store.get_payload(self.anon_id) if self.anon_id else None
        if anon is None or anon.shredded:
            body = self.client.post("/generate", json={"prompt": "fuzz-anon"}).get_json()
            self.anon_id, self.anon_secret = body["token"]["id"], body["secret"]

    def chain_token_id(self) -> int:
        p = self.app.extensions["slt"].store.get_payload(self.wallet_id)
        return p.chain_token_id if p and p.chain_token_id is not None else 1


@pytest.fixture(scope="module")
def fuzz(
    anvil: Anvil, record: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fuzz]:
    folder = Path(tmp_path_factory.mktemp("fuzz"))
    # Limits on but far away: every request passes through the limiter's key functions.
    settings_ = settings_for(
        record,
        anvil.url,
        folder,
        rate_limits_enabled=True,
        rate_limit_create="1000000/minute",
        rate_limit_read="1000000/minute",
    )
    app = create_app(settings_, clock=Clock())
    app.config["TESTING"] = True
    client = app.test_client()
    state = Fuzz(app, client, schemathesis.openapi.from_wsgi("/openapi.json", app))
    state.sign_in()
    state.fresh()
    store = app.extensions["slt"].store
    wait_until(lambda: store.get_payload(state.wallet_id).chain_token_id is not None, 30)
    try:
        yield state
    finally:
        app.extensions["slt"].worker.stop()
        app.extensions["slt"].store.close()


def _budget() -> int:
    """Examples per (operation, mode): the rich operations carry the requested total."""
    rich = (len(OPERATIONS) - len(TRIVIAL)) * 2 - 8  # about 8 have no negative space
    return max(5, math.ceil(CASES * 1.1 / rich))


@pytest.mark.parametrize("operation", OPERATIONS)
def test_schema_fuzz(fuzz: Fuzz, operation: str) -> None:
    op = next(r.ok() for r in fuzz.schema.get_all_operations() if r.ok().label == operation)
    has_id = "{payload_id}" in operation or "{token_id}" in operation
    ran = 0
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @seed(SEED)
        @settings(
            max_examples=_budget(),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
        )
        @given(
            case=op.as_strategy(generation_mode=mode),
            auth=st.sampled_from(AUTH),
            target=st.sampled_from(TARGET if has_id else TARGET[:1]),
        )
        def run(case: Any, auth: str, target: str) -> None:
            nonlocal ran
            ran += 1
            fuzz.fresh()
            if auth == "session":
                case.headers = {**(case.headers or {}), **fuzz.session}
            elif auth == "secret":
                case.headers = {**(case.headers or {}), "X-SLT-Secret": fuzz.anon_secret}
            if target != "generated" and "payload_id" in (case.path_parameters or {}):
                real = fuzz.wallet_id if target == "wallet" else fuzz.anon_id
                case.path_parameters = {**case.path_parameters, "payload_id": real}
            elif target != "generated" and "token_id" in (case.path_parameters or {}):
                case.path_parameters = {**case.path_parameters, "token_id": fuzz.chain_token_id()}
            response = case.call()
            if operation == "POST /auth/logout":
                fuzz.sign_in()
            status = str(response.status_code)
            fuzz.statuses[status] = fuzz.statuses.get(status, 0) + 1
            fuzz.auth_modes[auth] = fuzz.auth_modes.get(auth, 0) + 1
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            # Nothing can violate this operation's schema (e.g. a free-form string path id).
            assert mode == GenerationMode.NEGATIVE
    fuzz.counts[operation] = ran
    assert ran > 0


def test_zz_fuzz_figures(fuzz: Fuzz) -> None:
    total = sum(fuzz.counts.values())
    figure(
        "schemathesis",
        cases=total,
        target=CASES,
        seed=SEED,
        operations=len(fuzz.counts),
        per_operation=dict(sorted(fuzz.counts.items())),
        statuses=dict(sorted(fuzz.statuses.items())),
        auth_modes=fuzz.auth_modes,
        server_errors=sum(n for s, n in fuzz.statuses.items() if s.startswith("5")),
    )
    assert set(fuzz.counts) == set(OPERATIONS), "every operation was fuzzed"
    assert total >= CASES, f"{total} cases < {CASES}"
    assert not any(s.startswith("5") for s in fuzz.statuses)


# Raw bytes: what the schema cannot describe ------------------------------------------------------

CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-16",
    "text/plain",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=x",
    "",
]
BODY_ENDPOINTS = [
    ("POST", "/generate"),
    ("POST", "/auth/verify"),
    ("POST", "/tokens/{id}/decrypt"),
    ("POST", "/tokens/{id}/persist"),
    ("DELETE", "/tokens/{id}"),
    ("POST", "/auth/logout"),
]
GARBAGE_EXAMPLES = int(knob("garbage", 60, 300))


@seed(SEED)
@settings(max_examples=GARBAGE_EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(
    body=st.one_of(
        st.binary(max_size=2048),
        st.text(max_size=512).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.sampled_from([b"\xff\xfe\x00\x00", b"{" * 5000, b'{"prompt": "' + b"\xc3" * 9, b""]),
    ),
    content_type=st.sampled_from(CONTENT_TYPES),
    endpoint=st.sampled_from(BODY_ENDPOINTS),
    authed=st.booleans(),
)
def test_binary_garbage_gets_a_clear_4xx(
    fuzz: Fuzz, body: bytes, content_type: str, endpoint: tuple[str, str], authed: bool
) -> None:
    fuzz.fresh()
    method, path = endpoint
    headers = {"Content-Type": content_type} if content_type else {}
    if authed:
        headers.update(fuzz.session)
    resp = fuzz.client.open(path.format(id=fuzz.wallet_id), method=method, data=body,
                            headers=headers)  # fmt: skip
    if path == "/auth/logout":
        fuzz.sign_in()
    text = resp.get_data(as_text=True)
    assert resp.status_code < 500, text
    assert "Traceback" not in text
    if resp.status_code >= 400:
        assert resp.mimetype == "application/json"
        assert set(resp.get_json()) == {"code", "name", "description"}
    figure_counter("garbage", resp.status_code)


_GARBAGE: dict[str, int] = {}


def figure_counter(kind: str, status: int) -> None:
    _GARBAGE[str(status)] = _GARBAGE.get(str(status), 0) + 1
    figure("bad input", garbage_cases=sum(_GARBAGE.values()), garbage_statuses=dict(_GARBAGE))


DECLARED = ["image/png", "image/jpeg", "audio/wav", "audio/mpeg", "application/octet-stream",
            "text/plain", "application/pdf", "image/svg+xml", ""]  # fmt: skip
MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"RIFF\x00\x00\x00\x00WAVE",
         b"OggS", b"fLaC", b"ID3", b"%PDF-1.7", b"<svg", b"MZ"]  # fmt: skip


@seed(SEED)
@settings(max_examples=GARBAGE_EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(magic=st.sampled_from(MAGIC), rest=st.binary(max_size=256),
       declared=st.sampled_from(DECLARED))  # fmt: skip
def test_upload_type_checks_hold(fuzz: Fuzz, magic: bytes, rest: bytes, declared: str) -> None:
    """An upload is stored only when its bytes are an accepted format agreeing with its type."""
    data = magic + rest
    resp = fuzz.client.post(
        "/generate",
        data={"file": (io.BytesIO(data), "f.bin", declared or None)},
        headers=fuzz.session,
        content_type="multipart/form-data",
    )
    found = sniff(data) if data else None
    if resp.status_code == 201:
        assert found is not None
        meta = resp.get_json()["token"]["metadata"]
        assert meta["content_type"] == found[0]
        opened = fuzz.client.post(
            f"/tokens/{resp.get_json()['token']['id']}/decrypt", headers=fuzz.session
        )
        import base64

        assert base64.b64decode(opened.get_json()["data_base64"]) == data
    else:
        assert resp.status_code in (400, 415), resp.get_data(as_text=True)
        assert found is None or declared not in ("", "application/octet-stream", found[0])


def test_known_good_uploads_are_accepted(fuzz: Fuzz) -> None:
    """The control for the property above: real samples with their own types go through."""
    rng = random.Random(SEED)
    for data, declared in ((tiny_png(b"x"), "image/png"), (tiny_wav(b"y"), "audio/wav")):
        resp = fuzz.client.post(
            "/generate",
            data={"file": (io.BytesIO(data), f"f{rng.random()}", declared)},
            headers=fuzz.session,
            content_type="multipart/form-data",
        )
        assert resp.status_code == 201, resp.get_data(as_text=True)
