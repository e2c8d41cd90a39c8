"""The energy market: orders, price-time matching within and across zones, halts, expiry and
settlement against meter readings. Every fact is read back from ledger state; `net.ok` checks
all invariants (escrow, conservation, supply) after each transaction."""

from __future__ import annotations

import gc

import pytest

from gridtokenx.ledger import transition
from gridtokenx.ledger.context import Event
from gridtokenx.ledger.invariants import check_all
from gridtokenx.ledger.market import bookkeeping, records, tariff
from gridtokenx.ledger.market.records import OrderStatus
from gridtokenx.ledger.state import Overlay, R
from gridtokenx.wire import errors
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import (
    AmendOrder,
    CancelOrder,
    IssueThb,
    LicenceKind,
    MeterKind,
    MeterReading,
    OrderKind,
    ParticipantKind,
    PlaceOrder,
    SetZoneHalt,
    Side,
    TimeInForce,
)
from tests.conftest import INTERVAL, Cast, sandbox_with_params

BUY, SELL = Side.BUY, Side.SELL
IOC, FOK = TimeInForce.IMMEDIATE_OR_CANCEL, TimeInForce.FILL_OR_KILL


class Market(Cast):
    """The cast plus a second Bangkok buyer, THB for everyone who buys, and a target interval
    (T) that opens for trading now and has its gate closure 10 minutes away."""

    def __init__(self, sb: object) -> None:
        super().__init__(sb)  # type: ignore[arg-type]
        self.buyer2 = self.register("bkk-buyer-2", "BKK", ParticipantKind.BUSINESS)
        for who in (self.consumer, self.buyer2, self.home, self.factory):
            self.ok(self.custodian, IssueThb(who.address, 500_000))
        self.T = (self.sb.time // INTERVAL + 2) * INTERVAL

    def place(
        self,
        who: PrivateKey,
        side: Side,
        quantity: int,
        price: int,
        zone: str = "BKK",
        **kw: object,
    ) -> int:
        events = self.ok(
            who, PlaceOrder(side, zone, kw.pop("interval", self.T), quantity, price, **kw)
        )  # type: ignore[arg-type]
        return int(events[0].attrs["order"])

    def order(self, order_id: int) -> records.Order:
        order = self.sb.state.get(records.order_key(order_id), records.Order)
        assert order is not None
        return order

    def trades(self) -> list[records.Trade]:
        return [t for _, t in self.sb.state.scan(b"trade/")]  # type: ignore[misc]

    def escrow_thb(self) -> int:
        from gridtokenx.ledger import accounts

        return self.thb(accounts.ESCROW_ADDRESS)

    def end_blocks_until(self, time: int) -> list[Event]:
        events: list[Event] = []
        while self.sb.time < time:
            events += self.sb.advance(min(INTERVAL, time - self.sb.time))
            check_all(self.sb.state)
        return events

    def read(
        self, meter: PrivateKey, interval: int, export_wh: int = 0, import_wh: int = 0
    ) -> None:
        """The meter's reading for `interval`, after zero readings for any interval it has
        not reported yet (a reading after a gap would spread its energy over the gap)."""
        m = self.meter(meter.address)
        quiet = m.first_interval if m.last_interval < 0 else m.last_interval + INTERVAL
        for earlier in range(quiet, interval, INTERVAL):
            self.ok(meter, MeterReading(earlier, m.import_register_wh, m.export_register_wh))
        self.ok(
            meter,
            MeterReading(
                interval, m.import_register_wh + import_wh, m.export_register_wh + export_wh
            ),
        )


@pytest.fixture
def mk(sb: object) -> Market:
    return Market(sb)


def trade_events(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind == "trade"]


# --- matching within a zone ----------------------------------------------------------------
def test_limit_orders_cross_at_the_resting_price(mk: Market) -> None:
    office_thb = mk.thb(mk.office.address)
    ask = mk.place(mk.home, SELL, 1_000, 300)
    bid_events = mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 350))
    [trade] = trade_events(bid_events)
    assert trade.attrs["price"] == 300 and trade.attrs["quantity_wh"] == 1_000
    assert mk.order(ask).status is OrderStatus.FILLED
    # The buyer keeps in escrow only this trade's cost: 300 value + 30 wheeling (fee rounds to 0).
    assert mk.thb(mk.office.address) == office_thb - 330
    assert mk.escrow_thb() == 330


