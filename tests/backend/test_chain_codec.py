"""Chain's own encoding and decoding (eth_abi and raw JSON-RPC) against web3's, on a real Anvil.

The worker's hot paths skip web3's contract layer (see backend/chain.py). Each test here does the
same thing both ways, on the same chain state, and asks for the same answer: the same signed
bytes, the same event arguments, the same refusals.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.typed_transactions import TypedTransaction
from eth_utils.abi import event_abi_to_log_topic
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from slt_harness import ANVIL_KEYS, Anvil, deploy

from backend.chain import (
    MINT_BATCH_ARGS,
    Chain,
    ChainEvent,
    Deployment,
    MintRequest,
    SignedTx,
    _mint_batch_args,
    _word_value,
)
from backend.errors import ChainError, ChainUnavailable, ConfigError

RELAYER = Account.from_key(ANVIL_KEYS[1])
OTHER = Account.from_key(ANVIL_KEYS[3])


@pytest.fixture(scope="module")
def node() -> Iterator[Anvil]:
    # A chain of its own: these tests compare states before and after, so nobody else may mine.
    anvil = Anvil().start()
    yield anvil
    anvil.stop()


@pytest.fixture(scope="module")
def chain(node: Anvil, tmp_path_factory: pytest.TempPathFactory) -> Chain:
    path = tmp_path_factory.mktemp("codec") / "record.json"
    deploy(node.url, path)
    chain = Chain(node.url, Deployment.load(path), ANVIL_KEYS[1])
    chain.verify_deployment()
    return chain


def _requests(chain: Chain, owners: list[str]) -> list[MintRequest]:
    end = chain.latest_timestamp() + 3600
    return [
        MintRequest(owner, end + i, i % 2 == 0, os.urandom(32)) for i, owner in enumerate(owners)
    ]


def _web3_signed(chain: Chain, fn: Any) -> bytes:
    """What Chain._sign produced before: web3's build_transaction, signed by the relayer."""
    nonce = chain.w3.eth.get_transaction_count(RELAYER.address, "pending")
    tx = fn.build_transaction({"from": RELAYER.address, "nonce": nonce, "chainId": chain.chain_id})
    tx["gas"] = int(tx["gas"] * 1.2) + 10_000
    return bytes(RELAYER.sign_transaction(tx).raw_transaction)


def _assert_as_web3(chain: Chain, ours: SignedTx, fn: Any) -> int:
    """``ours`` is web3's transaction for ``fn`` but for its gas limit, which comes from one run
    of the call rather than an estimate's search (see Chain._gas_needed): at least 10 % above
    the least gas that succeeds, and not far above web3's limit. Returns it."""
    mine = TypedTransaction.from_bytes(HexBytes(ours.raw)).as_dict()
    theirs = TypedTransaction.from_bytes(HexBytes(_web3_signed(chain, fn))).as_dict()
    for tx in (mine, theirs):
        for signature in ("v", "r", "s"):
            del tx[signature]
    gas, web3_gas = mine.pop("gas"), theirs.pop("gas")
    assert mine == theirs
    least = chain.w3.eth.estimate_gas({"from": RELAYER.address, "to": chain.address,
                                       "data": mine["data"]})  # fmt: skip
    assert 1.1 * least <= gas <= 1.3 * web3_gas, (gas, least, web3_gas)
    return int(gas)


def _signed_call(chain: Chain, fn: Any) -> SignedTx:
    raw = _web3_signed(chain, fn)
    nonce = chain.w3.eth.get_transaction_count(RELAYER.address, "pending")
    return SignedTx("0x" + chain.w3.keccak(raw).hex(), raw, nonce)


def _send(chain: Chain, signed: SignedTx) -> dict[str, Any]:
    chain.broadcast(signed.raw)
    receipt = chain.w3.eth.wait_for_transaction_receipt(signed.tx_hash)  # type: ignore[arg-type]
    assert receipt["status"] == 1
    return dict(receipt)


def _web3_events(chain: Chain, from_block: int, to_block: int) -> list[ChainEvent]:
    """What Chain.events returned before: web3's get_logs and each event's process_log."""
    events = [chain.contract.events[name]() for name in Chain.WATCHED]
    by_topic = {"0x" + event_abi_to_log_topic(e.abi).hex(): e for e in events}
    logs = chain.w3.eth.get_logs(
        {"address": chain.address, "fromBlock": from_block, "toBlock": to_block,
         "topics": [list(by_topic)]}
    )  # fmt: skip
    out = []
    for raw in logs:
        decoded = by_topic["0x" + raw["topics"][0].hex()].process_log(raw)
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


