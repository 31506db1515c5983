"""Image and audio payloads through multipart uploads: stored sealed, returned byte for byte."""

from __future__ import annotations

import base64
import io
import struct
import wave
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from slt_harness import ANVIL_KEYS
from werkzeug.test import TestResponse

ALICE = ANVIL_KEYS[2]


def tiny_png(width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG, built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(
        b"\x00" + b"".join(bytes((x * 60 % 256, y * 60 % 256, 200)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def tiny_wav(frames: int = 800) -> bytes:
    """A valid 8 kHz mono 16-bit WAV of a short ramp."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", (i * 97) % 20000 - 10000) for i in range(frames)))
    return out.getvalue()


PNG = tiny_png()
WAV = tiny_wav()


def _upload(
    client: FlaskClient,
    data: bytes,
    content_type: str,
    filename: str = "upload.bin",
    headers: dict[str, str] | None = None,
    **form: str,
) -> TestResponse:
    return client.post(
        "/generate",
        data={"file": (io.BytesIO(data), filename, content_type), **form},
        content_type="multipart/form-data",
        headers=headers or {},
    )


def _error(resp: TestResponse, status: int, code: str | None = None) -> dict[str, str]:
    assert "Traceback" not in resp.get_data(as_text=True)
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"code", "name", "description"}
    if code is not None:
        assert body["code"] == code, body
    return body  # type: ignore[no-any-return]


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(start_workers=False)


def test_the_sample_files_are_real_png_and_wav() -> None:
    assert PNG.startswith(b"\x89PNG\r\n\x1a\n") and PNG.endswith(b"IEND\xaeB`\x82")
    with wave.open(io.BytesIO(WAV)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (
            1,
            2,
            8000,
            800,
        )


@pytest.mark.parametrize(
    ("data", "declared", "kind", "content_type"),
    [
        (PNG, "image/png", "image", "image/png"),
        (WAV, "audio/wav", "audio", "audio/wav"),
        (WAV, "audio/x-wav", "audio", "audio/wav"),
        (PNG, "application/octet-stream", "image", "image/png"),
    ],
    ids=["png", "wav", "wav-alias", "png-octet-stream"],
)
def test_upload_round_trips_byte_for_byte(
    client: FlaskClient, sign_in: Any, data: bytes, declared: str, kind: str, content_type: str
) -> None:
    alice = sign_in(ALICE)
    resp = _upload(client, data, declared, headers=alice, emotion="curious", ttl_seconds="600")
    assert resp.status_code == 201, resp.get_json()
    token = resp.get_json()["token"]
    meta = token["metadata"]
    assert (meta["kind"], meta["content_type"]) == (kind, content_type)
    assert meta["expires_at"] - meta["created_at"] == pytest.approx(600, abs=1)
    assert meta["encrypted_emotion"] is not None
    assert base64.b64encode(data).decode() not in resp.get_data(as_text=True)

    status = client.get(f"/tokens/{token['id']}", headers=alice).get_json()
    assert (status["kind"], status["content_type"], status["size"]) == (
        kind,
        content_type,
        len(data),
    )

    opened = client.post(f"/tokens/{token['id']}/decrypt", headers=alice)
    assert opened.status_code == 200
    assert opened.get_json() == {
        "id": token["id"],
        "kind": kind,
        "content_type": content_type,
        "data_base64": base64.b64encode(data).decode(),
    }


def test_anonymous_upload_round_trips_with_its_secret(client: FlaskClient) -> None:
    resp = _upload(client, WAV, "audio/wav", switchable="false")
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["token"]["metadata"]["switchable"] is False
    opened = client.post(
        f"/tokens/{body['token']['id']}/decrypt", headers={"X-SLT-Secret": body["secret"]}
    )
    assert base64.b64decode(opened.get_json()["data_base64"]) == WAV


def test_upload_stored_sealed_not_in_clear(client: FlaskClient, sign_in: Any, app: Flask) -> None:
    marker = tiny_png(3, 3) + b"marker-upload-plain-bytes"
    resp = _upload(client, marker, "image/png", headers=sign_in(ALICE))
    assert resp.status_code == 201
    store = app.extensions["slt"].store
    for path in (store.path, store.path.with_name(store.path.name + "-wal")):
        if path.exists():
            assert b"marker-upload-plain-bytes" not in path.read_bytes()


def test_upload_above_max_upload_bytes_is_413(make_app: Callable[..., Flask]) -> None:
    client = make_app(start_workers=False, max_upload_bytes=1024).test_client()
    big = tiny_wav(frames=2000)  # ~4 KB: over the app's limit, under MAX_CONTENT_LENGTH
    assert 1024 < len(big) < 64 * 1024
    body = _error(_upload(client, big, "audio/wav"), 413, "file_too_large")
    assert "1024" in body["description"]
    assert _upload(client, tiny_wav(frames=100), "audio/wav").status_code == 201


def test_request_body_above_max_content_length_is_413_json(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(start_workers=False, max_upload_bytes=1024)
    client = app.test_client()
    huge = PNG + b"\x00" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    body = _error(_upload(client, huge, "image/png"), 413)
    assert body["name"] == "Request Entity Too Large"
    assert app.extensions["slt"].store.count_payloads() == {}


@pytest.mark.parametrize(
    ("data", "declared"),
    [(PNG, "audio/wav"), (WAV, "image/png"), (PNG, "image/jpeg"), (WAV, "text/plain")],
    ids=["png-as-wav", "wav-as-png", "png-as-jpeg", "wav-as-text"],
)
def test_declared_type_mismatch_is_415(client: FlaskClient, data: bytes, declared: str) -> None:
    body = _error(_upload(client, data, declared), 415, "content_type_mismatch")
    assert declared in body["description"]


@pytest.mark.parametrize(
    "data",
    [b"GIF87b not an image", b"<svg onload=alert(1)>", b"%PDF-1.4", b"MZ\x90\x00"],
    ids=["almost-gif", "svg", "pdf", "exe"],
)
def test_unknown_file_type_is_415(client: FlaskClient, data: bytes) -> None:
    _error(_upload(client, data, "application/octet-stream"), 415, "unsupported_file_type")


def test_empty_file_is_400(client: FlaskClient) -> None:
    _error(_upload(client, b"", "image/png"), 400, "empty_file")


def test_multipart_without_a_file_field_is_400_no_file(client: FlaskClient) -> None:
    resp = client.post(
        "/generate", data={"prompt": "not a file"}, content_type="multipart/form-data"
    )
    body = _error(resp, 400, "no_file")
    assert "'file'" in body["description"]


def test_file_under_another_field_name_is_400_no_file(client: FlaskClient) -> None:
    resp = client.post(
        "/generate",
        data={"image": (io.BytesIO(PNG), "a.png", "image/png")},
        content_type="multipart/form-data",
    )
    _error(resp, 400, "no_file")


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("emotion", "furious", "invalid_emotion"),
        ("ttl_seconds", "abc", "invalid_ttl"),
        ("ttl_seconds", "10", "invalid_ttl"),
        ("switchable", "maybe", "invalid_switchable"),
    ],
)
def test_bad_form_fields_with_a_file_are_400(
    client: FlaskClient, field: str, value: str, code: str
) -> None:
    _error(_upload(client, PNG, "image/png", **{field: value}), 400, code)


def test_upload_too_large_description_does_not_misstate_the_size(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(start_workers=False, max_upload_bytes=1024).test_client()
    big = tiny_wav(frames=2000)
    body = _error(_upload(client, big, "audio/wav"), 413, "file_too_large")
    assert "1025 bytes" not in body["description"]
