"""Shared pieces of the deployment scripts that need no provider.

The underscore keeps `ape run` from offering this module as a script. Everything here is pure or
touches only the file system, so the tests (and the backend's authors) can import it without
connecting to a chain.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_utils.address import is_checksum_address, to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3

CONTRACT_NAME = "SymbioticLearningToken"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENTS_ENV_VAR = "SLT_DEPLOYMENTS_DIR"
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

# Mirrors the contract's `_MAX_TTL`: checking it here saves a failed gas estimate.
MAX_TTL = 100 * 365 * 24 * 60 * 60

# The record's keys, in the order they are written. The backend reads this shape with plain json.
RECORD_KEYS: tuple[str, ...] = (
    "contract",
    "address",
    "chain_id",
    "ecosystem",
    "network",
    "block_number",
    "transaction_hash",
    "deployer",
    "admin",
    "minter",
    "base_uri",
    "default_ttl",
    "compiler",
    "git_commit",
    "runtime_code_hash",
    "deployed_at",
    "abi",
)

# The chain each real network must be. Local (and forked) networks may be any chain.
EXPECTED_CHAIN_IDS: dict[tuple[str, str], int] = {
    ("ethereum", "mainnet"): 1,
    ("ethereum", "sepolia"): 11155111,
    ("ethereum", "holesky"): 17000,
    ("base", "mainnet"): 8453,
    ("base", "sepolia"): 84532,
    ("arbitrum", "mainnet"): 42161,
    ("arbitrum", "sepolia"): 421614,
    ("optimism", "mainnet"): 10,
    ("optimism", "sepolia"): 11155420,
}

# The environment variables that ape-config.yaml's `node:` section reads the RPC URLs from.
RPC_URL_ENV_VARS: dict[tuple[str, str], str] = {
    ("ethereum", "sepolia"): "SEPOLIA_RPC_URL",
    ("base", "sepolia"): "BASE_SEPOLIA_RPC_URL",
    ("arbitrum", "sepolia"): "ARBITRUM_SEPOLIA_RPC_URL",
}

TRANSFER_TOPIC = keccak(text="Transfer(address,address,uint256)")
BASE_URI_UPDATED_TOPIC = keccak(text="BaseURIUpdated(string)")
ZERO_TOPIC = bytes(32)
# Many RPC providers cap eth_getLogs at 10,000 blocks a call.
LOG_CHUNK_BLOCKS = 10_000

_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class RecordError(Exception):
    """A deployment record is missing, unreadable or not of the expected shape."""


def is_dev_network(network: str) -> bool:
    """`local` and forks (`sepolia-fork`) are simulations: any chain id, no prompts."""
    return network == "local" or network.endswith("-fork")


def expected_chain_id(ecosystem: str, network: str) -> int | None:
    """The chain id `ecosystem:network` must have; None for a development network."""
    if is_dev_network(network):
        return None
    try:
        return EXPECTED_CHAIN_IDS[(ecosystem, network)]
    except KeyError:
        known = ", ".join(f"{e}:{n}" for e, n in EXPECTED_CHAIN_IDS)
        raise ValueError(
            f"no expected chain id is known for {ecosystem}:{network} (known: {known}); "
            "add it to EXPECTED_CHAIN_IDS in scripts/_helpers.py"
        ) from None


def parse_address(value: str, option: str, *, allow_zero: bool = False) -> str:
    """Return `value` checksummed, or raise ValueError naming the option at fault.

    A mixed-case address must carry a valid EIP-55 checksum: a typo in a hand-copied address
    then fails here instead of handing the contract to nobody.
    """
    text = value.strip()
    if not _HEX_ADDRESS.match(text):
        raise ValueError(f"{option}: {value!r} is not an address (0x and 40 hex digits)")
    body = text[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(text):
        raise ValueError(f"{option}: {value!r} has a bad EIP-55 checksum (typo?)")
    address = to_checksum_address(text)
    if address == ZERO_ADDRESS and not allow_zero:
        raise ValueError(f"{option}: the zero address is not allowed")
    return address


def deployments_dir(out_dir: str | os.PathLike[str] | None = None) -> Path:
    """`out_dir`, else $SLT_DEPLOYMENTS_DIR, else the project's `deployments/`."""
    chosen = out_dir or os.environ.get(DEPLOYMENTS_ENV_VAR) or PROJECT_ROOT / "deployments"
    return Path(chosen)


def record_path(
    ecosystem: str, network: str, out_dir: str | os.PathLike[str] | None = None
) -> Path:
    """`<deployments dir>/<ecosystem>-<network>.json`, e.g. `deployments/base-sepolia.json`."""
    return deployments_dir(out_dir) / f"{ecosystem}-{network}.json"


