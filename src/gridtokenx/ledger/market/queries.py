"""The market's read side: what the API, the command line, the simulator's summary and the
regulator's reports ask of the market's records, so that no module outside the market reads
its key layout.

Books come from the matching engine's in-memory index (the committed open orders), so depth
is read without scanning state; an interval's trades come from its own numbered list. Orders
and trades share one id sequence (`last_id`), which is how the newest trades are found."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, NamedTuple

from gridtokenx.ledger import chain_info, registry
from gridtokenx.ledger.market import auction, bookkeeping, orderbook, paths, records
from gridtokenx.ledger.state import State, records_under
from gridtokenx.wire.tx import Side

_ORDER_PREFIX: Final = records.order_key(0)[:-8]  # an order's key less its 8-byte id
_TRADE_PREFIX: Final = records.trade_key(0)[:-8]


class Level(NamedTuple):
    """One price level of a book: the price (satang/kWh) and what rests at it."""

    price: int
    quantity_wh: int
    orders: int


class Depth(NamedTuple):
    """A book's price levels, best first on each side."""

    bids: list[Level]
    asks: list[Level]


class LinkFlow(NamedTuple):
    """One interconnector's use in one interval, each way, against what it carries."""

    zone_a: str
    zone_b: str
    capacity_wh: int
    a_to_b_wh: int
    b_to_a_wh: int
    room_a_to_b_wh: int
    room_b_to_a_wh: int

    @property
    def net_wh(self) -> int:
        """Positive: the net flow runs from `zone_a` to `zone_b`."""
        return self.a_to_b_wh - self.b_to_a_wh

    @property
    def utilisation_bp(self) -> int:
        return abs(self.net_wh) * 10_000 // self.capacity_wh if self.capacity_wh else 0

    @property
    def congested(self) -> bool:
        """No room left one way or the other."""
        return min(self.room_a_to_b_wh, self.room_b_to_a_wh) <= 0


class Held(NamedTuple):
    """What the market's escrow holds for one participant, beyond its spendable balance."""

    thb_in_orders_satang: int  # its open buy orders' reserve
    thb_in_trades_satang: int  # its purchases not yet settled
    grid_wh: int  # its metered export sold, locked until its interval settles
    open_orders: int
    offered_wh: int  # left on its open sell orders (checked against capacity, no GRID held)
    unsettled_purchases: int


# --- orders and trades ----------------------------------------------------------------------
def order(state: State, order_id: int) -> records.Order | None:
    return state.get(records.order_key(order_id), records.Order)


def trade(state: State, trade_id: int) -> records.Trade | None:
    return state.get(records.trade_key(trade_id), records.Trade)


def orders(state: State) -> Iterator[records.Order]:
    """Every order, open or not, by id."""
    for _, found in records_under(state, _ORDER_PREFIX, records.Order):
        yield found


def trades(state: State) -> Iterator[records.Trade]:
    """Every trade, settled or not, by id."""
    for _, found in records_under(state, _TRADE_PREFIX, records.Trade):
        yield found


def last_id(state: State) -> int:
    """The newest order or trade id (one sequence numbers both); 0 before the first."""
    counter = state.get(records.SEQUENCE_KEY, records.Counter)
    return counter.value if counter is not None else 0


def open_order_ids(state: State, owner: bytes) -> tuple[int, ...]:
    """The owner's open orders, in the order it placed them."""
    return bookkeeping.open_orders(state.overlay(), owner)


def book_order_ids(state: State, zone: str, interval: int) -> list[int]:
    """The open orders of one zone's book for one interval: bids best first, then asks
    best first."""
    books = orderbook.books(state)
    ids: list[int] = []
    for side in (Side.BUY, Side.SELL):
        found = books.side(interval, zone, side)
        ids += [r.id for r in found.best_first()] if found is not None else []
    return ids


def depth(state: State, zone: str, interval: int, levels: int = 50) -> Depth:
    """Up to `levels` aggregated price levels a side: quantity and orders at each price."""
    books = orderbook.books(state)
    sides: list[list[Level]] = []
    for side in (Side.BUY, Side.SELL):
        found = books.side(interval, zone, side)
        rows: list[Level] = []
        if found is not None:
            prices = reversed(found.prices) if side is Side.BUY else iter(found.prices)
            for price in prices:
                if len(rows) == levels:
                    break
                level = found.levels[price]
                rows.append(Level(price, sum(r.remaining for r in level), len(level)))
        sides.append(rows)
    return Depth(*sides)


