"""The day-ahead auction's optimality certificate, checked in exact rational arithmetic.

The clearing of one interval is the welfare-maximising linear programme

    max  sum_b P_b x_b - sum_s C_s y_s
    s.t. for each zone z:  sum_{s in z} y_s + sum_{a->z} (1 - loss_az) f_az
                           = sum_{b in z} x_b + sum_{z->c} f_zc                  (price pi_z)
         for each zone z with reported headroom:  sum_{a->z} f_az <= H_z          (dual eta_z)
         0 <= x_b <= Q_b,  0 <= y_s <= Q_s,  0 <= f_ab <= R_ab

over buy steps b, sell steps s and directed links a->b (R_ab: the link's room in the interval
as continuous matching sees it). Solving it needs floating point, which consensus cannot
use; checking a solution does not. A certificate gives each zone's price pi_z and headroom
dual eta_z, the link flows, and for each zone the share accepted of the steps priced exactly
at pi_z. Steps priced strictly better than pi_z are accepted whole, worse ones rejected, so
every accepted step is in the money and no rejected one is, by construction. The slack
duals are the least that make the dual feasible (mu_b = max(0, P_b - pi_z), nu_s =
max(0, pi_z - C_s), rho_ab = max(0, (1 - loss_ab) pi_b - eta_b - pi_a)), so the dual is
always feasible once eta >= 0, and the certificate is optimal exactly when the primal is
feasible and its welfare equals the dual objective (weak duality makes the gap >= 0 for
every feasible pair; zero proves both optimal). Where the curves leave a price undetermined,
any price in its range is optimal; the rule that makes it unique is the midpoint of each
zone's range of optimal prices, which `check` enforces too (`price_range`, `midpoint`).

Everything here is pure: `Instance` is read from state by auction.py, built by the solver
and the benchmarks from the same data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

from gridtokenx.wire import errors
from gridtokenx.wire.tx import LinkFlow, Rational, Side, ZoneClearing

BASIS = 10_000


class Step(NamedTuple):
    """A named tuple, not a dataclass: an interval has tens of thousands of steps, and the
    ledger builds them on every clearing it checks."""

    curve: int
    position: int  # in its curve
    side: Side
    zone: str
    price: int  # satang per kWh
    quantity_wh: int


class Link(NamedTuple):
    from_zone: str
    to_zone: str
    loss_bp: int
    room_wh: int  # what the directed link can still carry in the interval (>= 0)


@dataclass(frozen=True)
class Instance:
    zones: tuple[str, ...]  # sorted
    links: tuple[Link, ...]  # directed, sorted by (from, to)
    headroom_wh: dict[str, int] = field(default_factory=dict)  # zones with a reported limit
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class Checked:
    """A certificate that passed: the exact prices, ratios and flows, and the welfare."""

    prices: dict[str, Fraction]
    buy_ratio: dict[str, Fraction]
    sell_ratio: dict[str, Fraction]
    flows: dict[tuple[str, str], Fraction]
    welfare: Fraction  # satang x Wh / kWh: divide by 1000 for satang
    headroom_dual: dict[str, Fraction] = field(default_factory=dict)

    def accepted(self, step: Step) -> Fraction:
        """The step's accepted quantity (Wh): whole, none, or its zone's share at the price."""
        price = self.prices[step.zone]
        if step.side is Side.BUY:
            if step.price > price:
                return Fraction(step.quantity_wh)
            return (
                self.buy_ratio[step.zone] * step.quantity_wh if step.price == price else Fraction(0)
            )
        if step.price < price:
            return Fraction(step.quantity_wh)
        return self.sell_ratio[step.zone] * step.quantity_wh if step.price == price else Fraction(0)


def fraction(r: Rational) -> Fraction:
    return Fraction(r.num, r.den)


def rational(value: Fraction) -> Rational:
    return Rational(value.numerator, value.denominator)


@dataclass
class _Zone:
    """Integer sums of one zone's steps against its price (one pass over the steps)."""

    buy_in_q: int = 0  # buys priced above the zone price: accepted whole
    buy_in_pq: int = 0
    buy_at_q: int = 0  # buys at exactly the zone price: accepted pro rata
    sell_in_q: int = 0  # sells priced below: accepted whole
    sell_in_pq: int = 0
    sell_at_q: int = 0