def check_record_shape(record: Mapping[str, Any]) -> None:
    """Raise RecordError unless `record` has exactly the keys of RECORD_KEYS."""
    missing = [k for k in RECORD_KEYS if k not in record]
    extra = sorted(set(record) - set(RECORD_KEYS))
    if missing or extra:
        raise RecordError(
            f"record keys differ from the expected shape: missing {missing}, extra {extra}"
        )


def write_record_atomic(path: Path, record: Mapping[str, Any]) -> None:
    """Write `record` as JSON so that `path` is either the old file or the whole new one.

    The JSON goes to a temporary file in the same folder, is flushed to disk, and then
    `os.replace` swaps it in (atomic on POSIX and Windows). On any error the temporary file is
    removed and `path` is left as it was.
    """
    check_record_shape(record)
    ordered = {key: record[key] for key in RECORD_KEYS}
    text = json.dumps(ordered, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        # mkstemp makes the file owner-only; a record holds nothing secret and services read it.
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_record(path: Path) -> dict[str, Any]:
    """Read and shape-check a deployment record; RecordError says what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordError(
            f"no deployment record at {path}: deploy first (ape run deploy deploy --network ...) "
            f"or point --out-dir / ${DEPLOYMENTS_ENV_VAR} at the folder that holds it"
        ) from None
    except OSError as err:
        raise RecordError(f"cannot read the deployment record {path}: {err}") from err
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise RecordError(f"the deployment record {path} is not valid JSON: {err}") from err
    if not isinstance(record, dict):
        raise RecordError(f"the deployment record {path} is not a JSON object")
    try:
        check_record_shape(record)
    except RecordError as err:
        raise RecordError(f"{path}: {err}") from None
    return record


def code_hash(runtime_code: bytes) -> str:
    """`0x` + keccak256 of deployed runtime bytecode (as `eth_getCode` returns it)."""
    return "0x" + keccak(bytes(runtime_code)).hex()


# The functions below take a connected web3.py `Web3` (ape's `provider.web3`, or the backend's).


def code_problem(web3: Web3, record: Mapping[str, Any]) -> str | None:
    """None when the live runtime code hashes to the record's `runtime_code_hash`, else why not."""
    code = bytes(web3.eth.get_code(record["address"]))
    if not code:
        return f"no code at {record['address']} (was the chain reset?)"
    live = code_hash(code)
    if live != record["runtime_code_hash"]:
        return f"live code hash {live} differs from the record's {record['runtime_code_hash']}"
    return None


def get_logs(web3: Web3, address: str, topics: list[Any], from_block: int) -> list[Any]:
    """eth_getLogs from `from_block` to the head, in chunks that RPC providers accept."""
    head = web3.eth.block_number
    logs: list[Any] = []
    start = from_block
    while start <= head:
        stop = min(start + LOG_CHUNK_BLOCKS - 1, head)
        query = {"address": address, "topics": topics, "fromBlock": start, "toBlock": stop}
        logs.extend(web3.eth.get_logs(query))  # type: ignore[arg-type]
        start = stop + 1
    return logs


def wait_for_confirmations(
    web3: Web3,
    txn_hash: str,
    confirmations: int,
    timeout: float,
    poll: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Wait until `confirmations` blocks sit on top of the transaction's block; return that block.

    Same meaning as ape's `required_confirmations` (0: included is enough). The receipt is read
    again on every poll, so a re-org that moves the transaction is followed, not missed.
    Raises TimeoutError after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        block_number = int(web3.eth.get_transaction_receipt(txn_hash)["blockNumber"])  # type: ignore[arg-type]
        if web3.eth.block_number - block_number >= confirmations:
            return block_number
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{txn_hash} has fewer than {confirmations} confirmation(s) after {timeout:.0f} s"
            )
        sleep(poll)


def git_commit(cwd: Path = PROJECT_ROOT) -> str:
    """The checked-out commit (`git rev-parse HEAD`), or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip()
    return commit if re.fullmatch(r"[0-9a-f]{40}", commit) else "unknown"


def utc_now_iso() -> str:
    """Now, ISO-8601 in UTC with a `Z`, to the second: `2025-01-31T12:00:00Z`."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def format_ether(wei: int) -> str:
    """Wei as ether, trailing zeros removed: 1234500000000000 -> `0.0012345 ETH`."""
    ether = Decimal(wei) / Decimal(10**18)
    text = format(ether, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} ETH"


def format_gwei(wei: int) -> str:
    """Wei as gwei with up to 3 decimals: 1500000000 -> `1.5 gwei`."""
    gwei = (Decimal(wei) / Decimal(10**9)).quantize(Decimal("0.001"))
    text = format(gwei, "f").rstrip("0").rstrip(".")
    return f"{text} gwei"


def redact_url(uri: str) -> str:
    """Scheme, host and port of an RPC URL only: providers put API keys in paths and queries."""
    match = re.match(r"^([a-z]+://)([^/?#@]*@)?([^/?#]*)", uri)
    if not match:
        return "<ipc or unknown>" if uri else "<none>"
    return f"{match.group(1)}{match.group(3)}"
