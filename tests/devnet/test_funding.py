"""`devnet --fund`'s clock and limits, without processes: the chain clock is placed so
the setup's meter registrations land within the reading clock-skew allowance of an
interval's end (their first reading accepted at once), at any speed; the devnet command
refuses a speed, a count or a folder it cannot run with, before it writes anything. And
`devnet --speed` as a process: the chain clock runs S times faster, Ctrl-C exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from gridtokenx.cli.main import app
from gridtokenx.client import ApiError, Client
from gridtokenx.devnet.funding import SETUP_WALL_SECONDS, Funding, fund_clock, next_local_time
from gridtokenx.devnet.processes import free_base_port
from gridtokenx.ledger.params import Params
from gridtokenx.node.home import chain_clock
from tests.cli.test_errors import error_lines

P = Params()


@pytest.mark.parametrize("speed", [1.0, 2.5, 10.0, 60.0, 120.0])
@pytest.mark.parametrize("now", [1_796_400_000.0, 1_796_400_437.7, 1_796_400_899.9])
def test_setup_ends_inside_the_reading_window_of_an_interval(now: float, speed: float) -> None:
    genesis_time, origin = fund_clock(now, speed, P)
    assert origin == int(now)
    assert genesis_time >= origin  # the chain never starts behind the wall clock
    assert genesis_time - origin < P.interval_seconds + SETUP_WALL_SECONDS * speed
    at_setup_end = genesis_time + SETUP_WALL_SECONDS * speed
    ends = (at_setup_end // P.interval_seconds + 1) * P.interval_seconds
    # A meter registered then can report its interval now: its end is within the skew.
    assert 0 < ends - at_setup_end <= P.reading_clock_skew_seconds


def test_a_devnet_clock_at_speed_one_with_an_origin_is_shifted_not_the_wall_clock() -> None:
    assert chain_clock(1_000, 0, 1.0) is time.time  # production: the wall clock itself
    origin = int(time.time())
    shifted = chain_clock(origin + 600, origin, 1.0)
    assert abs(shifted() - (time.time() + 600)) < 1.0
    with pytest.raises(ValueError, match="positive"):
        chain_clock(0, origin, 0)


def test_the_participant_count_is_bounded(tmp_path: Path) -> None:
    for count in (0, 201):
        with pytest.raises(ValueError, match="1 to 200"):
            Funding(tmp_path, "http://127.0.0.1:1", count)


@pytest.mark.parametrize(
    ("args", "what"),
    [(["--speed", "0.5"], "--speed 0.5"), (["--speed", "901"], "--speed 901.0"),
     (["--fund", "201"], "--fund 201"), (["--fund", "-1"], "--fund -1")],
)  # fmt: skip
def test_devnet_refuses_a_speed_or_count_it_cannot_run(
    tmp_path: Path, args: list[str], what: str
) -> None:
    folder = tmp_path / "devnet"
    result = CliRunner().invoke(app, ["devnet", "--dir", str(folder), *args])
    (message,) = error_lines(result, "BAD_INPUT", 2)
    assert what in message
    assert not folder.exists()


@pytest.mark.parametrize("args", [["--fund", "1"], []])
def test_a_folder_that_holds_an_earlier_chain_is_refused(tmp_path: Path, args: list[str]) -> None:
    """A second devnet in the same folder would write a new genesis over stores that began
    from the old one (which its nodes then refuse, STORE_OF_ANOTHER_CHAIN), and with
    --fund register participants that exist: refused at once, nothing started or changed."""
    old = tmp_path / "devnet" / "egat" / "data"
    old.mkdir(parents=True)
    result = CliRunner().invoke(app, ["devnet", "--dir", str(tmp_path / "devnet"), *args])
    (message,) = error_lines(result, "EXISTS", 1)
    assert "earlier devnet" in message and "choose another --dir" in message
    assert sorted(p.name for p in (tmp_path / "devnet").iterdir()) == ["egat"]


def _start(args: list[str]) -> subprocess.Popen[str]:
    """`gridtokenx ARGS` as a process, its output kept for the failure message."""
    return subprocess.Popen([sys.executable, "-m", "gridtokenx", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip


def _wait_height(devnet: subprocess.Popen[str], api: Client, height: int) -> None:
    """Until the devnet's API shows `height` (bounded: 60 s); the devnet must keep running."""
    deadline = time.monotonic() + 60
    while True:
        assert devnet.poll() is None and time.monotonic() < deadline
        try:
            if api.health()["height"] >= height:
                return
        except (ApiError, httpx.HTTPError):
            pass
        time.sleep(0.2)


