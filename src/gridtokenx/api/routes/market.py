"""Orders, book depth, trades, settlement reports, interval prices and grid status.

Books come from the matching engine's in-memory index (the committed open orders), so
depth is read without scanning state; trades are found through their interval's list or,
for the most recent ones, by walking the shared order/trade sequence downwards."""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from fastapi import APIRouter, Path, Query

from gridtokenx.api import views
from gridtokenx.api.errors import invalid, not_found
from gridtokenx.api.models import ERRORS, MAX_LIMIT, Page
from gridtokenx.api.routes.common import Limit
from gridtokenx.ledger import chain_info, registry
from gridtokenx.ledger.grid import records as grid
from gridtokenx.ledger.market import bookkeeping, orderbook, paths, records, tariff
from gridtokenx.ledger.state import State
from gridtokenx.node.runtime import Node
from gridtokenx.wire import tx

U64 = Annotated[int, Path(ge=0, le=2**63 - 1)]
ZonePath = Annotated[str, Path(pattern=r"^[A-Z]{2,8}$", description="zone code, e.g. BKK")]
ZoneQuery = Annotated[str | None, Query(pattern=r"^[A-Z]{2,8}$")]
IntervalQuery = Annotated[int | None, Query(ge=0, le=2**63 - 1)]
TRADE_PROBES: Final = 20_000  # ids looked at per request when walking back for recent trades
MAX_PRICE_INTERVALS: Final = 192  # two days of 15-minute intervals per price request


def book_depth(state: State, zone: str, interval: int, levels: int = 50) -> dict[str, Any]:
    """Aggregated price levels, best first: price (satang/kWh), quantity (Wh), orders."""
    books = orderbook.books(state)
    out: dict[str, Any] = {"zone": zone, "interval": interval}
    for name, side in (("bids", tx.Side.BUY), ("asks", tx.Side.SELL)):
        found = books.side(interval, zone, side)
        rows: list[dict[str, int]] = []
        if found is not None:
            prices = reversed(found.prices) if side is tx.Side.BUY else iter(found.prices)
            for price in prices:
                if len(rows) == levels:
                    break
                level = found.levels[price]
                quantity = sum(r.remaining for r in level)
                rows.append({"price": price, "quantity_wh": quantity, "orders": len(level)})
        out[name] = rows
    return out


def trade_view(trade: records.Trade) -> dict[str, Any]:
    return views.record(trade)


def known_zone(state: State, zone: str) -> None:
    if state.get(registry.zone_key(zone), registry.Zone) is None:
        raise not_found(f"zone {zone}")


def _aligned(state: State, interval: int) -> None:
    length = chain_info.params(state).interval_seconds
    if interval % length:
        raise invalid(f"interval must be a multiple of {length} s (an interval start)")


def interval_window(state: State, start: int, end: int) -> range:
    """The interval starts in [start, end), refused unless `start` is an interval start
    and the window holds 1 to MAX_PRICE_INTERVALS intervals (a bounded read)."""
    length = chain_info.params(state).interval_seconds
    _aligned(state, start)
    if end <= start or (end - start) // length > MAX_PRICE_INTERVALS:
        raise invalid(f"`to` must be after `from`, at most {MAX_PRICE_INTERVALS} intervals")
    return range(start, end, length)


def interval_trades(state: State, interval: int) -> list[records.Trade]:
    """One interval's trades in the order they were made."""
    view = state.overlay()
    market = bookkeeping.interval_market(view, interval)
    ids = bookkeeping.interval_trades(view, interval, market) if market is not None else []
    found = (state.get(records.trade_key(i), records.Trade) for i in ids)
    return [t for t in found if t is not None]


