"""Differential test of cross-zone matching against a plain reference.

Two zones (Bangkok and Central) joined by one small lossy interconnector, every other link
switched off. The reference keeps every resting order in one list and, for each incoming
order, scans the whole list: a resting ask in the other zone costs the buyer its price
grossed up for the loss (rounded up), a resting bid nets the seller its price less the loss
(rounded down); best terms first, then time, then zone code; the trade price is per kWh sent
and is the resting order's (net of loss for a bid); a fill across the link takes room from
the net flow in its direction, and a zone whose link is full is out of reach for the rest
of the order. Self-trade, IOC and FOK as in the same-zone reference.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gridtokenx.ledger import registry
from gridtokenx.ledger.context import Event
from gridtokenx.ledger.invariants import check_all
from gridtokenx.ledger.market import bookkeeping
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import (
    CancelOrder,
    IssueThb,
    LicenceKind,
    MeterKind,
    OrderKind,
    ParticipantKind,
    PlaceOrder,
    Side,
    TimeInForce,
)
from tests.ledger.market.test_market import Market

BUY, SELL = Side.BUY, Side.SELL
GTC = TimeInForce.GOOD_TILL_GATE
IOC, FOK = TimeInForce.IMMEDIATE_OR_CANCEL, TimeInForce.FILL_OR_KILL
BASIS = 10_000
LINK_KW, LOSS_BP = 8, 250  # 2,000 Wh per interval each way, 2.5 % loss
LINK_WH = LINK_KW * 1000 * 900 // 3600


@dataclass
class RefOrder:
    id: int
    owner: bytes
    side: Side
    zone: str
    price: int
    remaining: int
    priority: int


Trade = tuple[bytes, bytes, int, int, int]  # buyer, seller, quantity sent, price, loss bp


class Reference:
    def __init__(self) -> None:
        self.resting: list[RefOrder] = []
        self.used: dict[tuple[str, str], int] = {}

    def room(self, a: str, b: str) -> int:
        return LINK_WH - self.used.get((a, b), 0) + self.used.get((b, a), 0)

    def place(
        self, order_id: int, owner: bytes, side: Side, zone: str, qty: int, price: int, tif: object
    ) -> list[Trade]:
        incoming = RefOrder(order_id, owner, side, zone, price, qty, order_id)
        opposite = SELL if side is BUY else BUY
        room = {
            z: self.room(z, zone) if side is BUY else self.room(zone, z) for z in ("BKK", "CEN")
        }

        def terms(o: RefOrder) -> tuple[int, int, int]:
            """(rank, trade price, loss) of a resting order for this incoming order."""
            loss = 0 if o.zone == zone else LOSS_BP
            if side is BUY:
                gross = -(-o.price * BASIS // (BASIS - loss))
                return gross, o.price, loss
            net = o.price * (BASIS - loss) // BASIS
            return -net, net, loss

        candidates = [
            o for o in self.resting if o.side is opposite and (o.zone == zone or room[o.zone] > 0)
        ]
        candidates.sort(key=lambda o: (terms(o)[0], o.priority, o.zone))
        remaining, fills, own, out = qty, [], [], set()
        for o in candidates:
            if remaining == 0:
                break
            if o.zone in out:
                continue
            rank, trade_price, loss = terms(o)
            if (rank > price) if side is BUY else (-rank < price):
                break
            if o.owner == owner:
                own.append(o)
                continue
            q = min(remaining, o.remaining)
            if o.zone != zone:
                q = min(q, room[o.zone])
                if q <= 0:
                    out.add(o.zone)
                    continue
                room[o.zone] -= q
            fills.append((o, q, trade_price, loss))
            remaining -= q
        if tif is FOK and remaining:
            return []
        for o in own:
            self.resting.remove(o)
        trades = []
        for o, q, trade_price, loss in fills:
            o.remaining -= q
            if o.remaining == 0:
                self.resting.remove(o)
            if o.zone != zone:
                flow = (o.zone, zone) if side is BUY else (zone, o.zone)
                self.used[flow] = self.used.get(flow, 0) + q
            buyer, seller = (owner, o.owner) if side is BUY else (o.owner, owner)
            trades.append((buyer, seller, q, trade_price, loss))
        incoming.remaining = remaining
        if tif is GTC and remaining:
            self.resting.append(incoming)
        return trades

    def depth(self, zone: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        mine = [o for o in self.resting if o.zone == zone]
        bids = sorted((o for o in mine if o.side is BUY), key=lambda o: (-o.price, o.priority))
        asks = sorted((o for o in mine if o.side is SELL), key=lambda o: (o.price, o.priority))
        return [(o.id, o.remaining) for o in bids], [(o.id, o.remaining) for o in asks]


@functools.cache
def built() -> tuple[Market, list[tuple[PrivateKey, str, bool]]]:
    """A market with the BKK-CEN link made small and every other link switched off; two
    licensed sellers (who also buy) and two buyers in each zone."""
    sb = Sandbox()
    view = sb.state.overlay()
    for a, b in registry.zone_index(view).links:
        capacity, loss = (LINK_KW, LOSS_BP) if {a, b} == {"BKK", "CEN"} else (0, 100)
        view.put(registry.interconnector_key(a, b), registry.Interconnector(a, b, capacity, loss))
    view.commit()
    mk = Market(sb)
    traders = []
    for zone in ("BKK", "CEN"):
        for n in range(2):
            label = f"x-{zone}-seller-{n}"
            seller = mk.register(label, zone, ParticipantKind.INDUSTRIAL)
            mk.add_meter(label, seller, zone, MeterKind.SOLAR, 400_000)
            mk.grant(seller, LicenceKind.SELLER)
            mk.ok(mk.custodian, IssueThb(seller.address, 10_000_000))
            traders.append((seller, zone, True))
            buyer = mk.register(f"x-{zone}-buyer-{n}", zone, ParticipantKind.BUSINESS)
            mk.ok(mk.custodian, IssueThb(buyer.address, 10_000_000))
            traders.append((buyer, zone, False))
    return mk, traders


def fresh(mk: Market) -> Market:
    clone = copy.copy(mk)
    clone.sb = copy.copy(mk.sb)
    clone.sb.state = copy.deepcopy(mk.sb.state)
    return clone


def trades_of(events: list[Event]) -> list[Trade]:
    return [
        (
            e.attrs["buyer"],
            e.attrs["seller"],
            e.attrs["quantity_wh"],
            e.attrs["price"],
            e.attrs["loss_bp"],
        )  # type: ignore[misc]
        for e in events
        if e.kind == "trade"
    ]


def real_depth(mk: Market, zone: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    view = mk.sb.state.overlay()
    current = bookkeeping.book_of(view, mk.T, zone)
    return (
        [(i, bookkeeping.get_order(view, i).remaining_wh) for _, _, i in current.bids],
        [(i, bookkeeping.get_order(view, i).remaining_wh) for _, _, i in current.asks],
    )


places = st.tuples(
    st.just("place"),
    st.integers(0, 7),  # traders alternate seller, buyer: BKK 0-3, CEN 4-7
    st.just(SELL),  # sellers sell, buyers buy (set from the trader below)
    st.integers(1, 25).map(lambda n: n * 100),
    st.integers(0, 60),  # price offset, see below
    st.sampled_from([GTC, GTC, GTC, IOC, FOK]),
    st.sampled_from([OrderKind.LIMIT, OrderKind.LIMIT, OrderKind.MARKET]),
)
streams = st.lists(
    st.tuples(st.integers(0, 6), places, st.integers(0, 100)).map(
        lambda t: t[1] if t[0] else ("cancel", t[2])  # about one cancel in seven operations
    ),
    min_size=10,
    max_size=40,
)


def price_for(zone: str, sells: bool, offset: int) -> int:
    """Central sells cheap and Bangkok buys dear, so energy wants to flow over the link."""
    if sells:
        return (240 if zone == "CEN" else 270) + offset
    return (250 if zone == "BKK" else 230) + offset


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=streams)
def test_cross_zone_matching_agrees_with_a_reference(ops: list[tuple[object, ...]]) -> None:
    base, traders = built()
    mk = fresh(base)
    ref = Reference()
    owners = {t.address: t for t, _, _ in traders}
    crossed = 0
    for op in ops:
        if op[0] == "place":
            _, i, side, qty, offset, tif, kind = op
            who, zone, sells = traders[int(i)]  # type: ignore[call-overload]
            side = SELL if sells else BUY
            price = price_for(zone, sells, int(offset))  # type: ignore[call-overload]
            if kind is OrderKind.MARKET and tif is GTC:
                tif = IOC
            body = PlaceOrder(side, zone, mk.T, qty, price, kind=kind, tif=tif)  # type: ignore[arg-type]
            events = mk.sb.submit(who, body)
            order_id = int(events[0].attrs["order"])  # type: ignore[call-overload]
            expected = ref.place(order_id, who.address, side, zone, qty, price, tif)  # type: ignore[arg-type]
        else:
            if not ref.resting:
                continue
            ids = sorted(o.id for o in ref.resting)
            order_id = ids[int(op[1]) % len(ids)]  # type: ignore[call-overload]
            [resting] = [o for o in ref.resting if o.id == order_id]
            events = mk.sb.submit(owners[resting.owner], CancelOrder(order_id))
            ref.resting.remove(resting)
            expected = []
        assert trades_of(events) == expected, op
        for zone in ("BKK", "CEN"):
            assert real_depth(mk, zone) == ref.depth(zone), (op, zone)
        crossed += sum(1 for trade in expected if trade[4])
    event(f"cross-zone trades: {min(crossed, 5)}{'+' if crossed >= 5 else ''}")
    full = any(ref.room(a, b) == 0 for a, b in (("BKK", "CEN"), ("CEN", "BKK")))
    event(f"link used to the full: {full}")
    check_all(mk.sb.state)
