"""The day-ahead auction: each zone's curves for an interval (and the aggregate demand and
supply they make), and the accepted clearing with its zone prices and link flows."""

from __future__ import annotations

from fractions import Fraction
from typing import Annotated, Any

from fastapi import APIRouter, Path

from gridtokenx.api import models, views
from gridtokenx.api.deps import NodeDep
from gridtokenx.api.errors import not_found
from gridtokenx.api.models import ERRORS
from gridtokenx.api.routes.market import U64, ZonePath, _aligned, known_zone
from gridtokenx.ledger import chain_info
from gridtokenx.ledger.market import auction
from gridtokenx.wire.tx import Rational, Side

router = APIRouter(tags=["auction"], responses=ERRORS)
IntervalPath = Annotated[int, Path(ge=0, le=2**63 - 1, description="interval start")]


def _levels(
    curves: list[auction.AuctionCurve], side: Side, green: bool | None = None
) -> list[dict[str, int]]:
    """Steps of one side by price; `green` keeps only renewable ones (True) or the rest."""
    totals: dict[int, int] = {}
    for curve in curves:
        if curve.side is side and green in (None, curve.green):
            for step in curve.steps:
                totals[step.price] = totals.get(step.price, 0) + step.quantity_wh
    prices = sorted(totals, reverse=side is Side.BUY)
    return [{"price": p, "quantity_wh": totals[p]} for p in prices]


@router.get("/auction/book/{zone}/{interval}", response_model=models.AuctionBook)
async def auction_book(zone: ZonePath, interval: IntervalPath, node: NodeDep) -> dict[str, Any]:
    """Open curves until the gate; after clearing, the curves with what each step got."""
    state = node.app.state
    known_zone(state, zone)
    _aligned(state, interval)
    view = state.overlay()
    found = auction.get_interval(view, interval)
    curves = [c for c in auction.open_curves(view, interval) if c.zone == zone]
    curves = [c for c in curves if c.status is not auction.CurveStatus.CANCELLED]
    p, a = chain_info.params(view), auction.auction_params(view)
    gate = auction.gate(interval, p, a)
    return {
        "zone": zone,
        "interval": interval,
        "status": "NONE" if found is None else found.status.name,
        "gate": gate,
        "clearing_deadline": gate + a.clearing_deadline_seconds,
        "demand": _levels(curves, Side.BUY),
        "supply": _levels(curves, Side.SELL),
        "renewable_demand": _levels(curves, Side.BUY, green=True),
        "renewable_supply": _levels(curves, Side.SELL, green=True),
        "curves": [views.record(c) for c in curves],
    }


def _text(r: Rational) -> str:
    return f"{r.num}/{r.den}"


@router.get("/auction/results/{interval}", response_model=models.AuctionResult)
async def auction_result(interval: U64, node: NodeDep) -> dict[str, Any]:
    """The accepted clearing: a price per zone and a renewable price (exact rationals beside
    the floats), the flow on each link with its renewable part, the welfare and the trades
    it made."""
    result = auction.result(node.app.state.overlay(), interval)
    if result is None:
        raise not_found(f"auction result for interval {interval}")
    c = result.clearing
    return {
        "interval": interval,
        "cleared_by": result.cleared_by,
        "height": result.height,
        "welfare_satang": float(Fraction(result.welfare_num, result.welfare_den) / 1000),
        "zones": [
            {
                "zone": z.zone,
                "price": z.price.num / z.price.den,
                "price_exact": _text(z.price),
                "headroom_dual": _text(z.headroom_dual),
                "buy_ratio": _text(z.buy_ratio),
                "sell_ratio": _text(z.sell_ratio),
                "renewable_price": (z.green_price or z.price).num / (z.green_price or z.price).den,
                "renewable_price_exact": _text(z.green_price or z.price),
                "renewable_buy_ratio": _text(z.green_buy_ratio or Rational(0, 1)),
                "renewable_sell_ratio": _text(z.green_sell_ratio or Rational(0, 1)),
            }
            for z in c.zones
        ],
        "flows": [
            {
                "from_zone": f.from_zone,
                "to_zone": f.to_zone,
                "wh": f.wh.num / f.wh.den,
                "wh_exact": _text(f.wh),
                "renewable_wh": (f.green_wh or Rational(0, 1)).num
                / (f.green_wh or Rational(0, 1)).den,
                "renewable_wh_exact": _text(f.green_wh or Rational(0, 1)),
            }
            for f in c.flows
        ],
        "trades": list(result.trades),
    }
