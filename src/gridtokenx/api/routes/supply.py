"""Token supply and the carbon the market's renewable trades avoided.

Supply is one record (`accounts.supply`), so it is read at no cost. Carbon is counted per
window of intervals, never over all history, so a request costs what its window traded:
the same bounded read as interval prices."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from gridtokenx.api import models
from gridtokenx.api.deps import NodeDep
from gridtokenx.api.models import ERRORS
from gridtokenx.api.routes.market import interval_window
from gridtokenx.ledger import accounts, chain_info
from gridtokenx.ledger.market import queries
from gridtokenx.ledger.state import State
from gridtokenx.wire.tx import Asset

router = APIRouter(tags=["supply"], responses=ERRORS)


@router.get("/supply", response_model=models.Supply)
async def supply(node: NodeDep) -> dict[str, Any]:
    """GRID (Wh) minted from meters and burnt at settlement, THB (satang) issued and
    redeemed by custodians, and what is outstanding of each."""
    s = accounts.supply(node.app.state)
    return {
        "height": node.app.height,
        "grid": {
            "minted_wh": s.grid_minted_wh,
            "burned_wh": s.grid_burned_wh,
            "outstanding_wh": s.outstanding(Asset.GRID),
        },
        "thb": {
            "issued_satang": s.thb_issued_satang,
            "redeemed_satang": s.thb_redeemed_satang,
            "outstanding_satang": s.outstanding(Asset.THB),
        },
    }


def _traded(state: State, intervals: range) -> tuple[int, int, dict[str, int]]:
    """Wh traded, trades settled, and renewable Wh received per buyer zone."""
    traded = settled = 0
    received: dict[str, int] = {}
    for interval in intervals:
        for trade in queries.interval_trades(state, interval):
            traded += trade.quantity_wh
            if not trade.settled:
                continue
            settled += 1
            got = queries.renewable_received_wh(state, trade)
            if got is not None:
                received[trade.buyer_zone] = received.get(trade.buyer_zone, 0) + got
    return traded, settled, received


@router.get("/carbon", response_model=models.TradedCarbon, response_model_by_alias=True)
async def carbon(
    node: NodeDep,
    start: Annotated[int, Query(ge=0, le=2**62, alias="from")],
    end: Annotated[int, Query(ge=0, le=2**62, alias="to")],
) -> dict[str, Any]:
    """Energy traded P2P in the intervals of [from, to) and, of the settled trades,
    the renewable energy buyers received (after losses) per buyer zone, times the
    governed grid emission factor: the grid emissions it avoided, in grams CO2e
    (rounded down per trade and zone, as the simulator's day summary counts them)."""
    state = node.app.state
    factor = chain_info.params(state).emission_factor_g_per_kwh
    traded, settled, received = _traded(state, interval_window(state, start, end))
    zones = {
        zone: {"renewable_received_wh": wh, "co2_avoided_g": wh * factor // 1000}
        for zone, wh in sorted(received.items())
    }
    return {
        "from": start,
        "to": end,
        "emission_factor_g_per_kwh": factor,
        "traded_wh": traded,
        "settled_trades": settled,
        "renewable_received_wh": sum(received.values()),
        "co2_avoided_g": sum(z["co2_avoided_g"] for z in zones.values()),
        "zones": zones,
    }
