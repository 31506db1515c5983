"""Symbiotic Learning Token backend: encrypted, ephemeral, wallet-owned AI payloads."""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Callable

from flask import Flask

from .api import Services, register
from .auth import Auth
from .chain import Chain, Deployment
from .config import Settings
from .crypto import load_or_create_keyring
from .errors import ChainUnavailable
from .payloads import load_scorer
from .ratelimit import RateLimiter
from .store import SQLiteStore
from .vault import Vault
from .worker import Worker

__all__ = ["Settings", "create_app", "freeze_startup_objects"]
log = logging.getLogger("backend")
GIL_SWITCH_INTERVAL = 0.0005  # seconds; see create_app


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], float] = time.time,
    start_workers: bool | None = None,
) -> Flask:
    """Build the app: settings, key ring, store, chain client, services and background work.

    Background work: the chain worker's threads if ``start_workers`` (by default
    ``SLT_RUN_WORKERS``); without them but by default, still the WAL checkpointer (an API process
    beside ``python -m backend worker``); with ``start_workers=False``, no thread at all.

    Stops with :class:`~backend.errors.ConfigError` on a bad setting, a malformed key ring or
    deployment record, or a contract whose code does not match its record.
    """
    settings = settings or Settings.from_env()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )

    keyring, created = load_or_create_keyring(settings.master_keys, settings.master_key_path)
    if created:
        log.warning(
            "created a new master key file at %s (mode 0600): back it up, or every payload"
            " is lost with it",
            settings.master_key_path,
        )
    store = SQLiteStore(settings.database_path)
    deployment = Deployment.load(settings.deployment_path)
    chain = Chain(settings.rpc_url, deployment, settings.relayer_key, settings.chain_timeout)
    try:
        chain.verify_deployment()
    except ChainUnavailable:
        log.warning("chain unreachable at start-up: running degraded until it answers")
    custody = settings.custody_address or (chain.relayer_address if chain.relayer else None)
    if custody is None:
        custody = "0x" + "00" * 19 + "01"
        log.warning("no relayer key: anonymous payloads cannot be minted")
    vault = Vault(store, keyring, chain, custody, load_scorer(settings.reward_scorer), clock)
    auth = Auth(store, settings, chain.chain_id, clock)
    worker = Worker(
        store,
        chain,
        clock,
        mint_batch_max=settings.mint_batch_max,
        burn_batch_max=settings.burn_batch_max,
        confirmations=settings.confirmations,
        replace_after=settings.tx_replace_after,
    )

    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keys in the order written
    app.config["SLT_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + 64 * 1024
    limiter = RateLimiter(
        {"create": settings.rate_limit_create, "read": settings.rate_limit_read},
        enabled=settings.rate_limits_enabled,
    )
    app.extensions["slt"] = Services(settings, store, chain, vault, auth, worker, limiter)
    register(app)

    if settings.run_workers if start_workers is None else start_workers:
        # The chain worker's threads share this process's GIL with its requests. A thread that
        # wants the GIL back (a request after each system call) waits up to the switch interval
        # while a busy thread holds it: 5 ms by default, several times per request.
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL))
        worker.start(
            settings.outbox_interval,
            settings.follow_interval,
            settings.sweep_interval,
            settings.checkpoint_interval,
        )
    elif start_workers is None:
        worker.start_checkpointer(settings.checkpoint_interval)
    return app


def freeze_startup_objects() -> None:
    """Leave the objects made so far out of every later garbage collection.

    Call it once a server process has built its app. Those objects (modules, the app, web3's
    ABI tables: about 100,000) live as long as the process, yet a full collection walked them
    all: 50-60 ms of CPU, now and then in the middle of a request, which then held the store's
    writer lock as long.
    """
    gc.collect()
    gc.freeze()