def _zone_sums(inst: Instance, prices: dict[str, Fraction]) -> dict[str, _Zone]:
    sums = {z: _Zone() for z in inst.zones}
    # Compare integers with num/den by cross-multiplying: no Fraction per step.
    keyed = {z: (p.numerator, p.denominator) for z, p in prices.items()}
    for s in inst.steps:
        num, den = keyed[s.zone]
        acc = sums[s.zone]
        scaled = s.price * den
        if s.side is Side.BUY:
            if scaled > num:
                acc.buy_in_q += s.quantity_wh
                acc.buy_in_pq += s.price * s.quantity_wh
            elif scaled == num:
                acc.buy_at_q += s.quantity_wh
        elif scaled < num:
            acc.sell_in_q += s.quantity_wh
            acc.sell_in_pq += s.price * s.quantity_wh
        elif scaled == num:
            acc.sell_at_q += s.quantity_wh
    return sums


def _ratio(r: Rational, group_wh: int, what: str) -> Fraction:
    value = fraction(r)
    if not 0 <= value <= 1:
        raise errors.ClearingInfeasible(f"{what} must be between 0 and 1, not {value}")
    if group_wh == 0 and value != 0:
        raise errors.ClearingMalformed(f"{what} must be 0: no step is priced at the zone price")
    return value


def _flows(inst: Instance, flows: Iterable[LinkFlow]) -> dict[tuple[str, str], Fraction]:
    known = {(link.from_zone, link.to_zone): link for link in inst.links}
    found: dict[tuple[str, str], Fraction] = {}
    previous: tuple[str, str] | None = None
    for f in flows:
        key = (f.from_zone, f.to_zone)
        if key not in known:
            raise errors.ClearingMalformed(f"no interconnector {key[0]}->{key[1]}")
        if previous is not None and key <= previous:
            raise errors.ClearingMalformed("flows must be listed once each, in (from, to) order")
        previous = key
        value = fraction(f.wh)
        if value <= 0:
            raise errors.ClearingMalformed(f"flow {key[0]}->{key[1]} must be positive (omit zeros)")
        if value > known[key].room_wh:
            raise errors.ClearingInfeasible(
                f"flow {key[0]}->{key[1]} of {value} Wh exceeds the link's room "
                f"{known[key].room_wh} Wh"
            )
        found[key] = value
    for a, b in found:
        if (b, a) in found:
            raise errors.ClearingInfeasible(f"energy flows both ways between {a} and {b}")
    return found


def check(inst: Instance, zones: tuple[ZoneClearing, ...], flows: tuple[LinkFlow, ...]) -> Checked:
    """The certificate's exact welfare, or a rejection: malformed, infeasible, not optimal, or
    optimal at prices other than the midpoint rule's (docs/market.md §11)."""
    checked = check_optimal(inst, zones, flows)
    rule = midpoint(inst, checked)
    for zone in inst.zones:
        if checked.prices[zone] != rule.prices[zone]:
            raise errors.ClearingNotOptimal(
                f"the price of {zone} must be {rule.prices[zone]}, the midpoint of its range of "
                f"optimal prices, not {checked.prices[zone]}"
            )
    return checked


def certificate(checked: Checked) -> tuple[tuple[ZoneClearing, ...], tuple[LinkFlow, ...]]:
    """The certificate's zones and flows for a checked clearing (what a solver submits)."""
    zones = tuple(
        ZoneClearing(
            z,
            rational(price),
            rational(checked.headroom_dual.get(z, Fraction(0))),
            rational(checked.buy_ratio[z]),
            rational(checked.sell_ratio[z]),
        )
        for z, price in checked.prices.items()
    )
    flows = tuple(LinkFlow(a, b, rational(v)) for (a, b), v in sorted(checked.flows.items()))
    return zones, flows


