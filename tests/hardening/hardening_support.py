"""Shared helpers of the hardening checks: scale, figures, clients, backend processes, load.

Scale: CI runs the short form. ``SLT_HARDENING=full`` selects the long form, and each knob can be
set on its own: ``SLT_HARDENING_CASES``, ``_GARBAGE``, ``_KILLS``, ``_OUTAGE``, ``_SAMPLES``,
``_FLOOD_THREADS`` (and ``SLT_HARDENING_SEED`` for the fuzzers). These variables are stripped
from every backend process's environment, because the backend refuses unknown ``SLT_*``
settings.

Everything here talks to 127.0.0.1 only. Load loops are bounded in count and in time.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from eth_account import Account
from requests.adapters import HTTPAdapter
from slt_harness import ANVIL_KEYS, ROOT, free_port, sign_text, siwe_message, tool_env

from backend import Settings

FULL = os.environ.get("SLT_HARDENING", "").strip().lower() == "full"
MODE = "full" if FULL else "short"
FIGURES_DIR = ROOT / "artifacts" / "hardening"
LOOPBACK = "127.0.0.1"

# Backend settings every process here shares (the rest is per test).
FAST_WORKERS = {
    "SLT_OUTBOX_INTERVAL": "0.1",
    "SLT_FOLLOW_INTERVAL": "0.1",
    "SLT_SWEEP_INTERVAL": "0.5",
}


def knob(name: str, short: float, full: float) -> float:
    """A scale setting: ``SLT_HARDENING_<NAME>`` if set, else the short or the full default."""
    raw = os.environ.get(f"SLT_HARDENING_{name.upper()}")
    if raw:
        return float(raw)
    return full if FULL else short


# The app in-process ---------------------------------------------------------------------------

PUBLIC_URL = "http://127.0.0.1:8080"
RELAYER_KEY = ANVIL_KEYS[1]


def settings_for(record: dict[str, Any], rpc_url: str, folder: Path, **changes: Any) -> Settings:
    """Settings of an in-process app on the given chain and a real SQLite file in ``folder``."""
    deployment = folder / "deployment.json"
    folder.mkdir(parents=True, exist_ok=True)
    deployment.write_text(json.dumps(record))
    base = Settings(
        data_dir=folder / "var",
        rpc_url=rpc_url,
        deployment_file=deployment,
        relayer_key=RELAYER_KEY,
        public_url=PUBLIC_URL,
        rate_limits_enabled=False,
        sweep_interval=0.2,
        follow_interval=0.1,
        outbox_interval=0.1,
        chain_timeout=2.0,
    )
    return base.with_(**changes)


# Figures ---------------------------------------------------------------------------------------

FIGURES: dict[str, dict[str, Any]] = {}


def figure(section: str, **values: Any) -> None:
    """Record figures for the end-of-session summary and the JSON file the runner reads."""
    FIGURES.setdefault(section, {}).update(values)


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank), 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


# Identities ----------------------------------------------------------------------------------


def address_of(key: str) -> str:
    return str(Account.from_key(key).address)


def http_session(source_ip: str | None = None) -> requests.Session:
    """A requests session; with ``source_ip`` (another loopback address) it connects from there.

    The whole 127.0.0.0/8 block is loopback, so 127.0.0.2, 127.0.0.3, ... stand for different
    clients of the server on 127.0.0.1 without any traffic leaving the machine.
    """
    session = requests.Session()
    if source_ip is not None:
        adapter = _SourceAdapter(source_ip)
        session.mount("http://", adapter)
    return session


class _SourceAdapter(HTTPAdapter):
    def __init__(self, source_ip: str) -> None:
        self._source = (source_ip, 0)
        super().__init__(pool_connections=4, pool_maxsize=16)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = self._source
        super().init_poolmanager(*args, **kwargs)


def sign_in_http(http: requests.Session, base: str, key: str) -> dict[str, str]:
    """SIWE over HTTP with an Anvil key; returns the Authorization header."""
    nonce = http.get(f"{base}/auth/nonce", timeout=20).json()
    message = siwe_message(address_of(key), nonce)
    resp = http.post(
        f"{base}/auth/verify",
        json={"message": message, "signature": sign_text(key, message)},
        timeout=20,
    )
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['token']}"}


# Backend processes ---------------------------------------------------------------------------


def backend_env(**settings: str) -> dict[str, str]:
    """The tool environment without any ``SLT_*`` variable, plus the given settings."""
    env = {k: v for k, v in tool_env().items() if not k.startswith("SLT_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings)
    return env


@dataclass
class BackendProcess:
    """The backend as its own OS process on 127.0.0.1: ``python -m backend serve`` or gunicorn.

    Standard output and error go to files (appended across restarts) so they can be scanned.
    Each start gets its own session (process group), so a kill reaches exactly this backend.
    """

    settings: dict[str, str]
    log_dir: Path
    server: str = "serve"  # or "gunicorn"
    workers: int = 2
    threads: int = 8
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def stdout_path(self) -> Path:
        return self.log_dir / "backend.stdout"

    @property
    def stderr_path(self) -> Path:
        return self.log_dir / "backend.stderr"

    def command(self) -> list[str]:
        if self.server == "gunicorn":
            return [
                str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", "python:backend.gunicorn_conf",
                "-w", str(self.workers), "-k", "gthread", "--threads", str(self.threads),
                "-b", f"{LOOPBACK}:{self.port}", "--graceful-timeout", "5",
                "backend:create_app()",
            ]  # fmt: skip
        return [sys.executable, "-m", "backend", "serve", "--host", LOOPBACK,
                "--port", str(self.port)]  # fmt: skip

    def start(self, timeout: float = 90.0) -> float:
        """Start and wait until ``/health`` answers; returns the seconds it took."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = backend_env(SLT_PUBLIC_URL=self.url, **self.settings)
        began = time.monotonic()
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                self.command(), cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True
            )
        self.starts += 1
        deadline = began + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"backend exited with {self.proc.returncode}: {self.tail()}")
            try:
                if requests.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return time.monotonic() - began
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"backend did not answer in {timeout}s: {self.tail()}")

    def kill9(self) -> None:
        """SIGKILL the backend's process group (ours: started in its own session)."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def tail(self, n: int = 2000) -> str:
        text = ""
        for p in (self.stderr_path, self.stdout_path):
            if p.exists():
                text += p.read_bytes()[-n:].decode(errors="replace")
        return text

    def logs(self) -> dict[str, bytes]:
        return {str(p): p.read_bytes() for p in (self.stdout_path, self.stderr_path) if p.exists()}


def backend_settings(
    data_dir: Path, rpc_url: str, deployment: Path, relayer_key: str, **extra: str
) -> dict[str, str]:
    return {
        "SLT_DATA_DIR": str(data_dir),
        "SLT_RPC_URL": rpc_url,
        "SLT_DEPLOYMENT_FILE": str(deployment),
        "SLT_RELAYER_KEY": relayer_key,
        "SLT_CHAIN_TIMEOUT": "2",
        **FAST_WORKERS,
        **extra,
    }


# Load ----------------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the clients were told. Only answered requests count as promises."""

    created: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> details
    deleted: set[str] = field(default_factory=set)
    delete_attempts: set[str] = field(default_factory=set)
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)  # op -> status -> count
    unanswered: dict[str, int] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)  # answers that broke a promise
    latencies: dict[str, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, op: str, status: int, seconds: float) -> None:
        with self.lock:
            by = self.statuses.setdefault(op, {})
            by[status] = by.get(status, 0) + 1
            self.latencies.setdefault(op, []).append(seconds)

    def lost(self, op: str) -> None:
        with self.lock:
            self.unanswered[op] = self.unanswered.get(op, 0) + 1

    def total(self, op: str | None = None, status: Callable[[int], bool] = lambda s: True) -> int:
        ops = [op] if op else list(self.statuses)
        return sum(n for o in ops for s, n in self.statuses.get(o, {}).items() if status(s))

    def server_errors(self) -> int:
        return self.total(status=lambda s: s >= 500)


