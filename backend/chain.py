"""The chain: the only module that speaks web3. Wraps the SLT contract for the backend.

Like ApePay's SDK, it checks inputs before sending and maps the contract's custom-error reverts
to :class:`~backend.errors.ChainError` carrying the error's name. Transactions are signed here
and broadcast separately, so the outbox can store a signed transaction before sending it and
resend the very same bytes after a crash (same nonce: it can never land twice).

The calls the chain worker makes per batch and per event (sign, send, receipts, logs, ``ownerOf``)
skip web3's contract layer, middleware and result formatters: they encode and decode with
``w3.codec`` (eth_abi, with web3's own strict registry) and speak JSON-RPC through the provider.
web3's generic machinery (a checksum, a keccak and several formatter passes per address and per
log) cost the worker about a millisecond of CPU per minted token, on a machine it shares with the
web tier. The results are the same as web3's (tests/backend/test_chain_codec.py compares them),
but for a transaction's gas limit, taken from one run of the call rather than from an estimate,
which runs it several times on the node (:meth:`Chain._gas_needed`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import requests
from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import NonEmptyPaddingBytes
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_keys.datatypes import PrivateKey
from eth_typing import ChecksumAddress, HexStr
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3._utils.error_formatters_utils import raise_contract_logic_error_on_revert
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import RPCEndpoint, RPCResponse

from .errors import CONTRACT_REFUSED, ChainError, ChainUnavailable, ConfigError, DeploymentMismatch

log = logging.getLogger(__name__)

ZERO_ADDRESS = "0x" + "00" * 20

# Connection-level failures: the chain is unreachable, not refusing. (requests is what web3's
# HTTPProvider posts with.)
_NETWORK_ERRORS = (OSError, TimeoutError, requests.exceptions.RequestException)

# JSON-RPC requests sent in one batch, at most (hosted nodes cap batch sizes).
RPC_BATCH_MAX = 20
# Event inputs the fast decoder handles: static elementary types, one 32-byte word each.
_STATIC_TYPE = re.compile(r"address|bool|u?int\d+|bytes\d+")


class _ThreadSessions:
    """What web3's HTTPProvider posts through: a ``requests`` session per thread (a session is
    not safe to share between threads), whose settings are read from the environment once.

    A session left to trust the environment looks up proxies and ``~/.netrc`` again on every
    request: on this machine a third of the client's CPU for a JSON-RPC call (0.6-0.8 ms
    instead of 0.9-1.1 ms). Proxies (``HTTPS_PROXY``, ``NO_PROXY`` …) and the CA bundle
    (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) still apply, as read at start-up.
    """

    def __init__(self, url: str) -> None:
        self._proxies = requests.utils.get_environ_proxies(url)
        self._verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self._local = threading.local()

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False
            session.proxies.update(self._proxies)
            if self._verify:
                session.verify = self._verify
        return session.post(*args, **kwargs)


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

    # What the follower needs. Not TokenExpiryUpdated: a mint emits it too (a third more logs to
    # read and decode per token), and the one that matters, endTime 0, comes with Unlocked.
    WATCHED = ("Transfer", "Unlocked", "CommitmentPublished")

    def __init__(
        self, rpc_url: str, deployment: Deployment, relayer_key: str | None, timeout: float = 5.0
    ) -> None:
        # No retries inside web3: the outbox retries with backoff, and a frozen node must not
        # hold a request for six timeouts.
        provider = Web3.HTTPProvider(
            rpc_url,
            request_kwargs={"timeout": timeout},
            session=_ThreadSessions(rpc_url),
            exception_retry_configuration=None,
        )
        self.w3 = Web3(provider)
        self.deployment = deployment
        self.address = deployment.address
        self.chain_id = deployment.chain_id
        self.contract = self.w3.eth.contract(address=deployment.address, abi=deployment.abi)
        self.relayer: LocalAccount | None = Account.from_key(relayer_key) if relayer_key else None
        # Signing with the key object: given the key itself, eth-account derives its public key
        # again on every signature (an elliptic-curve multiplication in pure Python).
        self._relayer_key = PrivateKey(self.relayer.key) if self.relayer else None
        self._verified = False
        self._batches = True  # until the node refuses a JSON-RPC batch
        self._gas_method = "eth_createAccessList"  # until the node has no such method
        self._errors = {
            "0x" + keccak(text=_signature(item)).hex()[:8]: item["name"]
            for item in deployment.abi
            if item.get("type") == "error"
        }
        # Selectors, argument types and event topics, worked out once rather than per call.
        self._functions = {
            item["name"]: _Function.from_abi(item)
            for item in deployment.abi
            if item.get("type") == "function"
            and item.get("name") in ("mintBatch", "burnBatch", "persist", "ownerOf")
        }
        self._events: dict[str, _Event] = {}
        for item in deployment.abi:
            if item.get("type") == "event" and item.get("name") in self.WATCHED:
                event = _Event.from_abi(item)
                self._events[event.topic] = event
        self._topics = list(self._events)

    @property
    def relayer_address(self) -> str:
        if self.relayer is None:
            raise ConfigError("SLT_RELAYER_KEY is not set: the backend cannot mint or burn")
        return str(self.relayer.address)

    # Health and verification -------------------------------------------------------------------

    def block_number(self) -> int:
        return int(self._rpc("eth_blockNumber", []), 16)

    def latest_timestamp(self) -> int:
        return int(self._rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

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
        fn = self._functions["ownerOf"]
        call = {"to": self.address, "data": _hex(fn.encode(self.w3, token_id))}
        try:
            result = self._rpc("eth_call", [call, "latest"], contract=True)
        except ChainError as exc:
            if exc.code == "chain_unavailable":
                raise
            return None
        (owner,) = self.w3.codec.decode(fn.outputs, bytes.fromhex(result[2:]))
        return str(owner).lower()

    def find_commitments(self, commitments: list[bytes]) -> dict[bytes, tuple[int, str]]:
        """The (token id, mint tx) that published each of ``commitments`` that was published.

        One ``eth_getLogs`` for up to 100 of them (a list in a topic's place matches any).
        """
        topic0 = "0x" + keccak(text="CommitmentPublished(uint256,bytes32)").hex()
        found: dict[bytes, tuple[int, str]] = {}
        for i in range(0, len(commitments), 100):
            wanted = ["0x" + c.hex() for c in commitments[i : i + 100]]
            logs = self._rpc(
                "eth_getLogs",
                [
                    {
                        "address": self.address,
                        "fromBlock": hex(self.deployment.block_number),
                        "toBlock": "latest",
                        "topics": [topic0, None, wanted],
                    }
                ],
            )
            for log_ in logs:
                commitment = bytes.fromhex(log_["topics"][2][2:])
                found.setdefault(
                    commitment, (int(log_["topics"][1], 16), str(log_["transactionHash"]))
                )
        return found

    def events(self, from_block: int, to_block: int) -> list[ChainEvent]:
        """The watched events of the contract in ``[from_block, to_block]``, in order."""
        logs = self._rpc(
            "eth_getLogs",
            [
                {
                    "address": self.address,
                    "fromBlock": hex(from_block),
                    "toBlock": hex(to_block),
                    "topics": [self._topics],
                }
            ],
        )
        args = self._decode_logs([(raw["topics"], raw["data"]) for raw in logs])
        return [
            ChainEvent(
                name=self._events[raw["topics"][0]].name,
                block_number=int(raw["blockNumber"], 16),
                tx_hash=raw["transactionHash"],
                log_index=int(raw["logIndex"], 16),
                args=decoded,
            )
            for raw, decoded in zip(logs, args, strict=True)
        ]

    # Transactions ----------------------------------------------------------------------------

    def sign_mint_batch(self, requests: list[MintRequest]) -> SignedTx:
        if not requests:
            raise ValueError("empty mint batch")
        function = self._functions["mintBatch"]
        if function.inputs != [MINT_BATCH_ARGS]:
            raise ConfigError(f"the deployment's mintBatch takes {function.inputs}, not this one's")
        return self._sign(function.selector + _mint_batch_args(requests))

    def sign_burn_batch(self, token_ids: list[int]) -> SignedTx:
        if not token_ids:
            raise ValueError("empty burn batch")
        return self._sign(self._functions["burnBatch"].encode(self.w3, token_ids))

    def sign_persist(self, token_id: int) -> SignedTx:
        return self._sign(self._functions["persist"].encode(self.w3, token_id))

    def broadcast(self, raw: bytes) -> None:
        """Send a signed transaction; sending the same bytes twice is harmless."""
        try:
            self._rpc("eth_sendRawTransaction", [_hex(raw)])
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

    def receipt_statuses(self, tx_hashes: list[str]) -> dict[str, int | None]:
        """Each receipt's status: 1 mined, 0 reverted, None not mined (yet); in one request.

        Read raw: a mint of 100 has 500 logs, which web3 would format (a checksum per address)
        for this one field. The events reach the store through :meth:`events`.
        """
        responses = self._rpc_batch([("eth_getTransactionReceipt", [h]) for h in tx_hashes])
        statuses: dict[str, int | None] = {}
        for tx_hash, response in zip(tx_hashes, responses, strict=True):
            receipt = self._result(response)
            statuses[tx_hash] = None if receipt is None else int(receipt["status"], 16)
        return statuses

    def known_transactions(self, tx_hashes: list[str]) -> set[str]:
        """Those of ``tx_hashes`` the node knows (waiting in its pool, or mined); one request."""
        responses = self._rpc_batch([("eth_getTransactionByHash", [h]) for h in tx_hashes])
        return {h for h, r in zip(tx_hashes, responses, strict=True) if self._result(r) is not None}

    def transaction_count(self, address: str, block: str = "latest") -> int:
        """The nonces ``address`` has used as of ``block`` ("latest" or "pending")."""
        return int(self._rpc("eth_getTransactionCount", [address, block]), 16)

    def decode_receipt_events(self, receipt: dict[str, Any]) -> list[ChainEvent]:
        """The watched events of a receipt as web3 returns it (``HexBytes`` topics)."""
        logs = []
        for raw in receipt.get("logs", []):
            topics = ["0x" + bytes(t).hex() for t in raw["topics"]]
            if raw["address"].lower() == self.address.lower() and topics[0] in self._events:
                logs.append((raw, topics))
        args = self._decode_logs(
            [(topics, "0x" + bytes(raw["data"]).hex()) for raw, topics in logs]
        )
        return [
            ChainEvent(
                self._events[topics[0]].name,
                int(raw["blockNumber"]),
                "0x" + raw["transactionHash"].hex(),
                int(raw["logIndex"]),
                decoded,
            )
            for (raw, topics), decoded in zip(logs, args, strict=True)
        ]

    def persist_transaction(self, token_id: int) -> dict[str, Any]:
        """The unsigned ``persist`` call for the owner's wallet to send."""
        data = _hex(self._functions["persist"].encode(self.w3, token_id))
        return {"to": self.address, "data": data, "chain_id": self.chain_id}

    def confirmed_block(self, confirmations: int) -> int:
        return max(self.block_number() - confirmations, 0)

    # Internals -------------------------------------------------------------------------------

    def _decode_logs(self, logs: list[tuple[list[str], str]]) -> list[dict[str, Any]]:
        """The args of watched events' logs, given as (hex topics, hex data), in their order."""
        return [self._events[topics[0]].decode(topics, data) for topics, data in logs]

    def _sign(self, data: bytes) -> SignedTx:
        """Sign a call of the contract (``data``), filled in as web3's ``build_transaction``."""
        account, key = self.relayer, self._relayer_key
        if account is None or key is None:
            raise ConfigError("SLT_RELAYER_KEY is not set: the backend cannot send transactions")
        sender = account.address
        # What build_transaction asks, in one round trip instead of four: the nonce, the gas
        # the call needs (a revert there is the contract refusing), the tip and the head's base
        # fee. The call goes without the nonce (web3 sends it): the gas does not depend on it,
        # and nodes skip nonce checks when they simulate.
        call = {"from": sender, "to": self.address, "data": _hex(data)}
        responses = self._rpc_batch(
            [
                ("eth_getTransactionCount", [sender, "pending"]),
                (self._gas_method, [call, "latest"]),
                ("eth_maxPriorityFeePerGas", []),
                ("eth_getBlockByNumber", ["latest", False]),
            ]
        )
        nonce = int(self._result(responses[0]), 16)
        gas = self._gas_needed(responses[1], call)
        tip = self._tip(responses[2])
        base_fee = int(self._result(responses[3])["baseFeePerGas"], 16)
        tx: dict[str, Any] = {
            "from": sender,
            "nonce": nonce,
            "chainId": self.chain_id,
            "to": self.address,
            "value": 0,
            "data": data,
            # Leave room above the estimate: state may change between estimate and inclusion.
            "gas": int(gas * 1.2) + 10_000,
            "maxPriorityFeePerGas": tip,
            "maxFeePerGas": tip + 2 * base_fee,
        }
        signed = Account.sign_transaction(tx, key)
        return SignedTx("0x" + signed.hash.hex(), bytes(signed.raw_transaction), nonce)

    def fees(self) -> tuple[int, int]:
        """What a transaction must bid now: (tip, the next block's base fee)."""
        responses = self._rpc_batch(
            [("eth_maxPriorityFeePerGas", []), ("eth_feeHistory", ["0x1", "latest", []])]
        )
        # The fee history's base fees run to the block after its last: the next one.
        return self._tip(responses[0]), int(self._result(responses[1])["baseFeePerGas"][-1], 16)

    def replacement(self, raw: bytes, fees: tuple[int, int]) -> SignedTx | None:
        """The signed transaction ``raw`` signed again with higher fees, if it needs them.

        It needs them when the next block could not take it as it is (``fees``, from
        :meth:`fees`): its fee cap below that block's base fee (which climbs 1/8 a block while
        blocks are full), or its tip below what the node reckons it takes now. Else None. The
        replacement keeps the nonce, the call and the gas limit, so that at most one of the two
        is ever mined, and bids what a new transaction would, but at least 1/8 more than the
        old one on both fees: nodes replace a pending transaction only for 10 % more.
        """
        account, key = self.relayer, self._relayer_key
        if account is None or key is None:
            raise ConfigError("SLT_RELAYER_KEY is not set: the backend cannot send transactions")
        old = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        tip, base_fee = fees
        old_tip, old_cap = int(old["maxPriorityFeePerGas"]), int(old["maxFeePerGas"])
        if old_cap >= base_fee and old_tip >= tip:
            return None
        new_tip = max(tip, _bumped(old_tip))
        tx: dict[str, Any] = {
            "from": account.address,
            "nonce": int(old["nonce"]),
            "chainId": int(old["chainId"]),
            "to": to_checksum_address(old["to"]),
            "value": int(old["value"]),
            "data": bytes(old["data"]),
            "gas": int(old["gas"]),
            "maxPriorityFeePerGas": new_tip,
            "maxFeePerGas": max(new_tip + 2 * base_fee, _bumped(old_cap)),
        }
        signed = Account.sign_transaction(tx, key)
        return SignedTx("0x" + signed.hash.hex(), bytes(signed.raw_transaction), tx["nonce"])

    def _tip(self, response: RPCResponse) -> int:
        """The tip to bid, from an answer to ``eth_maxPriorityFeePerGas``."""
        if response.get("error") is None:
            return int(response["result"], 16)
        # Not every node has the method: web3 falls back to a fee-history estimate.
        return int(self._call(lambda: self.w3.eth.max_priority_fee))

    def _gas_needed(self, response: RPCResponse, call: dict[str, Any]) -> int:
        """The gas ``call`` needs, from the answer to :attr:`_gas_method`; a revert raises.

        ``eth_estimateGas`` searches for the least gas that succeeds, running the call again at
        each step: on Anvil a ``mintBatch`` of 100 cost 83-90 µs of the node's CPU per token that
        way, against 12 µs for ``eth_createAccessList`` (10 µs for ``eth_call``), which runs it
        once and reports the gas it used. That figure is net of refunds, which a call clearing
        storage (a burn) earns, up to a fifth of its gas: the call may need a quarter more while
        it runs. And it is with the access list found (each slot it names then costs 100 gas less
        than a cold access, under 5 % of one): the signed limit adds 20 % to all of it.
        """
        if self._gas_method == "eth_estimateGas":
            return int(self._result(response, contract=True), 16)
        error = response.get("error")
        if error is not None and _method_missing(error):
            log.warning("the RPC has no eth_createAccessList (%s): gas is estimated", error)
            self._gas_method = "eth_estimateGas"
            return int(self._rpc("eth_estimateGas", [call, "latest"], contract=True), 16)
        result = self._result(response, contract=True)
        if result.get("error"):  # geth answers a revert inside the result
            raise ChainError(CONTRACT_REFUSED + str(result["error"])[:120])
        return int(result["gasUsed"], 16) * 5 // 4

    def _rpc(self, method: str, params: list[Any], *, contract: bool = False) -> Any:
        """One JSON-RPC request through the provider alone: no middleware, no result formatting.

        Errors map as through web3 (see :meth:`_result`).
        """
        response = self._call(lambda: self.w3.provider.make_request(RPCEndpoint(method), params))
        return self._result(response, contract=contract)

    def _rpc_batch(self, calls: list[tuple[str, list[Any]]]) -> list[RPCResponse]:
        """Several JSON-RPC requests in one round trip (``RPC_BATCH_MAX`` at most in each).

        The responses, in order: the caller reads each through :meth:`_result`.
        """
        out: list[RPCResponse] = []
        provider: Any = self.w3.provider  # an HTTPProvider (see __init__)
        for i in range(0, len(calls), RPC_BATCH_MAX):
            chunk = [
                (RPCEndpoint(method), params) for method, params in calls[i : i + RPC_BATCH_MAX]
            ]
            responses = None
            if self._batches and len(chunk) > 1:
                try:
                    responses = self._call(functools.partial(provider.make_batch_request, chunk))
                except ChainUnavailable:
                    # Some nodes refuse a batch with an HTTP error status. If this one answers
                    # a request alone, it is up and refuses batches; if not, this raises.
                    self._call(functools.partial(provider.make_request, *chunk[0]))
                    responses = {"error": "an HTTP error status for a batch"}
                if not isinstance(responses, list):
                    # One error for the whole batch: this node takes no batches. One by one
                    # from now on, as web3 would ask.
                    log.warning("the RPC refused a batch request (%s)", str(responses)[:200])
                    self._batches = False
                    responses = None
            if responses is None:
                responses = [
                    self._call(functools.partial(provider.make_request, method, params))
                    for method, params in chunk
                ]
            out += responses
        return out

    def _result(self, response: RPCResponse, *, contract: bool = False) -> Any:
        """A response's result; its error raised as web3 would raise it and mapped by _call."""
        if response.get("error") is None:
            return response.get("result")
        return self._call(lambda: _raise_rpc_error(response, contract))

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (ContractCustomError, ContractLogicError) as exc:
            raise ChainError(CONTRACT_REFUSED + self._error_name(exc)) from None
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


def _abi_type(inp: dict[str, Any]) -> str:
    """The canonical type of an ABI input: a tuple spelled out, e.g. ``(address,bool)[]``."""
    t = str(inp["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in inp["components"]) + ")" + t[5:]
    return t


def _signature(item: dict[str, Any]) -> str:
    return f"{item['name']}({','.join(_abi_type(i) for i in item.get('inputs', []))})"


@dataclass(frozen=True)
class _Function:
    """A contract function's selector and argument types, to encode its calldata with eth_abi."""

    selector: bytes
    inputs: list[str]
    outputs: list[str]

    @classmethod
    def from_abi(cls, item: dict[str, Any]) -> _Function:
        return cls(
            selector=keccak(text=_signature(item))[:4],
            inputs=[_abi_type(i) for i in item.get("inputs", [])],
            outputs=[_abi_type(o) for o in item.get("outputs", [])],
        )

    def encode(self, w3: Web3, *args: Any) -> bytes:
        # web3's registry: as strict as its contract API (a bytes32 must have 32 bytes).
        return self.selector + w3.codec.encode(self.inputs, args)


@dataclass(frozen=True)
class _Event:
    """A contract event, decoded from raw logs with eth_abi into what web3's ``process_log``
    returns as ``args`` (addresses checksummed)."""

    name: str
    topic: str  # "0x" + keccak of the signature, lower-case hex as in JSON-RPC logs
    indexed: int  # how many inputs are indexed (the topics after the first)
    names: list[str]  # indexed inputs first, in topic order, then the others in data order
    types: list[str]

    @classmethod
    def from_abi(cls, item: dict[str, Any]) -> _Event:
        inputs = item.get("inputs", [])
        bad = [i["type"] for i in inputs if not _STATIC_TYPE.fullmatch(i["type"])]
        if bad or item.get("anonymous"):
            raise ConfigError(f"event {item['name']} has inputs the decoder cannot read: {bad}")
        indexed = [i for i in inputs if i.get("indexed")]
        ordered = indexed + [i for i in inputs if not i.get("indexed")]
        return cls(
            name=item["name"],
            topic="0x" + keccak(text=_signature(item)).hex(),
            indexed=len(indexed),
            names=[i["name"] for i in ordered],
            types=[i["type"] for i in ordered],
        )

    def encoding(self, topics: list[str], data: str) -> str:
        """A log's inputs as one ABI encoding, in hex.

        Every input is one static 32-byte word (checked in from_abi), so the indexed inputs'
        topics followed by the data are exactly the encoding of all the inputs in that order.
        """
        if len(topics) != self.indexed + 1 or len(data) != 2 + 64 * (
            len(self.types) - self.indexed
        ):
            raise ValueError(f"a {self.name} log does not match its ABI ({len(topics)} topics)")
        return "".join(t[2:] for t in topics[1:]) + data[2:]

    def decode(self, topics: list[str], data: str) -> dict[str, Any]:
        """A log's args, a word at a time (see :meth:`encoding`)."""
        raw = bytes.fromhex(self.encoding(topics, data))
        return {
            name: _word_value(typ, raw[k : k + 32])
            for name, typ, k in zip(self.names, self.types, range(0, len(raw), 32), strict=True)
        }


def _word_value(typ: str, word: bytes) -> Any:
    """A value of static type ``typ`` from its 32-byte ABI word, as eth_abi decodes it.

    eth_abi took 4 µs a value (a stream, a decoder and its checks per value), 16 µs for a
    minted token's two logs. Padding is checked as it checks it; signed integers go through it.
    """
    if typ == "address":
        return _address(word)
    if typ == "bool":
        if word[:31].strip(b"\0") or word[31] > 1:
            raise NonEmptyPaddingBytes(f"not a bool: {word.hex()}")
        return word[31] == 1
    if typ.startswith("uint"):
        value = int.from_bytes(word, "big")
        if value >> int(typ[4:]):
            raise NonEmptyPaddingBytes(f"not a {typ}: {word.hex()}")
        return value
    if typ.startswith("bytes"):
        size = int(typ[5:])
        if word[size:].strip(b"\0"):
            raise NonEmptyPaddingBytes(f"not a {typ}: {word.hex()}")
        return word[:size]
    (value,) = abi_decode([typ], word)
    return value


@functools.lru_cache(maxsize=4096)
def _address(word: bytes) -> str:
    """An address decoded from its 32-byte word with eth_abi and checksummed, as web3's
    ``process_log`` returns it. Cached: the same few owners keep coming, and each checksum
    costs a keccak."""
    (address,) = abi_decode(["address"], word)
    return str(to_checksum_address(address))


MINT_BATCH_ARGS = "(address,uint64,bool,bytes32)[]"


def _mint_batch_args(requests: list[MintRequest]) -> bytes:
    """``mintBatch``'s argument, ABI-encoded as eth_abi encodes ``MINT_BATCH_ARGS``.

    An array of static tuples is the offset of its data, its length, then each tuple's fields,
    one 32-byte word each. eth_abi spent 25 µs a token on it (validation and dispatch per
    value), a tenth of the worker's CPU per token; this takes about 1. The values are checked
    as eth_abi checks them; tests/backend/test_chain_codec.py compares the bytes with web3's.
    """
    words = [(32).to_bytes(32, "big"), len(requests).to_bytes(32, "big")]
    for r in requests:
        if type(r.switchable) is not bool or type(r.end_time) is not int or r.end_time >> 64:
            raise ValueError(f"not a uint64 and a bool: {r.end_time!r}, {r.switchable!r}")
        if not isinstance(r.commitment, bytes) or len(r.commitment) != 32:
            raise ValueError("a commitment is 32 bytes")
        words += (
            bytes(12) + _address_bytes(r.to),
            r.end_time.to_bytes(32, "big"),
            int(r.switchable).to_bytes(32, "big"),
            r.commitment,
        )
    return b"".join(words)


def _address_bytes(address: str) -> bytes:
    """The 20 bytes of a hex address in any case (as ``to_checksum_address`` accepted it)."""
    text = address[2:] if address[:2] in ("0x", "0X") else address
    raw = bytes.fromhex(text)
    if len(raw) != 20 or len(text) != 40:
        raise ValueError(f"not an address: {address!r}")
    return raw


def _bumped(fee: int) -> int:
    """``fee`` raised by 1/8, rounded up: enough for a node to replace a pending transaction."""
    return fee + -(-fee // 8)


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _raise_rpc_error(response: RPCResponse, contract: bool) -> NoReturn:
    """Raise what web3 raises for this error response.

    With ``contract`` (a call run on the node: ``eth_call``, ``eth_estimateGas``,
    ``eth_createAccessList``), web3's own revert formatter first, so a refusal by the contract
    carries its error data just as through web3's contract API.
    """
    if contract:
        raise_contract_logic_error_on_revert(response)  # raises, if the error is a revert
    raise Web3RPCError(repr(response["error"]), rpc_response=response)


def _method_missing(error: Any) -> bool:
    """Whether a JSON-RPC error says the node has no such method (rather than a revert)."""
    if not isinstance(error, dict):
        return False
    if error.get("code") == -32601:  # the JSON-RPC code for it; not every provider uses it
        return True
    message = str(error.get("message", "")).lower()
    return error.get("data") is None and any(
        words in message for words in ("not supported", "not found", "does not exist",
                                       "not available", "unsupported", "not allowed")
    )  # fmt: skip


def _rpc_message(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else exc
    if isinstance(arg, dict):
        return str(arg.get("message", arg))[:200]
    return str(arg)[:200]
