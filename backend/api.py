"""HTTP endpoints: thin blueprints over the vault, the auth service and the store.

Request shapes of the original app still work: ``POST /generate`` with
``{"prompt", "emotion"?, "user_id"?}`` and ``DELETE /delete/<token_id>``.
"""

from __future__ import annotations

import base64
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException

from .auth import Auth
from .chain import Chain
from .config import Settings
from .errors import BackendError, BadRequest, ChainUnavailable, NotFound, Unauthorized
from .openapi import openapi_document
from .payloads import (
    EMOTIONS,
    Plaintext,
    check_emotion,
    check_prompt,
    check_upload,
    text_plaintext,
)
from .ratelimit import RateLimiter
from .store import Payload, SQLiteStore
from .vault import Identity, Vault
from .worker import Worker

log = logging.getLogger(__name__)
WEB_DIST = Path(__file__).parent / "web" / "dist"
CHAIN_NAMES = {
    1: "Ethereum",
    11155111: "Sepolia",
    84532: "Base Sepolia",
    421614: "Arbitrum Sepolia",
}


@dataclass
class Services:
    settings: Settings
    store: SQLiteStore
    chain: Chain
    vault: Vault
    auth: Auth
    worker: Worker
    limiter: RateLimiter


def services() -> Services:
    return current_app.extensions["slt"]  # type: ignore[no-any-return]


# Identity and rate limits ---------------------------------------------------------------------


def identity() -> Identity:
    """The caller, from ``Authorization: Bearer`` and/or ``X-SLT-Secret``. Bad tokens are 401."""
    if "slt_identity" in g:
        return cast(Identity, g.slt_identity)
    address = None
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise BadRequest("Authorization must be 'Bearer <token>'.", code="invalid_auth_header")
        address = services().auth.session(token.strip()).address
    secret = request.headers.get("X-SLT-Secret") or None
    who = g.slt_identity = Identity(address=address, secret=secret)
    return who


def _wallet_key() -> str:
    """Rate-limit key: the signed-in wallet if any, else the client address."""
    try:
        who = identity()
    except BackendError:
        who = Identity()
    return f"wallet:{who.address}" if who.address else f"ip:{request.remote_addr}"


F = TypeVar("F", bound=Callable[..., Any])


def _limited(limit: str, scope: str) -> Callable[[F], F]:
    """Two budgets of ``limit``: one per signed-in wallet and one per IP (anonymous, the IP's).

    Every endpoint with the same ``scope`` draws on the same budgets, so that the read limit
    bounds a wallet's reads in all, not each read endpoint separately.
    """
    wallet_scope, ip_scope = f"{scope}:w", f"{scope}:ip"

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def limited(*args: Any, **kwargs: Any) -> Any:
            limiter = services().limiter
            if limiter.enabled:
                ip_key, wallet_key = f"ip:{request.remote_addr}", _wallet_key()
                # Anonymous, the "wallet" is the address: its budget would be the IP's again,
                # counted twice: one hit instead of two on every anonymous request.
                if wallet_key != ip_key:
                    limiter.hit(limit, wallet_scope, wallet_key)
                limiter.hit(limit, ip_scope, ip_key)
            return fn(*args, **kwargs)

        return cast(F, limited)

    return wrap


# Serialisation --------------------------------------------------------------------------------


def _status(p: Payload, now: float) -> str:
    if p.status in ("pending_mint", "minted") and p.expires_at is not None and now >= p.expires_at:
        return "expired"
    return p.status


def chain_fields(p: Payload) -> dict[str, Any]:
    s = services()
    return {
        "token_id": p.chain_token_id,
        "contract": s.chain.address,
        "chain_id": s.chain.chain_id,
        "commitment": "0x" + p.commitment.hex(),
        "status": _status(p, s.vault.clock()),
        "mint_tx": p.mint_tx,
        "burn_tx": p.burn_tx,
        "owner": p.owner,
    }


def token_status(p: Payload) -> dict[str, Any]:
    return {
        "id": p.id,
        "kind": p.kind,
        "content_type": p.content_type,
        "size": p.size,
        "created_at": p.created_at,
        "expires_at": p.expires_at,
        "switchable": p.switchable,
        "persistent": p.status == "persistent",
        "status": _status(p, services().vault.clock()),
        "shredded_at": p.shredded_at,
        "reward_score": p.reward_score,
        "chain": chain_fields(p),
    }


def receipt(p: Payload) -> dict[str, Any]:
    return {
        "token": p.id,
        "token_id": p.chain_token_id,
        "commitment": "0x" + p.commitment.hex(),
        "shredded_at": p.shredded_at,
        "burn_status": p.burn_status or "pending",
        "burn_tx": p.burn_tx,
    }


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


# Request parsing ------------------------------------------------------------------------------


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.", code="invalid_json")
    return body


