"""Random sequences of calls against a Python model of the token (hypothesis state machine).

Every step is a real transaction on Anvil, sent over raw JSON-RPC for speed: the block time is
set first, the call is simulated on the pending block to read its exact revert error, then
sent and mined at that time. The model predicts each outcome (success, or error name and
arguments), and after every step the invariants are checked against the chain with one
batched JSON-RPC request.

CI runs a few short examples. For a long run, set SLT_FUZZ_CALLS to the number of contract
calls to make (e.g. 10000); the count is printed in the terminal summary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import ape
import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

TTL = 300  # the fuzz deployment's default TTL: short, so that time travel reaches expiry
MAX_END = 2**40 - 1
ZERO = "0x0000000000000000000000000000000000000000"
GAS = 3_000_000
BIG = "2**40"  # an end spec: endTime just past the 40 bits the contract stores
Error = tuple[str, dict[str, Any]] | None


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def _calldata(signature: str, *args: Any) -> str:
    types = signature[signature.index("(") + 1 : -1]
    arg_types = _split_types(types)
    return "0x" + (_selector(signature) + abi_encode(arg_types, list(args))).hex()


def _split_types(types: str) -> list[str]:
    """Top-level comma split of an ABI type list (tuples stay whole)."""
    parts, depth, current = [], 0, ""
    for char in types:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    return [*parts, current] if current else parts


@dataclass
class Token:
    owner: str
    start: int
    end: int  # 0 once persistent
    switchable: bool
    approved: str = ZERO


class Node:
    """Raw JSON-RPC access to Anvil and the token, with exact error decoding."""

    def __init__(self, slt: Any, stats: dict[str, int]) -> None:
        self.address = slt.address
        self.stats = stats
        self.request = ape.chain.provider.web3.provider.make_request
        self.batch = ape.chain.provider.web3.provider.make_batch_request
        self.errors = {}
        for abi in slt.contract_type.abi:
            if abi.type == "error":
                types = [i.canonical_type for i in abi.inputs]
                self.errors[_selector(abi.selector)] = (
                    abi.name,
                    [i.name for i in abi.inputs],
                    types,
                )

    def rpc(self, method: str, params: list) -> Any:
        response = self.request(method, params)
        assert "error" not in response, f"{method}: {response['error']}"
        return response["result"]

    def decode_error(self, data: str) -> Error:
        raw = bytes.fromhex(data.removeprefix("0x"))
        name, names, types = self.errors[raw[:4]]
        values = [
            to_checksum_address(v) if t == "address" else v
            for v, t in zip(abi_decode(types, raw[4:]), types, strict=True)
        ]
        return name, dict(zip(names, values, strict=True))

    def send(self, sender: str, now: int, signature: str, *args: Any) -> tuple[Error, bytes]:
        """Sends one call as a transaction mined at `now`: (error or None, return data)."""
        tx = {
            "from": sender,
            "to": self.address,
            "data": _calldata(signature, *args),
            "gas": hex(GAS),
        }
        self.rpc("evm_setNextBlockTimestamp", [now])
        simulated = self.request("eth_call", [tx, "pending"])
        tx_hash = self.rpc("eth_sendTransaction", [tx])
        receipt = self.receipt(tx_hash)
        self.stats["calls"] += 1
        if "error" in simulated:
            assert int(receipt["status"], 16) == 0, f"{signature} was simulated to revert"
            return self.decode_error(simulated["error"]["data"]), b""
        assert int(receipt["status"], 16) == 1, f"{signature} was simulated to succeed"
        return None, bytes.fromhex(simulated["result"].removeprefix("0x"))

    def receipt(self, tx_hash: str) -> dict[str, Any]:
        # NOTE: Anvil automines, but may answer eth_sendTransaction before the block is sealed.
        for _ in range(1000):
            if receipt := self.rpc("eth_getTransactionReceipt", [tx_hash]):
                return receipt
            time.sleep(0.001)
        raise AssertionError(f"transaction {tx_hash} was not mined")

    def mine_at(self, timestamp: int) -> None:
        self.rpc("evm_setNextBlockTimestamp", [timestamp])
        self.rpc("evm_mine", [])

    def views(self, calls: list[tuple[str, tuple]]) -> list[tuple[Error, bytes]]:
        """Runs many view calls on the latest block in one batched request."""
        requests = [
            ("eth_call", [{"to": self.address, "data": _calldata(sig, *args)}, "latest"])
            for sig, args in calls
        ]
        self.stats["views"] += len(requests)
        results = []
        for response in self.batch(requests):
            if "error" in response:
                results.append((self.decode_error(response["error"]["data"]), b""))
            else:
                results.append((None, bytes.fromhex(response["result"].removeprefix("0x"))))
        return results


def _word(data: bytes) -> int:
    return int.from_bytes(data[:32], "big")


def _address(data: bytes) -> str:
    return to_checksum_address(data[12:32])


def machine_for(slt: Any, stats: dict[str, int], roles: dict[str, str]) -> type:
    """A state machine class bound to one deployment (each example runs in a snapshot)."""
    users = [roles["holder"], roles["other"], roles["stranger"], roles["operator"]]
    minter, admin = roles["minter"], roles["admin"]
    everyone = [*users, minter, admin]
    # Mostly valid requests: endTime 0 (default TTL) or in the future; sometimes invalid ones.
    valid_end = st.integers(1, 2 * TTL)
    end_specs = st.one_of(st.none(), valid_end, valid_end, st.integers(-2, 0) | st.just(BIG))
    requests = st.tuples(st.sampled_from(users), end_specs, st.booleans())
    # Who calls, relative to the token: mostly those who may, sometimes anyone.
    relations = st.sampled_from(["owner", "owner", "approved", "operator", "minter", "anyone"])
    owner_first = st.sampled_from(["owner"] * 4 + ["approved", "operator", "minter", "anyone"])

    class TokenMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.snapshot = ape.chain.snapshot()
            self.node = Node(slt, stats)
            self.now = ape.chain.blocks.head.timestamp
            self.tokens: dict[int, Token] = {}
            self.burned: set[int] = set()
            self.operators: set[tuple[str, str]] = set()  # (owner, operator)
            self.minters = {minter}
            ((_, total),) = self.node.views([("totalMinted()", ())])
            self.first_id = self.next_id = _word(total) + 1
            stats["examples"] += 1

        def teardown(self) -> None:
            ape.chain.restore(self.snapshot)

        # ---- model helpers ------------------------------------------------------------------

        def expired(self, token: Token, at: int) -> bool:
            return token.end != 0 and at >= token.end

        def end_of(self, spec: Any) -> int:
            """The endTime argument sent for a request's end spec (None: 0, the default)."""
            if spec is None:
                return 0
            return MAX_END + 1 if spec == BIG else self.now + spec

        def pick_id(self, data: Any, prefer: Any = None) -> int:
            """Mostly a live token (often one that `prefer`s), sometimes a gone or unknown id."""
            live = sorted(self.tokens)
            preferred = [i for i in live if prefer(self.tokens[i])] if prefer else live
            gone = [*sorted(self.burned), 0, self.next_id]
            kind = data.draw(st.integers(0, 3), label="kind")  # shrinks towards `preferred`
            pool = [preferred or live, preferred or live, live, gone][kind] or gone
            return data.draw(st.sampled_from(pool), label="tokenId")

        def pick_caller(self, data: Any, token: Token | None, how: Any = relations) -> str:
            relation = data.draw(how, label="caller")
            operators = [
                op for owner, op in sorted(self.operators) if token and owner == token.owner
            ]
            if relation == "owner" and token:
                return token.owner
            if relation == "approved" and token and token.approved != ZERO:
                return token.approved
            if relation == "operator" and operators:
                return data.draw(st.sampled_from(operators), label="operator")
            if relation == "minter":
                return data.draw(st.sampled_from(sorted(self.minters) or [minter]), label="minter")
            return data.draw(st.sampled_from(everyone), label="anyone")

        def may_manage(self, by: str, token: Token) -> bool:
            """Solady's check: the owner, the token's approved address, or an operator."""
            return by in (token.owner, token.approved) or (token.owner, by) in self.operators

        def send(self, sender: str, signature: str, *args: Any) -> tuple[Error, bytes]:
            return self.node.send(sender, self.now, signature, *args)

        def expect(self, actual: Error, expected: Error, what: str) -> None:
            assert actual == expected, f"{what}: expected {expected}, got {actual}"

        # ---- rules --------------------------------------------------------------------------

        @initialize(
            batch=st.lists(
                st.tuples(st.sampled_from(users), st.none() | valid_end, st.booleans()),
                min_size=2,
                max_size=6,
            ),
            keep=st.lists(st.booleans(), max_size=6),
        )
        def first_tokens(self, batch: list, keep: list[bool]) -> None:
            """Starts every example with a few live tokens, some of them persistent already."""
            first = self.next_id
            self.mint_batch(batch, minter)
            for token_id, persist in zip(range(first, self.next_id), keep, strict=False):
                if persist:
                    self.persist_as(self.tokens[token_id].owner, token_id)

        @rule(request=requests, by=st.sampled_from([minter, minter, minter, admin, users[2]]))
        def mint(self, request: tuple, by: str) -> None:
            to, spec, switchable = request
            commitment = keccak(text=f"{self.next_id}{request}")
            signature = "mint(address,uint64,bytes32,bool)"
            error, result = self.send(by, signature, to, self.end_of(spec), commitment, switchable)
            self.expect(error, self.mint_error(by, [request]), "mint")
            if error is None:
                assert _word(result) == self.next_id  # a fresh id, above every burned one
                self.add_tokens([request])

        @rule(batch=st.lists(requests, max_size=4), by=st.sampled_from([minter, minter, admin]))
        def mint_batch(self, batch: list, by: str) -> None:
            encoded = [
                (to, self.end_of(spec), switchable, keccak(text=f"{self.next_id}{i}"))
                for i, (to, spec, switchable) in enumerate(batch)
            ]
            error, result = self.send(by, "mintBatch((address,uint64,bool,bytes32)[])", encoded)
            self.expect(error, self.mint_error(by, batch), "mintBatch")
            if error is None:
                assert _word(result) == self.next_id
                self.add_tokens(batch)

        def mint_error(self, by: str, batch: list) -> Error:
            if by not in self.minters:
                return ("Unauthorized", {})
            for _, spec, _ in batch:
                end = self.end_of(spec) or self.now + TTL
                if end <= self.now or end > MAX_END:
                    return ("SLTInvalidEndTime", {"endTime": end, "blockTime": self.now})
            return None

        def add_tokens(self, batch: list) -> None:
            for to, spec, switchable in batch:
                assert self.next_id not in self.burned and self.next_id not in self.tokens
                end = self.end_of(spec) or self.now + TTL
                self.tokens[self.next_id] = Token(to, self.now, end, switchable)
                self.next_id += 1

        @precondition(lambda self: self.tokens)
        @rule(data=st.data())
        def persist(self, data: Any) -> None:
            token_id = self.pick_id(data, lambda t: t.switchable and t.end > self.now)
            self.persist_as(
                self.pick_caller(data, self.tokens.get(token_id), owner_first), token_id
            )

        def persist_as(self, by: str, token_id: int) -> None:
            token = self.tokens.get(token_id)
            error, _ = self.send(by, "persist(uint256)", token_id)
            if token is None:
                expected = ("ERC721NonexistentToken", {"tokenId": token_id})
            elif token.owner != by:
                expected = ("SLTNotTokenOwner", {"caller": by, "tokenId": token_id})
            elif not token.switchable:
                expected = ("SLTNotSwitchable", {"tokenId": token_id})
            elif token.end == 0:
                expected = ("SLTAlreadyPersistent", {"tokenId": token_id})
            elif self.expired(token, self.now):
                expected = ("SLTTokenExpired", {"tokenId": token_id, "endTime": token.end})
            else:
                expected = None
                token.end = 0
            self.expect(error, expected, "persist")

        @precondition(lambda self: self.tokens)
        @rule(
            data=st.data(),
            to=st.sampled_from(users),
            method=st.sampled_from(["transferFrom", "safeTransferFrom", "safeTransferFrom+data"]),
            from_owner=st.booleans() | st.just(True),
        )
        def transfer(self, data: Any, to: str, method: str, from_owner: bool) -> None:
            token_id = self.pick_id(data, lambda t: t.end == 0)
            token = self.tokens.get(token_id)
            by = self.pick_caller(data, token)
            owner = token.owner if token else ZERO
            from_ = owner if (from_owner and token) else data.draw(st.sampled_from(users))
            name, *with_data = method.split("+")
            signature = f"{name}(address,address,uint256{',bytes' if with_data else ''})"
            args = (from_, to, token_id, b"\x01") if with_data else (from_, to, token_id)
            error, _ = self.send(by, signature, *args)
            if token is not None and token.end != 0:
                # Locked, as every token that can expire is: it never moves, whoever asks.
                expected = ("SLTTokenLocked", {"tokenId": token_id})
            elif token is None:
                expected = ("TokenDoesNotExist", {})
            elif from_ != owner:
                expected = ("TransferFromIncorrectOwner", {})
            elif not self.may_manage(by, token):
                expected = ("NotOwnerNorApproved", {})
            else:
                expected = None
                token.owner, token.approved = to, ZERO
            self.expect(error, expected, method)
            if expected is not None and token is not None:
                ((error, owner_now),) = self.node.views([("ownerOf(uint256)", (token_id,))])
                assert error is None and _address(owner_now) == owner, "a refused transfer moved it"

        @precondition(lambda self: self.tokens)
        @rule(data=st.data(), spender=st.sampled_from([*users, ZERO]))
        def approve(self, data: Any, spender: str) -> None:
            token_id = self.pick_id(data, lambda t: not self.expired(t, self.now))
            token = self.tokens.get(token_id)
            by = self.pick_caller(data, token)
            error, _ = self.send(by, "approve(address,uint256)", spender, token_id)
            if token is not None and self.expired(token, self.now):
                expected = ("SLTTokenExpired", {"tokenId": token_id, "endTime": token.end})
            elif token is None:
                expected = ("TokenDoesNotExist", {})
            elif by != token.owner and (token.owner, by) not in self.operators:
                expected = ("NotOwnerNorApproved", {})
            else:
                expected = None
                token.approved = spender
            self.expect(error, expected, "approve")

        @rule(by=st.sampled_from(users), operator=st.sampled_from(everyone), on=st.booleans())
        def set_approval_for_all(self, by: str, operator: str, on: bool) -> None:
            error, _ = self.send(by, "setApprovalForAll(address,bool)", operator, on)
            self.expect(error, None, "setApprovalForAll")
            (self.operators.add if on else self.operators.discard)((by, operator))

        @rule(
            account=st.sampled_from(users), grant=st.booleans(), by=st.sampled_from([admin, minter])
        )
        def set_minter(self, account: str, grant: bool, by: str) -> None:
            signature = f"{'grantRoles' if grant else 'revokeRoles'}(address,uint256)"
            error, _ = self.send(by, signature, account, 1)  # MINTER_ROLE
            if by != admin:
                self.expect(error, ("Unauthorized", {}), signature)
                return
            self.expect(error, None, signature)
            (self.minters.add if grant else self.minters.discard)(account)

        @precondition(lambda self: self.tokens)
        @rule(data=st.data())
        def burn(self, data: Any) -> None:
            token_id = self.pick_id(data)
            token = self.tokens.get(token_id)
            by = self.pick_caller(data, token)
            error, _ = self.send(by, "burn(uint256)", token_id)
            if token is None:
                expected = ("ERC721NonexistentToken", {"tokenId": token_id})
            elif self.may_manage(by, token) or by in self.minters or self.expired(token, self.now):
                expected = None
                self.remove(token_id)
            else:
                expected = ("SLTBurnNotAuthorized", {"caller": by, "tokenId": token_id})
            self.expect(error, expected, "burn")

        @rule(data=st.data(), by=st.sampled_from([minter, minter, users[0]]))
        def burn_batch(self, data: Any, by: str) -> None:
            ids = [self.pick_id(data) for _ in range(data.draw(st.integers(0, 4), label="n"))]
            error, _ = self.send(by, "burnBatch(uint256[])", ids)
            if by not in self.minters:
                self.expect(error, ("Unauthorized", {}), "burnBatch")
                return
            self.expect(error, None, "burnBatch")
            for token_id in ids:
                if token_id in self.tokens:  # ids already gone are skipped
                    self.remove(token_id)

        def remove(self, token_id: int) -> None:
            del self.tokens[token_id]
            self.burned.add(token_id)

        @rule(data=st.data(), boundary=st.booleans())
        def time_travel(self, data: Any, boundary: bool) -> None:
            """Moves the clock on, often to exactly one second around some token's endTime."""
            ends = {t.end + d for t in self.tokens.values() if t.end for d in (-1, 0, 1)}
            ends = sorted(e for e in ends if e >= self.now)
            if boundary and ends:
                self.now = data.draw(st.sampled_from(ends), label="at")
            else:
                self.now += data.draw(st.integers(0, TTL), label="seconds")
            self.node.mine_at(self.now)

        # ---- invariants ---------------------------------------------------------------------

        @invariant()
        def chain_matches_model(self) -> None:
            ids = list(range(self.first_id, self.next_id + 1))  # + one never minted
            calls = [("totalMinted()", ())]
            calls += [("balanceOf(address)", (a,)) for a in everyone]
            for token_id in ids:
                calls += [
                    ("ownerOf(uint256)", (token_id,)),
                    ("isTokenExpired(uint256)", (token_id,)),
                ]
                if token_id in self.tokens:
                    calls += [
                        ("endTime(uint256)", (token_id,)),
                        ("locked(uint256)", (token_id,)),
                        ("getApproved(uint256)", (token_id,)),
                    ]
            head = self.node.rpc("eth_getBlockByNumber", ["latest", False])
            results = iter(self.node.views(calls))
            clock = int(head["timestamp"], 16)
            assert clock == self.now, "every step mines exactly at the model's time"

            error, total = next(results)
            assert error is None and _word(total) == self.next_id - 1  # only ever grows
            balances = {a: _word(next(results)[1]) for a in everyone}
            for account in everyone:
                held = sum(t.owner == account for t in self.tokens.values())
                assert balances[account] == held, f"balanceOf({account})"
            assert sum(balances.values()) == len(self.tokens)

            for token_id in ids:
                owner, expired = next(results), next(results)
                token = self.tokens.get(token_id)
                if token is None:  # burned, or never minted: gone for good
                    assert owner == (("TokenDoesNotExist", {}), b"")
                    assert expired[0] == ("ERC721NonexistentToken", {"tokenId": token_id})
                    continue
                end, locked, approved = next(results), next(results), next(results)
                assert _address(owner[1]) == token.owner
                assert bool(_word(expired[1])) is self.expired(token, clock)
                assert _word(end[1]) == token.end
                assert bool(_word(locked[1])) is (token.end != 0)
                assert _address(approved[1]) == token.approved

    return TokenMachine


