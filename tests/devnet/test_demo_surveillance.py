"""Manipulating agents on the demo devnet: four validator processes on 127.0.0.1 replay an
hour of the late afternoon with every manipulator mixed in, and the surveillance the
validators' nodes run over their committed chain (`/api/v1/surveillance/alerts`) names each
manipulating account under its own detector, and no honest member."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import pytest

from gridtokenx.client import Client
from gridtokenx.node.home import read_config
from gridtokenx.simulator.devnet_day import DemoConfig, DemoDevnet, surveillance_alerts
from gridtokenx.simulator.manipulators import ROLES
from tests.conftest import free_base_port

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]


def test_each_injected_manipulation_raises_its_alert_on_a_devnet(tmp_path: Path) -> None:
    # 17:00, when the sun sets and zones run short: the window where every pattern of
    # manipulators.py has something to act on (the in-process day agrees: same seed).
    # Speed 45: the gate marker's sweep (150 s before gate closure) must land in
    # surveillance's last three minutes before it, with blocks about one wall second (45
    # chain seconds) apart.
    config = DemoConfig(participants=60, hours=1.0, speed=45, seed=3, start_minute=17 * 60,
                        manipulators=tuple(ROLES), directory=tmp_path / "demo",
                        base_port=free_base_port(5))  # fmt: skip
    net = DemoDevnet(config)
    try:
        net.start()
        result = net.run_day()
        flagged: dict[str, set[str]] = defaultdict(set)
        for alert in result.alerts:
            flagged[alert.detector] |= {result.names[a] for a in alert.accounts}
        assert flagged["wash_trading"] == {"bkk-wash-1", "bkk-wash-2", "bkk-wash-3"}
        assert flagged["spoofing"] == {"bkk-spoofer"}
        assert flagged["marking_the_gate"] == {"bkk-marker"}
        assert "bkk-withholder" in flagged["capacity_withholding"]
        assert "bkk-dominant" in flagged["market_power"]
        manipulators = {name for name in result.names.values() if name.startswith("bkk-")
                        and name.split("-", 1)[1].rstrip("123") in
                        ("wash-", "spoofer", "marker", "withholder", "dominant")}  # fmt: skip
        assert set().union(*flagged.values()) <= manipulators  # no honest member is named
        # every validator's node judged the same chain alike: the same alerts, same ids
        ids = sorted(a.id for a in result.alerts)
        for home in net.homes[1:]:
            with Client(f"http://127.0.0.1:{read_config(home).api_port}") as other:
                mine = surveillance_alerts(other, result.summary.height)
                assert sorted(a.id for a in mine) == ids
        # the summary's evidence points at trades of the day's window
        window = range(result.summary.first_interval,
                       result.summary.first_interval + 4 * 900)  # fmt: skip
        assert {a.interval for a in result.alerts} <= set(window)
    finally:
        net.stop()
