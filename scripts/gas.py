"""Gas benchmark: SymbioticLearningToken (SLT) against NaiveSLT, a naive reference.

    ape run gas --network ethereum:local:foundry [--json PATH]

Both contracts are deployed with the test accounts and put through the same transactions with
the same calldata (same recipients, commitments and token ids). Every figure comes from a receipt
and leaves out the 21,000 base of a transaction: ``gas_used - 21000``. A batch figure is the cost
of one more token in a batch, ``(gas(batch of n) - gas(batch of 1)) / (n - 1)``, both batches
under the same conditions.

A failed transaction, or a case where the two contracts emit different events, aborts with a
non-zero exit status. A missed target is only reported: this is a benchmark.
"""

import json
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from ape import accounts, chain, project
from ape.api import AccountAPI, ReceiptAPI
from ape.cli import ConnectedProviderCommand
from ape.contracts import ContractInstance
from ape.logging import LogLevel, logger
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

BASE_GAS = 21_000
"""Intrinsic cost of every transaction, left out of every figure."""

TTL = 30 * 24 * 3600
"""Default TTL of both contracts. Every mint uses it (``endTime`` 0) but the expiring one."""

BASE_URI = "https://slt.example/token/"
BATCH_SIZES = (10, 100)
EVENTS_PER_MINT = 5
"""Transfer, Issued, Locked, TokenExpiryUpdated, CommitmentPublished."""

CONTRACTS = {"slt": "SymbioticLearningToken", "reference": "NaiveSLT"}
SOURCES = {
    "SymbioticLearningToken": "contracts/SymbioticLearningToken.sol",
    "NaiveSLT": "contracts/test/NaiveSLT.sol",
}

SINGLE_CASES = {
    "mint_new_owner": "mint, to a new owner",
    "mint_existing_owner": "mint, to an owner who holds a token",
    "burn_owner": "burn by the owner (who keeps other tokens)",
    "burn_expired_stranger": "burn of an expired token by a stranger",
    "persist": "persist",
    "transfer_persistent": "transfer of a persistent token, to a new owner",
}
BATCH_KINDS = {"one_owner": "one owner (holds tokens)", "new_owners": "distinct new owners"}


def batch_key(n: int, kind: str) -> str:
    """Key of the whole-transaction figure of a batch of `n`."""
    return f"batch_{n}_{kind}"


def per_extra_key(n: int, kind: str) -> str:
    """Key of the per-extra-token figure of a batch of `n`."""
    return f"batch_{n}_{kind}_per_extra"


@dataclass(frozen=True)
class Target:
    """A limit on one of SLT's figures, or on its ratio to the reference's."""

    case: str
    label: str
    limit: float
    ratio: bool = False


def targets(batch_sizes: Sequence[int] = BATCH_SIZES) -> list[Target]:
    """The SLT targets, batch targets once per batch size."""
    found = [
        Target("mint_new_owner", "mint, new owner", 65_000),
        Target("mint_new_owner", "mint, new owner: SLT / reference", 0.45, ratio=True),
        Target("mint_existing_owner", "mint, existing owner", 47_000),
        Target("burn_owner", "burn by the owner", 12_000),
        Target("burn_expired_stranger", "burn expired, by a stranger", 12_000),
    ]
    for n in batch_sizes:
        found.append(Target(per_extra_key(n, "one_owner"), f"batch {n}, one owner / extra", 33_000))
    for n in batch_sizes:
        found.append(
            Target(per_extra_key(n, "new_owners"), f"batch {n}, new owners / extra", 56_000)
        )
    return found


class BenchmarkError(click.ClickException):
    """A transaction failed or the two contracts disagree: the figures would mean nothing."""


@dataclass(frozen=True)
class Roles:
    admin: AccountAPI
    minter: AccountAPI
    holder: AccountAPI
    stranger: AccountAPI

    @classmethod
    def from_test_accounts(cls) -> "Roles":
        test = accounts.test_accounts
        return cls(admin=test[0], minter=test[1], holder=test[2], stranger=test[3])


@dataclass
class FreshAddresses:
    """Never-used addresses, derived from a counter so that every run sends the same calldata.

    Hashed rather than counted up from 1, so they have the byte mix (and calldata cost) of real
    addresses.
    """

    counter: int = 0

    def __call__(self) -> str:
        self.counter += 1
        digest = keccak(b"slt-gas/owner/" + self.counter.to_bytes(32, "big"))
        return str(to_checksum_address(digest[12:]))


def commitment(n: int) -> bytes:
    """The `n`-th commitment: 32 random-looking bytes, as a ciphertext hash is."""
    return bytes(keccak(b"slt-gas/commitment/" + n.to_bytes(32, "big")))


@dataclass
class Measurement:
    """One contract's figures by case, and the events each case emitted (to compare both)."""

    gas: dict[str, float] = field(default_factory=dict)
    events: dict[str, list[str]] = field(default_factory=dict)