def test_mint_batch_is_signed_as_web3_would(chain: Chain) -> None:
    owners = ["0x" + os.urandom(20).hex() for _ in range(99)] + [RELAYER.address.upper()[2:]]
    reqs = _requests(chain, owners)
    ours = chain.sign_mint_batch(reqs)
    args = [(to_checksum_address(r.to), r.end_time, r.switchable, r.commitment) for r in reqs]
    gas = _assert_as_web3(chain, ours, chain.contract.functions.mintBatch(args))
    assert ours.nonce == chain.w3.eth.get_transaction_count(RELAYER.address, "pending")
    # 100 new owners: 300 slots the access list named, none of them in the sent transaction.
    receipt = _send(chain, ours)
    assert receipt["gasUsed"] * 1.15 < gas
    # Burning them all clears their storage: the refund is netted out of the gas reported
    # used, but the call needs that gas while it runs.
    ids = [int(e.args["id"]) for e in chain.decode_receipt_events(receipt) if e.name == "Transfer"]
    burn = chain.sign_burn_batch(ids)
    _assert_as_web3(chain, burn, chain.contract.functions.burnBatch(ids))
    _send(chain, burn)


@pytest.mark.parametrize("count", [0, 1, 3])
def test_mint_batch_arguments_are_eth_abis_to_the_byte(count: int) -> None:
    edges = [(0, False), (2**64 - 1, True), (1_700_000_000, True)]
    reqs = [
        MintRequest("0x" + os.urandom(20).hex(), end, switchable, os.urandom(32))
        for end, switchable in edges[:count]
    ]
    args = [(bytes.fromhex(r.to[2:]), r.end_time, r.switchable, r.commitment) for r in reqs]
    assert _mint_batch_args(reqs) == abi_encode([MINT_BATCH_ARGS], [args])


@pytest.mark.parametrize(
    "bad",
    [
        MintRequest("0x" + "11" * 20, 2**64, True, bytes(32)),
        MintRequest("0x" + "11" * 20, -1, True, bytes(32)),
        MintRequest("0x" + "11" * 20, 1.5, True, bytes(32)),  # type: ignore[arg-type]
        MintRequest("0x" + "11" * 20, 1, 1, bytes(32)),  # type: ignore[arg-type]
        MintRequest("0x" + "11" * 20, 1, True, bytes(31)),
        MintRequest("0x" + "11" * 19, 1, True, bytes(32)),
    ],
)
def test_mint_batch_arguments_eth_abi_would_refuse_are_refused(bad: MintRequest) -> None:
    with pytest.raises(ValueError):
        _mint_batch_args([bad])


def test_a_mint_batch_of_another_shape_is_not_signed(node: Anvil, chain: Chain) -> None:
    changed = Chain(
        node.url,
        dataclasses.replace(
            chain.deployment,
            abi=[
                {**item, "inputs": item["inputs"][0]["components"][:3]}
                if item.get("name") == "mintBatch"
                else item
                for item in chain.deployment.abi
            ],
        ),
        ANVIL_KEYS[1],
    )
    with pytest.raises(ConfigError, match="mintBatch"):
        changed.sign_mint_batch(_requests(chain, [OTHER.address]))


_WORDS = [bytes(32), b"\xff" * 32, bytes(31) + b"\x01", bytes(31) + b"\x02", b"\x01" + bytes(31)]
_WORDS += [bytes(24) + b"\xff" * 8, bytes(23) + b"\x01" + bytes(8), bytes(12) + b"\xab" * 20]


@pytest.mark.parametrize("typ", ["uint256", "uint64", "uint8", "bytes32", "bytes4", "bool"])
@pytest.mark.parametrize("word", _WORDS + [os.urandom(32)], ids=lambda w: w.hex()[:8])
def test_log_words_decode_as_eth_abi_decodes_them(typ: str, word: bytes) -> None:
    try:
        (expected,) = abi_decode([typ], word)
    except DecodingError:  # padding it refuses: refused here too
        with pytest.raises(DecodingError):
            _word_value(typ, word)
        return
    value = _word_value(typ, word)
    assert value == expected and type(value) is type(expected)


def _answer_access_lists(
    chain: Chain, monkeypatch: pytest.MonkeyPatch, answer: dict[str, Any]
) -> None:
    """Make ``chain``'s node answer every eth_createAccessList in a batch with ``answer``."""
    batch = chain.w3.provider.make_batch_request

    def answering(calls: list[tuple[str, Any]]) -> Any:
        answers = batch(calls)
        return [
            {"jsonrpc": "2.0", "id": a["id"], **answer} if method == "eth_createAccessList" else a
            for (method, _), a in zip(calls, answers, strict=True)
        ]

    monkeypatch.setattr(chain.w3.provider, "make_batch_request", answering)


