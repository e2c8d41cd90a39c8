"""`gridtokenx demo` as a person runs it: real validator processes on 127.0.0.1 replaying a
small, fast market day with its storyline (grid reports, the fee vote, certificate claims),
the summary read from the chain, and every process gone at the end (after the summary with
--exit-when-done, or on Ctrl-C mid-day)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridtokenx.cli.main import app
from gridtokenx.devnet.homes import devnet_genesis
from gridtokenx.node.home import read_status
from gridtokenx.simulator import devnet_day, run_day_in_sandbox, storyline
from tests.cli.test_errors import error_lines
from tests.conftest import free_base_port

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]
# Two traded intervals after the setup's two: an hour of chain time, 40 s at speed 90 (a
# speed that holds while other tests load both cores). Two intervals of the afternoon let
# the solar farm export a whole certificate (1 MWh) for the claims at the end of the day.
DEMO = devnet_day.DemoConfig(participants=24, hours=0.5, speed=90, seed=3)
SMALL = ["--participants", str(DEMO.participants), "--hours", str(DEMO.hours),
         "--speed", str(DEMO.speed), "--seed", str(DEMO.seed)]  # fmt: skip


def _demo(directory: Path, *extra: str, base_port: int = 0) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "gridtokenx", "demo", *SMALL, "--dir", str(directory),
            "--base-port", str(base_port or free_base_port(5)), *extra]  # fmt: skip
    env = dict(os.environ, COLUMNS="120")
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)  # fmt: skip


def _pids(directory: Path) -> list[int]:
    """Every node the demo ran (validators and its observer) writes its pid in status.json."""
    found = [read_status(home) for home in sorted(directory.iterdir()) if home.is_dir()]
    return [int(s["pid"]) for s in found if s is not None]  # type: ignore[call-overload]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _reap(proc: subprocess.Popen[str], directory: Path) -> None:
    """Whatever a failed test left behind is killed, never leaked."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for pid in _pids(directory) if directory.exists() else []:
        if pid != proc.pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _number(pattern: str, out: str, group: int = 1) -> int:
    found = re.search(pattern, out)
    assert found, (pattern, out)
    return int(found[group].replace(",", ""))


def _check_storyline(out: str) -> None:
    """Grid reports for every interval, the fee vote where its heights put it, and the
    certificates the same day issues in-process (same plans, same meters) all retired."""
    spec = devnet_genesis("demo", 0)
    intervals = DEMO.day().intervals
    reports = _number(r"grid status reports committed\s*│\s*([\d,]+)", out)
    assert reports == intervals * (1 + len(spec.zones)), out
    same_day = run_day_in_sandbox(DEMO.day())
    retired = _number(r"retired / beneficiaries\s*│\s*([\d,]+) /", out)
    assert retired == same_day.certificates_retired > 0, out
    assert _number(r"still active\s*│\s*([\d,]+)", out) == 0, out
    weights = {a.code: a.weight for a in spec.authorities}
    yes = sum(weights[code] for code in storyline.VOTERS)
    tally = rf"yes / no / abstain of total weight\s*│\s*{yes:,} / 0 / 0 of [\d,]+ \(4 ballots\)"
    assert re.search(tally, out), out
    # the demo's periods are a few heights and the day waits for the vote: executed at
    # any speed, so the fee is halved from the first settlement on
    status = re.search(r"proposal \d+ status\s*│\s*(\w+)", out)
    heights = re.search(r"voting ends / executes at height\s*│\s*([\d,]+) / ([\d,]+)", out)
    assert status and status[1] == "EXECUTED" and heights, out
    height = _number(r"chain height when read\s*│\s*([\d,]+)", out)
    assert int(heights[2].replace(",", "")) <= height, out
    fee = spec.params.platform_fee_basis_points // 2
    assert re.search(rf"platform fee in force\s*│\s*{fee} bp", out), out