def _ttl(value: Any, settings: Settings) -> int:
    if value is None or value == "":
        return settings.default_ttl
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdecimal() and len(text) <= 12):
            raise BadRequest("'ttl_seconds' must be a whole number of seconds.", code="invalid_ttl")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest("'ttl_seconds' must be a whole number of seconds.", code="invalid_ttl")
    if not 60 <= value <= settings.max_ttl:
        raise BadRequest(
            f"'ttl_seconds' must be between 60 and {settings.max_ttl}.", code="invalid_ttl"
        )
    return value


def _flag(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "on", "off"):
        return value.lower() in ("true", "1", "on")
    raise BadRequest("'switchable' must be true or false.", code="invalid_switchable")


def _user_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 128:
        raise BadRequest("'user_id' must be a string of at most 128 characters.", code="bad_user")
    return value


# Blueprints -----------------------------------------------------------------------------------

tokens = Blueprint("tokens", __name__)
auth_bp = Blueprint("auth", __name__, url_prefix="/auth")
meta = Blueprint("meta", __name__)


@tokens.post("/generate")
@_limited("create", "create")
def generate() -> tuple[Response, int]:
    s = services()
    settings = s.settings
    who = identity()
    plain: Plaintext
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise BadRequest("Send the image or audio clip as the 'file' field.", code="no_file")
        data = upload.stream.read(settings.max_upload_bytes + 1)
        content_type, kind = check_upload(data, upload.mimetype, settings.max_upload_bytes)
        emotion = check_emotion(request.form.get("emotion"))
        plain = Plaintext(kind, content_type, data, emotion)
        form: dict[str, Any] = request.form.to_dict()
    else:
        form = _json_body()
        if "prompt" not in form:
            raise BadRequest("Missing 'prompt'.", code="missing_prompt")
        plain = text_plaintext(
            check_prompt(form["prompt"], settings.max_prompt_chars),
            check_emotion(form.get("emotion")),
        )
    ttl = _ttl(form.get("ttl_seconds"), settings)
    switchable = _flag(form.get("switchable"), True)
    user_id = _user_id(form.get("user_id")) or who.address or "anonymous"
    created = s.vault.create(plain, who.address, ttl, switchable)
    p = created.payload
    body: dict[str, Any] = {
        "response": f"Token {p.id} created.",
        "token": {
            "id": p.id,
            "metadata": {
                "encrypted_emotion": _b64(created.emotion_ct),
                "encrypted_thought": _b64(created.ciphertext),
                "created_at": p.created_at,
                "expires_at": p.expires_at,
                "switchable": p.switchable,
                "digital_twin": {"user_id": user_id},
                "reward_score": p.reward_score,
                "kind": p.kind,
                "content_type": p.content_type,
            },
            "value": "Symbiotic Learning Token",
            "blockchain": "Ethereum",
            "chain": chain_fields(p),
        },
    }
    if created.secret:
        body["secret"] = created.secret
    return jsonify(body), 201


@tokens.get("/tokens")
@_limited("read", "read")
def list_tokens() -> Response:
    who = identity()
    if who.address is None:
        raise Unauthorized("Sign in to list your tokens.", code="auth_required")
    s = services()
    mine = s.store.list_for_owner(who.address)
    return jsonify({"tokens": [token_status(p) for p in mine], "server_time": s.vault.clock()})


@tokens.get("/tokens/<payload_id>")
@_limited("read", "read")
def get_token(payload_id: str) -> Response:
    return jsonify(token_status(services().vault.get_authorized(payload_id, identity())))


@tokens.post("/tokens/<payload_id>/decrypt")
@_limited("read", "read")
def decrypt(payload_id: str) -> Response:
    opened = services().vault.open(payload_id, identity())
    p = opened.payload
    if p.kind == "text":
        return jsonify(
            {"id": p.id, "kind": "text", "prompt": opened.body.decode(), "emotion": opened.emotion}
        )
    return jsonify(
        {
            "id": p.id,
            "kind": p.kind,
            "content_type": p.content_type,
            "data_base64": base64.b64encode(opened.body).decode(),
        }
    )


@tokens.post("/tokens/<payload_id>/persist")
@_limited("read", "read")
def persist(payload_id: str) -> tuple[Response, int]:
    return jsonify(services().vault.persist(payload_id, identity())), 202


@tokens.delete("/tokens/<payload_id>")
@tokens.delete("/delete/<payload_id>")
@_limited("read", "read")
def delete(payload_id: str) -> Response:
    p = services().vault.delete(payload_id, identity())
    return jsonify({"response": f"Token {p.id} deleted, data swiped clean.", "receipt": receipt(p)})


@tokens.get("/tokens/<payload_id>/receipt")
@_limited("read", "read")
def get_receipt(payload_id: str) -> Response:
    return jsonify(receipt(services().vault.get_authorized(payload_id, identity())))


@auth_bp.get("/nonce")
@_limited("read", "nonce")
def nonce() -> Response:
    return jsonify(services().auth.new_nonce())