def test_a_node_without_access_lists_is_asked_for_an_estimate(
    node: Anvil, chain: Chain, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    plain = Chain(node.url, chain.deployment, ANVIL_KEYS[1])
    missing = {"code": -32601, "message": "the method eth_createAccessList does not exist"}
    _answer_access_lists(plain, monkeypatch, {"error": missing})
    reqs = _requests(chain, [OTHER.address])
    args = [(to_checksum_address(r.to), r.end_time, r.switchable, r.commitment) for r in reqs]
    signed = plain.sign_mint_batch(reqs)
    assert signed.raw == _web3_signed(chain, chain.contract.functions.mintBatch(args))
    assert "no eth_createAccessList" in caplog.text
    assert plain._gas_method == "eth_estimateGas"  # and the next rounds ask for that alone
    persist = plain.contract.functions.persist(10**9)
    with pytest.raises(ChainError, match="the contract refused: ERC721NonexistentToken"):
        plain.sign_persist(10**9)
    with pytest.raises(ChainError, match="the contract refused: ERC721NonexistentToken"):
        chain._call(lambda: persist.estimate_gas({"from": RELAYER.address}))


def test_a_revert_inside_an_access_list_answer_is_a_refusal(
    node: Anvil, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    # geth answers a reverting eth_createAccessList with a result that holds the error.
    geth = Chain(node.url, chain.deployment, ANVIL_KEYS[1])
    reverted = {"accessList": [], "error": "execution reverted", "gasUsed": "0x5208"}
    _answer_access_lists(geth, monkeypatch, {"result": reverted})
    with pytest.raises(ChainError, match="^the contract refused: execution reverted$"):
        geth.sign_burn_batch([1])


def test_events_and_receipts_decode_as_web3_decodes_them(chain: Chain) -> None:
    start = chain.block_number() + 1
    owners = [RELAYER.address.lower(), "0x" + os.urandom(20).hex(), OTHER.address]
    mint = _send(chain, chain.sign_mint_batch(_requests(chain, owners)))
    minted = [e for e in chain.decode_receipt_events(mint) if e.name == "Transfer"]
    assert len(minted) == 3
    mine = int(minted[0].args["id"])
    # Persist (Unlocked, TokenExpiryUpdated to 0), move it (a plain Transfer), burn two.
    persist = chain.sign_persist(mine)
    gas = _assert_as_web3(chain, persist, chain.contract.functions.persist(mine))
    assert _send(chain, persist)["gasUsed"] * 1.15 < gas
    transfer = chain.contract.functions.transferFrom(RELAYER.address, OTHER.address, mine)
    _send(chain, _signed_call(chain, transfer))
    burned = [mine, int(minted[1].args["id"])]
    burn = chain.sign_burn_batch(burned)
    gas = _assert_as_web3(chain, burn, chain.contract.functions.burnBatch(burned))
    burn_receipt = _send(chain, burn)
    assert burn_receipt["gasUsed"] * 1.15 < gas

    end = chain.block_number()
    ours = chain.events(start, end)
    assert ours == _web3_events(chain, start, end)
    names = {e.name for e in ours}
    assert names == {"Transfer", "Unlocked", "CommitmentPublished"}
    assert [int(e.args["tokenId"]) for e in ours if e.name == "Unlocked"] == [mine]
    assert all(isinstance(e.args["commitment"], bytes) for e in ours if "commitment" in e.args)

    for receipt in (mint, burn_receipt):
        expected = [e for e in ours if e.tx_hash == "0x" + receipt["transactionHash"].hex()]
        assert chain.decode_receipt_events(receipt) == expected


def test_owner_of_reads_as_web3_and_none_once_gone(chain: Chain) -> None:
    receipt = _send(chain, chain.sign_mint_batch(_requests(chain, [OTHER.address])))
    (token,) = [
        int(e.args["id"]) for e in chain.decode_receipt_events(receipt) if e.name == "Transfer"
    ]
    assert chain.owner_of(token) == str(chain.contract.functions.ownerOf(token).call()).lower()
    assert chain.owner_of(token) == OTHER.address.lower()
    assert chain.owner_of(10**9) is None  # never minted: ownerOf reverts


def test_refusals_carry_the_contract_error_name_as_through_web3(chain: Chain) -> None:
    receipt = _send(chain, chain.sign_mint_batch(_requests(chain, [OTHER.address])))
    (not_ours,) = [
        int(e.args["id"]) for e in chain.decode_receipt_events(receipt) if e.name == "Transfer"
    ]
    for token, error in ((10**9, "ERC721NonexistentToken"), (not_ours, "SLTNotTokenOwner")):
        # estimateGas reverts with the contract's custom error, read by name both ways.
        with pytest.raises(ChainError) as ours:
            chain.sign_persist(token)
        persist = chain.contract.functions.persist(token)
        with pytest.raises(ChainError) as theirs:
            chain._call(lambda: persist.estimate_gas({"from": RELAYER.address}))  # noqa: B023
        assert ours.value.description == theirs.value.description
        assert ours.value.description == f"the contract refused: {error}"

    past = [MintRequest(OTHER.address, 1, True, os.urandom(32))]
    with pytest.raises(ChainError, match="the contract refused: SLTInvalidEndTime"):
        chain.sign_mint_batch(past)

    with pytest.raises(ChainError, match="the chain refused: "):
        chain.broadcast(b"\x02not a transaction")


def test_persist_transaction_data_is_web3s(chain: Chain) -> None:
    tx = chain.persist_transaction(42)
    assert tx["data"] == chain.contract.encode_abi("persist", args=[42])
    assert tx["to"] == chain.address and tx["chain_id"] == chain.chain_id


def test_receipts_and_known_transactions_in_one_request(chain: Chain) -> None:
    signed = chain.sign_mint_batch(_requests(chain, [OTHER.address]))
    unknown = "0x" + "ab" * 32
    assert chain.receipt_statuses([signed.tx_hash, unknown]) == {
        signed.tx_hash: None,
        unknown: None,
    }
    assert chain.known_transactions([signed.tx_hash, unknown]) == set()
    _send(chain, signed)
    chain.broadcast(signed.raw)  # sent again after a crash: harmless
    assert chain.receipt_statuses([signed.tx_hash]) == {signed.tx_hash: 1}
    assert chain.known_transactions([signed.tx_hash, unknown]) == {signed.tx_hash}
    assert chain.receipt_statuses([]) == {} and chain.known_transactions([]) == set()
    assert chain.transaction_count(RELAYER.address) == chain.w3.eth.get_transaction_count(
        RELAYER.address
    )


def test_reads_match_web3(chain: Chain) -> None:
    assert chain.block_number() == chain.w3.eth.block_number
    assert chain.latest_timestamp() == chain.w3.eth.get_block("latest")["timestamp"]


def test_an_unreachable_chain_is_unavailable(chain: Chain) -> None:
    dead = Chain("http://127.0.0.1:9", chain.deployment, ANVIL_KEYS[1], timeout=1.0)
    for call in (
        dead.block_number,
        lambda: dead.events(0, 1),
        lambda: dead.owner_of(1),
        lambda: dead.receipt_statuses(["0x" + "00" * 32]),
        lambda: dead.known_transactions(["0x" + "00" * 32]),
        lambda: dead.sign_burn_batch([1]),
        lambda: dead.broadcast(b"\x02"),
    ):
        with pytest.raises(ChainUnavailable):
            call()


def test_a_node_without_batches_is_asked_one_request_at_a_time(
    node: Anvil, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = Chain(node.url, chain.deployment, ANVIL_KEYS[1])
    refusal = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "no batches"}}
    monkeypatch.setattr(alone.w3.provider, "make_batch_request", lambda calls: refusal)
    reqs = _requests(chain, [OTHER.address])
    signed = alone.sign_mint_batch(reqs)
    assert signed.raw == chain.sign_mint_batch(reqs).raw
    _send(alone, signed)
    assert alone.receipt_statuses([signed.tx_hash, "0x" + "cd" * 32]) == {
        signed.tx_hash: 1,
        "0x" + "cd" * 32: None,
    }


def test_a_node_refusing_batches_with_an_http_error_is_asked_one_request_at_a_time(
    node: Anvil, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = Chain(node.url, chain.deployment, ANVIL_KEYS[1])

    def refuse(calls: object) -> object:
        raise requests.HTTPError("413 Client Error: batch requests are not allowed")

    monkeypatch.setattr(alone.w3.provider, "make_batch_request", refuse)
    reqs = _requests(chain, [OTHER.address])
    assert alone.sign_mint_batch(reqs).raw == chain.sign_mint_batch(reqs).raw
    assert alone._batches is False  # and the next rounds do not try again
    assert alone.known_transactions(["0x" + "cd" * 32]) == set()


def test_a_down_node_stays_unavailable_when_a_batch_fails(chain: Chain) -> None:
    dead = Chain("http://127.0.0.1:9", chain.deployment, ANVIL_KEYS[1], timeout=1.0)
    with pytest.raises(ChainUnavailable):
        dead.receipt_statuses(["0x" + "00" * 32, "0x" + "11" * 32])
    assert dead._batches is True  # a node that is down has not refused batches


def test_commitments_are_found_in_one_query(chain: Chain) -> None:
    reqs = _requests(chain, [OTHER.address] * 3)
    receipt = _send(chain, chain.sign_mint_batch(reqs))
    tx = "0x" + receipt["transactionHash"].hex()
    published = {
        bytes(e.args["commitment"]): (int(e.args["tokenId"]), tx)
        for e in chain.decode_receipt_events(receipt)
        if e.name == "CommitmentPublished"
    }
    assert set(published) == {r.commitment for r in reqs}
    unknown = os.urandom(32)
    assert chain.find_commitments([r.commitment for r in reqs] + [unknown]) == published
    assert chain.find_commitments([unknown]) == {} and chain.find_commitments([]) == {}


def test_a_replacement_keeps_the_call_and_raises_both_fees_by_an_eighth_at_least(
    chain: Chain,
) -> None:
    signed = chain.sign_mint_batch(_requests(chain, [OTHER.address]))
    old = TypedTransaction.from_bytes(HexBytes(signed.raw)).as_dict()
    tip, cap = old["maxPriorityFeePerGas"], old["maxFeePerGas"]
    assert chain.replacement(signed.raw, (tip, cap)) is None  # the next block takes it as it is

    def fields(replacement: SignedTx | None) -> dict[str, Any]:
        assert replacement is not None and replacement.nonce == signed.nonce
        new = TypedTransaction.from_bytes(HexBytes(replacement.raw)).as_dict()
        assert Account.recover_transaction(replacement.raw) == RELAYER.address
        for key in ("nonce", "chainId", "to", "value", "data", "gas"):
            assert new[key] == old[key], key
        return new

    # The base fee past its cap, by a little: the bump of 1/8 is what sets the new fees.
    new = fields(chain.replacement(signed.raw, (tip, cap + 1)))
    assert new["maxPriorityFeePerGas"] == tip + -(-tip // 8)
    assert new["maxFeePerGas"] == max(
        new["maxPriorityFeePerGas"] + 2 * (cap + 1), cap + -(-cap // 8)
    )
    # The market's tip past ours, by far: the new transaction bids the market.
    new = fields(chain.replacement(signed.raw, (10 * tip, cap // 4)))
    assert new["maxPriorityFeePerGas"] == 10 * tip
    assert new["maxFeePerGas"] == max(10 * tip + 2 * (cap // 4), cap + -(-cap // 8))
    # The chain's current fees, as asked.
    market_tip, next_base_fee = chain.fees()
    assert market_tip > 0 and next_base_fee > 0


def test_proxy_settings_are_read_from_the_environment_once(
    chain: Chain, node: Anvil, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy that refuses every connection: a node reached through it is unreachable.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied = Chain(node.url, chain.deployment, ANVIL_KEYS[1], timeout=1.0)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    direct = Chain(node.url, chain.deployment, ANVIL_KEYS[1], timeout=1.0)
    monkeypatch.delenv("NO_PROXY")  # read at start: changing it later changes nothing
    with pytest.raises(ChainUnavailable):
        proxied.block_number()
    assert direct.block_number() == chain.block_number()


def test_each_thread_posts_through_a_session_of_its_own(chain: Chain) -> None:
    sessions = chain.w3.provider._request_session_manager._explicit_session  # type: ignore[attr-defined]
    seen: list[Any] = []

    def call() -> None:
        chain.block_number()
        seen.append(sessions._local.session)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    call()
    assert len({id(s) for s in seen}) == 3
    assert not any(s.trust_env for s in seen)


def test_keys_sign_and_recover_in_libsecp256k1() -> None:
    # eth-keys uses coincurve when it can import it and falls back to pure Python without a
    # word: 6 ms a signature instead of 0.5 (the worker signs every batch), 6.6 ms a recovery
    # instead of 0.1 (every sign-in).
    from eth_keys.backends.coincurve import CoinCurveECCBackend

    account = Account.from_key(ANVIL_KEYS[1])
    assert isinstance(account._key_obj.backend, CoinCurveECCBackend)
    signed = Account.sign_message(encode_defunct(text="slt"), account.key)
    assert Account.recover_message(encode_defunct(text="slt"), signature=signed.signature) == (
        account.address
    )
