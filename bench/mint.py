"""Tokens minted per second on Anvil (1 s blocks), beside the chain's own ceiling.

The store is filled with more due mints than the run can send, then ``python -m backend worker``
(the outbox, the follower and the sweeper, with the default settings) mints them. The rate is
the growth of ``totalMinted()`` between two blocks after a warm-up; the ceiling is the block gas
limit ÷ the gas per token of the very blocks measured, times the blocks per second.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

from backend.chain import MintRequest
from backend.payloads import text_plaintext
from backend.store import NEW_MINTS_SQL

from .common import Options, Row, Stack, fmt_time, median, rss_bytes, stack

PROMPT = "How do I say no to a meeting without sounding rude? " * 4
WALLETS = 500


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _gas_per_token_estimate(st: Stack, chain: Any) -> float:
    """Gas of a mintBatch of 100 (estimated, not sent) ÷ 100: only to size the backlog.

    All 100 to one owner, the cheapest case: a lower bound, so the backlog is sized for the
    fastest the chain could possibly mint and never runs dry.
    """
    now = int(time.time())
    owner = chain.relayer_address
    reqs = [MintRequest(owner, now + 3600, True, secrets.token_bytes(32)) for _ in range(100)]
    args = [(chain.w3.to_checksum_address(r.to), r.end_time, r.switchable, r.commitment)
            for r in reqs]  # fmt: skip
    fn = chain.contract.functions.mintBatch(args)
    return int(fn.estimate_gas({"from": chain.relayer_address})) / 100


def _fill(st: Stack, count: int, opts: Options) -> None:
    app = st.app()
    try:
        vault = app.extensions["slt"].vault
        wallets = ["0x" + secrets.token_hex(20) for _ in range(WALLETS)]
        plain = text_plaintext(PROMPT, "curious")
        t0 = time.monotonic()
        for i in range(count):
            owner = None if i % 2 == 0 else wallets[i % WALLETS]
            vault.create(plain, owner, 3600, True)
        opts.log(f"  mint: stored {count:,} payloads in {time.monotonic() - t0:.1f} s")
    finally:
        app.extensions["slt"].store.close()


def run(opts: Options) -> list[Row]:
    seconds = opts.pick(60, 5)
    warmup = opts.pick(10, 3)
    with stack(opts, "mint") as st:
        w3 = st.anvil.w3()
        contract = w3.eth.contract(address=st.record["address"], abi=st.record["abi"])
        app = st.app()
        gas_limit = int(w3.eth.get_block("latest")["gasLimit"])
        gpt_guess = _gas_per_token_estimate(st, app.extensions["slt"].chain)
        app.extensions["slt"].store.close()
        # Enough for the ceiling over the whole run, so the backlog never runs dry.
        backlog = int(gas_limit / gpt_guess * (seconds + warmup + opts.pick(15, 3)) * 1.1)
        _fill(st, backlog, opts)

        worker = st.worker()
        t_first = None
        deadline = time.monotonic() + 120
        while t_first is None and time.monotonic() < deadline:
            if int(contract.functions.totalMinted().call()) > 0:
                t_first = time.monotonic()
            time.sleep(0.1)
        if t_first is None:
            raise RuntimeError("the worker minted nothing in 120 s (see worker.log)")
        time.sleep(warmup)

        def snapshot() -> dict[str, Any]:
            block = w3.eth.get_block("latest")
            number = int(block["number"])
            with st.reader() as db:
                confirmed = db.execute(
                    "SELECT COUNT(*) FROM payloads WHERE chain_token_id IS NOT NULL"
                ).fetchone()[0]
                left = db.execute(
                    "SELECT (SELECT COUNT(*) FROM outbox WHERE kind = 'mint' AND state = 'pending')"
                    f" + ({NEW_MINTS_SQL})"
                ).fetchone()[0]
            return {
                "t": time.monotonic(),
                "block": number,
                "minted": int(contract.functions.totalMinted().call(block_identifier=number)),
                "confirmed": int(confirmed),
                "pending": int(left),
                "cpu": _cpu_seconds(worker.pid),
                "anvil_cpu": _cpu_seconds(st.anvil.proc.pid) if st.anvil.proc else 0.0,
            }

        snaps = [snapshot()]
        end = snaps[0]["t"] + seconds
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            snaps.append(snapshot())
            if snaps[-1]["pending"] == 0:
                break
        worker_rss = rss_bytes(worker.pid)
        first, last = snaps[0], snaps[-1]
        gas = sum(
            int(w3.eth.get_block(b)["gasUsed"])
            for b in range(first["block"] + 1, last["block"] + 1)
        )
        errors = (st.workdir / "worker.log").read_text(errors="replace").count("ERROR")
    return _rows(snaps, gas, gas_limit, worker_rss, errors, backlog)


def _rows(
    snaps: list[dict[str, Any]],
    gas: int,
    gas_limit: int,
    worker_rss: int,
    errors: int,
    backlog: int,
) -> list[Row]:
    first, last = snaps[0], snaps[-1]
    dt = last["t"] - first["t"]
    tokens = last["minted"] - first["minted"]
    rate = tokens / dt
    confirmed_rate = (last["confirmed"] - first["confirmed"]) / dt
    blocks = last["block"] - first["block"]
    blocks_per_s = blocks / dt
    gas_per_token = gas / tokens if tokens else float("nan")
    ceiling = gas_limit / gas_per_token * blocks_per_s
    share = rate / ceiling
    # The slowest 10 s stretch of the window ("sustained"), from the 1 s snapshots.
    tens = []
    for i, a in enumerate(snaps):
        for b in snaps[i + 1 :]:
            if b["t"] - a["t"] >= 10:
                tens.append((b["minted"] - a["minted"]) / (b["t"] - a["t"]))
                break
    cpu_per_token = (last["cpu"] - first["cpu"]) / max(tokens, 1)
    anvil_per_token = (last["anvil_cpu"] - first["anvil_cpu"]) / max(tokens, 1)
    ran_dry = last["pending"] == 0
    met = (rate >= 300 or share >= 0.8) and not ran_dry
    note = (
        f"mint: {tokens:,} tokens in {blocks} blocks over {dt:.0f} s ({blocks_per_s:.2f} blocks/s),"
        f" {gas_per_token:,.0f} gas per token (mintBatch, half to the custody wallet, half"
        f" spread over {WALLETS} wallets); the worker process used {fmt_time(cpu_per_token)} of"
        f" CPU per token and Anvil {fmt_time(anvil_per_token)}; worker RSS"
        f" {worker_rss / (1 << 20):.0f} MiB; {errors} error line(s) in its log; backlog"
        f" {backlog:,} payloads{' — it RAN DRY, so the rate is a lower bound' if ran_dry else ''}."
    )
    return [
        Row(
            "mint",
            f"tokens minted per second on Anvil, 1 s blocks, {dt:.0f} s sustained",
            f"{rate:,.0f}/s on chain; {confirmed_rate:,.0f}/s confirmed in the store",
            f"ceiling {ceiling:,.0f}/s (gas limit {gas_limit:,} ÷ {gas_per_token:,.0f})",
            f"{share:.0%} of the ceiling; slowest 10 s: {min(tens) if tens else rate:,.0f}/s",
            "≥ 300/s, or ≥ 80% of the ceiling",
            met,
            {
                "rate": rate,
                "confirmed_rate": confirmed_rate,
                "ceiling": ceiling,
                "gas_per_token": gas_per_token,
                "gas_limit": gas_limit,
                "blocks_per_s": blocks_per_s,
                "slowest_10s": min(tens) if tens else None,
                "median_10s": median(tens) if tens else None,
                "worker_cpu_s_per_token": cpu_per_token,
                "anvil_cpu_s_per_token": anvil_per_token,
                "worker_rss": worker_rss,
                "snapshots": snaps,
                "note": note,
            },
        )
    ]
