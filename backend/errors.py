"""The backend's exceptions. Each maps to one HTTP status and one stable ``code``.

The JSON body of every error is ``{"code", "name", "description"}``; ``description`` is written
for the caller and never carries plaintext, keys or internals.
"""

from __future__ import annotations

from http import HTTPStatus


class ConfigError(Exception):
    """A setting is missing or invalid: start-up stops with this message."""


class BackendError(Exception):
    """Base of every error the API answers with."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(
        self, description: str, *, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(description)
        self.description = description
        self.headers = headers or {}  # sent with the answer (Retry-After, …)
        if code is not None:
            self.code = code

    @property
    def name(self) -> str:
        return HTTPStatus(self.status_code).phrase

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "name": self.name, "description": self.description}


class BadRequest(BackendError, ValueError):
    status_code = 400
    code = "bad_request"


class Unauthorized(BackendError, PermissionError):
    status_code = 401
    code = "unauthorized"


class Forbidden(BackendError, PermissionError):
    status_code = 403
    code = "forbidden"


class NotFound(BackendError, LookupError):
    status_code = 404
    code = "not_found"


class Conflict(BackendError):
    status_code = 409
    code = "conflict"


class Gone(BackendError):
    status_code = 410
    code = "gone"


class PayloadTooLarge(BackendError, ValueError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(BackendError, ValueError):
    status_code = 415
    code = "unsupported_media_type"


class TooManyRequests(BackendError):
    status_code = 429
    code = "rate_limited"


# How a ChainError's description begins when the contract itself refused (a revert).
CONTRACT_REFUSED = "the contract refused: "


class ChainError(BackendError, RuntimeError):
    """The chain refused or failed an operation."""

    status_code = 502
    code = "chain_error"


class ChainUnavailable(ChainError, ConnectionError):
    status_code = 503
    code = "chain_unavailable"


class DeploymentMismatch(ConfigError):
    """The deployment record does not describe the contract found on chain."""
