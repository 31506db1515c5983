"""Privacy, as a forensic examiner would check it: no trace of any plaintext anywhere.

A real backend process (debug logging on) runs a full workload whose prompts, images, audio
clips and echoed user ids carry unique marker strings: wallet and anonymous users create,
read, list, decrypt, persist and delete. Then every byte is scanned for every marker (raw,
hex, base64 at each alignment, UTF-16): the data folder (database, WAL and shared memory, free
pages included, and the key file), the process's stdout and stderr, and the whole chain
(every transaction input from ``eth_getBlockByNumber`` with full transactions, every event
from ``eth_getLogs``). Expect zero hits. A deleted payload's ciphertext and wrapped key must be
gone from the database files too; so must an expired one's (in-process, with a moved clock).
"""

from __future__ import annotations

import base64
import io
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from hardening_evidence import (
    chain_blobs,
    database_files,
    files_under,
    find_hits,
    read_db,
    settled,
    tiny_png,
    tiny_wav,
)
from hardening_support import (
    BackendProcess,
    address_of,
    backend_settings,
    figure,
    http_session,
    sign_in_http,
    wait_until,
)
from slt_harness import ANVIL_KEYS, Anvil, deploy, sign_text, siwe_message

EMOTION = "anxious"  # encrypted with the payload: must not show in clear either


def _marker(kind: str) -> bytes:
    return f"FORENSIC-{kind}-{secrets.token_hex(6)}".encode()


