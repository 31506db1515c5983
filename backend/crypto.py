"""Envelope encryption: a fresh AES-256-GCM data key per payload, wrapped by a master key.

Pure functions and one small key-ring type; no I/O except :func:`load_or_create_keyring`.

Layouts (all ``bytes``):
- sealed blob   = nonce (12) || ciphertext || tag (16)         (:func:`seal`, :meth:`KeyRing.seal`)
- wrapped key   = nonce (12) || AES-GCM(master, data key) || tag, associated data
                  ``b"slt-key/v<version>/" + payload associated data``
- commitment    = SHA-256 over the stored ciphertext parts, each length-prefixed, so anyone
                  holding the ciphertext can check it against the chain without any key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ConfigError

__all__ = [
    "InvalidTag",
    "KeyRing",
    "aad_prefix",
    "associated_data",
    "commitment",
    "new_data_key",
    "open_sealed",
    "seal",
    "unwrap_key",
    "wrap_key",
]

from cryptography.exceptions import InvalidTag

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
# From this size on, :func:`open_sealed` decrypts through a memoryview instead of a copy.
_VIEW_FROM = 16 * 1024
# Plaintexts of these sizes are sealed through a per-thread scratch buffer (see _seal_with).
_SCRATCH_FROM = 64 * 1024
_SCRATCH_UP_TO = 8 * 1024 * 1024
_scratch = threading.local()
log = logging.getLogger(__name__)


def new_data_key() -> bytes:
    """A fresh random 256-bit data key (the OS's CSPRNG, as ``AESGCM.generate_key`` uses)."""
    return os.urandom(KEY_BYTES)


class _KeyMaterial:
    """Fresh (data key, wrap nonce) pairs, cut from one read of the OS's CSPRNG per batch.

    A read of the CSPRNG is a system call, and at 1 KiB one per payload was a sixth of the whole
    envelope. The bytes are the kernel's own, only fetched ahead, as OpenSSL's RAND_bytes does
    with its user-space generator. ``list.pop`` is atomic, so each pair goes to exactly one
    caller whatever the threads. A forked child drops what it inherited: otherwise it would hand
    out the very keys and wrap nonces its parent does, and a nonce reused under the master key
    breaks AES-GCM. (Pairs waiting here are no more exposed than the master key in the same
    memory, which unwraps every data key anyway.)
    """

    BATCH = 256  # 11 KiB per read
    _PAIR = struct.Struct(f"{KEY_BYTES}s{NONCE_BYTES}s")

    def __init__(self) -> None:
        self._ready: list[tuple[bytes, bytes]] = []
        os.register_at_fork(after_in_child=self._ready.clear)

    def take(self) -> tuple[bytes, bytes]:
        try:
            return self._ready.pop()
        except IndexError:
            return self.refill()

    def refill(self) -> tuple[bytes, bytes]:
        """Read a new batch; returns one pair of it and keeps the rest."""
        fresh = list(self._PAIR.iter_unpack(os.urandom(self._PAIR.size * self.BATCH)))
        pair = fresh.pop()
        self._ready.extend(fresh)
        return pair


_key_material = _KeyMaterial()
_ready_key_material = _key_material._ready  # KeyRing.seal pops from it inline
# The nonces of a data key's parts: the part's index. A data key is fresh for one payload and
# seals each of its parts once, under its own index, so no (key, nonce) pair ever repeats; the
# nonce still travels in the blob, so every blob opens with :func:`open_sealed`.
_PART_NONCES = tuple(i.to_bytes(NONCE_BYTES, "big") for i in range(8))


def aad_prefix(chain_id: int, contract: str) -> bytes:
    """The part of the associated data that is the same for every payload of one deployment."""
    return f"slt/{chain_id}/{contract.lower()}/".encode()


def associated_data(payload_id: str, chain_id: int, contract: str, part: str = "") -> bytes:
    """Binds a ciphertext to its payload, its chain and its contract (and a part label)."""
    return aad_prefix(chain_id, contract) + f"{payload_id}/{part}".encode()


def seal(plaintext: bytes, key: bytes, aad: bytes) -> bytes:
    """Encrypt with AES-256-GCM under a random 96-bit nonce."""
    if len(plaintext) < _SCRATCH_FROM:  # the common case, without a call more
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)
    return _seal_with(AESGCM(key), plaintext, aad)


def open_sealed(blob: bytes, key: bytes, aad: bytes) -> bytes:
    """Decrypt a :func:`seal` blob. Raises :class:`InvalidTag` on any tampering or wrong key."""
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise InvalidTag()
    if len(blob) <= _VIEW_FROM:  # the common case, without a call more
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    return _open_with(AESGCM(key), blob, aad)


