"""A transaction the chain's fees have overtaken is replaced (same nonce, higher fees), on a
real Anvil of this module's own: its base fee is moved past what the transaction bids."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from slt_harness import Anvil, Clock, deploy

from backend.worker import LEASE, Worker

GWEI = 10**9


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    """A chain of this module's own: the base fees it is given would hold up other tests."""
    node = Anvil().start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def record(anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return deploy(anvil.url, tmp_path_factory.mktemp("deployments") / "ethereum-local.json")


def _rpc(anvil: Anvil, method: str, *params: Any) -> Any:
    response = anvil.w3().provider.make_request(method, list(params))
    assert "error" not in response, response
    return response["result"]


def _transactions(worker: Worker) -> list[tuple[str, int, str, str | None]]:
    rows = worker.store.db.execute(
        "SELECT tx_hash, nonce, state, replaces FROM transactions ORDER BY sent_at"
    )
    return [tuple(r) for r in rows]


@pytest.fixture
def held(anvil: Anvil) -> Iterator[None]:
    """Blocks mined only when a test says so, at the base fees it sets, from a head block whose
    base fee is 1 gwei (what new transactions bid on); automatic mining again afterwards."""
    _rpc(anvil, "anvil_setNextBlockBaseFeePerGas", hex(GWEI))
    _rpc(anvil, "evm_mine")
    _rpc(anvil, "evm_setAutomine", False)
    try:
        yield
    finally:
        _rpc(anvil, "evm_setAutomine", True)


def _created(app: Flask, n: int) -> None:
    client = app.test_client()
    for i in range(n):
        assert client.post("/generate", json={"prompt": f"overtaken {i}"}).status_code == 201


def _total_minted(anvil: Anvil, record: dict[str, Any]) -> int:
    contract = anvil.w3().eth.contract(address=record["address"], abi=record["abi"])
    return int(contract.functions.totalMinted().call())


def _minted(worker: Worker) -> int:
    return int(worker.store.count_payloads().get("minted", 0))


def test_a_transaction_the_base_fee_overtook_is_replaced_and_mined_once(
    make_app: Callable[..., Flask], anvil: Anvil, record: dict[str, Any], clock: Clock, held: None
) -> None:
    app = make_app(start_workers=False, tx_replace_after=30)
    worker = app.extensions["slt"].worker
    total = _total_minted(anvil, record)
    _created(app, 3)
    worker.process_outbox()  # in the pool, bidding twice the base fee of 1 gwei
    [(first, nonce, state, _)] = _transactions(worker)
    assert state == "sent"
    _rpc(anvil, "anvil_setNextBlockBaseFeePerGas", hex(500 * GWEI))

    worker.process_outbox()  # overtaken, but not yet waited SLT_TX_REPLACE_AFTER
    assert [row[0] for row in _transactions(worker)] == [first]
    clock.advance(31)
    worker.process_outbox()
    [old, new] = _transactions(worker)
    assert old == (first, nonce, "replaced", None)
    assert new[1:] == (nonce, "sent", first)
    jobs = worker.store.db.execute("SELECT DISTINCT tx_hash FROM outbox WHERE kind = 'mint'")
    assert [tuple(r) for r in jobs] == [(new[0],)]
    tx = anvil.w3().eth.get_transaction(new[0])
    assert tx["maxFeePerGas"] >= 2 * 500 * GWEI

    _rpc(anvil, "evm_mine")
    assert [h.to_0x_hex() for h in anvil.w3().eth.get_block("latest")["transactions"]] == [new[0]]
    worker.process_outbox()  # its events confirm the mints
    assert _minted(worker) == 3 and _total_minted(anvil, record) == total + 3
    assert [row[2] for row in _transactions(worker)] == ["replaced", "mined"]
    worker.process_outbox()  # nothing more to replace or send
    assert len(_transactions(worker)) == 2


def test_a_replacement_the_node_refuses_leaves_the_jobs_on_the_first_transaction(
    make_app: Callable[..., Flask], anvil: Anvil, record: dict[str, Any], clock: Clock, held: None
) -> None:
    app = make_app(start_workers=False, tx_replace_after=30)
    worker = app.extensions["slt"].worker
    w3, relayer = anvil.w3(), worker.chain.relayer_address
    funds = w3.eth.get_balance(relayer)
    total = _total_minted(anvil, record)
    _created(app, 3)
    worker.process_outbox()
    [(first, nonce, _, _)] = _transactions(worker)
    gas = w3.eth.get_transaction(first)["gas"]
    _rpc(anvil, "anvil_setNextBlockBaseFeePerGas", hex(500 * GWEI))
    # Enough for the first transaction's fees, not for a replacement bidding 1,000 gwei.
    _rpc(anvil, "anvil_setBalance", relayer, hex(gas * 10 * GWEI))
    try:
        clock.advance(31)
        worker.process_outbox()
        [old, refused] = _transactions(worker)
        assert old == (first, nonce, "sent", None)
        assert refused[1:] == (nonce, "dropped", first)
        jobs = worker.store.db.execute("SELECT state, tx_hash FROM outbox WHERE kind = 'mint'")
        assert [tuple(r) for r in jobs] == [("sent", first)] * 3
        clock.advance(120)  # past any back-off: jobs given back would be signed with nonce + 1
        worker.process_outbox()  # the replacement refused again
        assert [row[1] for row in _transactions(worker)] == [nonce, nonce]  # no second nonce
    finally:
        _rpc(anvil, "anvil_setBalance", relayer, hex(funds))

    _rpc(anvil, "anvil_setNextBlockBaseFeePerGas", hex(GWEI))  # fees fall back
    _rpc(anvil, "evm_mine")
    worker.process_outbox()
    assert _minted(worker) == 3 and _total_minted(anvil, record) == total + 3
    assert [row[2] for row in _transactions(worker)] == ["mined", "dropped"]


def test_a_replacement_signed_after_the_lease_passed_is_neither_recorded_nor_sent(
    make_app: Callable[..., Flask],
    anvil: Anvil,
    clock: Clock,
    held: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(start_workers=False, tx_replace_after=30)
    worker = app.extensions["slt"].worker
    _created(app, 1)
    worker.process_outbox()
    [(first, _, _, _)] = _transactions(worker)
    _rpc(anvil, "anvil_setNextBlockBaseFeePerGas", hex(500 * GWEI))
    clock.advance(31)
    replacement = worker.chain.replacement

    def stalled(raw: bytes, fees: tuple[int, int]) -> Any:
        signed = replacement(raw, fees)
        clock.advance(60)  # past the lease: another worker takes over meanwhile
        assert worker.store.acquire_lease(LEASE, "another-worker", clock(), 10)
        return signed

    monkeypatch.setattr(worker.chain, "replacement", stalled)
    worker.process_outbox()  # the round is given up, quietly
    assert [(h, s) for h, _, s, _ in _transactions(worker)] == [(first, "sent")]
    assert _rpc(anvil, "txpool_status")["pending"] == "0x1"
    assert "outbox round given up" in caplog.text and "Traceback" not in caplog.text
