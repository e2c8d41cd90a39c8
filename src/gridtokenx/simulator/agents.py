"""The agents: what each member forecasts, offers, bids and what its meter then reads.

Per interval a member forecasts its PV output from the clearness last observed in its zone
(the interval before the one in progress: persistence, the simplest honest forecast) and
its load from its usual profile. A forecast surplus is offered in its own zone at a price
between the buy-back rate (what the utility would pay) and the retail TOU rate (what a
buyer would otherwise pay); a deficit is bid for below the retail rate less the wheeling
charge and platform fee, so a fill is always cheaper than the grid. The order of arrival
is shuffled per interval. Buyers reach other zones' offers through the ledger's cross-zone
matching whenever the offer, grossed up for path loss, is within their limit.

The meter then reads what actually happened: the clearness of the interval itself and a
load a few per cent off the usual, netted into the cumulative import and export registers
of the member's one meter. Agents never read the ledger: the stream depends on the seed
alone, which keeps a day reproducible and lets it be pre-signed for benchmarks.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from gridtokenx.ledger.market.tariff import tariff_msat_per_kwh
from gridtokenx.ledger.params import Params
from gridtokenx.simulator import demand, solar
from gridtokenx.simulator.clock import Day, is_hot_season
from gridtokenx.simulator.population import Archetype, Member
from gridtokenx.wire import tx


@dataclass(frozen=True)
class Plan:
    """One member's energy over the simulated window, per interval, in Wh."""

    forecast_pv: list[int]
    actual_pv: list[int]
    forecast_load: list[int]
    actual_load: list[int]

    @property
    def exports(self) -> list[int]:
        return [max(0, p - q) for p, q in zip(self.actual_pv, self.actual_load, strict=True)]

    @property
    def imports(self) -> list[int]:
        return [max(0, q - p) for p, q in zip(self.actual_pv, self.actual_load, strict=True)]


def usual_load(member: Member, day: Day, hot: bool) -> list[int]:
    if member.archetype in (Archetype.SOLAR_HOME, Archetype.HOME):
        return demand.household_wh(member.load_w, day, hot)
    if member.archetype is Archetype.OFFICE:
        return demand.office_wh(member.load_w, day, hot)
    if member.archetype is Archetype.FACTORY:
        return demand.factory_wh(member.load_w, day, hot, three_shifts=member.three_shifts)
    return [0] * day.intervals


class Weather:
    """Clear-sky shapes and clearness per (zone, day), computed once and shared."""

    def __init__(self, seed: str, hot_season: bool | None) -> None:
        self.seed = seed
        self.hot_season = hot_season
        self._cache: dict[tuple[str, Day, bool], tuple[list[int], list[int]]] = {}

    def hot(self, day: Day) -> bool:
        return is_hot_season(day.date) if self.hot_season is None else self.hot_season

    def of(self, zone: str, day: Day, tracking: bool) -> tuple[list[int], list[int]]:
        key = (zone, day, tracking)
        if key not in self._cache:
            shape = solar.clear_sky_shape(zone, day, tracking=tracking)
            self._cache[key] = (shape, solar.clearness(self.seed, zone, day, self.hot(day)))
        return self._cache[key]


