"""The payload lifecycle: seal and store, open for the owner, persist, shred.

Ownership comes from the chain: a minted token's reader is whoever ``ownerOf`` names now. Only
when the chain is unreachable does the vault fall back to the owner last seen on chain by the
event follower (never to anything a client claims). An anonymous payload, held in the issuer's
custody, is opened by its secret alone.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from .chain import Chain
from .crypto import InvalidTag, KeyRing, aad_prefix, commitment
from .errors import (
    BackendError,
    ChainUnavailable,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    Unauthorized,
)
from .payloads import Plaintext, RewardScorer, decode_emotion, encode_emotion
from .store import Payload, Secret, SQLiteStore

log = logging.getLogger(__name__)

# After the chain fails to answer, requests use the last owner seen for this long instead of
# each waiting out the RPC timeout (and its retries) again.
CHAIN_RETRY_AFTER = 5.0


@dataclass(frozen=True)
class Identity:
    """Who is calling: a signed-in wallet, the holder of an anonymous secret, or nobody."""

    address: str | None = None
    secret: str | None = None


@dataclass(frozen=True)
class Created:
    payload: Payload
    ciphertext: bytes
    emotion_ct: bytes | None
    secret: str | None


@dataclass(frozen=True)
class Opened:
    payload: Payload
    body: bytes
    emotion: str | None


def new_payload_id(now: float) -> str:
    """``token_`` and 32 hex digits: the time in milliseconds (12), then 80 random bits.

    Time first, so that a new id lands at the end of the store's id indexes, in pages already in
    memory, rather than anywhere in them (a random id cost each insert and each checkpoint more
    pages). The random part keeps ids unguessable; the time was never a secret from the owner
    (``created_at``), and an id is not published on chain.
    """
    return f"token_{int(now * 1000):012x}{secrets.token_hex(10)}"


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(b"slt-anonymous-secret/" + secret.encode()).digest()


class Vault:
    def __init__(
        self,
        store: SQLiteStore,
        keyring: KeyRing,
        chain: Chain,
        custody_address: str,
        scorer: RewardScorer,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.chain = chain
        self.custody = custody_address.lower()
        self.scorer = scorer
        self.clock = clock
        self._chain_down_until = 0.0  # time.monotonic(); 0 while the chain answers
        self._aad_prefix = aad_prefix(chain.chain_id, chain.address)

    def _aads(self, payload_id: str) -> tuple[bytes, bytes, bytes]:
        """The associated data of a payload's content, emotion and wrapped key (as
        :func:`~backend.crypto.associated_data` makes them, with the deployment's prefix kept)."""
        base = self._aad_prefix + payload_id.encode()
        return base + b"/content", base + b"/emotion", base + b"/key"

    # Create ------------------------------------------------------------------------------------

    def create(self, plain: Plaintext, owner: str | None, ttl: int, switchable: bool) -> Created:
        """Encrypt under a fresh data key, store, and queue the mint: one transaction."""
        now = self.clock()
        payload_id = new_payload_id(now)
        end_time = int(now) + ttl
        content_aad, emotion_aad, key_aad = self._aads(payload_id)
        emotion_blob = encode_emotion(plain.emotion)
        if emotion_blob is None:
            version, wrapped, (ciphertext,) = self.keyring.seal(
                (plain.body,), (content_aad,), key_aad
            )
            emotion_ct = None
        else:
            version, wrapped, (ciphertext, emotion_ct) = self.keyring.seal(
                (plain.body, emotion_blob), (content_aad, emotion_aad), key_aad
            )
        secret = None if owner else secrets.token_urlsafe(32)
        payload = Payload(
            id=payload_id,
            owner=(owner or self.custody).lower(),
            custody=owner is None,
            secret_hash=hash_secret(secret) if secret else None,
            kind=plain.kind,
            content_type=plain.content_type,
            size=len(plain.body),
            reward_score=float(self.scorer(plain.kind, plain.emotion)),
            commitment=commitment([ciphertext, emotion_ct or b""]),
            created_at=now,
            expires_at=float(end_time),
            end_time=end_time,
            switchable=switchable,
            status="pending_mint",
            chain_token_id=None,
            mint_tx=None,
            burn_tx=None,
            burn_status=None,
            shredded_at=None,
            shred_reason=None,
        )
        self.store.insert_payload(
            payload, Secret(payload_id, version, wrapped, ciphertext, emotion_ct), now
        )
        return Created(payload, ciphertext, emotion_ct, secret)

    # Access ------------------------------------------------------------------------------------

    def get_authorized(self, payload_id: str, who: Identity) -> Payload:
        """The payload, if ``who`` may act on it now; 401/403/404 otherwise."""
        payload = self.store.get_payload(payload_id)
        if payload is None:
            raise NotFound(f"There is no token {payload_id}.", code="token_not_found")
        if payload.custody and payload.secret_hash is not None:
            if who.secret is None:
                raise Unauthorized(
                    "This anonymous token is opened with its secret (X-SLT-Secret).",
                    code="secret_required",
                )
            if not hmac.compare_digest(hash_secret(who.secret), payload.secret_hash):
                raise Forbidden("The secret does not open this token.", code="wrong_secret")
            return payload
        if who.address is None:
            raise Unauthorized(
                "Sign in with the wallet that owns this token.", code="auth_required"
            )
        if self.current_owner(payload) != who.address.lower():
            raise Forbidden("Only the token's current owner may do this.", code="not_owner")
        return payload

    def current_owner(self, payload: Payload) -> str:
        """The on-chain owner now; the last one seen if the chain is down or it was burned."""
        if payload.chain_token_id is None or payload.shredded:
            return payload.owner
        if self.chain_recently_down():
            return payload.owner
        try:
            owner = self.chain.owner_of(payload.chain_token_id)
        except ChainUnavailable:
            self.note_chain_down()
            log.info("chain unreachable: using the last owner seen for %s", payload.id)
            return payload.owner
        return owner if owner is not None else payload.owner

    def chain_recently_down(self) -> bool:
        """True for a few seconds after the chain last failed to answer."""
        return time.monotonic() < self._chain_down_until

    def note_chain_down(self) -> None:
        self._chain_down_until = time.monotonic() + CHAIN_RETRY_AFTER

    def note_chain_up(self) -> None:
        self._chain_down_until = 0.0

    def check_live(self, payload: Payload) -> None:
        """410 once shredded, or once its lifetime is over (even before the sweeper runs)."""
        if payload.shredded:
            reason = "expired" if payload.status == "expired" else "deleted"
            verb = "has expired" if reason == "expired" else "was deleted"
            raise Gone(f"This token {verb}; its data is gone.", code=f"token_{reason}")
        if payload.expires_at is not None and self.clock() >= payload.expires_at:
            raise Gone("This token has expired; its data is gone.", code="token_expired")

    def open(self, payload_id: str, who: Identity) -> Opened:
        payload = self.get_authorized(payload_id, who)
        self.check_live(payload)
        secret = self.store.get_secret(payload_id)
        if secret is None:
            raise Gone(f"Token {payload_id} was deleted; its data is gone.", code="token_deleted")
        content_aad, emotion_aad, key_aad = self._aads(payload_id)
        blobs, aads = [secret.ciphertext], [content_aad]
        if secret.emotion_ct is not None:
            blobs.append(secret.emotion_ct)
            aads.append(emotion_aad)
        try:
            body, *rest = self.keyring.open(
                secret.wrapped_key, secret.key_version, key_aad, blobs, aads
            )
            emotion = decode_emotion(rest[0]) if rest else None
        except InvalidTag:
            log.error("integrity check failed for %s", payload_id)
            raise BackendError("The stored payload failed its integrity check.") from None
        return Opened(payload, body, emotion)

    # Persist and delete ------------------------------------------------------------------------

    def persist(self, payload_id: str, who: Identity) -> dict[str, object]:
        payload = self.get_authorized(payload_id, who)
        self.check_live(payload)
        if payload.status == "persistent":
            raise Conflict(f"Token {payload_id} is already persistent.", code="already_persistent")
        if not payload.switchable:
            raise Conflict(f"Token {payload_id} was minted not switchable.", code="not_switchable")
        if payload.chain_token_id is None:
            raise Conflict(
                f"Token {payload_id} is not minted yet; try again in a moment.", code="not_minted"
            )
        if payload.custody:
            if self.custody != self.chain.relayer_address.lower():
                raise Conflict("The custody wallet cannot persist tokens.", code="custody_locked")
            self.store.enqueue("persist", payload_id, self.clock())
            return {"status": "pending"}
        return {
            "status": "awaiting_wallet",
            "transaction": self.chain.persist_transaction(payload.chain_token_id),
        }

    def delete(self, payload_id: str, who: Identity) -> Payload:
        """Shred now (key and ciphertext in one transaction); the outbox burns the token."""
        self.get_authorized(payload_id, who)
        self.store.shred(payload_id, "deleted", self.clock())
        shredded = self.store.get_payload(payload_id)
        assert shredded is not None
        return shredded
