"""``python -m bench [--smoke] [--only NAME ...] [--json PATH] [--out PATH] [--render JSON]``.

A full run (no ``--smoke``, no ``--only``) writes docs/BENCHMARKS.md; other runs write it only
when ``--out`` names a file. A missed target is reported, not an error: the exit status is 0
unless a benchmark itself fails.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

from .common import ROOT, Options, Row, cpu_times, machine_facts, stolen_percent
from .report import print_table, write_markdown

BENCHMARKS = ("crypto", "http", "mint", "shred", "sweep", "storage")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and durations (CI)")
    parser.add_argument(
        "--only", action="append", choices=BENCHMARKS, metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure")
    parser.add_argument("--out", type=Path, metavar="PATH", help="write the Markdown report here")
    parser.add_argument(
        "--render", type=Path, metavar="JSON",
        help="run nothing: print and write the report of an earlier --json file",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.render is not None:
        saved = json.loads(args.render.read_text())
        saved_rows = [Row(**r) for r in saved["rows"]]
        print_table(saved_rows, saved["machine"])
        out = args.out or ROOT / "docs" / "BENCHMARKS.md"
        write_markdown(out, saved_rows, saved["machine"], rendered_at=machine_facts()["commit"])
        print(f"wrote {out}", file=sys.stderr)
        return 0

    names = tuple(args.only or BENCHMARKS)
    opts = Options(smoke=args.smoke, log=lambda m: print(m, file=sys.stderr, flush=True))
    facts = machine_facts()
    opts.log(
        f"bench: {', '.join(names)}{' (smoke)' if args.smoke else ''} on {facts['cores']} cores,"
        f" {facts['cpu_model']}, Python {facts['python']}"
    )
    started, cpu_at_start = time.monotonic(), cpu_times()
    rows: list[Row] = []
    failed: list[str] = []
    for name in names:
        t0 = time.monotonic()
        opts.log(f"[{name}]")
        try:
            module = importlib.import_module(f"bench.{name}")
            rows.extend(module.run(opts))
        except Exception:
            traceback.print_exc()
            failed.append(name)
            rows.append(Row(name, f"{name} benchmark failed (see the log)", "error", met=False))
        opts.log(f"[{name}] {time.monotonic() - t0:.1f} s")
    facts["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    facts["cpu_stolen_percent"] = stolen_percent(cpu_at_start, cpu_times())
    facts["duration_s"] = round(time.monotonic() - started, 1)
    facts["mode"] = "smoke" if args.smoke else "full"

    print_table(rows, facts)
    out = args.out
    if out is None and not args.smoke and args.only is None:
        out = ROOT / "docs" / "BENCHMARKS.md"
    if out is not None:
        write_markdown(out, rows, facts)
        opts.log(f"wrote {out}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"machine": facts, "rows": [r.__dict__ for r in rows], "failed": failed}
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        opts.log(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