def test_a_placement_reads_its_interval_position_and_halt_once(
    mk: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an order costs (docs/adr/0007): the plan takes the interval record that the
    placement read (`ensure_interval` returns it), a sell's room check hands the position
    it read to the offer it records, the order's own zone's halt is read by the
    placement's check only, and so are the open orders of an owner whose order is filled
    as it is placed: none of these records is read twice."""
    reads: list[bytes] = []
    get = Overlay.get

    def counted(view: Overlay, key: bytes, typ: type[R]) -> R | None:
        reads.append(key)
        return get(view, key, typ)

    monkeypatch.setattr(Overlay, "get", counted)
    interval = records.interval_key(mk.T)
    mk.place(mk.home, SELL, 1_000, 300)
    assert reads.count(interval) == 1
    assert reads.count(records.position_key(mk.T, "BKK", mk.home.address)) == 1
    reads.clear()
    [trade] = trade_events(mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 350)))
    assert trade.attrs["quantity_wh"] == 1_000
    assert reads.count(interval) == 1
    assert reads.count(records.halt_key("BKK")) == 1  # its own zone's halt: checked once
    # filled as it was placed: never among its owner's open orders, counted once
    assert reads.count(records.open_orders_key(mk.office.address)) == 1


def test_price_then_time_priority(mk: Market) -> None:
    seller2 = mk.register("bkk-seller-2", "BKK", ParticipantKind.HOUSEHOLD)
    mk.add_meter("bkk-seller-2", seller2, "BKK", MeterKind.SOLAR, 5_000)
    first = mk.place(mk.home, SELL, 500, 300)
    second = mk.place(seller2, SELL, 500, 300)
    cheaper = mk.place(seller2, SELL, 500, 290)
    events = mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_200, 300))
    fills = [
        (e.attrs["seller"], e.attrs["quantity_wh"], e.attrs["price"]) for e in trade_events(events)
    ]
    assert fills == [
        (seller2.address, 500, 290),
        (mk.home.address, 500, 300),
        (seller2.address, 200, 300),
    ]
    assert mk.order(cheaper).status is OrderStatus.FILLED
    assert mk.order(first).status is OrderStatus.FILLED
    assert mk.order(second).remaining_wh == 300


def test_partial_fill_rests_the_remainder_with_its_escrow(mk: Market) -> None:
    mk.place(mk.home, SELL, 400, 300)
    before = mk.thb(mk.office.address)
    bid = mk.place(mk.office, BUY, 1_000, 320)
    order = mk.order(bid)
    assert order.status is OrderStatus.OPEN and order.remaining_wh == 600
    # The rest keeps exactly its own cost in escrow; the fill below the limit freed the rest.
    assert order.escrow_satang == bookkeeping.buyer_cost_satang(600, 320, mk.params)
    spent = before - mk.thb(mk.office.address)
    assert spent == order.escrow_satang + bookkeeping.buyer_cost_satang(400, 300, mk.params)
    depth = bookkeeping.book_of(mk.sb.state.overlay(), mk.T, "BKK")
    assert depth.bids == ((320, order.priority, bid),) and depth.asks == ()


def test_immediate_or_cancel_kills_the_rest_and_refunds(mk: Market) -> None:
    mk.place(mk.home, SELL, 400, 300)
    before = mk.thb(mk.office.address)
    events = mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 300, tif=IOC))
    assert [e.kind for e in events][-1] == "order_killed"
    assert mk.thb(mk.office.address) == before - bookkeeping.buyer_cost_satang(400, 300, mk.params)
    assert bookkeeping.book_of(mk.sb.state.overlay(), mk.T, "BKK") == records.Book()


def test_fill_or_kill_that_cannot_fill_changes_nothing_but_the_nonce(mk: Market) -> None:
    ask = mk.place(mk.home, SELL, 400, 300)
    before = mk.thb(mk.office.address)
    events = mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 300, tif=FOK))
    assert [e.kind for e in events] == ["order_accepted", "order_killed"]
    assert mk.thb(mk.office.address) == before
    assert mk.order(ask).remaining_wh == 400


def test_fill_or_kill_that_can_fill_fills(mk: Market) -> None:
    mk.place(mk.home, SELL, 1_000, 300)
    events = mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 300, tif=FOK))
    assert sum(e.attrs["quantity_wh"] for e in trade_events(events)) == 1_000  # type: ignore[misc]


def test_market_order_stops_at_its_protection_price(mk: Market) -> None:
    mk.place(mk.home, SELL, 500, 300)
    mk.place(mk.home, SELL, 500, 500)
    events = mk.ok(
        mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 400, kind=OrderKind.MARKET, tif=IOC)
    )
    assert [e.attrs["price"] for e in trade_events(events)] == [300]
    assert events[-1].kind == "order_killed"


def test_self_trade_cancels_the_resting_own_order(mk: Market) -> None:
    own_ask = mk.place(mk.home, SELL, 500, 300)
    events = mk.ok(mk.home, PlaceOrder(BUY, "BKK", mk.T, 500, 300))
    assert trade_events(events) == []
    assert mk.order(own_ask).status is OrderStatus.CANCELLED
    cancelled = [e for e in events if e.kind == "order_cancelled"]
    assert cancelled[0].attrs["reason"] == "self_trade"


def test_an_order_that_cancelled_its_owners_order_rests_beside_the_others(mk: Market) -> None:
    """The owner's open orders as the placement counted them change when it cancels the
    owner's own crossed order: the order rests beside those still open, not the old list."""
    crossed = mk.place(mk.home, SELL, 500, 300)
    above = mk.place(mk.home, SELL, 500, 400)
    bid = mk.place(mk.home, BUY, 500, 300)
    assert mk.order(crossed).status is OrderStatus.CANCELLED
    assert mk.order(bid).status is OrderStatus.OPEN
    view = mk.sb.state.overlay()
    assert bookkeeping.open_orders(view, mk.home.address) == (above, bid)


def test_renewable_only_buy_skips_a_cogeneration_seller(mk: Market) -> None:
    cogen = mk.register("bkk-cogen", "BKK", ParticipantKind.INDUSTRIAL)
    mk.add_meter("bkk-cogen", cogen, "BKK", MeterKind.COGENERATION, 8_000)
    gas = mk.place(cogen, SELL, 500, 250)
    solar = mk.place(mk.home, SELL, 500, 300)
    events = mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 500, 300, renewable_only=True))
    assert [e.attrs["seller"] for e in trade_events(events)] == [mk.home.address]
    assert mk.order(gas).remaining_wh == 500 and mk.order(solar).status is OrderStatus.FILLED


