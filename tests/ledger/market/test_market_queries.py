"""The market's read side (`market.queries`) on a real Sandbox market: book depth and the
book's orders from the matching engine's index, orders and trades by id and in full, an
interval's trades and reports, halts, the renewable energy a trade delivered, and each
interconnector's flows. Facts are checked against the records and the paths arithmetic
the matching engine itself uses."""

from __future__ import annotations

import pytest

from gridtokenx.ledger.market import paths, queries, records
from gridtokenx.ledger.market.queries import Level
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.wire.tx import MeterKind, ParticipantKind, PlaceOrder, SetZoneHalt, Side
from tests.conftest import INTERVAL
from tests.ledger.market.test_market import Market, licensed_factory, trade_events

BUY, SELL = Side.BUY, Side.SELL


@pytest.fixture
def mk(sb: Sandbox) -> Market:
    return Market(sb)


def test_depth_and_book_orders_best_first(mk: Market) -> None:
    low = mk.place(mk.office, BUY, 500, 240)
    first = mk.place(mk.office, BUY, 500, 250)
    second = mk.place(mk.buyer2, BUY, 200, 250)
    ask = mk.place(mk.home, SELL, 1_000, 300)
    state = mk.sb.state
    depth = queries.depth(state, "BKK", mk.T)
    assert depth.bids == [Level(250, 700, 2), Level(240, 500, 1)]
    assert depth.asks == [Level(300, 1_000, 1)]
    assert queries.depth(state, "BKK", mk.T, levels=1).bids == [Level(250, 700, 2)]
    assert queries.depth(state, "CEN", mk.T) == ([], [])
    assert queries.book_order_ids(state, "BKK", mk.T) == [first, second, low, ask]
    assert queries.book_order_ids(state, "BKK", mk.T + INTERVAL) == []
    assert queries.open_order_ids(state, mk.office.address) == (low, first)
    assert queries.last_id(state) == ask


def test_orders_and_trades_by_id_and_in_full(mk: Market) -> None:
    assert queries.last_id(mk.sb.state) == 0
    ask = mk.place(mk.home, SELL, 1_000, 300)
    [made] = trade_events(mk.ok(mk.consumer, PlaceOrder(BUY, "BKK", mk.T, 600, 350)))
    state = mk.sb.state
    trade_id = made.attrs["trade"]
    assert isinstance(trade_id, int)
    found = queries.trade(state, trade_id)
    assert found is not None and (found.quantity_wh, found.price) == (600, 300)
    assert found.sell_order == ask and queries.order(state, ask) == mk.order(ask)
    assert queries.order(state, trade_id) is None and queries.trade(state, ask) is None
    assert [t.id for t in queries.trades(state)] == [trade_id]
    placed = [o.id for o in queries.orders(state)]
    assert placed == sorted(placed) and ask in placed and found.buy_order in placed
    assert queries.last_id(state) == max([*placed, trade_id])
    assert queries.interval_trade_ids(state, mk.T) == [trade_id]
    assert queries.interval_trades(state, mk.T) == [found]
    assert queries.interval_trades(state, mk.T + INTERVAL) == []
    market = queries.interval_market(state, mk.T)
    assert market is not None and market.status is records.IntervalStatus.OPEN
    assert queries.interval_market(state, mk.T + INTERVAL) is None


