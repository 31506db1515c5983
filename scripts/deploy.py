"""Deploy and administer the SymbioticLearningToken (`ape run deploy --help`).

    ape run deploy deploy --network ethereum:sepolia:node --account deployer \\
        --admin 0x... --minter 0x... --base-uri https://api.example/token/
    ape run deploy show --network ethereum:sepolia:node
    ape run deploy grant-minter 0x... --network ethereum:sepolia:node --account admin

Every subcommand finds the deployment through its record, `deployments/<ecosystem>-<network>.json`
(scripts/_helpers.py has its shape; docs/DEPLOY.md the whole procedure).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from ape import chain, compilers, project
from ape.api.accounts import AccountAPI
from ape.api.providers import ProviderAPI
from ape.cli import ConnectedProviderCommand, account_option, skip_confirmation_option
from ape.contracts import ContractContainer, ContractInstance
from ape.exceptions import ApeException, ContractLogicError, NetworkMismatchError
from ape_accounts import KeyfileAccount
from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from ethpm_types import ContractType
from web3 import Web3

from scripts._helpers import (
    BASE_URI_UPDATED_TOPIC,
    CONTRACT_NAME,
    DEPLOYMENTS_ENV_VAR,
    MAX_TTL,
    RPC_URL_ENV_VARS,
    TRANSFER_TOPIC,
    ZERO_ADDRESS,
    ZERO_TOPIC,
    RecordError,
    code_hash,
    code_problem,
    expected_chain_id,
    format_ether,
    format_gwei,
    get_logs,
    git_commit,
    is_dev_network,
    load_record,
    parse_address,
    record_path,
    redact_url,
    utc_now_iso,
    wait_for_confirmations,
    write_record_atomic,
)

F = TypeVar("F", bound=Callable[..., Any])


class DeployError(click.ClickException):
    """An expected failure: printed as `Error: ...`, exit status 1, no record written."""


class NetworkCommand(ConnectedProviderCommand):
    """ape's ConnectedProviderCommand, with failures to connect told in one clear line.

    ape connects before it calls the command, so an ape error raised before the callback starts
    is a connection error (unreachable RPC, unset URL variable, wrong chain). It becomes a
    DeployError instead of a traceback through ape's internals.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._started = False
        inner = self.callback
        assert inner is not None

        # functools.wraps keeps the signature, which ape reads to pass `provider` and friends.
        @functools.wraps(inner)
        def started(*a: Any, **kw: Any) -> Any:
            self._started = True
            return inner(*a, **kw)

        self.callback = started

    def invoke(self, ctx: click.Context) -> Any:
        self._started = False
        if isinstance(requested := ctx.params.get("network"), ProviderAPI):
            check_rpc_variable(requested)  # before ape connects anywhere
        try:
            return super().invoke(ctx)
        except ApeException as err:
            if self._started:
                raise
            raise DeployError(connection_error_message(err)) from None


def check_rpc_variable(provider: ProviderAPI) -> None:
    """Refuse an RPC URL variable that is set but empty.

    ape-config.yaml reads e.g. `${SEPOLIA_RPC_URL}`; an empty value leaves no URI, and ape's
    node provider then falls back to some public RPC, one nobody chose.
    """
    network = provider.network
    env_var = RPC_URL_ENV_VARS.get((network.ecosystem.name, network.name))
    if env_var and provider.name == "node" and os.environ.get(env_var, "unset").strip() == "":
        raise DeployError(f"${env_var} is set but empty: set it to the RPC URL, or unset it")


def connection_error_message(err: ApeException) -> str:
    if isinstance(err, NetworkMismatchError):
        return f"chain id mismatch: {err} Check the RPC URL."
    text = str(err).rstrip(".")
    hint = ""
    if "${" in text:
        names = ", ".join(sorted(set(RPC_URL_ENV_VARS.values())))
        hint = f" An RPC URL variable is not set (one of {names}); see docs/DEPLOY.md."
    return f"cannot connect to the network: {text}.{hint}"


def out_dir_option(f: F) -> F:
    return click.option(
        "--out-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=DEPLOYMENTS_ENV_VAR,
        default=None,
        help=f"Folder of the records [env {DEPLOYMENTS_ENV_VAR}; default deployments/].",
    )(f)


def yes_option(f: F) -> F:
    return cast(F, skip_confirmation_option("Do not ask for confirmation on a live network.")(f))


@click.group()
def cli() -> None:
    """Deploy the SymbioticLearningToken and manage its minters and base URI."""


# --------------------------------------------------------------------------- shared steps


