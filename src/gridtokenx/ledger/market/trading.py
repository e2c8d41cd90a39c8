"""Orders and continuous matching for one delivery interval, per zone and across zones.

An incoming order is matched at once against the resting orders of every zone it can reach
(its own zone, and other zones while the interconnector path has room), best price first and
then earliest; the trade price is the resting order's. Across a path with loss l, a seller's
price p costs the buyer p / (1 - l) per kWh received, and that grossed-up price is what must
be within the buyer's limit: so when a link is full or lossy, zone prices separate.

Matching first plans its fills without writing, then executes the plan, so fill-or-kill can
be decided before anything changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import msgspec

from gridtokenx.ledger import accounts, registry
from gridtokenx.ledger.context import BlockContext, Event, EventValue
from gridtokenx.ledger.grid import records as grid
from gridtokenx.ledger.market import bookkeeping, orderbook, paths, records
from gridtokenx.ledger.market.records import Order, OrderStatus
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import Overlay
from gridtokenx.wire import errors
from gridtokenx.wire.tx import (
    AmendOrder,
    Asset,
    CancelOrder,
    OrderKind,
    PlaceOrder,
    Side,
    TimeInForce,
)


def gate_closure(interval_start: int, params: Params) -> int:
    return interval_start - params.gate_closure_seconds


def _check_window(ctx: BlockContext, interval_start: int, params: Params) -> None:
    if interval_start % params.interval_seconds:
        raise errors.MisalignedInterval(
            f"interval start must be a multiple of {params.interval_seconds} s"
        )
    if ctx.time >= gate_closure(interval_start, params):
        raise errors.GateClosed(
            f"gate closed {params.gate_closure_seconds} s before the interval starts"
        )
    if interval_start - ctx.time > params.trading_horizon_seconds:
        raise errors.TradingNotOpen(
            f"trading opens {params.trading_horizon_seconds} s before the interval starts"
        )


def check_price_and_quantity(quantity_wh: int, price: int, params: Params) -> None:
    if not params.price_min_satang_per_kwh <= price <= params.price_max_satang_per_kwh:
        raise errors.PriceOutOfBand(
            f"price must be within {params.price_min_satang_per_kwh}-"
            f"{params.price_max_satang_per_kwh} satang/kWh"
        )
    if price % params.tick_satang_per_kwh:
        raise errors.PriceNotOnTick(f"price must be a multiple of {params.tick_satang_per_kwh}")
    if quantity_wh < params.min_lot_wh:
        raise errors.QuantityBelowLot(f"quantity must be at least {params.min_lot_wh} Wh")


def _check_not_halted(view: Overlay, zone: str) -> None:
    halt = view.get(records.halt_key(zone), records.ZoneHalt)
    if halt is not None:
        raise errors.ZoneHalted(f"zone {zone} is halted by {halt.halted_by}: {halt.reason}")


def seller_capacity(
    view: Overlay, seller: bytes, zone: str, interval_seconds: int
) -> tuple[int, bool]:
    """Most the seller's producing meters in the zone can export in one interval, and whether
    all of them are renewable."""
    index = view.get(registry.owner_meters_key(seller), registry.OwnerMeters)
    capacity, renewable = 0, True
    for address in () if index is None else index.meters:
        meter = view.get(registry.meter_key(address), registry.Meter)
        if meter is None or meter.zone != zone or not meter.kind.produces:
            continue
        capacity += meter.rated_capacity_w * interval_seconds // 3600
        renewable = renewable and meter.kind.renewable
    return capacity, renewable and capacity > 0


def _check_sell_room(view: Overlay, order: Order, extra_wh: int, capacity: int) -> records.Position:
    """`capacity`: what the seller's meters can export (`seller_capacity`). Returns the
    seller's position as it read it, for the caller that then counts `extra_wh` in it."""
    pos = bookkeeping.position(view, order.interval_start, order.zone, order.owner)
    if pos.offered_wh + pos.sold_wh + extra_wh > capacity:
        raise errors.SellCapacityExceeded(
            f"offers of {pos.offered_wh + pos.sold_wh + extra_wh} Wh exceed the {capacity} Wh "
            f"the seller's meters in {order.zone} can export in the interval"
        )
    return pos


