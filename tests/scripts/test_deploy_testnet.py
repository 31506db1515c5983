"""Testnet rehearsal without internet: Anvil posing as Sepolia (and Base Sepolia).

ape-config.yaml points the `node` provider of ethereum:sepolia at ${SEPOLIA_RPC_URL}; here that
is an Anvil started with `--chain-id 11155111` and a short block time, so confirmations happen.
The deployer is a named account imported with `ape accounts import`, unlocked from
APE_ACCOUNTS_<alias>_PASSPHRASE, exactly as CI would on the real network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from deploy_support import DEV_ADDRESSES, Anvil, NamedAccount, Result, RunApe, free_port, rpc
from eth_utils import keccak

from scripts._helpers import RECORD_KEYS

ADMIN, MINTER = DEV_ADDRESSES[1], DEV_ADDRESSES[3]
BASE_URI = "https://tokens.example/slt/"
PROMPT = "Deploy SymbioticLearningToken to ethereum:sepolia? [y/N]"


@pytest.fixture(scope="module")
def sepolia(anvil_factory: Any) -> Anvil:
    return anvil_factory(11155111, block_time=0.5)


@pytest.fixture(scope="module")
def deploy_sepolia(run_ape: RunApe, sepolia: Anvil, named_account: NamedAccount) -> Any:
    """`ape run deploy deploy --network ethereum:sepolia:node ...` with overridable parts."""

    def run(
        out_dir: Path,
        *extra: str,
        account: str = named_account.alias,
        admin: str = ADMIN,
        env: dict[str, str] | None = None,
        input: str = "",
    ) -> Result:
        return run_ape(
            "run",
            "deploy",
            "deploy",
            "--network",
            "ethereum:sepolia:node",
            "--account",
            account,
            "--admin",
            admin,
            "--minter",
            MINTER,
            "--base-uri",
            BASE_URI,
            "--out-dir",
            str(out_dir),
            *extra,
            env={"SEPOLIA_RPC_URL": sepolia.url, **named_account.env, **(env or {})},
            input=input,
        )

    return run


def assert_failed_cleanly(result: Result, out_dir: Path, *messages: str) -> None:
    """A clear message, a non-zero exit, no traceback, and not a byte written."""
    assert result.returncode != 0, result.output
    for message in messages:
        assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def check_record(record: dict[str, Any], chain: Anvil, deployer: str) -> None:
    assert list(record) == list(RECORD_KEYS)
    assert record["chain_id"] == 11155111
    assert (record["ecosystem"], record["network"]) == ("ethereum", "sepolia")
    assert record["deployer"] == deployer
    assert (record["admin"], record["minter"]) == (ADMIN, MINTER)
    code = bytes.fromhex(str(rpc(chain.url, "eth_getCode", [record["address"], "latest"]))[2:])
    assert record["runtime_code_hash"] == "0x" + keccak(code).hex()


def test_declining_the_prompt_aborts_without_record(deploy_sepolia: Any, tmp_path: Path) -> None:
    result = deploy_sepolia(tmp_path, input="n\n")

    assert PROMPT in result.output
    assert "Estimated cost:" in result.stdout  # shown before the question
    assert_failed_cleanly(result, tmp_path, "aborted: not confirmed")


def test_accepting_the_prompt_deploys_and_waits_for_confirmations(
    deploy_sepolia: Any, sepolia: Anvil, named_account: NamedAccount, tmp_path: Path
) -> None:
    result = deploy_sepolia(tmp_path, input="y\n")

    assert result.returncode == 0, result.output
    assert PROMPT in result.output
    assert "Passphrase for account" not in result.output  # it came from the environment
    assert "Confirmations:  2" in result.stdout  # ethereum:sepolia's required confirmations
    assert "Waiting for 2 confirmation(s)" in result.output
    record = json.loads((tmp_path / "ethereum-sepolia.json").read_text())
    check_record(record, sepolia, named_account.address)
    head = int(str(rpc(sepolia.url, "eth_blockNumber")), 16)
    assert head >= record["block_number"] + 2


def test_yes_deploys_without_prompt_and_show_matches(
    deploy_sepolia: Any,
    run_ape: RunApe,
    sepolia: Anvil,
    named_account: NamedAccount,
    tmp_path: Path,
) -> None:
    result = deploy_sepolia(tmp_path, "--yes", "--confirmations", "1")

    assert result.returncode == 0, result.output
    assert "[y/N]" not in result.output
    assert "Waiting for 1 confirmation(s)" in result.output
    record = json.loads((tmp_path / "ethereum-sepolia.json").read_text())
    check_record(record, sepolia, named_account.address)

    shown = run_ape(
        "run",
        "deploy",
        "show",
        "--network",
        "ethereum:sepolia:node",
        env={"SEPOLIA_RPC_URL": sepolia.url, "SLT_DEPLOYMENTS_DIR": str(tmp_path)},
    )
    assert shown.returncode == 0, shown.output
    assert f"address: {record['address']}" in shown.stdout
    assert f"admin (owner): {ADMIN}" in shown.stdout
    assert f"minter: {MINTER} (holds MINTER_ROLE: yes)" in shown.stdout
    assert shown.stdout.splitlines()[-1] == "code hash: OK"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--admin", "0x0000000000000000000000000000000000000000", "--admin: the zero address"),
        ("--minter", "0x1234", "--minter: '0x1234' is not an address"),
        ("--ttl", "0", "--ttl: 0 is out of range"),
    ],
    ids=["zero-admin", "bad-minter", "zero-ttl"],
)
def test_bad_input_is_refused_before_anything_is_sent(
    deploy_sepolia: Any, tmp_path: Path, option: str, value: str, message: str
) -> None:
    extra = () if option == "--admin" else (option, value)
    admin = value if option == "--admin" else ADMIN
    result = deploy_sepolia(tmp_path, "--yes", *extra, admin=admin)

    assert_failed_cleanly(result, tmp_path, message)
    assert "Deployed:" not in result.output


def test_unknown_account_alias_is_refused(deploy_sepolia: Any, tmp_path: Path) -> None:
    result = deploy_sepolia(tmp_path, "--yes", account="nobody")

    assert_failed_cleanly(result, tmp_path, "Account with alias 'nobody' not found")


def test_wrong_passphrase_is_refused(
    deploy_sepolia: Any, named_account: NamedAccount, tmp_path: Path
) -> None:
    env = {f"APE_ACCOUNTS_{named_account.alias}_PASSPHRASE": "not-the-passphrase"}
    result = deploy_sepolia(tmp_path, "--yes", env=env)

    assert_failed_cleanly(result, tmp_path, "cannot unlock account 'deployer': wrong passphrase")


def test_test_account_is_refused_on_a_live_network(deploy_sepolia: Any, tmp_path: Path) -> None:
    result = deploy_sepolia(tmp_path, "--yes", account="TEST::0")

    assert_failed_cleanly(result, tmp_path, "is a live network: use a named account")


def test_unreachable_rpc_is_refused(deploy_sepolia: Any, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = deploy_sepolia(tmp_path, "--yes", env={"SEPOLIA_RPC_URL": closed})

    assert_failed_cleanly(result, tmp_path, "cannot connect to the network", closed)


def test_unset_rpc_url_variable_is_refused(
    deploy_sepolia: Any, run_ape: RunApe, tmp_path: Path
) -> None:
    # An empty value would expand to nothing; leaving it out keeps `${SEPOLIA_RPC_URL}` literal.
    result = run_ape(
        "run",
        "deploy",
        "show",
        "--network",
        "ethereum:sepolia:node",
        "--out-dir",
        str(tmp_path),
    )

    assert_failed_cleanly(result, tmp_path, "Invalid uri: ${SEPOLIA_RPC_URL}", "SEPOLIA_RPC_URL")


def test_empty_rpc_url_variable_is_refused_before_connecting(
    deploy_sepolia: Any, tmp_path: Path
) -> None:
    # Empty, ape would fall back to a public RPC; the script stops before ape connects.
    result = deploy_sepolia(tmp_path, "--yes", env={"SEPOLIA_RPC_URL": ""})

    assert_failed_cleanly(result, tmp_path, "$SEPOLIA_RPC_URL is set but empty")
    assert "Connecting to" not in result.output


def test_chain_id_mismatch_is_refused(
    deploy_sepolia: Any, anvil_factory: Any, tmp_path: Path
) -> None:
    impostor = anvil_factory(1234)  # an Anvil posing as Sepolia
    result = deploy_sepolia(tmp_path, "--yes", env={"SEPOLIA_RPC_URL": impostor.url})

    assert_failed_cleanly(result, tmp_path, "chain id mismatch", "1234", "11155111")


def test_base_sepolia_rehearsal_writes_its_own_record(
    run_ape: RunApe, anvil_factory: Any, named_account: NamedAccount, tmp_path: Path
) -> None:
    base = anvil_factory(84532, block_time=0.5)
    result = run_ape(
        "run",
        "deploy",
        "deploy",
        "--network",
        "base:sepolia",
        "--account",
        named_account.alias,
        "--admin",
        ADMIN,
        "--minter",
        MINTER,
        "--base-uri",
        BASE_URI,
        "--out-dir",
        str(tmp_path),
        "--yes",
        env={"BASE_SEPOLIA_RPC_URL": base.url, **named_account.env},
    )

    assert result.returncode == 0, result.output
    assert "Waiting for 2 confirmation(s)" in result.output  # base.sepolia in ape-config.yaml
    assert [p.name for p in tmp_path.iterdir()] == ["base-sepolia.json"]
    record = json.loads((tmp_path / "base-sepolia.json").read_text())
    assert (record["ecosystem"], record["network"]) == ("base", "sepolia")
    assert record["chain_id"] == 84532
