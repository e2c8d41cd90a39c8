"""Property tests of the energy market.

1. Random order streams (places, cancels, amends, halts, waits) over three zones and one or
   two intervals, then random meter readings and settlement: every rejection leaves the
   state root alone, every invariant holds after every step, every zone report conserves
   energy and every trade is settled with no more delivered than sold.
2. A differential test of same-zone matching against a deliberately simple reference
   matcher (a plain list scan with price-time priority) on one zone and one interval.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gridtokenx.ledger.context import Event
from gridtokenx.ledger.invariants import check_all
from gridtokenx.ledger.market import bookkeeping, records
from gridtokenx.ledger.market.records import IntervalStatus
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.wire import errors
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import (
    AmendOrder,
    Body,
    CancelOrder,
    DistributionStatus,
    IssueThb,
    LicenceKind,
    LinkStatus,
    MeterKind,
    OrderKind,
    ParticipantKind,
    PlaceOrder,
    SetZoneHalt,
    Side,
    TimeInForce,
    TransmissionStatus,
)
from tests.conftest import INTERVAL
from tests.ledger.market.test_market import Market

BUY, SELL = Side.BUY, Side.SELL
GTC = TimeInForce.GOOD_TILL_GATE
IOC, FOK = TimeInForce.IMMEDIATE_OR_CANCEL, TimeInForce.FILL_OR_KILL
ZONES = ("BKK", "CEN", "EST")


def weighted(*choices: tuple[st.SearchStrategy[Any], int]) -> st.SearchStrategy[Any]:
    """One of the strategies, chosen with the given integer weights."""
    pool = [strategy for strategy, weight in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


# Prices anywhere in the 0-1000 band, but mostly near 300 so that orders cross often.
PRICES = weighted((st.integers(290, 310), 3), (st.integers(0, 1_000), 1))
QUANTITIES = st.one_of(st.integers(100, 1_500), st.integers(1, 15).map(lambda n: n * 100))


# What a random stream may legitimately be refused for: market orders that ask to rest,
# offers beyond the seller's metered capacity (or from a trader without one), halted zones,
# amends to no more than the filled quantity, and gate closure once the clock has moved on.
EXPECTED_REJECTIONS = (
    errors.InvalidOrder,
    errors.SellCapacityExceeded,
    errors.ZoneHalted,
    errors.GateClosed,
)


def submit(mk: Market, who: PrivateKey, body: Body) -> list[Event] | None:
    """Apply a transaction; on rejection check it left no trace and return None."""
    root, size = mk.sb.state.root(), len(mk.sb.state)
    try:
        events = mk.sb.submit(who, body)
    except errors.Rejection as exc:
        assert isinstance(exc, EXPECTED_REJECTIONS), f"{body!r} refused: {exc!r}"
        assert mk.sb.state.root() == root, f"rejected {body!r} changed the state"
        assert len(mk.sb.state) == size
        events = None
    check_all(mk.sb.state)
    return events


# --- 1. random streams, then readings and settlement ------------------------------------------
@dataclass
class World:
    mk: Market
    traders: list[tuple[PrivateKey, str]]  # (participant, home zone)
    meters: list[tuple[PrivateKey, MeterKind, int]]  # (meter key, kind, rated capacity W)
    sellers: list[int]  # indexes of the traders with producing meters


def fresh(mk: Market) -> Market:
    """A copy of a set-up market with its own sandbox and state (setup runs once per test:
    the ledger is deterministic, so every example would rebuild the very same state)."""
    clone = copy.copy(mk)
    clone.sb = copy.copy(mk.sb)
    clone.sb.state = copy.deepcopy(mk.sb.state)
    return clone


@functools.cache
def built_world() -> World:
    mk = Market(Sandbox())
    mk.grant(mk.factory, LicenceKind.SELLER)
    P, M = ParticipantKind, MeterKind
    seller2 = mk.register("bkk-seller-2", "BKK", P.BUSINESS)
    seller2_meter = mk.add_meter("bkk-seller-2", seller2, "BKK", M.SOLAR, 40_000)
    mk.grant(seller2, LicenceKind.SELLER)
    cogen = mk.register("bkk-cogen", "BKK", P.INDUSTRIAL)
    cogen_meter = mk.add_meter("bkk-cogen", cogen, "BKK", M.COGENERATION, 9_000)
    cen_home = mk.register("cen-home", "CEN", P.HOUSEHOLD)
    cen_home_meter = mk.add_meter("cen-home", cen_home, "CEN", M.SOLAR, 6_000)
    cen_buyer = mk.register("cen-buyer", "CEN", P.BUSINESS)
    cen_buyer_meter = mk.add_meter("cen-buyer", cen_buyer, "CEN", M.CONSUMPTION, 20_000)
    for who in (seller2, cogen, cen_home, cen_buyer):
        mk.ok(mk.custodian, IssueThb(who.address, 500_000))
    traders = [
        (mk.home, "BKK"),
        (mk.consumer, "BKK"),
        (mk.office, "BKK"),
        (mk.buyer2, "BKK"),
        (seller2, "BKK"),
        (cogen, "BKK"),
        (mk.factory, "CEN"),
        (cen_home, "CEN"),
        (cen_buyer, "CEN"),
    ]
    meters = [
        (mk.home_meter, M.SOLAR, 5_000),
        (mk.consumer_meter, M.CONSUMPTION, 10_000),
        (seller2_meter, M.SOLAR, 40_000),
        (cogen_meter, M.COGENERATION, 9_000),
        (mk.factory_meter, M.SOLAR, 50_000),
        (cen_home_meter, M.SOLAR, 6_000),
        (cen_buyer_meter, M.CONSUMPTION, 20_000),
    ]
    return World(mk, traders, meters, [0, 4, 5, 6, 7])


N_TRADERS = 9
WHO = st.integers(0, N_TRADERS - 1)
place_ops = st.tuples(
    st.just("place"),
    st.integers(0, 4 * N_TRADERS - 1),  # sells: below N_TRADERS from anyone, else a seller
    st.sampled_from([BUY, SELL]),
    st.sampled_from([None, None, None, "BKK", "CEN", "EST"]),  # None: the trader's own zone
    st.integers(0, 1),  # interval index (clamped to the example's interval count)
    st.integers(100, 1_500),
    PRICES,
    st.sampled_from([GTC, GTC, GTC, IOC, FOK]),
    st.sampled_from([OrderKind.LIMIT] * 4 + [OrderKind.MARKET]),
    st.sampled_from([False, False, False, True]),  # renewable-only (buys)
)
cancel_ops = st.tuples(st.just("cancel"), WHO, st.integers(0, 50))
amend_ops = st.tuples(st.just("amend"), WHO, st.integers(0, 50), st.integers(100, 1_500), PRICES)
halt_ops = st.tuples(st.just("halt"), st.sampled_from(ZONES), st.integers(1, 6))  # for n ops
wait_ops = st.tuples(st.just("wait"), st.integers(1, 150))
# Grid status: EGAT re-rates a link (cuts curtail trades), a distributor reports headroom.
LINKS = (("BKK", "CEN"), ("BKK", "EST"), ("CEN", "EST"))
link_ops = st.tuples(
    st.just("link"), st.sampled_from(LINKS), st.sampled_from([0, 4, 8, 40, 800_000])
)
headroom_ops = st.tuples(
    st.just("headroom"), st.sampled_from(ZONES), st.sampled_from([0, 4, 8, 100])
)
streams = st.lists(
    weighted(
        (place_ops, 12),
        (cancel_ops, 2),
        (amend_ops, 2),
        (halt_ops, 1),
        (wait_ops, 1),
        (link_ops, 1),
        (headroom_ops, 1),
    ),
    min_size=12,
    max_size=30,
)


def advance(mk: Market, seconds: int) -> list[Event]:
    events = mk.sb.advance(seconds)
    check_all(mk.sb.state)
    return events


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_intervals=st.integers(1, 2), ops=streams, data=st.data())
def test_random_order_streams_keep_every_invariant_through_settlement(
    n_intervals: int, ops: list[tuple[object, ...]], data: st.DataObject
) -> None:
    world = built_world()
    world = replace(world, mk=fresh(world.mk))
    mk = world.mk
    intervals = [mk.T + i * INTERVAL for i in range(n_intervals)]
    events: list[Event] = []
    resume_at: dict[str, int] = {}  # halted zone -> step at which it resumes
    measured: dict[str, int] = {}  # grid status subject -> last measurement time
    for step, op in enumerate(ops):
        for zone, due in sorted(resume_at.items()):
            if due <= step:
                assert submit(mk, mk.egat, SetZoneHalt(zone, False)) is not None
                del resume_at[zone]
        kind = op[0]
        if kind == "place":
            _, i, side, zone, ivl, qty, price, tif, okind, renewable_only = op
            if side is SELL and i >= N_TRADERS:  # mostly a trader with meters
                i = world.sellers[i % len(world.sellers)]
            who, home_zone = world.traders[i % N_TRADERS]
            body = PlaceOrder(
                side,
                zone or home_zone,
                intervals[min(ivl, n_intervals - 1)],
                qty,
                price,
                kind=okind,
                tif=tif,
                renewable_only=bool(renewable_only) and side is BUY,
            )
            events += submit(mk, who, body) or []
        elif kind in ("cancel", "amend"):
            who, _ = world.traders[op[1]]
            own = bookkeeping.open_orders(mk.sb.state.overlay(), who.address)
            if not own:
                continue
            order_id = own[op[2] % len(own)]
            body = CancelOrder(order_id) if kind == "cancel" else AmendOrder(order_id, *op[3:])
            events += submit(mk, who, body) or []
        elif kind == "halt":
            _, zone, duration = op
            if zone not in resume_at:
                assert submit(mk, mk.egat, SetZoneHalt(zone, True, "test")) is not None
            resume_at[zone] = step + duration
        elif kind in ("link", "headroom"):
            subject = "EGAT" if kind == "link" else str(op[1])  # EGAT's status is one subject
            measured_at = max(measured.get(subject, 0) + 1, mk.sb.time)
            if measured_at > mk.sb.time + mk.params.grid_status_clock_skew_seconds:
                continue
            measured[subject] = measured_at
            if kind == "link":
                (a, b), kw = op[1], op[2]
                body: Body = TransmissionStatus(measured_at, 50_000, (LinkStatus(a, b, kw, 0),))
                signer = mk.egat
            else:
                body = DistributionStatus(measured_at, subject, 0, int(str(op[2])))
                signer = mk.mea if subject == "BKK" else mk.pea
            events += submit(mk, signer, body) or []
        else:
            events += advance(mk, op[1])

    # Deliver: move past every interval, then report random readings, oldest interval first.
    events += mk.end_blocks_until(max(intervals[-1] + INTERVAL, mk.sb.time))
    for start in intervals:
        for meter, kind, capacity_w in world.meters:
            if data.draw(st.integers(0, 5), label="skip reading") == 0:
                continue  # a missing reading: settlement waits for the deadline
            m = mk.meter(meter.address)
            if m.last_interval >= start:
                continue
            cap = capacity_w * INTERVAL // 3600
            export = 0 if kind is MeterKind.CONSUMPTION else data.draw(st.integers(0, cap))
            mk.read(meter, start, export_wh=export, import_wh=data.draw(st.integers(0, 3_000)))
    deadline = intervals[-1] + INTERVAL + mk.params.settlement_deadline_seconds
    while mk.sb.state.get(records.ACTIVE_KEY, records.Active) is not None:
        assert mk.sb.time <= deadline + 2 * INTERVAL, "settlement never finished"
        events += advance(mk, INTERVAL)

    settled = {int(e.attrs["interval"]) for e in events if e.kind == "interval_settled"}
    for start in intervals:
        market = bookkeeping.interval_market(mk.sb.state.overlay(), start)
        if market is not None:
            assert market.status is IntervalStatus.SETTLED
            assert start in settled
    trades = mk.trades()
    event(f"trades: {min(len(trades), 10)}{'+' if len(trades) >= 10 else ''}")
    event(f"cross-zone trade: {any(t.buyer_zone != t.seller_zone for t in trades)}")
    event(f"self-trade cancel: {any(e.attrs.get('reason') == 'self_trade' for e in events)}")
    event(f"curtailed: {any(e.kind == 'trade_curtailed' for e in events)}")
    event(f"settled at deadline: {any(e.attrs.get('at_deadline') for e in events)}")
    for key, report in mk.sb.state.scan(b"rep/"):
        assert isinstance(report, records.ZoneReport)
        assert report.export_wh == report.delivered_wh + report.sold_to_utility_wh, key
    for trade in trades:
        assert trade.settled
        assert 0 <= trade.delivered_wh <= trade.quantity_wh
    for _, order in mk.sb.state.scan(b"ord/"):
        assert isinstance(order, records.Order)
        assert order.status is not records.OrderStatus.OPEN  # gate closure expired the rest
    check_all(mk.sb.state)


# --- 2. differential test against a reference matcher -----------------------------------------
@dataclass
class RefOrder:
    id: int  # the ledger's order id, so books can be compared
    owner: bytes
    side: Side
    price: int
    quantity: int
    remaining: int
    priority: int


class Reference:
    """One zone, one interval. Price-time priority (time = arrival; an amend that changes the
    price or raises the quantity arrives anew and matches like an incoming GTC order), trades
    at the resting order's price; an incoming order cancels its owner's resting orders that it
    reaches while crossing (those behind the point where it is filled stay); IOC kills the
    rest, FOK kills the whole order (changing nothing, not even its owner's orders) unless it
    fully fills, GTC rests. A plain list, scanned every time."""

    def __init__(self) -> None:
        self.resting: list[RefOrder] = []
        self.clock = 0

    def _tick(self) -> int:
        self.clock += 1
        return self.clock

    def _match(self, incoming: RefOrder, all_or_none: bool) -> list[tuple[bytes, bytes, int, int]]:
        if incoming.side is BUY:
            crossing = [o for o in self.resting if o.side is SELL and o.price <= incoming.price]
            crossing.sort(key=lambda o: (o.price, o.priority))
        else:
            crossing = [o for o in self.resting if o.side is BUY and o.price >= incoming.price]
            crossing.sort(key=lambda o: (-o.price, o.priority))
        remaining, fills, own = incoming.remaining, [], []
        for o in crossing:
            if remaining == 0:
                break
            if o.owner == incoming.owner:
                own.append(o)
                continue
            q = min(remaining, o.remaining)
            fills.append((o, q))
            remaining -= q
        if all_or_none and remaining:
            return []
        for o in own:
            self.resting.remove(o)
        trades = []
        for o, q in fills:
            o.remaining -= q
            if o.remaining == 0:
                self.resting.remove(o)
            buyer, seller = (incoming, o) if incoming.side is BUY else (o, incoming)
            trades.append((buyer.owner, seller.owner, q, o.price))
        incoming.remaining = remaining
        return trades

    def place(
        self, order_id: int, owner: bytes, side: Side, qty: int, price: int, tif: TimeInForce
    ) -> list[tuple[bytes, bytes, int, int]]:
        order = RefOrder(order_id, owner, side, price, qty, qty, self._tick())
        trades = self._match(order, tif is FOK)
        if tif is GTC and order.remaining:
            self.resting.append(order)
        return trades

    def get(self, order_id: int) -> RefOrder:
        [order] = [o for o in self.resting if o.id == order_id]
        return order

    def cancel(self, order_id: int) -> None:
        self.resting.remove(self.get(order_id))

    def amend_rejected(self, order_id: int, qty: int) -> bool:
        order = self.get(order_id)
        return qty <= order.quantity - order.remaining

    def amend(self, order_id: int, qty: int, price: int) -> list[tuple[bytes, bytes, int, int]]:
        order = self.get(order_id)
        filled = order.quantity - order.remaining
        keeps = price == order.price and qty <= order.quantity
        order.quantity, order.remaining, order.price = qty, qty - filled, price
        if keeps:
            return []
        order.priority = self._tick()
        self.resting.remove(order)
        trades = self._match(order, False)
        if order.remaining:
            self.resting.append(order)
        return trades

    def depth(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        bids = [o for o in self.resting if o.side is BUY]
        asks = [o for o in self.resting if o.side is SELL]
        bids.sort(key=lambda o: (-o.price, o.priority))
        asks.sort(key=lambda o: (o.price, o.priority))
        return [(o.id, o.remaining) for o in bids], [(o.id, o.remaining) for o in asks]


def real_depth(mk: Market) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    view = mk.sb.state.overlay()
    current = bookkeeping.book_of(view, mk.T, "BKK")
    return (
        [(i, bookkeeping.get_order(view, i).remaining_wh) for _, _, i in current.bids],
        [(i, bookkeeping.get_order(view, i).remaining_wh) for _, _, i in current.asks],
    )


def trades_of(events: list[Event]) -> list[tuple[bytes, bytes, int, int]]:
    return [
        (e.attrs["buyer"], e.attrs["seller"], e.attrs["quantity_wh"], e.attrs["price"])
        for e in events
        if e.kind == "trade"
    ]


N_SELLERS, N_BUYERS = 4, 3
diff_places = st.tuples(
    st.just("place"),
    st.integers(0, N_SELLERS + N_BUYERS - 1),
    st.sampled_from([BUY, SELL]),  # buyers always buy
    QUANTITIES,
    PRICES,
    st.sampled_from([GTC, GTC, IOC, FOK]),
    st.sampled_from([OrderKind.LIMIT, OrderKind.LIMIT, OrderKind.MARKET]),  # market: IOC/FOK
)
diff_streams = st.lists(
    weighted(
        (diff_places, 6),
        (st.tuples(st.just("cancel"), st.integers(0, 100)), 1),
        (st.tuples(st.just("amend"), st.integers(0, 100), QUANTITIES, PRICES), 2),
    ),
    min_size=15,
    max_size=40,
)


@functools.cache
def built_differential_market() -> tuple[Market, list[PrivateKey], list[PrivateKey]]:
    mk = Market(Sandbox())
    sellers, buyers = [], []
    for n in range(N_SELLERS):
        seller = mk.register(f"diff-seller-{n}", "BKK", ParticipantKind.INDUSTRIAL)
        mk.add_meter(f"diff-seller-{n}", seller, "BKK", MeterKind.SOLAR, 400_000)
        mk.grant(seller, LicenceKind.SELLER)
        mk.ok(mk.custodian, IssueThb(seller.address, 10_000_000))  # sellers may buy too
        sellers.append(seller)
    for n in range(N_BUYERS):
        buyer = mk.register(f"diff-buyer-{n}", "BKK", ParticipantKind.BUSINESS)
        mk.ok(mk.custodian, IssueThb(buyer.address, 10_000_000))
        buyers.append(buyer)
    return mk, sellers, buyers


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=diff_streams)
def test_same_zone_matching_agrees_with_a_reference_matcher(ops: list[tuple[object, ...]]) -> None:
    mk, sellers, buyers = built_differential_market()
    mk = fresh(mk)
    participants = sellers + buyers
    owner_key = {p.address: p for p in participants}
    ref = Reference()
    kinds: set[object] = set()
    n_trades = 0
    for op in ops:
        if op[0] == "place":
            _, i, side, qty, price, tif, kind = op
            who = participants[i]
            if who in buyers:
                side = BUY
            if kind is OrderKind.MARKET and tif is GTC:
                tif = IOC
            body = PlaceOrder(side, "BKK", mk.T, qty, price, kind=kind, tif=tif)
            events = mk.sb.submit(who, body)  # well-formed: no rejection expected
            order_id = int(events[0].attrs["order"])
            expected = ref.place(order_id, who.address, side, qty, price, tif)
        else:
            if not ref.resting:
                continue
            ids = sorted(o.id for o in ref.resting)
            order_id = ids[op[1] % len(ids)]
            who = owner_key[ref.get(order_id).owner]
            if op[0] == "cancel":
                events = mk.sb.submit(who, CancelOrder(order_id))
                ref.cancel(order_id)
                expected = []
            elif ref.amend_rejected(order_id, op[2]):
                root = mk.sb.state.root()
                try:
                    mk.sb.submit(who, AmendOrder(order_id, op[2], op[3]))
                except errors.InvalidOrder:
                    assert mk.sb.state.root() == root
                else:
                    raise AssertionError("amend to no more than the filled quantity accepted")
                events, expected = [], []
            else:
                events = mk.sb.submit(who, AmendOrder(order_id, op[2], op[3]))
                expected = ref.amend(order_id, op[2], op[3])
        assert trades_of(events) == expected, op
        assert real_depth(mk) == ref.depth(), op
        kinds.update(e.attrs.get("reason") for e in events)
        n_trades += len(expected)
    event(f"trades: {min(n_trades, 10)}{'+' if n_trades >= 10 else ''}")
    for reason in ("self_trade", "fill_or_kill", "immediate_or_cancel"):
        event(f"{reason}: {reason in kinds}")
    check_all(mk.sb.state)