@pytest.fixture(scope="module")
def fuzz_slt(deploy):
    return deploy(ttl=TTL)


def test_random_call_sequences_keep_the_invariants(
    fuzz_slt, fuzz_stats, fuzz_budget, admin, minter, holder, other, stranger, operator
):
    roles = {
        "admin": admin.address,
        "minter": minter.address,
        "holder": holder.address,
        "other": other.address,
        "stranger": stranger.address,
        "operator": operator.address,
    }
    machine = machine_for(fuzz_slt, fuzz_stats, roles)
    start = fuzz_stats["calls"]
    remaining = 1 if fuzz_budget is None else fuzz_budget
    while remaining > 0:
        # CI: one short run. SLT_FUZZ_CALLS: runs of at most 10 examples of 50 steps (about
        # 35 calls each) until the budget is spent, the last run sized to what is left.
        examples = 12 if fuzz_budget is None else max(1, min(10, remaining // 35))
        run_state_machine_as_test(
            machine,
            settings=settings(
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                stateful_step_count=30 if fuzz_budget is None else 50,
                max_examples=examples,
            ),
        )
        made = fuzz_stats["calls"] - start
        remaining = 0 if fuzz_budget is None else fuzz_budget - made

    print(f"\nSLT state machine: {made} contract calls in {fuzz_stats['examples']} examples")
    assert made > 0