def check_optimal(
    inst: Instance, zones: tuple[ZoneClearing, ...], flows: tuple[LinkFlow, ...]
) -> Checked:
    """The certificate's exact welfare, or a rejection: malformed, infeasible, not optimal."""
    if tuple(z.zone for z in zones) != inst.zones:
        raise errors.ClearingMalformed(f"the clearing must list the zones {inst.zones} in order")
    prices = {z.zone: fraction(z.price) for z in zones}
    sums = _zone_sums(inst, prices)
    buy_ratio = {z.zone: _ratio(z.buy_ratio, sums[z.zone].buy_at_q, "buy ratio") for z in zones}
    sell_ratio = {z.zone: _ratio(z.sell_ratio, sums[z.zone].sell_at_q, "sell ratio") for z in zones}
    eta = {z.zone: fraction(z.headroom_dual) for z in zones}
    for zone, value in eta.items():
        if value < 0:
            raise errors.ClearingNotOptimal(f"headroom dual of {zone} is negative")
        if zone not in inst.headroom_wh and value != 0:
            raise errors.ClearingMalformed(f"{zone} reports no headroom: its dual must be 0")
    flow = _flows(inst, flows)

    balance = {z: Fraction(0) for z in inst.zones}
    inflow = {z: Fraction(0) for z in inst.zones}
    dual = Fraction(0)
    for link in inst.links:
        kept = Fraction(BASIS - link.loss_bp, BASIS)
        sent = flow.get((link.from_zone, link.to_zone), Fraction(0))
        balance[link.from_zone] -= sent
        balance[link.to_zone] += kept * sent
        inflow[link.to_zone] += sent
        rent = kept * prices[link.to_zone] - eta[link.to_zone] - prices[link.from_zone]
        if rent > 0:
            dual += rent * link.room_wh
    welfare = Fraction(0)
    for zone in inst.zones:
        s, price = sums[zone], prices[zone]
        bought = s.buy_in_q + buy_ratio[zone] * s.buy_at_q
        sold = s.sell_in_q + sell_ratio[zone] * s.sell_at_q
        balance[zone] += sold - bought
        if balance[zone] != 0:
            raise errors.ClearingInfeasible(
                f"zone {zone} does not balance: off by {balance[zone]} Wh"
            )
        limit = inst.headroom_wh.get(zone)
        if limit is not None:
            if inflow[zone] > max(limit, 0):
                raise errors.ClearingInfeasible(f"imports into {zone} exceed its headroom")
            dual += eta[zone] * max(limit, 0)
        welfare += (
            s.buy_in_pq
            + price * buy_ratio[zone] * s.buy_at_q
            - s.sell_in_pq
            - price * sell_ratio[zone] * s.sell_at_q
        )
        dual += (s.buy_in_pq - price * s.buy_in_q) + (price * s.sell_in_q - s.sell_in_pq)
    if dual != welfare:
        raise errors.ClearingNotOptimal(
            f"duality gap {float(dual - welfare):.6g}: welfare {float(welfare):.6g} is not optimal"
        )
    return Checked(prices, buy_ratio, sell_ratio, flow, welfare, eta)


# --- the midpoint rule --------------------------------------------------------------------------
def price_cap(inst: Instance) -> Fraction:
    """The highest price the rule considers: the dearest step, grossed up over the lossiest
    link once per zone (a price the curves leave unbounded above is capped here, one they
    leave unbounded below is floored at 0)."""
    dearest = max((s.price for s in inst.steps), default=0)
    kept = min((BASIS - link.loss_bp for link in inst.links), default=BASIS)
    return Fraction(dearest) * Fraction(BASIS, max(kept, 1)) ** len(inst.zones)


def _step_bounds(inst: Instance, checked: Checked) -> dict[str, list[Fraction]]:
    """Each zone's [lowest, highest] price its own steps allow, given what the clearing
    accepts (complementary slackness): a step accepted at all bounds the price from one side
    (a buy: at most its price; a sell: at least), one not accepted whole from the other.
    One pass of integer comparisons (cross-multiplied, as in `_zone_sums`)."""
    cap = price_cap(inst)
    low: dict[str, int | None] = dict.fromkeys(inst.zones)
    high: dict[str, int | None] = dict.fromkeys(inst.zones)
    at_price: set[tuple[str, Side]] = set()
    keyed = {z: (p.numerator, p.denominator) for z, p in checked.prices.items()}
    for s in inst.steps:
        num, den = keyed[s.zone]
        scaled = s.price * den
        if scaled == num:
            at_price.add((s.zone, s.side))  # bounds by the zone's ratios, below
            continue
        # Priced below the zone price: a buy rejected (price >= P), a sell accepted (>= C);
        # above it: a buy accepted (price <= P), a sell rejected (<= C).
        if scaled < num:
            if (was := low[s.zone]) is None or s.price > was:
                low[s.zone] = s.price
        elif (was := high[s.zone]) is None or s.price < was:
            high[s.zone] = s.price
    bounds = {}
    for z in inst.zones:
        least, most = low[z], high[z]
        lo = Fraction(0) if least is None else Fraction(least)
        hi = cap if most is None else Fraction(most)
        price = checked.prices[z]
        # Steps exactly at the price: their accepted share bounds one side, the share left
        # the other (a buy: accepted bounds from above; a sell: from below).
        for side, ratio in ((Side.BUY, checked.buy_ratio[z]), (Side.SELL, checked.sell_ratio[z])):
            if (z, side) not in at_price:
                continue
            buy = side is Side.BUY
            if ratio > 0:
                lo, hi = (lo, min(hi, price)) if buy else (max(lo, price), hi)
            if ratio < 1:
                lo, hi = (max(lo, price), hi) if buy else (lo, min(hi, price))
        bounds[z] = [lo, hi]
    return bounds


