"""The production layout: API processes without background threads (``SLT_RUN_WORKERS=0``) and
``python -m backend worker`` as a process of its own, on the same store, at a lower priority."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slt_harness import ANVIL_KEYS, ROOT, Anvil, deploy, wait_for

from backend import Settings, create_app
from backend.gunicorn_conf import post_worker_init

RELAYER_KEY = ANVIL_KEYS[1]


@pytest.fixture(scope="module")
def own_anvil() -> Iterator[Anvil]:
    # An Anvil of its own: the worker process keeps the wall clock, so the chain's must not
    # have been moved forward by other tests.
    node = Anvil().start()
    yield node
    node.stop()


AUTOGROUPS = Path("/proc/self/autogroup").exists()


def _nice(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])  # field 19 of proc_pid_stat(5), counted after the command name


def test_worker_process_mints_for_api_processes_and_yields_the_cpu(
    own_anvil: Anvil, tmp_path: Path
) -> None:
    deployment = tmp_path / "deployment.json"
    record: dict[str, Any] = deploy(own_anvil.url, tmp_path / "record.json")
    deployment.write_text(json.dumps(record))
    env = {
        "SLT_DATA_DIR": str(tmp_path / "var"),
        "SLT_RPC_URL": own_anvil.url,
        "SLT_DEPLOYMENT_FILE": str(deployment),
        "SLT_RELAYER_KEY": RELAYER_KEY,
        "SLT_OUTBOX_INTERVAL": "0.1",
        "SLT_FOLLOW_INTERVAL": "0.1",
        "SLT_WORKER_NICE": "7",
    }
    api = create_app(Settings.from_env({**env, "SLT_RUN_WORKERS": "0"}))
    store = api.extensions["slt"].store
    # No chain worker here; only the checkpointer, so that requests never fold the WAL in.
    threads = {t.name for t in threading.enumerate() if t.name.startswith("slt-")}
    assert threads == {"slt-checkpointer"}
    client = api.test_client()
    created = [
        client.post("/generate", json={"prompt": f"note {i}", "emotion": "calm"}).get_json()
        for i in range(5)
    ]
    ids = [body["token"]["id"] for body in created]
    assert {p.status for p in store.get_payloads(ids).values()} == {"pending_mint"}

    worker_env = {k: v for k, v in os.environ.items() if not k.startswith("SLT_")}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "backend", "worker"],
        cwd=ROOT,
        env={**worker_env, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # as a supervisor starts it: a session of its own
    )
    try:
        wait_for(
            lambda: {p.status for p in store.get_payloads(ids).values()} == {"minted"},
            timeout=30,
        )
        assert _nice(worker.pid) == 7
        assert _nice(os.getpid()) < 7  # only the worker yields
        if AUTOGROUPS:  # and its session yields to the API's, not only its threads to each other
            assert Path(f"/proc/{worker.pid}/autogroup").read_text().split()[-1] == "7"
        minted = store.get_payloads(ids)
        contract = own_anvil.w3().eth.contract(address=record["address"], abi=record["abi"])
        for payload in minted.values():
            assert payload.chain_token_id is not None
            assert contract.functions.ownerOf(payload.chain_token_id).call().lower() == (
                payload.owner
            )
        # The API process still reads and decrypts what the worker minted.
        opened = client.post(
            f"/tokens/{ids[0]}/decrypt", headers={"X-SLT-Secret": created[0]["secret"]}
        )
        assert opened.status_code == 200
        assert opened.get_json()["prompt"] == "note 0"
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=20)
        log.close()
        api.extensions["slt"].worker.stop()
        store.close()
    assert code == 0, (tmp_path / "worker.log").read_text()[-2000:]


def test_gunicorn_workers_leave_their_start_up_objects_out_of_the_gc() -> None:
    before = gc.get_freeze_count()
    try:
        post_worker_init(object())  # what gunicorn calls in a worker once the app is loaded
        frozen = gc.get_freeze_count()
        assert frozen > before + 10_000  # the modules and objects loaded so far
        assert gc.get_count()[2] == 0  # a full collection ran first: no garbage frozen with them
    finally:
        gc.unfreeze()


@pytest.mark.skipif(not AUTOGROUPS, reason="no scheduler autogroups on this kernel")
@pytest.mark.parametrize("own_session", [True, False])
def test_only_a_session_leader_lowers_its_sessions_priority(own_session: bool) -> None:
    code = (
        "import json; from pathlib import Path; from backend.__main__ import"
        " _lower_session_priority as low;"
        " print(json.dumps([low(5), Path('/proc/self/autogroup').read_text()]))"
    )
    # Empty when this session is the kernel's default autogroup (PID 1's, as under CI), which
    # cannot be reniced; a new session always gets an autogroup of its own.
    before = Path("/proc/self/autogroup").read_text()
    lowered, autogroup = json.loads(
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            start_new_session=own_session,
        ).stdout
    )
    if own_session:
        assert lowered is True and autogroup.split()[-1] == "5"
    else:  # it shares this session (and its autogroup): it must leave both alone
        assert lowered is False and autogroup == before
        assert Path("/proc/self/autogroup").read_text() == before
