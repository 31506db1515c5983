"""Fixtures for the SymbioticLearningToken tests, run on Anvil through ape-foundry.

Every test runs in its own chain snapshot (ape's isolation), so the session deployment is
shared. Time: Anvil may keep its clock across snapshot reverts, so tests only ever assert
time differences, measured from the block a token was minted in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import ape
import pytest
from ape.exceptions import CustomError
from eth_abi import encode as abi_encode
from eth_utils import keccak
from hexbytes import HexBytes

BASE_URI = "ipfs://slt/"
DEFAULT_TTL = 7 * 24 * 3600
COMMITMENT = keccak(text="ciphertext")

# What the hypothesis state machine did this session (test_invariants.py).
FUZZ_STATS = pytest.StashKey[dict[str, int]]()


# ---------------------------------------------------------------------------------------------
# Strict revert assertions
#
# NOTE: ape.reverts() alone is too forgiving here: it ignores an expected input whose name the
# error does not have, and checks nothing at all when the revert is not decoded as a custom
# error. And with this Anvil, a reverted eth_call (a view) never is: ape gets only Anvil's
# message text, without the raw revert data. These helpers require the error's exact name and
# every one of its inputs, and replay a reverting view or deployment over JSON-RPC to read the
# raw revert data.
# ---------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Accounts and contracts compare by address; everything else as is."""
    return getattr(value, "address", value)


def _check_inputs(name: str, actual: dict[str, Any], inputs: dict[str, Any]) -> None:
    assert set(actual) == set(inputs), (
        f"{name}: assert every input {sorted(actual)}, not {sorted(inputs)}"
    )
    for key, expected in inputs.items():
        got, want = _plain(actual[key]), _plain(expected)
        assert got == want, f"{name}.{key}: expected {want!r}, got {got!r}"


def _check_error(exc: Exception, error: type[CustomError], inputs: dict[str, Any]) -> None:
    assert isinstance(exc, CustomError), f"expected {error.__name__}, got {exc!r}"
    assert type(exc).__name__ == error.__name__, (
        f"expected {error.__name__}, got {type(exc).__name__}{exc.inputs}"
    )
    _check_inputs(error.__name__, dict(exc.inputs), inputs)


def _revert_data(tx: dict[str, Any], block: str = "latest") -> HexBytes:
    response = ape.chain.provider.web3.provider.make_request("eth_call", [tx, block])
    assert "error" in response, f"the call did not revert on replay: {response}"
    return HexBytes(response["error"].get("data") or b"")


def decode_error(contract_type: Any, data: bytes) -> tuple[str, dict[str, Any]]:
    """Decodes raw revert data against a contract type's errors: (name, inputs)."""
    selector = bytes(data[:4])
    assert selector in contract_type.errors, f"unknown revert data 0x{bytes(data).hex()}"
    abi = contract_type.errors[selector]
    inputs = ape.chain.provider.network.ecosystem.decode_calldata(abi, bytes(data[4:]))
    return abi.name, dict(inputs)


@contextmanager
def _reverts(error: type[CustomError], **inputs: Any) -> Iterator[Any]:
    with ape.reverts(error) as info:
        yield info
    _check_error(info.value, error, inputs)


def _view_reverts(error: type[CustomError], view: Any, *args: Any, **inputs: Any) -> None:
    with ape.reverts():
        view(*args)
    contract = view.contract
    data = _revert_data({"to": contract.address, "data": _hex(view.encode_input(*args))})
    name, actual = decode_error(contract.contract_type, data)
    assert name == error.__name__, f"expected {error.__name__}, got {name}{actual}"
    _check_inputs(name, actual, inputs)


def _hex(data: bytes) -> str:
    return "0x" + bytes(data).hex()


@pytest.fixture(scope="session")
def reverts() -> Callable[..., Any]:
    """`with reverts(slt.Error, arg=value, ...):` around a transaction."""
    return _reverts


@pytest.fixture(scope="session")
def view_reverts() -> Callable[..., None]:
    """`view_reverts(slt.Error, slt.someView, *args, arg=value, ...)` for a view call."""
    return _view_reverts


@pytest.fixture(scope="session")
def deploy_reverts(project, admin) -> Callable[..., None]:
    """`deploy_reverts(Error, owner, minter, baseURI, ttl, arg=value)`: the constructor reverts."""
    container = project.SymbioticLearningToken

    def _deploy_reverts(error: type[CustomError], *args: Any, **inputs: Any) -> None:
        with ape.reverts():
            container.deploy(*args, sender=admin)
        encoded = abi_encode(["address", "address", "string", "uint256"], [_plain(a) for a in args])
        bytecode = HexBytes(container.contract_type.deployment_bytecode.bytecode)
        data = _revert_data({"from": admin.address, "data": _hex(bytecode + encoded)})
        name, actual = decode_error(container.contract_type, data)
        assert name == error.__name__, f"expected {error.__name__}, got {name}{actual}"
        _check_inputs(name, actual, inputs)

    return _deploy_reverts