# --- matching ----------------------------------------------------------------------------
class Fill(NamedTuple):  # a tuple: one or more per matched order, built cheaply
    resting_id: int  # its record is read when the fill executes: escrow may have moved
    quantity_wh: int
    price: int  # satang per kWh sent
    path: paths.Path


@dataclass
class Plan:
    fills: list[Fill]
    self_trades: list[Order]  # the incoming order's owner's own resting orders it would cross
    market: records.IntervalMarket | None  # the interval's record as the plan read it

    @property
    def filled_wh(self) -> int:
        return sum(f.quantity_wh for f in self.fills)


def _plan(
    view: Overlay,
    incoming: Order,
    params: Params,
    market: records.IntervalMarket | None,
    before: int | None = None,
) -> Plan:
    """Gather the books the order can reach (not halted, connected, with their path loss and
    link room) and let the engine decide the fills, writing nothing. `market` is the
    interval's record as it stands (the caller has it at hand: `ensure_interval` returns
    it). Every caller has checked that the order's own zone is not halted (placing,
    amending, re-matching), so only the other zones' halts are read here. A book whose
    best order does not meet the order's limit even without a loss is left out before any
    path is searched for it (`orderbook.meets`): most orders rest, and most books do not
    cross."""
    buying = incoming.side is Side.BUY
    opposite = Side.SELL if buying else Side.BUY
    books = orderbook.books(view.base).zones(incoming.interval_start, opposite)
    reachable: list[orderbook.Reachable] = []
    routes: dict[str, paths.Path] = {}
    link_room: dict[tuple[str, str], int] = {}
    links: tuple[paths.Search, paths.Rooms] | None = None  # at the first other zone
    headrooms: dict[str, int | None] = {}  # by importing zone: a buy's is always its own

    for zone in () if market is None else market.zones:
        side = books.get(zone)
        if side is None or not orderbook.meets(side, 0, buying, incoming.price):
            continue
        if zone == incoming.zone:  # not halted: every caller has just checked
            routes[zone] = paths.local(zone)
            # Made here, not kept on the book: a book holding its own Reachable was a
            # reference cycle, left for the garbage collector whenever a book emptied.
            reachable.append(orderbook.Reachable(zone, side, 0, ()))
            continue
        if view.get(records.halt_key(zone), records.ZoneHalt) is not None:
            continue
        if links is None:
            links = paths.plan_grid(view, incoming.interval_start, params.interval_seconds)
        search, rooms = links
        route = search(zone, incoming.zone) if buying else search(incoming.zone, zone)
        if route is None:
            continue
        routes[zone] = route
        hops = route.hops
        for hop in hops:
            link_room.setdefault(hop, rooms[hop])
        importer = route.zones[-1]
        if importer not in headrooms:
            headrooms[importer] = grid.import_room_wh(
                view, incoming.interval_start, importer, params.interval_seconds
            )
        headroom = headrooms[importer]
        if headroom is not None:  # the buyer zone's headroom, rationed like one more link
            hops = (*hops, (grid.IMPORT_HOP, importer))
            link_room.setdefault(hops[-1], headroom)
        reachable.append(orderbook.Reachable(zone, side, route.loss_bp, hops))
    decision = orderbook.match(
        orderbook.Incoming(
            incoming.side,
            incoming.price,
            incoming.owner,
            incoming.remaining_wh,
            incoming.renewable_only,
            incoming.renewable,
        ),
        reachable,
        link_room,
        before,
    )
    return Plan(
        [Fill(r.id, quantity, price, routes[zone]) for r, quantity, price, zone in decision.fills],
        [bookkeeping.get_order(view, r.id) for r in decision.self_trades],
        market,
    )