def link_flows(state: State, interval: int) -> list[dict[str, Any]]:
    """Each interconnector's use in one interval. Counter-flows relieve each other (as
    matching counts them, `paths.link_room_wh`), so the room left each way is capacity
    minus the net flow that way, and utilisation is the net flow over capacity."""
    view = state.overlay()
    length = chain_info.params(state).interval_seconds
    rows = []
    for a, b in registry.zone_index(view).links:
        capacity = paths.link_capacity_wh(view, a, b, length)
        a_to_b = paths.used_wh(view, interval, a, b)
        b_to_a = paths.used_wh(view, interval, b, a)
        room = (
            paths.link_room_wh(view, interval, a, b, length),
            paths.link_room_wh(view, interval, b, a, length),
        )
        rows.append(
            {
                "zone_a": a,
                "zone_b": b,
                "capacity_wh": capacity,
                "a_to_b_wh": a_to_b,
                "b_to_a_wh": b_to_a,
                "net_wh": a_to_b - b_to_a,
                "room_a_to_b_wh": room[0],
                "room_b_to_a_wh": room[1],
                "utilisation_bp": abs(a_to_b - b_to_a) * 10_000 // capacity if capacity else 0,
                "congested": min(room) <= 0,
            }
        )
    return rows


def router(node: Node) -> APIRouter:
    api = APIRouter(tags=["market"], responses=ERRORS)

    def state() -> State:
        return node.app.state

    def order_of(order_id: int) -> records.Order | None:
        return state().get(records.order_key(order_id), records.Order)

    @api.get("/orders/{order_id}")
    async def order(order_id: U64) -> dict[str, Any]:
        found = order_of(order_id)
        if found is None:
            raise not_found(f"order {order_id}")
        return views.record(found)

    @api.get("/orders", response_model=Page)
    async def orders(
        account: Annotated[str | None, Query(min_length=3, max_length=64)] = None,
        zone: ZoneQuery = None,
        interval: IntervalQuery = None,
        limit: Limit = 100,
        after: Annotated[str | None, Query(pattern=r"^[0-9]{1,19}$")] = None,
    ) -> dict[str, Any]:
        """Open orders of one `account`, or of one book (`zone` and `interval`, bids best
        first then asks best first). `after` is an order id from `next`."""
        if account is not None:
            ids = list(bookkeeping.open_orders(state().overlay(), views.address(account)))
        elif zone is not None and interval is not None:
            books = orderbook.books(state())
            ids = []
            for side in (tx.Side.BUY, tx.Side.SELL):
                found = books.side(interval, zone, side)
                ids += [r.id for r in found.best_first()] if found is not None else []
        else:
            raise invalid("give `account`, or both `zone` and `interval`")
        if after is not None:
            cut = int(after)
            ids = ids[ids.index(cut) + 1 :] if cut in ids else [i for i in ids if i > cut]
        chosen = [o for o in (order_of(i) for i in ids[: limit + 1]) if o is not None]
        items = [views.record(o) for o in chosen[:limit]]
        more = len(chosen) > limit
        return {"items": items, "next": str(chosen[limit - 1].id) if more else None}

    @api.get("/book/{zone}/{interval}")
    async def depth(
        zone: ZonePath, interval: U64, levels: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50
    ) -> dict[str, Any]:
        """Price levels of one zone's book for one delivery interval."""
        known_zone(state(), zone)
        return book_depth(state(), zone, interval, levels)

    @api.get("/trades/{trade_id}")
    async def trade(trade_id: U64) -> dict[str, Any]:
        found = state().get(records.trade_key(trade_id), records.Trade)
        if found is None:
            raise not_found(f"trade {trade_id}")
        return trade_view(found)

    @api.get("/trades", response_model=Page)
    async def trades(
        interval: IntervalQuery = None,
        zone: ZoneQuery = None,
        limit: Limit = 100,
        after: Annotated[str | None, Query(pattern=r"^[0-9]{1,19}$")] = None,
    ) -> dict[str, Any]:
        """An interval's trades in order (`interval`), or the most recent trades, newest
        first; `zone` keeps trades whose buyer or seller is in it; `after` is a trade id."""
        view = state().overlay()
        if interval is not None:
            market = bookkeeping.interval_market(view, interval)
            ids = bookkeeping.interval_trades(view, interval, market) if market is not None else []
            if after is not None:
                ids = [i for i in ids if i > int(after)]
        else:
            counter = state().get(records.SEQUENCE_KEY, records.Counter)
            top = counter.value if counter is not None else 0
            if after is not None:
                top = min(top, int(after) - 1)
            ids = list(range(top, max(top - TRADE_PROBES, 0), -1))
        items: list[dict[str, Any]] = []
        last = None
        for trade_id in ids:
            found = state().get(records.trade_key(trade_id), records.Trade)
            if found is None or (zone and zone not in (found.buyer_zone, found.seller_zone)):
                continue
            if len(items) == limit:
                return {"items": items, "next": str(last)}
            items.append(trade_view(found))
            last = trade_id
        return {"items": items, "next": None}

    @api.get("/settlements/{interval}")
    async def settlement_results(interval: U64) -> dict[str, Any]:
        """An interval's market status and, once settled, each zone's report (energy and
        money conservation: export, delivered, losses, bills, buy-back)."""
        _aligned(state(), interval)
        market = bookkeeping.interval_market(state().overlay(), interval)
        if market is None:
            raise not_found(f"market for interval {interval}")
        zones = registry.zone_index(state().overlay()).zones
        reports = {
            zone: views.plain(found)
            for zone in zones
            if (found := state().get(records.report_key(interval, zone), records.ZoneReport))
        }
        return {"interval": interval, **views.plain(market), "reports": reports}

    @api.get("/prices/{zone}")
    async def prices(
        zone: ZonePath,
        start: Annotated[int, Query(ge=0, le=2**62, alias="from")],
        end: Annotated[int, Query(ge=0, le=2**62, alias="to")],
    ) -> dict[str, Any]:
        """Per interval in [from, to): trades delivered into the zone (volume, count,
        volume-weighted average, low and high price in satang/kWh sent, rounded down),
        next to the TOU tariff and the buy-back rate (milli-satang/kWh) for comparison."""
        known_zone(state(), zone)
        params = chain_info.params(state())
        rows = []
        for interval in interval_window(state(), start, end):
            mine = [t for t in interval_trades(state(), interval) if t.buyer_zone == zone]
            volume = sum(t.quantity_wh for t in mine)
            value = sum(t.quantity_wh * t.price for t in mine)
            rows.append(
                {
                    "interval": interval,
                    "trades": len(mine),
                    "volume_wh": volume,
                    "vwap": value // volume if volume else None,
                    "low": min((t.price for t in mine), default=None),
                    "high": max((t.price for t in mine), default=None),
                    "tariff_msat_per_kwh": tariff.tariff_msat_per_kwh(interval, params),
                    "buyback_msat_per_kwh": params.tariffs.buyback_msat_per_kwh,
                }
            )
        return {"zone": zone, "intervals": rows}

    @api.get("/grid")
    async def grid_view() -> dict[str, Any]:
        """Zones (with any halt in force) and the interconnectors between them; with the
        grid status authorities reported (null before the first report): EGAT's latest
        frequency, each link's measured state (`capacity_kw` there is what the market uses
        instead of the genesis `capacity_kw`), each zone's generation and demand, and its
        distributor's load and headroom (kW)."""
        view = state().overlay()
        index = registry.zone_index(view)

        def plain(record: msgspec.Struct | None) -> dict[str, Any] | None:
            return None if record is None else views.plain(record)

        zones = []
        for code in index.zones:
            zone = state().get(registry.zone_key(code), registry.Zone)
            halt = state().get(records.halt_key(code), records.ZoneHalt)
            zones.append(
                {
                    **(views.plain(zone) if zone is not None else {"code": code}),
                    "halted": halt is not None,
                    "halt": plain(halt),
                    "balance": plain(view.get(grid.zone_balance_key(code), grid.ZoneBalanceState)),
                    "distribution": plain(
                        view.get(grid.distribution_key(code), grid.DistributionState)
                    ),
                }
            )
        links = [
            {
                **views.plain(found),
                "measured": plain(view.get(grid.link_state_key(a, b), grid.LinkState)),
            }
            for a, b in index.links
            if (found := state().get(registry.interconnector_key(a, b), registry.Interconnector))
        ]
        return {
            "zones": zones,
            "interconnectors": links,
            "frequency": plain(grid.transmission(view)),
        }

    @api.get("/flows/{interval}")
    async def flows(interval: U64) -> dict[str, Any]:
        """Energy traded across each interconnector in one interval, each way and net
        (`net_wh` > 0 flows from `zone_a` to `zone_b`), against what the link carries in
        an interval; a link with no room left either way is `congested`."""
        _aligned(state(), interval)
        return {"interval": interval, "interconnectors": link_flows(state(), interval)}

    return api
