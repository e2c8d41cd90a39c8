"""Accelerated chain time for demo devnets: every validator computes the same clock from
the genesis time, a wall-clock origin and a speed, so a replayed day's blocks carry times
that advance S times faster than the wall clock while the validators still accept each
other's proposals."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest

from gridtokenx.client import Client
from gridtokenx.devnet.homes import init_devnet, init_full_node
from gridtokenx.devnet.processes import Processes
from gridtokenx.node.home import HomeError, chain_clock, load_home, read_config, write_config
from tests.conftest import free_base_port

pytestmark = pytest.mark.process


def test_speed_one_is_the_wall_clock() -> None:
    """Without an origin (production's config); with one, a devnet's shifted clock
    (tests/devnet/test_funding.py)."""
    assert chain_clock(1_000, 0, 1.0) is time.time


def test_accelerated_clock_runs_from_the_genesis_time_at_the_origin() -> None:
    origin = int(time.time()) - 10
    clock = chain_clock(1_000_000, origin, 60.0)
    before = time.time()
    reading = clock()
    after = time.time()
    assert 1_000_000 + (before - origin) * 60 <= reading <= 1_000_000 + (after - origin) * 60


@pytest.mark.parametrize("speed", [0.0, -2.0])
def test_a_speed_that_is_not_positive_is_refused(tmp_path: Path, speed: float) -> None:
    with pytest.raises(ValueError, match="clock_speed must be positive"):
        chain_clock(0, 0, speed)
    with pytest.raises(ValueError, match="clock_speed must be positive"):
        init_devnet(tmp_path / "net", "c", 0, 20_000, clock_speed=speed)
    assert not (tmp_path / "net").exists()


def test_a_home_with_a_bad_speed_is_a_clear_error(tmp_path: Path) -> None:
    (home,) = init_devnet(tmp_path, "c", 0, 20_000, validators=("EGAT",))
    write_config(home, msgspec.structs.replace(read_config(home), clock_speed=0.0))
    with pytest.raises(HomeError, match=r"clock\.speed must be a number above 0, not 0\.0"):
        load_home(home)


def test_devnet_homes_and_their_follower_share_the_clock(tmp_path: Path) -> None:
    homes = init_devnet(tmp_path, "c", 5_000, 20_000, clock_origin=77, clock_speed=60.0)
    follower = init_full_node(tmp_path / "follower", homes, 20_010)
    for home in [*homes, follower]:
        config = read_config(home)
        assert (config.clock_origin, config.clock_speed) == (77, 60.0)


def test_a_devnet_at_speed_60_commits_blocks_60_times_faster_than_wall_time(
    tmp_path: Path,
) -> None:
    speed = 60.0
    origin = int(time.time())
    genesis_time = 1_776_800_000  # a fixed day in 2026: the chain runs from here, not from now
    homes = init_devnet(tmp_path, "gridtokenx-clock-test", genesis_time,
                               free_base_port(), block_ms=250, clock_origin=origin,
                               clock_speed=speed)  # fmt: skip
    url = f"http://127.0.0.1:{read_config(homes[0]).api_port}"
    with Processes(homes) as nodes, Client(url, timeout=2.0) as api:
        samples: list[tuple[float, int, int]] = []  # (wall, height, block time)
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and (not samples or samples[-1][1] < 12):
            assert nodes.alive()
            try:
                health = api.health()
            except Exception:
                health = None
            if health is not None and health["height"] >= 1:
                samples.append((time.time(), int(health["height"]), int(health["latest_time"])))
            time.sleep(0.25)
        assert samples and samples[-1][1] >= 12, samples[-1:]
        first = next(s for s in samples if s[1] >= 2)
        last = samples[-1]
        # Block times follow the accelerated clock, far from the wall clock...
        assert last[2] - genesis_time < (last[0] - origin) * speed + 60
        assert abs(last[2] - time.time()) > 86_400
        # ...and advance about 60 chain seconds per wall second (a block lags by <= 1 s).
        rate = (last[2] - first[2]) / (last[0] - first[0])
        assert 0.5 * speed < rate < 1.5 * speed, (first, last, rate)
        heights = [api.block(h)["header"]["time"] for h in range(1, last[1] + 1)]
        assert heights == sorted(heights)
    assert not nodes.alive()