def _execute(
    view: Overlay, ctx: BlockContext, incoming: Order, plan: Plan, params: Params
) -> tuple[Order, list[Event]]:
    """Carry out a plan: the owner's own crossed orders are cancelled, then each fill becomes
    a trade. Both orders are carried forward fill by fill, as each fill changes them; the
    interval's record, which only fills change, is written once at the end."""
    events = [
        bookkeeping.close_order(view, own, OrderStatus.CANCELLED, "self_trade")
        for own in plan.self_trades
    ]
    if not plan.fills:
        return incoming, events
    market = plan.market
    assert market is not None  # a fill is in a book of the interval
    for fill in plan.fills:
        resting = bookkeeping.get_order(view, fill.resting_id)
        buy, sell = (incoming, resting) if incoming.side is Side.BUY else (resting, incoming)
        trade = _store_trade(view, ctx, buy, sell, fill, _fill_cost_satang(buy, fill, params))
        market = _record_trade(view, market, trade, buy, sell, fill.path)
        buy, refund = _buyer_after_fill(view, buy, trade, params)
        sell = msgspec.structs.replace(sell, remaining_wh=sell.remaining_wh - trade.quantity_wh)
        events += [trade_event(trade), *refund]
        resting = buy if incoming.side is Side.SELL else sell
        incoming = sell if incoming.side is Side.SELL else buy
        events += bookkeeping.store_after_fills(view, resting)
    view.put(records.interval_key(incoming.interval_start), market)
    return incoming, events


def _fill_cost_satang(buy: Order, fill: Fill, params: Params) -> int:
    """The escrow was sized at placement; a fee or wheeling rate governance raised since may
    price the fill and the rest above it. They share what is held: the fill takes its cost
    but leaves the rest's value at the limit (so every seller is paid in full), and
    settlement caps the charges at what the trade's escrow holds."""
    rest_wh = buy.remaining_wh - fill.quantity_wh
    return min(
        bookkeeping.buyer_cost_satang(fill.quantity_wh, fill.price, params),
        buy.escrow_satang - bookkeeping.value_satang(rest_wh, buy.price),
    )


def _store_trade(
    view: Overlay, ctx: BlockContext, buy: Order, sell: Order, fill: Fill, cost_satang: int
) -> records.Trade:
    trade = records.Trade(
        id=bookkeeping.next_id(view),
        interval_start=buy.interval_start,
        buy_order=buy.id,
        sell_order=sell.id,
        buyer=buy.owner,
        seller=sell.owner,
        buyer_zone=buy.zone,
        seller_zone=sell.zone,
        quantity_wh=fill.quantity_wh,
        price=fill.price,
        loss_bp=fill.path.loss_bp,
        path=fill.path.zones,
        escrow_satang=cost_satang,
        height=ctx.height,
        time=ctx.time,
    )
    view.put(records.trade_key(trade.id), trade)
    return trade


def _record_trade(
    view: Overlay,
    market: records.IntervalMarket,
    trade: records.Trade,
    buy: Order,
    sell: Order,
    path: paths.Path,
) -> records.IntervalMarket:
    """List the trade (and any party trading for the first time) in its interval, reserve
    its path's link room, and move the quantity from the seller's offer to sold and bought.
    Each party's position is read and written once (the two are never the same record:
    an owner's orders never fill each other)."""
    start, q = trade.interval_start, trade.quantity_wh
    buyer_key = records.position_key(start, buy.zone, buy.owner)
    seller_key = records.position_key(start, sell.zone, sell.owner)
    assert buyer_key != seller_key
    buyer = view.get(buyer_key, records.Position) or records.Position()
    seller = view.get(seller_key, records.Position) or records.Position()
    first_trades = [
        (order.owner, order.zone) for order, pos in ((buy, buyer), (sell, seller)) if not pos.listed
    ]
    market = bookkeeping.list_trade(view, market, trade, first_trades)
    if len(path.zones) > 1:
        paths.reserve(view, path, start, q)
    seller = msgspec.structs.replace(
        seller, offered_wh=seller.offered_wh - q, sold_wh=seller.sold_wh + q, listed=True
    )
    view.put(seller_key, seller)
    view.put(buyer_key, msgspec.structs.replace(buyer, bought_wh=buyer.bought_wh + q, listed=True))
    return market


