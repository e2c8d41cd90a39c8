"""The market as surveillance sees it: facts taken from committed blocks, in chain order.

A detector never reads the wall clock or a node's mempool: its only input is this tape,
built block by block from what every node committed (each transaction's hash, sender, body
and receipt events, and the block's end-of-block events). A trade event names its buy and
sell order ids; one without them (a hand-built test exchange) has the tape ask the
market's records (`TradeOrders`, `ledger.market.queries.trade`): they never change once
written.

Everything is indexed by delivery interval, so a detector reads one interval's orders and
trades in O(their number), and `forget_before` drops intervals a follower no longer needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

import msgspec

from gridtokenx.ledger.context import Event, EventValue
from gridtokenx.wire import tx

Attrs = dict[str, EventValue]

TradeOrders = Callable[[int], "tuple[int, int] | None"]
"""A trade id to its (buy order id, sell order id), from the market's records."""

BUY: Final = "BUY"
SELL: Final = "SELL"


# The facts are msgspec Structs, not dataclasses: a node makes a few per committed order
# (a Ref and a CommittedTx per transaction, an OrderLife per order, a TradeFact per trade),
# and a frozen dataclass's __init__ (object.__setattr__ per field) cost 0.4-2.4 us each
# against 0.1-0.2; fields, equality and immutability are the same.


class Ref(msgspec.Struct, frozen=True):
    """Where something happened: the height, the block time and the transaction (None for
    an end-of-block event such as a gate-closure expiry)."""

    height: int
    time: int
    tx_hash: bytes | None


class CommittedTx(msgspec.Struct, frozen=True):
    tx_hash: bytes
    sender: bytes
    body: tx.Body
    events: list[Event]


class CommittedBlock(msgspec.Struct, frozen=True):
    """One committed height as a follower hands it to surveillance."""

    height: int
    time: int
    block_hash: bytes
    txs: list[CommittedTx]
    end_events: list[Event]


class OrderLife(msgspec.Struct):
    id: int
    owner: bytes
    side: str
    zone: str
    interval: int
    quantity_wh: int
    price: int
    placed: Ref
    filled_wh: int = 0
    trades: list[int] = msgspec.field(default_factory=list)
    closed: str | None = None  # filled, cancelled, expired, killed
    closed_at: Ref | None = None
    best_same_side_at_close: int | None = None  # others' best price on its side when closed
    best_opposite_at_close: int | None = None  # the best price of the other side then

    @property
    def unfilled_wh(self) -> int:
        return self.quantity_wh - self.filled_wh


class TradeFact(msgspec.Struct, frozen=True):
    id: int
    interval: int
    buy_order: int
    sell_order: int
    buyer: bytes
    seller: bytes
    buyer_zone: str
    seller_zone: str
    quantity_wh: int
    price: int
    at: Ref
    # A day-ahead auction's trade: its order ids are curve ids and it has no aggressor
    auction: bool = False

    @property
    def aggressor(self) -> bytes:
        """The owner of the incoming order: the later of the two ids."""
        return self.buyer if self.buy_order > self.sell_order else self.seller


class Transfer(msgspec.Struct, frozen=True):
    sender: bytes
    to: bytes
    asset: str
    amount: int
    at: Ref


class Reading(msgspec.Struct, frozen=True):
    owner: bytes
    zone: str
    interval: int
    export_wh: int
    import_wh: int
    at: Ref


@dataclass
class IntervalTape:
    orders: dict[int, OrderLife] = field(default_factory=dict)
    trades: list[TradeFact] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    # Day-ahead sell curves still placed: curve id -> (owner, zone, Wh offered)
    curve_offers: dict[int, tuple[bytes, str, int]] = field(default_factory=dict)
    # What detectors derive from a final interval (past its gate), computed once.
    derived: dict[str, object] = field(default_factory=dict)