def web3_of(provider: ProviderAPI) -> Web3:
    return cast(Web3, provider.web3)  # type: ignore[attr-defined]


def network_name(provider: ProviderAPI) -> str:
    return f"{provider.network.ecosystem.name}:{provider.network.name}"


def provider_uri(provider: ProviderAPI) -> str:
    try:
        return str(getattr(provider, "uri", "") or "")
    except ApeException:
        return ""


def check_chain(provider: ProviderAPI) -> int:
    """The connected chain id, after checking it is the one the network must have.

    ape's node provider makes the same check when it connects; this one also covers other
    providers, and says which network was expected.
    """
    ecosystem, network = provider.network.ecosystem.name, provider.network.name
    try:
        expected = expected_chain_id(ecosystem, network)
    except ValueError as err:
        raise DeployError(str(err)) from None
    actual = provider.chain_id
    if expected is not None and actual != expected:
        raise DeployError(
            f"chain id mismatch: the RPC at {redact_url(provider_uri(provider))} serves chain "
            f"{actual}, but {ecosystem}:{network} is chain {expected}; check the RPC URL"
        )
    return actual


def check_account(provider: ProviderAPI, account: AccountAPI) -> None:
    """Named accounts on live networks; a keyfile account is unlocked now, before any sending.

    The passphrase comes from $APE_ACCOUNTS_<alias>_PASSPHRASE (ape's own convention), else
    from a prompt. Autosign spares the per-transaction "Sign:" prompt, which `--yes` in CI
    could not answer; this script's own confirmation is the human check.
    """
    if not is_dev_network(provider.network.name) and not isinstance(account, KeyfileAccount):
        raise DeployError(
            f"{network_name(provider)} is a live network: use a named account "
            "(`ape accounts import <alias>`, then --account <alias>), not a test account"
        )
    if isinstance(account, KeyfileAccount):
        alias = account.alias
        env_var = f"APE_ACCOUNTS_{alias}_PASSPHRASE"
        passphrase = os.environ.get(env_var) or click.prompt(
            f"Passphrase for account '{alias}'", hide_input=True, err=True
        )
        try:
            account.set_autosign(True, passphrase=passphrase)
        except ApeException as err:
            raise DeployError(
                f"cannot unlock account '{alias}': wrong passphrase (from ${env_var} or the "
                f"prompt): {err}"
            ) from None


def confirm_or_abort(provider: ProviderAPI, question: str, yes: bool) -> None:
    """Ask on live networks unless --yes; anything but yes aborts before sending."""
    if is_dev_network(provider.network.name) or yes:
        return
    try:
        confirmed = click.confirm(question, default=False, err=True)
    except click.Abort:  # end of input, e.g. CI without --yes
        confirmed = False
    if not confirmed:
        raise DeployError("aborted: not confirmed; nothing was sent and no record was written")


def await_confirmations(provider: ProviderAPI, txn_hash: str, confirmations: int) -> int:
    """The transaction's block once `confirmations` blocks sit on top of it.

    Polls every second instead of ape's half block time (7 s on Sepolia), re-reading the receipt.
    """
    if confirmations > 0:
        click.echo(f"Waiting for {confirmations} confirmation(s)...", err=True)
    block_time = max(int(provider.network.block_time or 0), 1)
    try:
        return wait_for_confirmations(
            web3_of(provider),
            txn_hash,
            confirmations,
            timeout=120 + confirmations * block_time * 10,
        )
    except TimeoutError as err:
        raise DeployError(f"timed out: {err}; no record was written") from None


