"""Bookkeeping shared by trading and settlement: ids, books, positions, open orders, escrow.

Every helper reads and writes through the transaction's overlay, so a rejected order leaves
no trace, and keeps the indexes (`OpenOrders`, `Position`, `IntervalMarket`, `Active`)
consistent with the order records they summarise. The books themselves are the matching
engine's, derived from the order records as they commit (see orderbook.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import msgspec

from gridtokenx.ledger import accounts
from gridtokenx.ledger.context import Event, EventValue
from gridtokenx.ledger.market import orderbook, records
from gridtokenx.ledger.market.records import Book, BookEntry, Order, OrderStatus
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import Overlay
from gridtokenx.wire import errors
from gridtokenx.wire.tx import Asset, Side

WH_PER_KWH = 1000


def next_id(view: Overlay) -> int:
    """One sequence for orders, trades and time priority: strictly increasing, never reused."""
    counter = view.get(records.SEQUENCE_KEY, records.Counter) or records.Counter(0)
    value = counter.value + 1
    view.put(records.SEQUENCE_KEY, records.Counter(value))
    return value


def value_satang(quantity_wh: int, price: int) -> int:
    """What `quantity_wh` costs at `price` satang/kWh, rounded down to whole satang."""
    return quantity_wh * price // WH_PER_KWH


def buyer_cost_satang(quantity_wh: int, price: int, params: Params) -> int:
    """Trade value plus the buyer's platform fee and wheeling charge.

    Each term rounds down, so the cost of several fills never exceeds the cost of their sum
    at the same or a higher price: an order's escrow always covers its remaining fills."""
    value = value_satang(quantity_wh, price)
    fee = value * params.platform_fee_basis_points // 10_000
    wheeling = quantity_wh * params.wheeling_satang_per_kwh // WH_PER_KWH
    return value + fee + wheeling


def get_order(view: Overlay, order_id: int) -> Order:
    order = view.get(records.order_key(order_id), Order)
    if order is None:
        raise errors.UnknownOrder(f"no order {order_id}")
    return order


def put_order(view: Overlay, order: Order) -> None:
    view.put(records.order_key(order.id), order)


def entries(view: Overlay, interval_start: int, zone: str, side: Side) -> Iterator[BookEntry]:
    """Committed resting orders of one side, best first, from the matching engine's books."""
    found = orderbook.books(view.base).side(interval_start, zone, side)
    for r in () if found is None else found.best_first():
        yield (r.price, r.priority, r.id)


def book_of(view: Overlay, interval_start: int, zone: str) -> Book:
    return Book(
        tuple(entries(view, interval_start, zone, Side.BUY)),
        tuple(entries(view, interval_start, zone, Side.SELL)),
    )


def open_orders(view: Overlay, owner: bytes) -> tuple[int, ...]:
    index = view.get(records.open_orders_key(owner), records.OpenOrders)
    return () if index is None else index.ids


def set_open_orders(view: Overlay, owner: bytes, ids: tuple[int, ...]) -> None:
    if ids:
        view.put(records.open_orders_key(owner), records.OpenOrders(ids))
    else:
        view.delete(records.open_orders_key(owner))


def position(view: Overlay, interval_start: int, zone: str, who: bytes) -> records.Position:
    key = records.position_key(interval_start, zone, who)
    return view.get(key, records.Position) or records.Position()


def update_position(
    view: Overlay,
    interval_start: int,
    zone: str,
    who: bytes,
    read: records.Position | None = None,
    **changes: int,
) -> records.Position:
    """Add each change to the position's field of the same name. `read`: the position as
    the caller has just read it (`position`), not read again."""
    current = position(view, interval_start, zone, who) if read is None else read
    updated = msgspec.structs.replace(
        current, **{name: getattr(current, name) + delta for name, delta in changes.items()}
    )
    view.put(records.position_key(interval_start, zone, who), updated)
    return updated


def interval_market(view: Overlay, interval_start: int) -> records.IntervalMarket | None:
    return view.get(records.interval_key(interval_start), records.IntervalMarket)


def ensure_interval(view: Overlay, interval_start: int, zone: str) -> records.IntervalMarket:
    """The interval's record, created (and listed as active) on its first order."""
    market = interval_market(view, interval_start)
    if market is not None and zone in market.zones:
        return market  # as it is: no write (the root and the store see no change either)
    if market is None:
        market = records.IntervalMarket()
        active = view.get(records.ACTIVE_KEY, records.Active) or records.Active(())
        view.put(
            records.ACTIVE_KEY, records.Active(tuple(sorted({*active.intervals, interval_start})))
        )
    market = msgspec.structs.replace(market, zones=tuple(sorted({*market.zones, zone})))
    view.put(records.interval_key(interval_start), market)
    return market


