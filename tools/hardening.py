#!/usr/bin/env python3
"""Run the hardening checks of issue #6 and print their figures.

    .venv/bin/python tools/hardening.py            # the full run (what docs/HARDENING.md reports)
    .venv/bin/python tools/hardening.py --short    # the short form CI runs
    .venv/bin/python tools/hardening.py --no-fuzz  # skip the contract state machine

Steps, each a subprocess of its own:
1. pytest on tests/hardening (``SLT_HARDENING=full`` unless --short): schemathesis, the
   authorization matrix, rate limits and the flood, kill -9 under load, the chain outage, the
   forensic scan, slither and the headers. They write artifacts/hardening/figures-<mode>.json.
2. The contract's hypothesis state machine, ``ape test tests/contracts/test_invariants.py`` on
   Anvil, with ``SLT_FUZZ_CALLS`` random contract calls (10,000 unless --fuzz-calls).
3. A summary of the figures. The exit status is non-zero if any step failed.

Everything runs against 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "artifacts" / "hardening"


def tool_env() -> dict[str, str]:
    """The Makefile's environment: solc-js shim, ape's data folder, Anvil and the venv on PATH."""
    env = dict(os.environ)
    env["SOLCX_BINARY_PATH"] = str(ROOT / ".cache" / "solcx")
    env.setdefault("APE_DATA_FOLDER", str(ROOT / ".cache" / "ape"))
    env["PATH"] = f"{ROOT / '.cache' / 'bin'}:{ROOT / '.venv' / 'bin'}:{env['PATH']}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(title: str, cmd: list[str], env: dict[str, str], log: Path) -> tuple[int, str, float]:
    """Run a step, echoing its output as it comes and keeping a copy in ``log``."""
    print(f"\n=== {title}\n$ {' '.join(cmd)}", flush=True)
    began = time.monotonic()
    out: list[str] = []
    log.parent.mkdir(parents=True, exist_ok=True)
    with (
        subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        ) as proc,
        log.open("w") as copy,
    ):
        assert proc.stdout is not None
        # Chunks, not lines: pytest's progress dots come without a newline.
        while chunk := os.read(proc.stdout.fileno(), 65536):
            text = chunk.decode(errors="replace")
            sys.stdout.write(text)
            sys.stdout.flush()
            copy.write(text)
            out.append(text)
    return proc.returncode, "".join(out), time.monotonic() - began


def summary(figures: dict[str, Any], fuzz: str | None, steps: list[tuple[str, int, float]]) -> str:
    f = figures
    lines = [f"hardening summary ({f.get('mode', '?')} run)", ""]
    for title, rc, took in steps:
        lines.append(f"  {'ok  ' if rc == 0 else 'FAIL'} {title} ({took:.0f} s)")
    lines.append("")

    def get(section: str, key: str, default: Any = "-") -> Any:
        return f.get(section, {}).get(key, default)

    lines += [
        f"bad input     schemathesis {get('schemathesis', 'cases')} cases over "
        f"{get('schemathesis', 'operations')} operations (seed {get('schemathesis', 'seed')}), "
        f"server errors {get('schemathesis', 'server_errors')}; raw garbage "
        f"{get('bad input', 'garbage_cases')} cases",
        f"authz         {get('authz', 'cells')} cells, mismatches {get('authz', 'mismatches')}",
        f"flood         victim p99 {get('flood', 'victim_p99_ms_no_flood')} ms without, "
        f"{get('flood', 'victim_p99_ms_flood')} ms during a flood of "
        f"{get('flood', 'flood_rate_per_s')} req/s",
        f"crash         {get('crash', 'kills')} kill -9, {get('crash', 'creates_answered')} creates"
        f" and {get('crash', 'deletes_answered')} deletes answered, violations "
        f"{get('crash', 'violations')}, drained in {get('crash', 'drain_s')} s",
        f"outage        freeze {get('chain outage', 'freeze_seconds')} s: drained in "
        f"{get('chain outage', 'drain_after_freeze_s')} s; restart from dump: drained in "
        f"{get('chain outage', 'drain_after_restart_s')} s",
        f"forensics     {get('forensics', 'markers')} markers, "
        f"{get('forensics', 'bytes_scanned')} bytes in {get('forensics', 'places_scanned')} "
        f"places: {get('forensics', 'hits_after_stop')} hits",
        f"slither       ours high/medium {get('slither', 'ours_high_medium')}, suppressed "
        f"{get('slither', 'suppressed_in_code')}",
        f"contract fuzz {fuzz or 'not run'}",
    ]
    table = f.get("authz", {}).get("wallet_token")
    if table:
        lines += ["", "authorization matrix (wallet-owned token; status per cell):"]
        width = max(len(r) for r in table["rows"])
        lines.append(" " * width + " | " + " | ".join(table["cols"]))
        for r in table["rows"]:
            cells = [table["cells"][r][c].ljust(len(c)) for c in table["cols"]]
            lines.append(r.ljust(width) + " | " + " | ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="the short form (as in CI)")
    parser.add_argument("--no-fuzz", action="store_true", help="skip the contract fuzz")
    parser.add_argument(
        "--fuzz-calls", type=int, help="SLT_FUZZ_CALLS (default 10000; the CI default if --short)"
    )
    parser.add_argument("-k", dest="keyword", help="only pytest tests matching this expression")
    args = parser.parse_args(argv)
    mode = "short" if args.short else "full"
    env = tool_env()
    env.pop("SLT_HARDENING", None)
    if not args.short:
        env["SLT_HARDENING"] = "full"
    steps: list[tuple[str, int, float]] = []

    cmd = [str(ROOT / ".venv" / "bin" / "python"), "-m", "pytest", "-p", "no:ape_test",
           "-p", "no:cacheprovider", "tests/hardening", "-s", "-q", "-rfE"]  # fmt: skip
    if args.keyword:
        cmd += ["-k", args.keyword]
    rc, _, took = run(f"hardening checks ({mode})", cmd, env, FIGURES / f"pytest-{mode}.log")
    steps.append(("pytest tests/hardening", rc, took))

    fuzz = None
    if not args.no_fuzz:
        calls = args.fuzz_calls or (None if args.short else 10_000)
        fuzz_env = dict(env)
        fuzz_env.pop("SLT_FUZZ_CALLS", None)
        if calls:
            fuzz_env["SLT_FUZZ_CALLS"] = str(calls)
        cmd = [str(ROOT / ".venv" / "bin" / "ape"), "test", "tests/contracts/test_invariants.py",
               "--network", "ethereum:local:foundry", "-p", "no:cacheprovider", "-q"]  # fmt: skip
        rc, out, took = run(
            f"contract state machine ({calls or 'CI default'} calls)", cmd, fuzz_env,
            FIGURES / f"fuzz-{mode}.log",
        )  # fmt: skip
        steps.append(("ape test tests/contracts/test_invariants.py", rc, took))
        found = re.search(r"SLT state machine: .*", out)
        fuzz = found.group(0) if found else f"exit {rc}, no count printed"

    path = FIGURES / f"figures-{mode}.json"
    figures = json.loads(path.read_text()) if path.exists() else {"mode": mode}
    text = summary(figures, fuzz, steps)
    print("\n" + text)
    (FIGURES / f"summary-{mode}.txt").write_text(text + "\n")
    return 0 if all(rc == 0 for _, rc, _ in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
