"""`devnet --fund`'s clock and limits, without processes: the chain clock is placed so the
setup's meter registrations land within the reading clock-skew allowance of an interval's
end (their first reading accepted at once), at any speed; and the devnet command refuses a
speed or a count it cannot run, before it writes anything."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridtokenx.cli.main import app
from gridtokenx.devnet.funding import SETUP_WALL_SECONDS, Funding, fund_clock
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
