"""``python -m backend dev``: the whole product on this machine, for `make run`.

Starts Anvil (its state kept in ``var/dev/anvil-state.json`` across runs), deploys the contract
with the real deploy script unless the record still matches the chain, and serves the backend
and the page. Ctrl-C stops everything; Anvil writes its state on the way out.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from eth_utils.crypto import keccak
from web3 import Web3

ROOT = Path(__file__).resolve().parents[1]
DEV_DIR = ROOT / "var" / "dev"
RECORD = ROOT / "deployments" / "ethereum-local.json"

# Anvil's public development accounts ("test test … junk"): #0 admin, #1 relayer, #2 for you.
ADMIN = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
RELAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
RELAYER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
USER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
USER_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
CHAIN_ID = 31337


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["SOLCX_BINARY_PATH"] = str(ROOT / ".cache" / "solcx")
    env.setdefault("APE_DATA_FOLDER", str(ROOT / ".cache" / "ape"))
    env["PATH"] = f"{ROOT / '.cache' / 'bin'}:{ROOT / '.venv' / 'bin'}:{env['PATH']}"
    return env


def _start_anvil(port: int) -> subprocess.Popen[bytes]:
    DEV_DIR.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(ROOT / ".cache" / "bin" / "anvil"),
        "--port", str(port), "--chain-id", str(CHAIN_ID), "--silent",
        "--state", str(DEV_DIR / "anvil-state.json"), "--state-interval", "10",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, start_new_session=True)
    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}"))
    for _ in range(200):
        try:
            w3.eth.block_number  # noqa: B018 (a probe)
            return proc
        except Exception:
            time.sleep(0.05)
    proc.terminate()
    raise SystemExit("Anvil did not start")


def _record_matches(rpc_url: str) -> bool:
    if not RECORD.exists():
        return False
    record = json.loads(RECORD.read_text())
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    code = bytes(w3.eth.get_code(record["address"]))
    return bool(code) and "0x" + keccak(code).hex() == record["runtime_code_hash"]


def _deploy(rpc_url: str, public_url: str) -> None:
    env = _tool_env()
    env["APE_FOUNDRY_HOST"] = rpc_url
    cmd = [
        str(ROOT / ".venv" / "bin" / "ape"), "run", "deploy", "deploy",
        "--network", "ethereum:local:foundry", "--account", "TEST::0",
        "--admin", ADMIN, "--minter", RELAYER, "--base-uri", f"{public_url}/metadata/",
        "--ttl", "3600", "--yes", "--out-dir", str(RECORD.parent),
    ]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def run_dev(port: int = 8080, anvil_port: int = 8545) -> int:
    for p, what in ((anvil_port, "Anvil"), (port, "the backend")):
        if not _port_free(p):
            print(f"error: port {p} for {what} is in use (another `make run`?)", file=sys.stderr)
            return 2
    rpc_url = f"http://127.0.0.1:{anvil_port}"
    public_url = f"http://127.0.0.1:{port}"
    anvil = _start_anvil(anvil_port)
    try:
        if _record_matches(rpc_url):
            print(f"contract: reusing the deployment in {RECORD.relative_to(ROOT)}")
        else:
            _deploy(rpc_url, public_url)
        record = json.loads(RECORD.read_text())
        # One data folder per deployment: a payload never outlives the chain it was minted on.
        data_dir = DEV_DIR / f"data-{record['address'][2:10].lower()}-{record['block_number']}"
        os.environ.update(
            SLT_RPC_URL=rpc_url,
            SLT_PUBLIC_URL=public_url,
            SLT_DEPLOYMENT_FILE=str(RECORD),
            SLT_RELAYER_KEY=RELAYER_KEY,
            SLT_DATA_DIR=str(data_dir),
        )
        from . import Settings, create_app

        app = create_app(Settings.from_env())
        _banner(public_url, rpc_url, record["address"])
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            app.run(host="127.0.0.1", port=port, threaded=True, use_reloader=False)
        except KeyboardInterrupt:
            pass
        # Shutting down: a second Ctrl-C or SIGTERM must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        app.extensions["slt"].worker.stop()
    finally:
        anvil.send_signal(signal.SIGINT)  # Anvil writes its state file on the way out
        try:
            anvil.wait(timeout=10)
        except subprocess.TimeoutExpired:
            anvil.kill()
        print("stopped: backend and Anvil")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _banner(public_url: str, rpc_url: str, contract: str) -> None:
    print(
        f"""
  Symbiotic Learning Token is running.

    Page      {public_url}
    Contract  {contract}   (deployments/ethereum-local.json)
    Anvil     {rpc_url}    chain id {CHAIN_ID}

  To use MetaMask with this local chain:
    1. Settings → Networks → Add a network manually:
         Network name  Anvil (local)
         RPC URL       {rpc_url}
         Chain ID      {CHAIN_ID}
         Currency      ETH
    2. Import an Anvil test account (public, test-only key; never use it on a real chain):
         Account menu → Add account → Import account → paste
         {USER_KEY}
         (address {USER}, holds 10,000 test ETH)
    3. Open {public_url}, connect, and sign in.

  Ctrl-C stops the backend and Anvil (its state is kept in var/dev/).
"""
    )
