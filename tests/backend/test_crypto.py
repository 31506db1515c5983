"""Envelope encryption, one primitive at a time: round trip, wrong key, tampering, binding."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from backend.crypto import (
    KEY_BYTES,
    NONCE_BYTES,
    InvalidTag,
    KeyRing,
    _KeyMaterial,
    associated_data,
    commitment,
    load_or_create_keyring,
    new_data_key,
    open_sealed,
    seal,
    unwrap_key,
    wrap_key,
    write_keyring,
)
from backend.errors import ConfigError

CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
OTHER_CONTRACT = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
AAD = associated_data("token_" + "ab" * 16, 31337, CONTRACT, "content")
PLAIN = b"a private thought \x00 with a NUL and \xff bytes"


def _flip(blob: bytes, index: int) -> bytes:
    out = bytearray(blob)
    out[index] ^= 0x01
    return bytes(out)


def _ring(*versions: int) -> KeyRing:
    return KeyRing({v: new_data_key() for v in versions}, max(versions))


def _secret_strings(ring: KeyRing) -> list[str]:
    """Every way a master key could show up in text: base64, hex, repr of the bytes."""
    out = []
    for key in ring.keys.values():
        out += [base64.b64encode(key).decode(), key.hex(), repr(key)]
    return out


# Data keys and associated data ---------------------------------------------------------------


def test_new_data_key_is_32_random_bytes() -> None:
    keys = {new_data_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(len(k) == KEY_BYTES == 32 for k in keys)


def test_associated_data_binds_payload_chain_contract_and_part() -> None:
    base = associated_data("token_1", 1, CONTRACT, "content")
    assert base == f"slt/1/{CONTRACT.lower()}/token_1/content".encode()
    assert associated_data("token_1", 1, CONTRACT.upper().replace("0X", "0x"), "content") == base
    others = {
        associated_data("token_2", 1, CONTRACT, "content"),
        associated_data("token_1", 2, CONTRACT, "content"),
        associated_data("token_1", 1, OTHER_CONTRACT, "content"),
        associated_data("token_1", 1, CONTRACT, "emotion"),
    }
    assert base not in others
    assert len(others) == 4


# seal / open_sealed --------------------------------------------------------------------------


def test_seal_round_trip() -> None:
    key = new_data_key()
    blob = seal(PLAIN, key, AAD)
    assert PLAIN not in blob
    assert len(blob) == NONCE_BYTES + len(PLAIN) + 16
    assert open_sealed(blob, key, AAD) == PLAIN


def test_seal_round_trip_of_empty_plaintext() -> None:
    key = new_data_key()
    assert open_sealed(seal(b"", key, AAD), key, AAD) == b""


def test_open_sealed_with_wrong_key_raises_invalid_tag() -> None:
    blob = seal(PLAIN, new_data_key(), AAD)
    with pytest.raises(InvalidTag):
        open_sealed(blob, new_data_key(), AAD)


@pytest.mark.parametrize(
    "where",
    [0, NONCE_BYTES - 1, NONCE_BYTES, NONCE_BYTES + 5, -16, -1],
    ids=[
        "nonce-first",
        "nonce-last",
        "ciphertext-first",
        "ciphertext-mid",
        "tag-first",
        "tag-last",
    ],
)
def test_open_sealed_with_tampered_byte_raises_invalid_tag(where: int) -> None:
    key = new_data_key()
    blob = seal(PLAIN, key, AAD)
    with pytest.raises(InvalidTag):
        open_sealed(_flip(blob, where), key, AAD)


def test_open_sealed_with_truncated_or_extended_blob_raises_invalid_tag() -> None:
    key = new_data_key()
    blob = seal(PLAIN, key, AAD)
    for bad in (blob[:-1], blob + b"\x00", blob[: NONCE_BYTES + 15], b"", b"\x00" * NONCE_BYTES):
        with pytest.raises(InvalidTag):
            open_sealed(bad, key, AAD)


@pytest.mark.parametrize(
    "other_aad",
    [
        associated_data("token_" + "cd" * 16, 31337, CONTRACT, "content"),
        associated_data("token_" + "ab" * 16, 1, CONTRACT, "content"),
        associated_data("token_" + "ab" * 16, 31337, OTHER_CONTRACT, "content"),
        associated_data("token_" + "ab" * 16, 31337, CONTRACT, "emotion"),
        b"",
    ],
    ids=["other-payload", "other-chain", "other-contract", "other-part", "empty"],
)
def test_open_sealed_with_other_associated_data_raises_invalid_tag(other_aad: bytes) -> None:
    key = new_data_key()
    blob = seal(PLAIN, key, AAD)
    with pytest.raises(InvalidTag):
        open_sealed(blob, key, other_aad)


def test_seal_uses_a_fresh_nonce_every_time() -> None:
    key = new_data_key()
    blobs = [seal(PLAIN, key, AAD) for _ in range(2000)]
    nonces = {b[:NONCE_BYTES] for b in blobs}
    assert len(nonces) == len(blobs)
    assert len({b[NONCE_BYTES:] for b in blobs}) == len(blobs)


@pytest.mark.parametrize("size", [0, 15, 31, 33, 64])
def test_seal_refuses_a_key_of_the_wrong_length(size: int) -> None:
    with pytest.raises(ValueError, match="key must be"):
        seal(PLAIN, b"k" * size, AAD)


# wrap_key / unwrap_key -----------------------------------------------------------------------


def test_wrap_key_round_trip() -> None:
    master, data_key = new_data_key(), new_data_key()
    wrapped = wrap_key(data_key, master, 1, AAD)
    assert data_key not in wrapped
    assert unwrap_key(wrapped, master, 1, AAD) == data_key


def test_unwrap_key_with_wrong_master_raises_invalid_tag() -> None:
    wrapped = wrap_key(new_data_key(), new_data_key(), 1, AAD)
    with pytest.raises(InvalidTag):
        unwrap_key(wrapped, new_data_key(), 1, AAD)


def test_unwrap_key_under_another_version_label_raises_invalid_tag() -> None:
    master = new_data_key()
    wrapped = wrap_key(new_data_key(), master, 1, AAD)
    with pytest.raises(InvalidTag):
        unwrap_key(wrapped, master, 2, AAD)


@pytest.mark.parametrize("where", [0, NONCE_BYTES + 3, -1], ids=["nonce", "ciphertext", "tag"])
def test_unwrap_key_tampered_raises_invalid_tag(where: int) -> None:
    master = new_data_key()
    wrapped = wrap_key(new_data_key(), master, 1, AAD)
    with pytest.raises(InvalidTag):
        unwrap_key(_flip(wrapped, where), master, 1, AAD)


@pytest.mark.parametrize(
    "other_aad",
    [
        associated_data("token_" + "cd" * 16, 31337, CONTRACT, "key"),
        associated_data("token_" + "ab" * 16, 5, CONTRACT, "key"),
        associated_data("token_" + "ab" * 16, 31337, OTHER_CONTRACT, "key"),
    ],
    ids=["other-payload", "other-chain", "other-contract"],
)
def test_unwrap_key_for_another_payload_raises_invalid_tag(other_aad: bytes) -> None:
    master = new_data_key()
    aad = associated_data("token_" + "ab" * 16, 31337, CONTRACT, "key")
    wrapped = wrap_key(new_data_key(), master, 1, aad)
    with pytest.raises(InvalidTag):
        unwrap_key(wrapped, master, 1, other_aad)


def test_wrapped_key_cannot_be_opened_as_a_plain_seal() -> None:
    # The version label is part of the associated data: a wrap is not a seal of the same AAD.
    master = new_data_key()
    wrapped = wrap_key(new_data_key(), master, 1, AAD)
    with pytest.raises(InvalidTag):
        open_sealed(wrapped, master, AAD)


def test_wrap_key_uses_a_fresh_nonce_every_time() -> None:
    master, data_key = new_data_key(), new_data_key()
    wraps = {wrap_key(data_key, master, 1, AAD) for _ in range(500)}
    assert len({w[:NONCE_BYTES] for w in wraps}) == 500


# KeyRing -------------------------------------------------------------------------------------


def test_keyring_wrap_unwrap_round_trip() -> None:
    ring = _ring(1)
    data_key = new_data_key()
    version, wrapped = ring.wrap(data_key, AAD)
    assert version == 1
    assert ring.unwrap(wrapped, version, AAD) == data_key


def test_keyring_unwrap_with_another_ring_raises_invalid_tag() -> None:
    version, wrapped = _ring(1).wrap(new_data_key(), AAD)
    with pytest.raises(InvalidTag):
        _ring(1).unwrap(wrapped, version, AAD)


def test_keyring_unwrap_with_other_associated_data_raises_invalid_tag() -> None:
    ring = _ring(1)
    version, wrapped = ring.wrap(new_data_key(), AAD)
    with pytest.raises(InvalidTag):
        ring.unwrap(wrapped, version, associated_data("token_x", 31337, CONTRACT, "content"))


def test_keyring_unwrap_of_unknown_version_is_a_config_error() -> None:
    ring = _ring(1)
    _, wrapped = ring.wrap(new_data_key(), AAD)
    with pytest.raises(ConfigError, match="master key version 7 is not in the key ring"):
        ring.unwrap(wrapped, 7, AAD)


AAD_EMOTION = associated_data("token_" + "ab" * 16, 31337, CONTRACT, "emotion")
AAD_KEY = associated_data("token_" + "ab" * 16, 31337, CONTRACT, "key")


@pytest.mark.parametrize(
    "parts",
    [[PLAIN], [PLAIN, b'{"emotion": "calm"}'], [b""], [os.urandom(200 * 1024), b"x"]],
    ids=["one", "two", "empty", "large-and-small"],
)
def test_keyring_seal_open_round_trip(parts: list[bytes]) -> None:
    ring = _ring(1)
    aads = [AAD, AAD_EMOTION][: len(parts)]
    version, wrapped, blobs = ring.seal(parts, aads, AAD_KEY)
    assert version == 1 and len(blobs) == len(parts)
    assert ring.open(wrapped, version, AAD_KEY, blobs, aads) == parts
    # The layouts are the plain ones: the key unwraps alone and each blob opens with it.
    data_key = ring.unwrap(wrapped, version, AAD_KEY)
    assert [open_sealed(b, data_key, a) for b, a in zip(blobs, aads, strict=True)] == parts


def test_keyring_seal_uses_a_fresh_key_and_wrap_nonce_each_time_and_part_nonces_by_index() -> None:
    ring = _ring(1)
    sealed = [ring.seal([PLAIN, PLAIN], [AAD, AAD_EMOTION], AAD_KEY) for _ in range(2000)]
    keys = {ring.unwrap(w, v, AAD_KEY) for v, w, _ in sealed}
    assert len(keys) == 2000 and all(len(k) == KEY_BYTES for k in keys)
    assert len({w[:NONCE_BYTES] for _, w, _ in sealed}) == 2000
    # Under one data key the two parts never share a nonce: part i uses nonce i.
    assert {(b[0][:NONCE_BYTES], b[1][:NONCE_BYTES]) for _, _, b in sealed} == {
        (bytes(NONCE_BYTES), (1).to_bytes(NONCE_BYTES, "big"))
    }


@pytest.mark.parametrize("what", ["content", "emotion", "wrapped", "swapped", "key_aad"])
def test_keyring_open_of_anything_altered_raises_invalid_tag(what: str) -> None:
    ring = _ring(1)
    aads = [AAD, AAD_EMOTION]
    version, wrapped, blobs = ring.seal([PLAIN, b"calm"], aads, AAD_KEY)
    key_aad = AAD_KEY
    if what == "content":
        blobs[0] = _flip(blobs[0], 20)
    elif what == "emotion":
        blobs[1] = _flip(blobs[1], -1)
    elif what == "wrapped":
        wrapped = _flip(wrapped, 30)
    elif what == "swapped":
        blobs.reverse()
    else:
        key_aad = AAD
    with pytest.raises(InvalidTag):
        ring.open(wrapped, version, key_aad, blobs, aads)


def test_keyring_seal_refuses_mismatched_or_too_many_parts() -> None:
    ring = _ring(1)
    with pytest.raises(ValueError, match="one associated data per part"):
        ring.seal([PLAIN, PLAIN], [AAD], AAD_KEY)
    with pytest.raises(ValueError, match="at most 8 parts"):
        ring.seal([PLAIN] * 9, [AAD] * 9, AAD_KEY)


def test_key_material_is_never_handed_out_twice_across_threads() -> None:
    pool = _KeyMaterial()
    taken: list[tuple[bytes, bytes]] = []

    def take() -> None:
        taken.extend(pool.take() for _ in range(2500))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 10_000 == len(set(taken))
    assert {(len(k), len(n)) for k, n in taken} == {(KEY_BYTES, NONCE_BYTES)}


def test_key_material_of_a_forked_child_differs_from_its_parents() -> None:
    # Without the at-fork reset, parent and child would pop the same waiting pair: the same
    # data key and, worse, the same nonce under the master key.
    pool = _KeyMaterial()
    pool.take()  # the pool now holds pairs the child inherits
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next pair and leave at once
        try:
            key, nonce = pool.take()
            os.write(write, key + nonce)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        child = fh.read()
    os.waitpid(pid, 0)
    key, nonce = pool.take()
    assert len(child) == KEY_BYTES + NONCE_BYTES
    assert child != key + nonce


def test_keyring_rotated_adds_a_new_current_version_and_keeps_the_old() -> None:
    ring = _ring(1)
    new = ring.rotated()
    assert new.current == 2
    assert new.keys[1] == ring.keys[1]
    assert new.keys[2] != ring.keys[1]
    assert len(new.keys[2]) == KEY_BYTES
    assert ring.current == 1 and set(ring.keys) == {1}  # the old ring is unchanged
    assert new.rotated().current == 3


def test_keyring_rotated_after_a_gap_uses_the_highest_version_plus_one() -> None:
    ring = KeyRing({1: new_data_key(), 5: new_data_key()}, 1)
    assert ring.rotated().current == 6


def test_keyring_rewrap_moves_a_data_key_to_the_current_version() -> None:
    old = _ring(1)
    data_key = new_data_key()
    _, wrapped = old.wrap(data_key, AAD)
    new = old.rotated()
    version, rewrapped = new.rewrap(wrapped, 1, AAD)
    assert version == 2
    assert rewrapped != wrapped
    assert new.unwrap(rewrapped, 2, AAD) == data_key
    with pytest.raises(InvalidTag):
        new.unwrap(rewrapped, 1, AAD)
    with pytest.raises(ConfigError):
        old.unwrap(rewrapped, 2, AAD)


def test_keyring_rewrap_of_tampered_wrap_raises_invalid_tag() -> None:
    ring = _ring(1)
    _, wrapped = ring.wrap(new_data_key(), AAD)
    with pytest.raises(InvalidTag):
        ring.rotated().rewrap(_flip(wrapped, -1), 1, AAD)


def test_keyring_refuses_a_current_version_without_a_key() -> None:
    with pytest.raises(ConfigError, match="current version has no key"):
        KeyRing({1: new_data_key()}, 2)


@pytest.mark.parametrize("size", [0, 16, 31, 33])
def test_keyring_refuses_master_keys_that_are_not_32_bytes(size: int) -> None:
    with pytest.raises(ConfigError, match="every master key must be 32 bytes"):
        KeyRing({1: new_data_key(), 2: b"\x07" * size}, 1)


def test_keyring_repr_does_not_show_keys() -> None:
    ring = _ring(1, 2)
    text = repr(ring) + str(ring)
    for secret in _secret_strings(ring):
        assert secret not in text


# Serialisation -------------------------------------------------------------------------------


def test_keyring_json_round_trip() -> None:
    ring = _ring(1, 2, 3)
    loaded = KeyRing.from_json(ring.to_json())
    assert loaded == ring
    assert loaded.current == 3
    data = json.loads(ring.to_json())
    assert data["current"] == 3
    assert base64.b64decode(data["keys"]["2"]) == ring.keys[2]


def test_keyring_from_json_keeps_current_as_written() -> None:
    ring = KeyRing({1: new_data_key(), 2: new_data_key()}, 1)
    assert KeyRing.from_json(ring.to_json()).current == 1


def _good_key_b64() -> str:
    return base64.b64encode(new_data_key()).decode()


MALFORMED_JSON = {
    "empty": "",
    "not-json": "{not json",
    "list": "[]",
    "null": "null",
    "no-keys": '{"current": 1}',
    "no-current": '{"keys": {"1": "%s"}}',
    "bad-version": '{"current": 1, "keys": {"one": "%s"}}',
    "bad-current": '{"current": "x", "keys": {"1": "%s"}}',
    "bad-base64": '{"current": 1, "keys": {"1": "%s!!"}}',
    "key-not-string": '{"current": 1, "keys": {"1": 5}}',
    "short-key": '{"current": 1, "keys": {"1": "AAAA"}}',
    "current-missing-key": '{"current": 2, "keys": {"1": "%s"}}',
}


@pytest.mark.parametrize("text", list(MALFORMED_JSON.values()), ids=list(MALFORMED_JSON))
def test_keyring_from_malformed_json_is_a_config_error_without_key_bytes(text: str) -> None:
    key = _good_key_b64()
    text = text.replace("%s", key)
    with pytest.raises(ConfigError, match="master key") as info:
        KeyRing.from_json(text)
    assert key not in str(info.value)
    assert key[:-2] not in str(info.value)


@pytest.mark.parametrize("keys", ["[]", '"abc"', "5"], ids=["list", "string", "number"])
def test_keyring_from_json_with_keys_not_an_object_is_a_config_error(keys: str) -> None:
    with pytest.raises(ConfigError, match="master key ring is malformed"):
        KeyRing.from_json(f'{{"current": 1, "keys": {keys}}}')


def test_keyring_from_env_value_round_trip_and_highest_version_is_current() -> None:
    k1, k2 = new_data_key(), new_data_key()
    value = f"2:{base64.b64encode(k2).decode()}, 1:{base64.b64encode(k1).decode()}"
    ring = KeyRing.from_env_value(value)
    assert ring.current == 2
    assert ring.keys == {1: k1, 2: k2}


MALFORMED_ENV = {
    "no-version": "%s",
    "word-version": "one:%s",
    "bad-base64": "1:%s!!",
    "empty-key": "1:",
    "short-key": "1:AAAA",
    "trailing-comma": "1:%s,",
    "empty": "",
    "only-comma": ",",
}


@pytest.mark.parametrize("value", list(MALFORMED_ENV.values()), ids=list(MALFORMED_ENV))
def test_keyring_from_malformed_env_value_is_a_config_error_without_key_bytes(value: str) -> None:
    key = _good_key_b64()
    value = value.replace("%s", key)
    with pytest.raises(ConfigError) as info:
        KeyRing.from_env_value(value)
    message = str(info.value)
    assert "SLT_MASTER_KEYS" in message or "master key" in message
    assert key not in message
    assert key[:-2] not in message


# load_or_create_keyring ----------------------------------------------------------------------


def test_load_or_create_keyring_creates_a_0600_file_then_reloads_it(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master-keys.json"
    ring, created = load_or_create_keyring(None, path)
    assert created is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ring.current == 1 and len(ring.keys[1]) == KEY_BYTES
    assert not path.with_name(path.name + ".tmp").exists()

    again, created_again = load_or_create_keyring(None, path)
    assert created_again is False
    assert again == ring


def test_load_or_create_keyring_prefers_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "master-keys.json"
    key = new_data_key()
    ring, created = load_or_create_keyring(f"1:{base64.b64encode(key).decode()}", path)
    assert created is False
    assert ring.keys == {1: key}
    assert not path.exists()


def test_load_or_create_keyring_with_malformed_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "master-keys.json"
    path.write_text('{"current": 1, "keys": {"1": "AAAA"}}')
    with pytest.raises(ConfigError, match="32 bytes"):
        load_or_create_keyring(None, path)
    assert path.read_text() == '{"current": 1, "keys": {"1": "AAAA"}}'  # never overwritten


def test_write_keyring_keeps_mode_0600_when_rewriting(tmp_path: Path) -> None:
    path = tmp_path / "master-keys.json"
    ring, _ = load_or_create_keyring(None, path)
    path.chmod(0o644)
    write_keyring(ring.rotated(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyRing.from_json(path.read_text()).current == 2


def test_write_keyring_exclusive_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "master-keys.json"
    ring, _ = load_or_create_keyring(None, path)
    before = path.read_text()
    with pytest.raises(FileExistsError):
        write_keyring(_ring(1), path, exclusive=True)
    assert path.read_text() == before
    assert KeyRing.from_json(before) == ring
    assert [p.name for p in tmp_path.iterdir()] == ["master-keys.json"]  # no temp file left


def test_concurrent_first_starts_share_one_key_file(tmp_path: Path) -> None:
    """Two processes (gunicorn workers) creating the key file at once end with the same ring."""
    import threading

    path = tmp_path / "master-keys.json"
    barrier = threading.Barrier(8)
    rings: list[KeyRing] = []

    def start() -> None:
        barrier.wait()
        rings.append(load_or_create_keyring(None, path)[0])

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    on_disk = KeyRing.from_json(path.read_text())
    assert len(rings) == 8 and all(r == on_disk for r in rings)


# Commitment ----------------------------------------------------------------------------------


def test_commitment_is_deterministic_32_bytes() -> None:
    parts = [b"ciphertext", b"emotion"]
    assert commitment(parts) == commitment(list(parts)) == commitment(iter(parts))
    assert len(commitment(parts)) == 32


def test_commitment_changes_with_any_bit_of_any_part() -> None:
    base = commitment([b"ciphertext", b"emotion"])
    assert commitment([_flip(b"ciphertext", 0), b"emotion"]) != base
    assert commitment([b"ciphertext", _flip(b"emotion", 6)]) != base
    assert commitment([b"emotion", b"ciphertext"]) != base


def test_commitment_length_prefix_separates_parts() -> None:
    assert commitment([b"ab", b"c"]) != commitment([b"a", b"bc"])
    assert commitment([b"abc", b""]) != commitment([b"abc"])
    assert commitment([]) != commitment([b""])


def test_commitment_of_sealed_ciphertexts_differs_for_the_same_plaintext() -> None:
    key = new_data_key()
    assert commitment([seal(PLAIN, key, AAD)]) != commitment([seal(PLAIN, key, AAD)])
