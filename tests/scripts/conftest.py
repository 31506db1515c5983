"""Fixtures for the deployment-script tests: Anvil processes and the real `ape run deploy`.

These tests run with plain pytest (`-p no:ape_test`). Each one drives the real command in a
subprocess against Anvil processes started here on loopback, with a private APE_DATA_FOLDER so
the named account they import never lands in the shared one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from deploy_support import (
    BUILD_RACE_MARKERS,
    CACHE,
    DEV_ADDRESSES,
    DEV_KEY_2,
    PROJECT_ROOT,
    SCRUBBED_ENV,
    VENV_BIN,
    Anvil,
    NamedAccount,
    Result,
    RunApe,
    free_port,
    rpc,
)


@pytest.fixture(scope="session")
def anvil_factory() -> Iterator[Callable[..., Anvil]]:
    """Start Anvil processes on free loopback ports; all are stopped at the end of the session."""
    started: list[subprocess.Popen[bytes]] = []
    anvil = shutil.which("anvil", path=f"{CACHE / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    if anvil is None:
        pytest.fail("anvil not found: run `make setup` first")

    def start(chain_id: int, block_time: float | None = None) -> Anvil:
        port = free_port()
        cmd = [anvil, "--port", str(port), "--chain-id", str(chain_id), "--silent"]
        if block_time is not None:
            cmd += ["--block-time", str(block_time)]
        process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if int(str(rpc(url, "eth_chainId")), 16) == chain_id:
                    return Anvil(url=url, chain_id=chain_id, process=process)
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"anvil did not start on port {port}")
            time.sleep(0.1)

    yield start
    for process in started:
        process.terminate()
    for process in started:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def ape_data_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private APE_DATA_FOLDER, seeded with the shared one's dependency packages (if any)."""
    folder = tmp_path_factory.mktemp("ape-data")
    shared_packages = CACHE / "ape" / "packages"
    if shared_packages.is_dir():
        shutil.copytree(shared_packages, folder / "packages")
    return folder


@pytest.fixture(scope="session")
def ape_env(ape_data_folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env = {k: v for k, v in env.items() if not k.startswith("APE_ACCOUNTS_")}
    env.update(
        SOLCX_BINARY_PATH=str(CACHE / "solcx"),
        APE_DATA_FOLDER=str(ape_data_folder),
        PATH=f"{CACHE / 'bin'}{os.pathsep}{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONDONTWRITEBYTECODE="1",
        NO_COLOR="1",
    )
    return env


@pytest.fixture(scope="session")
def run_ape(ape_env: dict[str, str]) -> RunApe:
    """Run `ape <args>` in the project like a person would; stdin is `input` (or nothing)."""

    def run(*args: str, env: dict[str, str] | None = None, input: str = "") -> Result:
        full_env = {**ape_env, **(env or {})}
        for attempt in range(2):
            proc = subprocess.run(
                ["ape", *args],
                cwd=PROJECT_ROOT,
                env=full_env,
                input=input,
                capture_output=True,
                text=True,
                timeout=300,
            )
            result = Result(proc.returncode, proc.stdout, proc.stderr)
            raced = any(marker in result.output for marker in BUILD_RACE_MARKERS)
            if result.returncode == 0 or not raced or attempt == 1:
                return result
        raise AssertionError("unreachable")

    return run


@pytest.fixture(scope="session")
def named_account(run_ape: RunApe) -> NamedAccount:
    """`ape accounts import` of Anvil's 3rd dev key, into the private data folder."""
    account = NamedAccount("deployer", "correct-horse-9!", DEV_ADDRESSES[2])
    result = run_ape(
        "accounts",
        "import",
        account.alias,
        input=f"{DEV_KEY_2}\n{account.passphrase}\n{account.passphrase}\n",
    )
    assert result.returncode == 0, result.output
    assert account.address in result.output
    return account
