"""The matching engine: in-memory order books and the price-time matching decision.

The order records in state are the truth; the books here are a derived index over the open
ones (`state.DerivedIndex`), updated as order records are committed and rebuilt from them
whenever a node starts. Books are kept per (interval, zone) and side as price levels: a
sorted list of prices and, per price, the resting orders earliest first. Matching reads the
committed books (a transaction never changes the side it matches against before it has
planned its fills) and decides the fills without writing; the ledger then executes them.

`match` is pure over plain data, so the benchmark can time the engine alone.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, NamedTuple

import msgspec

from gridtokenx.ledger.market.records import Order, OrderStatus
from gridtokenx.ledger.state import State
from gridtokenx.wire.tx import Side

BASIS = 10_000
_BUY = Side.BUY
INDEX_NAME = "market-books"


class Resting:
    """What matching needs to know of a resting order, without reading its record."""

    __slots__ = ("id", "owner", "price", "priority", "remaining", "renewable", "renewable_only")

    def __init__(
        self,
        order_id: int,
        owner: bytes,
        price: int,
        priority: int,
        remaining: int,
        renewable: bool,
        renewable_only: bool,
    ) -> None:
        self.id = order_id
        self.owner = owner
        self.price = price
        self.priority = priority
        self.remaining = remaining
        self.renewable = renewable
        self.renewable_only = renewable_only

    @classmethod
    def of(cls, order: Order) -> Resting:
        return cls(
            order.id,
            order.owner,
            order.price,
            order.priority,
            order.remaining_wh,
            order.renewable,
            order.renewable_only,
        )


class SideBook:
    """One side of one book: prices ascending, and per price the orders earliest first."""

    __slots__ = ("levels", "prices", "side", "zone")

    def __init__(self, zone: str, side: Side) -> None:
        self.side, self.zone = side, zone
        self.prices: list[int] = []
        self.levels: dict[int, list[Resting]] = {}

    def add(self, order: Resting) -> None:
        level = self.levels.get(order.price)
        if level is None:
            bisect.insort(self.prices, order.price)
            self.levels[order.price] = [order]
        elif level[-1].priority < order.priority:
            level.append(order)
        else:  # an amendment that kept its priority goes back to its place
            keys = [r.priority for r in level]
            level.insert(bisect.bisect(keys, order.priority), order)

    def remove(self, order: Resting) -> None:
        level = self.levels[order.price]
        level.remove(order)
        if not level:
            del self.levels[order.price]
            del self.prices[bisect.bisect_left(self.prices, order.price)]

    def best_first(self) -> Iterator[Resting]:
        """Bids from the highest price, asks from the lowest; earliest first within a price."""
        prices = reversed(self.prices) if self.side is _BUY else iter(self.prices)
        for price in prices:
            yield from self.levels[price]

    def __len__(self) -> int:
        return sum(len(level) for level in self.levels.values())


@dataclass
class Books:
    """Every open order of every interval and zone. A `DerivedIndex` over `ord/` records."""

    prefixes = (b"ord/",)  # `records.order_key`, as `from_state` scans
    # Keyed by (interval, zone, side as a plain int): enum members hash in Python code, and
    # these keys are hashed on every order.
    sides: dict[tuple[int, str, int], SideBook] = field(default_factory=dict)
    by_id: dict[int, tuple[Resting, tuple[int, str, int]]] = field(default_factory=dict)
    # The same side books by (interval, side) and then zone, kept with `sides` by `rest`
    # and `drop`: an order's plan looks up the opposite side in each of the interval's
    # zones, and most zones have none.
    by_zone: dict[tuple[int, int], dict[str, SideBook]] = field(default_factory=dict)

    @classmethod
    def from_state(cls, state: State) -> Books:
        books = cls()
        for key, order in state.scan(b"ord/"):
            books.on_write(key, order)
        return books

    def side(self, interval_start: int, zone: str, side: Side) -> SideBook | None:
        return self.sides.get((interval_start, zone, int(side)))

    def zones(self, interval_start: int, side: Side) -> Mapping[str, SideBook]:
        """One side of every zone's book of the interval, by zone (zones without an order
        on that side are not in it)."""
        return self.by_zone.get((interval_start, int(side)), _NO_BOOKS)

    def rest(self, interval_start: int, zone: str, side: Side, order: Resting) -> None:
        """Put an order in its book (the book is created on its first order)."""
        where = (interval_start, zone, int(side))
        book = self.sides.get(where)
        if book is None:
            book = self.sides[where] = SideBook(zone, side)
            self.by_zone.setdefault((interval_start, where[2]), {})[zone] = book
        book.add(order)
        self.by_id[order.id] = (order, where)

    def set_remaining(self, order_id: int, remaining: int) -> None:
        """A partial fill, or an amendment that kept the order's place."""
        self.by_id[order_id][0].remaining = remaining

    def drop(self, order_id: int) -> None:
        """Take an order out of its book (filled, cancelled, expired, or re-timed)."""
        found = self.by_id.pop(order_id, None)
        if found is None:
            return
        order, where = found
        book = self.sides[where]
        book.remove(order)
        if not book.levels:
            del self.sides[where]
            interval_start, zone, side = where
            zones = self.by_zone[interval_start, side]
            del zones[zone]
            if not zones:
                del self.by_zone[interval_start, side]

    def on_write(self, key: bytes, record: msgspec.Struct | None) -> None:
        """Follow a committed order record with the engine operations above."""
        if not isinstance(record, Order):
            if record is None and key.startswith(b"ord/"):  # a rolled-back trial's order
                self.drop(int.from_bytes(key[4:]))
            return
        known = self.by_id.get(record.id)
        if record.status is not OrderStatus.OPEN:
            if known is not None:
                self.drop(record.id)
            return
        if known is not None:
            if known[0].price == record.price and known[0].priority == record.priority:
                self.set_remaining(record.id, record.remaining_wh)
                return
            self.drop(record.id)
        self.rest(record.interval_start, record.zone, record.side, Resting.of(record))

    def zones_agree(self) -> bool:
        """Whether `by_zone` holds exactly the side books of `sides` (an invariant)."""
        regrouped: dict[tuple[int, int], dict[str, SideBook]] = {}
        for (interval_start, zone, side), book in self.sides.items():
            regrouped.setdefault((interval_start, side), {})[zone] = book
        return regrouped == self.by_zone

    def snapshot(self) -> dict[tuple[int, str, int], list[tuple[int, int, int, int]]]:
        """Comparable contents (for the invariant that the index equals the records)."""
        return {
            where: [(r.price, r.priority, r.id, r.remaining) for r in book.best_first()]
            for where, book in sorted(self.sides.items())
        }


