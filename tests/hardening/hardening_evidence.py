"""What the forensic examiner and the auditor read: markers, files, the chain, the database.

Marker samples (a PNG and a WAV that carry a marker), every form a marker could take in a file
or a log, scans of folders, database files and the whole chain, what the contract's events say
(minted, burned, commitments), the database read from outside the backend, and the audit of a
load run's promises against the store and the chain.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardening_support import Ledger
from slt_harness import tiny_png, tiny_wav  # noqa: F401 (re-exported for the tests)
from web3 import Web3
from web3.types import RPCEndpoint

from backend.store import open_jobs

# Payload samples with markers --------------------------------------------------------------------


def marker_forms(marker: bytes) -> list[bytes]:
    """Ways a marker could show up in a file or a log: raw, hex, base64 (3 alignments), UTF-16."""
    forms = [marker, marker.hex().encode(), marker.decode("latin-1").encode("utf-16-le")]
    for shift in range(3):
        # Marker bytes at offset `shift` of a 3-byte group: keep only the base64 groups made
        # of marker bytes alone, which read the same whatever surrounds the marker.
        encoded = base64.b64encode(b"\x00" * shift + marker)
        start = 4 if shift else 0
        end = 4 * ((shift + len(marker)) // 3)
        forms.append(encoded[start:end])
    return forms


def find_hits(markers: Iterable[bytes], blobs: dict[str, bytes]) -> list[tuple[str, str]]:
    """(where, marker) for every marker form found in any blob."""
    hits = []
    for marker in markers:
        for form in marker_forms(marker):
            for where, blob in blobs.items():
                if form in blob:
                    hits.append((where, marker.decode("latin-1")))
    return hits


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def database_files(db: Path) -> dict[str, bytes]:
    """The database, its WAL and its shared-memory index, raw (free pages included)."""
    out = {}
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-journal")):
        if p.exists():
            out[str(p)] = p.read_bytes()
    return out


# The chain -----------------------------------------------------------------------------------

TOPIC_TRANSFER = "0x" + Web3.keccak(text="Transfer(address,address,uint256)").hex()
TOPIC_COMMITMENT = "0x" + Web3.keccak(text="CommitmentPublished(uint256,bytes32)").hex()
ZERO_TOPIC = "0x" + "00" * 32


def chain_blobs(w3: Web3) -> dict[str, bytes]:
    """Every transaction input and every event log of the chain, as a forensic examiner sees it.

    Read with ``eth_getBlockByNumber`` (full transactions) for each block and ``eth_getLogs``
    over the whole chain, for every address.
    """
    out: dict[str, bytes] = {}
    head = int(w3.eth.block_number)
    for n in range(head + 1):
        block = w3.provider.make_request(RPCEndpoint("eth_getBlockByNumber"), [hex(n), True])[
            "result"
        ]
        parts = [bytes.fromhex(str(block.get("extraData", "0x"))[2:])]
        for tx in block["transactions"]:
            parts.append(bytes.fromhex(str(tx["input"])[2:]))
        out[f"block {n}"] = b"".join(parts)
    logs = w3.provider.make_request(
        RPCEndpoint("eth_getLogs"), [{"fromBlock": "0x0", "toBlock": hex(head)}]
    )["result"]
    out["logs"] = b"".join(
        bytes.fromhex(str(log["data"])[2:])
        + b"".join(bytes.fromhex(str(t)[2:]) for t in log["topics"])
        for log in logs
    )
    return out


@dataclass
class ChainView:
    """What the contract's events say: minted tokens, their commitments, burned tokens."""

    commitments: dict[int, bytes] = field(default_factory=dict)  # token id -> commitment
    events_per_commitment: dict[bytes, int] = field(default_factory=dict)
    burned: set[int] = field(default_factory=set)
    minted: set[int] = field(default_factory=set)

    @property
    def live(self) -> set[int]:
        return self.minted - self.burned


