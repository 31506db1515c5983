"""Test support shared by the backend and browser suites: Anvil, compile, deploy, sign-in.

Everything here is real: an Anvil process, the contract compiled by ape, deployed with web3.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import struct
import subprocess
import time
import wave
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak
from web3 import Web3

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / ".build" / "__local__.json"

# Anvil's well-known development keys (mnemonic "test test … junk"); public, test-only.
ANVIL_KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
]


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["SOLCX_BINARY_PATH"] = str(ROOT / ".cache" / "solcx")
    env.setdefault("APE_DATA_FOLDER", str(ROOT / ".cache" / "ape"))
    env["PATH"] = f"{ROOT / '.cache' / 'bin'}:{ROOT / '.venv' / 'bin'}:{env['PATH']}"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Anvil:
    """A real Anvil process on loopback."""

    port: int = field(default_factory=free_port)
    chain_id: int = 31337
    block_time: float | None = None
    proc: subprocess.Popen[bytes] | None = None
    state_file: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, load_state: Path | None = None) -> Anvil:
        cmd = [
            str(ROOT / ".cache" / "bin" / "anvil"),
            "--port", str(self.port), "--chain-id", str(self.chain_id), "--silent",
        ]  # fmt: skip
        if self.block_time:
            cmd += ["--block-time", str(self.block_time)]
        if load_state is not None:
            cmd += ["--load-state", str(load_state)]
        if self.state_file is not None:
            cmd += ["--dump-state", str(self.state_file)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        w3 = self.w3()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                _ = w3.eth.block_number
                return self
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("anvil did not start")

    def w3(self) -> Web3:
        return Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 10}))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def increase_time(self, seconds: int) -> int:
        """Move the chain clock forward and mine; returns the new latest block time."""
        w3 = self.w3()
        w3.provider.make_request("evm_increaseTime", [seconds])
        w3.provider.make_request("evm_mine", [])
        return int(w3.eth.get_block("latest")["timestamp"])


def compiled() -> dict[str, Any]:
    """The compiled SLT contract type, compiling with ape first if needed."""
    if not BUILD.exists():
        subprocess.run(
            [str(ROOT / ".venv" / "bin" / "ape"), "compile"], cwd=ROOT, env=tool_env(), check=True
        )
    return dict(json.loads(BUILD.read_text())["contractTypes"]["SymbioticLearningToken"])


def deploy(
    rpc_url: str,
    out: Path,
    *,
    admin_key: str = ANVIL_KEYS[0],
    minter: str | None = None,
    base_uri: str = "http://127.0.0.1:8080/metadata/",
    ttl: int = 3600,
) -> dict[str, Any]:
    """Deploy SLT with web3 and write a deployment record in the deploy script's format."""
    ct = compiled()
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    admin = Account.from_key(admin_key)
    minter = minter or Account.from_key(ANVIL_KEYS[1]).address
    factory = w3.eth.contract(abi=ct["abi"], bytecode=ct["deploymentBytecode"]["bytecode"])
    tx = factory.constructor(admin.address, minter, base_uri, ttl).build_transaction(
        {"from": admin.address, "nonce": w3.eth.get_transaction_count(admin.address)}
    )
    signed = admin.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signed.raw_transaction)
    )
    address = receipt["contractAddress"]
    record = {
        "contract": "SymbioticLearningToken",
        "address": address,
        "chain_id": w3.eth.chain_id,
        "ecosystem": "ethereum",
        "network": "local",
        "block_number": receipt["blockNumber"],
        "transaction_hash": "0x" + receipt["transactionHash"].hex(),
        "deployer": admin.address,
        "admin": admin.address,
        "minter": minter,
        "base_uri": base_uri,
        "default_ttl": ttl,
        "runtime_code_hash": "0x" + keccak(bytes(w3.eth.get_code(address))).hex(),
        "abi": ct["abi"],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    return record


def siwe_message(
    address: str,
    nonce: dict[str, Any],
    *,
    domain: str | None = None,
    uri: str | None = None,
    chain_id: int | None = None,
    issued_at: datetime | None = None,
    expiration: datetime | None = None,
) -> str:
    import siwe

    fields: dict[str, Any] = {
        "domain": domain or nonce["domain"],
        "address": address,
        "statement": nonce["statement"],
        "uri": uri or nonce["uri"],
        "version": "1",
        "chain_id": chain_id if chain_id is not None else nonce["chain_id"],
        "nonce": nonce["nonce"],
        "issued_at": (issued_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
    }
    if expiration is not None:
        fields["expiration_time"] = expiration.isoformat().replace("+00:00", "Z")
    return str(siwe.SiweMessage(**fields).prepare_message())


def sign_text(key: str, text: str) -> str:
    return "0x" + Account.sign_message(encode_defunct(text=text), key).signature.hex()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


class Clock:
    """A backend clock that tests can move; starts at the wall clock."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    @classmethod
    def agreeing_with(cls, anvil: Anvil) -> Clock:
        """A clock no earlier than the chain's, as in production.

        Tests share an Anvil and some move its time forward; a backend clock left behind would
        see every mint as expiring before it lands (the outbox then cancels it).
        """
        clock = cls()
        chain_now = anvil.w3().eth.get_block("latest")["timestamp"]
        clock.advance(max(0.0, chain_now - clock()))
        return clock


def tiny_png(marker: bytes) -> bytes:
    """A valid 1x1 PNG carrying ``marker`` in a tEXt chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"tEXt", b"Comment\x00" + marker)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


def tiny_wav(marker: bytes) -> bytes:
    """A valid 8 kHz mono WAV whose samples spell ``marker`` over and over."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(marker * 50)
    return out.getvalue()
