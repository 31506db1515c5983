"""Fixtures of the hardening checks, and the figures printed at the end of the session.

Short form by default (CI); ``SLT_HARDENING=full`` for the long form (``tools/hardening.py``).
Figures land in the terminal summary and in ``artifacts/hardening/figures-<mode>.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hardening_support import FIGURES, FIGURES_DIR, MODE, settings_for, write_json
from slt_harness import Anvil, Clock, deploy

from backend import create_app


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    node = Anvil().start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def record(anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return dict(deploy(anvil.url, tmp_path_factory.mktemp("deployments") / "ethereum-local.json"))


@pytest.fixture
def clock(anvil: Anvil) -> Clock:
    return Clock.agreeing_with(anvil)


@pytest.fixture
def make_app(
    anvil: Anvil, record: dict[str, Any], tmp_path: Path, clock: Clock
) -> Iterator[Callable[..., Flask]]:
    """Apps on the session's Anvil and a real SQLite file under this test's tmp_path."""
    apps: list[Flask] = []

    def make(**changes: Any) -> Flask:
        start = changes.pop("start_workers", True)
        settings = settings_for(record, anvil.url, tmp_path / f"app{len(apps)}", **changes)
        app = create_app(settings, clock=clock, start_workers=start)
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["slt"].worker.stop()
        app.extensions["slt"].store.close()


# Figures -------------------------------------------------------------------------------------


def _grid(table: dict[str, Any]) -> list[str]:
    cols, rows, cells = table["cols"], table["rows"], table["cells"]
    first = max(len(r) for r in rows)
    widths = [max(len(c), 9) for c in cols]
    head = " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    lines = [" " * first + " | " + head]
    lines.append("-" * len(lines[0]))
    for r in rows:
        line = r.ljust(first) + " | "
        line += " | ".join(
            str(cells.get(r, {}).get(c, "")).ljust(w) for c, w in zip(cols, widths, strict=True)
        )
        lines.append(line)
    return lines


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    tr = terminalreporter
    tr.section(f"hardening figures ({MODE})")
    for section, values in FIGURES.items():
        tr.write_line(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, dict) and {"rows", "cols", "cells"} <= set(value):
                tr.write_line(f"  {key}:")
                for line in _grid(value):
                    tr.write_line("    " + line)
            else:
                tr.write_line(f"  {key}: {value}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if FIGURES:
        write_json(FIGURES_DIR / f"figures-{MODE}.json", {"mode": MODE, **FIGURES})