def test_cancel_releases_escrow_and_offer(mk: Market) -> None:
    before = mk.thb(mk.office.address)
    bid = mk.place(mk.office, BUY, 1_000, 320)
    assert mk.thb(mk.office.address) < before
    mk.ok(mk.office, CancelOrder(bid))
    assert mk.thb(mk.office.address) == before
    ask = mk.place(mk.home, SELL, 1_250, 300)  # the 5 kW meter's whole interval
    mk.ok(mk.home, CancelOrder(ask))
    mk.place(mk.home, SELL, 1_250, 300)  # the offer was released, so it may be made again


def test_amend_down_keeps_priority_and_amend_up_loses_it(mk: Market) -> None:
    seller2 = mk.register("bkk-seller-2", "BKK", ParticipantKind.HOUSEHOLD)
    mk.add_meter("bkk-seller-2", seller2, "BKK", MeterKind.SOLAR, 5_000)
    a = mk.place(mk.home, SELL, 800, 300)
    b = mk.place(seller2, SELL, 800, 300)
    mk.ok(mk.home, AmendOrder(a, 600, 300))
    assert mk.order(a).priority < mk.order(b).priority
    mk.ok(mk.home, AmendOrder(a, 700, 300))
    assert mk.order(a).priority > mk.order(b).priority


def test_amend_of_a_bid_adjusts_escrow_and_can_trade(mk: Market) -> None:
    mk.place(mk.home, SELL, 500, 330)
    bid = mk.place(mk.office, BUY, 500, 300)
    assert mk.order(bid).escrow_satang == bookkeeping.buyer_cost_satang(500, 300, mk.params)
    events = mk.ok(mk.office, AmendOrder(bid, 500, 330))
    assert [e.attrs["price"] for e in trade_events(events)] == [330]
    assert mk.order(bid).status is OrderStatus.FILLED


def test_a_fill_below_the_limit_and_an_amendment_each_report_their_escrow_movement(
    mk: Market,
) -> None:
    """Both escrow movements carry an `escrow` event: who paid whom, why, the order's escrow
    left after it (its running total) and both balances after it, as every value event does."""
    from gridtokenx.ledger import accounts

    escrow = accounts.ESCROW_ADDRESS
    mk.place(mk.home, SELL, 400, 300)
    events = mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 320))
    bid = int(events[0].attrs["order"])
    placed = bookkeeping.buyer_cost_satang(1_000, 320, mk.params)
    assert events[0].attrs["escrow_satang"] == placed
    [refund] = [e for e in events if e.kind == "escrow"]
    kept = bookkeeping.buyer_cost_satang(600, 320, mk.params)
    trade_cost = bookkeeping.buyer_cost_satang(400, 300, mk.params)
    assert refund.attrs == {
        "from": escrow, "to": mk.office.address, "asset": "THB",
        "amount": placed - trade_cost - kept, "for": "fill_below_limit",
        "order": bid, "trade": int(trade_events(events)[0].attrs["trade"]),
        "escrow_satang": kept,
        "from_balance": mk.escrow_thb(), "to_balance": mk.thb(mk.office.address),
    }  # fmt: skip
    assert mk.order(bid).escrow_satang == kept

    before = mk.thb(mk.office.address)
    up = mk.ok(mk.office, AmendOrder(bid, 1_400, 320))  # 800 Wh left now: more escrow
    more = bookkeeping.buyer_cost_satang(1_000, 320, mk.params)
    assert [e.kind for e in up] == ["order_amended", "escrow"]
    assert up[1].attrs == {
        "from": mk.office.address, "to": escrow, "asset": "THB", "amount": more - kept,
        "for": "amend", "order": bid, "escrow_satang": more,
        "from_balance": before - (more - kept), "to_balance": mk.escrow_thb(),
    }  # fmt: skip
    down = mk.ok(mk.office, AmendOrder(bid, 900, 300))  # 500 Wh left at a lower limit
    less = bookkeeping.buyer_cost_satang(500, 300, mk.params)
    assert down[1].attrs["from"] == escrow and down[1].attrs["to"] == mk.office.address
    assert down[1].attrs["amount"] == more - less and down[1].attrs["escrow_satang"] == less
    assert down[1].attrs["to_balance"] == mk.thb(mk.office.address) == before - (less - kept)


