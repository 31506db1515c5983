"""Fixtures for the backend suite: a real Anvil, the deployed contract, a real SQLite file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from flask import Flask
from flask.testing import FlaskClient
from slt_harness import ANVIL_KEYS, Anvil, Clock, deploy, sign_text, siwe_message

from backend import Settings, create_app

PUBLIC_URL = "http://127.0.0.1:8080"
RELAYER_KEY = ANVIL_KEYS[1]


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    node = Anvil().start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def record(anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return deploy(anvil.url, tmp_path_factory.mktemp("deployments") / "ethereum-local.json")


@pytest.fixture
def clock(anvil: Anvil) -> Clock:
    return Clock.agreeing_with(anvil)


@pytest.fixture
def settings(anvil: Anvil, record: dict[str, Any], tmp_path: Path) -> Settings:
    deployment = tmp_path / "deployment.json"
    import json

    deployment.write_text(json.dumps(record))
    return Settings(
        data_dir=tmp_path / "var",
        rpc_url=anvil.url,
        deployment_file=deployment,
        relayer_key=RELAYER_KEY,
        public_url=PUBLIC_URL,
        rate_limits_enabled=False,
        sweep_interval=0.2,
        follow_interval=0.1,
        outbox_interval=0.1,
        chain_timeout=2.0,
    )


@pytest.fixture
def make_app(settings: Settings, clock: Clock) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def make(**changes: Any) -> Flask:
        start = changes.pop("start_workers", True)
        app = create_app(settings.with_(**changes), clock=clock, start_workers=start)
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["slt"].worker.stop()
        app.extensions["slt"].store.close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def sign_in(client: FlaskClient) -> Callable[[str], dict[str, str]]:
    """Sign in with an Anvil key through SIWE; returns the auth headers."""

    def login(key: str) -> dict[str, str]:
        address = Account.from_key(key).address
        nonce = client.get("/auth/nonce").get_json()
        message = siwe_message(address, nonce)
        resp = client.post(
            "/auth/verify", json={"message": message, "signature": sign_text(key, message)}
        )
        assert resp.status_code == 200, resp.get_json()
        return {"Authorization": f"Bearer {resp.get_json()['token']}"}

    return login
