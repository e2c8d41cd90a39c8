"""Scenario files, the export and the speed the demo decides on, without processes: a bad
file is refused with its key named before anything starts; the shipped examples load;
the export's files come from a day run in-process; a measured pace picks the speed."""

from __future__ import annotations

import csv
import datetime
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from gridtokenx.cli.main import app
from gridtokenx.ledger.params import Params
from gridtokenx.simulator import devnet_day, export, run_day_in_sandbox, scenario_file
from gridtokenx.simulator.day import DayConfig
from tests.cli.test_errors import error_lines

runner = CliRunner()
EXAMPLES = sorted((Path(__file__).parents[2] / "scenarios").glob("*.toml"))


def test_the_example_scenarios_load_and_make_valid_demos() -> None:
    assert len(EXAMPLES) >= 2
    for path in EXAMPLES:
        found = scenario_file.load(path)
        config = devnet_day.DemoConfig(
            participants=found.participants, hours=found.hours, seed=found.seed,
            date=found.date, zones=tuple(found.zones), season=found.hot_season,
        )  # fmt: skip
        assert config.problems() == [], path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("participant = 10\n", "unknown field `participant`"),
        ('hours = "six"\n', "Expected `float`, got `str` - at `hours`"),
        ('season = "rainy"\n', "`season`"),
        ('zones = ["BKK", "MARS"]\n', "zones: unknown MARS"),
        ('zones = ["BKK", "BKK"]\n', "zones: a zone is listed twice"),
        ("hours = \n", "not valid TOML"),
        ("hours = 1.1\n", "in whole 15-minute intervals"),
        ("participants = 3\n", "participants must be at least 6"),
    ],
)
def test_a_bad_scenario_is_refused_with_its_key_before_anything_starts(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "day.toml"
    path.write_text(text)
    result = runner.invoke(app, ["demo", "--scenario", str(path), "--dir", str(tmp_path / "d")])
    assert message in error_lines(result, "BAD_INPUT", 2)[0]
    assert not (tmp_path / "d").exists()


def test_a_missing_scenario_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    result = runner.invoke(app, ["demo", "--scenario", str(missing), "--dir", str(tmp_path / "d")])
    assert f"{missing}: cannot read it" in error_lines(result, "BAD_INPUT", 2)[0]


def test_flags_given_win_over_the_scenario(tmp_path: Path) -> None:
    from gridtokenx.cli.demo import _config

    path = tmp_path / "day.toml"
    path.write_text(
        'participants = 40\nhours = 2\nseed = 9\nseason = "auto"\ndate = 2026-01-15\n'
        'zones = ["NTH"]\nstoryline = false\nspeed = 30\n'
    )
    config = _config(None, 1.0, None, False, None, path, tmp_path, 0, "plain", "info")
    assert (config.participants, config.hours, config.seed, config.speed) == (40, 1.0, 9, 30)
    day = config.day()
    assert (day.date, day.zones, day.storyline) == (datetime.date(2026, 1, 15), ("NTH",), False)
    assert day.hot_season is None  # auto: January is not the hot season
    assert _config(None, None, 90.0, True, None, path, tmp_path, 0, "plain", "info").day() \
        .hot_season is True  # fmt: skip


def test_the_export_writes_the_days_figures_and_plots(tmp_path: Path) -> None:
    config = DayConfig(seed=3, participants=16, start_minute=12 * 60, intervals=3)
    s = run_day_in_sandbox(config)
    export.export(s, tmp_path, (("speed", 1.0),))
    figures = dict(_rows(tmp_path / "summary.csv")[1:])
    assert int(figures["p2p_delivered_wh"]) == s.p2p_delivered_wh > 0
    assert int(figures["buyer_savings_satang"]) == s.buyer_savings_satang
    assert "state_root" not in figures and "height" not in figures
    flows = _rows(tmp_path / "flows.csv")
    assert sum(int(r[3]) for r in flows[1:]) == s.p2p_delivered_wh
    prices = _rows(tmp_path / "prices.csv")
    assert sum(int(r[3]) for r in prices[1:]) == s.trades_settled
    assert all(int(r[6]) > 0 for r in prices[1:])  # the retail rate beside every price
    savings = _rows(tmp_path / "savings.csv")
    assert sum(int(r[1]) for r in savings[1:]) == s.buyer_savings_satang
    for name in export.PLOTS:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert _rows(tmp_path / "devnet.csv") == [["figure", "value"], ["speed", "1.0"]]


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_the_speed_follows_the_measured_pace() -> None:
    p = Params()  # 900 s intervals, gate 5 minutes before: 600 chain seconds to order in
    assert devnet_day.sustainable_speed(1.0, p) == 240  # 2 s of a 2.5 s window
    assert devnet_day.sustainable_speed(2.4, p) == 120
    assert devnet_day.sustainable_speed(4.0, p) == 60
    assert devnet_day.sustainable_speed(1000.0, p) == 0


def test_too_slow_says_what_to_do() -> None:
    message = str(devnet_day.TooSlow(120, 60, "the setup took 9.0 s"))
    assert message.startswith("this machine is too slow for speed 120: try --speed 60")
    assert "no speed would do" in str(devnet_day.TooSlow(2, 0, "x"))


def test_the_demo_governance_is_valid_and_waited_for() -> None:
    params = msgspec.structs.replace(Params(), governance=devnet_day.DEMO_GOVERNANCE)
    assert params.governance.validate() == []
    from gridtokenx.simulator import storyline

    g = devnet_day.DEMO_GOVERNANCE
    assert g.voting_period_heights + g.timelock_heights <= storyline.MAX_WAIT_HEIGHTS


def test_a_slow_boot_lengthens_the_next_runs_lead(tmp_path: Path) -> None:
    demo_net = devnet_day.DemoDevnet(devnet_day.DemoConfig(directory=tmp_path / "d"))
    demo_net.boot_seconds = 2.0  # a quick boot keeps the default lead
    assert demo_net.next_lead() == devnet_day.LEAD_SECONDS
    demo_net.boot_seconds = 20.0  # the boot ate the lead: twice it, and room for the setup
    assert demo_net.next_lead() == 45.0
    slower = devnet_day.DemoConfig(speed=60, lead_seconds=45.0)
    assert slower.wall_seconds() == (6 * 3600 + 1800) / 60 + 45.0
