"""Orders, book depth, trades, settlement reports, interval prices and grid status.

Everything is read through the market's and the grid's queries (`market.queries`,
`grid.queries`): books come from the matching engine's in-memory index (the committed open
orders), so depth is read without scanning state; trades are found through their
interval's list or, for the most recent ones, by walking the shared order/trade sequence
downwards."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Final

import msgspec
from fastapi import APIRouter, Path, Query

from gridtokenx.api import models, views
from gridtokenx.api.deps import NodeDep
from gridtokenx.api.errors import invalid, not_found
from gridtokenx.api.models import ERRORS, MAX_LIMIT
from gridtokenx.api.routes.common import AddressPath, AddressQuery, Limit, required
from gridtokenx.ledger import chain_info, registry
from gridtokenx.ledger.grid import queries as grid
from gridtokenx.ledger.market import queries, records, tariff
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import State
from gridtokenx.node.runtime import Node
from gridtokenx.reporting import extract
from gridtokenx.reporting.extract import ReportError

U64 = Annotated[int, Path(ge=0, le=2**63 - 1)]
ZonePath = Annotated[str, Path(pattern=r"^[A-Z]{2,8}$", description="zone code, e.g. BKK")]
ZoneQuery = Annotated[str | None, Query(pattern=r"^[A-Z]{2,8}$")]
IntervalQuery = Annotated[int | None, Query(ge=0, le=2**63 - 1)]
IdCursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,19}$")]
TRADE_PROBES: Final = 20_000  # ids looked at per request when walking back for recent trades
MAX_PRICE_INTERVALS: Final = 192  # two days of 15-minute intervals per price request

router = APIRouter(tags=["market"], responses=ERRORS)


def known_zone(state: State, zone: str) -> None:
    if registry.get_zone(state, zone) is None:
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


def link_flows(state: State, interval: int) -> list[dict[str, Any]]:
    """Each interconnector's use in one interval (`market.queries.link_flows`): capacity,
    each way, net, the room left each way, utilisation (net over capacity) and whether a
    way is full."""
    return [
        {
            "zone_a": f.zone_a,
            "zone_b": f.zone_b,
            "capacity_wh": f.capacity_wh,
            "a_to_b_wh": f.a_to_b_wh,
            "b_to_a_wh": f.b_to_a_wh,
            "net_wh": f.net_wh,
            "room_a_to_b_wh": f.room_a_to_b_wh,
            "room_b_to_a_wh": f.room_b_to_a_wh,
            "utilisation_bp": f.utilisation_bp,
            "congested": f.congested,
        }
        for f in queries.link_flows(state, interval)
    ]


def _plain(record: msgspec.Struct | None) -> dict[str, Any] | None:
    return None if record is None else views.plain(record)


def _zone_view(state: State, code: str) -> dict[str, Any]:
    """A zone with any halt in force and its authorities' latest grid reports."""
    zone = registry.get_zone(state, code)
    halt = queries.halt(state, code)
    return {
        **(views.plain(zone) if zone is not None else {"code": code}),
        "halted": halt is not None,
        "halt": _plain(halt),
        "balance": _plain(grid.zone_balance(state, code)),
        "distribution": _plain(grid.distribution(state, code)),
    }


def _trade_page(state: State, ids: Iterable[int], zone: str | None, limit: int) -> dict[str, Any]:
    """The first `limit` trades of `ids` (in the buyer's or seller's `zone` if given)."""
    items: list[dict[str, Any]] = []
    last = None
    for trade_id in ids:
        found = queries.trade(state, trade_id)
        if found is None or (zone and zone not in (found.buyer_zone, found.seller_zone)):
            continue
        if len(items) == limit:
            return {"items": items, "next": str(last)}
        items.append(views.record(found))
        last = trade_id
    return {"items": items, "next": None}


def _price_row(trades: list[records.Trade], interval: int, params: Params) -> dict[str, Any]:
    """One interval's trades into a zone against the TOU tariff and the buy-back rate."""
    volume = sum(t.quantity_wh for t in trades)
    value = sum(t.quantity_wh * t.price for t in trades)
    return {
        "interval": interval,
        "trades": len(trades),
        "volume_wh": volume,
        "vwap": value // volume if volume else None,
        "low": min((t.price for t in trades), default=None),
        "high": max((t.price for t in trades), default=None),
        "tariff_msat_per_kwh": tariff.tariff_msat_per_kwh(interval, params),
        "buyback_msat_per_kwh": params.tariffs.buyback_msat_per_kwh,
    }


@router.get("/orders/{order_id}", response_model=models.Order)
async def order(order_id: U64, node: NodeDep) -> dict[str, Any]:
    return views.record(required(queries.order(node.app.state, order_id), f"order {order_id}"))


@router.get("/orders", response_model=models.Page[models.Order])
async def orders(
    node: NodeDep,
    account: AddressQuery = None,
    zone: ZoneQuery = None,
    interval: IntervalQuery = None,
    limit: Limit = 100,
    after: IdCursor = None,
) -> dict[str, Any]:
    """Open orders of one `account`, or of one book (`zone` and `interval`, bids best
    first then asks best first). `after` is an order id from `next`."""
    state = node.app.state
    if account is not None:
        ids = list(queries.open_order_ids(state, views.address(account)))
    elif zone is not None and interval is not None:
        ids = queries.book_order_ids(state, zone, interval)
    else:
        raise invalid("give `account`, or both `zone` and `interval`")
    if after is not None:
        cut = int(after)
        ids = ids[ids.index(cut) + 1 :] if cut in ids else [i for i in ids if i > cut]
    chosen = [o for o in (queries.order(state, i) for i in ids[: limit + 1]) if o is not None]
    items = [views.record(o) for o in chosen[:limit]]
    more = len(chosen) > limit
    return {"items": items, "next": str(chosen[limit - 1].id) if more else None}


