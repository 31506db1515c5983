"""Constants and small types shared by the deployment-script tests (fixtures: conftest.py).

A uniquely named module, not `conftest`, so `from deploy_support import ...` cannot pick up
another folder's conftest when pytest runs several test folders in one process.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:
    # `scripts._helpers` is imported by the tests as the scripts import it.
    sys.path.insert(0, str(PROJECT_ROOT))

CACHE = PROJECT_ROOT / ".cache"
VENV_BIN = PROJECT_ROOT / ".venv" / "bin"

# Anvil's well-known development accounts ("test test ... junk"), public by design.
DEV_ADDRESSES = [
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
]
# The 3rd account's key: the "named account" of the testnet rehearsal.
DEV_KEY_2 = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"

# Variables that would change which node or account the command uses.
SCRUBBED_ENV = (
    "APE_FOUNDRY_HOST",
    "WEB3_PROVIDER_URI",
    "SLT_DEPLOYMENTS_DIR",
    "SEPOLIA_RPC_URL",
    "BASE_SEPOLIA_RPC_URL",
    "ARBITRUM_SEPOLIA_RPC_URL",
)
# Failures caused by another process rewriting .build at the same moment, worth one retry.
BUILD_RACE_MARKERS = ("__local__.json", "JSONDecodeError", "Expecting value")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rpc(url: str, method: str, params: list[object] | None = None) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())["result"]


@dataclass
class Anvil:
    url: str
    chain_id: int
    process: subprocess.Popen[bytes]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


RunApe = Callable[..., Result]


@dataclass
class NamedAccount:
    alias: str
    passphrase: str
    address: str

    @property
    def env(self) -> dict[str, str]:
        """ape reads a keyfile account's passphrase from APE_ACCOUNTS_<alias>_PASSPHRASE."""
        return {f"APE_ACCOUNTS_{self.alias}_PASSPHRASE": self.passphrase}
