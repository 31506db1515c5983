"""Building blocks of the browser tests: Anvil, the injected EIP-1193 wallet, a request
recorder, and a tiny server for the built page (with a GET /config stub, and optionally an
in-memory fake of docs/API.md for design previews).

The page never talks to Anvil itself: the wallet injected into the page forwards each
``request()`` to :meth:`InjectedWallet.handle` in this process, which answers wallet methods
itself (accounts, signatures, chain switching) and forwards the rest to a real Anvil.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "backend" / "web"
DIST = WEB / "dist"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"

CHROMIUM = os.environ.get("SLT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# The CSP the backend applies to the page (kept identical here so the tests catch violations).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'"
)

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_CHAIN_ID = 31337

USER_REJECTED = 4001
UNAUTHORIZED = 4100
UNSUPPORTED_METHOD = 4200
UNRECOGNIZED_CHAIN = 4902


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Anvil
# --------------------------------------------------------------------------------------------


def find_anvil() -> str | None:
    """The Anvil binary: `make setup`'s link, npm's platform package, or PATH."""
    candidates = [str(ROOT / ".cache" / "bin" / "anvil")]
    candidates += sorted(glob.glob(str(ROOT / "node_modules/@foundry-rs/anvil-*/bin/anvil")))
    candidates.append(str(ROOT / "node_modules" / ".bin" / "anvil"))
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return shutil.which("anvil")


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class Anvil:
    """One `anvil --port <free> --silent` process, with a minimal JSON-RPC client."""

    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._ids = 0
        self._lock = threading.Lock()

    def start(self, timeout: float = 20.0) -> Anvil:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--silent"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"anvil exited with {self.process.returncode}: {err}")
            try:
                self.chain_id = int(self.rpc("eth_chainId"), 16)
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"anvil did not answer on {self.url} within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        with self._lock:
            self._ids += 1
            rid = self._ids
        body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or []})
        req = urllib.request.Request(
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=15) as resp:
            answer = json.loads(resp.read())
        if "error" in answer:
            e = answer["error"]
            raise RpcError(int(e.get("code", -32603)), str(e.get("message", "")), e.get("data"))
        return answer["result"]

    def increase_time(self, seconds: int) -> int:
        """Move the chain's clock forward and mine a block; returns that block's timestamp."""
        self.rpc("evm_increaseTime", [int(seconds)])
        self.rpc("evm_mine")
        return int(self.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    def wait_for_receipt(self, tx_hash: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            receipt = self.rpc("eth_getTransactionReceipt", [tx_hash])
            if receipt:
                return receipt
            time.sleep(0.05)
        raise TimeoutError(f"no receipt for {tx_hash}")


_DEV_KEYS: list[str] = []


def dev_private_keys(n: int = 10) -> list[str]:
    """Anvil's well-known dev keys (its default mnemonic, m/44'/60'/0'/0/i)."""
    if len(_DEV_KEYS) < n:
        from eth_account import Account

        Account.enable_unaudited_hdwallet_features()
        _DEV_KEYS[:] = [
            Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key.hex()
            for i in range(n)
        ]
    return [k if k.startswith("0x") else "0x" + k for k in _DEV_KEYS[:n]]


def dev_address(index: int) -> str:
    from eth_account import Account

    return Account.from_key(dev_private_keys(index + 1)[index]).address


# --------------------------------------------------------------------------------------------
# The injected wallet
# --------------------------------------------------------------------------------------------


def _icon(letter: str, color: str) -> str:
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
        f'<rect width="32" height="32" rx="8" fill="{color}"/>'
        '<text x="16" y="21.5" font-family="sans-serif" font-size="15" font-weight="700" '
        f'text-anchor="middle" fill="#fff">{letter}</text></svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


@dataclass
class WalletInfo:
    """What a wallet announces through EIP-6963."""

    name: str = "Test Wallet"
    rdns: str = "org.slt.testwallet"
    uuid: str = field(default_factory=lambda: _uuid4())
    icon: str = field(default_factory=lambda: _icon("T", "#3b6fd6"))

    def as_js(self) -> dict[str, str]:
        return {"uuid": self.uuid, "name": self.name, "icon": self.icon, "rdns": self.rdns}


def _uuid4() -> str:
    import uuid

    return str(uuid.uuid4())


_INIT_SCRIPT = r"""
(() => {
  const cfg = __CONFIG__;
  if (!cfg.inject) return;
  const providers = cfg.wallets.map((info, index) => {
    const listeners = new Map();
    const emit = (event, data) => {
      for (const fn of [...(listeners.get(event) || [])]) {
        try { fn(data); } catch (e) { console.error(e); }
      }
    };
    const provider = {
      isSltTestWallet: true,
      async request(args) {
        if (!args || typeof args.method !== 'string') {
          const e = new Error('Invalid request'); e.code = -32600; throw e;
        }
        const params = args.params === undefined ? null : args.params;
        const answer = await window.__sltWalletRequest(index, args.method, params);
        for (const [event, data] of answer.events || []) emit(event, data);
        if (answer.error) {
          const e = new Error(answer.error.message);
          e.code = answer.error.code;
          if (answer.error.data !== undefined) e.data = answer.error.data;
          throw e;
        }
        return answer.result;
      },
      on(event, fn) {
        if (!listeners.has(event)) listeners.set(event, new Set());
        listeners.get(event).add(fn);
        return provider;
      },
      removeListener(event, fn) {
        listeners.get(event)?.delete(fn);
        return provider;
      },
      __emit: emit,
    };
    return { info: Object.freeze({ ...info }), provider };
  });
  window.__sltTestWallets = providers;
  window.__sltWalletEmit = (event, data) => {
    for (const p of providers) p.provider.__emit(event, data);
  };
  if (cfg.legacy && providers.length) window.ethereum = providers[0].provider;
  if (cfg.announce) {
    const announce = () => {
      for (const p of providers) {
        const detail = Object.freeze({ ...p });
        window.dispatchEvent(new CustomEvent('eip6963:announceProvider', { detail }));
      }
    };
    window.addEventListener('eip6963:requestProvider', announce);
    announce();
  }
})();
"""


class InjectedWallet:
    """An EIP-1193 wallet living in this Python process, injected into every page.

    Configure it before the page opens (``inject``, ``wallets``, ``announce``, ``legacy``) or at
    any time (``account_index``, ``chain_id``, ``reject``, ``errors``, ``known_chains``).
    """

    def __init__(self, anvil: Anvil | None) -> None:
        self.anvil = anvil
        self.inject = True
        self.announce = True  # EIP-6963
        self.legacy = True  # window.ethereum = the first wallet
        self.wallets = [WalletInfo()]
        self.account_index = 0
        self.chain_id = anvil.chain_id if anvil else ANVIL_CHAIN_ID
        self.known_chains = {self.chain_id, 1}
        self.reject: set[str] = set()  # methods that answer 4001 (user rejected)
        self.errors: dict[str, tuple[int, str]] = {}  # method -> (code, message)
        self.connected = False
        self.calls: list[tuple[int, str, Any]] = []
        self.transactions: list[tuple[dict[str, Any], str]] = []
        self.on_transaction: list[Callable[[dict[str, Any], str], None]] = []
        self._lock = threading.Lock()

    # -- configuration helpers --------------------------------------------------------------

    @property
    def address(self) -> str:
        return dev_address(self.account_index)

    @property
    def private_key(self) -> str:
        return dev_private_keys(self.account_index + 1)[self.account_index]

    def use_wallets(self, *names: str) -> None:
        colors = ["#3b6fd6", "#e2761b", "#7b4fd6", "#1c9c6c"]
        self.wallets = [
            WalletInfo(
                name=n,
                rdns=f"org.slt.test.{n.lower().replace(' ', '')}",
                icon=_icon(n[:1].upper(), colors[i % len(colors)]),
            )
            for i, n in enumerate(names)
        ]

    def methods_called(self) -> list[str]:
        return [m for _, m, _ in self.calls]

    def params_of(self, method: str) -> list[Any]:
        return [p for _, m, p in self.calls if m == method]

    def init_script(self) -> str:
        cfg = {
            "inject": self.inject,
            "announce": self.announce,
            "legacy": self.legacy,
            "wallets": [w.as_js() for w in self.wallets],
        }
        return _INIT_SCRIPT.replace("__CONFIG__", json.dumps(cfg))

    def install(self, context: Any) -> None:
        """Expose the bridge on a Playwright BrowserContext and inject the provider script.

        Call before the page is created (``Dapp.open`` does it)."""
        context.expose_binding(
            "__sltWalletRequest",
            lambda _source, index, method, params: self.handle(method, params, index),
        )
        context.add_init_script(script=self.init_script())

    def emit(self, page: Any, event: str, data: Any) -> None:
        """Fire an EIP-1193 event (accountsChanged, chainChanged, ...) in the page."""
        page.evaluate("([e, d]) => window.__sltWalletEmit(e, d)", [event, data])

    # -- the bridge ---------------------------------------------------------------------------

    def handle(self, method: str, params: Any, index: int = 0) -> dict[str, Any]:
        with self._lock:
            self.calls.append((index, method, params))
        try:
            if method in self.errors:
                code, message = self.errors[method]
                raise RpcError(code, message)
            if method in self.reject:
                raise RpcError(USER_REJECTED, "User rejected the request.")
            return self._dispatch(method, list(params or []))
        except RpcError as e:
            error: dict[str, Any] = {"code": e.code, "message": e.message}
            if e.data is not None:
                error["data"] = e.data
            return {"error": error}
        except Exception as e:  # noqa: BLE001 - surface bugs to the page as internal errors
            return {"error": {"code": -32603, "message": f"test wallet: {e!r}"}}

    def _dispatch(self, method: str, params: list[Any]) -> dict[str, Any]:
        if method == "eth_requestAccounts":
            self.connected = True
            return {"result": [self.address]}
        if method == "eth_accounts":
            return {"result": [self.address] if self.connected else []}
        if method == "eth_chainId":
            return {"result": hex(self.chain_id)}
        if method == "net_version":
            return {"result": str(self.chain_id)}
        if method == "wallet_switchEthereumChain":
            target = int(params[0]["chainId"], 16)
            if target not in self.known_chains:
                raise RpcError(
                    UNRECOGNIZED_CHAIN, f"Unrecognized chain ID {hex(target)}. Add it first."
                )
            return self._set_chain(target)
        if method == "wallet_addEthereumChain":
            target = int(params[0]["chainId"], 16)
            self.known_chains.add(target)
            return self._set_chain(target)
        if method == "personal_sign":
            return {"result": self._personal_sign(params)}
        if method == "eth_sendTransaction":
            return {"result": self._send_transaction(params[0])}
        if method.startswith("eth_") and self.anvil is not None:
            return {"result": self.anvil.rpc(method, params)}
        raise RpcError(UNSUPPORTED_METHOD, f"The test wallet does not support {method}.")

    def _set_chain(self, target: int) -> dict[str, Any]:
        changed = target != self.chain_id
        self.chain_id = target
        events = [["chainChanged", hex(target)]] if changed else []
        return {"result": None, "events": events}

    def _require_connected(self, address: str) -> None:
        if not self.connected:
            raise RpcError(UNAUTHORIZED, "The site is not connected to this wallet.")
        if address.lower() != self.address.lower():
            raise RpcError(UNAUTHORIZED, f"Unknown account {address}.")

    def _personal_sign(self, params: list[Any]) -> str:
        from eth_account import Account
        from eth_account.messages import encode_defunct

        data, address = params[0], params[1]
        self._require_connected(address)
        raw = (
            bytes.fromhex(data[2:])
            if isinstance(data, str) and data.startswith("0x")
            else str(data).encode()
        )
        signed = Account.sign_message(encode_defunct(primitive=raw), self.private_key)
        sig = signed.signature.hex()
        return sig if sig.startswith("0x") else "0x" + sig

    def _send_transaction(self, tx: dict[str, Any]) -> str:
        self._require_connected(tx.get("from", ""))
        if self.anvil is None:
            raise RpcError(-32603, "The test wallet has no node to send to.")
        if self.chain_id != self.anvil.chain_id:
            raise RpcError(
                -32603,
                f"The test wallet is on chain {self.chain_id}; it can only send on Anvil "
                f"({self.anvil.chain_id}).",
            )
        tx_hash = self.anvil.rpc("eth_sendTransaction", [tx])
        with self._lock:
            self.transactions.append((tx, tx_hash))
        for callback in list(self.on_transaction):
            callback(tx, tx_hash)
        return tx_hash


# --------------------------------------------------------------------------------------------
# Request recorder
# --------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    url: str
    resource_type: str
    failure: str | None = None


class RequestRecorder:
    """Records every request, console message and page error of a BrowserContext."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.console: list[tuple[str, str]] = []
        self.page_errors: list[str] = []
        self.websockets: list[str] = []

    def attach_context(self, context: Any) -> None:
        context.on("request", self._on_request)
        context.on("requestfailed", self._on_failed)

    def attach_page(self, page: Any) -> None:
        page.on("console", lambda m: self.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("websocket", lambda ws: self.websockets.append(ws.url))

    def _on_request(self, request: Any) -> None:
        self.requests.append(RecordedRequest(request.method, request.url, request.resource_type))

    def _on_failed(self, request: Any) -> None:
        for r in reversed(self.requests):
            if r.url == request.url and r.failure is None:
                r.failure = request.failure or "failed"
                break

    def urls(self) -> list[str]:
        return [r.url for r in self.requests]

    def foreign(self, origin: str) -> list[str]:
        """Requests to anything but ``origin`` (data: and blob: URLs are local)."""
        origin = origin.rstrip("/")
        return [
            r.url
            for r in self.requests
            if not (r.url == origin or r.url.startswith(origin + "/"))
            and not r.url.startswith(("data:", "blob:"))
        ] + self.websockets

    def api_calls(self, origin: str) -> list[tuple[str, str]]:
        """(method, path) of the page's fetches to ``origin``, in order."""
        origin = origin.rstrip("/")
        return [
            (r.method, r.url[len(origin) :])
            for r in self.requests
            if r.url.startswith(origin + "/") and r.resource_type in ("fetch", "xhr")
        ]

    def csp_violations(self) -> list[str]:
        return [
            text
            for _, text in self.console
            if "Content Security Policy" in text or "Refused to" in text
        ]

    def errors(self, ignore: Iterable[str] = ()) -> list[str]:
        """Console errors and uncaught exceptions, minus expected substrings."""
        found = [t for kind, t in self.console if kind == "error"] + self.page_errors
        return [e for e in found if not any(i in e for i in ignore)]

    def assert_clean(self, origin: str) -> None:
        assert self.foreign(origin) == [], f"requests to other origins: {self.foreign(origin)}"
        assert self.csp_violations() == [], f"CSP violations: {self.csp_violations()}"
        assert self.page_errors == [], f"uncaught errors: {self.page_errors}"


# --------------------------------------------------------------------------------------------
# Static site: the built page, GET /config, and optionally the fake API
# --------------------------------------------------------------------------------------------


# The FakeApi's "contract": an address with no code on the shared Anvil, whatever runs first.
# (0x5FbDB…0aa3, account 0's first deployment, is where the real backend's contract lands when
# its tests run first; the fake flows' persist and burn calls would then hit it and revert.)
FAKE_CONTRACT = "0x5954dA846aE78029Cf083bB5FF0fF289D77d6DEA"  # keccak of a label, never deployed


def default_config(chain_id: int = ANVIL_CHAIN_ID, rpc_url: str = "http://127.0.0.1:8545"):
    return {
        "chain_id": chain_id,
        "chain_name": "Anvil",
        "rpc_url": rpc_url,
        "contract": FAKE_CONTRACT,
        "max_upload_bytes": 5 * 1024 * 1024,
        "emotions": ["joy", "calm", "curiosity", "sadness", "anger", "fear", "surprise"],
        "default_ttl_seconds": 3600,
        "max_ttl_seconds": 30 * 24 * 3600,
        "server_time": time.time(),
    }


def _error(status: int, code: str, description: str):
    from flask import jsonify
    from werkzeug.http import HTTP_STATUS_CODES

    resp = jsonify(
        {"code": code, "name": HTTP_STATUS_CODES.get(status, "Error"), "description": description}
    )
    resp.status_code = status
    return resp


class StaticSite:
    """Serves backend/web/dist like the backend will: ``/`` and ``/assets/<name>``, with the
    CSP. ``GET /config`` answers :attr:`config`; everything else is a JSON 404 unless
    :attr:`fake` (a :class:`FakeApi`) is set, which then answers the API."""

    def __init__(self, dist: Path = DIST) -> None:
        self.dist = dist
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config: dict[str, Any] = default_config()
        self.fake: FakeApi | None = None
        self.config_delay = 0.0
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.app = self._build_app()

    def reset(self, **config: Any) -> None:
        self.config = default_config()
        self.config.update(config)
        self.fake = None
        self.config_delay = 0.0

    def _build_app(self) -> Any:
        from flask import Flask, abort, jsonify, request, send_from_directory

        app = Flask("slt-e2e-static")
        site = self

        @app.after_request
        def headers(resp):  # type: ignore[no-untyped-def]
            resp.headers["Content-Security-Policy"] = CSP
            resp.headers["X-Content-Type-Options"] = "nosniff"
            resp.headers["Referrer-Policy"] = "no-referrer"
            resp.headers["Cache-Control"] = "no-store"
            return resp

        @app.get("/")
        def index():  # type: ignore[no-untyped-def]
            return send_from_directory(site.dist, "index.html")

        @app.get("/assets/<name>")
        def assets(name: str):  # type: ignore[no-untyped-def]
            if "/" in name or name.startswith("."):
                abort(404)
            return send_from_directory(site.dist, name)

        @app.get("/config")
        def config():  # type: ignore[no-untyped-def]
            if site.config_delay:
                time.sleep(site.config_delay)
            now = site.fake.now() if site.fake else time.time()
            return jsonify({**site.config, "server_time": now})

        @app.route(
            "/<path:path>", methods=["GET", "POST", "DELETE", "PUT", "PATCH"], endpoint="api"
        )
        def api(path: str):  # type: ignore[no-untyped-def]
            if site.fake is None:
                return _error(404, "not_found", f"No such endpoint: /{path}")
            return site.fake.dispatch(request, "/" + path)

        return app

    def start(self) -> StaticSite:
        from werkzeug.serving import make_server

        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._server = None


def _selector(signature: str) -> str:
    from eth_utils import keccak

    return "0x" + keccak(text=signature)[:4].hex()


def _rand_hash() -> str:
    return "0x" + secrets.token_hex(32)


class FakeApi:
    """An in-memory stand-in for docs/API.md, for design previews and page flows before the
    real backend exists. It is *not* the contract with the backend (see ``backend_server``).

    It really verifies the EIP-4361 message (with the ``siwe`` library) and signature. Mints,
    burns and persists "happen" after short delays; a wallet transaction calling ``burn`` or
    ``persist`` on :attr:`contract` (seen through :meth:`watch_wallet`) is "noticed" too.
    """

    ACCEPTED = {
        "image": {"image/png", "image/jpeg", "image/gif", "image/webp"},
        "audio": {"audio/webm", "audio/ogg", "audio/mpeg", "audio/wav", "audio/mp4", "audio/x-wav"},
    }

    def __init__(self, site: StaticSite, *, max_upload_bytes: int | None = None) -> None:
        self.site = site
        self.contract = site.config["contract"]
        self.chain_id = int(site.config["chain_id"])
        self.max_upload_bytes = max_upload_bytes or int(site.config["max_upload_bytes"])
        self.mint_delay = 0.8
        self.burn_delay = 1.5
        self.notice_delay = 1.0
        self.nonces: dict[str, float] = {}
        self.sessions: dict[str, str] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.next_token_id = 1
        self.requests: list[tuple[str, str]] = []
        self.verified_messages: list[str] = []
        self._lock = threading.RLock()
        self.clock_offset = 0.0  # seconds the server's clock is ahead of this machine's

    def now(self) -> float:
        return time.time() + self.clock_offset

    def watch_wallet(self, wallet: InjectedWallet) -> None:
        wallet.on_transaction.append(self._on_wallet_tx)

    # -- helpers ------------------------------------------------------------------------------

    def add_token(self, owner: str, **fields: Any) -> dict[str, Any]:
        """Seed a token directly (for screenshots)."""
        now = self.now()
        kind = fields.pop("kind", "text")
        payload = fields.pop("payload", {"prompt": "Hello", "emotion": "calm"})
        ttl = fields.pop("ttl", 3600)
        rec = {
            "id": "token_" + secrets.token_hex(16),
            "owner": owner,
            "kind": kind,
            "content_type": fields.pop(
                "content_type", "text/plain" if kind == "text" else f"{kind}/png"
            ),
            "size": fields.pop("size", 42),
            "created_at": fields.pop("created_at", now),
            "expires_at": None,
            "switchable": fields.pop("switchable", False),
            "persistent": False,
            "status": "pending_mint",
            "shredded_at": None,
            "reward_score": 0.5,
            "payload": payload,
            "token_id": None,
            "commitment": "0x" + hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
            "mint_tx": None,
            "burn_tx": None,
            "burn_status": None,
            "mint_at": now + self.mint_delay,
            "burn_at": None,
            "notice": None,
        }
        rec["expires_at"] = rec["created_at"] + ttl
        rec.update(fields)
        with self._lock:
            self.tokens[rec["id"]] = rec
            if rec["status"] != "pending_mint" and rec["token_id"] is None:
                self._mint(rec)
        return rec

    def _mint(self, rec: dict[str, Any]) -> None:
        rec["token_id"] = self.next_token_id
        self.next_token_id += 1
        rec["mint_tx"] = rec["mint_tx"] or _rand_hash()
        if rec["status"] == "pending_mint":
            rec["status"] = "minted"

    def _advance(self, rec: dict[str, Any]) -> None:
        now = self.now()
        if rec["status"] == "pending_mint" and now >= rec["mint_at"]:
            self._mint(rec)
        notice = rec.get("notice")
        if notice and now >= notice[0]:
            rec["notice"] = None
            if notice[1] == "burn":
                self._shred(rec)
                rec["burn_tx"], rec["burn_status"] = notice[2], "burned"
            elif notice[1] == "persist" and rec["status"] == "minted":
                rec.update(status="persistent", persistent=True, expires_at=None)
        if rec["burn_at"] and now >= rec["burn_at"] and rec["burn_status"] == "pending":
            rec["burn_status"], rec["burn_tx"] = "burned", _rand_hash()
        if (
            rec["status"] in ("pending_mint", "minted")
            and rec["expires_at"]
            and now >= rec["expires_at"]
        ):
            rec["status"] = "expired"
            rec["payload"] = None

    def _shred(self, rec: dict[str, Any]) -> None:
        rec["status"] = "deleted"
        rec["payload"] = None
        rec["shredded_at"] = self.now()

    def _chain(self, rec: dict[str, Any]) -> dict[str, Any]:
        return {
            "token_id": rec["token_id"],
            "contract": self.contract,
            "chain_id": self.chain_id,
            "commitment": rec["commitment"],
            "status": rec["status"],
            "mint_tx": rec["mint_tx"],
            "burn_tx": rec["burn_tx"],
            "owner": rec["owner"],
        }

    def status(self, rec: dict[str, Any]) -> dict[str, Any]:
        keys = ("id", "kind", "content_type", "size", "created_at", "expires_at", "switchable")
        out = {k: rec[k] for k in keys}
        out.update(
            persistent=rec["persistent"],
            status=rec["status"],
            shredded_at=rec["shredded_at"],
            reward_score=rec["reward_score"],
            chain=self._chain(rec),
        )
        return out

    def receipt(self, rec: dict[str, Any]) -> dict[str, Any]:
        return {
            "token": rec["id"],
            "token_id": rec["token_id"],
            "commitment": rec["commitment"],
            "shredded_at": rec["shredded_at"],
            "burn_status": rec["burn_status"] or ("pending" if rec["token_id"] else "not_minted"),
            "burn_tx": rec["burn_tx"],
        }

    def _on_wallet_tx(self, tx: dict[str, Any], tx_hash: str) -> None:
        data = (tx.get("data") or tx.get("input") or "").lower()
        if (tx.get("to") or "").lower() != self.contract.lower() or len(data) < 10:
            return
        token_id = int(data[10:74] or "0", 16)
        action = {_selector("burn(uint256)"): "burn", _selector("persist(uint256)"): "persist"}
        kind = action.get(data[:10])
        with self._lock:
            for rec in self.tokens.values():
                if rec["token_id"] == token_id and kind:
                    rec["notice"] = (self.now() + self.notice_delay, kind, tx_hash)

    # -- HTTP -----------------------------------------------------------------------------------

    def dispatch(self, request: Any, path: str) -> Any:
        from flask import jsonify

        self.requests.append((request.method, path))
        with self._lock:
            for rec in self.tokens.values():
                self._advance(rec)
            method = request.method
            parts = [p for p in path.split("/") if p]
            if path == "/auth/nonce" and method == "GET":
                return jsonify(self._nonce(request))
            if path == "/auth/verify" and method == "POST":
                return self._verify(request)
            if path == "/health":
                return jsonify({"status": "ok"})
            owner = self._session(request)
            if owner is None:
                return _error(401, "unauthorized", "Sign in first: no valid session was sent.")
            if path == "/auth/session":
                return jsonify({"address": owner, "chain_id": self.chain_id, "expires_at": 0})
            if path == "/auth/logout" and method == "POST":
                self.sessions.pop(request.headers["Authorization"].split(" ", 1)[1], None)
                return "", 204
            if path == "/generate" and method == "POST":
                return self._generate(request, owner)
            if path == "/tokens" and method == "GET":
                mine = [self.status(r) for r in self.tokens.values() if r["owner"] == owner]
                return jsonify({"tokens": mine, "server_time": self.now()})
            if len(parts) >= 2 and parts[0] in ("tokens", "delete"):
                rec = self.tokens.get(parts[1])
                if rec is None:
                    return _error(404, "token_not_found", f"No token {parts[1]}.")
                if rec["owner"].lower() != owner.lower():
                    return _error(403, "not_owner", "Only the token's owner may do this.")
                return self._token_action(rec, method, parts[2] if len(parts) > 2 else "")
            return _error(404, "not_found", f"No such endpoint: {method} {path}")

    def _nonce(self, request: Any) -> dict[str, Any]:
        nonce = secrets.token_hex(12)
        self.nonces[nonce] = self.now() + 300
        return {
            "nonce": nonce,
            "domain": request.host,
            "uri": request.host_url.rstrip("/"),
            "chain_id": self.chain_id,
            "statement": "Sign in to Symbiotic Learning Token to read and manage your tokens.",
            "expires_at": self.nonces[nonce],
        }

    def _verify(self, request: Any) -> Any:
        from flask import jsonify
        from siwe import SiweMessage, VerificationError

        body = request.get_json(silent=True) or {}
        message, signature = body.get("message", ""), body.get("signature", "")
        try:
            parsed = SiweMessage.from_message(message)
        except Exception as e:  # noqa: BLE001
            return _error(400, "bad_siwe_message", f"Not an EIP-4361 message: {e}")
        if parsed.prepare_message() != message:
            return _error(400, "bad_siwe_message", "The message is not in canonical form.")
        if self.nonces.pop(parsed.nonce, 0) < self.now():
            return _error(401, "bad_nonce", "Unknown or expired nonce.")
        try:
            parsed.verify(
                signature,
                domain=request.host,
                uri=request.host_url.rstrip("/"),
                chain_id=self.chain_id,
                nonce=parsed.nonce,
                strict=True,
            )
        except VerificationError as e:
            return _error(401, "bad_signature", f"Sign-in failed: {type(e).__name__}.")
        token = secrets.token_urlsafe(24)
        self.sessions[token] = parsed.address
        self.verified_messages.append(message)
        return jsonify(
            {
                "token": token,
                "address": parsed.address,
                "chain_id": self.chain_id,
                "expires_at": self.now() + 900,
            }
        )

    def _session(self, request: Any) -> str | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        return self.sessions.get(auth.split(" ", 1)[1])

    def _generate(self, request: Any, owner: str) -> Any:
        from flask import jsonify

        if request.is_json:
            body = request.get_json()
            prompt = body.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                return _error(400, "bad_request", "prompt must be a non-empty string.")
            kind, content_type, payload = "text", "text/plain", {"prompt": prompt}
            payload["emotion"] = body.get("emotion")
            size = len(prompt.encode())
            ttl, switchable = body.get("ttl_seconds", 3600), bool(body.get("switchable"))
        else:
            file = request.files.get("file")
            if file is None:
                return _error(400, "bad_request", "Send a prompt as JSON or a file as multipart.")
            data = file.read()
            content_type = (file.mimetype or "").lower()
            kind = content_type.split("/")[0]
            if len(data) > self.max_upload_bytes:
                return _error(
                    413,
                    "payload_too_large",
                    f"The upload is {len(data)} bytes; the limit is {self.max_upload_bytes}.",
                )
            if content_type not in self.ACCEPTED.get(kind, set()):
                return _error(
                    415,
                    "unsupported_media_type",
                    f"{content_type or 'This type'} is not supported; send PNG, JPEG, GIF or "
                    "WebP images, or WebM, Ogg, MP3 or WAV audio.",
                )
            payload = {"data": data}
            size = len(data)
            ttl = int(request.form.get("ttl_seconds", 3600))
            switchable = request.form.get("switchable") == "true"
        rec = self.add_token(
            owner,
            kind=kind,
            content_type=content_type,
            payload=payload,
            size=size,
            ttl=int(ttl),
            switchable=switchable,
        )
        status = self.status(rec)
        answer = {
            "response": f"Token {rec['id']} created.",
            "token": {
                "id": rec["id"],
                "metadata": {
                    "created_at": rec["created_at"],
                    "expires_at": rec["expires_at"],
                    "switchable": switchable,
                    "kind": kind,
                    "content_type": content_type,
                },
                "value": "Symbiotic Learning Token",
                "blockchain": "Ethereum",
                "chain": status["chain"],
            },
        }
        resp = jsonify(answer)
        resp.status_code = 201
        return resp

    def _token_action(self, rec: dict[str, Any], method: str, action: str) -> Any:
        from flask import jsonify

        gone = rec["status"] in ("expired", "deleted")
        if method == "GET" and action == "":
            return jsonify(self.status(rec))
        if method == "GET" and action == "receipt":
            if rec["status"] != "deleted":
                return _error(404, "no_receipt", "This token has not been deleted.")
            return jsonify(self.receipt(rec))
        if method == "POST" and action == "decrypt":
            if gone:
                return _error(410, "token_gone", f"Token {rec['id']} is {rec['status']}.")
            p = rec["payload"]
            if rec["kind"] == "text":
                text = {"id": rec["id"], "kind": "text", "prompt": p["prompt"]}
                return jsonify({**text, "emotion": p["emotion"]})
            return jsonify(
                {
                    "id": rec["id"],
                    "kind": rec["kind"],
                    "content_type": rec["content_type"],
                    "data_base64": base64.b64encode(p["data"]).decode(),
                }
            )
        if method == "POST" and action == "persist":
            if gone:
                return _error(410, "token_gone", f"Token {rec['id']} is {rec['status']}.")
            if not rec["switchable"]:
                return _error(409, "not_switchable", "This token was minted not switchable.")
            if rec["token_id"] is None:
                return _error(409, "not_minted", "The token is not minted yet; try again soon.")
            data = _selector("persist(uint256)") + format(rec["token_id"], "064x")
            resp = jsonify(
                {
                    "status": "awaiting_wallet",
                    "transaction": {"to": self.contract, "data": data, "chain_id": self.chain_id},
                }
            )
            resp.status_code = 202
            return resp
        if method == "DELETE" and action == "":
            if rec["status"] == "deleted":
                return _error(410, "token_gone", "Already deleted.")
            self._shred(rec)
            rec["burn_status"] = "pending" if rec["token_id"] else "not_minted"
            rec["burn_at"] = self.now() + self.burn_delay
            answer = {"response": f"Token {rec['id']} deleted.", "receipt": self.receipt(rec)}
            return jsonify(answer)
        return _error(405, "method_not_allowed", f"{method} is not allowed here.")