_NO_BOOKS: Final[Mapping[str, SideBook]] = MappingProxyType({})


def books(state: State) -> Books:
    return state.index(INDEX_NAME, Books.from_state)


# --- the matching decision -----------------------------------------------------------------
class Incoming(NamedTuple):
    side: Side
    price: int  # limit, or protection price
    owner: bytes
    remaining_wh: int
    renewable_only: bool  # buys
    renewable: bool  # sells


class Reachable(NamedTuple):
    """One zone's opposite book as the incoming order sees it."""

    zone: str
    book: SideBook
    loss_bp: int  # path loss between the zones (0 within a zone)
    hops: tuple[tuple[str, str], ...]  # directed links on the path


class Decision:
    """What an incoming order does: its fills and the owner's own orders it reached."""

    __slots__ = ("fills", "self_trades")

    def __init__(self) -> None:
        self.fills: list[tuple[Resting, int, int, str]] = []
        """(resting order, quantity sent, price per kWh sent, its zone)"""
        self.self_trades: list[Resting] = []
        """the incoming owner's own resting orders it reached: they are cancelled"""

    @property
    def filled_wh(self) -> int:
        return sum(f[1] for f in self.fills)


NOTHING: Final = Decision()
"""The result for an order that crosses nothing. Shared: callers never mutate a Decision."""


class _Cursor:
    __slots__ = ("head", "reach", "walk")

    def __init__(self, reach: Reachable) -> None:
        self.reach = reach
        self.walk = reach.book.best_first()
        self.head: Resting | None = next(self.walk, None)

    def advance(self) -> None:
        self.head = next(self.walk, None)


