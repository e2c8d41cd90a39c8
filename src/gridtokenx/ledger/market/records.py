"""Market records in state and their keys.

Everything a transaction needs is reachable by key, never by scanning: an interval record
lists its trades and the participants to settle, and `ACTIVE_KEY` lists the intervals not
yet settled so that `end_block` touches only those. The books are not stored as such: the
open `Order` records are the books, and the matching engine keeps them in memory (one scan
of `ord/` when a node starts, then updates as orders commit). Keys embed the interval start
as 8 big-endian bytes so that they sort by time in RocksDB later.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

import msgspec

from gridtokenx.wire.tx import OrderKind, Side, TimeInForce

ACTIVE_KEY: Final = b"mkt/active"
SEQUENCE_KEY: Final = b"mkt/seq"
REMATCH_KEY: Final = b"mkt/rematch"


class OrderStatus(IntEnum):
    OPEN = 1
    FILLED = 2
    CANCELLED = 3
    EXPIRED = 4
    KILLED = 5  # fill-or-kill that could not fill, or the unfilled rest of an IOC/market order


class IntervalStatus(IntEnum):
    OPEN = 1  # trading until gate closure
    CLOSED = 2  # gate closed, waiting for meter readings
    SETTLED = 3


# Records are frozen values (numbers, bytes, strings, enums, tuples of those) and cannot
# form a reference cycle, so the cyclic collector does not track them (`gc=False`): open
# orders and cached records stay alive for many blocks, and a validator's young collections
# walked thousands of them each time (docs/adr/0007, "The commit in the devnet and in
# process").
class Order(msgspec.Struct, frozen=True, array_like=True, gc=False):
    id: int
    owner: bytes
    side: Side
    zone: str
    interval_start: int
    quantity_wh: int  # as placed or last amended
    remaining_wh: int
    price: int  # satang/kWh: the limit, or a market order's protection price
    kind: OrderKind
    tif: TimeInForce
    renewable_only: bool  # buys: match only renewable sellers
    renewable: bool  # sells: every producing meter of the seller in the zone is renewable
    priority: int  # lower is earlier; a priority-losing amend takes a new one
    escrow_satang: int  # THB held for the unfilled rest (buys)
    status: OrderStatus
    placed_at: int


BookEntry = tuple[int, int, int]  # (price, priority, order id)


class Book(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A view of one zone and interval's resting orders (built from its price levels): bids
    best first (highest price, then earliest), asks best first (lowest, then earliest)."""

    bids: tuple[BookEntry, ...] = ()
    asks: tuple[BookEntry, ...] = ()


class Trade(msgspec.Struct, frozen=True, array_like=True, gc=False):
    id: int
    interval_start: int
    buy_order: int
    sell_order: int
    buyer: bytes
    seller: bytes
    buyer_zone: str
    seller_zone: str
    quantity_wh: int  # energy the seller sends
    price: int  # satang per kWh sent, paid to the seller
    loss_bp: int  # path loss in basis points: the buyer receives quantity x (1 - loss)
    path: tuple[str, ...]  # zones from seller to buyer (one zone for a local trade)
    escrow_satang: int  # the buyer's THB held for this trade until settlement
    height: int
    time: int
    delivered_wh: int = 0  # filled in at settlement
    settled: bool = False


