"""Envelope encryption against Fernet (the original app's cipher) and raw AES-GCM.

*Ours* is what the vault does per payload, through the same call (``KeyRing.seal``): a fresh
random data key, AES-256-GCM over the payload with the payload's associated data, and the data
key wrapped by the current master key under a fresh nonce; decrypting (``KeyRing.open``)
unwraps and opens. The associated data is an input, as it is to Fernet's caller its token; the
vault-path row adds building it, the emotion part and the commitment. *Fernet* is one
``Fernet`` object with a fixed key, as the original app used it. *Raw AES-GCM* is one ``AESGCM``
object with a fixed key and a fresh nonce per call: the primitive alone, no key per payload, no
wrap, no nonce framing.

The three are interleaved: each round times a batch of each, in a rotating order, and the figure
is the median over rounds of the time per operation (the garbage collector off while timing).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from typing import Any

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backend.crypto import KeyRing, aad_prefix, associated_data, commitment

from .common import Options, Row, fmt_time, median, pct

SIZES = {"1 KiB": 1024, "64 KiB": 64 * 1024, "1 MiB": 1024 * 1024}
CHAIN_ID = 31337
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
PAYLOAD_ID = "token_" + "ab" * 16
AAD_CONTENT = associated_data(PAYLOAD_ID, CHAIN_ID, CONTRACT, "content")
AAD_KEY = associated_data(PAYLOAD_ID, CHAIN_ID, CONTRACT, "key")

Op = Callable[[], Any]


def _impls(plain: bytes, pool: int) -> tuple[dict[str, Op], dict[str, Op], dict[str, Op]]:
    """(encrypt ops, decrypt ops, vault-path ops) for one payload size."""
    ring = KeyRing({1: os.urandom(32)}, 1)
    fernet = Fernet(Fernet.generate_key())
    raw = AESGCM(AESGCM.generate_key(bit_length=256))

    def ours_encrypt() -> tuple[int, bytes, list[bytes]]:
        return ring.seal((plain,), (AAD_CONTENT,), AAD_KEY)

    def raw_encrypt() -> bytes:
        return raw.encrypt(os.urandom(12), plain, AAD_CONTENT)

    def fernet_encrypt() -> bytes:
        return fernet.encrypt(plain)

    master = AESGCM(os.urandom(32))

    def floor_encrypt() -> bytes:
        # The primitive calls a fresh-key envelope cannot do without, inline, nothing else:
        # one read of the CSPRNG (data key and wrap nonce), the data key's AES-GCM object and
        # its encryption, and the wrap.
        rnd = os.urandom(44)
        AESGCM(rnd[:32]).encrypt(bytes(12), plain, AAD_CONTENT)
        return master.encrypt(rnd[32:], rnd[:32], AAD_KEY)

    prefix = aad_prefix(CHAIN_ID, CONTRACT)

    def vault_path() -> bytes:
        # What Vault.create does around it: the associated data, the emotion part and the
        # commitment (SHA-256).
        base = prefix + PAYLOAD_ID.encode()
        _, _, blobs = ring.seal(
            (plain, b'{"emotion": "happy"}'), (base + b"/content", base + b"/emotion"),
            base + b"/key",
        )  # fmt: skip
        return commitment(blobs)

    sealed = [ours_encrypt() for _ in range(pool)]
    tokens = [fernet_encrypt() for _ in range(pool)]
    raws = []
    for _ in range(pool):
        nonce = os.urandom(12)
        raws.append((nonce, raw.encrypt(nonce, plain, AAD_CONTENT)))
    counter = [0]

    def nxt() -> int:
        counter[0] = (counter[0] + 1) % pool
        return counter[0]

    def ours_decrypt() -> bytes:
        version, wrapped, blobs = sealed[nxt()]
        return ring.open(wrapped, version, AAD_KEY, blobs, (AAD_CONTENT,))[0]

    def fernet_decrypt() -> bytes:
        return fernet.decrypt(tokens[nxt()])

    def raw_decrypt() -> bytes:
        nonce, ct = raws[nxt()]
        return raw.decrypt(nonce, ct, AAD_CONTENT)

    floors = []
    for _ in range(pool):
        data_key, n1, n2 = os.urandom(32), os.urandom(12), os.urandom(12)
        ct = AESGCM(data_key).encrypt(n1, plain, AAD_CONTENT)
        floors.append((n1, ct, n2, master.encrypt(n2, data_key, AAD_KEY)))

    def floor_decrypt() -> bytes:
        n1, ct, n2, wrapped = floors[nxt()]
        return AESGCM(master.decrypt(n2, wrapped, AAD_KEY)).decrypt(n1, ct, AAD_CONTENT)

    # Every decrypt must give the plaintext back: a benchmark of a broken path proves nothing.
    assert ours_decrypt() == fernet_decrypt() == raw_decrypt() == floor_decrypt() == plain
    return (
        {
            "ours": ours_encrypt,
            "fernet": fernet_encrypt,
            "raw": raw_encrypt,
            "floor": floor_encrypt,
        },
        {
            "ours": ours_decrypt,
            "fernet": fernet_decrypt,
            "raw": raw_decrypt,
            "floor": floor_decrypt,
        },
        {"vault": vault_path},
    )


def _time_interleaved(
    ops: dict[str, Op], number: dict[str, int], budget: float, max_rounds: int
) -> dict[str, list[float]]:
    """Seconds per operation: one sample per round for each op, the order rotating.

    Batches are short (about half a millisecond) and many, so that on a busy machine the median
    batch is one that no other process interrupted.
    """
    names = list(ops)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for name, fn in ops.items():  # warm up
        for _ in range(max(3, number[name])):
            fn()
    gc_was = gc.isenabled()
    gc.disable()
    deadline = time.monotonic() + budget
    try:
        r = 0
        while r < max_rounds and (r < 5 or time.monotonic() < deadline):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                fn, n = ops[name], number[name]
                t0 = time.perf_counter_ns()
                for _ in range(n):
                    fn()
                samples[name].append((time.perf_counter_ns() - t0) / n / 1e9)
            r += 1
    finally:
        if gc_was:
            gc.enable()
    return samples


def _batch(fn: Op, target: float = 5e-4) -> int:
    """How many calls of ``fn`` take about ``target`` seconds (at least one)."""
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < 0.01:
        fn()
        n += 1
    per_call = (time.perf_counter() - t0) / n
    return max(1, int(target / per_call))


def run(opts: Options) -> list[Row]:
    rows: list[Row] = []
    budget = opts.pick(3.0, 0.15)  # seconds per size and direction
    max_rounds = opts.pick(3000, 50)
    vault_rows: dict[str, float] = {}
    for label, size in SIZES.items():
        plain = os.urandom(size)
        enc, dec, vault = _impls(plain, pool=opts.pick(16, 4))
        for kind, ops in (("encrypt", enc), ("decrypt", dec), ("vault", vault)):
            number = {name: _batch(fn) for name, fn in ops.items()}
            s = _time_interleaved(ops, number, budget / (3 if kind == "vault" else 1), max_rounds)
            opts.log(f"  crypto: {kind} {label}: {len(next(iter(s.values())))} rounds")
            if kind == "vault":
                vault_rows[label] = median(s["vault"])
            else:
                rows.append(_row(kind, label, size, s))
    rows.append(
        Row(
            "crypto",
            "Vault.create's whole crypto path (+ emotion part + SHA-256 commitment)",
            "; ".join(f"{k}: {fmt_time(t)}" for k, t in vault_rows.items()),
            data={"median_s": vault_rows},
        )
    )
    return rows


def _row(kind: str, label: str, size: int, s: dict[str, list[float]]) -> Row:
    ours, fernet, raw, floor = (median(s[k]) for k in ("ours", "fernet", "raw", "floor"))
    vs_fernet = fernet / ours
    vs_raw = raw / ours  # our speed as a share of raw AES-GCM's
    what = (
        f"encrypt + wrap a fresh data key, {label}"
        if kind == "encrypt"
        else f"unwrap + decrypt, {label}"
    )
    target, met, note = "—", None, None
    if size == 1024:
        target = "≤ 10 µs median; ≥ 3× faster than Fernet"
        met = ours <= 10e-6 and vs_fernet >= 3
        if kind == "encrypt":
            note = (
                f"crypto, 1 KiB encrypt: the bare primitive calls of a fresh-key envelope (one"
                f" read of the OS's CSPRNG, one AESGCM object for the data key, two encryptions),"
                f" inline with nothing else, take {fmt_time(floor)} here, {fernet / floor:.1f}×"
                f" faster than Fernet ({fmt_time(fernet)}); ours takes {fmt_time(ours)}: it reads"
                f" the CSPRNG once per 64 payloads, and seals part i of a data key, which is used"
                f" for one payload only, under nonce i. Fernet reuses one key and draws one IV;"
                f" a per-payload key costs a new AES key schedule and a second encryption (the"
                f" wrap) every time."
            )
    elif size == 1024 * 1024:
        target = "≥ 50% of raw AES-GCM speed"
        met = vs_raw >= 0.5
    mib_s = size / ours / (1 << 20)
    data = {
        "size": size,
        "median_s": {"ours": ours, "fernet": fernet, "raw": raw, "floor": floor},
        "p90_s": {k: pct(v, 90) for k, v in s.items()},
        "min_s": {k: min(v) for k, v in s.items()},
        "rounds": len(s["ours"]),
    }
    if note:
        data["note"] = note
    return Row(
        "crypto",
        what,
        f"{fmt_time(ours)} ({mib_s:,.0f} MiB/s)",
        f"Fernet {fmt_time(fernet)}; raw AES-GCM {fmt_time(raw)}; floor {fmt_time(floor)}",
        f"{vs_fernet:.1f}× Fernet's speed; {vs_raw:.0%} of raw's",
        target,
        met,
        data,
    )