def _seal_with(aead: AESGCM, plaintext: bytes, aad: bytes, nonce: bytes | None = None) -> bytes:
    if nonce is None:
        nonce = os.urandom(NONCE_BYTES)  # fresh per call, whatever the key
    size = len(plaintext)
    if not _SCRATCH_FROM <= size <= _SCRATCH_UP_TO:
        return nonce + aead.encrypt(nonce, plaintext, aad)
    # A large payload is encrypted into a per-thread buffer and copied out once. Encrypting and
    # then prepending the nonce made two fresh buffers of its size per call; freeing them let
    # the allocator hand the memory back and fault it in again, which at 1 MiB cost several
    # times the encryption itself. The buffer only ever holds the nonce and the ciphertext.
    total = NONCE_BYTES + size + TAG_BYTES
    buf: bytearray | None = getattr(_scratch, "buf", None)
    if buf is None or len(buf) < total:
        buf = _scratch.buf = bytearray(total)
    with memoryview(buf) as view:
        view[:NONCE_BYTES] = nonce
        aead.encrypt_into(nonce, plaintext, aad, view[NONCE_BYTES:total])
        return bytes(view[:total])


def _open_with(aead: AESGCM, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise InvalidTag()
    if len(blob) > _VIEW_FROM:  # a large ciphertext is read in place, not copied first
        view = memoryview(blob)
        return aead.decrypt(view[:NONCE_BYTES], view[NONCE_BYTES:], aad)
    return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)


def _wrap_aad(version: int, aad: bytes) -> bytes:
    return b"slt-key/v%d/" % version + aad


def wrap_key(data_key: bytes, master: bytes, version: int, aad: bytes) -> bytes:
    """Wrap a data key under master key ``version``; the wrap is bound to the payload too."""
    return seal(data_key, master, _wrap_aad(version, aad))


def unwrap_key(wrapped: bytes, master: bytes, version: int, aad: bytes) -> bytes:
    return open_sealed(wrapped, master, _wrap_aad(version, aad))


def commitment(parts: Iterable[bytes]) -> bytes:
    """SHA-256 over the length-prefixed ciphertext parts (32 bytes, published at mint)."""
    h = hashlib.sha256(b"slt-commitment-v1")
    for part in parts:
        h.update(struct.pack(">Q", len(part)))
        h.update(part)
    return h.digest()