def chain_view(w3: Web3, contract: str, from_block: int = 0) -> ChainView:
    view = ChainView()
    logs = w3.eth.get_logs(
        {"address": Web3.to_checksum_address(contract), "fromBlock": from_block,
         "toBlock": "latest"}
    )  # fmt: skip
    for log in logs:
        topics = ["0x" + bytes(t).hex() for t in log["topics"]]
        if topics[0] == TOPIC_COMMITMENT:
            token_id, commitment = int(topics[1], 16), bytes.fromhex(topics[2][2:])
            view.commitments[token_id] = commitment
            view.events_per_commitment[commitment] = (
                view.events_per_commitment.get(commitment, 0) + 1
            )
        elif topics[0] == TOPIC_TRANSFER:
            token_id = int(topics[3], 16)
            if topics[1] == ZERO_TOPIC:
                view.minted.add(token_id)
            if topics[2] == ZERO_TOPIC:
                view.burned.add(token_id)
    return view


# The database, read from outside the backend -------------------------------------------------


@contextmanager
def read_db(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection (WAL readers never block the backend's writers)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        yield db
    finally:
        db.close()


def outbox_open(path: Path) -> int:
    """How many chain jobs still wait (pending or sent, new payloads' mints included)."""
    with read_db(path) as db:
        return open_jobs(db)


def settled(path: Path, w3: Web3) -> bool:
    """Nothing left to send, and the event follower has read the chain up to its head.

    Both are needed: a mined transaction closes its outbox jobs, and its events (token ids,
    burns) reach the store through the follower.
    """
    if outbox_open(path):
        return False
    head = int(w3.eth.block_number)
    with read_db(path) as db:
        row = db.execute("SELECT value FROM kv WHERE key = 'follower_block'").fetchone()
    return row is not None and int(row[0]) >= head


def audit(
    ledger: Ledger, rows: dict[str, dict[str, Any]], secrets: set[str], view: ChainView
) -> list[str]:
    """Every promise made to a client and every store/chain invariant; returns what broke."""
    problems = []
    by_commitment = {bytes(r["commitment"]): r for r in rows.values()}
    for commitment, n in view.events_per_commitment.items():
        if n != 1:
            problems.append(f"commitment {commitment.hex()[:16]} published {n} times")
    for token_id, commitment in view.commitments.items():
        row = by_commitment.get(commitment)
        if row is None:
            problems.append(f"token {token_id}: its commitment is unknown to the store")
            continue
        if row["chain_token_id"] != token_id:
            problems.append(f"token {token_id}: the store says {row['chain_token_id']}")
        if token_id in view.live and (row["id"] not in secrets or row["shredded_at"]):
            problems.append(f"token {token_id} is live on chain but its data is gone")
        if token_id not in view.live and row["id"] in secrets:
            problems.append(f"token {token_id} is burned but {row['id']} still has data")
    for payload_id, row in rows.items():
        has_data = payload_id in secrets
        if has_data and row["shredded_at"] is not None:
            problems.append(f"{payload_id}: shredded but its secret row is still there")
        if has_data and row["chain_token_id"] not in view.live:
            problems.append(f"{payload_id}: stored data without a live token")
        if row["shredded_at"] is not None and row["chain_token_id"] is None:
            if bytes(row["commitment"]) in view.events_per_commitment:
                problems.append(f"{payload_id}: minted on chain but the store never saw it")
            if row["burn_status"] != "not_minted":
                problems.append(f"{payload_id}: never minted, burn status {row['burn_status']}")
    for payload_id, promised in ledger.created.items():
        row = rows.get(payload_id)
        if row is None:
            problems.append(f"{payload_id}: answered 201 but not stored")
            continue
        if "0x" + bytes(row["commitment"]).hex() != promised["commitment"]:
            problems.append(f"{payload_id}: stored under another commitment")
        if row["shredded_at"] is None:
            if row["chain_token_id"] not in view.live or payload_id not in secrets:
                problems.append(f"{payload_id}: answered 201, live, but not minted with data")
        elif payload_id not in ledger.delete_attempts:
            problems.append(f"{payload_id}: shredded though nobody asked ({row['shred_reason']})")
    for payload_id in ledger.deleted:
        row = rows[payload_id]
        if row["shredded_at"] is None or payload_id in secrets:
            problems.append(f"{payload_id}: delete answered 200 but not shredded")
        token_id = row["chain_token_id"]
        if token_id is not None and token_id not in view.burned:
            problems.append(f"{payload_id}: delete answered 200 but token {token_id} not burned")
    return problems