def _buyer_after_fill(
    view: Overlay, buy: Order, trade: records.Trade, params: Params
) -> tuple[Order, list[Event]]:
    """Keep in escrow exactly what the rest of the order can cost; a fill below the limit
    frees the difference at once (an `escrow` event `fill_below_limit`, with the order's
    escrow left after it as its running total)."""
    rest_wh = buy.remaining_wh - trade.quantity_wh
    kept = buy.escrow_satang - trade.escrow_satang
    keep = min(bookkeeping.buyer_cost_satang(rest_wh, buy.price, params), kept)
    ref: dict[str, EventValue] = {"order": buy.id, "trade": trade.id, "escrow_satang": keep}
    refund = bookkeeping.move_escrow(
        view, accounts.ESCROW_ADDRESS, buy.owner, Asset.THB, kept - keep, "fill_below_limit", ref
    )
    return msgspec.structs.replace(buy, remaining_wh=rest_wh, escrow_satang=keep), refund


def trade_event(trade: records.Trade) -> Event:
    return Event(
        "trade",
        {
            "trade": trade.id,
            "interval": trade.interval_start,
            "buy_order": trade.buy_order,
            "sell_order": trade.sell_order,
            "buyer": trade.buyer,
            "seller": trade.seller,
            "buyer_zone": trade.buyer_zone,
            "seller_zone": trade.seller_zone,
            "quantity_wh": trade.quantity_wh,
            "price": trade.price,
            "loss_bp": trade.loss_bp,
        },
    )


# --- transaction handlers ------------------------------------------------------------------
def place_order(
    view: Overlay, ctx: BlockContext, sender: bytes, body: PlaceOrder, params: Params
) -> list[Event]:
    """Check, set aside what backs the order, match it at once, then rest or close what is
    left by its time in force."""
    open_ids = _check_may_place(view, ctx, sender, body, params)
    capacity, renewable = 0, False  # what a seller's meters can export, and if all renewably
    if body.side is Side.SELL:
        capacity, renewable = seller_capacity(view, sender, body.zone, params.interval_seconds)
    order = _new_order(view, ctx, sender, body, renewable)
    order, balances = _back_order(view, order, capacity, params)
    market = bookkeeping.ensure_interval(view, body.interval_start, body.zone)
    events = [_accepted_event(order, balances)]
    plan = _plan(view, order, params, market)
    if body.tif is TimeInForce.FILL_OR_KILL and plan.filled_wh < order.remaining_wh:
        events.append(
            bookkeeping.close_order(view, order, OrderStatus.KILLED, "fill_or_kill", rested=False)
        )
        return events
    order, fill_events = _execute(view, ctx, order, plan, params)
    if plan.self_trades:  # the owner's own orders it crossed are cancelled: read the rest
        open_ids = bookkeeping.open_orders(view, sender)
    return events + fill_events + _rest_or_close(view, order, body.tif, open_ids)


def _check_may_place(
    view: Overlay, ctx: BlockContext, sender: bytes, body: PlaceOrder, params: Params
) -> tuple[int, ...]:
    """Raise unless `sender` may place the order; return the ids of its open orders, as
    counted against the limit (only the cancellation of its own crossed orders changes
    them before the order rests: fills close other owners' orders)."""
    if view.get(registry.participant_key(sender), registry.Participant) is None:
        raise errors.NotAParticipant("only registered participants place orders")
    registry.require_zone(view, body.zone)
    _check_window(ctx, body.interval_start, params)
    check_price_and_quantity(body.quantity_wh, body.price, params)
    if body.kind is OrderKind.MARKET and body.tif is TimeInForce.GOOD_TILL_GATE:
        raise errors.InvalidOrder("a market order cannot rest: use IOC or FOK")
    if body.side is Side.SELL and body.renewable_only:
        raise errors.InvalidOrder("renewable-only applies to buy orders")
    _check_not_halted(view, body.zone)
    open_ids = bookkeeping.open_orders(view, sender)
    if len(open_ids) >= params.max_open_orders_per_account:
        raise errors.TooManyOpenOrders(
            f"at most {params.max_open_orders_per_account} open orders per account"
        )
    if body.side is Side.SELL:
        registry.require_may_sell(view, sender, ctx.time, params.small_prosumer_threshold_w)
    return open_ids


