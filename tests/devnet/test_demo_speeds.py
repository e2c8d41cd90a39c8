"""Nothing in the demo's results depends on the speed: one seed replayed at two speeds on
two real devnets exports identical figures (`--export`'s CSV files), with the fee vote
executed in both. The two demos run side by side to keep the test near a minute; should
the machine not keep up with the faster one, the demo lowers its speed and says so, and
the figures must still be identical."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gridtokenx.simulator.export import CSV_FILES, PLOTS
from tests.conftest import free_base_port
from tests.devnet.test_demo import _reap

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]
SPEEDS = ("60", "180")
DAY = ["--participants", "16", "--hours", "0.5", "--seed", "5"]


def _start(directory: Path, export: Path, speed: str) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "gridtokenx", "demo", *DAY, "--speed", speed,
            "--dir", str(directory), "--base-port", str(free_base_port(5)),
            "--exit-when-done", "--export", str(export)]  # fmt: skip
    env = dict(os.environ, COLUMNS="120")
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)  # fmt: skip


def _table(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_the_figures_are_the_same_at_two_speeds(tmp_path: Path) -> None:
    runs = [(tmp_path / f"demo-{s}", tmp_path / f"export-{s}", s) for s in SPEEDS]
    procs = [_start(*run) for run in runs]
    outs = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=240)
            outs.append(out)
    finally:
        for proc, (directory, _, _) in zip(procs, runs, strict=True):
            _reap(proc, directory)
    for proc, out in zip(procs, outs, strict=True):
        assert proc.returncode == 0, out
    (_, slow, _), (_, fast, _) = runs
    for name in CSV_FILES:
        assert _table(slow / name) == _table(fast / name), name
    figures = dict(_table(slow / "summary.csv")[1:])
    assert int(figures["trades_settled"]) > 0 and int(figures["intervals_settled"]) == 2
    assert figures["proposal_1_status"] == "EXECUTED" and figures["platform_fee_bp"] == "5"
    assert len(_table(slow / "prices.csv")) > 1 and len(_table(slow / "flows.csv")) > 1
    speeds = [dict(_table(export / "devnet.csv")[1:])["speed"] for _, export, _ in runs]
    assert float(speeds[0]) < float(speeds[1]), speeds  # two speeds, whatever was lowered
    heights = [dict(_table(export / "devnet.csv")[1:])["height_read"] for _, export, _ in runs]
    assert heights[0] != heights[1]  # the chains differ; the day they tell does not
    for name in PLOTS:
        assert (slow / name).read_bytes().startswith(b"\x89PNG"), name


def test_the_reliability_bench_runs_a_small_demo_and_writes_json(tmp_path: Path) -> None:
    from tests.test_bench import _load

    out = tmp_path / "reliability.json"
    small = "--participants 12 --hours 0.25 --speed 90 --seed 2"
    result = _load("demo_reliability").main(
        ["--runs", "1", "--demo-args", small, "--timeout", "200", "--output", str(out)]
    )
    assert result["runs"] == 1 and result["passed"] == 1, result
    (run,) = json.loads(out.read_text())["each"]
    assert run["passed"] and run["exit_code"] == 0 and run["error"] == ""
    assert float(run["seconds"]) > 0 and 0 < float(run["speed"]) <= 90  # lowered if need be
