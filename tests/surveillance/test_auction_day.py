"""Surveillance on a day with the day-ahead auction: its trades are told apart from
continuous ones (their order ids are curve ids, they have no aggressor and no late price)
and its sell curves count as energy on offer, so an honest auction day raises no alert (it
raised a withholding alert against an honest solar farm whose energy was offered in the
auction, before the tape knew the auction's curves)."""

from __future__ import annotations

import pytest

from gridtokenx.ledger.market import auction
from gridtokenx.simulator.day import DayConfig
from gridtokenx.simulator.surveilled import SurveilledDay, run_surveilled_day
from gridtokenx.surveillance.follow import trade_orders
from gridtokenx.surveillance.tape import Tape
from tests.surveillance.test_simulated_day import follow

DAY = DayConfig(seed=5, participants=60, intervals=8, start_minute=11 * 60, auction=True)


@pytest.fixture(scope="module")
def day() -> SurveilledDay:
    return run_surveilled_day(DAY)


def test_an_honest_auction_day_raises_no_alert(day: SurveilledDay) -> None:
    engine = follow(day)
    assert engine.alerts == []
    assert len(engine.judged) > 0  # the intervals were judged


def test_the_tape_tells_auction_trades_and_curves_apart(day: SurveilledDay) -> None:
    state = day.sandbox.state
    tape = Tape(trade_orders(state))
    for block in day.blocks:
        tape.observe(block)
    view = state.overlay()
    for k in range(DAY.intervals):
        start = day.day.start(k)
        result = auction.result(view, start)
        assert result is not None
        found = tape.intervals[start]
        assert sorted(t.id for t in found.trades if t.auction) == sorted(result.trades)
        assert any(not t.auction for t in found.trades)  # continuous trading too
        sells = [c for c in (auction.get_curve(view, i) for i in auction.get_interval(
            view, start).curves) if c.side.name == "SELL"]  # type: ignore[union-attr]  # fmt: skip
        assert {i: wh for i, (_, _, wh) in found.curve_offers.items()} == {
            c.id: c.quantity_wh for c in sells
        }
        # an order's fills come from continuous trades only
        for order in found.orders.values():
            continuous = sum(t.quantity_wh for t in found.trades if not t.auction
                             and order.id in (t.buy_order, t.sell_order))  # fmt: skip
            assert order.filled_wh == continuous