class Tape:
    def __init__(self, trade_orders: TradeOrders) -> None:
        self.trade_orders = trade_orders
        self.intervals: dict[int, IntervalTape] = {}
        # Every order of the intervals kept, by id: a fill or a close finds it in one look
        self.orders: dict[int, OrderLife] = {}
        self.transfers: list[Transfer] = []
        self.names: dict[bytes, str] = {}  # account -> registered name
        self.meters: dict[bytes, tuple[bytes, str]] = {}  # meter -> (owner, zone)
        self.meter_owners: dict[bytes, set[bytes]] = {}  # meter -> every owner it ever had
        self.settled: list[int] = []  # intervals the last observed block settled
        self.height = 0
        self.time = 0
        self._clearing = False  # handling an auction clearing's events

    def interval(self, start: int) -> IntervalTape:
        found = self.intervals.get(start)
        if found is None:
            found = self.intervals[start] = IntervalTape()
        return found

    def order(self, order_id: int) -> OrderLife | None:
        return self.orders.get(order_id)

    def open_orders(self, start: int, zone: str, side: str) -> Iterable[OrderLife]:
        found = self.intervals.get(start)
        for o in () if found is None else found.orders.values():
            if o.closed is None and o.zone == zone and o.side == side:
                yield o

    # --- feeding -------------------------------------------------------------------------
    # A node runs this for every committed order (3-4 events each), so the handlers read
    # their attributes and check their types inline, without a call per attribute.
    def observe(self, block: CommittedBlock) -> None:
        height, time = block.height, block.time
        self.height, self.time, self.settled = height, time, []
        handlers = _HANDLERS
        for t in block.txs:
            body = t.body
            if isinstance(body, tx.RegisterParticipant):
                self.names[body.account] = body.name.strip().casefold()
            self._clearing = isinstance(body, tx.SubmitAuctionClearing)
            at = Ref(height, time, t.tx_hash)
            for e in t.events:
                handler = handlers.get(e.kind)
                if handler is not None:
                    handler(self, e.attrs, at)
        self._clearing = False
        self._events(block.end_events, Ref(height, time, None))

    def _events(self, events: list[Event], at: Ref) -> None:
        for e in events:
            handler = _HANDLERS.get(e.kind)
            if handler is not None:
                handler(self, e.attrs, at)

    def _accepted(self, a: Attrs, at: Ref) -> None:
        order_id, start, owner = a["order"], a["interval"], a["owner"]
        quantity, price = a["quantity_wh"], a["price"]
        if not (isinstance(order_id, int) and isinstance(start, int)
                and isinstance(quantity, int) and isinstance(price, int)
                and isinstance(owner, bytes)):  # fmt: skip
            order_id, start, quantity, price = map(_int, (order_id, start, quantity, price))
            owner = _bytes(owner)
        order = OrderLife(
            order_id, owner, str(a["side"]), str(a["zone"]), start, quantity, price, at
        )
        self.interval(start).orders[order_id] = order
        self.orders[order_id] = order

    def _amended(self, a: Attrs, at: Ref) -> None:
        order = self.orders.get(_int(a["order"]))
        if order is not None:
            order.quantity_wh, order.price = _int(a["quantity_wh"]), _int(a["price"])

    def _trade(self, a: Attrs, at: Ref) -> None:
        """A trade names its orders (`buy_order`, `sell_order`); an event without them asks
        the market's records (`trade_orders`), which hold the same ids."""
        trade_id, buy, sell = a["trade"], a.get("buy_order"), a.get("sell_order")
        if not isinstance(trade_id, int):
            trade_id = _int(trade_id)
        if buy is None or sell is None:
            ids = self.trade_orders(trade_id)
            if ids is None:
                return
            buy, sell = ids
        start, quantity, price = a["interval"], a["quantity_wh"], a["price"]
        buyer, seller = a["buyer"], a["seller"]
        if not (isinstance(buy, int) and isinstance(sell, int) and isinstance(start, int)
                and isinstance(quantity, int) and isinstance(price, int)
                and isinstance(buyer, bytes) and isinstance(seller, bytes)):  # fmt: skip
            buy, sell, start, quantity, price = map(_int, (buy, sell, start, quantity, price))
            buyer, seller = _bytes(buyer), _bytes(seller)
        fact = TradeFact(
            trade_id, start, buy, sell, buyer, seller, str(a["buyer_zone"]),
            str(a["seller_zone"]), quantity, price, at, self._clearing,
        )  # fmt: skip
        self.interval(start).trades.append(fact)
        if self._clearing:  # an auction's trade: curve ids, not order ids
            return
        orders = self.orders
        for order_id in (buy, sell):
            order = orders.get(order_id)
            if order is not None:
                order.filled_wh += quantity
                order.trades.append(trade_id)

    def _curve(self, a: Attrs, at: Ref) -> None:
        """A day-ahead sell curve placed or amended: energy on offer for the interval."""
        if str(a["side"]) == "SELL":
            entry = (_bytes(a["owner"]), str(a["zone"]), _int(a["quantity_wh"]))
            self.interval(_int(a["interval"])).curve_offers[_int(a["curve"])] = entry

    def _curve_cancelled(self, a: Attrs, at: Ref) -> None:
        self.interval(_int(a["interval"])).curve_offers.pop(_int(a["curve"]), None)

    def _transfer(self, a: Attrs, at: Ref) -> None:
        self.transfers.append(
            Transfer(_bytes(a["from"]), _bytes(a["to"]), str(a["asset"]), _int(a["amount"]), at)
        )

    def _meter(self, a: Attrs, at: Ref) -> None:
        meter, owner = _bytes(a["meter"]), _bytes(a["owner"])
        self.meters[meter] = (owner, str(a["zone"]))
        self.meter_owners.setdefault(meter, set()).add(owner)

    def _reading(self, a: Attrs, at: Ref) -> None:
        meter = a["meter"]
        found = self.meters.get(meter if isinstance(meter, bytes) else _bytes(meter))
        if found is None:
            return
        start, export, imported = a["interval"], a["export_wh"], a["import_wh"]
        if not (isinstance(start, int) and isinstance(export, int)
                and isinstance(imported, int)):  # fmt: skip
            start, export, imported = _int(start), _int(export), _int(imported)
        self.interval(start).readings.append(
            Reading(found[0], found[1], start, export, imported, at)
        )

    def _settled(self, a: Attrs, at: Ref) -> None:
        self.settled.append(_int(a["interval"]))

    def forget_before(self, start: int) -> None:
        """Drop intervals before `start` (a follower's memory stays bounded); transfers,
        names and meters are kept: they are few, and links last."""
        for old in [s for s in self.intervals if s < start]:
            for order_id in self.intervals.pop(old).orders:
                self.orders.pop(order_id, None)


