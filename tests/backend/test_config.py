"""Settings from the environment: defaults, and one clear ConfigError per bad setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from slt_harness import ROOT

from backend.__main__ import main as cli_main
from backend.config import Settings
from backend.errors import ConfigError

# A well-formed but made-up key: the tests only check that it is never echoed.
FAKE_KEY = "0x" + "c0ffee" * 10 + "abcd"


def test_from_env_with_no_variables_gives_the_defaults() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert s.data_dir == Path("var")
    assert s.database_path == Path("var") / "slt.sqlite3"
    assert s.master_key_path == Path("var") / "master-keys.json"
    assert s.deployment_path == Path("deployments") / "ethereum-local.json"
    assert s.rpc_url == "http://127.0.0.1:8545"
    assert s.public_url == "http://127.0.0.1:8080"
    assert s.siwe_domain == "127.0.0.1:8080"
    assert s.public_origin == "http://127.0.0.1:8080"
    assert s.allowed_origins == ("http://127.0.0.1:8080",)
    assert (s.session_ttl, s.nonce_ttl, s.default_ttl) == (900, 300, 3600)
    assert s.max_upload_bytes == 5 * 1024 * 1024
    assert s.reward_scorer == "backend.payloads:emotion_reward"
    assert s.relayer_key is None and s.master_keys is None
    assert s.rate_limits_enabled is True and s.run_workers is True


def test_from_env_ignores_variables_without_the_prefix() -> None:
    assert Settings.from_env({"PATH": "/bin", "HOME": "/root", "slt_lower": "x"}) == Settings()


def test_from_env_reads_every_kind_of_value(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "SLT_DATA_DIR": str(tmp_path),
            "SLT_PUBLIC_URL": "https://slt.example:8443/app",
            "SLT_CORS_ORIGINS": "https://a.example, https://b.example/ ,",
            "SLT_SESSION_TTL": "60",
            "SLT_CHAIN_TIMEOUT": "2.5",
            "SLT_RATE_LIMITS_ENABLED": "off",
            "SLT_RUN_WORKERS": "No",
            "SLT_RATE_LIMIT_CREATE": "5 per minute",
            "SLT_RELAYER_KEY": FAKE_KEY,
            "SLT_LOG_LEVEL": "debug",
        }
    )
    assert s.data_dir == tmp_path and s.database_path == tmp_path / "slt.sqlite3"
    assert s.siwe_domain == "slt.example:8443"
    assert s.public_origin == "https://slt.example:8443"
    assert s.cors_origins == ("https://a.example", "https://b.example/")
    assert s.allowed_origins == s.cors_origins
    assert s.session_ttl == 60 and s.chain_timeout == 2.5
    assert s.rate_limits_enabled is False and s.run_workers is False
    assert s.relayer_key == FAKE_KEY


def test_relayer_key_is_never_in_the_repr() -> None:
    s = Settings.from_env({"SLT_RELAYER_KEY": FAKE_KEY, "SLT_MASTER_KEYS": "1:c2VjcmV0"})
    assert FAKE_KEY[2:] not in repr(s)
    assert "c2VjcmV0" not in repr(s)


def test_relayer_key_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "relayer.key"
    path.write_text(FAKE_KEY + "\n")
    assert Settings.from_env({"SLT_RELAYER_KEY_FILE": str(path)}).relayer_key == FAKE_KEY


def test_relayer_key_file_missing_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SLT_RELAYER_KEY_FILE: cannot read"):
        Settings.from_env({"SLT_RELAYER_KEY_FILE": str(tmp_path / "nope.key")})


BAD = {
    "public-url-scheme": ("SLT_PUBLIC_URL", "ftp://example.com"),
    "public-url-no-host": ("SLT_PUBLIC_URL", "http://"),
    "public-url-words": ("SLT_PUBLIC_URL", "not a url"),
    "rpc-url-scheme": ("SLT_RPC_URL", "ws://127.0.0.1:8545"),
    "rpc-url-bare": ("SLT_RPC_URL", "127.0.0.1:8545"),
    "cors-path": ("SLT_CORS_ORIGINS", "https://a.example/path"),
    "cors-scheme": ("SLT_CORS_ORIGINS", "a.example"),
    "custody": ("SLT_CUSTODY_ADDRESS", "0x1234"),
    "session-ttl-negative": ("SLT_SESSION_TTL", "-1"),
    "session-ttl-zero": ("SLT_SESSION_TTL", "0"),
    "session-ttl-text": ("SLT_SESSION_TTL", "abc"),
    "session-ttl-float": ("SLT_SESSION_TTL", "1.5"),
    "nonce-ttl-negative": ("SLT_NONCE_TTL", "-300"),
    "default-ttl-negative": ("SLT_DEFAULT_TTL", "-5"),
    "max-ttl-zero": ("SLT_MAX_TTL", "0"),
    "upload-negative": ("SLT_MAX_UPLOAD_BYTES", "-1"),
    "prompt-chars-zero": ("SLT_MAX_PROMPT_CHARS", "0"),
    "batch-zero": ("SLT_MINT_BATCH_MAX", "0"),
    "interval-negative": ("SLT_SWEEP_INTERVAL", "-0.5"),
    "interval-text": ("SLT_OUTBOX_INTERVAL", "fast"),
    "timeout-zero": ("SLT_CHAIN_TIMEOUT", "0"),
    "confirmations-negative": ("SLT_CONFIRMATIONS", "-1"),
    "rate-create": ("SLT_RATE_LIMIT_CREATE", "lots"),
    "rate-read": ("SLT_RATE_LIMIT_READ", "60/fortnight"),
    "rate-unit-only": ("SLT_RATE_LIMIT_READ", "/minute"),
    "bool": ("SLT_RATE_LIMITS_ENABLED", "maybe"),
    "scorer": ("SLT_REWARD_SCORER", "backend.payloads.emotion_reward"),
    "log-level": ("SLT_LOG_LEVEL", "LOUD"),
}


@pytest.mark.parametrize(("name", "value"), list(BAD.values()), ids=list(BAD))
def test_bad_setting_is_a_config_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value)


def test_default_ttl_above_max_ttl_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="SLT_DEFAULT_TTL must not exceed SLT_MAX_TTL"):
        Settings.from_env({"SLT_DEFAULT_TTL": "7200", "SLT_MAX_TTL": "3600"})


def test_unknown_slt_variables_are_all_named() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"SLT_SESION_TTL": "60", "SLT_FOO": "1", "SLT_DATA_DIR": "x"})
    assert str(info.value) == "unknown setting(s): SLT_FOO, SLT_SESION_TTL"


@pytest.mark.parametrize(
    "key",
    [
        "0xdeadbeef",
        "c0ffee" * 10 + "abc",  # 63 hex digits
        "c0ffee" * 10 + "abcde",  # 65 hex digits
        "0x" + "zz" * 32,
        "c0ffee" * 10 + "abc\n",
        "my-secret-passphrase",
    ],
    ids=["short", "63-hex", "65-hex", "not-hex", "newline", "words"],
)
def test_bad_relayer_key_error_does_not_show_the_key(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"SLT_RELAYER_KEY": key})
    message = str(info.value)
    assert "SLT_RELAYER_KEY" in message
    assert "not shown" in message
    assert key.strip() not in message
    assert key.strip()[2:12] not in message
    assert key.strip()[-10:] not in message


def test_bad_relayer_key_file_content_is_not_shown(tmp_path: Path) -> None:
    path = tmp_path / "relayer.key"
    path.write_text("0xdeadbeefcafe-not-a-key")
    with pytest.raises(ConfigError, match="SLT_RELAYER_KEY") as info:
        Settings.from_env({"SLT_RELAYER_KEY_FILE": str(path)})
    assert "deadbeefcafe" not in str(info.value)


def test_with_validates_the_changed_copy() -> None:
    s = Settings()
    assert s.with_(session_ttl=60).session_ttl == 60
    with pytest.raises(ConfigError, match="SLT_SESSION_TTL"):
        s.with_(session_ttl=-1)


@pytest.mark.parametrize(
    ("name", "value"),
    [("SLT_CHAIN_TIMEOUT", "nan"), ("SLT_SWEEP_INTERVAL", "inf"), ("SLT_FOLLOW_INTERVAL", "-nan")],
)
def test_non_finite_float_setting_is_a_config_error(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


# The command line ----------------------------------------------------------------------------


def _clean_env(**slt: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLT_")}
    env.update(slt)
    return env


def _command() -> list[str]:
    return [sys.executable, "-m", "backend", "status"]


CLI_BAD = {
    "unknown": ("SLT_SESION_TTL", "60"),
    "relayer-key": ("SLT_RELAYER_KEY", "0xdeadbeefdeadbeef"),
}


def test_cli_status_with_bad_setting_exits_2_with_one_line_error(tmp_path: Path) -> None:
    # The interpreter start-up dominates: run the cases side by side.
    procs = {}
    for case, (name, value) in CLI_BAD.items():
        data_dir = tmp_path / case
        data_dir.mkdir()
        procs[case] = subprocess.Popen(
            _command(),
            cwd=ROOT,
            env=_clean_env(**{name: value, "SLT_DATA_DIR": str(data_dir)}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for case, proc in procs.items():
        name, value = CLI_BAD[case]
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 2, (case, stderr)
        assert stdout == "", case
        assert stderr.startswith("error: "), (case, stderr)
        assert name in stderr, (case, stderr)
        assert "Traceback" not in stderr, (case, stderr)
        assert stderr.count("\n") == 1, (case, stderr)
        if name == "SLT_RELAYER_KEY":
            assert "deadbeef" not in stderr
        assert list((tmp_path / case).iterdir()) == [], case  # nothing created before the check


def _in_process_env(monkeypatch: pytest.MonkeyPatch, **slt: str) -> None:
    for name in [k for k in os.environ if k.startswith("SLT_")]:
        monkeypatch.delenv(name)
    for name, value in slt.items():
        monkeypatch.setenv(name, value)


def test_cli_status_with_missing_deployment_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In process (the subprocess path is covered above): main() turns a ConfigError raised
    # while building the app into exit status 2 and one line on stderr.
    _in_process_env(
        monkeypatch,
        SLT_DATA_DIR=str(tmp_path / "var"),
        SLT_DEPLOYMENT_FILE=str(tmp_path / "nope.json"),
    )
    assert cli_main(["status"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"error: no deployment record at {tmp_path / 'nope.json'}:"
        " deploy first (`ape run deploy deploy …`)\n"
    )


def test_cli_status_with_empty_scorer_module_exits_2(
    tmp_path: Path,
    anvil: Any,
    record: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment = tmp_path / "deployment.json"
    deployment.write_text(json.dumps(record))
    _in_process_env(
        monkeypatch,
        SLT_DATA_DIR=str(tmp_path / "var"),
        SLT_RPC_URL=anvil.url,
        SLT_DEPLOYMENT_FILE=str(deployment),
        SLT_REWARD_SCORER=":emotion_reward",
    )
    assert cli_main(["status"]) == 2
    assert capsys.readouterr().err.startswith("error: SLT_REWARD_SCORER")
