"""Crypto-shredding latency: an API delete, the WAL checkpoint after it, and a wallet burn.

Against the backend under gunicorn (2 workers) with ``python -m backend worker`` beside it, the
production layout, and Anvil with 1 s blocks; the deletes also against `make run`'s layout (the
chain worker's threads inside the gunicorn workers), alternating with the first:

- ``DELETE /tokens/<id>`` of minted payloads, one at a time, anonymous (``X-SLT-Secret``) and
  wallet-owned (SIWE session; the server asks the chain for ``ownerOf`` first). The round trip
  bounds the time to shred: the secret row is deleted before the answer, and is checked gone.
- *Gone from every file*: after a delete, the database and WAL files are read until no copy of
  the payload's wrapped key is left in either (the sweeper checkpoints after a shred).
- *Wallet burn*: the owner's wallet sends ``burn(tokenId)`` straight to the chain; the time runs
  from the broadcast (and from the moment its receipt is seen) until the store shows the payload
  shredded.
"""

from __future__ import annotations

import functools
import time
from contextlib import closing
from pathlib import Path

from eth_account import Account
from web3.exceptions import TransactionNotFound

from .common import (
    ANVIL_KEYS,
    LOOPBACK,
    THREADS_RELAYER,
    Options,
    Redo,
    Row,
    Stack,
    fmt_time,
    free_port,
    http_json,
    pct,
    reader,
    stack,
    wait_until,
)

ALICE = ANVIL_KEYS[2]


def _sign_in(base: str, key: str) -> dict[str, str]:
    from slt_harness import sign_text, siwe_message

    _, nonce = http_json("GET", f"{base}/auth/nonce")
    message = siwe_message(Account.from_key(key).address, nonce)
    status, body = http_json(
        "POST", f"{base}/auth/verify", {"message": message, "signature": sign_text(key, message)}
    )
    assert status == 200, body
    return {"Authorization": f"Bearer {body['token']}"}


def _create(base: str, headers: dict[str, str] | None, n: int) -> list[tuple[str, dict[str, str]]]:
    out = []
    for i in range(n):
        status, body = http_json(
            "POST", f"{base}/generate", {"prompt": f"bench shred {i}", "emotion": "sad"}, headers
        )
        assert status == 201, body
        h = dict(headers or {})
        if "secret" in body:
            h["X-SLT-Secret"] = body["secret"]
        out.append((body["token"]["id"], h))
    return out