@dataclass(frozen=True)
class KeyRing:
    """Versioned master keys. ``current`` wraps new data keys; older versions still unwrap."""

    keys: dict[int, bytes] = field(repr=False)
    current: int
    # Per master key version, made on first use: its AES-GCM object (building one costs about
    # as much as sealing 1 KiB, and the master keys never change while the ring lives) and the
    # prefix of its wraps' associated data.
    _aeads: dict[int, tuple[AESGCM, bytes]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _wrapper: tuple[int, AESGCM, bytes] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ConfigError("master key ring: the current version has no key")
        if any(len(k) != KEY_BYTES for k in self.keys.values()):
            raise ConfigError("master key ring: every master key must be 32 bytes")
        # What seal() wraps with, looked up once: (version, AES-GCM object, prefix).
        object.__setattr__(self, "_wrapper", (self.current, *self._aead(self.current)))

    def master(self, version: int) -> bytes:
        try:
            return self.keys[version]
        except KeyError:
            raise ConfigError(f"master key version {version} is not in the key ring") from None

    def _aead(self, version: int) -> tuple[AESGCM, bytes]:
        found = self._aeads.get(version)
        if found is None:
            found = (AESGCM(self.master(version)), _wrap_aad(version, b""))
            self._aeads[version] = found
        return found

    def seal(
        self, parts: Sequence[bytes], aads: Sequence[bytes], key_aad: bytes
    ) -> tuple[int, bytes, list[bytes]]:
        """Seal each part under one fresh data key, and wrap that key under the current master.

        Returns ``(version, wrapped key, sealed parts)``. The data key never leaves this call,
        so nothing can seal with it again: that is what lets part ``i`` use nonce ``i``.
        """
        if len(parts) != len(aads) or len(parts) > len(_PART_NONCES):
            raise ValueError("one associated data per part, and at most 8 parts")
        try:  # _key_material.take(), inline: at 1 KiB every call counts
            data_key, wrap_nonce = _ready_key_material.pop()
        except IndexError:
            data_key, wrap_nonce = _key_material.refill()
        aead = AESGCM(data_key)
        sealed = []
        i = 0
        for part in parts:  # (a plain loop: a comprehension over zip() cost 0.5 µs more)
            nonce = _PART_NONCES[i]
            if len(part) < _SCRATCH_FROM:  # the common case, without a call more
                sealed.append(nonce + aead.encrypt(nonce, part, aads[i]))
            else:
                sealed.append(_seal_with(aead, part, aads[i], nonce))
            i += 1
        version, master, prefix = self._wrapper
        return version, wrap_nonce + master.encrypt(wrap_nonce, data_key, prefix + key_aad), sealed

    def open(
        self, wrapped: bytes, version: int, key_aad: bytes, blobs: Sequence[bytes],
        aads: Sequence[bytes],
    ) -> list[bytes]:  # fmt: skip
        """Unwrap a data key and open each of its sealed parts. Raises :class:`InvalidTag`."""
        if len(blobs) != len(aads):
            raise ValueError("one associated data per part")
        aead = AESGCM(self.unwrap(wrapped, version, key_aad))
        opened = []
        i = 0
        for blob in blobs:  # (a plain loop, as in seal)
            if NONCE_BYTES + TAG_BYTES <= len(blob) <= _VIEW_FROM:  # the common case
                opened.append(aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aads[i]))
            else:
                opened.append(_open_with(aead, blob, aads[i]))
            i += 1
        return opened

    def wrap(self, data_key: bytes, aad: bytes) -> tuple[int, bytes]:
        # The same as wrap_key(data_key, master, current, aad), with the cached object.
        version = self.current
        aead, prefix = self._aead(version)
        nonce = os.urandom(NONCE_BYTES)
        return version, nonce + aead.encrypt(nonce, data_key, prefix + aad)

    def unwrap(self, wrapped: bytes, version: int, aad: bytes) -> bytes:
        # The same as unwrap_key(wrapped, master, version, aad), with the cached object.
        aead, prefix = self._aead(version)
        if len(wrapped) < NONCE_BYTES + TAG_BYTES:
            raise InvalidTag()
        return aead.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], prefix + aad)

    def rewrap(self, wrapped: bytes, version: int, aad: bytes) -> tuple[int, bytes]:
        """Re-wrap a data key under the current master key. The payload is never decrypted."""
        return self.wrap(self.unwrap(wrapped, version, aad), aad)

    def rotated(self) -> KeyRing:
        """A new ring with one more version, which becomes current."""
        version = max(self.keys) + 1
        return KeyRing({**self.keys, version: AESGCM.generate_key(bit_length=256)}, version)

    # Serialisation ------------------------------------------------------------------------

    def to_json(self) -> str:
        encoded = {str(v): base64.b64encode(k).decode() for v, k in sorted(self.keys.items())}
        return json.dumps({"current": self.current, "keys": encoded}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        try:
            data = json.loads(text)
            keys = {int(v): base64.b64decode(k, validate=True) for v, k in data["keys"].items()}
            return cls(keys, int(data["current"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"master key ring is malformed ({type(exc).__name__})") from None

    @classmethod
    def from_env_value(cls, value: str) -> KeyRing:
        """``SLT_MASTER_KEYS``: ``"1:<base64>,2:<base64>"``; the highest version is current."""
        keys: dict[int, bytes] = {}
        try:
            for item in value.split(","):
                version, _, b64 = item.strip().partition(":")
                keys[int(version)] = base64.b64decode(b64, validate=True)
        except ValueError:
            raise ConfigError("SLT_MASTER_KEYS must look like '1:<base64 of 32 bytes>,…'") from None
        if not keys:
            raise ConfigError("SLT_MASTER_KEYS is empty")
        return cls(keys, max(keys))


def load_or_create_keyring(env_value: str | None, path: Path) -> tuple[KeyRing, bool]:
    """The master key ring from the environment, else from ``path`` (created 0600 if absent).

    Returns the ring and whether a new key file was created.
    """
    if env_value:
        return KeyRing.from_env_value(env_value), False
    try:
        return KeyRing.from_json(path.read_text()), False
    except FileNotFoundError:
        pass
    ring = KeyRing({1: AESGCM.generate_key(bit_length=256)}, 1)
    try:
        write_keyring(ring, path, exclusive=True)
    except FileExistsError:
        # Another process (a second gunicorn worker) created it first: use that one.
        return KeyRing.from_json(path.read_text()), False
    return ring, True


def write_keyring(ring: KeyRing, path: Path, *, exclusive: bool = False) -> None:
    """Write the ring with mode 0600, atomically (a crash leaves the old file or the new one).

    With ``exclusive``, raises :class:`FileExistsError` if ``path`` already exists: the new
    file is linked into place, which never replaces an existing one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(ring.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