def test_demo_replays_a_day_on_a_devnet_and_stops_every_process(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    proc = _demo(directory, "--exit-when-done")
    try:
        out, _ = proc.communicate(timeout=100)
    finally:
        _reap(proc, directory)
    assert proc.returncode == 0, out
    committed = re.search(r"transactions committed\s*│\s*([\d,]+)", out)
    trades = re.search(r"orders / trades \(settled\)\s*│\s*([\d,]+) / ([\d,]+)", out)
    assert committed and int(committed[1].replace(",", "")) > 100, out
    seen = re.search(r"submitted / committed\s*│\s*[\d,]+ / ([\d,]+)", out)
    assert seen and seen[1] == committed[1], out  # the chain's count is what the sink saw
    assert trades and int(trades[2].replace(",", "")) > 0, out
    settled = rf"intervals settled \(at deadline\)\s*│\s*{DEMO.day().intervals} "
    assert re.search(settled, out), out
    _check_storyline(out)
    assert re.search(r"submitted / committed\s*│\s*([\d,]+) / \1 ", out), out
    assert "finality from submission" in out
    assert "Dashboard" not in out and "http://" not in out  # the devnet has stopped
    homes = {"egat", "mea", "pea", "erc", "observer"}
    assert homes <= {p.name for p in directory.iterdir()}
    pids = _pids(directory)
    assert len(pids) == 5  # four validator processes and the demo's own observer
    assert not any(_alive(pid) for pid in pids)


def test_ctrl_c_mid_day_stops_every_process(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    proc = _demo(directory)
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and proc.poll() is None:
            heights = [read_status(directory / h) for h in ("egat", "mea", "pea", "erc")]
            if all(s is not None and int(s["height"]) >= 3 for s in heights):  # type: ignore[call-overload]
                break
            time.sleep(0.2)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        _reap(proc, directory)
    assert "stopping the devnet" in out, out
    assert proc.returncode == 0, out  # asked to stop: not an error (make says no Error 1)
    assert "error" not in out, out
    pids = _pids(directory)
    assert len(pids) == 5
    assert not any(_alive(pid) for pid in pids)


def test_ctrl_c_in_a_terminal_after_the_day_exits_0_and_stops_every_process(
    tmp_path: Path,
) -> None:
    """A terminal sends SIGINT to the whole process group: the validators and the demo
    stop together, and that is no error (make must not say `Error 1`)."""
    directory = tmp_path / "demo"
    proc = _demo(directory)
    seen = ""
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and "Ctrl-C stops it" not in seen:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
        assert "Ctrl-C stops it" in seen, seen
        address = re.search(r"Dashboard: (http://127\.0\.0\.1:\d+/\?interval=(\d+))", seen)
        assert address, seen  # on the day's last traded interval
        last = DEMO.day().first_interval(devnet_genesis("demo", 0).params)
        assert int(address[2]) == last + (DEMO.day().intervals - 1) * 900
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        _reap(proc, directory)
    assert proc.returncode == 0, seen + out
    assert "stopping the devnet" in out and "error" not in out, out
    assert not any(_alive(pid) for pid in _pids(directory))


def test_a_validator_that_cannot_start_stops_the_demo_with_a_clear_error(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    base = free_base_port(5)
    with socket.socket() as taken:  # EGAT's API port is in use: EGAT stops at start-up
        taken.bind(("127.0.0.1", base + 200))
        taken.listen()
        proc = _demo(directory, "--exit-when-done", base_port=base)
        try:
            out, _ = proc.communicate(timeout=50)
        finally:
            _reap(proc, directory)
    assert proc.returncode == 1, out
    assert "a validator stopped: EGAT (exit 1)" in out and "node.log" in out
    assert "error: DEMO_FAILED: " in out
    logs = re.search(r"\(logs: ([^)]*)\)", out.replace("\n", ""))
    assert logs, out
    named = [Path(p) for p in logs[1].split(", ")]
    assert named[0] == directory / "egat" / "node.log", out  # the one with the error first
    assert "error" in named[0].read_text().lower()
    assert "Traceback" not in out
    assert not any(_alive(pid) for pid in _pids(directory))


runner = CliRunner()


def test_demo_refuses_a_folder_it_did_not_make_and_leaves_it_alone(tmp_path: Path) -> None:
    precious = tmp_path / "node-home"
    precious.mkdir()
    (precious / "node_key.json").write_text("{}")
    result = runner.invoke(app, ["demo", "--dir", str(precious), "--exit-when-done"])
    assert "not made by `gridtokenx demo`" in error_lines(result, "EXISTS", 1)[0]
    assert [p.name for p in precious.iterdir()] == ["node_key.json"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--hours", "0"], "hours must be 0.25 to 24"),
        (["--hours", "1.1"], "in whole 15-minute intervals"),
        (["--speed", "0.5"], "speed must be 1 to"),
        (["--participants", "3"], "participants must be at least 6"),
        (["--participants", "601"], "participants must be at most 600"),
        (["--manipulators", "wash_ring,churner"], "unknown manipulators churner"),
    ],
)
def test_demo_refuses_bad_flags_before_starting_anything(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    result = runner.invoke(app, ["demo", "--dir", str(tmp_path / "d"), *flags])
    assert message in error_lines(result, "BAD_INPUT", 2)[0]  # bad input: exit 2, was 1
    assert not (tmp_path / "d").exists()


def test_a_folder_from_an_earlier_demo_is_wiped_and_reused(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    devnet_day.prepare_directory(directory)
    (directory / "egat").mkdir()
    (directory / "egat" / "stale").write_text("old chain")
    devnet_day.prepare_directory(directory)
    assert [p.name for p in directory.iterdir()] == [devnet_day.MARKER]


def test_the_window_is_the_afternoon_or_the_whole_day() -> None:
    one = devnet_day.DemoConfig(hours=1).day()
    assert (one.start_minute, one.intervals) == (12 * 60 + 30, 4)
    whole = devnet_day.DemoConfig(hours=24).day()
    assert (whole.start_minute, whole.intervals) == (0, 96)
    quarter = devnet_day.DemoConfig(hours=0.25).day()
    assert (quarter.start_minute, quarter.intervals) == (12 * 60 + 45, 1)
    evening = devnet_day.DemoConfig(hours=23).day()
    assert evening.start_minute + evening.intervals * 15 <= 1440