def plan(member: Member, days: list[Day], weather: Weather) -> Plan:
    """The member's forecasts and actuals over whole `days` (the caller slices a window)."""
    rng = random.Random(f"{weather.seed}/meter/{member.name}")
    fpv: list[int] = []
    apv: list[int] = []
    fload: list[int] = []
    aload: list[int] = []
    for day in days:
        hot = weather.hot(day)
        usual = usual_load(member, day, hot)
        fload += usual
        aload += [q * rng.randint(900, 1100) // 1000 for q in usual]
        if not member.pv_w:
            fpv += [0] * day.intervals
            apv += [0] * day.intervals
            continue
        farm = member.archetype is Archetype.SOLAR_FARM
        shape, clear = weather.of(member.zone, day, farm)
        seen = [clear[max(0, i - 2)] for i in range(day.intervals)]
        fpv += solar.output_wh(member.pv_w, shape, seen, day, hot, farm=farm)
        actual = solar.output_wh(member.pv_w, shape, clear, day, hot, farm=farm)
        cap = solar.max_interval_wh(member.pv_w, day.interval_seconds)
        apv += [min(cap, e * rng.randint(970, 1030) // 1000) for e in actual]
    return Plan(fpv, apv, fload, aload)


@dataclass(frozen=True)
class Prices:
    """Reference prices for one interval, satang per kWh."""

    retail: int  # TOU rate incl. Ft and VAT: what a buyer pays the utility
    buyback: int  # what the utility pays for rooftop surplus
    bid_cap: int  # the highest bid that, with fee and wheeling, still beats retail

    @classmethod
    def at(cls, start: int, params: Params) -> Prices:
        retail = tariff_msat_per_kwh(start, params) // 1000
        buyback = params.tariffs.buyback_msat_per_kwh // 1000
        cap = (
            (retail - params.wheeling_satang_per_kwh)
            * 10_000
            // (10_000 + params.platform_fee_basis_points)
        )
        return cls(retail, buyback, max(cap, 0))


def on_band(price: int, params: Params) -> int:
    price = max(params.price_min_satang_per_kwh, min(params.price_max_satang_per_kwh, price))
    return price - price % params.tick_satang_per_kwh


def ask_price(member: Member, prices: Prices, rng: random.Random, params: Params) -> int:
    lean = max(0, min(950, member.ask_permille + rng.randint(-60, 60)))
    return on_band(prices.buyback + (prices.retail - prices.buyback) * lean // 1000, params)


def bid_price(member: Member, prices: Prices, rng: random.Random, params: Params) -> int:
    lean = max(0, min(950, member.bid_permille + rng.randint(-60, 60)))
    floor = min(prices.buyback, prices.bid_cap)
    return on_band(prices.bid_cap - (prices.bid_cap - floor) * lean // 1000, params)


Committed = Callable[[str, int], int]


class Traders:
    """Every member's trading desk: one order per member and interval at most."""

    def __init__(self, members: list[Member], plans: dict[str, Plan], seed: str) -> None:
        self.members = members
        self.plans = plans
        self.seed = seed
        self._rngs = {m.name: random.Random(f"{seed}/trader/{m.name}") for m in members}

    def draws(self) -> dict[str, tuple[object, ...]]:
        """Where each member's generator stands: `orders` draws from them, so a caller that
        asks ahead (to count) puts them back with `rewind` before the orders it sends."""
        return {name: rng.getstate() for name, rng in self._rngs.items()}

    def rewind(self, draws: dict[str, tuple[object, ...]]) -> None:
        for name, rng in self._rngs.items():
            rng.setstate(draws[name])

    def orders(
        self, k: int, start: int, params: Params, committed: Committed | None = None
    ) -> list[tuple[Member, tx.PlaceOrder]]:
        """Orders for window interval `k`, which starts at `start`, in arrival order; with
        `committed` (Wh a member already offered, or bid for as a negative, in the day-ahead
        auction) only the rest of the same side is traded."""
        prices = Prices.at(start, params)
        out = []
        for m in self.members:
            rng, p = self._rngs[m.name], self.plans[m.name]
            ahead = 0 if committed is None else committed(m.name, k)
            surplus = p.forecast_pv[k] - p.forecast_load[k] - ahead
            haircut = rng.randint(850, 1000)
            if ahead * surplus < 0:  # the auction already took more than this side's rest
                continue
            if surplus >= params.min_lot_wh:
                qty, side, price = surplus, tx.Side.SELL, ask_price(m, prices, rng, params)
            elif -surplus >= params.min_lot_wh:
                qty, side, price = -surplus, tx.Side.BUY, bid_price(m, prices, rng, params)
            else:
                continue
            qty = qty * haircut // 1000
            if qty >= params.min_lot_wh:
                out.append((m, tx.PlaceOrder(side, m.zone, start, qty, price)))
        random.Random(f"{self.seed}/queue/{start}").shuffle(out)
        return out


class Meters:
    """Cumulative registers of every member's meter, advanced one interval at a time."""

    def __init__(self, members: list[Member], plans: dict[str, Plan]) -> None:
        self.members = members
        self.plans = plans
        self.registers = {m.name: (m.import_register_wh, 0) for m in members}

    def readings(self, k: int, start: int) -> list[tuple[Member, tx.MeterReading]]:
        """Readings for window interval `k`; a negative `k` is before the window (the
        setup), when the registers stand still."""
        out = []
        for m in self.members:
            p = self.plans[m.name]
            imported, exported = self.registers[m.name]
            if k >= 0:
                imported += max(0, p.actual_load[k] - p.actual_pv[k])
                exported += max(0, p.actual_pv[k] - p.actual_load[k])
            self.registers[m.name] = (imported, exported)
            out.append((m, tx.MeterReading(start, imported, exported)))
        return out