@dataclass
class Identity:
    name: str
    headers: dict[str, str]


class LoadGenerator:
    """Creates, reads, decrypts and deletes against one backend URL from a few threads.

    Every answer is checked against what the ledger already promised: a payload answered 201
    must decrypt to its prompt until a delete is answered 200, and must then be 410.
    """

    def __init__(
        self,
        base: Callable[[], str],
        identities: list[Identity],
        ledger: Ledger,
        *,
        seed: int,
        threads: int = 3,
        mix: dict[str, float] | None = None,
        max_requests: int = 100_000,
        pause: float = 0.0,
    ) -> None:
        self.base = base
        self.identities = identities
        self.ledger = ledger
        self.rng = random.Random(seed)
        self.threads = threads
        self.mix = mix or {"create": 0.5, "decrypt": 0.25, "delete": 0.15, "read": 0.1}
        self.max_requests = max_requests
        self.pause = pause
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._sent = 0
        self._lock = threading.Lock()

    def start(self) -> LoadGenerator:
        self._stop.clear()
        for i in range(self.threads):
            rng = random.Random(self.rng.random())
            t = threading.Thread(target=self._run, args=(rng,), name=f"load-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=30)
        self._workers.clear()

    def _next(self) -> bool:
        with self._lock:
            self._sent += 1
            return self._sent <= self.max_requests

    def _run(self, rng: random.Random) -> None:
        http = requests.Session()
        ops, weights = zip(*self.mix.items(), strict=True)
        while not self._stop.is_set() and self._next():
            op = rng.choices(ops, weights)[0]
            who = rng.choice(self.identities)
            try:
                self._one(http, rng, op, who)
            except requests.RequestException:
                self.ledger.lost(op)
                http = requests.Session()
                self._stop.wait(0.2)
            if self.pause:
                self._stop.wait(self.pause)

    def _mine(self, rng: random.Random, who: Identity, live_only: bool) -> str | None:
        with self.ledger.lock:
            ids = [
                i
                for i, c in self.ledger.created.items()
                if c["who"] == who.name and (not live_only or i not in self.ledger.deleted)
            ]
        return rng.choice(ids) if ids else None

    def _headers(self, who: Identity, payload_id: str | None = None) -> dict[str, str]:
        if payload_id is not None:
            secret = self.ledger.created[payload_id].get("secret")
            if secret:
                return {"X-SLT-Secret": secret}
        return who.headers

    def _one(self, http: requests.Session, rng: random.Random, op: str, who: Identity) -> None:
        base = self.base()
        if op != "create":
            payload_id = self._mine(rng, who, live_only=op == "delete")
            if payload_id is None:
                op = "create"
        started = time.monotonic()
        if op == "create":
            prompt = f"load-{rng.getrandbits(64):016x}"
            resp = http.post(
                f"{base}/generate",
                json={"prompt": prompt, "emotion": "calm"},
                headers=who.headers,
                timeout=30,
            )
            self.ledger.count(op, resp.status_code, time.monotonic() - started)
            if resp.status_code == 201:
                body = resp.json()
                with self.ledger.lock:
                    self.ledger.created[body["token"]["id"]] = {
                        "who": who.name,
                        "prompt": prompt,
                        "commitment": body["token"]["chain"]["commitment"],
                        "secret": body.get("secret"),
                    }
            return
        assert payload_id is not None
        headers = self._headers(who, payload_id)
        deleted_before = payload_id in self.ledger.deleted  # answered before this was sent
        if op == "decrypt":
            resp = http.post(f"{base}/tokens/{payload_id}/decrypt", headers=headers, timeout=30)
        elif op == "delete":
            with self.ledger.lock:
                self.ledger.delete_attempts.add(payload_id)
            resp = http.delete(f"{base}/tokens/{payload_id}", headers=headers, timeout=30)
        else:
            resp = http.get(f"{base}/tokens/{payload_id}", headers=headers, timeout=30)
        self.ledger.count(op, resp.status_code, time.monotonic() - started)
        if op == "delete" and resp.status_code == 200:
            with self.ledger.lock:
                self.ledger.deleted.add(payload_id)
        elif op == "decrypt":
            expected = self.ledger.created[payload_id]["prompt"]
            if resp.status_code == 200 and resp.json().get("prompt") != expected:
                self.ledger.wrong.append(f"{payload_id}: decrypt returned another prompt")
            if resp.status_code == 200 and deleted_before:
                self.ledger.wrong.append(f"{payload_id}: decrypted after its delete was answered")
            if resp.status_code not in (200, 410):
                self.ledger.wrong.append(f"{payload_id}: decrypt answered {resp.status_code}")


def wait_until(predicate: Callable[[], Any], timeout: float, step: float = 0.2) -> float:
    """Poll until true; returns the seconds it took. Raises AssertionError on timeout."""
    began = time.monotonic()
    deadline = began + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic() - began
        time.sleep(step)
    if predicate():
        return time.monotonic() - began
    raise AssertionError(f"condition not met in {timeout}s")


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


# Flood (run as its own process so the measuring client does not share a GIL with it) --------


def flood(url: str, headers: dict[str, str], seconds: float, threads: int, source_ip: str) -> None:
    """Send creates and reads as fast as possible, for at most ``seconds`` or until SIGINT.

    Prints the counts so far every half second, and a JSON summary (statuses per kind, median
    latency, duration) as its last line.
    """
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    counts: dict[str, dict[str, int]] = {"create": {}, "read": {}}
    times: list[float] = []
    lock = threading.Lock()
    began = time.monotonic()

    def run(i: int) -> None:
        http = http_session(source_ip)
        kind = "create" if i % 2 == 0 else "read"
        n = 0
        while not done.is_set() and n < 200_000:
            n += 1
            sent = time.monotonic()
            try:
                if kind == "create":
                    r = http.post(f"{url}/generate", json={"prompt": "flood"}, headers=headers,
                                  timeout=10)  # fmt: skip
                else:
                    r = http.get(f"{url}/tokens", headers=headers, timeout=10)
                key = str(r.status_code)
            except requests.RequestException:
                key = "error"
            with lock:
                counts[kind][key] = counts[kind].get(key, 0) + 1
                times.append(time.monotonic() - sent)

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    deadline = began + seconds
    while not done.wait(0.5) and time.monotonic() < deadline:
        with lock:
            print(json.dumps({"progress": counts}), flush=True)
    done.set()
    for w in workers:
        w.join(timeout=15)
    with lock:
        summary = {"counts": counts, "p50": percentile(times, 50), "n": len(times),
                   "seconds": time.monotonic() - began}  # fmt: skip
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":  # python hardening_support.py flood URL HEADERS SECONDS THREADS IP
    if len(sys.argv) == 7 and sys.argv[1] == "flood":
        flood(sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]),
              sys.argv[6])  # fmt: skip
    else:
        sys.exit("usage: hardening_support.py flood URL HEADERS_JSON SECONDS THREADS SOURCE_IP")