def _new_order(
    view: Overlay, ctx: BlockContext, sender: bytes, body: PlaceOrder, renewable: bool
) -> Order:
    """The order as placed, nothing filled or held yet; a sell is `renewable` when all the
    seller's producing meters in the zone are (`seller_capacity`)."""
    order_id = bookkeeping.next_id(view)
    return Order(
        id=order_id,
        owner=sender,
        side=body.side,
        zone=body.zone,
        interval_start=body.interval_start,
        quantity_wh=body.quantity_wh,
        remaining_wh=body.quantity_wh,
        price=body.price,
        kind=body.kind,
        tif=body.tif,
        renewable_only=body.renewable_only,
        renewable=renewable,
        priority=order_id,
        escrow_satang=0,
        status=OrderStatus.OPEN,
        placed_at=ctx.time,
    )


def _back_order(
    view: Overlay, order: Order, capacity: int, params: Params
) -> tuple[Order, dict[str, EventValue]]:
    """Set aside what the order promises: a sell counts against `capacity`, what the
    seller's meters can export, a buy moves what it can cost at its limit into escrow.
    Returns the order and, for a buy, both balances after its escrow moved."""
    if order.side is Side.SELL:
        pos = _check_sell_room(view, order, order.quantity_wh, capacity)
        bookkeeping.update_position(
            view, order.interval_start, order.zone, order.owner, pos, offered_wh=order.quantity_wh
        )
        return order, {}
    escrow = bookkeeping.buyer_cost_satang(order.quantity_wh, order.price, params)
    moved = accounts.move(view, order.owner, accounts.ESCROW_ADDRESS, Asset.THB, escrow)
    return msgspec.structs.replace(order, escrow_satang=escrow), moved


def _accepted_event(order: Order, balances: dict[str, EventValue]) -> Event:
    """A buy's event carries the balances its escrow left (`escrow_satang` from the owner to
    the escrow) as `_back_order` moved it, before any fill."""
    moved = balances if order.escrow_satang else {}
    return Event(
        "order_accepted",
        {
            "order": order.id,
            "owner": order.owner,
            "side": order.side.name,
            "zone": order.zone,
            "interval": order.interval_start,
            "quantity_wh": order.quantity_wh,
            "price": order.price,
            "escrow_satang": order.escrow_satang,
            **moved,
        },
    )


def _rest_or_close(
    view: Overlay, order: Order, tif: TimeInForce, open_ids: tuple[int, ...]
) -> list[Event]:
    """After matching: filled, killed if it may not rest (neither ever among its owner's
    open orders), or resting until gate closure (added to `open_ids`, its owner's other
    open orders as they stand)."""
    if order.remaining_wh == 0:
        return [bookkeeping.close_order(view, order, OrderStatus.FILLED, "filled", rested=False)]
    if tif is not TimeInForce.GOOD_TILL_GATE:
        killed = OrderStatus.KILLED
        return [bookkeeping.close_order(view, order, killed, "immediate_or_cancel", rested=False)]
    bookkeeping.put_order(view, order)
    bookkeeping.set_open_orders(view, order.owner, (*open_ids, order.id))
    return []


def _own_open_order(view: Overlay, sender: bytes, order_id: int) -> Order:
    order = bookkeeping.get_order(view, order_id)
    if order.owner != sender:
        raise errors.NotOrderOwner("the order belongs to another account")
    if order.status is not OrderStatus.OPEN:
        raise errors.OrderNotOpen(f"order is {order.status.name.lower()}")
    return order