def _upload(
    http: requests.Session, base: str, headers: dict[str, str], data: bytes, name: str, ctype: str
) -> dict[str, Any]:
    resp = http.post(
        f"{base}/generate",
        files={"file": (name, data, ctype)},
        data={"emotion": EMOTION},
        headers=headers,
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


def _secret_bytes(db: Path, payload_id: str) -> list[bytes]:
    """Slices of the stored ciphertext and wrapped key, to look for after the shred."""
    with read_db(db) as conn:
        row = conn.execute(
            "SELECT wrapped_key, ciphertext, emotion_ct FROM secrets WHERE payload_id = ?",
            (payload_id,),
        ).fetchone()
    assert row is not None
    parts = [bytes(row["wrapped_key"])[12:40], bytes(row["ciphertext"])[12:60]]
    if row["emotion_ct"] is not None:
        parts.append(bytes(row["emotion_ct"])[12:30])
    return parts


def _present(needles: list[bytes], blobs: dict[str, bytes]) -> list[str]:
    return [f"{where}: {n.hex()[:16]}" for n in needles for where, b in blobs.items() if n in b]


def test_no_trace_of_any_plaintext_anywhere(anvil: Anvil, tmp_path: Path) -> None:
    record = deploy(anvil.url, tmp_path / "deployment.json")
    data = tmp_path / "var"
    db = data / "slt.sqlite3"
    backend = BackendProcess(
        backend_settings(
            data,
            anvil.url,
            tmp_path / "deployment.json",
            ANVIL_KEYS[1],
            SLT_LOG_LEVEL="DEBUG",
            SLT_RATE_LIMITS_ENABLED="0",
        ),  # fmt: skip
        tmp_path / "logs",
    )
    backend.start()
    markers: list[bytes] = []
    created: list[tuple[str, dict[str, str]]] = []  # (payload id, headers that open it)
    try:
        base = backend.url
        http = http_session()
        users = [sign_in_http(http, base, ANVIL_KEYS[2]), sign_in_http(http, base, ANVIL_KEYS[3]),
                 {}]  # fmt: skip
        for headers in users:
            for _ in range(2):
                text, image, audio, uid = (_marker(k) for k in ("TXT", "IMG", "AUD", "UID"))
                markers += [text, image, audio, uid]
                resp = http.post(
                    f"{base}/generate",
                    json={"prompt": f"my secret is {text.decode()}", "emotion": EMOTION,
                          "user_id": uid.decode()},
                    headers=headers,
                    timeout=30,
                )  # fmt: skip
                assert resp.status_code == 201, resp.text
                bodies = [
                    resp.json(),
                    _upload(http, base, headers, tiny_png(image), "a.png", "image/png"),
                    _upload(http, base, headers, tiny_wav(audio), "a.wav", "audio/wav"),
                ]
                for body in bodies:
                    opener = {"X-SLT-Secret": body["secret"]} if "secret" in body else headers
                    created.append((body["token"]["id"], opener))
        wait_until(lambda: settled(db, anvil.w3()), 120)
        opened = b""
        for payload_id, opener in created:
            assert http.get(f"{base}/tokens/{payload_id}", headers=opener, timeout=30).ok
            resp = http.post(f"{base}/tokens/{payload_id}/decrypt", headers=opener, timeout=30)
            assert resp.ok
            opened += resp.content
            assert http.get(f"{base}/tokens/{payload_id}/receipt", headers=opener, timeout=30).ok
        # Controls: the scanner finds a marker where one is (the owner's own decrypt answers,
        # in clear or base64), and the chain scan covers the mint transactions.
        assert len(find_hits(markers, {"decrypted": opened})) >= 3 * len(users) * 2
        first = http.get(f"{base}/tokens/{created[0][0]}", headers=created[0][1], timeout=30)
        commitment = bytes.fromhex(first.json()["chain"]["commitment"][2:])
        assert any(commitment in blob for blob in chain_blobs(anvil.w3()).values())
        for headers in users[:2]:
            assert http.get(f"{base}/tokens", headers=headers, timeout=30).ok
        anonymous = [(p, o) for p, o in created if "X-SLT-Secret" in o]
        persisted = http.post(f"{base}/tokens/{anonymous[0][0]}/persist", headers=anonymous[0][1],
                              timeout=30)  # fmt: skip
        assert persisted.status_code == 202, persisted.text

        # Delete every other payload; remember its stored bytes first.
        doomed = created[1::2]
        leftovers: list[bytes] = []
        for payload_id, _ in doomed:
            leftovers += _secret_bytes(db, payload_id)
        assert _present(leftovers, database_files(db))  # control: found while stored
        for payload_id, opener in doomed:
            assert http.delete(f"{base}/tokens/{payload_id}", headers=opener, timeout=30).ok
        wait_until(lambda: settled(db, anvil.w3()), 120)
        # The sweeper checkpoints the WAL after a shred: then no page image is left anywhere.
        wait_until(lambda: not _present(leftovers, database_files(db)), 30)
        live_scan = {**files_under(data), **backend.logs(), **chain_blobs(anvil.w3())}
        live_hits = find_hits(markers + [EMOTION.encode()], live_scan)
    finally:
        backend.stop()

    # After the process is gone, the same files again (and its complete logs).
    logs = backend.logs()
    assert len(logs) == 2 and all(logs.values())  # stdout and stderr were written to
    final_scan = {**files_under(data), **logs, **chain_blobs(anvil.w3())}
    final_hits = find_hits(markers + [EMOTION.encode()], final_scan)
    # Credentials too: session tokens and anonymous secrets are kept only as hashes.
    credentials = [h["Authorization"].split()[1].encode() for h in users if h]
    credentials += [o["X-SLT-Secret"].encode() for _, o in created if "X-SLT-Secret" in o]
    credential_hits = find_hits(credentials, final_scan)
    leftover_hits = _present(leftovers, database_files(db))
    with read_db(db) as conn:
        shredded = conn.execute("SELECT COUNT(*) FROM payloads WHERE shredded_at IS NOT NULL")
        n_shredded = shredded.fetchone()[0]
        n_secrets = conn.execute("SELECT COUNT(*) FROM secrets").fetchone()[0]
    figure(
        "forensics",
        markers=len(markers),
        payloads=len(created),
        deleted=len(doomed),
        bytes_scanned=sum(len(b) for b in final_scan.values()),
        places_scanned=len(final_scan),
        chain_blocks=sum(1 for k in final_scan if k.startswith("block")),
        hits_while_running=len(live_hits),
        hits_after_stop=len(final_hits),
        deleted_ciphertext_hits=len(leftover_hits),
        credentials=len(credentials),
        credential_hits=len(credential_hits),
    )
    assert not live_hits, live_hits[:10]
    assert not final_hits, final_hits[:10]
    assert not leftover_hits, leftover_hits[:10]
    assert not credential_hits, credential_hits[:10]
    assert n_shredded == len(doomed) and n_secrets == len(created) - len(doomed)
    assert record["address"]


def test_expired_payload_bytes_leave_the_database(
    make_app: Callable[..., Flask], clock: Any
) -> None:
    app = make_app(sweep_interval=0.2)
    client = app.test_client()
    nonce = client.get("/auth/nonce").get_json()
    message = siwe_message(address_of(ANVIL_KEYS[2]), nonce)
    token = client.post(
        "/auth/verify", json={"message": message, "signature": sign_text(ANVIL_KEYS[2], message)}
    ).get_json()["token"]
    alice = {"Authorization": f"Bearer {token}"}
    marker = _marker("EXP")
    text = client.post(
        "/generate", json={"prompt": marker.decode(), "ttl_seconds": 60}, headers=alice
    )
    image = client.post(
        "/generate",
        data={"file": (io.BytesIO(tiny_png(marker)), "a.png", "image/png"), "ttl_seconds": "60"},
        headers=alice,
        content_type="multipart/form-data",
    )
    ids = [text.get_json()["token"]["id"], image.get_json()["token"]["id"]]
    store = app.extensions["slt"].store
    db = Path(store.path)
    wait_until(lambda: all(store.get_payload(i).chain_token_id is not None for i in ids), 60)
    leftovers = [b for i in ids for b in _secret_bytes(db, i)]
    assert not _present([base64.b64encode(b) for b in leftovers], database_files(db))
    clock.advance(61)
    began = time.monotonic()
    wait_until(lambda: all(store.get_payload(i).status == "expired" for i in ids), 30)
    wait_until(lambda: not _present(leftovers, database_files(db)), 30)
    gone_after = time.monotonic() - began
    wait_until(lambda: all(store.get_payload(i).burn_status == "burned" for i in ids), 60)
    assert all(store.get_secret(i) is None for i in ids)
    assert not find_hits([marker], database_files(db))
    figure("forensics", expired_bytes_gone_s=round(gone_after, 2), expired_payloads=len(ids))
