"""The operator's CPU profile (`node.profiling`): written only when asked, per process,
and timed by the thread's CPU clock (a sleep costs it nothing)."""

from __future__ import annotations

import os
import pstats
import time
from pathlib import Path

from gridtokenx.node.profiling import PROFILE_ENV, cpu_profile


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_no_profile_unless_asked(tmp_path: Path) -> None:
    with cpu_profile({}) as profile:
        _spin(0.01)
    assert profile is None
    assert list(tmp_path.iterdir()) == []


def test_the_profile_counts_cpu_not_waiting(tmp_path: Path) -> None:
    target = tmp_path / "node-{pid}.prof"
    with cpu_profile({PROFILE_ENV: str(target)}) as profile:
        assert profile is not None
        _spin(0.05)
        time.sleep(0.3)
    written = tmp_path / f"node-{os.getpid()}.prof"
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    stats = pstats.Stats(str(written)).stats  # type: ignore[attr-defined]
    by_name = {name: cumulative for (_, _, name), (_, _, _, cumulative, _) in stats.items()}
    assert 0.04 <= by_name["_spin"] < 0.2
    assert by_name["<built-in method time.sleep>"] < 0.05  # waited, not spent
