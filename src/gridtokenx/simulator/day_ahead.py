"""The members' day-ahead curves: what they put into each interval's auction before its gate.

At the auction gate (12:00 Bangkok the day before, docs/market.md §11) a member knows
neither the clouds nor the last observed clearness of the delivery day, so its day-ahead
PV forecast is the clear-sky output at the season's mean clearness (a climatological
forecast, `solar.cloud_mean_permille`); its load forecast is its usual profile, as in
continuous trading. It commits `SHARE_PERMILLE` of the forecast surplus or deficit to the
auction, as two steps:

- a seller offers half at a low price (a little above the buy-back rate: that energy would
  otherwise go to the utility) and half at its usual ask (`agents.ask_price`);
- a buyer bids half at its full willingness to pay (the bid cap: a fill then still beats
  the TOU rate after fee and wheeling) and half at its usual bid (`agents.bid_price`).

The rest of its position it trades continuously closer to delivery, from the short-term
forecast: `Traders.orders` subtracts the quantity committed here (`committed`), so a
member never bids or offers the same energy twice. Agents do not read the auction's
result (the stream of transactions stays a function of the seed alone): energy the
auction did not accept is not traded again, it goes to or comes from the utility.
"""

from __future__ import annotations

import random
from typing import Final

from gridtokenx.ledger.params import Params
from gridtokenx.simulator import solar
from gridtokenx.simulator.agents import (
    Prices,
    Weather,
    ask_price,
    bid_price,
    on_band,
    usual_load,
)
from gridtokenx.simulator.clock import Day
from gridtokenx.simulator.population import Archetype, Member
from gridtokenx.wire import tx

SHARE_PERMILLE: Final = 700  # of the day-ahead surplus or deficit, committed to the auction
LOW_ASK_PERMILLE: Final = 100  # the cheap step: 10 % of the way from buy-back to retail


def forecast(member: Member, days: list[Day], weather: Weather) -> list[tuple[int, int]]:
    """(PV, load) per interval over whole `days`, as known at the auction gate."""
    out: list[tuple[int, int]] = []
    for day in days:
        hot = weather.hot(day)
        load = usual_load(member, day, hot)
        if not member.pv_w:
            out += [(0, q) for q in load]
            continue
        farm = member.archetype is Archetype.SOLAR_FARM
        shape = solar.clear_sky_shape(member.zone, day, tracking=farm)
        mean = [solar.cloud_mean_permille(day, hot)] * day.intervals
        pv = solar.output_wh(member.pv_w, shape, mean, day, hot, farm=farm)
        out += list(zip(pv, load, strict=True))
    return out


Curve = tuple[Member, tx.PlaceAuctionCurve]


class DayAhead:
    """Every member's curves for the window's intervals, and what each committed."""

    def __init__(
        self, members: list[Member], forecasts: dict[str, list[tuple[int, int]]], seed: str
    ) -> None:
        self.members = members
        self.forecasts = forecasts  # member -> (PV, load) per window interval
        self.seed = seed
        self._committed: dict[tuple[str, int], int] = {}  # (member, k) -> +sell / -buy Wh

    def committed(self, name: str, k: int) -> int:
        """Wh the member put into interval `k`'s auction: positive offered, negative bid."""
        return self._committed.get((name, k), 0)

    def curves(self, k: int, start: int, params: Params) -> list[Curve]:
        prices = Prices.at(start, params)
        rng = random.Random(f"{self.seed}/day-ahead/{start}")
        out: list[Curve] = []
        for m in self.members:
            pv, load = self.forecasts[m.name][k]
            surplus = pv - load
            total = abs(surplus) * SHARE_PERMILLE // 1000
            half = total // 2
            if half < params.min_lot_wh:
                continue
            if surplus > 0:
                low = on_band(prices.buyback + (prices.retail - prices.buyback)
                               * LOW_ASK_PERMILLE // 1000, params)  # fmt: skip
                steps = ((low, half), (ask_price(m, prices, rng, params), total - half))
                side, signed = tx.Side.SELL, total
            else:
                cap = on_band(prices.bid_cap, params)
                steps = ((cap, half), (bid_price(m, prices, rng, params), total - half))
                side, signed = tx.Side.BUY, -total
            body = tx.PlaceAuctionCurve(side, m.zone, start,
                                        tuple(tx.CurveStep(p, q) for p, q in steps))  # fmt: skip
            self._committed[(m.name, k)] = signed
            out.append((m, body))
        rng.shuffle(out)
        return out