def cancel_order(
    view: Overlay, ctx: BlockContext, sender: bytes, body: CancelOrder, params: Params
) -> list[Event]:
    """Cancelling is allowed while halted and after gate closure: it only gives back."""
    order = _own_open_order(view, sender, body.order_id)
    return [bookkeeping.close_order(view, order, OrderStatus.CANCELLED, "cancelled")]


def amend_order(
    view: Overlay, ctx: BlockContext, sender: bytes, body: AmendOrder, params: Params
) -> list[Event]:
    order = _own_open_order(view, sender, body.order_id)
    _check_window(ctx, order.interval_start, params)
    _check_not_halted(view, order.zone)
    check_price_and_quantity(body.quantity_wh, body.price, params)
    filled = order.quantity_wh - order.remaining_wh
    if body.quantity_wh <= filled:
        raise errors.InvalidOrder(f"new quantity must exceed the {filled} Wh already filled")
    new_remaining = body.quantity_wh - filled
    keeps_priority = body.price == order.price and body.quantity_wh <= order.quantity_wh
    if order.side is Side.SELL:
        delta = new_remaining - order.remaining_wh
        if delta > 0:
            capacity, _ = seller_capacity(view, order.owner, order.zone, params.interval_seconds)
            _check_sell_room(view, order, delta, capacity)
        bookkeeping.update_position(
            view, order.interval_start, order.zone, sender, offered_wh=delta
        )
        escrow, moved = 0, []
    else:
        escrow = bookkeeping.buyer_cost_satang(new_remaining, body.price, params)
        moved = amend_escrow(view, sender, escrow - order.escrow_satang, {"order": order.id,
                             "escrow_satang": escrow})  # fmt: skip
    amended = msgspec.structs.replace(
        order,
        quantity_wh=body.quantity_wh,
        remaining_wh=new_remaining,
        price=body.price,
        escrow_satang=escrow,
        priority=order.priority if keeps_priority else bookkeeping.next_id(view),
    )
    events = [
        Event(
            "order_amended",
            {
                "order": order.id,
                "quantity_wh": body.quantity_wh,
                "price": body.price,
                "kept_priority": int(keeps_priority),
            },
        ),
        *moved,
    ]
    if keeps_priority:  # a smaller order at the same price cannot newly cross the book
        bookkeeping.put_order(view, amended)
        return events
    plan = _plan(view, amended, params, bookkeeping.interval_market(view, order.interval_start))
    amended, fill_events = _execute(view, ctx, amended, plan, params)
    return events + fill_events + bookkeeping.store_after_fills(view, amended)


def amend_escrow(
    view: Overlay, owner: bytes, difference: int, ref: dict[str, EventValue]
) -> list[Event]:
    """An amendment re-balances a buy's escrow by the difference, either way (an `escrow`
    event `amend`; `ref` names the order or curve and its escrow after)."""
    source, target = (owner, accounts.ESCROW_ADDRESS)
    if difference < 0:
        source, target = target, source
    return bookkeeping.move_escrow(view, source, target, Asset.THB, abs(difference), "amend", ref)


def rematch(view: Overlay, ctx: BlockContext, order: Order, params: Params) -> list[Event]:
    """Match a resting order against the older resting orders it can now reach.

    After a halt is lifted, orders in other zones that arrived during the halt may cross the
    resumed zone's book. Walking the open orders in time priority and letting each meet only
    older ones trades every such pair exactly as continuous matching would have, at the
    older order's price. The caller commits after each order so the engine sees the fills."""
    if view.get(records.halt_key(order.zone), records.ZoneHalt) is not None:
        return []  # halted again before the block ended
    market = bookkeeping.interval_market(view, order.interval_start)
    plan = _plan(view, order, params, market, before=order.priority)
    if not plan.fills and not plan.self_trades:
        return []
    order, events = _execute(view, ctx, order, plan, params)
    return events + bookkeeping.store_after_fills(view, order)
