"""The benchmark is code too: it must run, apply every transaction, and agree with itself."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).parent.parent / "bench" / "ledger_bench.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ledger_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ledger_bench"] = module
    spec.loader.exec_module(module)
    return module


def test_ledger_bench_runs_small_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "ledger.json"
    result = _load().main(
        ["--participants", "5", "--intervals", "3", "--transfers", "7", "--output", str(out)]
    )
    written = json.loads(out.read_text())
    assert written == result
    assert written["transactions"] == 3 * (5 + 7)
    assert written["raw_ed25519_verify_per_s"] > 0
    assert written["apply_with_signature_per_s"] > 0
    assert len(bytes.fromhex(written["state_root"])) == 32
