"""Command line: ``python -m backend {serve,worker,sweep,rotate-keys,status,dev}``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .config import Settings
from .errors import ConfigError


def _settings() -> Settings:
    return Settings.from_env()


def cmd_serve(args: argparse.Namespace) -> int:
    from . import create_app

    app = create_app(_settings())
    # Development server; production runs gunicorn (see README, "Production").
    app.run(host=args.host, port=args.port, threaded=True, use_reloader=False)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from . import create_app

    app = create_app(_settings(), start_workers=False)
    worker = app.extensions["slt"].worker
    n = worker.sweep()
    print(f"shredded {n} expired payload(s)")
    if not args.no_burn:
        try:
            worker.process_outbox()
            print("queued burns sent")
        except Exception as exc:  # the chain may be down: burns stay queued
            print(f"burns stay queued: {exc}", file=sys.stderr)
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    from .crypto import load_or_create_keyring, write_keyring
    from .store import SQLiteStore

    settings = _settings()
    if settings.master_keys:
        raise ConfigError("rotate-keys needs the key file: unset SLT_MASTER_KEYS")
    ring, _ = load_or_create_keyring(None, settings.master_key_path)
    new = ring.rotated()
    # The new key is on disk before any data key depends on it: a crash in between loses nothing.
    write_keyring(new, settings.master_key_path)
    from .chain import Deployment

    deployment = Deployment.load(settings.deployment_path)
    from .crypto import associated_data

    def rewrap(payload_id: str, version: int, wrapped: bytes) -> tuple[int, bytes]:
        aad = associated_data(payload_id, deployment.chain_id, deployment.address, "key")
        return new.rewrap(wrapped, version, aad)

    n = SQLiteStore(settings.database_path).rewrap_all(rewrap)
    print(f"master key version {new.current} added; {n} data key(s) rewrapped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from . import create_app

    app = create_app(_settings(), start_workers=False)
    s = app.extensions["slt"]
    try:
        block: int | None = s.chain.block_number()
    except Exception:
        block = None
    print(
        json.dumps(
            {
                "contract": s.chain.address,
                "chain_id": s.chain.chain_id,
                "chain_block": block,
                "payloads": s.store.count_payloads(),
                "outbox": s.store.outbox_counts(),
                "key_versions": s.store.key_versions(),
                "database": str(s.settings.database_path),
            },
            indent=2,
        )
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import signal
    import threading

    from . import create_app, freeze_startup_objects

    settings = _settings()
    # Background work yields the CPU to the API processes on the same machine: minting can wait
    # a moment, a request should not (niceness only ever goes up, which needs no privilege).
    current = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, max(current, settings.worker_nice))
    _lower_session_priority(settings.worker_nice)
    app = create_app(settings, start_workers=True)
    freeze_startup_objects()  # no full collection in the middle of a transaction
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    app.extensions["slt"].worker.stop()
    return 0


def _lower_session_priority(nice: int) -> bool:
    """Raise the niceness of this process's session too, when the process leads it.

    With autogroups (Linux's default where processes are not in cgroups of their own) the
    scheduler shares the CPU between sessions first, and by niceness only within one: a worker
    started in a session of its own (``setsid``, a supervisor) yielded nothing to the API's
    session for its own niceness. Only a session leader does this, so that no other process of
    the session (an API server started from the same shell) is slowed with it. Under systemd
    each service has a cgroup of its own, and ``CPUWeight=`` is the setting (README).
    """
    if os.getsid(0) != os.getpid():
        return False
    autogroup = Path("/proc/self/autogroup")
    try:
        current = int(autogroup.read_text().rsplit("nice", 1)[1])
        if nice > current:
            autogroup.write_text(str(nice))
        return True
    except (OSError, ValueError, IndexError):  # no autogroups here
        return False


def cmd_dev(args: argparse.Namespace) -> int:
    from .devserver import run_dev

    return run_dev(port=args.port, anvil_port=args.anvil_port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="serve the API and the page (development server)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(fn=cmd_serve)
    p = sub.add_parser("worker", help="run only the outbox, event follower and sweeper")
    p.set_defaults(fn=cmd_worker)
    p = sub.add_parser("sweep", help="shred expired payloads now and send queued burns")
    p.add_argument("--no-burn", action="store_true", help="shred only; leave burns queued")
    p.set_defaults(fn=cmd_sweep)
    p = sub.add_parser("rotate-keys", help="add a master key version and rewrap every data key")
    p.set_defaults(fn=cmd_rotate)
    p = sub.add_parser("status", help="print the store, outbox and chain state as JSON")
    p.set_defaults(fn=cmd_status)
    p = sub.add_parser("dev", help="local Anvil + deployed contract + backend + page")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--anvil-port", type=int, default=8545)
    p.set_defaults(fn=cmd_dev)
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