def interval_trades(view: Overlay, start: int, market: records.IntervalMarket) -> list[int]:
    keys = (records.interval_trade_key(start, n) for n in range(market.trade_count))
    refs = (view.get(key, records.TradeRef) for key in keys)
    return [ref.trade_id for ref in refs if ref is not None]


def interval_parties(
    view: Overlay, start: int, market: records.IntervalMarket
) -> list[tuple[bytes, str]]:
    keys = (records.interval_party_key(start, n) for n in range(market.party_count))
    found = (view.get(key, records.Party) for key in keys)
    return [(p.participant, p.zone) for p in found if p is not None]


def record_trade(
    view: Overlay,
    market: records.IntervalMarket,
    trade: records.Trade,
    new_parties: list[tuple[bytes, str]],
) -> records.IntervalMarket:
    """Append a trade, and the parties trading for the first time, to the interval's lists,
    and mark those parties' positions listed."""
    start = trade.interval_start
    for who, zone in new_parties:
        listed = msgspec.structs.replace(position(view, start, zone, who), listed=True)
        view.put(records.position_key(start, zone, who), listed)
    return list_trade(view, market, trade, new_parties)


def list_trade(
    view: Overlay,
    market: records.IntervalMarket,
    trade: records.Trade,
    new_parties: list[tuple[bytes, str]],
) -> records.IntervalMarket:
    """`record_trade` for a caller that writes the new parties' positions itself, listed,
    with the trade's quantities (each position then read and written once)."""
    start = trade.interval_start
    view.put(records.interval_trade_key(start, market.trade_count), records.TradeRef(trade.id))
    for n, (who, zone) in enumerate(new_parties, market.party_count):
        view.put(records.interval_party_key(start, n), records.Party(who, zone))
    return msgspec.structs.replace(
        market,
        trade_count=market.trade_count + 1,
        party_count=market.party_count + len(new_parties),
    )


def store_after_fills(view: Overlay, order: Order) -> list[Event]:
    """Store an order its fills changed; one with nothing left is closed as filled."""
    if order.remaining_wh == 0:
        return [close_order(view, order, OrderStatus.FILLED, "filled")]
    put_order(view, order)
    return []


def move_escrow(
    view: Overlay,
    source: bytes,
    target: bytes,
    asset: Asset,
    amount: int,
    why: str,
    ref: dict[str, EventValue],
) -> list[Event]:
    """Move value into or out of the market escrow with the `escrow` event that accounts for
    it (`for` says why, `ref` names the order, curve or trade), carrying both balances after
    it as every value event does, so an audit export reconciles every account row by row."""
    if amount <= 0:
        return []
    moved = accounts.move(view, source, target, asset, amount)
    attrs: dict[str, EventValue] = {
        "from": source, "to": target, "asset": asset.name, "amount": amount, "for": why,
        **ref, **moved,
    }  # fmt: skip
    return [Event("escrow", attrs)]


_CLOSED_EVENTS: Final = {
    OrderStatus.FILLED: "order_filled",
    OrderStatus.CANCELLED: "order_cancelled",
    OrderStatus.EXPIRED: "order_expired",
    OrderStatus.KILLED: "order_killed",
}


def close_order(
    view: Overlay, order: Order, status: OrderStatus, reason: str, rested: bool = True
) -> Event:
    """Take an open order off the book (the engine follows the record when it commits):
    release its buyer escrow or its seller offer. The refund's balances ride on the closing
    event (`refund_satang` from the escrow to the owner). `rested=False`: an order closed
    as it is placed (filled at once, or killed), never in its owner's open orders, which
    are then not read."""
    moved: dict[str, EventValue] = {}
    if order.side is Side.BUY and order.escrow_satang:
        moved = accounts.move(
            view, accounts.ESCROW_ADDRESS, order.owner, Asset.THB, order.escrow_satang
        )
    if order.side is Side.SELL and order.remaining_wh:
        update_position(
            view, order.interval_start, order.zone, order.owner, offered_wh=-order.remaining_wh
        )
    ids = open_orders(view, order.owner) if rested else ()
    if order.id in ids:
        at = ids.index(order.id)
        set_open_orders(view, order.owner, ids[:at] + ids[at + 1 :])
    put_order(view, msgspec.structs.replace(order, status=status, escrow_satang=0))
    return Event(
        _CLOSED_EVENTS[status],
        {
            "order": order.id,
            "owner": order.owner,
            "unfilled_wh": order.remaining_wh,
            "refund_satang": order.escrow_satang if order.side is Side.BUY else 0,
            "reason": reason,
            **moved,
        },
    )