# --- rejections ----------------------------------------------------------------------------
def test_order_rejections(mk: Market) -> None:
    E = errors
    T = mk.T
    mk.rejects(
        mk.mea, PlaceOrder(BUY, "BKK", T, 1_000, 300), E.NotAParticipant, "NOT_A_PARTICIPANT"
    )
    mk.rejects(mk.office, PlaceOrder(BUY, "XX", T, 1_000, 300), E.UnknownZone, "UNKNOWN_ZONE")
    mk.rejects(
        mk.office,
        PlaceOrder(BUY, "BKK", T + 1, 1_000, 300),
        E.MisalignedInterval,
        "MISALIGNED_INTERVAL",
    )
    far = T + mk.params.trading_horizon_seconds + INTERVAL
    mk.rejects(
        mk.office, PlaceOrder(BUY, "BKK", far, 1_000, 300), E.TradingNotOpen, "TRADING_NOT_OPEN"
    )
    past = (mk.sb.time // INTERVAL) * INTERVAL
    mk.rejects(mk.office, PlaceOrder(BUY, "BKK", past, 1_000, 300), E.GateClosed, "GATE_CLOSED")
    mk.rejects(
        mk.office, PlaceOrder(BUY, "BKK", T, 1_000, 1_001), E.PriceOutOfBand, "PRICE_OUT_OF_BAND"
    )
    mk.rejects(
        mk.office, PlaceOrder(BUY, "BKK", T, 99, 300), E.QuantityBelowLot, "QUANTITY_BELOW_LOT"
    )
    mk.rejects(
        mk.office,
        PlaceOrder(BUY, "BKK", T, 1_000, 300, kind=OrderKind.MARKET),
        E.InvalidOrder,
        "INVALID_ORDER",
    )
    mk.rejects(
        mk.home,
        PlaceOrder(SELL, "BKK", T, 500, 300, renewable_only=True),
        E.InvalidOrder,
        "INVALID_ORDER",
    )
    mk.rejects(
        mk.home,
        PlaceOrder(SELL, "BKK", T, 1_251, 300),
        E.SellCapacityExceeded,
        "SELL_CAPACITY_EXCEEDED",
    )
    mk.rejects(
        mk.office,
        PlaceOrder(SELL, "BKK", T, 100, 300),
        E.SellCapacityExceeded,
        "SELL_CAPACITY_EXCEEDED",
    )
    mk.rejects(
        mk.factory, PlaceOrder(SELL, "CEN", T, 1_000, 300), E.UnlicensedSeller, "UNLICENSED_SELLER"
    )
    broke = mk.register("bkk-broke", "BKK", ParticipantKind.HOUSEHOLD)
    mk.rejects(
        broke, PlaceOrder(BUY, "BKK", T, 1_000, 300), E.InsufficientBalance, "INSUFFICIENT_BALANCE"
    )


def test_the_same_future_energy_cannot_be_offered_twice(mk: Market) -> None:
    mk.place(mk.home, SELL, 1_000, 300)
    mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 300))  # sold
    mk.place(mk.home, SELL, 250, 300)  # 1,250 Wh is the meter's interval at 5 kW
    mk.rejects(
        mk.home,
        PlaceOrder(SELL, "BKK", mk.T, 100, 300),
        errors.SellCapacityExceeded,
        "SELL_CAPACITY_EXCEEDED",
    )


def test_tick_size_and_open_order_limit_are_governed() -> None:
    sb = sandbox_with_params(tick_satang_per_kwh=5, max_open_orders_per_account=2)
    mk = Market(sb)
    mk.rejects(
        mk.office,
        PlaceOrder(BUY, "BKK", mk.T, 1_000, 302),
        errors.PriceNotOnTick,
        "PRICE_NOT_ON_TICK",
    )
    mk.place(mk.office, BUY, 1_000, 300)
    mk.place(mk.office, BUY, 1_000, 295)
    mk.rejects(
        mk.office,
        PlaceOrder(BUY, "BKK", mk.T, 1_000, 290),
        errors.TooManyOpenOrders,
        "TOO_MANY_OPEN_ORDERS",
    )


