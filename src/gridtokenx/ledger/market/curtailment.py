"""Curtailment: when EGAT cuts an interconnector below what the market already traded.

Only intervals whose delivery has not started are curtailed (start after the block's time):
their trades have no readings, no locked export and no settlement yet, so a trade can shrink
cleanly. While some directed link carries more net flow than its capacity allows, the newest
trade across it (highest trade id) gives back what is needed, down to nothing: its buyer gets
the escrow the lost energy no longer needs, its seller's sold energy is released (free to
be offered again), and the links and the buyer zone's import total are given back. Repeat
until every link fits: shrinking a trade can also remove counter-flow another link relied on,
and the loop catches that too. Every step lowers the traded total, so it ends.
"""

from __future__ import annotations

import msgspec

from gridtokenx.ledger import accounts, registry
from gridtokenx.ledger.context import BlockContext, Event, EventValue
from gridtokenx.ledger.market import bookkeeping, paths, records
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import Overlay
from gridtokenx.wire.tx import Asset


def curtail(view: Overlay, ctx: BlockContext, params: Params) -> list[Event]:
    active = view.get(records.ACTIVE_KEY, records.Active)
    events: list[Event] = []
    for start in () if active is None else active.intervals:
        market = bookkeeping.interval_market(view, start)
        if market is None or market.status is records.IntervalStatus.SETTLED:
            continue
        if start <= ctx.time:
            continue  # delivery has started: the energy is on its way
        while (over := _overloaded(view, start, params)) is not None:
            (a, b), excess = over
            trade = _newest_across(view, start, market, (a, b))
            assert trade is not None, f"flow {a}>{b} in {start} has no trade behind it"
            events.append(_shrink(view, trade, min(excess, trade.quantity_wh), (a, b), params))
    return events


def _overloaded(view: Overlay, start: int, params: Params) -> tuple[tuple[str, str], int] | None:
    """The first directed link (in sorted order) whose net flow exceeds its capacity."""
    for pair in registry.zone_index(view).links:
        for a, b in (pair, pair[::-1]):
            room = paths.link_room_wh(view, start, a, b, params.interval_seconds)
            if room < 0:
                return (a, b), -room
    return None


def _newest_across(
    view: Overlay, start: int, market: records.IntervalMarket, hop: tuple[str, str]
) -> records.Trade | None:
    for trade_id in reversed(bookkeeping.interval_trades(view, start, market)):
        trade = view.get(records.trade_key(trade_id), records.Trade)
        assert trade is not None
        if trade.quantity_wh and hop in zip(trade.path, trade.path[1:], strict=False):
            return trade
    return None


def _shrink(
    view: Overlay, trade: records.Trade, cut: int, hop: tuple[str, str], params: Params
) -> Event:
    left = trade.quantity_wh - cut
    escrow = bookkeeping.buyer_cost_satang(left, trade.price, params)
    refund = trade.escrow_satang - escrow
    moved: dict[str, EventValue] = {}
    if refund > 0:  # the refund's balances ride on the event (escrow to buyer)
        moved = accounts.move(view, accounts.ESCROW_ADDRESS, trade.buyer, Asset.THB, refund)
    else:  # the fee or wheeling rate changed since the trade: keep what was escrowed
        escrow, refund = trade.escrow_satang, 0
    view.put(
        records.trade_key(trade.id),
        msgspec.structs.replace(trade, quantity_wh=left, escrow_satang=escrow),
    )
    start = trade.interval_start
    bookkeeping.update_position(view, start, trade.seller_zone, trade.seller, sold_wh=-cut)
    bookkeeping.update_position(view, start, trade.buyer_zone, trade.buyer, bought_wh=-cut)
    paths.reserve(view, paths.Path(trade.path, trade.loss_bp), start, -cut)
    return Event(
        "trade_curtailed",
        {
            "trade": trade.id,
            "interval": start,
            "buyer": trade.buyer,
            "seller": trade.seller,
            "link": f"{hop[0]}>{hop[1]}",
            "curtailed_wh": cut,
            "remaining_wh": left,
            "refund_satang": refund,
            **moved,
        },
    )
