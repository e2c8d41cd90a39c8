"""One participant's day, for the dashboard's household page: its meters and their
readings, its trades, and its bill against the TOU tariff interval by interval
(`ledger.market.bills`). Balances, open orders and certificates have routes of their own
(`/accounts`, `/orders?account=`, `/certificates?owner=`)."""

from __future__ import annotations

import datetime
import itertools
from typing import Annotated, Any

from fastapi import APIRouter, Query

from gridtokenx.api import views
from gridtokenx.api.deps import NodeDep
from gridtokenx.api.models import ERRORS, Household
from gridtokenx.api.routes.certificates import day_range
from gridtokenx.api.routes.common import AddressPath, required
from gridtokenx.api.routes.explorer import name_of
from gridtokenx.ledger import chain_info, metering, registry
from gridtokenx.ledger.market import bills

DayQuery = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{8}$", description="local date YYYYMMDD (default: the latest block's)"),
]
_EPOCH = datetime.date(1970, 1, 1)

router = APIRouter(tags=["households"], responses=ERRORS)


def day_intervals(yyyymmdd: int, utc_offset: int, length: int) -> range:
    """The interval starts of one local day."""
    text = str(yyyymmdd)
    date = datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    start = (date - _EPOCH).days * 86_400 - utc_offset
    return range(start, start + 86_400, length)


@router.get("/households/{address}", response_model=Household, response_model_by_alias=True)
async def household(address: AddressPath, node: NodeDep, day: DayQuery = None) -> dict[str, Any]:
    """The participant, its meters with the day's readings, the trades delivered in the
    day (with the parties' names), and the day's bill: one line per interval with metered
    energy or a trade, and the totals (`saved_satang`: the import's tariff-only bill less
    what was paid for it)."""
    state = node.app.state
    who = views.address(address)
    found = required(registry.get_participant(state, who), f"participant {address}")
    params = chain_info.params(state)
    (date,) = day_range(state, node.app.last_time, day, day)
    intervals = day_intervals(date, params.tariffs.utc_offset_seconds, params.interval_seconds)
    meters = list(registry.meters(state, owner=who))
    readings = [
        views.record(reading, meter=meter, interval_start=start)
        for meter, _ in meters
        for start, reading in itertools.takewhile(
            lambda found: found[0] < intervals.stop,
            metering.readings(state, meter, intervals.start - 1),
        )
    ]
    lines = bills.day_bill(state, who, intervals)
    return {
        "address": address,
        "day": date,
        "from": intervals.start,
        "to": intervals.stop,
        "participant": views.plain(found),
        "meters": [views.record(meter, address=at) for at, meter in meters],
        "readings": readings,
        "trades": [
            views.record(
                t, buyer_name=name_of(state, t.buyer), seller_name=name_of(state, t.seller)
            )
            for t in bills.owner_trades(state, who, intervals)
        ],
        "buyback_msat_per_kwh": params.tariffs.buyback_msat_per_kwh,
        "bill": {
            "lines": [{**line._asdict(), "net_satang": line.net_satang} for line in lines],
            "totals": bills.totals(lines),
        },
    }