def _closer(kind: str) -> Callable[[Tape, Attrs, Ref], None]:
    """An order closing (filled, cancelled, expired, killed): noting how far behind its
    side's best price it was then, which is what "away from the touch" means to spoofing."""
    cancelled = kind == "cancelled"

    def close(tape: Tape, a: Attrs, at: Ref) -> None:
        order_id = a["order"]
        order = tape.orders.get(order_id if isinstance(order_id, int) else _int(order_id))
        if order is None:
            return
        if cancelled:
            order.best_same_side_at_close, order.best_opposite_at_close = _best_at(tape, order)
        order.closed, order.closed_at = kind, at

    return close


def _best_at(tape: Tape, order: OrderLife) -> tuple[int | None, int | None]:
    """(others' best price on the order's side, the best of the other side) among the
    interval's open orders in its zone, in one walk over the interval's orders (a cancel
    walked them twice): the best bid is the highest, the best offer the lowest."""
    side, zone, owner, own_id = order.side, order.zone, order.owner, order.id
    other_side = SELL if side == BUY else BUY
    buying = side == BUY
    same: int | None = None
    across: int | None = None
    found = tape.intervals.get(order.interval)
    for o in () if found is None else found.orders.values():
        if o.closed is not None or o.zone != zone:
            continue
        price = o.price
        if o.side == side:
            if (
                o.owner != owner
                and o.id != own_id
                and (same is None or (price > same if buying else price < same))
            ):
                same = price
        elif o.side == other_side and (
            across is None or (price < across if buying else price > across)
        ):
            across = price
    return same, across


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"expected an integer event attribute, got {value!r}")
    return value


def _bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"expected a bytes event attribute, got {value!r}")
    return value


_HANDLERS: Final[dict[str, Callable[[Tape, Attrs, Ref], None]]] = {
    "order_accepted": Tape._accepted,
    "order_amended": Tape._amended,
    "order_filled": _closer("filled"),
    "order_cancelled": _closer("cancelled"),
    "order_expired": _closer("expired"),
    "order_killed": _closer("killed"),
    "trade": Tape._trade,
    "auction_curve_placed": Tape._curve,
    "auction_curve_amended": Tape._curve,
    "auction_curve_cancelled": Tape._curve_cancelled,
    "transfer": Tape._transfer,
    "meter_registered": Tape._meter,
    "reading": Tape._reading,
    "interval_settled": Tape._settled,
}