def execution_gas(receipt: ReceiptAPI) -> int:
    """Gas used by `receipt`, without the 21,000 base. Raises if the transaction failed."""
    if receipt.failed:
        raise BenchmarkError(f"transaction {receipt.txn_hash} failed")
    return int(receipt.gas_used) - BASE_GAS


def deploy(name: str, roles: Roles) -> tuple[ContractInstance, int]:
    """Deploys contract `name` as the admin; returns it and its deploy gas (without the base)."""
    # NOTE: not `project.get_contract(name)`: ape lists sources from the first 500 files under
    # contracts/, and the dependency copies in contracts/.cache (OpenZeppelin's npm package alone
    # is 507 files) can hide contracts/test/ from it. Naming the source always works, and still
    # recompiles it when it changed.
    container = project.load_contracts(SOURCES[name])[name]
    token = roles.admin.deploy(container, roles.admin, roles.minter, BASE_URI, TTL)
    if not token.txn_hash:
        raise BenchmarkError(f"deploying {name} gave no transaction hash")
    return token, execution_gas(chain.get_receipt(token.txn_hash))


class _Bench:
    """Runs every case on one token, in a fixed order, and records the figures."""

    def __init__(self, token: ContractInstance, roles: Roles) -> None:
        self.token = token
        self.roles = roles
        self.holder = str(roles.holder.address)
        self.fresh = FreshAddresses()
        self.requests = 0
        self.result = Measurement()

    def record(self, case: str, receipt: ReceiptAPI) -> int:
        gas = execution_gas(receipt)
        self.result.gas[case] = gas
        self.result.events[case] = [log.event_name for log in receipt.events]
        return gas

    def request(self, to: str, end: int = 0) -> tuple[str, int, bool, bytes]:
        """A MintRequest (to, endTime, switchable, commitment): switchable, `end` 0 = TTL."""
        self.requests += 1
        return (to, end, True, commitment(self.requests))

    def mint(self, to: str, end: int = 0) -> tuple[ReceiptAPI, int]:
        """Mints one token with {mint}; returns the receipt and the new id."""
        to, end, switchable, commit = self.request(to, end)
        receipt = self.token.mint(to, end, commit, switchable, sender=self.roles.minter)
        token_id = int(self.token.totalMinted())
        if self.token.ownerOf(token_id) != to or len(receipt.logs) != EVENTS_PER_MINT:
            raise BenchmarkError(f"mint of token {token_id} did not do what it should")
        return receipt, token_id

    def batch(self, case: str, recipients: Sequence[str]) -> int:
        requests = [self.request(to) for to in recipients]
        receipt = self.token.mintBatch(requests, sender=self.roles.minter)
        if len(receipt.logs) != EVENTS_PER_MINT * len(requests):
            raise BenchmarkError(f"{case}: {len(receipt.logs)} logs for {len(requests)} mints")
        return self.record(case, receipt)

    def run(self, batch_sizes: Sequence[int]) -> Measurement:
        # From here on the holder owns a token: the "existing owner" of every case below.
        self.mint(self.holder)
        self.record("mint_new_owner", self.mint(self.fresh())[0])
        self.record("mint_existing_owner", self.mint(self.holder)[0])

        # Batch 1 and batch n under the same conditions: the one owner already holds tokens in
        # both, and every recipient of a "new owners" batch is a never-seen address.
        pickers: dict[str, Callable[[int], list[str]]] = {
            "one_owner": lambda n: [self.holder] * n,
            "new_owners": lambda n: [self.fresh() for _ in range(n)],
        }
        for kind, pick in pickers.items():
            single = self.batch(batch_key(1, kind), pick(1))
            for n in batch_sizes:
                whole = self.batch(batch_key(n, kind), pick(n))
                self.result.gas[per_extra_key(n, kind)] = (whole - single) / (n - 1)

        # The holder keeps other tokens: the balance slot is not zeroed, no extra refund.
        _, token_id = self.mint(self.holder)
        self.record("burn_owner", self.token.burn(token_id, sender=self.roles.holder))

        _, token_id = self.mint(self.holder, end=chain.pending_timestamp + 60)
        chain.mine(deltatime=120)
        if not self.token.isTokenExpired(token_id):
            raise BenchmarkError(f"token {token_id} should have expired")
        receipt = self.token.burn(token_id, sender=self.roles.stranger)
        self.record("burn_expired_stranger", receipt)

        _, token_id = self.mint(self.holder)
        self.record("persist", self.token.persist(token_id, sender=self.roles.holder))
        receipt = self.token.transferFrom(
            self.holder, self.fresh(), token_id, sender=self.roles.holder
        )
        self.record("transfer_persistent", receipt)
        return self.result


def measure(
    token: ContractInstance, roles: Roles, batch_sizes: Sequence[int] = BATCH_SIZES
) -> Measurement:
    """Every case's gas on `token`, without the 21,000 base. Same calls for any token."""
    return _Bench(token, roles).run(batch_sizes)