def send(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except ApeException as err:
        raise DeployError(f"transaction failed: {err}") from None


# --------------------------------------------------------------------------- deploy


def compiler_info(contract_type: ContractType) -> dict[str, Any]:
    """solc's version and the settings ape-solidity compiles the contract's source with.

    Asked of ape-solidity for this one source, so the remappings are the ones its imports use
    (the manifest's compiler entry keeps a single remapping set for the whole project).
    """
    if not contract_type.source_id:
        raise DeployError(f"{CONTRACT_NAME} has no source id; run `ape compile`")
    source = project.path / contract_type.source_id
    by_version = compilers.solidity.get_compiler_settings([source], project=project)
    if len(by_version) != 1:
        raise DeployError(f"expected one solc version for {source}, got {list(by_version)}")
    ((version, settings),) = by_version.items()
    return {
        "name": "solc",
        "version": f"{version.major}.{version.minor}.{version.micro}",
        "settings": {k: v for k, v in settings.items() if k != "outputSelection"},
    }


def contract_abi(contract_type: ContractType) -> list[dict[str, Any]]:
    return [a.model_dump(mode="json", by_alias=True, exclude_none=True) for a in contract_type.abi]


def print_plan(rows: list[tuple[str, object]]) -> None:
    for label, value in rows:
        click.echo(f"{label + ':':<16}{value}")


def check_deployed(instance: ContractInstance, admin: str, minter: str, ttl: int) -> None:
    """The contract the chain now holds is the one asked for; else no record is written."""
    problems = []
    if (owner := instance.owner()) != admin:
        problems.append(f"owner() is {owner}, not {admin}")
    if minter != ZERO_ADDRESS and not instance.hasAllRoles(minter, instance.MINTER_ROLE()):
        problems.append(f"{minter} does not hold MINTER_ROLE")
    if (default_ttl := instance.defaultTTL()) != ttl:
        problems.append(f"defaultTTL() is {default_ttl}, not {ttl}")
    if problems:
        raise DeployError(
            f"the contract at {instance.address} is not as requested: {'; '.join(problems)}; "
            "no record was written"
        )


@cli.command(cls=NetworkCommand)
@account_option()
@click.option("--admin", required=True, help="Owner of the contract (grants minters, sets URI).")
@click.option("--minter", required=True, help="First MINTER_ROLE holder: the backend's relayer.")
@click.option("--base-uri", required=True, help="Prefix of every tokenURI (usually ends in /).")
@click.option("--ttl", type=int, default=3600, show_default=True, help="Default lifetime, s.")
@click.option(
    "--confirmations",
    type=click.IntRange(min=0),
    default=None,
    help="Blocks to wait on top of the deployment [default: the network's "
    "required_confirmations; 0 on local].",
)
@yes_option
@out_dir_option
def deploy(
    provider: ProviderAPI,
    account: AccountAPI,
    admin: str,
    minter: str,
    base_uri: str,
    ttl: int,
    confirmations: int | None,
    skip_confirmation: bool,
    out_dir: Path | None,
) -> None:
    """Deploy the contract and write its deployment record."""
    ecosystem, network = provider.network.ecosystem.name, provider.network.name

    # 1. Inputs, chain, account: all checked before anything costs gas.
    try:
        admin = parse_address(admin, "--admin")
        minter = parse_address(minter, "--minter", allow_zero=True)
    except ValueError as err:
        raise DeployError(str(err)) from None
    if not 0 < ttl <= MAX_TTL:
        raise DeployError(f"--ttl: {ttl} is out of range (1 to {MAX_TTL} seconds)")
    if not base_uri.strip():
        raise DeployError("--base-uri: must not be empty")
    if confirmations is None:
        confirmations = int(provider.network.required_confirmations or 0)
    chain_id = check_chain(provider)
    check_account(provider, account)
    path = record_path(ecosystem, network, out_dir)
    container: ContractContainer = project.get_contract(CONTRACT_NAME)
    # The record's parts that do not come from the chain, so that they cannot fail after it.
    compiler, commit = compiler_info(container.contract_type), git_commit()
    abi = contract_abi(container.contract_type)

    # 2. Gas and cost. Estimating runs the constructor, so a reverting argument fails here.
    args = (admin, minter, base_uri, ttl)
    try:
        txn = container(*args, sender=account)
        txn.sender = account.address
        gas = provider.estimate_gas_cost(txn)
    except ContractLogicError as err:
        raise DeployError(f"the constructor would revert: {err}") from None
    gas_price, balance = provider.gas_price, account.balance
    replaces = ""
    if path.exists():
        try:
            replaces = f" (replaces the record of {load_record(path)['address']})"
        except RecordError:
            replaces = " (replaces an unreadable file)"
    print_plan(
        [
            ("Network", f"{network_name(provider)} (chain id {chain_id})"),
            ("RPC", redact_url(provider_uri(provider))),
            ("Deployer", f"{account.address} (balance {format_ether(balance)})"),
            ("Admin", admin),
            ("Minter", minter + (" (none: no one can mint)" if minter == ZERO_ADDRESS else "")),
            ("Base URI", base_uri),
            ("Default TTL", f"{ttl} s"),
            ("Confirmations", confirmations),
            ("Estimated gas", gas),
            ("Gas price", format_gwei(gas_price)),
            ("Estimated cost", format_ether(gas * gas_price)),
            ("Record", f"{path}{replaces}"),
        ]
    )
    if not base_uri.endswith("/"):
        click.echo("NOTE: the base URI does not end in '/'; tokenURI is base URI + id.", err=True)
    if getattr(provider, "process", None) is not None:
        click.echo(
            "NOTE: ape started this Anvil and stops it on exit, so the record will outlive the "
            "chain. Run anvil yourself and set APE_FOUNDRY_HOST to keep it (docs/DEPLOY.md).",
            err=True,
        )
    if balance < gas * gas_price:
        raise DeployError(
            f"insufficient funds: {account.address} holds {format_ether(balance)}, "
            f"the deployment needs about {format_ether(gas * gas_price)}"
        )

    # 3. A person says yes on live networks.
    question = f"Deploy {CONTRACT_NAME} to {network_name(provider)}?"
    confirm_or_abort(provider, question, skip_confirmation)

    # 4. Deploy, then wait for the confirmations here (see await_confirmations).
    instance = send(lambda: account.deploy(container, *args, required_confirmations=0))
    txn_hash = str(instance.txn_hash)
    address = to_checksum_address(instance.address)
    click.echo(f"{'Deployed:':<16}{address} (tx {txn_hash})")
    block_number = await_confirmations(provider, txn_hash, confirmations)

    # 5. Read back what the chain holds, check it, then write the whole record in one step.
    code = bytes(web3_of(provider).eth.get_code(address))
    if not code:
        raise DeployError(f"no code at {address} after the deployment; no record was written")
    check_deployed(instance, admin, minter, ttl)
    record = {
        "contract": CONTRACT_NAME,
        "address": address,
        "chain_id": chain_id,
        "ecosystem": ecosystem,
        "network": network,
        "block_number": block_number,
        "transaction_hash": txn_hash,
        "deployer": to_checksum_address(account.address),
        "admin": admin,
        "minter": minter,
        "base_uri": base_uri,
        "default_ttl": ttl,
        "compiler": compiler,
        "git_commit": commit,
        "runtime_code_hash": code_hash(code),
        "deployed_at": utc_now_iso(),
        "abi": abi,
    }
    try:
        write_record_atomic(path, record)
    except OSError as err:
        raise DeployError(
            f"could not write {path}: {err}; the contract IS deployed at {address} (tx {txn_hash})"
        ) from None
    click.echo(f"Record written: {path}")


# --------------------------------------------------------------------------- record-based


def open_deployment(
    provider: ProviderAPI, out_dir: Path | None
) -> tuple[dict[str, Any], ContractInstance]:
    """The record of the connected network and the live contract it names, with its own ABI."""
    path = record_path(provider.network.ecosystem.name, provider.network.name, out_dir)
    try:
        record = load_record(path)
    except RecordError as err:
        raise DeployError(str(err)) from None
    chain_id = check_chain(provider)
    if record["chain_id"] != chain_id:
        raise DeployError(
            f"{path} is for chain {record['chain_id']}, but the RPC serves chain {chain_id}"
        )
    contract = chain.contracts.instance_at(
        record["address"],
        contract_type=ContractType(contractName=record["contract"], abi=record["abi"]),
        fetch_from_explorer=False,
        detect_proxy=False,
    )
    return record, contract


def admin_transaction(
    provider: ProviderAPI,
    account: AccountAPI,
    out_dir: Path | None,
    yes: bool,
    describe: str,
    transact: Callable[[ContractInstance], Any],
    nothing_to_do: Callable[[ContractInstance], str | None] = lambda _: None,
) -> None:
    """The path shared by grant-minter, revoke-minter and set-base-uri."""
    record, contract = open_deployment(provider, out_dir)
    if problem := code_problem(web3_of(provider), record):
        raise DeployError(f"refusing to send: {problem}")
    if (owner := contract.owner()) != account.address:
        raise DeployError(
            f"{account.address} is not the admin of {contract.address}; the owner is {owner}"
        )
    if reason := nothing_to_do(contract):
        click.echo(f"Nothing to do: {reason}")
        return
    check_account(provider, account)
    click.echo(f"{describe} on {contract.address} ({network_name(provider)})")
    confirm_or_abort(provider, f"{describe}?", yes)
    receipt = send(lambda: transact(contract))
    click.echo(f"{'Transaction:':<16}{receipt.txn_hash}")
    await_confirmations(
        provider, str(receipt.txn_hash), int(provider.network.required_confirmations or 0)
    )
    click.echo("Done.")


def address_argument(value: str) -> str:
    try:
        return parse_address(value, "ADDRESS")
    except ValueError as err:
        raise DeployError(str(err)) from None


def admin_command(name: str) -> Callable[[F], F]:
    """A subcommand sent by the admin: --account, --yes, --out-dir, and ape's --network."""

    def decorate(f: F) -> F:
        for option in (out_dir_option, yes_option, account_option()):
            f = option(f)
        return cast(F, cli.command(name=name, cls=NetworkCommand)(f))

    return decorate


@admin_command("grant-minter")
@click.argument("address")
def grant_minter(
    provider: ProviderAPI,
    account: AccountAPI,
    address: str,
    skip_confirmation: bool,
    out_dir: Path | None,
) -> None:
    """Grant MINTER_ROLE to ADDRESS."""
    who = address_argument(address)
    admin_transaction(
        provider,
        account,
        out_dir,
        skip_confirmation,
        f"Grant MINTER_ROLE to {who}",
        lambda c: c.grantRoles(who, c.MINTER_ROLE(), sender=account, required_confirmations=0),
        lambda c: (
            f"{who} already holds MINTER_ROLE" if c.hasAllRoles(who, c.MINTER_ROLE()) else None
        ),
    )


@admin_command("revoke-minter")
@click.argument("address")
def revoke_minter(
    provider: ProviderAPI,
    account: AccountAPI,
    address: str,
    skip_confirmation: bool,
    out_dir: Path | None,
) -> None:
    """Revoke MINTER_ROLE from ADDRESS."""
    who = address_argument(address)
    admin_transaction(
        provider,
        account,
        out_dir,
        skip_confirmation,
        f"Revoke MINTER_ROLE from {who}",
        lambda c: c.revokeRoles(who, c.MINTER_ROLE(), sender=account, required_confirmations=0),
        lambda c: None if c.hasAnyRole(who, c.MINTER_ROLE()) else f"{who} holds no MINTER_ROLE",
    )


@admin_command("set-base-uri")
@click.argument("uri")
def set_base_uri(
    provider: ProviderAPI,
    account: AccountAPI,
    uri: str,
    skip_confirmation: bool,
    out_dir: Path | None,
) -> None:
    """Set the prefix of every tokenURI to URI."""
    if not uri.strip():
        raise DeployError("URI must not be empty")
    admin_transaction(
        provider,
        account,
        out_dir,
        skip_confirmation,
        f"Set the base URI to {uri}",
        lambda c: c.setBaseURI(uri, sender=account, required_confirmations=0),
    )


# --------------------------------------------------------------------------- show


@cli.command(cls=NetworkCommand)
@out_dir_option
def show(provider: ProviderAPI, out_dir: Path | None) -> None:
    """Print the deployment record beside the live contract's state.

    The base URI has no getter: the on-chain value is the last BaseURIUpdated event since the
    deployment, else the record's (constructor) value. Exits 1 when the live code does not hash
    to the record's runtime_code_hash, without reading the contract further.
    """
    record, contract = open_deployment(provider, out_dir)
    web3, address, since = web3_of(provider), record["address"], record["block_number"]
    click.echo(f"contract: {record['contract']}")
    click.echo(f"address: {address}")
    click.echo(f"network: {record['ecosystem']}:{record['network']}")
    click.echo(f"chain id: {record['chain_id']}")
    click.echo(f"deployed: block {since}, tx {record['transaction_hash']}")
    click.echo(f"deployed at: {record['deployed_at']} from commit {record['git_commit']}")
    if problem := code_problem(web3, record):
        click.echo(f"code hash: MISMATCH ({problem})")
        raise click.exceptions.Exit(1)

    owner = contract.owner()
    differs = "" if owner == record["admin"] else f" (the record says {record['admin']})"
    click.echo(f"admin (owner): {owner}{differs}")
    minter = record["minter"]
    if minter == ZERO_ADDRESS:
        click.echo(f"minter: {minter} (none recorded)")
    else:
        holds = "yes" if contract.hasAllRoles(minter, contract.MINTER_ROLE()) else "no"
        click.echo(f"minter: {minter} (holds MINTER_ROLE: {holds})")
    click.echo(f"base URI (record): {record['base_uri']}")
    if updates := get_logs(web3, address, [BASE_URI_UPDATED_TOPIC], since):
        (live_uri,) = abi_decode(["string"], bytes(updates[-1]["data"]))
        where = f"BaseURIUpdated in block {updates[-1]['blockNumber']}"
        click.echo(f"base URI (on-chain): {live_uri} ({where})")
    else:
        click.echo(f"base URI (on-chain): {record['base_uri']} (unchanged since deployment)")
    click.echo(f"default TTL: {contract.defaultTTL()} s")
    click.echo(f"total minted: {contract.totalMinted()}")
    burns = get_logs(web3, address, [TRANSFER_TOPIC, None, ZERO_TOPIC], since)
    click.echo(f"total burned: {len(burns)}")
    click.echo("code hash: OK")
