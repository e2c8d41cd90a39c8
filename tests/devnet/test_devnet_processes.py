"""Validators as real processes on 127.0.0.1: four commit blocks; one is killed with
SIGKILL and the other three go on; restarted, it catches up from its RocksDB store and
its peers; every node reports the same state root at the same height. All processes are
stopped at the end, whatever happens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gridtokenx.devnet.homes import init_devnet, init_full_node
from gridtokenx.node.home import read_config, read_status
from gridtokenx.storage.store import Store
from tests.conftest import free_base_port

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]


def _start(home: Path, **extra_env: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", **extra_env)
    with open(home / "node.log", "ab") as log:  # the child keeps its own copy of the fd
        return subprocess.Popen(
            [sys.executable, "-m", "gridtokenx", "node", "start", "--home", str(home)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )


def _height(home: Path) -> int:
    status = read_status(home)
    return int(status["height"]) if status else 0  # type: ignore[call-overload]


def _report(homes: list[Path], procs: dict[Path, subprocess.Popen[bytes]] | None = None) -> str:
    """What each node last said about itself (height, round, step), whether its process is
    still running (when `procs` is given), and its log's tail: for failure messages."""
    lines = []
    for home in homes:
        log = home / "node.log"
        tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
        proc = (procs or {}).get(home)
        code = None if proc is None else proc.poll()
        state = "" if proc is None else " (running)" if code is None else f" (exited {code})"
        lines.append(f"{home.name}{state}: {read_status(home)} {tail!r}")
    return "\n".join(lines)


def _wait(check: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def test_four_processes_commit_and_a_killed_one_catches_up(tmp_path: Path) -> None:
    homes = init_devnet(
        tmp_path, "gridtokenx-proc-test", int(time.time()), free_base_port(), block_ms=200
    )
    procs = {h: _start(h) for h in homes}
    try:
        assert _wait(lambda: all(_height(h) >= 3 for h in homes), 60), [_height(h) for h in homes]
        config = read_config(homes[0])
        scraped = (
            urllib.request.urlopen(f"http://127.0.0.1:{config.metrics_port}/metrics", timeout=5)
            .read()
            .decode()
        )
        height_line = next(
            line for line in scraped.splitlines() if line.startswith("gridtokenx_height ")
        )
        assert float(height_line.split()[1]) >= 3
        assert "gridtokenx_block_interval_seconds_bucket" in scraped
        victim = homes[3]  # ERC: 7,000 of 33,000, the other three keep a quorum
        procs[victim].send_signal(signal.SIGKILL)
        procs[victim].wait(10)
        stopped_at = _height(victim)
        target = max(_height(h) for h in homes[:3]) + 3
        assert _wait(lambda: all(_height(h) >= target for h in homes[:3]), 60)
        procs[victim] = _start(victim)  # restart: WAL and store from disk
        assert _wait(lambda: _height(victim) >= target, 60), (stopped_at, _height(victim))
        _stop(procs)
        common = min(_height(h) for h in homes)
        chains = []
        for home in homes:
            with Store(home / "data") as db:
                stored = [db.block(n) for n in range(1, common + 1)]
            assert None not in stored
            chains.append([s[0] for s in stored if s is not None])  # each node's own certificate
        assert all(chain == chains[0] for chain in chains)  # the same blocks at every height
    finally:
        _stop(procs)


def _stop(procs: dict[Path, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    for proc in procs.values():
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_two_down_stops_the_chain_and_one_back_resumes_it(tmp_path: Path) -> None:
    homes = init_devnet(
        tmp_path, "gridtokenx-proc-test-2", int(time.time()), free_base_port(), block_ms=200
    )
    procs = {h: _start(h) for h in homes}
    try:
        assert _wait(lambda: all(_height(h) >= 2 for h in homes), 60)
        mea, pea = homes[1], homes[2]  # 16,000 of 33,000 down: no quorum is left
        for home in (mea, pea):
            procs[home].send_signal(signal.SIGKILL)
            procs[home].wait(10)
        time.sleep(2)  # let any height already under way finish
        stalled = max(_height(h) for h in (homes[0], homes[3]))
        time.sleep(3)
        assert max(_height(h) for h in (homes[0], homes[3])) == stalled  # nothing committed
        procs[mea] = _start(mea)  # back to 25,000 of 33,000
        back = (homes[0], homes[3], mea)
        # MEA re-sends the votes its WAL holds (a SIGKILL may have lost them on the way):
        # with two of four down EGAT and ERC cannot time out, so they may need exactly those.
        assert _wait(lambda: min(_height(h) for h in back) >= stalled + 3, 60), _report(
            homes, procs
        )
    finally:
        _stop(procs)


def test_a_fresh_full_node_finds_its_peers_and_syncs_from_genesis(tmp_path: Path) -> None:
    base = free_base_port(5)
    homes = init_devnet(tmp_path, "gridtokenx-proc-test-3", int(time.time()), base, block_ms=200)
    procs = {h: _start(h) for h in homes}
    try:
        assert _wait(lambda: all(_height(h) >= 6 for h in homes), 60)
        full = init_full_node(tmp_path / "full", homes[:1], base + 4)  # knows EGAT only
        procs[full] = _start(full)
        # It learns the other validators' addresses from EGAT (peer exchange) and dials them.
        assert _wait(lambda: (read_status(full) or {}).get("peers") == len(homes), 30)
        assert len(json.loads((full / "peers.json").read_text())["addresses"]) >= len(homes)
        _assert_follows(procs, homes, full)
        status = read_status(full)
        assert status is not None and status["halted"] is None
    finally:
        _stop(procs)


def _assert_follows(
    procs: dict[Path, subprocess.Popen[bytes]], homes: list[Path], full: Path
) -> None:
    """The full node reaches the validators' height, then (all stopped) holds their blocks."""
    target = max(_height(h) for h in homes)
    assert _wait(lambda: _height(full) >= target, 60), (_height(full), target)
    _stop(procs)
    common = min(_height(h) for h in [*homes, full])
    chains = []
    for home in (homes[0], full):
        with Store(home / "data") as db:
            chains.append([db.block(n)[0] for n in range(1, common + 1)])  # type: ignore[index]
    assert chains[0] == chains[1]