def compare(slt: Measurement, reference: Measurement) -> None:
    """Raises unless both contracts emitted the same events, in order, in every case."""
    for case, events in slt.events.items():
        if reference.events.get(case) != events:
            raise BenchmarkError(
                f"{case}: SLT emitted {events}, the reference {reference.events.get(case)}"
            )


def benchmark(roles: Roles, batch_sizes: Sequence[int] = BATCH_SIZES) -> dict[str, Any]:
    """Deploys both contracts, measures both and returns the report (plain data, JSON-ready)."""
    deploy_gas: dict[str, int] = {}
    results: dict[str, Measurement] = {}
    for side, name in CONTRACTS.items():
        token, deploy_gas[side] = deploy(name, roles)
        results[side] = measure(token, roles, batch_sizes)
    compare(results["slt"], results["reference"])

    def row(label: str, slt: float, ref: float) -> dict[str, Any]:
        return {"label": label, "slt": slt, "reference": ref, "ratio": slt / ref}

    cases = {"deploy": row("deploy", deploy_gas["slt"], deploy_gas["reference"])}
    order = list(SINGLE_CASES.items())
    for kind, kind_label in BATCH_KINDS.items():
        order += [
            (per_extra_key(n, kind), f"batch of {n}, {kind_label}: per extra token")
            for n in batch_sizes
        ]
    for kind, kind_label in BATCH_KINDS.items():
        order += [
            (batch_key(n, kind), f"batch of {n}, {kind_label}: whole tx") for n in (1, *batch_sizes)
        ]
    for key, label in order:
        cases[key] = row(label, results["slt"].gas[key], results["reference"].gas[key])

    checks = []
    for target in targets(batch_sizes):
        value = cases[target.case]["ratio" if target.ratio else "slt"]
        checks.append(
            {
                "label": target.label,
                "value": value,
                "limit": target.limit,
                "ratio": target.ratio,
                "headroom_pct": 100 * (target.limit - value) / target.limit,
                "pass": value <= target.limit,
            }
        )
    return {
        "base_gas_excluded": BASE_GAS,
        "hardfork": hardfork(),
        "contracts": CONTRACTS,
        "cases": cases,
        "targets": checks,
    }


def hardfork() -> str:
    """The local node's hardfork, as Anvil reports it, or "unknown" for another node."""
    try:
        return str(chain.provider.make_request("anvil_nodeInfo", [])["hardFork"])
    except Exception:  # noqa: BLE001 - only a label in the report
        return "unknown"


def _gas(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def format_report(report: dict[str, Any]) -> str:
    """The report as aligned text tables."""
    cases = report["cases"]
    width = max(len(c["label"]) for c in cases.values()) + 2
    lines = [
        f"Gas per transaction from receipts, minus the {BASE_GAS:,} base.",
        "SLT = SymbioticLearningToken; reference = NaiveSLT (OpenZeppelin ERC721 + mappings).",
        f"Hardfork: {report['hardfork']}. Every mint: endTime 0 (default TTL), switchable, "
        "32-byte commitment.",
        "",
        f"{'case':<{width}}{'SLT':>12}{'reference':>12}{'ratio':>8}",
        "-" * (width + 32),
    ]
    for key, case in cases.items():
        if key.startswith("batch_1_"):
            lines.append("")  # The whole-tx batch figures the per-extra rows come from.
        lines.append(
            f"{case['label']:<{width}}{_gas(case['slt']):>12}{_gas(case['reference']):>12}"
            f"{case['ratio']:>8.3f}"
        )

    checks = report["targets"]
    width = max(len(c["label"]) for c in checks) + 2
    lines += [
        "",
        "SLT targets",
        f"{'target':<{width}}{'SLT':>12}{'limit':>12}{'headroom':>10}  result",
        "-" * (width + 42),
    ]
    for check in checks:
        show = (lambda v: f"{v:.3f}") if check["ratio"] else _gas
        lines.append(
            f"{check['label']:<{width}}{show(check['value']):>12}{'<= ' + show(check['limit']):>12}"
            f"{check['headroom_pct']:>9.1f}%  {'PASS' if check['pass'] else 'MISS'}"
        )
    missed = sum(not c["pass"] for c in checks)
    lines += ["", f"{len(checks) - missed} of {len(checks)} targets met."]
    return "\n".join(lines)


@click.command(cls=ConnectedProviderCommand)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the figures as JSON to this file.",
)
def cli(network: Any, json_path: Path | None) -> None:
    """Print SLT's gas beside a naive reference's, and SLT's targets (PASS/MISS)."""
    if not network.is_local:
        raise click.UsageError("the benchmark uses test accounts: run it on a local network")
    # One "Confirmed" line per transaction would bury the table; keep them if asked (-v DEBUG).
    quiet = logger.level == LogLevel.INFO
    with logger.at_level(LogLevel.WARNING) if quiet else nullcontext():
        report = benchmark(Roles.from_test_accounts())
    click.echo(format_report(report))
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        click.echo(f"\nJSON written to {json_path}")
