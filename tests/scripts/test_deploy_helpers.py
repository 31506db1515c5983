"""Unit tests of scripts/_helpers.py: pure functions and the atomic record write, no chain."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from deploy_support import DEV_ADDRESSES, PROJECT_ROOT
from eth_utils import keccak

from scripts import _helpers as h


def sample_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {key: f"<{key}>" for key in h.RECORD_KEYS}
    record.update(chain_id=31337, block_number=1, default_ttl=3600, abi=[], compiler={})
    record.update(changes)
    return record


def test_import_needs_no_provider() -> None:
    # The backend and these tests import the module without ape being connected.
    assert h.CONTRACT_NAME == "SymbioticLearningToken"
    assert h.PROJECT_ROOT == PROJECT_ROOT


@pytest.mark.parametrize(
    ("ecosystem", "network", "chain_id"),
    [
        ("ethereum", "sepolia", 11155111),
        ("base", "sepolia", 84532),
        ("arbitrum", "sepolia", 421614),
        ("ethereum", "local", None),
        ("ethereum", "sepolia-fork", None),
    ],
)
def test_expected_chain_ids(ecosystem: str, network: str, chain_id: int | None) -> None:
    assert h.expected_chain_id(ecosystem, network) == chain_id


def test_unknown_live_network_has_no_expected_chain_id() -> None:
    with pytest.raises(ValueError, match="no expected chain id is known for polygon:amoy"):
        h.expected_chain_id("polygon", "amoy")


def test_record_path_defaults_env_and_explicit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(h.DEPLOYMENTS_ENV_VAR, raising=False)
    assert h.record_path("base", "sepolia") == PROJECT_ROOT / "deployments" / "base-sepolia.json"
    monkeypatch.setenv(h.DEPLOYMENTS_ENV_VAR, str(tmp_path / "env"))
    assert h.record_path("ethereum", "local") == tmp_path / "env" / "ethereum-local.json"
    explicit = h.record_path("ethereum", "local", tmp_path / "cli")
    assert explicit == tmp_path / "cli" / "ethereum-local.json"


def test_parse_address_checksums_and_rejects_bad_input() -> None:
    admin = DEV_ADDRESSES[1]
    assert h.parse_address(admin.lower(), "--admin") == admin
    assert h.parse_address(f"  {admin} ", "--admin") == admin
    with pytest.raises(ValueError, match="--admin: the zero address is not allowed"):
        h.parse_address(h.ZERO_ADDRESS, "--admin")
    assert h.parse_address(h.ZERO_ADDRESS, "--minter", allow_zero=True) == h.ZERO_ADDRESS
    with pytest.raises(ValueError, match="is not an address"):
        h.parse_address("0x1234", "--minter")
    with pytest.raises(ValueError, match="is not an address"):
        h.parse_address("vitalik.eth", "--minter")
    typo = admin[:-1] + ("8" if admin[-1] != "8" else "9")
    with pytest.raises(ValueError, match="bad EIP-55 checksum"):
        h.parse_address(typo, "--admin")


def test_code_hash_is_0x_keccak() -> None:
    assert h.code_hash(b"") == "0x" + keccak(b"").hex()
    assert h.code_hash(b"\x60\x00") == "0x" + keccak(b"\x60\x00").hex()
    assert len(h.code_hash(b"\x00")) == 66


def test_write_record_atomic_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "ethereum-local.json"
    record = sample_record()
    h.write_record_atomic(path, record)

    assert h.load_record(path) == record
    assert list(json.loads(path.read_text())) == list(h.RECORD_KEYS)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert [p.name for p in path.parent.iterdir()] == ["ethereum-local.json"]


def test_failed_write_leaves_old_record_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "ethereum-local.json"
    h.write_record_atomic(path, sample_record(address="0xOld"))
    before = path.read_text()

    with pytest.raises(TypeError):
        h.write_record_atomic(path, sample_record(address=object()))  # not JSON-serializable

    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ethereum-local.json"]


def test_failed_replace_removes_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        h.write_record_atomic(tmp_path / "ethereum-local.json", sample_record())

    assert list(tmp_path.iterdir()) == []


def test_write_refuses_a_record_of_another_shape(tmp_path: Path) -> None:
    record = sample_record(extra="x")
    del record["abi"]
    with pytest.raises(h.RecordError, match=r"missing \['abi'\], extra \['extra'\]"):
        h.write_record_atomic(tmp_path / "r.json", record)
    assert list(tmp_path.iterdir()) == []


def test_load_record_errors_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(h.RecordError, match="no deployment record at .*deploy first"):
        h.load_record(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(h.RecordError, match="is not valid JSON"):
        h.load_record(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    with pytest.raises(h.RecordError, match="is not a JSON object"):
        h.load_record(listed)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"contract": "SymbioticLearningToken"}))
    with pytest.raises(h.RecordError, match="missing"):
        h.load_record(partial)


def test_git_commit_outside_a_checkout_is_unknown(tmp_path: Path) -> None:
    assert h.git_commit(tmp_path) == "unknown"


def test_formatting_helpers() -> None:
    assert h.format_ether(1_234_500_000_000_000) == "0.0012345 ETH"
    assert h.format_ether(10**18) == "1 ETH"
    assert h.format_ether(0) == "0 ETH"
    assert h.format_gwei(1_500_000_000) == "1.5 gwei"
    assert h.format_gwei(2_000_000_000) == "2 gwei"
    assert h.utc_now_iso().endswith("Z")


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("https://eth-sepolia.g.alchemy.com/v2/SECRETKEY", "https://eth-sepolia.g.alchemy.com"),
        ("https://user:pw@rpc.example:8545/path?key=1", "https://rpc.example:8545"),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("", "<none>"),
    ],
)
def test_redact_url_drops_secrets(uri: str, shown: str) -> None:
    assert h.redact_url(uri) == shown
