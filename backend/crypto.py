"""Envelope encryption: a fresh AES-256-GCM data key per payload, wrapped by a master key.

Pure functions and one small key-ring type; no I/O except :func:`load_or_create_keyring`.

Layouts (all ``bytes``):
- sealed blob   = nonce (12) || ciphertext || tag (16)         (:func:`seal`)
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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ConfigError

__all__ = [
    "InvalidTag",
    "KeyRing",
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
log = logging.getLogger(__name__)


def new_data_key() -> bytes:
    """A fresh random 256-bit data key."""
    return AESGCM.generate_key(bit_length=256)


def associated_data(payload_id: str, chain_id: int, contract: str, part: str = "") -> bytes:
    """Binds a ciphertext to its payload, its chain and its contract (and a part label)."""
    return f"slt/{chain_id}/{contract.lower()}/{payload_id}/{part}".encode()


def seal(plaintext: bytes, key: bytes, aad: bytes) -> bytes:
    """Encrypt with AES-256-GCM under a random 96-bit nonce."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(blob: bytes, key: bytes, aad: bytes) -> bytes:
    """Decrypt a :func:`seal` blob. Raises :class:`InvalidTag` on any tampering or wrong key."""
    if len(blob) < NONCE_BYTES + 16:
        raise InvalidTag()
    return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)


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

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ConfigError("master key ring: the current version has no key")
        if any(len(k) != KEY_BYTES for k in self.keys.values()):
            raise ConfigError("master key ring: every master key must be 32 bytes")

    def master(self, version: int) -> bytes:
        try:
            return self.keys[version]
        except KeyError:
            raise ConfigError(f"master key version {version} is not in the key ring") from None

    def wrap(self, data_key: bytes, aad: bytes) -> tuple[int, bytes]:
        return self.current, wrap_key(data_key, self.keys[self.current], self.current, aad)

    def unwrap(self, wrapped: bytes, version: int, aad: bytes) -> bytes:
        return unwrap_key(wrapped, self.master(version), version, aad)

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
        except (ValueError, KeyError, TypeError) as exc:
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
    write_keyring(ring, path, exclusive=True)
    return ring, True


def write_keyring(ring: KeyRing, path: Path, *, exclusive: bool = False) -> None:
    """Write the ring with mode 0600, atomically (a crash leaves the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(ring.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    if exclusive and path.exists():
        tmp.unlink()
        raise ConfigError(f"{path} appeared while creating it; not overwriting")
    os.replace(tmp, path)
    os.chmod(path, 0o600)
