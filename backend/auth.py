"""Sign-In with Ethereum (EIP-4361) through the maintained ``siwe`` library, and sessions.

A nonce is issued by ``GET /auth/nonce``, works once, and expires. ``POST /auth/verify`` checks
the message's domain, URI, chain id, version and times, then the signature, then consumes the
nonce, and returns a random session token. Only the token's SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

import siwe

from .config import Settings
from .errors import BadRequest, Unauthorized
from .store import Session, SQLiteStore

STATEMENT = "Sign in to Symbiotic Learning Token to read and delete your own payloads."
_CLOCK_SKEW = 300


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Auth:
    def __init__(
        self, store: SQLiteStore, settings: Settings, chain_id: int, clock: Callable[[], float]
    ) -> None:
        self.store = store
        self.settings = settings
        self.chain_id = chain_id
        self.clock = clock

    def new_nonce(self) -> dict[str, object]:
        now = self.clock()
        nonce = siwe.generate_nonce()
        expires = now + self.settings.nonce_ttl
        self.store.add_nonce(nonce, expires, now)
        return {
            "nonce": nonce,
            "domain": self.settings.siwe_domain,
            "uri": self.settings.public_url,
            "chain_id": self.chain_id,
            "statement": STATEMENT,
            "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(),
        }

    def verify(self, message: object, signature: object) -> dict[str, object]:
        if not isinstance(message, str) or not isinstance(signature, str):
            raise BadRequest("'message' and 'signature' must be strings.", code="invalid_siwe")
        if len(message) > 4096 or len(signature) > 1024:
            raise BadRequest("The sign-in message is too long.", code="invalid_siwe")
        try:
            parsed = siwe.SiweMessage.from_message(message)
        except Exception:  # the parser raises several types for malformed text
            raise BadRequest("The sign-in message is not EIP-4361.", code="invalid_siwe") from None
        now = self.clock()
        now_dt = datetime.fromtimestamp(now, UTC)
        issued = parsed.issued_at._datetime.timestamp()  # noqa: SLF001 (library accessor)
        if issued > now + _CLOCK_SKEW:
            raise Unauthorized("The sign-in message is issued in the future.", code="siwe_time")
        if now - issued > self.settings.nonce_ttl + _CLOCK_SKEW:
            raise Unauthorized("The sign-in message is too old.", code="siwe_expired")
        try:
            parsed.verify(
                signature,
                domain=self.settings.siwe_domain,
                uri=self.settings.public_url,
                chain_id=self.chain_id,
                nonce=parsed.nonce,
                timestamp=now_dt,
                strict=True,
            )
        except siwe.DomainMismatch:
            raise Unauthorized("The message is for another domain.", code="siwe_domain") from None
        except siwe.UriMismatch:
            raise Unauthorized("The message is for another URI.", code="siwe_uri") from None
        except siwe.ChainIdMismatch:
            raise Unauthorized(
                f"The message is for another chain; this service is on chain {self.chain_id}.",
                code="siwe_chain",
            ) from None
        except siwe.ExpiredMessage:
            raise Unauthorized("The sign-in message has expired.", code="siwe_expired") from None
        except siwe.NotYetValidMessage:
            raise Unauthorized("The sign-in message is not valid yet.", code="siwe_time") from None
        except siwe.InvalidSignature:
            raise Unauthorized("The signature does not match.", code="siwe_signature") from None
        except siwe.VerificationError:
            raise Unauthorized("The sign-in message was refused.", code="siwe_invalid") from None
        if str(parsed.version) != "1":
            raise Unauthorized("Only EIP-4361 version 1 is accepted.", code="siwe_invalid")
        if not self.store.consume_nonce(parsed.nonce, now):
            raise Unauthorized(
                "The nonce is unknown, used or expired: ask for a new one.", code="siwe_nonce"
            )
        token = secrets.token_urlsafe(32)
        session = Session(parsed.address.lower(), self.chain_id, now + self.settings.session_ttl)
        self.store.add_session(_hash(token), session, now)
        return {
            "token": token,
            "address": parsed.address,
            "chain_id": self.chain_id,
            "expires_at": session.expires_at,
        }

    def session(self, token: str) -> Session:
        found = self.store.get_session(_hash(token), self.clock())
        if found is None:
            raise Unauthorized("The session is unknown or expired: sign in again.", code="session")
        if found.chain_id != self.chain_id:
            raise Unauthorized("The session is for another chain: sign in again.", code="session")
        return found

    def logout(self, token: str) -> None:
        self.store.delete_session(_hash(token))
