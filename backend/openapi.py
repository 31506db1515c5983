"""The OpenAPI 3.0 description of the HTTP API, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from .payloads import EMOTIONS

_ERROR = {"$ref": "#/components/schemas/Error"}
_ID = {"name": "payload_id", "in": "path", "required": True, "schema": {"type": "string"}}
_NULLABLE_STR = {"type": "string", "nullable": True}
_NULLABLE_NUM = {"type": "number", "nullable": True}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(c): {"description": "error", "content": {"application/json": {"schema": _ERROR}}}
        for c in codes
    }


def _ok(schema: dict[str, Any], status: int = 200) -> dict[str, Any]:
    return {str(status): {"description": "ok", "content": {"application/json": {"schema": schema}}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_SECURED: list[dict[str, list[str]]] = [{"session": []}, {"secret": []}, {}]

_CHAIN = {
    "type": "object",
    "required": ["contract", "chain_id", "commitment", "status", "owner"],
    "properties": {
        "token_id": {"type": "integer", "nullable": True},
        "contract": {"type": "string"},
        "chain_id": {"type": "integer"},
        "commitment": {"type": "string"},
        "status": {"type": "string"},
        "mint_tx": _NULLABLE_STR,
        "burn_tx": _NULLABLE_STR,
        "owner": {"type": "string"},
    },
}

_STATUS = {
    "type": "object",
    "required": ["id", "kind", "status", "chain", "created_at"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": "string", "enum": ["text", "image", "audio"]},
        "content_type": {"type": "string"},
        "size": {"type": "integer"},
        "created_at": {"type": "number"},
        "expires_at": _NULLABLE_NUM,
        "switchable": {"type": "boolean"},
        "persistent": {"type": "boolean"},
        "status": {"type": "string"},
        "shredded_at": _NULLABLE_NUM,
        "reward_score": {"type": "number"},
        "chain": _ref("Chain"),
    },
}

_RECEIPT = {
    "type": "object",
    "required": ["token", "commitment", "burn_status"],
    "properties": {
        "token": {"type": "string"},
        "token_id": {"type": "integer", "nullable": True},
        "commitment": {"type": "string"},
        "shredded_at": _NULLABLE_NUM,
        "burn_status": {"type": "string", "enum": ["pending", "burned", "not_minted"]},
        "burn_tx": _NULLABLE_STR,
    },
}

_EMOTION = {"type": "string", "enum": list(EMOTIONS), "description": "case-insensitive"}
_TTL = "seconds, at least 60 and at most SLT_MAX_TTL (30 days by default)"

_GENERATE_JSON = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "prompt": {"type": "string", "minLength": 1, "pattern": "\\S"},
        "emotion": _EMOTION,
        "user_id": {"type": "string", "maxLength": 128},
        "ttl_seconds": {"type": "integer", "minimum": 60, "description": _TTL},
        "switchable": {"type": "boolean"},
    },
}

_GENERATE_FORM = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "emotion": _EMOTION,
        "ttl_seconds": {"type": "string", "pattern": "^[0-9]+$", "description": _TTL},
        "switchable": {"type": "string", "enum": ["true", "false", "1", "0", "on", "off"]},
    },
}

_GENERATED = {
    "type": "object",
    "required": ["response", "token"],
    "properties": {
        "response": {"type": "string"},
        "secret": {"type": "string"},
        "token": {
            "type": "object",
            "required": ["id", "metadata", "value", "blockchain", "chain"],
            "properties": {
                "id": {"type": "string"},
                "metadata": {"type": "object"},
                "value": {"type": "string"},
                "blockchain": {"type": "string"},
                "chain": _ref("Chain"),
            },
        },
    },
}


def openapi_document() -> dict[str, Any]:
    token_ops = _errors(400, 401, 403, 404, 410, 429)
    return {
        "openapi": "3.0.3",
        "info": {"title": "Symbiotic Learning Token backend", "version": "1.0.0"},
        "components": {
            "securitySchemes": {
                "session": {"type": "http", "scheme": "bearer"},
                "secret": {"type": "apiKey", "in": "header", "name": "X-SLT-Secret"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["code", "name", "description"],
                    "properties": {
                        "code": {"type": "string"},
                        "name": {"type": "string"},
                        "description": {"type": "string"},
                    },
                },
                "Chain": _CHAIN,
                "TokenStatus": _STATUS,
                "Receipt": _RECEIPT,
            },
        },
        "paths": {
            "/generate": {
                "post": {
                    "security": _SECURED,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": _GENERATE_JSON},
                            "multipart/form-data": {"schema": _GENERATE_FORM},
                        },
                    },
                    "responses": {**_ok(_GENERATED, 201), **_errors(400, 401, 413, 415, 429)},
                }
            },
            "/tokens": {
                "get": {
                    "security": [{"session": []}],
                    "responses": {
                        **_ok(
                            {
                                "type": "object",
                                "required": ["tokens", "server_time"],
                                "properties": {
                                    "tokens": {"type": "array", "items": _ref("TokenStatus")},
                                    "server_time": {"type": "number"},
                                },
                            }
                        ),
                        **_errors(400, 401, 429),
                    },
                }
            },
            "/tokens/{payload_id}": {
                "parameters": [_ID],
                "get": {
                    "security": _SECURED,
                    "responses": {**_ok(_ref("TokenStatus")), **token_ops},
                },
                "delete": {
                    "security": _SECURED,
                    "responses": {
                        **_ok({"type": "object", "required": ["response", "receipt"]}),
                        **token_ops,
                    },
                },
            },
            "/delete/{payload_id}": {
                "parameters": [_ID],
                "delete": {
                    "security": _SECURED,
                    "responses": {
                        **_ok({"type": "object", "required": ["response", "receipt"]}),
                        **token_ops,
                    },
                },
            },
            "/tokens/{payload_id}/decrypt": {
                "parameters": [_ID],
                "post": {
                    "security": _SECURED,
                    "responses": {
                        **_ok({"type": "object", "required": ["id", "kind"]}),
                        **token_ops,
                        **_errors(500),
                    },
                },
            },
            "/tokens/{payload_id}/persist": {
                "parameters": [_ID],
                "post": {
                    "security": _SECURED,
                    "responses": {
                        **_ok({"type": "object", "required": ["status"]}, 202),
                        **token_ops,
                        **_errors(409),
                    },
                },
            },
            "/tokens/{payload_id}/receipt": {
                "parameters": [_ID],
                "get": {"security": _SECURED, "responses": {**_ok(_RECEIPT), **token_ops}},
            },
            "/auth/nonce": {
                "get": {
                    "responses": {**_ok({"type": "object", "required": ["nonce"]}), **_errors(429)}
                }
            },
            "/auth/verify": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["message", "signature"],
                                    "properties": {
                                        "message": {"type": "string"},
                                        "signature": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        **_ok({"type": "object", "required": ["token", "address"]}),
                        **_errors(400, 401, 413, 429),
                    },
                }
            },
            "/auth/session": {
                "get": {
                    "security": [{"session": []}],
                    "responses": {**_ok({"type": "object"}), **_errors(400, 401, 429)},
                }
            },
            "/auth/logout": {"post": {"responses": {"204": {"description": "signed out"}}}},
            "/metadata/{token_id}": {
                "parameters": [
                    {
                        "name": "token_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
                "get": {"responses": {**_ok({"type": "object"}), **_errors(404, 429)}},
            },
            "/health": {
                "get": {
                    "responses": {
                        **_ok({"type": "object", "required": ["status"]}),
                        **_errors(429),
                    }
                }
            },
            "/config": {"get": {"responses": _ok({"type": "object", "required": ["chain_id"]})}},
        },
    }