# ---------------------------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def admin(accounts):
    """The Solady owner: grants and revokes minters, sets the base URI."""
    return accounts[0]


@pytest.fixture(scope="session")
def minter(accounts):
    """Holds MINTER_ROLE from the constructor: mints, and is the issuer."""
    return accounts[1]


@pytest.fixture(scope="session")
def holder(accounts):
    return accounts[2]


@pytest.fixture(scope="session")
def stranger(accounts):
    return accounts[3]


@pytest.fixture(scope="session")
def other(accounts):
    """A second holder, for transfers and mixed-recipient batches."""
    return accounts[4]


@pytest.fixture(scope="session")
def operator(accounts):
    """Gets approvals (single token or for all) from holders."""
    return accounts[5]


# ---------------------------------------------------------------------------------------------
# Deployment
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def deploy(project, admin, minter) -> Callable[..., Any]:
    """deploy(owner=admin, first_minter=minter, base_uri=BASE_URI, ttl=DEFAULT_TTL)."""

    def _deploy(
        owner: Any = None,
        first_minter: Any = None,
        base_uri: str = BASE_URI,
        ttl: int = DEFAULT_TTL,
    ) -> Any:
        owner = admin if owner is None else owner
        first_minter = minter if first_minter is None else first_minter
        return project.SymbioticLearningToken.deploy(
            owner, first_minter, base_uri, ttl, sender=admin
        )

    return _deploy


@pytest.fixture(scope="session")
def slt(deploy):
    """One deployment for the session: each test runs in its own snapshot of it."""
    return deploy()


# ---------------------------------------------------------------------------------------------
# Factories
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mint(slt, minter, holder) -> Callable[..., tuple[int, Any]]:
    """mint(to=holder, ttl=None, switchable=True, ...) -> (tokenId, receipt).

    `ttl=None` sends endTime 0 (the contract's default TTL); otherwise endTime is `ttl`
    seconds after the pending block's time. Use `mint_at` when the exact distance matters.
    """

    def _mint(
        to: Any = None,
        ttl: int | None = None,
        switchable: bool = True,
        commitment: bytes = COMMITMENT,
        sender: Any = None,
    ) -> tuple[int, Any]:
        to = holder if to is None else to
        end = 0 if ttl is None else ape.chain.pending_timestamp + ttl
        receipt = slt.mint(to, end, commitment, switchable, sender=sender or minter)
        return receipt.return_value, receipt

    return _mint


@pytest.fixture(scope="session")
def mint_at(slt, minter, holder) -> Callable[..., tuple[int, int, int]]:
    """mint_at(ttl, to=holder, switchable=True) -> (tokenId, startTime, endTime).

    Pins the mint block's time, so that endTime is exactly `ttl` seconds after startTime.
    """

    def _mint_at(ttl: int, to: Any = None, switchable: bool = True) -> tuple[int, int, int]:
        to = holder if to is None else to
        start = ape.chain.blocks.head.timestamp + 1
        ape.chain.pending_timestamp = start
        receipt = slt.mint(to, start + ttl, COMMITMENT, switchable, sender=minter)
        assert ape.chain.provider.get_block(receipt.block_number).timestamp == start
        return receipt.return_value, start, start + ttl

    return _mint_at


@pytest.fixture(scope="session")
def persisted(slt, mint, holder) -> Callable[..., int]:
    """persisted(to=holder) -> tokenId of a token its owner already made persistent."""

    def _persisted(to: Any = None) -> int:
        to = holder if to is None else to
        token_id, _ = mint(to=to)
        slt.persist(token_id, sender=to)
        return token_id

    return _persisted


@pytest.fixture(scope="session")
def mine_at() -> Callable[[int], None]:
    """mine_at(timestamp): mines one block at exactly that time, which views then see."""

    def _mine_at(timestamp: int) -> None:
        ape.chain.pending_timestamp = timestamp
        ape.chain.mine()
        assert ape.chain.blocks.head.timestamp == timestamp

    return _mine_at


# ---------------------------------------------------------------------------------------------
# Fuzz budget and report
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fuzz_stats(request) -> dict[str, int]:
    """Counters of the state machine: contract calls sent, examples run, views checked."""
    return request.config.stash.setdefault(FUZZ_STATS, {"calls": 0, "examples": 0, "views": 0})


@pytest.fixture(scope="session")
def fuzz_budget() -> int | None:
    """SLT_FUZZ_CALLS: total random contract calls for a long run; None for the CI default."""
    value = os.environ.get("SLT_FUZZ_CALLS", "").strip()
    return int(value) if value else None


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    stats = config.stash.get(FUZZ_STATS, None)
    if stats is not None:
        terminalreporter.write_line(
            f"SLT state machine: {stats['calls']} contract calls (transactions) in "
            f"{stats['examples']} examples, {stats['views']} view calls checked"
        )