@auth_bp.post("/verify")
@_limited("create", "sign-in")
def verify() -> Response:
    body = _json_body()
    return jsonify(services().auth.verify(body.get("message"), body.get("signature")))


@auth_bp.get("/session")
@_limited("read", "meta")
def session() -> Response:
    who = identity()
    if who.address is None:
        raise Unauthorized("Not signed in.", code="auth_required")
    token = request.headers["Authorization"].partition(" ")[2].strip()
    found = services().auth.session(token)
    return jsonify(
        {"address": found.address, "chain_id": found.chain_id, "expires_at": found.expires_at}
    )


@auth_bp.post("/logout")
def logout() -> tuple[str, int]:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        services().auth.logout(token.strip())
    return "", 204


@meta.get("/metadata/<int:token_id>")
@_limited("read", "meta")
def metadata(token_id: int) -> Response:
    s = services()
    p = s.store.get_by_chain_id(token_id)
    if p is None:
        raise NotFound(f"There is no token #{token_id} here.", code="token_not_found")
    status = _status(p, s.vault.clock())
    return jsonify(
        {
            "name": f"Symbiotic Learning Token #{token_id}",
            "description": "Receipt for one encrypted, owner-controlled AI payload held"
            " off-chain. The payload itself is never published.",
            "attributes": [
                {"trait_type": "status", "value": status},
                {"trait_type": "persistent", "value": p.status == "persistent"},
                {"trait_type": "switchable", "value": p.switchable},
                {"display_type": "date", "trait_type": "expires", "value": p.end_time or None},
                {"trait_type": "commitment", "value": "0x" + p.commitment.hex()},
            ],
        }
    )


@meta.get("/health")
@_limited("read", "meta")
def health() -> tuple[Response, int]:
    s = services()
    chain: dict[str, Any] = {"ok": False, "block": None, "chain_id": s.chain.chain_id}
    # Always asks the chain (a health check must see it come back), and tells the vault, whose
    # reads skip the chain for a few seconds after it failed to answer.
    try:
        chain["block"] = s.chain.block_number()
        chain["ok"] = True
        s.vault.note_chain_up()
    except ChainUnavailable:
        s.vault.note_chain_down()
    counts = s.store.outbox_counts()
    ok = chain["ok"]
    body = {
        "status": "ok" if ok else "degraded",
        "chain": chain,
        "outbox": {"pending": sum(counts.values()), **counts},
        "store": "ok",
    }
    return jsonify(body), 200


@meta.get("/config")
def config() -> Response:
    s = services()
    return jsonify(
        {
            "chain_id": s.chain.chain_id,
            "chain_name": CHAIN_NAMES.get(s.chain.chain_id, f"Local chain {s.chain.chain_id}"),
            "rpc_url": s.settings.rpc_url,
            "contract": s.chain.address,
            "max_upload_bytes": s.settings.max_upload_bytes,
            "emotions": list(EMOTIONS),
            "default_ttl_seconds": s.settings.default_ttl,
            "max_ttl_seconds": s.settings.max_ttl,
            "server_time": s.vault.clock(),
        }
    )


@meta.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())


@meta.get("/")
def index() -> Response:
    return _web_file("index.html")


@meta.get("/assets/<path:name>")
def asset(name: str) -> Response:
    return _web_file(name)


def _web_file(name: str) -> Response:
    if not (WEB_DIST / "index.html").exists():
        raise NotFound("The page is not built: run `make run`.", code="page_not_built")
    return send_from_directory(WEB_DIST, name, max_age=0)


# Errors and headers ---------------------------------------------------------------------------

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", CSP),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)


def _error(exc: BackendError | HTTPException) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, BackendError):
        body, status, headers = exc.to_dict(), exc.status_code, exc.headers
    else:
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_")
        body = {"code": code, "name": exc.name, "description": exc.description or exc.name}
        if status == 405:
            allow = exc.get_response().headers.get("Allow")
            if allow:
                headers = {"Allow": allow}
    resp = jsonify(body)
    resp.status_code = status
    resp.headers.update(headers)
    return resp


def register(app: Flask) -> None:
    app.register_blueprint(tokens)
    app.register_blueprint(auth_bp)
    app.register_blueprint(meta)
    app.register_error_handler(BackendError, _error)
    app.register_error_handler(HTTPException, _error)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.path)
        return _error(BackendError("Something went wrong on our side; nothing was changed."))

    @app.after_request
    def _headers(resp: Response) -> Response:
        h = resp.headers
        h.extend(SECURITY_HEADERS)  # no handler sets these: add, without a search for each
        if not request.path.startswith("/assets/"):
            h["Cache-Control"] = "no-store"
        origin = request.headers.get("Origin")
        if origin and origin in services().settings.allowed_origins:
            h["Access-Control-Allow-Origin"] = origin
            h["Access-Control-Allow-Headers"] = "Authorization, Content-Type, X-SLT-Secret"
            h["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
            h["Access-Control-Max-Age"] = "600"
        h.add("Vary", "Origin")
        return resp