def test_cancel_and_amend_rejections(mk: Market) -> None:
    bid = mk.place(mk.office, BUY, 1_000, 300)
    mk.rejects(mk.office, CancelOrder(999_999), errors.UnknownOrder, "UNKNOWN_ORDER")
    mk.rejects(mk.buyer2, CancelOrder(bid), errors.NotOrderOwner, "NOT_ORDER_OWNER")
    mk.ok(mk.office, CancelOrder(bid))
    mk.rejects(mk.office, CancelOrder(bid), errors.OrderNotOpen, "ORDER_NOT_OPEN")
    mk.rejects(mk.office, AmendOrder(bid, 500, 300), errors.OrderNotOpen, "ORDER_NOT_OPEN")
    mk.place(mk.home, SELL, 400, 300)
    partly = mk.place(mk.office, BUY, 1_000, 300)  # 400 filled
    mk.rejects(mk.office, AmendOrder(partly, 400, 300), errors.InvalidOrder, "INVALID_ORDER")
    mk.rejects(
        mk.office, AmendOrder(partly, 1_000, 2_000), errors.PriceOutOfBand, "PRICE_OUT_OF_BAND"
    )


# --- halts ---------------------------------------------------------------------------------
def test_halt_blocks_new_orders_and_matching_until_resumed(mk: Market) -> None:
    bid = mk.place(mk.office, BUY, 500, 300)
    mk.ok(mk.mea, SetZoneHalt("BKK", True, "frequency 49.3 Hz"))
    mk.rejects(mk.home, PlaceOrder(SELL, "BKK", mk.T, 500, 300), errors.ZoneHalted, "ZONE_HALTED")
    mk.rejects(mk.office, AmendOrder(bid, 400, 300), errors.ZoneHalted, "ZONE_HALTED")
    assert mk.order(bid).status is OrderStatus.OPEN  # open orders stay
    mk.ok(mk.egat, SetZoneHalt("BKK", False))
    events = mk.ok(mk.home, PlaceOrder(SELL, "BKK", mk.T, 500, 300))
    assert len(trade_events(events)) == 1


def test_halt_rejections(mk: Market) -> None:
    mk.rejects(mk.pea, SetZoneHalt("BKK", True), errors.Unauthorised, "UNAUTHORISED")
    mk.rejects(mk.nepo, SetZoneHalt("CEN", True), errors.Unauthorised, "UNAUTHORISED")
    mk.rejects(mk.office, SetZoneHalt("CEN", True), errors.Unauthorised, "UNAUTHORISED")
    mk.rejects(mk.egat, SetZoneHalt("XX", True), errors.UnknownZone, "UNKNOWN_ZONE")
    mk.rejects(mk.egat, SetZoneHalt("CEN", False), errors.HaltUnchanged, "HALT_UNCHANGED")
    mk.ok(mk.pea, SetZoneHalt("CEN", True))
    mk.rejects(mk.egat, SetZoneHalt("CEN", True), errors.HaltUnchanged, "HALT_UNCHANGED")


# --- across zones --------------------------------------------------------------------------
def licensed_factory(mk: Market) -> None:
    mk.grant(mk.factory, LicenceKind.SELLER)


def test_cross_zone_match_grosses_up_for_loss(mk: Market) -> None:
    licensed_factory(mk)
    mk.place(mk.factory, SELL, 2_000, 300, zone="CEN")  # BKK-CEN loses 1 %
    # 300 / 0.99 = 303.03 per kWh received: a 303 limit is not enough, 304 is.
    assert trade_events(mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 303, tif=IOC))) == []
    events = mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 304))
    [trade] = trade_events(events)
    assert trade.attrs["loss_bp"] == 100 and trade.attrs["price"] == 300
    assert trade.attrs["seller_zone"] == "CEN" and trade.attrs["buyer_zone"] == "BKK"


def test_full_link_separates_zone_prices(mk: Market) -> None:
    sb = sandbox_with_params()
    from gridtokenx.ledger import registry

    view = sb.state.overlay()
    view.put(
        registry.interconnector_key("BKK", "CEN"), registry.Interconnector("BKK", "CEN", 4, 100)
    )
    view.put(
        registry.interconnector_key("BKK", "EST"), registry.Interconnector("BKK", "EST", 0, 150)
    )
    view.commit()
    mk = Market(sb)
    licensed_factory(mk)
    mk.place(mk.factory, SELL, 5_000, 250, zone="CEN")  # link: 4 kW x 15 min = 1,000 Wh
    events = mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 3_000, 400))
    assert sum(e.attrs["quantity_wh"] for e in trade_events(events)) == 1_000  # type: ignore[misc]
    # The link is full: the next Bangkok buyer cannot reach Central's cheap energy and pays
    # the Bangkok price instead, while Central energy stays unsold at 250.
    mk.place(mk.home, SELL, 1_000, 450)
    events = mk.ok(mk.buyer2, PlaceOrder(BUY, "BKK", mk.T, 1_000, 500))
    assert [(e.attrs["seller_zone"], e.attrs["price"]) for e in trade_events(events)] == [
        ("BKK", 450)
    ]