class Position(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One participant's standing in one zone and interval."""

    offered_wh: int = 0  # open sell quantity
    sold_wh: int = 0
    bought_wh: int = 0
    locked_export_wh: int = 0  # metered export held in escrow until settlement
    metered_import_wh: int = 0  # metered import, billed or covered at settlement
    # On the interval's party list. Set once, at the first trade, and never cleared: a party
    # whose trades a capacity cut curtailed to nothing is still listed, so trading again must
    # not list (and then settle) it a second time.
    listed: bool = False


class IntervalMarket(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """An interval's trades and trading parties are numbered lists under their own keys
    (`interval_trade_key`, `interval_party_key`), so a fill writes O(1), not the whole list."""

    status: IntervalStatus = IntervalStatus.OPEN
    zones: tuple[str, ...] = ()  # zones that have (or had) a book
    trade_count: int = 0
    party_count: int = 0  # (participant, zone) pairs with a trade, in order of first trade


class TradeRef(msgspec.Struct, frozen=True, array_like=True, gc=False):
    trade_id: int


class Party(msgspec.Struct, frozen=True, array_like=True, gc=False):
    participant: bytes
    zone: str


class ZoneHalt(msgspec.Struct, frozen=True, array_like=True, gc=False):
    halted_by: str  # authority code
    since: int
    reason: str


class Debt(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """THB owed after a settlement charge found the payer short; collected off-chain."""

    amount_satang: int


class ZoneReport(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Conservation per interval and zone; settlement refuses to finish if it does not hold."""

    export_wh: int = 0  # metered export of the zone's sellers
    delivered_wh: int = 0  # of that, delivered P2P
    sold_to_utility_wh: int = 0  # the rest, bought back by the distribution authority
    shortfall_wh: int = 0  # sold but not exported
    received_wh: int = 0  # P2P energy received by the zone's buyers
    losses_wh: int = 0  # transmission losses on energy delivered from this zone
    import_wh: int = 0  # metered import of the zone's trading parties
    import_covered_wh: int = 0  # of that, covered by P2P energy (GRID burnt)
    paid_by_buyers_satang: int = 0
    paid_to_sellers_satang: int = 0
    platform_fees_satang: int = 0
    wheeling_satang: int = 0
    refunded_satang: int = 0
    imbalance_satang: int = 0
    utility_bills_satang: int = 0
    buyback_satang: int = 0


def _interval(start: int) -> bytes:
    return start.to_bytes(8)


def order_key(order_id: int) -> bytes:
    return b"ord/" + order_id.to_bytes(8)


def interval_trade_key(interval_start: int, n: int) -> bytes:
    return b"itr/" + _interval(interval_start) + n.to_bytes(4)


def interval_party_key(interval_start: int, n: int) -> bytes:
    return b"ipt/" + _interval(interval_start) + n.to_bytes(4)


def trade_key(trade_id: int) -> bytes:
    return b"trade/" + trade_id.to_bytes(8)


def interval_key(interval_start: int) -> bytes:
    return b"ivl/" + _interval(interval_start)


def position_key(interval_start: int, zone: str, participant: bytes) -> bytes:
    return b"pos/" + _interval(interval_start) + participant + zone.encode()


def flow_key(interval_start: int, from_zone: str, to_zone: str) -> bytes:
    return b"flow/" + _interval(interval_start) + f"{from_zone}>{to_zone}".encode()


def open_orders_key(owner: bytes) -> bytes:
    return b"oo/" + owner


def halt_key(zone: str) -> bytes:
    return b"halt/" + zone.encode()


def debt_key(debtor: bytes, creditor: bytes) -> bytes:
    return b"debt/" + debtor + creditor


REPORT_PREFIX = b"rep/"


def report_key(interval_start: int, zone: str) -> bytes:
    return REPORT_PREFIX + _interval(interval_start) + zone.encode()


class Counter(msgspec.Struct, frozen=True, array_like=True, gc=False):
    value: int


class OpenOrders(msgspec.Struct, frozen=True, array_like=True, gc=False):
    ids: tuple[int, ...]


class Rematch(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Zones resumed in this block: `end_block` re-matches the open intervals they trade in."""

    zones: tuple[str, ...]


class Active(msgspec.Struct, frozen=True, array_like=True, gc=False):
    intervals: tuple[int, ...]  # starts of intervals not yet settled, ascending


class FlowUsed(msgspec.Struct, frozen=True, array_like=True, gc=False):
    wh: int


RECORDS: Final[tuple[type[msgspec.Struct], ...]] = (
    Order,
    Trade,
    TradeRef,
    Party,
    Position,
    IntervalMarket,
    ZoneHalt,
    Debt,
    ZoneReport,
    Counter,
    OpenOrders,
    Active,
    Rematch,
    FlowUsed,
)
"""The record types this context stores (`transition.RECORD_TYPES` gathers every context's)."""
