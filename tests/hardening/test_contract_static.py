"""Contract: slither, offline, with the project's own compiler (solc-js behind tools/solc.js).

crytic-compile's default drives solc with ``--combined-json``, which the shim does not answer;
its standard-JSON platform (``--solc-standard-json`` on the ``contracts`` folder) drives solc
with ``--standard-json``, which it does. Imports of Solady resolve through a remapping to
``node_modules`` (as in ape-config.yaml).

Gate: no high or medium finding in our code (``contracts/``) unless suppressed in the code with
``// slither-disable-next-line <detector>`` under a comment giving the reason. Findings inside
Solady are listed, and each must be in a function SymbioticLearningToken does not use.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hardening_support import figure
from slt_harness import ROOT, tool_env

CONTRACT = ROOT / "contracts" / "SymbioticLearningToken.sol"
GATED = ("High", "Medium")


def solc_shim() -> Path:
    """The compiler ape uses: ``solidity.version`` of ape-config.yaml, linked to tools/solc.js."""
    version = yaml.safe_load((ROOT / "ape-config.yaml").read_text())["solidity"]["version"]
    return Path(ROOT) / ".cache" / "solcx" / f"solc-v{version}"


def run_slither(out: Path) -> dict[str, Any]:
    cmd = [
        str(ROOT / ".venv" / "bin" / "slither"), "contracts",
        "--solc-standard-json", "--solc", str(solc_shim()),
        "--solc-remaps", "solady/=node_modules/solady/src/",
        "--solc-args", "--optimize --optimize-runs 200",
        "--json", str(out),
    ]  # fmt: skip
    # Slither exits non-zero whenever it reports anything; the JSON says whether it ran.
    done = subprocess.run(cmd, cwd=ROOT, env=tool_env(), capture_output=True, text=True)
    assert out.exists(), done.stderr[-3000:]
    report: dict[str, Any] = json.loads(out.read_text())
    assert report["success"], report.get("error")
    return report


def _files(finding: dict[str, Any]) -> set[str]:
    return {
        e["source_mapping"]["filename_relative"]
        for e in finding["elements"]
        if "source_mapping" in e and "filename_relative" in e["source_mapping"]
    }


def _ours(path: str) -> bool:
    """Our sources: contracts/, not ape's dependency cache in contracts/.cache/."""
    return path.startswith("contracts/") and not path.startswith("contracts/.")


def is_ours(finding: dict[str, Any]) -> bool:
    return any(_ours(f) for f in _files(finding))


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    report = run_slither(Path(tmp_path_factory.mktemp("slither")) / "slither.json")
    yield list(report["results"].get("detectors", []))


def suppressions() -> list[tuple[str, int, str, list[str]]]:
    """(file, line, detectors, reason lines) for every slither-disable comment in contracts/."""
    out = []
    for path in sorted((ROOT / "contracts").rglob("*.sol")):
        if not _ours(str(path.relative_to(ROOT))):
            continue
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"\s*//\s*slither-disable-next-line\s+([\w,-]+)", line)
            if not m:
                continue
            reason: list[str] = []
            j = i - 1
            while j >= 0 and re.match(r"\s*//(?!/)", lines[j]):
                reason.insert(0, lines[j].strip())
                j -= 1
            out.append((str(path.relative_to(ROOT)), i + 1, m.group(1), reason))
    return out


def test_no_high_or_medium_finding_in_our_contracts(findings: list[dict[str, Any]]) -> None:
    ours = [f for f in findings if is_ours(f)]
    library = [f for f in findings if not is_ours(f)]
    gated = [f for f in ours if f["impact"] in GATED]
    figure(
        "slither",
        command="slither contracts --solc-standard-json --solc .cache/solcx/solc-v<ape's version>",
        ours_by_impact=dict(Counter(f["impact"] for f in ours)),
        ours_low=sorted({f["check"] for f in ours if f["impact"] == "Low"}),
        ours_high_medium=[f"{f['impact']} {f['check']}" for f in gated],
        suppressed_in_code=[f"{d} at {p}:{n}" for p, n, d, _ in suppressions()],
        solady_high_medium=dict(
            Counter(f"{f['impact']} {f['check']}" for f in library if f["impact"] in GATED)
        ),
    )
    assert not gated, "\n\n".join(f["description"] for f in gated)


def test_every_suppression_says_why() -> None:
    found = suppressions()
    assert found, "the locked-ether suppression is expected on the contract"
    for path, line, detectors, reason in found:
        text = " ".join(reason)
        for detector in detectors.split(","):
            assert detector in text and len(text) > 80, f"{path}:{line}: no reason for {detector}"


def test_solady_findings_are_in_functions_slt_does_not_use(
    findings: list[dict[str, Any]],
) -> None:
    """The library's high/medium findings (assembly bit tricks slither misreads) are in
    internal helpers that SymbioticLearningToken never calls, so none is in its bytecode."""
    source = CONTRACT.read_text()
    for f in findings:
        if is_ours(f) or f["impact"] not in GATED:
            continue
        functions = {
            e["name"] for e in f["elements"] if e.get("type") == "function" and "name" in e
        }
        functions |= {
            e["type_specific_fields"]["parent"]["name"]
            for e in f["elements"]
            if e.get("type") in ("node", "variable")
            and e.get("type_specific_fields", {}).get("parent", {}).get("type") == "function"
        }
        assert functions, f["description"]
        for name in functions:
            assert not re.search(rf"\b{re.escape(name)}\s*\(", source), (name, f["description"])