def match(
    incoming: Incoming,
    reachable: list[Reachable],
    link_room: dict[tuple[str, str], int],
    before: int | None = None,
) -> Decision:
    """Decide the fills of an incoming order, best terms first across every reachable zone.

    Across a path with loss l, a resting ask at p costs the buyer ceil(p / (1 - l)) per kWh
    received, and a resting bid at b nets the seller floor(b x (1 - l)) per kWh sent; the
    trade price (per kWh sent) is the resting order's, so that net price. Ties go to the
    earlier order, then to the zone code. `link_room` is consumed as fills use paths. With
    `before`, only resting orders of earlier priority are met (see `trading.rematch`)."""
    if len(reachable) == 1 and not reachable[0].hops:  # one book, no path: no room or loss
        return match_local(
            reachable[0].book,
            incoming.side is _BUY,
            incoming.price,
            incoming.owner,
            incoming.remaining_wh,
            incoming.renewable_only,
            incoming.renewable,
            before,
        )
    buying = incoming.side is _BUY
    if not any(meets(r.book, r.loss_bp, buying, incoming.price) for r in reachable):
        return NOTHING  # the walk below would stop at its first order: most orders rest
    decision = Decision()
    remaining = incoming.remaining_wh
    reachable = sorted(reachable, key=lambda r: r.zone)
    cursors = [c for c in map(_Cursor, reachable) if c.head is not None]

    while remaining > 0 and cursors:
        best, chosen = _best_head(cursors, buying)
        resting = chosen.head
        assert resting is not None
        if buying and best[0] > incoming.price:
            break  # the best reachable ask is above the buyer's limit: so is every other
        if not buying and -best[0] < incoming.price:
            break  # the best reachable bid nets the seller less than its limit
        chosen.advance()
        if chosen.head is None:
            cursors.remove(chosen)
        if before is not None and resting.priority >= before:
            continue  # re-matching after a halt: an order meets only older orders
        if resting.owner == incoming.owner:
            decision.self_trades.append(resting)
            continue
        renewable_only = incoming.renewable_only if buying else resting.renewable_only
        seller_renewable = resting.renewable if buying else incoming.renewable
        if renewable_only and not seller_renewable:
            continue
        hops = chosen.reach.hops
        quantity = _path_room(min(remaining, resting.remaining), hops, link_room)
        if quantity <= 0:
            if chosen in cursors:
                cursors.remove(chosen)  # the path is full: that zone is out of reach
            continue
        for hop in hops:
            link_room[hop] -= quantity
        price = resting.price if buying else resting.price * (BASIS - chosen.reach.loss_bp) // BASIS
        decision.fills.append((resting, quantity, price, chosen.reach.zone))
        remaining -= quantity
    return decision


def _best_head(cursors: list[_Cursor], buying: bool) -> tuple[tuple[int, int], _Cursor]:
    """The zone whose next resting order offers the incoming order the best terms, and its
    rank: (price as the incoming order sees it, signed so lower is better; priority). The
    first zone in code order wins a tie, as the cursors are sorted by zone."""
    best: tuple[int, int] = (0, 0)
    chosen: _Cursor | None = None
    for cursor in cursors:
        head = cursor.head
        assert head is not None
        seen = seen_price(head.price, cursor.reach.loss_bp, buying)
        rank = (seen if buying else -seen, head.priority)
        if chosen is None or rank < best:
            best, chosen = rank, cursor
    assert chosen is not None
    return best, chosen


def meets(book: SideBook, loss: int, buying: bool, limit: int) -> bool:
    """Whether the book's best order meets an incoming order's `limit` as `_best_head`
    ranks it, across a path's `loss`. A loss only makes it worse, so a book whose best
    order does not meet the limit at no loss takes no part in the order's matching: its
    orders are never the best that crosses, and its path's links are never used."""
    prices = book.prices
    if not prices:
        return False
    if buying:  # the lowest ask
        return seen_price(prices[0], loss, True) <= limit
    return seen_price(prices[-1], loss, False) >= limit  # the highest bid


def seen_price(price: int, loss: int, buying: bool) -> int:
    """A resting order's price as an incoming order sees it across a path's `loss` (basis
    points): an ask grossed up by the loss, rounded up, when the incoming order buys; a bid
    net of it, rounded down, when it sells. One rule for ranking the books' heads
    (`_best_head`) and for leaving out a book that cannot meet the limit (`meets`)."""
    if not loss:
        return price
    if buying:
        return -(-price * BASIS // (BASIS - loss))
    return price * (BASIS - loss) // BASIS


def _path_room(
    wanted_wh: int, hops: tuple[tuple[str, str], ...], link_room: dict[tuple[str, str], int]
) -> int:
    """What of `wanted_wh` every link on the path still has room for (0 or less: full)."""
    quantity = wanted_wh
    for hop in hops:
        quantity = min(quantity, link_room[hop])
    return quantity


def match_local(
    book: SideBook,
    buying: bool,
    limit: int,
    owner: bytes,
    quantity_wh: int,
    renewable_only: bool,
    renewable: bool,
    before: int | None = None,
) -> Decision:
    """`match` for the common case of one book without loss (no path, no gross-up): the same
    walk in the same order, without the cursor machinery, because every order pays it."""
    prices = book.prices
    if not prices or ((prices[0] > limit) if buying else (prices[-1] < limit)):
        return NOTHING  # does not cross: the common case for a resting order
    decision = Decision()
    remaining, zone, levels = quantity_wh, book.zone, book.levels
    for price in prices if buying else reversed(prices):
        if (price > limit) if buying else (price < limit):
            break
        for resting in levels[price]:
            if before is not None and resting.priority >= before:
                continue
            if resting.owner == owner:
                decision.self_trades.append(resting)
                continue
            if buying:
                if renewable_only and not resting.renewable:
                    continue
            elif resting.renewable_only and not renewable:
                continue
            quantity = resting.remaining if resting.remaining < remaining else remaining
            decision.fills.append((resting, quantity, price, zone))
            remaining -= quantity
            if not remaining:
                return decision
    return decision
