"""`python -m backend` as an operator runs it: status, sweep and key rotation, as subprocesses."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from slt_harness import ROOT, Anvil

from backend import Settings
from backend.__main__ import main as cli_main
from backend.crypto import KeyRing


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLT_")}
    assert settings.relayer_key is not None and settings.deployment_file is not None
    env.update(
        SLT_DATA_DIR=str(settings.data_dir),
        SLT_RPC_URL=settings.rpc_url,
        SLT_DEPLOYMENT_FILE=str(settings.deployment_file),
        SLT_PUBLIC_URL=settings.public_url,
        SLT_RELAYER_KEY=settings.relayer_key,
        SLT_CHAIN_TIMEOUT="2",
    )
    env.update(extra)
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "backend", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _secrets(settings: Settings) -> list[str]:
    """Key material that must never be printed: every master key and the relayer key."""
    ring = KeyRing.from_json(settings.master_key_path.read_text())
    assert settings.relayer_key is not None
    out = [settings.relayer_key[2:], settings.relayer_key[2:].upper()]
    for key in ring.keys.values():
        out += [
            base64.b64encode(key).decode(),
            key.hex(),
            base64.urlsafe_b64encode(key).decode().rstrip("="),
        ]
    return out


def _assert_no_secrets(settings: Settings, *results: subprocess.CompletedProcess[str]) -> None:
    for secret in _secrets(settings):
        for result in results:
            assert secret not in result.stdout
            assert secret not in result.stderr


def test_status_sweep_rotate_then_decrypt_in_a_new_app(
    settings: Settings,
    make_app: Callable[..., Flask],
    clock: Any,
    anvil: Anvil,
    record: dict[str, Any],
) -> None:
    # One operator session, in order; each step is a real subprocess on the same data dir.
    env = _env(settings)
    path = settings.master_key_path
    assert not path.exists()

    # 1. status on a fresh data dir creates the master key file (0600) and logs it.
    first = _run(env, "status")
    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"created a new master key file at {path} (mode 0600)" in first.stderr
    assert "back it up" in first.stderr
    status = json.loads(first.stdout)
    assert status["contract"] == record["address"]
    assert status["chain_id"] == 31337
    assert isinstance(status["chain_block"], int) and status["chain_block"] > 0
    assert status["payloads"] == {} and status["outbox"] == {} and status["key_versions"] == {}
    assert status["database"] == str(settings.database_path)
    created_ring = KeyRing.from_json(path.read_text())

    # 2. The app reuses that file: one live payload, one already expired.
    app = make_app(start_workers=False)
    store = app.extensions["slt"].store
    client = app.test_client()
    live = client.post("/generate", json={"prompt": "marker-cli-live", "emotion": "sad"})
    assert live.status_code == 201
    clock.advance(-120)  # created two minutes ago with a one-minute life: already expired
    old = client.post("/generate", json={"prompt": "marker-cli-old", "ttl_seconds": 60})
    assert old.status_code == 201
    clock.advance(120)
    assert KeyRing.from_json(path.read_text()) == created_ring
    assert store.key_versions() == {1: 2}

    # 3. sweep --no-burn shreds the expired one; its never-sent mint is cancelled.
    sweep = _run(env, "sweep", "--no-burn")
    assert sweep.returncode == 0, sweep.stderr
    assert sweep.stdout.strip() == "shredded 1 expired payload(s)"
    assert "created a new master key file" not in sweep.stderr
    assert store.count_payloads() == {"pending_mint": 1, "expired": 1}
    assert store.key_versions() == {1: 1}
    assert store.outbox_counts() == {"mint:pending": 1}

    # 4. rotate-keys adds version 2 and rewraps the one data key left.
    rotate = _run(env, "rotate-keys")
    assert rotate.returncode == 0, rotate.stderr
    assert rotate.stdout.strip() == "master key version 2 added; 1 data key(s) rewrapped"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = KeyRing.from_json(path.read_text())
    assert (ring.current, sorted(ring.keys)) == (2, [1, 2])
    assert ring.keys[1] == created_ring.keys[1]

    # 5. status shows every data key at version 2.
    after = _run(env, "status")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["key_versions"] == {"2": 1}
    assert json.loads(after.stdout)["payloads"] == {"pending_mint": 1, "expired": 1}
    _assert_no_secrets(settings, first, sweep, rotate, after)

    # 6. A new app on the same data dir reads the rotated ring and opens the old payload.
    fresh = make_app(start_workers=False).test_client()
    body = live.get_json()
    opened = fresh.post(
        f"/tokens/{body['token']['id']}/decrypt", headers={"X-SLT-Secret": body["secret"]}
    )
    assert opened.status_code == 200, opened.get_json()
    assert opened.get_json()["prompt"] == "marker-cli-live"
    assert opened.get_json()["emotion"] == "sad"


def test_rotate_keys_with_keys_in_the_environment_exits_2(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In process: the refusal comes before any key is read, so no subprocess is needed.
    value = "1:" + base64.b64encode(b"\x42" * 32).decode()
    for name in [k for k in os.environ if k.startswith("SLT_")]:
        monkeypatch.delenv(name)
    for name, env_value in _env(settings, SLT_MASTER_KEYS=value).items():
        if name.startswith("SLT_"):
            monkeypatch.setenv(name, env_value)
    assert cli_main(["rotate-keys"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "error: rotate-keys needs the key file: unset SLT_MASTER_KEYS\n"
    assert not settings.master_key_path.exists()