def _minted(db_path: Path, ids: list[str]) -> dict[str, int]:
    with closing(reader(db_path)) as db:
        marks = ",".join("?" * len(ids))
        rows = db.execute(
            f"SELECT id, chain_token_id FROM payloads WHERE id IN ({marks})"
            " AND chain_token_id IS NOT NULL",
            ids,
        ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def _wrapped_key(st: Stack, payload_id: str) -> bytes:
    with st.reader() as db:
        row = db.execute("SELECT wrapped_key FROM secrets WHERE payload_id = ?", (payload_id,))
        return bytes(row.fetchone()[0])


def _secret_gone(db_path: Path, payload_id: str) -> bool:
    with closing(reader(db_path)) as db:
        row = db.execute("SELECT 1 FROM secrets WHERE payload_id = ?", (payload_id,)).fetchone()
    return row is None


def _in_files(st: Stack, needle: bytes) -> bool:
    for suffix in ("", "-wal"):
        path = st.db_path.with_name(st.db_path.name + suffix)
        try:
            if needle in path.read_bytes():
                return True
        except FileNotFoundError:
            pass
    return False


def _gone_from_files(st: Stack, needle: bytes) -> bool:
    return not _in_files(st, needle)


LAYOUTS = ("ours", "threads")


def run(opts: Options) -> list[Row]:
    n_delete = opts.pick(150, 10)
    # Deletes go in rounds of `chunk`; a round the host disturbed is set aside (see Redo) and the
    # next payloads deleted instead: `spare` more of each kind are made for it.
    chunk = opts.pick(25, 10)
    spare = opts.pick(3 * 25, 0)
    n_files = opts.pick(5, 2)
    n_burn = opts.pick(10, 2)
    with stack(opts, "shred") as st:
        # "ours": the production layout, API processes without worker threads and
        # `python -m backend worker` beside them (as in the http benchmark). "threads": the chain
        # worker's threads inside the gunicorn workers (`make run`'s layout), on a store and
        # with a relayer of its own.
        threads_env = st.own_store("threads", SLT_RELAYER_KEY=THREADS_RELAYER)
        st.grant_minter(THREADS_RELAYER)
        ports = {k: free_port() for k in LAYOUTS}
        st.gunicorn("bench.wsgi:app", ports["ours"], SLT_RUN_WORKERS="0")
        st.worker()
        st.gunicorn("bench.wsgi:app", ports["threads"], None, **threads_env)
        dbs = {"ours": st.db_path, "threads": Path(threads_env["SLT_DATA_DIR"]) / "slt.sqlite3"}
        bases = {k: f"http://{LOOPBACK}:{p}" for k, p in ports.items()}
        opts.log("  shred: creating and minting payloads")
        anon, mine = {}, {}
        for k in LAYOUTS:
            alice = _sign_in(bases[k], ALICE)
            extra = k == "ours"  # the on-disk and wallet-burn checks run on ours only
            anon[k] = _create(bases[k], None, n_delete + spare + (n_files if extra else 0))
            mine[k] = _create(bases[k], alice, n_delete + spare + (n_burn if extra else 0))
        for k in LAYOUTS:
            ids = [p for p, _ in anon[k] + mine[k]]
            wait_until(lambda: len(_minted(dbs[k], ids)) == len(ids), timeout=120, step=0.2)  # noqa: B023
        token_ids = _minted(dbs["ours"], [p for p, _ in mine["ours"]])

        # What the wallet path spends asking the chain: the server's own ownerOf call.
        app = st.app()
        chain = app.extensions["slt"].chain

        def owner_of_each() -> list[float]:
            out = []
            for p, _ in mine["ours"][:n_delete]:
                t0 = time.perf_counter()
                assert chain.owner_of(token_ids[p]) is not None
                out.append(time.perf_counter() - t0)
            return out

        owner_of, _ = Redo(opts, opts.pick(2, 0)).undisturbed(owner_of_each, "shred: ownerOf")
        app.extensions["slt"].store.close()

        # 1. DELETE, one at a time: anonymous and wallet-owned, on each layout in turn.
        starts = iter(range(0, n_delete + spare, chunk))

        def delete_round() -> dict[str, dict[str, list[float]]]:
            start = next(starts)
            out: dict[str, dict[str, list[float]]] = {
                k: {"anonymous": [], "wallet": []} for k in LAYOUTS
            }
            for i in range(start, start + chunk):
                for k in LAYOUTS:
                    for payload_id, headers in (anon[k][i], mine[k][i]):
                        kind = "wallet" if "Authorization" in headers else "anonymous"
                        t0 = time.perf_counter()
                        status, body = http_json(
                            "DELETE", f"{bases[k]}/tokens/{payload_id}", None, headers
                        )
                        out[k][kind].append(time.perf_counter() - t0)
                        assert status == 200, body
                        assert _secret_gone(dbs[k], payload_id), payload_id
            return out

        lat: dict[str, dict[str, list[float]]] = {
            k: {"anonymous": [], "wallet": []} for k in LAYOUTS
        }
        redo = Redo(opts, spare // chunk)  # as many rounds as there are spare payloads for
        steals = []
        while len(lat["ours"]["wallet"]) < n_delete:
            part, steal = redo.undisturbed(delete_round, "shred: a round of deletes")
            steals.append(steal)
            for k in LAYOUTS:
                for kind, values in part[k].items():
                    lat[k][kind] += values
        steal_note = redo.note([x for x in steals if x is not None], "rounds of deletes")

        # 2. Until no copy of the wrapped key is left in the database or WAL file.
        files: list[float] = []
        for payload_id, headers in anon["ours"][n_delete + spare :]:
            needle = _wrapped_key(st, payload_id)
            assert _in_files(st, needle)
            t0 = time.perf_counter()
            status, _ = http_json("DELETE", f"{bases['ours']}/tokens/{payload_id}", None, headers)
            assert status == 200
            wait_until(functools.partial(_gone_from_files, st, needle), timeout=30, step=0.02)
            files.append(time.perf_counter() - t0)

        # 3. The owner burns from their wallet; the follower (in the worker process) shreds.
        tail = mine["ours"][n_delete + spare :]
        burns = _wallet_burns(st, [(p, token_ids[p]) for p, _ in tail])

    return _rows(lat, files, burns, owner_of, steal_note)


def _wallet_burns(st: Stack, tokens: list[tuple[str, int]]) -> list[dict[str, float]]:
    w3 = st.anvil.w3()
    contract = w3.eth.contract(address=st.record["address"], abi=st.record["abi"])
    account = Account.from_key(ALICE)
    out = []
    with st.reader() as db:  # one connection: each query reads the latest commit
        for payload_id, token_id in tokens:
            tx = contract.functions.burn(token_id).build_transaction(
                {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address)}
            )
            signed = account.sign_transaction(tx)
            t0 = time.perf_counter()
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
            seen = shredded = None
            deadline = t0 + 15
            while (seen is None or shredded is None) and time.perf_counter() < deadline:
                now = time.perf_counter()
                if seen is None:
                    try:
                        w3.eth.get_transaction_receipt(tx_hash)
                        seen = now
                    except TransactionNotFound:
                        pass
                if shredded is None:
                    [(shredded_at,)] = db.execute(  # (fetchall: the read ends here)
                        "SELECT shredded_at FROM payloads WHERE id = ?", (payload_id,)
                    ).fetchall()
                    if shredded_at is not None:
                        shredded = now
                time.sleep(0.01)
            if seen is None or shredded is None:
                raise RuntimeError(f"burn of token {token_id} not seen or not shredded in 15 s")
            out.append({"from_broadcast": shredded - t0, "from_receipt": max(0.0, shredded - seen)})
    return out


def _rows(
    lat: dict[str, dict[str, list[float]]],
    files: list[float],
    burns: list[dict[str, float]],
    owner_of: list[float],
    steal_note: str,
) -> list[Row]:
    rows = []
    for kind, values in lat["ours"].items():
        p99 = pct(values, 99)
        data: dict[str, object] = {"seconds": values}
        baseline = "—"
        if kind == "wallet":
            baseline = f"ownerOf alone: p50 {fmt_time(pct(owner_of, 50))}"
            data["owner_of_seconds"] = owner_of
            data["note"] = (
                f"shred, wallet DELETE: before it shreds, the server asks the chain who owns the"
                f" token (Chain.owner_of through web3, measured on the same tokens before the"
                f" deletes): that call alone takes p50 {fmt_time(pct(owner_of, 50))}, p99"
                f" {fmt_time(pct(owner_of, 99))} here. {steal_note}"
            )
        rows.append(
            Row(
                "shred",
                f"DELETE → key shredded ({kind}, {len(values)} deletes, one at a time),"
                " gunicorn -w 2 + `python -m backend worker`",
                f"p50 {fmt_time(pct(values, 50))}, p99 {fmt_time(p99)}",
                baseline,
                f"max {fmt_time(max(values))}",
                "p99 ≤ 10 ms",
                p99 <= 0.010,
                data,
            )
        )
    threads = lat["threads"]
    rows.append(
        Row(
            "shred",
            "… the same, chain worker threads inside the gunicorn workers (`make run`'s layout)",
            "; ".join(
                f"{kind} p50 {fmt_time(pct(v, 50))}, p99 {fmt_time(pct(v, 99))}"
                for kind, v in threads.items()
            ),
            data={
                "seconds": threads,
                "note": (
                    "shred, layouts: the deletes alternate between the two servers; in `make"
                    " run`'s layout the chain worker sending the burns of the tokens just deleted"
                    " runs in the same processes as the requests, and shares their GIL."
                ),
            },
        )
    )
    rows.append(
        Row(
            "shred",
            "DELETE → no copy of the wrapped key in the DB or WAL file",
            f"median {fmt_time(pct(files, 50))}, max {fmt_time(max(files))}",
            data={
                "seconds": files,
                "note": (
                    "shred, on disk: the row is gone from SQLite at once (secure_delete zeroes"
                    " its page), but the page's old image stays in the database file until the"
                    " next checkpoint folds the zeroed page in (SLT_CHECKPOINT_INTERVAL, 0.1 s),"
                    " and in the WAL until the sweeper truncates it (SLT_SWEEP_INTERVAL, 1 s)."
                ),
            },
        )
    )
    b = [x["from_broadcast"] for x in burns]
    r = [x["from_receipt"] for x in burns]
    rows.append(
        Row(
            "shred",
            f"wallet burn → shredded ({len(burns)} burns)",
            f"from broadcast: median {fmt_time(pct(b, 50))}, max {fmt_time(max(b))}",
            f"from receipt seen: median {fmt_time(pct(r, 50))}, max {fmt_time(max(r))}",
            "—",
            "≤ 2 s",
            max(b) <= 2.0,
            {"burns": burns},
        )
    )
    return rows
