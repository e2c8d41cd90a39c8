"""The grid's read side (`grid.queries`): each authority's latest report, None until the
first, on a real Sandbox: EGAT's frequency, link and zone balance, a distributor's
headroom."""

from __future__ import annotations

from gridtokenx.ledger.grid import queries
from gridtokenx.ledger.grid.records import (
    DistributionState,
    LinkState,
    TransmissionState,
    ZoneBalanceState,
)
from gridtokenx.wire.tx import DistributionStatus, LinkStatus, TransmissionStatus, ZoneBalance
from tests.conftest import Cast


def test_nothing_is_reported_before_the_first_status(net: Cast) -> None:
    state = net.sb.state
    assert queries.transmission(state) is None
    assert queries.zone_balance(state, "BKK") is None
    assert queries.distribution(state, "BKK") is None
    assert queries.link_state(state, "BKK", "CEN") is None


def test_the_latest_reports_of_egat_and_a_distributor(net: Cast) -> None:
    now = net.sb.time
    link = LinkStatus("CEN", "BKK", 600_000, 450_000)
    balance = ZoneBalance("BKK", 2_100_000, 9_300_000)
    net.ok(net.egat, TransmissionStatus(now, 50_020, (link,), (balance,)))
    net.ok(net.mea, DistributionStatus(now, "BKK", 8_000, 40))
    state = net.sb.state
    assert queries.transmission(state) == TransmissionState(now, 50_020, "EGAT")
    # Either zone order finds the link, stored in sorted orientation (BKK -> CEN).
    expected = LinkState(now, 600_000, -450_000)
    assert queries.link_state(state, "CEN", "BKK") == expected
    assert queries.link_state(state, "BKK", "CEN") == expected
    assert queries.zone_balance(state, "BKK") == ZoneBalanceState(now, 2_100_000, 9_300_000)
    assert queries.zone_balance(state, "CEN") is None
    assert queries.distribution(state, "BKK") == DistributionState(now, "MEA", 8_000, 40)
    assert queries.distribution(state, "CEN") is None