def test_no_matching_with_a_halted_zone(mk: Market) -> None:
    licensed_factory(mk)
    mk.place(mk.factory, SELL, 1_000, 250, zone="CEN")
    mk.ok(mk.pea, SetZoneHalt("CEN", True, "substation fault"))
    assert trade_events(mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 400))) == []


# --- expiry and settlement -----------------------------------------------------------------
def test_gate_closure_expires_resting_orders_and_refunds(mk: Market) -> None:
    before = mk.thb(mk.office.address)
    bid = mk.place(mk.office, BUY, 1_000, 300)
    ask = mk.place(mk.home, SELL, 500, 400)
    events = mk.end_blocks_until(mk.T - mk.params.gate_closure_seconds)
    assert mk.order(bid).status is OrderStatus.OPEN  # expiry runs at the end of that block
    events = mk.sb.advance(1)
    assert {e.attrs["order"] for e in events if e.kind == "order_expired"} == {bid, ask}
    assert mk.thb(mk.office.address) == before
    check_all(mk.sb.state)


def _deliver_interval(mk: Market) -> None:
    """Move the clock to just after T ends, ending every block on the way."""
    mk.end_blocks_until(mk.T + INTERVAL)


def test_settlement_with_full_delivery(mk: Market) -> None:
    mk.place(mk.home, SELL, 1_000, 300)
    mk.ok(mk.consumer, PlaceOrder(BUY, "BKK", mk.T, 1_000, 300))
    home_thb, consumer_thb = mk.thb(mk.home.address), mk.thb(mk.consumer.address)
    mea_thb = mk.thb(mk.mea.address)
    _deliver_interval(mk)
    mk.read(mk.home_meter, mk.T, export_wh=1_200)
    assert mk.grid(mk.home.address) == 0  # locked in escrow until settlement
    mk.read(mk.consumer_meter, mk.T, import_wh=1_500)
    events = mk.sb.advance(1)
    assert "interval_settled" in [e.kind for e in events]
    check_all(mk.sb.state)
    # Seller: 1,000 Wh at 300 = 300 satang; 200 Wh bought back by MEA at 2.20 THB/kWh.
    assert mk.thb(mk.home.address) == home_thb + 300  # MEA holds no THB: buy-back is a debt
    debt = mk.sb.state.get(records.debt_key(mk.mea.address, mk.home.address), records.Debt)
    assert debt == records.Debt(44)
    # Buyer: 1,000 Wh received and burnt against 1,500 Wh import; 500 Wh billed at TOU.
    assert mk.grid(mk.consumer.address) == 0
    bill = 500 * tariff.tariff_msat_per_kwh(mk.T, mk.params) // 1_000_000
    assert mk.thb(mk.consumer.address) == consumer_thb - bill
    assert mk.thb(mk.mea.address) == mea_thb + 30 + bill  # wheeling + the TOU bill
    report = mk.sb.state.get(records.report_key(mk.T, "BKK"), records.ZoneReport)
    assert report is not None
    assert (report.export_wh, report.delivered_wh, report.sold_to_utility_wh) == (1_200, 1_000, 200)
    assert (report.received_wh, report.losses_wh, report.import_covered_wh) == (1_000, 0, 1_000)


def test_under_delivery_is_pro_rata_and_charged_imbalance(mk: Market) -> None:
    mk.place(mk.home, SELL, 1_000, 300)
    mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 600, 300))
    mk.ok(mk.buyer2, PlaceOrder(BUY, "BKK", mk.T, 400, 300))
    office_thb, home_thb = mk.thb(mk.office.address), mk.thb(mk.home.address)
    _deliver_interval(mk)
    mk.read(mk.home_meter, mk.T, export_wh=500)
    mk.sb.advance(1)
    check_all(mk.sb.state)
    delivered = {t.buyer: t.delivered_wh for t in mk.trades()}
    assert delivered == {mk.office.address: 300, mk.buyer2.address: 200}
    # Buyers without meters keep the GRID they received.
    assert mk.grid(mk.office.address) == 300 and mk.grid(mk.buyer2.address) == 200
    # Office paid only for 300 Wh: 90 value + 9 wheeling; the rest of its escrow came back.
    assert (
        mk.thb(mk.office.address)
        == office_thb + bookkeeping.buyer_cost_satang(600, 300, mk.params) - 99
    )
    # Seller: paid 150 for 500 Wh, charged 500 Wh x 6 THB/kWh = 300 imbalance.
    assert mk.thb(mk.home.address) == home_thb + 150 - 300


