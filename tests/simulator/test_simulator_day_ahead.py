"""A seeded market day with the day-ahead auction: the members' curves clear before the
gate, the auction's trades settle like continuous ones, and the summary's comparison of the
two markets agrees with the committed trades recomputed here."""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction

import pytest

from gridtokenx.ledger import invariants
from gridtokenx.ledger.market import auction, queries
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.simulator import sandbox_for
from gridtokenx.simulator.day import DayConfig, MarketDay
from gridtokenx.simulator.export import figures
from gridtokenx.simulator.sink import SandboxSink
from gridtokenx.simulator.summary import DaySummary, summarize
from gridtokenx.wire import tx

DAY = DayConfig(seed=5, participants=40, intervals=6, start_minute=11 * 60, auction=True)


@pytest.fixture(scope="module")
def run() -> tuple[MarketDay, Sandbox, DaySummary]:
    sandbox = sandbox_for(DAY)
    sink = SandboxSink(sandbox)
    day = MarketDay(DAY, sandbox.genesis, sandbox.authority_keys, sink.next_nonce)
    day.run(sink)
    invariants.check_all(sandbox.state)
    summary = summarize(sandbox.state, sink.events, day.first_interval, DAY.intervals)
    return day, sandbox, summary


def test_the_setup_and_the_curves_come_before_the_gate_of_the_day_before() -> None:
    p = sandbox_for(DAY).genesis.params
    gate = DAY.auction_gate(p)
    assert gate == DAY.first_interval(p) - 11 * 3600 - 12 * 3600  # 12:00 the day before
    assert DAY.setup_time(p) < gate
    assert DayConfig(auction=False).setup_time(p) == DayConfig().first_interval(p) - 1800


def test_every_auction_clears_and_its_trades_settle(
    run: tuple[MarketDay, Sandbox, DaySummary],
) -> None:
    day, sandbox, summary = run
    state = sandbox.state
    view = state.overlay()
    for k in range(DAY.intervals):
        start = day.start(k)
        record = auction.get_interval(view, start)
        assert record is not None and record.status is auction.AuctionStatus.CLEARED
        result = auction.result(view, start)
        assert result is not None and result.trades
        for trade_id in result.trades:
            trade = queries.trade(state, trade_id)
            assert trade is not None and trade.settled
        # every accepted step is in the money at its zone price, no rejected one is
        prices = {z.zone: Fraction(z.price.num, z.price.den) for z in result.clearing.zones}
        for curve_id in record.curves:
            curve = auction.get_curve(view, curve_id)
            assert curve.status is auction.CurveStatus.CLEARED
            for step, accepted in zip(curve.steps, curve.accepted_wh, strict=True):
                gain = step.price - prices[curve.zone]
                gain = gain if curve.side is tx.Side.BUY else -gain
                assert accepted == 0 if gain < 0 else accepted > 0 or gain == 0, (curve, step)
    assert summary.markets.auctions_cleared == DAY.intervals
    assert summary.markets.auctions_cancelled == 0
    assert summary.trades == summary.trades_settled
    assert summary.intervals_settled == DAY.intervals


def test_the_comparison_is_the_committed_trades_recomputed(
    run: tuple[MarketDay, Sandbox, DaySummary],
) -> None:
    day, sandbox, summary = run
    state, c = sandbox.state, summary.markets
    view = state.overlay()
    window = {day.start(k) for k in range(DAY.intervals)}
    in_auction = {i for s in window for i in auction.result(view, s).trades}  # type: ignore[union-attr]
    energy: dict[bool, int] = defaultdict(int)
    zone: dict[tuple[bool, str], list[int]] = defaultdict(lambda: [0, 0])
    welfare_milli = 0
    for t in queries.trades(state):
        if t.interval_start not in window:
            continue
        ours = t.id in in_auction
        energy[ours] += t.quantity_wh
        zone[(ours, t.buyer_zone)][0] += t.quantity_wh
        zone[(ours, t.buyer_zone)][1] += t.quantity_wh * t.price
        if not ours:
            buy, sell = queries.order(state, t.buy_order), queries.order(state, t.sell_order)
            assert buy is not None and sell is not None
            welfare_milli += buy.price * (t.quantity_wh * (10_000 - t.loss_bp) // 10_000)
            welfare_milli -= sell.price * t.quantity_wh
    assert energy[True] > 0 and energy[False] > 0  # both markets traded
    assert (c.auction.energy_wh, c.continuous.energy_wh) == (energy[True], energy[False])
    assert c.continuous.welfare_satang == welfare_milli // 1000
    for (ours, z), (wh, turnover) in zone.items():
        market = c.auction if ours else c.continuous
        assert market.vwap(z) == turnover // wh
    total = energy[True] + energy[False]
    assert c.share_permille(c.auction) == energy[True] * 1000 // total
    # the auction's welfare from its accepted steps is the certified optimum, but for the
    # whole-Wh rounding of each accepted step (a few satang per kWh-priced Wh at most)
    steps = sum(len(auction.get_curve(view, i).steps)
                for s in window for i in auction.get_interval(view, s).curves)  # type: ignore[union-attr]  # fmt: skip
    assert c.auction.welfare_satang > 0
    assert abs(Fraction(c.auction.welfare_milli, 1000) - c.certified) <= steps
    # the summary's traded energy is the sum of both markets
    all_sent = sum(t.quantity_wh for t in queries.trades(state) if t.interval_start in window)
    assert c.auction.energy_wh + c.continuous.energy_wh == all_sent
    # and `--export` writes the same figures
    exported = dict(figures(summary))
    assert exported["auction_energy_wh"] == energy[True]
    assert exported["continuous_welfare_satang"] == welfare_milli // 1000


def test_no_member_offers_the_same_energy_in_both_markets(
    run: tuple[MarketDay, Sandbox, DaySummary],
) -> None:
    day, sandbox, _ = run
    assert day.day_ahead is not None
    state = sandbox.state
    view = state.overlay()
    owners = {m.key.address: m.name for m in day.population.members}
    sides: dict[tuple[str, int], set[tx.Side]] = defaultdict(set)
    for k in range(DAY.intervals):
        for curve_id in auction.get_interval(view, day.start(k)).curves:  # type: ignore[union-attr]
            curve = auction.get_curve(view, curve_id)
            sides[(owners[curve.owner], curve.interval_start)].add(curve.side)
            signed = curve.quantity_wh if curve.side is tx.Side.SELL else -curve.quantity_wh
            assert day.day_ahead.committed(owners[curve.owner], k) == signed
    for order in queries.orders(state):
        sides[(owners[order.owner], order.interval_start)].add(order.side)
    assert sides and all(len(s) == 1 for s in sides.values())  # never both sides


def test_a_day_without_the_auction_trades_continuously_only() -> None:
    config = DayConfig(seed=5, participants=12, intervals=2, start_minute=11 * 60)
    sandbox = sandbox_for(config)
    sink = SandboxSink(sandbox)
    day = MarketDay(config, sandbox.genesis, sandbox.authority_keys, sink.next_nonce)
    day.run(sink)
    s = summarize(sandbox.state, sink.events, day.first_interval, config.intervals)
    assert s.markets.auctions_cleared == 0 and s.markets.auction.trades == 0
    assert s.markets.continuous.trades == s.trades > 0