def test_settled_interval_reports_and_renewable_energy_received(mk: Market) -> None:
    mk.place(mk.home, SELL, 1_000, 300)  # rooftop solar: a renewable seller
    mk.ok(mk.consumer, PlaceOrder(BUY, "BKK", mk.T, 1_000, 300))
    [trade] = queries.interval_trades(mk.sb.state, mk.T)
    assert queries.renewable_received_wh(mk.sb.state, trade) is None  # not settled yet
    assert queries.interval_reports(mk.sb.state, mk.T) == {}
    mk.end_blocks_until(mk.T + INTERVAL)
    mk.read(mk.home_meter, mk.T, export_wh=1_200)
    mk.read(mk.consumer_meter, mk.T, import_wh=1_500)
    mk.sb.advance(1)
    state = mk.sb.state
    [trade] = queries.interval_trades(state, mk.T)
    assert trade.settled and queries.renewable_received_wh(state, trade) == 1_000
    reports = queries.interval_reports(state, mk.T)
    assert list(reports) == ["BKK"] and reports["BKK"].delivered_wh == 1_000
    assert list(queries.zone_reports(state)) == [(mk.T, "BKK", reports["BKK"])]
    market = queries.interval_market(state, mk.T)
    assert market is not None and market.status is records.IntervalStatus.SETTLED


def test_a_renewable_trade_that_delivered_nothing_received_none_of_it(mk: Market) -> None:
    mk.place(mk.home, SELL, 1_000, 300)
    mk.ok(mk.consumer, PlaceOrder(BUY, "BKK", mk.T, 1_000, 300))
    mk.end_blocks_until(mk.T + INTERVAL)
    mk.read(mk.home_meter, mk.T)  # the roof exported nothing
    mk.read(mk.consumer_meter, mk.T, import_wh=1_000)
    mk.sb.advance(1)
    [trade] = queries.interval_trades(mk.sb.state, mk.T)
    assert trade.settled and trade.delivered_wh == 0
    assert queries.renewable_received_wh(mk.sb.state, trade) == 0  # renewable, but none came


def test_energy_from_a_cogeneration_seller_is_not_renewable(mk: Market) -> None:
    seller = mk.register("bkk-chp", "BKK", ParticipantKind.INDUSTRIAL)
    meter = mk.add_meter("bkk-chp", seller, "BKK", MeterKind.COGENERATION, 5_000)
    mk.place(seller, SELL, 1_000, 300)
    mk.ok(mk.consumer, PlaceOrder(BUY, "BKK", mk.T, 1_000, 300))
    mk.end_blocks_until(mk.T + INTERVAL)
    mk.read(meter, mk.T, export_wh=1_000)
    mk.read(mk.consumer_meter, mk.T, import_wh=1_000)
    mk.sb.advance(1)
    [trade] = queries.interval_trades(mk.sb.state, mk.T)
    assert trade.settled and trade.delivered_wh == 1_000
    assert queries.renewable_received_wh(mk.sb.state, trade) is None


def test_halts(mk: Market) -> None:
    assert queries.halt(mk.sb.state, "BKK") is None
    mk.ok(mk.mea, SetZoneHalt("BKK", True, "feeder fault"))
    halt = queries.halt(mk.sb.state, "BKK")
    assert halt is not None and (halt.halted_by, halt.reason) == ("MEA", "feeder fault")
    assert queries.halt(mk.sb.state, "CEN") is None


def test_link_flows_follow_the_paths_arithmetic(mk: Market) -> None:
    licensed_factory(mk)
    mk.place(mk.factory, SELL, 2_000, 250, zone="CEN")
    mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 400))  # CEN -> BKK
    view = mk.sb.state.overlay()
    flows = {(f.zone_a, f.zone_b): f for f in queries.link_flows(mk.sb.state, mk.T)}
    link = flows["BKK", "CEN"]
    assert link.a_to_b_wh == 0 and link.b_to_a_wh > 0 and link.net_wh == -link.b_to_a_wh
    assert link.capacity_wh == paths.link_capacity_wh(view, "BKK", "CEN", INTERVAL)
    assert link.room_b_to_a_wh == paths.link_room_wh(view, mk.T, "CEN", "BKK", INTERVAL)
    assert link.room_a_to_b_wh == link.capacity_wh + link.b_to_a_wh
    assert link.utilisation_bp == link.b_to_a_wh * 10_000 // link.capacity_wh
    assert not link.congested
    idle = [f for key, f in flows.items() if key != ("BKK", "CEN")]
    assert idle and all(f.net_wh == 0 and f.utilisation_bp == 0 for f in idle)