def price_range(
    inst: Instance, checked: Checked
) -> tuple[dict[str, Fraction], dict[str, Fraction]]:
    """The lowest and the highest optimal price of every zone, the headroom duals given.

    The optimal prices are the duals that satisfy complementary slackness with the
    clearing's allocation: each zone within its steps' bounds, and for each link a->c
    (kept share k) `pi_a >= k pi_c - eta_c` unless it is full and `pi_a <= k pi_c - eta_c`
    if it carries anything. Every constraint has one positive and one negative coefficient,
    so the set is closed under the componentwise minimum and maximum: one optimal price
    vector is lowest in every zone and one highest, and the vector of midpoints, halfway
    between two optimal ones, is optimal too. Both are found by tightening the zones'
    bounds along the links until nothing changes (at most one round per zone, as in
    Bellman-Ford); a bound that keeps moving means no optimal price exists in [0, cap]."""
    bounds = _step_bounds(inst, checked)
    below: list[tuple[str, str, Fraction, Fraction]] = []  # pi_a >= k pi_c - eta_c
    above: list[tuple[str, str, Fraction, Fraction]] = []  # pi_a <= k pi_c - eta_c
    for link in inst.links:
        key = (link.from_zone, link.to_zone)
        kept, sent = Fraction(BASIS - link.loss_bp, BASIS), checked.flows.get(key, Fraction(0))
        entry = (link.from_zone, link.to_zone, kept, checked.headroom_dual[link.to_zone])
        if sent < link.room_wh:
            below.append(entry)
        if sent > 0:
            above.append(entry)
    ends = []
    for side in (0, 1):
        value = {z: bounds[z][side] for z in inst.zones}
        for _ in range(len(inst.zones) + 1):
            moved = False
            for a, c, kept, e in below if side == 0 else above:
                if (side == 0 and value[a] < kept * value[c] - e) or (
                    side == 1 and value[a] > kept * value[c] - e
                ):
                    value[a], moved = kept * value[c] - e, True
            for a, c, kept, e in above if side == 0 else below:
                if (side == 0 and value[c] < (value[a] + e) / kept) or (
                    side == 1 and value[c] > (value[a] + e) / kept
                ):
                    value[c], moved = (value[a] + e) / kept, True
            if not moved:
                break
        else:
            raise errors.ClearingNotOptimal("the optimal prices have no lowest or highest value")
        ends.append(value)
    return ends[0], ends[1]


def midpoint(inst: Instance, checked: Checked) -> Checked:
    """The same allocation at the rule's prices: each zone's midpoint of its optimal range.
    A zone whose range is not a single price has no step priced strictly inside it, so at
    the midpoint no step is at the price (ratios 0) and every step keeps its quantity."""
    low, high = price_range(inst, checked)
    prices = {z: (low[z] + high[z]) / 2 for z in inst.zones}
    moved = {z for z in inst.zones if prices[z] != checked.prices[z]}
    return Checked(
        prices,
        {z: Fraction(0) if z in moved else r for z, r in checked.buy_ratio.items()},
        {z: Fraction(0) if z in moved else r for z, r in checked.sell_ratio.items()},
        checked.flows,
        checked.welfare,
        checked.headroom_dual,
    )
