"""Privacy: no plaintext at rest or in logs; a shredded payload's bytes leave the files."""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from slt_harness import ANVIL_KEYS, tiny_png, tiny_wav, wait_for

GRACE = ANVIL_KEYS[3]
MARKERS = [b"marker-privacy-text-7f3a", b"marker-privacy-image-9c1d", b"marker-privacy-audio-4e2b"]


def database_bytes(app: Flask) -> bytes:
    path = Path(app.extensions["slt"].settings.database_path)
    return b"".join(
        p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()
    )


def test_no_plaintext_in_database_or_logs_and_shredded_bytes_are_gone(
    app: Flask, sign_in: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    client = app.test_client()
    grace = sign_in(GRACE)
    text = client.post("/generate", json={"prompt": MARKERS[0].decode(), "emotion": "anxious"},
                       headers=grace).get_json()["token"]  # fmt: skip
    image = client.post(
        "/generate",
        data={"file": (io.BytesIO(tiny_png(MARKERS[1])), "a.png", "image/png")},
        headers=grace,
        content_type="multipart/form-data",
    ).get_json()["token"]
    audio = client.post(
        "/generate",
        data={"file": (io.BytesIO(tiny_wav(MARKERS[2])), "a.wav", "audio/wav")},
        headers=grace,
        content_type="multipart/form-data",
    ).get_json()["token"]
    for token in (text, image, audio):
        wait_for(lambda t=token: client.get(f"/tokens/{t['id']}", headers=grace).get_json()[
            "chain"]["token_id"])  # fmt: skip
        opened = client.post(f"/tokens/{token['id']}/decrypt", headers=grace)
        assert opened.status_code == 200

    store = app.extensions["slt"].store
    store.checkpoint()
    blob = database_bytes(app)
    for marker in MARKERS + [b"anxious"]:
        assert marker not in blob

    # Delete the image: its ciphertext and wrapped key must leave the file, WAL included.
    secret = store.get_secret(image["id"])
    assert secret is not None
    ciphertext = base64.b64decode(image["metadata"]["encrypted_thought"])
    assert ciphertext == secret.ciphertext
    assert ciphertext[16:48] in database_bytes(app)
    assert client.delete(f"/tokens/{image['id']}", headers=grace).status_code == 200
    app.extensions["slt"].worker.checkpoint_if_shredded(force=True)
    after = database_bytes(app)
    assert ciphertext[16:48] not in after
    assert secret.wrapped_key[12:40] not in after
    assert store.pragma("secure_delete") == 1
    assert store.pragma("journal_mode") == "wal"

    logs = caplog.text.encode() + "".join(capfd.readouterr()).encode()
    for marker in MARKERS + [b"anxious"]:
        assert marker not in logs
