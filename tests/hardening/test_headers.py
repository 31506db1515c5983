"""Headers: what tests/backend/test_api_errors.py does not cover yet.

The page and its assets under the CSP (and no inline script the CSP would have to allow);
the security headers on error answers too (405, 413, 429, 500); CORS with several configured
origins, look-alikes refused, credentials never allowed.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from backend.api import WEB_DIST

ORIGINS = ("https://app.example", "https://admin.app.example")


def _safe(resp: TestResponse) -> None:
    h = resp.headers
    csp = h["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["X-Frame-Options"] == "DENY"
    assert "Access-Control-Allow-Credentials" not in h


@pytest.mark.skipif(not (WEB_DIST / "index.html").exists(), reason="page not built (make web)")
def test_page_and_assets_are_served_under_the_csp(make_app: Callable[..., Flask]) -> None:
    client = make_app(start_workers=False).test_client()
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    _safe(page)
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    # Every script is a file from 'self': an inline one would need 'unsafe-inline'.
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S | re.I)
    assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts)
    assert not re.search(r"\son[a-z]+\s*=", html, flags=re.I)  # no inline event handlers
    for name in sorted(p.name for p in WEB_DIST.iterdir() if p.suffix in (".js", ".css")):
        asset = client.get(f"/assets/{name}")
        assert asset.status_code == 200, name
        _safe(asset)
        assert asset.headers.get("Cache-Control") != "no-store"


def test_error_answers_carry_the_security_headers(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(start_workers=False, max_upload_bytes=1024, rate_limits_enabled=True,
                   rate_limit_create="2/minute")  # fmt: skip
    client = app.test_client()
    method_not_allowed = client.get("/generate")
    assert method_not_allowed.status_code == 405
    too_large = client.post("/generate", json={"prompt": "x" * (1024 + 70 * 1024)})
    assert too_large.status_code == 413
    assert client.post("/generate", json={"prompt": "p"}).status_code == 201
    limited = client.post("/generate", json={"prompt": "p"})
    assert limited.status_code == 429

    def boom(*_: object) -> None:
        raise RuntimeError("internal detail /var/secret/path")

    monkeypatch.setattr(app.extensions["slt"].store, "outbox_counts", boom)
    crashed = client.get("/health")
    assert crashed.status_code == 500
    assert "internal detail" not in crashed.get_data(as_text=True)
    assert set(crashed.get_json()) == {"code", "name", "description"}
    for resp in (method_not_allowed, too_large, limited, crashed):
        _safe(resp)
        assert resp.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("origin", ORIGINS)
def test_each_configured_origin_is_allowed(make_app: Callable[..., Flask], origin: str) -> None:
    client = make_app(start_workers=False, cors_origins=ORIGINS).test_client()
    for resp in (
        client.get("/config", headers={"Origin": origin}),
        client.options(
            "/tokens/x", headers={"Origin": origin, "Access-Control-Request-Method": "DELETE"}
        ),
    ):
        assert resp.headers["Access-Control-Allow-Origin"] == origin
        assert "DELETE" in resp.headers["Access-Control-Allow-Methods"]
        _safe(resp)


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.evil",
        "https://evil-app.example",
        "https://app.example:443.evil",
        "http://app.example",
        "https://APP.EXAMPLE",
        "https://x.admin.app.example",
        "https://app.example https://evil.example",
        "https://app.example, https://evil.example",
        "http://127.0.0.1:8080",
    ],
)
def test_look_alike_origins_are_refused(make_app: Callable[..., Flask], origin: str) -> None:
    client = make_app(start_workers=False, cors_origins=ORIGINS).test_client()
    resp = client.options(
        "/generate", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Access-Control-Allow-Methods" not in resp.headers
    _safe(resp)
