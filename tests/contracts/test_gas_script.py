"""Smoke test of the gas benchmark (`scripts/gas.py`): its measuring code runs end to end.

The figures themselves are the benchmark's business (`ape run gas`); this only shows that the
code behind them works and that SLT's single mint is cheaper than the naive reference's.
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

GAS_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gas.py"


@pytest.fixture(scope="module")
def gas_script() -> ModuleType:
    # `scripts/` is not a package: load the script by path, as `ape run` does.
    spec = importlib.util.spec_from_file_location("slt_gas_script", GAS_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_gas_script_measures_slt_single_mint_below_reference(gas_script: ModuleType) -> None:
    # Batches of 2 instead of 10 and 100: the same code paths, a fraction of the time.
    report = gas_script.benchmark(gas_script.Roles.from_test_accounts(), batch_sizes=(2,))

    mint = report["cases"]["mint_new_owner"]
    assert isinstance(mint["slt"], int)
    assert 0 < mint["slt"] < mint["reference"]
    assert "mint, new owner" in gas_script.format_report(report)