@pytest.mark.process
def test_devnet_speed_runs_the_chain_clock_faster_and_ctrl_c_exits_0(tmp_path: Path) -> None:
    """`--speed 60` (the demo's mechanism): the node's clock, and the block times with it,
    run sixty chain seconds per wall second."""
    base = free_base_port(1)
    args = ["devnet", "--validators", "1", "--speed", "60", "--base-port", str(base),
            "--dir", str(tmp_path / "devnet")]  # fmt: skip
    devnet = _start(args)
    try:
        with Client(f"http://127.0.0.1:{base + 200}", timeout=2.0) as api:
            _wait_height(devnet, api, 2)
            wall, chain = time.time(), api.get("/chain")["clock"]
            time.sleep(2.0)
            wall_later, chain_later = time.time(), api.get("/chain")["clock"]
            rate = (chain_later - chain) / (wall_later - wall)
            assert 30 < rate < 90  # 60, less whole-second rounding of the clock
            block_time = api.health()["latest_time"]
            assert block_time > wall + 60  # a block stamped by the fast clock
    finally:
        if devnet.poll() is None:
            devnet.send_signal(signal.SIGINT)
        out, _ = devnet.communicate(timeout=30)
    assert devnet.returncode == 0, out


def _node_processes(folder: Path) -> list[int]:
    """Pids of `gridtokenx node start` processes whose home is under `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"node" in argv and any(str(folder).encode() in a for a in argv):
            found.append(int(entry.name))
    return found


@pytest.mark.process
def test_a_terminated_devnet_stops_its_nodes(tmp_path: Path) -> None:
    """SIGTERM to `gridtokenx devnet` (a script's `kill`, systemd, a container runtime)
    stops its nodes and exits 0, as Ctrl-C does. Before, Python's default SIGTERM ended the
    command at once and left its validator running, holding the ports and the store."""
    base = free_base_port(1)
    folder = tmp_path / "devnet"
    args = ["devnet", "--validators", "1", "--base-port", str(base), "--dir", str(folder)]
    devnet = _start(args)
    try:
        with Client(f"http://127.0.0.1:{base + 200}", timeout=2.0) as api:
            _wait_height(devnet, api, 1)
        assert _node_processes(folder)
        devnet.send_signal(signal.SIGTERM)  # to the devnet command only, not its group
        out, _ = devnet.communicate(timeout=30)
        assert devnet.returncode == 0, out
        assert _node_processes(folder) == []
    finally:
        if devnet.poll() is None:
            devnet.kill()
            devnet.wait()
        for pid in _node_processes(folder):  # what a failed run left behind
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("minute", [0, 690, 1439])
@pytest.mark.parametrize("now", [1_796_400_000.0, 1_796_441_999.5, 1_796_486_399.0])
def test_a_devnet_starts_at_the_next_bangkok_time_asked_for(now: float, minute: int) -> None:
    begin = next_local_time(now, minute, P)
    assert int(now) <= begin < int(now) + 86_400  # the next one, never in the past
    local = begin + P.tariffs.utc_offset_seconds
    assert local % 86_400 == minute * 60  # that time of day in Bangkok (UTC+7)
    genesis_time, origin = fund_clock(now, 900.0, P, start=begin)
    assert origin == int(now)
    assert begin <= genesis_time < begin + P.interval_seconds + SETUP_WALL_SECONDS * 900
    with pytest.raises(ValueError, match="0 to 1439"):
        next_local_time(now, 1440, P)


@pytest.mark.parametrize("text", ["25:00", "11:60", "1130", "11:3", "noon", "-1:00"])
def test_devnet_refuses_a_start_that_is_not_a_time_of_day(tmp_path: Path, text: str) -> None:
    folder = tmp_path / "devnet"
    result = CliRunner().invoke(app, ["devnet", "--dir", str(folder), "--start", text])
    (message,) = error_lines(result, "BAD_INPUT", 2)
    assert f"--start {text}" in message and "HH:MM" in message
    assert not folder.exists()
