"""Typed settings, read once from the environment and validated at start-up.

Every variable is prefixed ``SLT_``. Tests build :class:`Settings` directly.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_PRIVATE_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_RATE = re.compile(r"^\d+\s*(/|per)\s*\d*\s*(second|minute|hour|day)s?$")


@dataclass(frozen=True)
class Settings:
    """The backend's configuration. Paths are resolved; secrets are never printed."""

    data_dir: Path = Path("var")
    database: Path | None = None
    master_keys: str | None = field(default=None, repr=False)
    master_key_file: Path | None = None

    rpc_url: str = "http://127.0.0.1:8545"
    network: str = "ethereum-local"
    deployments_dir: Path = Path("deployments")
    deployment_file: Path | None = None
    relayer_key: str | None = field(default=None, repr=False)
    custody_address: str | None = None
    chain_timeout: float = 5.0
    confirmations: int = 0
    tx_replace_after: float = 30.0  # seconds a transaction waits before its fees may be raised

    public_url: str = "http://127.0.0.1:8080"
    cors_origins: tuple[str, ...] = ()
    session_ttl: int = 900
    nonce_ttl: int = 300

    default_ttl: int = 3600
    max_ttl: int = 30 * 24 * 3600
    max_upload_bytes: int = 5 * 1024 * 1024
    max_prompt_chars: int = 20_000
    reward_scorer: str = "backend.payloads:emotion_reward"

    run_workers: bool = True
    sweep_interval: float = 1.0
    follow_interval: float = 0.25
    outbox_interval: float = 0.25
    checkpoint_interval: float = 0.1
    worker_nice: int = 10  # `python -m backend worker` yields the CPU to the API processes
    mint_batch_max: int = 100
    burn_batch_max: int = 200

    rate_limit_create: str = "60/minute"
    rate_limit_read: str = "600/minute"
    rate_limits_enabled: bool = True

    log_level: str = "INFO"

    def __post_init__(self) -> None:
        self.validate()

    # Derived values -------------------------------------------------------------------------

    @property
    def database_path(self) -> Path:
        return self.database or self.data_dir / "slt.sqlite3"

    @property
    def master_key_path(self) -> Path:
        return self.master_key_file or self.data_dir / "master-keys.json"

    @property
    def deployment_path(self) -> Path:
        return self.deployment_file or self.deployments_dir / f"{self.network}.json"

    @property
    def siwe_domain(self) -> str:
        """The EIP-4361 ``domain``: the authority of the public URL."""
        return urlsplit(self.public_url).netloc

    @property
    def public_origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        return self.cors_origins or (self.public_origin,)

    # Validation -----------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad setting."""
        url = urlsplit(self.public_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ConfigError("SLT_PUBLIC_URL must be an http(s) URL, e.g. http://127.0.0.1:8080")
        rpc = urlsplit(self.rpc_url)
        if rpc.scheme not in ("http", "https") or not rpc.netloc:
            raise ConfigError("SLT_RPC_URL must be an http(s) URL")
        for origin in self.cors_origins:
            o = urlsplit(origin)
            if o.scheme not in ("http", "https") or not o.netloc or o.path not in ("", "/"):
                raise ConfigError(f"SLT_CORS_ORIGINS: {origin!r} is not an origin like https://x.y")
        if self.relayer_key is not None and not _PRIVATE_KEY.match(self.relayer_key):
            raise ConfigError("SLT_RELAYER_KEY must be 32 bytes of hex (the key is not shown)")
        if self.custody_address is not None and not _ADDRESS.match(self.custody_address):
            raise ConfigError("SLT_CUSTODY_ADDRESS must be a 0x-prefixed 20-byte address")
        positive = {
            "SLT_SESSION_TTL": self.session_ttl,
            "SLT_NONCE_TTL": self.nonce_ttl,
            "SLT_DEFAULT_TTL": self.default_ttl,
            "SLT_MAX_TTL": self.max_ttl,
            "SLT_MAX_UPLOAD_BYTES": self.max_upload_bytes,
            "SLT_MAX_PROMPT_CHARS": self.max_prompt_chars,
            "SLT_MINT_BATCH_MAX": self.mint_batch_max,
            "SLT_BURN_BATCH_MAX": self.burn_batch_max,
            "SLT_SWEEP_INTERVAL": self.sweep_interval,
            "SLT_FOLLOW_INTERVAL": self.follow_interval,
            "SLT_OUTBOX_INTERVAL": self.outbox_interval,
            "SLT_CHECKPOINT_INTERVAL": self.checkpoint_interval,
            "SLT_CHAIN_TIMEOUT": self.chain_timeout,
            "SLT_TX_REPLACE_AFTER": self.tx_replace_after,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{name} must be greater than 0, got {value}")
        if self.confirmations < 0:
            raise ConfigError("SLT_CONFIRMATIONS must be 0 or more")
        if self.default_ttl > self.max_ttl:
            raise ConfigError("SLT_DEFAULT_TTL must not exceed SLT_MAX_TTL")
        if not 0 <= self.worker_nice <= 19:
            raise ConfigError(f"SLT_WORKER_NICE must be from 0 to 19, got {self.worker_nice}")
        for name, rate in (
            ("SLT_RATE_LIMIT_CREATE", self.rate_limit_create),
            ("SLT_RATE_LIMIT_READ", self.rate_limit_read),
        ):
            if not _RATE.match(rate.strip()):
                raise ConfigError(f"{name} must look like '60/minute', got {rate!r}")
        if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", self.reward_scorer):
            raise ConfigError("SLT_REWARD_SCORER must be 'module:function'")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("SLT_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    # Environment ----------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``SLT_*`` variables; unknown ``SLT_`` names are an error."""
        env = os.environ if environ is None else environ
        known = {f"SLT_{f.name.upper()}": f for f in fields(cls)}
        extra = {"SLT_RELAYER_KEY_FILE"}
        unknown = sorted(k for k in env if k.startswith("SLT_") and k not in known.keys() | extra)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, f in known.items():
            if name not in env:
                continue
            values[f.name] = _parse(name, env[name], f.type)
        if "SLT_RELAYER_KEY_FILE" in env and "relayer_key" not in values:
            path = Path(env["SLT_RELAYER_KEY_FILE"])
            try:
                values["relayer_key"] = path.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"SLT_RELAYER_KEY_FILE: cannot read {path}: {exc}") from None
        return cls(**values)


def _parse(name: str, raw: str, annotation: Any) -> Any:
    kind = str(annotation)
    try:
        if "bool" in kind:
            low = raw.strip().lower()
            if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(raw)
            return low in ("1", "true", "yes", "on")
        if "tuple" in kind:
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        if "Path" in kind:
            return Path(raw)
        if "float" in kind:
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
            return value
        if "int" in kind:
            return int(raw)
    except ValueError:
        raise ConfigError(f"{name}: cannot read {raw!r} as {kind}") from None
    return raw