def test_cross_zone_settlement_burns_the_losses(mk: Market) -> None:
    licensed_factory(mk)
    mk.place(mk.factory, SELL, 10_000, 300, zone="CEN")
    mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 10_000, 400))
    supply_before = mk.supply()
    _deliver_interval(mk)
    mk.read(mk.factory_meter, mk.T, export_wh=10_000)
    mk.sb.advance(1)
    check_all(mk.sb.state)
    assert mk.grid(mk.office.address) == 9_900  # 1 % lost on BKK-CEN
    supply = mk.supply()
    assert supply.grid_minted_wh - supply_before.grid_minted_wh == 10_000
    assert supply.grid_burned_wh - supply_before.grid_burned_wh == 100


def test_settlement_at_the_deadline_with_a_missing_reading(mk: Market) -> None:
    mk.place(mk.home, SELL, 1_000, 300)
    mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 300))
    office_thb = mk.thb(mk.office.address)
    _deliver_interval(mk)
    events = mk.sb.advance(1)
    assert "interval_settled" not in [e.kind for e in events]  # waits for the seller's meter
    deadline = mk.T + INTERVAL + mk.params.settlement_deadline_seconds
    mk.end_blocks_until(deadline)
    events = mk.sb.advance(1)  # ends the block at the deadline
    settled = [e for e in events if e.kind == "interval_settled"]
    assert settled and settled[0].attrs["at_deadline"] == 1
    assert mk.trades()[0].delivered_wh == 0
    assert mk.thb(mk.office.address) == office_thb + bookkeeping.buyer_cost_satang(
        1_000, 300, mk.params
    )
    # A late reading still mints, to the owner, free of the market.
    mk.read(mk.home_meter, mk.T, export_wh=800)
    assert mk.grid(mk.home.address) == 800


def test_market_is_deterministic() -> None:
    def run() -> bytes:
        from gridtokenx.ledger.sandbox import Sandbox

        mk = Market(Sandbox())
        licensed_factory(mk)
        mk.place(mk.factory, SELL, 5_000, 250, zone="CEN")
        mk.place(mk.home, SELL, 1_000, 280)
        mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 3_000, 400))
        _deliver_interval(mk)
        mk.read(mk.factory_meter, mk.T, export_wh=2_500)
        mk.read(mk.home_meter, mk.T, export_wh=1_100)
        mk.sb.advance(1)
        return mk.sb.state.root()

    assert run() == run()


def test_end_block_with_no_market_is_a_no_op(mk: Market) -> None:
    root = mk.sb.state.root()
    assert transition.end_block(mk.sb.state, mk.sb.context) == []
    assert mk.sb.state.root() == root


def test_a_full_direct_link_gives_way_to_a_longer_path_with_room() -> None:
    from gridtokenx.ledger import registry

    sb = sandbox_with_params()
    view = sb.state.overlay()
    link = registry.Interconnector("BKK", "CEN", 4, 100)  # 1,000 Wh per interval
    view.put(registry.interconnector_key("BKK", "CEN"), link)
    view.commit()
    mk = Market(sb)
    licensed_factory(mk)
    mk.place(mk.factory, SELL, 5_000, 250, zone="CEN")
    first = trade_events(mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 400)))
    assert [e.attrs["loss_bp"] for e in first] == [100]
    second = trade_events(mk.ok(mk.buyer2, PlaceOrder(BUY, "BKK", mk.T, 1_000, 400)))
    # CEN -> EST (2 %) -> BKK (1.5 %): 1 - 0.98 x 0.985 = 3.47 %
    assert [e.attrs["loss_bp"] for e in second] == [347]
    [trade] = [t for t in mk.trades() if t.buyer == mk.buyer2.address]
    assert trade.path == ("CEN", "EST", "BKK")


def test_resume_matches_orders_that_crossed_during_the_halt_at_the_older_price(
    mk: Market,
) -> None:
    licensed_factory(mk)
    ask = mk.place(mk.factory, SELL, 1_000, 250, zone="CEN")
    mk.ok(mk.pea, SetZoneHalt("CEN", True, "frequency 49.4 Hz"))
    bid = mk.place(mk.office, BUY, 1_000, 400)  # would cross CEN's ask, but CEN is halted
    late = mk.place(mk.buyer2, BUY, 500, 300)  # also crosses, and is later still
    assert mk.trades() == []
    mk.ok(mk.pea, SetZoneHalt("CEN", False))
    assert mk.trades() == []  # re-matching happens when the block ends
    events = mk.sb.advance(1)
    check_all(mk.sb.state)
    trades = [
        (e.attrs["buyer"], e.attrs["quantity_wh"], e.attrs["price"]) for e in trade_events(events)
    ]
    # The office's bid is the earlier of the two: it meets the older ask first, at the ask's price.
    assert trades == [(mk.office.address, 1_000, 250)]
    assert mk.order(ask).status is OrderStatus.FILLED and mk.order(bid).status is OrderStatus.FILLED
    assert mk.order(late).status is OrderStatus.OPEN


