"""The chain: the only module that speaks web3. Wraps the SLT contract for the backend.

Like ApePay's SDK, it checks inputs before sending and maps the contract's custom-error reverts
to :class:`~backend.errors.ChainError` carrying the error's name. Transactions are signed here
and broadcast separately, so the outbox can store a signed transaction before sending it and
resend the very same bytes after a crash (same nonce: it can never land twice).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress, HexStr
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TransactionNotFound,
    Web3RPCError,
)

from .errors import ChainError, ChainUnavailable, ConfigError, DeploymentMismatch

log = logging.getLogger(__name__)

ZERO_ADDRESS = "0x" + "00" * 20

# Connection-level failures: the chain is unreachable, not refusing.
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError)
try:  # requests is what web3's HTTPProvider uses
    import requests

    _NETWORK_ERRORS += (requests.exceptions.RequestException,)
except ImportError:
    pass


@dataclass(frozen=True)
class Deployment:
    """A deployment record written by ``ape run deploy`` (see docs/DEPLOY.md)."""

    address: ChecksumAddress
    chain_id: int
    block_number: int
    runtime_code_hash: str
    abi: list[dict[str, Any]]

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            data = json.loads(path.read_text())
            return cls(
                address=to_checksum_address(data["address"]),
                chain_id=int(data["chain_id"]),
                block_number=int(data.get("block_number", 0)),
                runtime_code_hash=str(data["runtime_code_hash"]).lower(),
                abi=list(data["abi"]),
            )
        except FileNotFoundError:
            raise ConfigError(
                f"no deployment record at {path}: deploy first (`ape run deploy deploy …`)"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"deployment record {path} is malformed: {exc!r}") from None


@dataclass(frozen=True)
class SignedTx:
    tx_hash: str
    raw: bytes
    nonce: int


@dataclass(frozen=True)
class MintRequest:
    to: str
    end_time: int
    switchable: bool
    commitment: bytes


@dataclass(frozen=True)
class ChainEvent:
    name: str
    block_number: int
    tx_hash: str
    log_index: int
    args: dict[str, Any]


class Chain:
    """The SLT contract through web3.py, with the relayer key that holds ``MINTER_ROLE``."""

    WATCHED = ("Transfer", "Unlocked", "TokenExpiryUpdated", "CommitmentPublished")

    def __init__(
        self, rpc_url: str, deployment: Deployment, relayer_key: str | None, timeout: float = 5.0
    ) -> None:
        # No retries inside web3: the outbox retries with backoff, and a frozen node must not
        # hold a request for six timeouts.
        provider = Web3.HTTPProvider(
            rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
        )
        self.w3 = Web3(provider)
        self.deployment = deployment
        self.address = deployment.address
        self.chain_id = deployment.chain_id
        self.contract = self.w3.eth.contract(address=deployment.address, abi=deployment.abi)
        self.relayer: LocalAccount | None = Account.from_key(relayer_key) if relayer_key else None
        self._verified = False
        self._errors = {
            "0x" + keccak(text=_signature(item)).hex()[:8]: item["name"]
            for item in deployment.abi
            if item.get("type") == "error"
        }
        self._topics = {}
        for name in self.WATCHED:
            event = self.contract.events[name]()
            self._topics["0x" + keccak(text=_signature(dict(event.abi))).hex()] = event

    @property
    def relayer_address(self) -> str:
        if self.relayer is None:
            raise ConfigError("SLT_RELAYER_KEY is not set: the backend cannot mint or burn")
        return str(self.relayer.address)

    # Health and verification -------------------------------------------------------------------

    def block_number(self) -> int:
        return int(self._call(lambda: self.w3.eth.block_number))

    def latest_timestamp(self) -> int:
        return int(self._call(lambda: self.w3.eth.get_block("latest")["timestamp"]))

    def verify_deployment(self) -> None:
        """Stop unless the chain id and the contract's runtime code match the record."""
        if self._verified:
            return
        chain_id = int(self._call(lambda: self.w3.eth.chain_id))
        if chain_id != self.chain_id:
            raise DeploymentMismatch(
                f"the RPC serves chain {chain_id}, the deployment record says {self.chain_id}"
            )
        code = bytes(self._call(lambda: self.w3.eth.get_code(self.address)))
        found = "0x" + keccak(code).hex()
        if found != self.deployment.runtime_code_hash:
            raise DeploymentMismatch(
                f"contract code at {self.address} does not match the deployment record"
                f" (chain {found[:18]}…, record {self.deployment.runtime_code_hash[:18]}…)"
            )
        if self.relayer is not None and not self._call(
            lambda: self.contract.functions.hasAnyRole(self.relayer_address, 1).call()
        ):
            log.warning(
                "relayer %s does not hold MINTER_ROLE: mints will fail", self.relayer_address
            )
        self._verified = True

    # Reads -----------------------------------------------------------------------------------

    def owner_of(self, token_id: int) -> str | None:
        """The current owner, or None once burned (or never minted)."""
        try:
            owner = self._call(lambda: self.contract.functions.ownerOf(token_id).call())
        except ChainError as exc:
            if exc.code == "chain_unavailable":
                raise
            return None
        return str(owner).lower()

    def find_commitment(self, commitment: bytes, from_block: int = 0) -> tuple[int, str] | None:
        """The (token id, mint tx) that published ``commitment``, if any."""
        topic0 = "0x" + keccak(text="CommitmentPublished(uint256,bytes32)").hex()
        logs = self._call(
            lambda: self.w3.eth.get_logs(
                {
                    "address": self.address,
                    "fromBlock": max(from_block, self.deployment.block_number),
                    "toBlock": "latest",
                    "topics": [topic0, None, "0x" + commitment.hex()],
                }
            )
        )
        if not logs:
            return None
        return int.from_bytes(logs[0]["topics"][1], "big"), "0x" + logs[0]["transactionHash"].hex()

    def events(self, from_block: int, to_block: int) -> list[ChainEvent]:
        """The watched events of the contract in ``[from_block, to_block]``, in order."""
        logs = self._call(
            lambda: self.w3.eth.get_logs(
                {
                    "address": self.address,
                    "fromBlock": from_block,
                    "toBlock": to_block,
                    "topics": [list(self._topics)],
                }
            )
        )
        out = []
        for raw in logs:
            event = self._topics["0x" + raw["topics"][0].hex()]
            decoded = event.process_log(raw)
            out.append(
                ChainEvent(
                    name=decoded["event"],
                    block_number=int(raw["blockNumber"]),
                    tx_hash="0x" + raw["transactionHash"].hex(),
                    log_index=int(raw["logIndex"]),
                    args=dict(decoded["args"]),
                )
            )
        return out

    # Transactions ----------------------------------------------------------------------------

    def sign_mint_batch(self, requests: list[MintRequest]) -> SignedTx:
        if not requests:
            raise ValueError("empty mint batch")
        args = [
            (to_checksum_address(r.to), r.end_time, r.switchable, r.commitment) for r in requests
        ]
        return self._sign(self.contract.functions.mintBatch(args))

    def sign_burn_batch(self, token_ids: list[int]) -> SignedTx:
        if not token_ids:
            raise ValueError("empty burn batch")
        return self._sign(self.contract.functions.burnBatch(token_ids))

    def sign_persist(self, token_id: int) -> SignedTx:
        return self._sign(self.contract.functions.persist(token_id))

    def broadcast(self, raw: bytes) -> None:
        """Send a signed transaction; sending the same bytes twice is harmless."""
        try:
            self._call(lambda: self.w3.eth.send_raw_transaction(raw))
        except ChainError as exc:
            text = exc.description.lower()
            if "already known" in text or "nonce too low" in text or "already imported" in text:
                return  # resent after a crash: the first copy is in the pool or mined
            raise

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        try:
            return dict(self._call(lambda: self.w3.eth.get_transaction_receipt(HexStr(tx_hash))))
        except TransactionNotFound:
            return None

    def decode_receipt_events(self, receipt: dict[str, Any]) -> list[ChainEvent]:
        out = []
        for raw in receipt.get("logs", []):
            if raw["address"].lower() != self.address.lower():
                continue
            event = self._topics.get("0x" + raw["topics"][0].hex())
            if event is None:
                continue
            decoded = event.process_log(raw)
            out.append(
                ChainEvent(
                    decoded["event"],
                    int(raw["blockNumber"]),
                    "0x" + raw["transactionHash"].hex(),
                    int(raw["logIndex"]),
                    dict(decoded["args"]),
                )
            )
        return out

    def persist_transaction(self, token_id: int) -> dict[str, Any]:
        """The unsigned ``persist`` call for the owner's wallet to send."""
        data = self.contract.encode_abi("persist", args=[token_id])
        return {"to": self.address, "data": data, "chain_id": self.chain_id}

    def confirmed_block(self, confirmations: int) -> int:
        return max(self.block_number() - confirmations, 0)

    # Internals -------------------------------------------------------------------------------

    def _sign(self, fn: Any) -> SignedTx:
        account = self.relayer
        if account is None:
            raise ConfigError("SLT_RELAYER_KEY is not set: the backend cannot send transactions")
        nonce = int(
            self._call(lambda: self.w3.eth.get_transaction_count(account.address, "pending"))
        )
        tx = self._call(
            lambda: fn.build_transaction(
                {"from": account.address, "nonce": nonce, "chainId": self.chain_id}
            )
        )
        # Leave room above the estimate: state may change between estimate and inclusion.
        tx["gas"] = int(tx["gas"] * 1.2) + 10_000
        signed = account.sign_transaction(tx)
        return SignedTx("0x" + signed.hash.hex(), bytes(signed.raw_transaction), nonce)

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except (ContractCustomError, ContractLogicError) as exc:
            raise ChainError(f"the contract refused: {self._error_name(exc)}") from None
        except TransactionNotFound:
            raise
        except _NETWORK_ERRORS as exc:
            raise ChainUnavailable(f"the chain is unreachable ({type(exc).__name__})") from None
        except (Web3RPCError, ValueError) as exc:  # JSON-RPC errors (web3 7: Web3RPCError)
            raise ChainError(f"the chain refused: {_rpc_message(exc)}") from None

    def _error_name(self, exc: Exception) -> str:
        data = getattr(exc, "data", None)
        if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
            return str(self._errors.get(data[:10], data[:10]))
        return str(getattr(exc, "message", None) or exc)[:120]  # pragma: no cover


def _signature(item: dict[str, Any]) -> str:
    def typ(inp: dict[str, Any]) -> str:
        t = str(inp["type"])
        if t.startswith("tuple"):
            return "(" + ",".join(typ(c) for c in inp["components"]) + ")" + t[5:]
        return t

    return f"{item['name']}({','.join(typ(i) for i in item.get('inputs', []))})"


def _rpc_message(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else exc
    if isinstance(arg, dict):
        return str(arg.get("message", arg))[:200]
    return str(arg)[:200]
