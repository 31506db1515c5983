"""`ape run deploy` on the local network: an Anvil of our own, reached through ape-foundry.

ape-foundry connects to an already running Anvil when APE_FOUNDRY_HOST names it, so the
command runs exactly as on a developer's machine, only against this module's Anvil.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from deploy_support import DEV_ADDRESSES, PROJECT_ROOT, Anvil, Result, RunApe
from eth_utils import keccak
from web3 import Web3

from scripts._helpers import RECORD_KEYS, record_path

DEPLOYER, ADMIN, MINTER, OTHER, HOLDER = DEV_ADDRESSES
BASE_URI = "https://tokens.example/slt/"


@dataclass
class Local:
    chain: Anvil
    out_dir: Path
    deploy_result: Result
    run: Any  # (*args, out_dir=...) -> Result

    @property
    def record_file(self) -> Path:
        return record_path("ethereum", "local", self.out_dir)

    @property
    def record(self) -> dict[str, Any]:
        return dict(json.loads(self.record_file.read_text()))

    def contract(self) -> Any:
        """The contract as the backend will see it: plain json + web3.py."""
        w3 = Web3(Web3.HTTPProvider(self.chain.url))
        record = self.record
        return w3, w3.eth.contract(address=record["address"], abi=record["abi"])


@pytest.fixture(scope="module")
def local(anvil_factory: Any, run_ape: RunApe, tmp_path_factory: pytest.TempPathFactory) -> Local:
    chain = anvil_factory(31337)
    out_dir = tmp_path_factory.mktemp("deployments-local")

    def run(*args: str, out: Path = out_dir) -> Result:
        return run_ape(
            "run",
            "deploy",
            *args,
            "--network",
            "ethereum:local:foundry",
            "--out-dir",
            str(out),
            env={"APE_FOUNDRY_HOST": chain.url},
        )

    result = run(
        "deploy",
        "--account",
        "TEST::0",
        "--admin",
        ADMIN,
        "--minter",
        MINTER,
        "--base-uri",
        BASE_URI,
    )
    assert result.returncode == 0, result.output
    return Local(chain=chain, out_dir=out_dir, deploy_result=result, run=run)


def test_deploy_prints_gas_estimate_and_writes_record(local: Local) -> None:
    out = local.deploy_result.stdout
    gas = int(re.search(r"Estimated gas:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    assert 1_000_000 < gas < 5_000_000
    assert re.search(r"Estimated cost:\s+0\.\d+ ETH", out)
    assert "Confirmations:  0" in out  # local: nothing to wait for
    assert "[y/N]" not in local.deploy_result.output  # no prompt on the local network
    assert f"Record written: {local.record_file}" in out
    # Only the record: the temporary file of the atomic write is gone.
    assert [p.name for p in local.out_dir.iterdir()] == ["ethereum-local.json"]


def test_record_has_exactly_the_agreed_shape(local: Local) -> None:
    record = local.record
    assert list(record) == list(RECORD_KEYS)
    assert record["contract"] == "SymbioticLearningToken"
    assert record["address"] == Web3.to_checksum_address(record["address"])
    assert record["chain_id"] == 31337
    assert (record["ecosystem"], record["network"]) == ("ethereum", "local")
    assert isinstance(record["block_number"], int) and record["block_number"] >= 1
    assert re.fullmatch(r"0x[0-9a-f]{64}", record["transaction_hash"])
    assert record["deployer"] == DEPLOYER
    assert (record["admin"], record["minter"]) == (ADMIN, MINTER)
    assert record["base_uri"] == BASE_URI
    assert record["default_ttl"] == 3600
    compiler = record["compiler"]
    assert (compiler["name"], compiler["version"]) == ("solc", "0.8.28")
    assert compiler["settings"]["optimizer"] == {"enabled": True, "runs": 200}
    assert compiler["settings"]["evmVersion"] == "cancun"
    assert any(r.startswith("solady=") for r in compiler["settings"]["remappings"])
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert record["git_commit"] == (head.stdout.strip() if head.returncode == 0 else "unknown")
    deployed_at = datetime.fromisoformat(record["deployed_at"].replace("Z", "+00:00"))
    assert timedelta(0) <= datetime.now(UTC) - deployed_at < timedelta(minutes=30)
    names = {entry.get("name") for entry in record["abi"]}
    assert {"mint", "burn", "setBaseURI", "grantRoles", "Transfer", "BaseURIUpdated"} <= names


def test_record_code_hash_is_keccak_of_live_runtime_code(local: Local) -> None:
    w3, contract = local.contract()
    code = bytes(w3.eth.get_code(contract.address))
    assert code
    assert local.record["runtime_code_hash"] == "0x" + keccak(code).hex()
    receipt = w3.eth.get_transaction_receipt(local.record["transaction_hash"])
    assert receipt["contractAddress"] == contract.address
    assert receipt["blockNumber"] == local.record["block_number"]


def test_deployed_roles_and_settings_are_as_recorded(local: Local) -> None:
    _, contract = local.contract()
    role = contract.functions.MINTER_ROLE().call()
    assert role == 1
    assert contract.functions.owner().call() == ADMIN
    assert contract.functions.hasAllRoles(MINTER, role).call()
    assert not contract.functions.hasAnyRole(ADMIN, role).call()
    assert contract.functions.defaultTTL().call() == 3600


def test_show_reports_live_state_with_mints_and_burns(local: Local) -> None:
    w3, contract = local.contract()
    for _ in range(3):
        tx = contract.functions.mint(HOLDER, 0, b"\x11" * 32, False).transact({"from": MINTER})
        assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    tx = contract.functions.burn(2).transact({"from": MINTER})
    assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    assert contract.functions.tokenURI(1).call() == BASE_URI + "1"

    result = local.run("show")

    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    record = local.record
    assert f"address: {record['address']}" in lines
    assert "chain id: 31337" in lines
    assert f"admin (owner): {ADMIN}" in lines
    assert f"minter: {MINTER} (holds MINTER_ROLE: yes)" in lines
    assert f"base URI (record): {BASE_URI}" in lines
    assert f"base URI (on-chain): {BASE_URI} (unchanged since deployment)" in lines
    assert "default TTL: 3600 s" in lines
    assert "total minted: 3" in lines
    assert "total burned: 1" in lines
    assert lines[-1] == "code hash: OK"


def test_admin_commands_grant_revoke_and_set_base_uri(local: Local) -> None:
    _, contract = local.contract()
    role = contract.functions.MINTER_ROLE().call()
    tx_line = re.compile(r"^Transaction:\s+0x[0-9a-f]{64}$", re.M)

    granted = local.run("grant-minter", OTHER, "--account", "TEST::1")
    assert granted.returncode == 0, granted.output
    assert tx_line.search(granted.stdout)
    assert contract.functions.hasAllRoles(OTHER, role).call()

    revoked = local.run("revoke-minter", MINTER, "--account", "TEST::1")
    assert revoked.returncode == 0, revoked.output
    assert tx_line.search(revoked.stdout)
    assert not contract.functions.hasAnyRole(MINTER, role).call()
    assert contract.functions.hasAllRoles(OTHER, role).call()

    new_uri = "ipfs://bafy-new-base/"
    updated = local.run("set-base-uri", new_uri, "--account", "TEST::1")
    assert updated.returncode == 0, updated.output
    assert tx_line.search(updated.stdout)
    assert contract.functions.tokenURI(1).call() == new_uri + "1"

    shown = local.run("show")
    assert shown.returncode == 0, shown.output
    lines = shown.stdout.splitlines()
    assert f"minter: {MINTER} (holds MINTER_ROLE: no)" in lines
    assert f"base URI (record): {BASE_URI}" in lines
    assert any(line.startswith(f"base URI (on-chain): {new_uri} (BaseURIUpdated") for line in lines)
    assert lines[-1] == "code hash: OK"


def test_admin_command_from_non_admin_is_refused(local: Local) -> None:
    _, contract = local.contract()
    role = contract.functions.MINTER_ROLE().call()

    result = local.run("grant-minter", HOLDER, "--account", "TEST::0")

    assert result.returncode != 0
    assert f"{DEPLOYER} is not the admin" in result.output
    assert f"the owner is {ADMIN}" in result.output
    assert not contract.functions.hasAnyRole(HOLDER, role).call()


def test_admin_command_without_record_says_deploy_first(local: Local, tmp_path: Path) -> None:
    result = local.run("grant-minter", HOLDER, "--account", "TEST::1", out=tmp_path)

    assert result.returncode != 0
    assert "no deployment record at" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_show_flags_code_hash_mismatch(local: Local, tmp_path: Path) -> None:
    record = local.record
    record["runtime_code_hash"] = "0x" + "00" * 32
    (tmp_path / "ethereum-local.json").write_text(json.dumps(record))

    result = local.run("show", out=tmp_path)

    assert result.returncode == 1
    assert "code hash: MISMATCH" in result.stdout