def renewable_received_wh(state: State, trade: records.Trade) -> int | None:
    """The renewable energy a settled trade's buyer received (delivered less path losses,
    possibly 0); None when the seller's order (or auction offer: its `sell_order` is the
    curve's id) was not renewable or before settlement."""
    if not trade.settled:
        return None
    sell = order(state, trade.sell_order)
    if sell is None:
        curve = state.get(auction.curve_key(trade.sell_order), auction.AuctionCurve)
        if curve is None or not curve.renewable:
            return None
    elif not sell.renewable:
        return None
    return trade.delivered_wh * (paths.BASIS - trade.loss_bp) // paths.BASIS


# --- intervals ------------------------------------------------------------------------------
def interval_market(state: State, interval: int) -> records.IntervalMarket | None:
    """An interval's market status (None: nobody traded it)."""
    return bookkeeping.interval_market(state.overlay(), interval)


def interval_trade_ids(state: State, interval: int) -> list[int]:
    """One interval's trade ids in the order they were made."""
    view = state.overlay()
    market = bookkeeping.interval_market(view, interval)
    return bookkeeping.interval_trades(view, interval, market) if market is not None else []


def interval_trades(state: State, interval: int) -> list[records.Trade]:
    """One interval's trades in the order they were made."""
    found = (trade(state, i) for i in interval_trade_ids(state, interval))
    return [t for t in found if t is not None]


def interval_reports(state: State, interval: int) -> dict[str, records.ZoneReport]:
    """A settled interval's report per zone, in the zone index's order."""
    return {
        zone: found
        for zone in registry.zone_index(state.overlay()).zones
        if (found := state.get(records.report_key(interval, zone), records.ZoneReport))
    }


def zone_reports(state: State) -> Iterator[tuple[int, str, records.ZoneReport]]:
    """Every settled (interval start, zone, report), by interval, then zone."""
    for at, report in records_under(state, records.REPORT_PREFIX, records.ZoneReport):
        yield int.from_bytes(at[:8]), at[8:].decode(), report


def halt(state: State, zone: str) -> records.ZoneHalt | None:
    """The halt in force in `zone` (None: it trades)."""
    return state.get(records.halt_key(zone), records.ZoneHalt)


def link_flows(state: State, interval: int) -> list[LinkFlow]:
    """Each interconnector's use in one interval. Counter-flows relieve each other (as
    matching counts them, `paths.link_room_wh`), so the room left each way is capacity
    minus the net flow that way."""
    view = state.overlay()
    length = chain_info.params(state).interval_seconds
    return [
        LinkFlow(
            a,
            b,
            paths.link_capacity_wh(view, a, b, length),
            paths.used_wh(view, interval, a, b),
            paths.used_wh(view, interval, b, a),
            paths.link_room_wh(view, interval, a, b, length),
            paths.link_room_wh(view, interval, b, a, length),
        )
        for a, b in registry.zone_index(view).links
    ]


def held(state: State, who: bytes) -> Held:
    """The escrow account's share that is `who`'s. Unsettled intervals are the market's
    active list, so this reads the participant's open orders and those intervals' trades
    and positions, never a scan of all state."""
    found = (order(state, i) for i in open_order_ids(state, who))
    mine = [o for o in found if o is not None]
    active = state.get(records.ACTIVE_KEY, records.Active)
    zones = registry.zone_index(state.overlay()).zones
    in_trades = locked_wh = unsettled = 0
    for interval in active.intervals if active is not None else ():
        for t in interval_trades(state, interval):
            if t.buyer == who and not t.settled:
                in_trades += t.escrow_satang
                unsettled += 1
        for code in zones:
            pos = state.get(records.position_key(interval, code, who), records.Position)
            locked_wh += pos.locked_export_wh if pos is not None else 0
    return Held(
        thb_in_orders_satang=sum(o.escrow_satang for o in mine if o.side is Side.BUY),
        thb_in_trades_satang=in_trades,
        grid_wh=locked_wh,
        open_orders=len(mine),
        offered_wh=sum(o.remaining_wh for o in mine if o.side is Side.SELL),
        unsettled_purchases=unsettled,
    )