def test_a_zone_halted_again_before_the_block_ends_is_not_rematched(mk: Market) -> None:
    licensed_factory(mk)
    mk.place(mk.factory, SELL, 1_000, 250, zone="CEN")
    mk.ok(mk.pea, SetZoneHalt("CEN", True))
    mk.place(mk.office, BUY, 1_000, 400)
    mk.ok(mk.pea, SetZoneHalt("CEN", False))
    mk.ok(mk.egat, SetZoneHalt("CEN", True, "EGAT emergency"))
    assert trade_events(mk.sb.advance(1)) == []
    check_all(mk.sb.state)


def test_a_reading_after_a_gap_spreads_its_energy_over_the_gap(mk: Market) -> None:
    mk.place(mk.home, SELL, 1_000, 300)
    mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 300))
    mk.end_blocks_until(mk.T)
    mk.read(mk.home_meter, mk.T - INTERVAL)  # reported up to just before T
    mk.end_blocks_until(mk.T + 2 * INTERVAL)
    m = mk.meter(mk.home_meter.address)
    # The gateway missed T; the reading for T + 1 covers both intervals: 1,600 Wh in all.
    mk.ok(mk.home_meter, MeterReading(mk.T + INTERVAL, 0, m.export_register_wh + 1_600))
    mk.sb.advance(1)
    check_all(mk.sb.state)
    [trade] = mk.trades()
    assert trade.settled and trade.delivered_wh == 800  # half of the gap reading is T's
    report = mk.sb.state.get(records.report_key(mk.T, "BKK"), records.ZoneReport)
    assert report is not None and report.shortfall_wh == 200
    assert mk.grid(mk.home.address) == 800  # T + 1's half, free: it sold nothing for T + 1


def test_counter_flows_net_on_a_link() -> None:
    from gridtokenx.ledger import registry

    sb = sandbox_with_params()
    view = sb.state.overlay()
    link = registry.Interconnector("BKK", "CEN", 4, 100)  # 1,000 Wh per interval
    view.put(registry.interconnector_key("BKK", "CEN"), link)
    view.put(
        registry.interconnector_key("BKK", "EST"), registry.Interconnector("BKK", "EST", 0, 150)
    )
    view.commit()
    mk = Market(sb)
    licensed_factory(mk)
    cen_buyer = mk.register("cen-buyer", "CEN", ParticipantKind.BUSINESS)
    mk.ok(mk.custodian, IssueThb(cen_buyer.address, 500_000))
    mk.place(mk.factory, SELL, 3_000, 250, zone="CEN")
    mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 400))  # fills CEN -> BKK
    # Bangkok solar sold into Central flows the other way and frees room CEN -> BKK.
    mk.place(mk.home, SELL, 500, 200)
    events = mk.ok(cen_buyer, PlaceOrder(BUY, "CEN", mk.T, 500, 260))
    assert [(e.attrs["seller_zone"], e.attrs["quantity_wh"]) for e in trade_events(events)] == [
        ("BKK", 500)
    ]
    events = mk.ok(mk.buyer2, PlaceOrder(BUY, "BKK", mk.T, 1_000, 400))
    assert sum(e.attrs["quantity_wh"] for e in trade_events(events)) == 500  # type: ignore[misc]


def test_books_that_fill_and_empty_leave_no_reference_cycle(mk: Market) -> None:
    """A side book is made on its interval's and zone's first order and dropped when its
    last one fills: nothing of it may be left for the garbage collector (a book that held
    its own `Reachable` was a cycle, about four objects per crossing order in a validator,
    what most of its young collections found). Only the project's own objects are looked
    at: the collector is the process's, and in a test worker an earlier test's event loop
    can become garbage meanwhile (it did, once, in CI)."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for i in range(20):
            mk.place(mk.home, SELL, 1_000, 300, interval=mk.T + i * INTERVAL)
            [_] = trade_events(
                mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T + i * INTERVAL, 1_000, 350))
            )
        gc.collect()
        left = [type(o).__qualname__ for o in gc.garbage
                if type(o).__module__.startswith("gridtokenx.")]  # fmt: skip
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == []


def test_records_and_events_are_not_tracked_by_the_collector(mk: Market) -> None:
    """Open orders, cached records and a block's events stay alive across many of a
    validator's young collections, which walked every one of them (docs/adr/0007): they
    are frozen values that cannot form a cycle, so the collector does not track them."""
    resting = mk.place(mk.home, SELL, 1_000, 300)
    events = mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 600, 350))
    [trade] = mk.trades()
    values = [mk.order(resting), trade, *events, *(r for _, r in mk.sb.state.scan(b"mkt/"))]
    assert len(values) >= 4
    assert [type(v).__qualname__ for v in values if gc.is_tracked(v)] == []