@router.get("/accounts/{address}/escrow", response_model=models.Escrow)
async def escrow(
    address: AddressPath,
    node: NodeDep,
) -> dict[str, Any]:
    """THB (satang) and GRID (Wh) the market holds for one account on top of its balance:
    THB for open buy orders (`thb_in_orders_satang`) and unsettled purchases
    (`thb_in_trades_satang`), and metered export locked until settlement (`grid_wh`).
    Open sell orders hold no GRID (they are checked against meter capacity); their
    remaining energy is `offered_wh`."""
    raw = views.address(address)
    held = queries.held(node.app.state, raw)
    total = held.thb_in_orders_satang + held.thb_in_trades_satang
    return {"address": views.plain(raw), "thb_satang": total, **held._asdict()}


@router.get("/book/{zone}/{interval}", response_model=models.Book)
async def depth(
    zone: ZonePath,
    interval: U64,
    node: NodeDep,
    levels: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> dict[str, Any]:
    """Price levels of one zone's book for one delivery interval."""
    known_zone(node.app.state, zone)
    return views.book_depth(node.app.state, zone, interval, levels)


@router.get("/trades/{trade_id}", response_model=models.Trade)
async def trade(trade_id: U64, node: NodeDep) -> dict[str, Any]:
    return views.record(required(queries.trade(node.app.state, trade_id), f"trade {trade_id}"))


@router.get("/trades", response_model=models.Page[models.Trade])
async def trades(
    node: NodeDep,
    interval: IntervalQuery = None,
    zone: ZoneQuery = None,
    limit: Limit = 100,
    after: IdCursor = None,
) -> dict[str, Any]:
    """An interval's trades in order (`interval`), or the most recent trades, newest
    first; `zone` keeps trades whose buyer or seller is in it; `after` is a trade id."""
    state = node.app.state
    ids: Iterable[int]
    if interval is not None:
        ids = queries.interval_trade_ids(state, interval)
        if after is not None:
            ids = [i for i in ids if i > int(after)]
    else:
        top = queries.last_id(state)
        if after is not None:
            top = min(top, int(after) - 1)
        ids = range(top, max(top - TRADE_PROBES, 0), -1)
    return _trade_page(state, ids, zone, limit)


@router.get("/settlements/{interval}", response_model=models.Settlement)
async def settlement_results(interval: U64, node: NodeDep) -> dict[str, Any]:
    """An interval's market status and, once settled, each zone's report (energy and
    money conservation: export, delivered, losses, bills, buy-back)."""
    state = node.app.state
    _aligned(state, interval)
    market = queries.interval_market(state, interval)
    if market is None:
        raise not_found(f"market for interval {interval}")
    reports = queries.interval_reports(state, interval)
    shown = {zone: views.plain(report) for zone, report in reports.items()}
    return {
        "interval": interval, **views.plain(market), "reports": shown,
        "settled_height": _settled_height(node, interval, market.status),
    }  # fmt: skip


def _settled_height(node: Node, interval: int, status: records.IntervalStatus) -> int | None:
    """The block whose end settled the interval (its `zone_report` events tie the reports
    to it): found by a bisection of block times and a scan of at most the settlement
    deadline's blocks; None before settlement or when those blocks are pruned."""
    if status is not records.IntervalStatus.SETTLED:
        return None
    try:
        return extract.settlement_height(node.app.store, interval)
    except ReportError:
        return None


@router.get("/prices/{zone}", response_model=models.Prices)
async def prices(
    zone: ZonePath,
    node: NodeDep,
    start: Annotated[int, Query(ge=0, le=2**62, alias="from")],
    end: Annotated[int, Query(ge=0, le=2**62, alias="to")],
) -> dict[str, Any]:
    """Per interval in [from, to): trades delivered into the zone (volume, count,
    volume-weighted average, low and high price in satang/kWh sent, rounded down),
    next to the TOU tariff and the buy-back rate (milli-satang/kWh) for comparison."""
    state = node.app.state
    known_zone(state, zone)
    params = chain_info.params(state)
    rows = []
    for interval in interval_window(state, start, end):
        mine = [t for t in queries.interval_trades(state, interval) if t.buyer_zone == zone]
        rows.append(_price_row(mine, interval, params))
    return {"zone": zone, "intervals": rows}


@router.get("/grid", response_model=models.GridStatus)
async def grid_view(node: NodeDep) -> dict[str, Any]:
    """Zones (with any halt in force) and the interconnectors between them; with the
    grid status authorities reported (null before the first report): EGAT's latest
    frequency, each link's measured state (`capacity_kw` there is what the market uses
    instead of the genesis `capacity_kw`), each zone's generation and demand, and its
    distributor's load and headroom (kW)."""
    state = node.app.state
    index = registry.zone_index(state.overlay())
    links = [
        {**views.plain(found), "measured": _plain(grid.link_state(state, a, b))}
        for a, b in index.links
        if (found := registry.get_interconnector(state, a, b))
    ]
    return {
        "zones": [_zone_view(state, code) for code in index.zones],
        "interconnectors": links,
        "frequency": _plain(grid.transmission(state)),
    }


@router.get("/flows/{interval}", response_model=models.Flows)
async def flows(interval: U64, node: NodeDep) -> dict[str, Any]:
    """Energy traded across each interconnector in one interval, each way and net
    (`net_wh` > 0 flows from `zone_a` to `zone_b`), against what the link carries in
    an interval; a link with no room left either way is `congested`."""
    _aligned(node.app.state, interval)
    return {"interval": interval, "interconnectors": link_flows(node.app.state, interval)}
