"""The day-ahead auction's optimality certificate, checked in exact rational arithmetic.

The clearing of one interval is the welfare-maximising linear programme over two
commodities, any energy (O) and renewable energy (G):

    max  sum_b P_b x_b - sum_s C_s y_s
    s.t. for each zone z and commodity m:                                   (price pi^m_z)
             sum_{s in z, m} y_s + sum_{a->z} (1 - loss_az) f^m_az
                 = sum_{b in z, m} x_b + sum_{z->c} f^m_zc  (+ d_z for O, - d_z for G)
         for each zone z with reported headroom:  sum_{a->z} f^O_az + f^G_az <= H_z  (eta_z)
         for each directed link a->b:  f^O_ab + f^G_ab <= R_ab                  (rho_ab)
         0 <= x_b <= Q_b,  0 <= y_s <= Q_s,  f >= 0,  d_z >= 0

over buy steps b, sell steps s, directed links a->b (R_ab: the link's room in the interval
as continuous matching sees it) and the downgrade d_z, renewable energy sold as any energy
in zone z. Renewable offers and renewable-only bids are G steps, the rest O steps; so a
renewable-only bid is served by renewable energy only, and renewable energy serves either.
Solving it needs floating point, which consensus cannot use; checking a solution does not.
A certificate gives each zone's two prices pi_z <= pi^G_z and headroom dual eta_z, the link
flows with their renewable part, and for each zone and commodity the share accepted of the
steps priced exactly at that commodity's price. Steps priced strictly better are accepted
whole, worse ones rejected, so every accepted step is in the money and no rejected one is,
by construction. The downgrade is not sent: it is what the renewable balance leaves over,
and must not be negative. The slack duals are the least that make the dual feasible
(mu_b = max(0, P_b - pi^m_z), nu_s = max(0, pi^m_z - C_s), rho_ab = max(0, over m of
(1 - loss_ab) pi^m_b - eta_b - pi^m_a)), so the dual is feasible once eta >= 0 and
pi^G >= pi (the downgrade's column), and the certificate is optimal exactly when the primal
is feasible and its welfare equals the dual objective (weak duality makes the gap >= 0 for
every feasible pair; zero proves both optimal). Where the optimum leaves a field
undetermined, a rule of docs/market.md section 11 makes it unique, and `check` enforces
each in turn: the renewable split of the flows (`rule_green_flows`), the headroom duals
(`rule_headroom_duals`), the prices (`rule_prices`); `canonical` moves any optimal
certificate to them.

Everything here is pure: `Instance` is read from state by auction.py, built by the solver
and the benchmarks from the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from operator import itemgetter
from typing import NamedTuple, TypeVar

from gridtokenx.ledger.market import exact_lp
from gridtokenx.wire import errors
from gridtokenx.wire.tx import LinkFlow, Rational, Side, ZoneClearing

BASIS = 10_000
ZERO = Fraction(0)
T = TypeVar("T")
NONE_ABOVE = 2**63  # no step priced above (prices are U64 satang/kWh)


class Step(NamedTuple):
    """A named tuple, not a dataclass: an interval has tens of thousands of steps, and the
    ledger builds them on every clearing it checks."""

    curve: int
    position: int  # in its curve
    side: Side
    zone: str
    price: int  # satang per kWh
    quantity_wh: int
    green: bool = False  # a renewable offer or a renewable-only bid: priced at pi^G


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


Key = tuple[str, bool]  # (zone, renewable commodity)
Edge = tuple[Key, Key, Fraction, Fraction]  # x_a against k x_c - e


@dataclass(frozen=True)
class Checked:
    """A certificate that passed: the exact prices, ratios and flows, and the welfare. The
    renewable commodity's fields are keyed like the ordinary ones; `flows` are totals and
    `green_flows` their renewable parts (nonzero only)."""

    prices: dict[str, Fraction]
    buy_ratio: dict[str, Fraction]
    sell_ratio: dict[str, Fraction]
    flows: dict[tuple[str, str], Fraction]
    welfare: Fraction  # satang x Wh / kWh: divide by 1000 for satang
    headroom_dual: dict[str, Fraction] = field(default_factory=dict)
    green_prices: dict[str, Fraction] = field(default_factory=dict)
    green_buy_ratio: dict[str, Fraction] = field(default_factory=dict)
    green_sell_ratio: dict[str, Fraction] = field(default_factory=dict)
    green_flows: dict[tuple[str, str], Fraction] = field(default_factory=dict)
    downgrade: dict[str, Fraction] = field(default_factory=dict)  # Wh renewable sold as any
    # The pass over the steps at these prices, kept for the rule (None: not made yet).
    sums: dict[Key, _Zone] | None = field(default=None, compare=False, repr=False)

    def price(self, zone: str, green: bool) -> Fraction:
        return self.green_prices.get(zone, self.prices[zone]) if green else self.prices[zone]

    def ratio(self, zone: str, green: bool, side: Side) -> Fraction:
        if side is Side.BUY:
            return (self.green_buy_ratio if green else self.buy_ratio).get(zone, ZERO)
        return (self.green_sell_ratio if green else self.sell_ratio).get(zone, ZERO)

    def accepted(self, step: Step) -> Fraction:
        """The step's accepted quantity (Wh): whole, none, or its zone's share at the price."""
        price = self.price(step.zone, step.green)
        if step.price == price:
            return self.ratio(step.zone, step.green, step.side) * step.quantity_wh
        inside = step.price > price if step.side is Side.BUY else step.price < price
        return Fraction(step.quantity_wh) if inside else ZERO


def fraction(r: Rational) -> Fraction:
    return Fraction(r.num, r.den)


def rational(value: Fraction) -> Rational:
    return Rational(value.numerator, value.denominator)


@dataclass
class _Zone:
    """Integer sums of one zone's steps of one commodity against its price (one pass)."""

    buy_in_q: int = 0  # buys priced above the price: accepted whole
    buy_in_pq: int = 0
    buy_at_q: int = 0  # buys at exactly the price: accepted pro rata
    sell_in_q: int = 0  # sells priced below: accepted whole
    sell_in_pq: int = 0
    sell_at_q: int = 0
    below: int = -1  # the dearest step priced below the price (-1: none)
    above: int = NONE_ABOVE  # the cheapest step priced above it


def _zone_sums(inst: Instance, prices: dict[Key, Fraction]) -> dict[Key, _Zone]:
    sums = {key: _Zone() for key in prices}
    # Compare integers with num/den by cross-multiplying: no Fraction per step, and the
    # commodity picks a table (no tuple key per step).
    tables: tuple[dict[str, tuple[int, int, _Zone]], ...] = ({}, {})
    for (zone, green), p in prices.items():
        tables[green][zone] = (p.numerator, p.denominator, sums[(zone, green)])
    buy = Side.BUY
    for _, _, side, zone, price, quantity, green in inst.steps:
        num, den, acc = tables[green][zone]
        scaled = price * den
        if scaled > num:
            if price < acc.above:
                acc.above = price
            if side is buy:
                acc.buy_in_q += quantity
                acc.buy_in_pq += price * quantity
        elif scaled < num:
            if price > acc.below:
                acc.below = price
            if side is not buy:
                acc.sell_in_q += quantity
                acc.sell_in_pq += price * quantity
        elif side is buy:
            acc.buy_at_q += quantity
        else:
            acc.sell_at_q += quantity
    return sums


def _ratio(r: Rational | None, group_wh: int, what: str) -> Fraction:
    value = ZERO if r is None else fraction(r)
    if not 0 <= value <= 1:
        raise errors.ClearingInfeasible(f"{what} must be between 0 and 1, not {value}")
    if group_wh == 0 and value != 0:
        raise errors.ClearingMalformed(f"{what} must be 0: no step is priced at its price")
    return value


def _flows(
    inst: Instance, flows: Iterable[LinkFlow]
) -> tuple[dict[tuple[str, str], Fraction], dict[tuple[str, str], Fraction]]:
    """The total flows and their renewable parts (nonzero only)."""
    known = {(link.from_zone, link.to_zone): link for link in inst.links}
    found: dict[tuple[str, str], Fraction] = {}
    green: dict[tuple[str, str], Fraction] = {}
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
        part = ZERO if f.green_wh is None else fraction(f.green_wh)
        if not 0 <= part <= value:
            raise errors.ClearingMalformed(
                f"the renewable part of flow {key[0]}->{key[1]} must be within its {value} Wh"
            )
        if part:
            green[key] = part
    # One commodity both ways only loses energy; renewable energy one way and other energy
    # the other is a swap an optimum may need (renewable-only bids on one side, other bids
    # on the other), so only that is allowed.
    for a, b in found:
        there, back = green.get((a, b), ZERO), green.get((b, a), ZERO)
        if (b, a) in found and (
            (there and back) or (found[(a, b)] > there and found[(b, a)] > back)
        ):
            raise errors.ClearingInfeasible(f"energy flows both ways between {a} and {b}")
    return found, green


def check(inst: Instance, zones: tuple[ZoneClearing, ...], flows: tuple[LinkFlow, ...]) -> Checked:
    """The certificate's exact welfare, or a rejection: malformed, infeasible, not optimal, or
    optimal with a renewable split, headroom duals or prices other than the rules' (in that
    order: each rule is a function of what the ones before it fixed; docs/market.md
    section 11)."""
    checked = check_optimal(inst, zones, flows)
    split = rule_green_flows(inst, checked)
    _must_be(
        split, checked.green_flows, sorted(set(split) | set(checked.green_flows)),
        lambda p: f"the renewable part of flow {p[0]}->{p[1]}",
        "the least the renewable-only bids beyond it need",
    )  # fmt: skip
    bounds = _step_bounds(inst, checked)  # one pass over the steps for both rules
    eta, _ = rule_headroom_duals(inst, checked, bounds)
    _must_be(eta, checked.headroom_dual, inst.zones, lambda z: f"the headroom dual of {z}",
             "the lowest optimal one")  # fmt: skip
    prices, green = rule_prices(inst, checked, bounds)
    _must_be(prices, checked.prices, inst.zones, lambda z: f"the price of {z}",
             "the midpoint of its range of optimal prices")  # fmt: skip
    _must_be(green, checked.green_prices, inst.zones, lambda z: f"the renewable price of {z}",
             "the lowest optimal one at the zone prices")  # fmt: skip
    return checked


def _must_be(
    want: Mapping[T, Fraction],
    got: Mapping[T, Fraction],
    keys: Iterable[T],
    name: Callable[[T], str],
    why: str,
) -> None:
    """Refuse the first value that is not the rule's (a missing one is 0)."""
    for key in keys:
        if want.get(key, ZERO) != got.get(key, ZERO):
            raise errors.ClearingNotOptimal(
                f"{name(key)} must be {want.get(key, ZERO)}, {why}, not {got.get(key, ZERO)}"
            )


def certificate(checked: Checked) -> tuple[tuple[ZoneClearing, ...], tuple[LinkFlow, ...]]:
    """The certificate's zones and flows for a checked clearing (what a solver submits): the
    renewable fields only where they say something (None otherwise)."""

    def opt(value: Fraction, default: Fraction) -> Rational | None:
        return None if value == default else rational(value)

    zones = tuple(
        ZoneClearing(
            z,
            rational(price),
            rational(checked.headroom_dual.get(z, ZERO)),
            rational(checked.buy_ratio[z]),
            rational(checked.sell_ratio[z]),
            opt(checked.price(z, True), price),
            opt(checked.green_buy_ratio.get(z, ZERO), ZERO),
            opt(checked.green_sell_ratio.get(z, ZERO), ZERO),
        )
        for z, price in checked.prices.items()
    )
    flows = tuple(
        LinkFlow(a, b, rational(v), opt(checked.green_flows.get((a, b), ZERO), ZERO))
        for (a, b), v in sorted(checked.flows.items())
    )
    return zones, flows


def check_optimal(
    inst: Instance, zones: tuple[ZoneClearing, ...], flows: tuple[LinkFlow, ...]
) -> Checked:
    """The certificate's exact welfare, or a rejection: malformed, infeasible, not optimal."""
    if tuple(z.zone for z in zones) != inst.zones:
        raise errors.ClearingMalformed(f"the clearing must list the zones {inst.zones} in order")
    prices: dict[Key, Fraction] = {}
    for z in zones:
        prices[(z.zone, False)] = fraction(z.price)
        pg = prices[(z.zone, False)] if z.green_price is None else fraction(z.green_price)
        if pg < prices[(z.zone, False)]:
            raise errors.ClearingNotOptimal(f"the renewable price of {z.zone} is below its price")
        prices[(z.zone, True)] = pg
    sums = _zone_sums(inst, prices)
    ratios: dict[tuple[Key, Side], Fraction] = {}
    for z in zones:
        for green, buy, sell, what in (
            (False, z.buy_ratio, z.sell_ratio, ""),
            (True, z.green_buy_ratio, z.green_sell_ratio, "renewable "),
        ):
            s = sums[(z.zone, green)]
            ratios[((z.zone, green), Side.BUY)] = _ratio(buy, s.buy_at_q, what + "buy ratio")
            ratios[((z.zone, green), Side.SELL)] = _ratio(sell, s.sell_at_q, what + "sell ratio")
    eta = {z.zone: fraction(z.headroom_dual) for z in zones}
    for zone, value in eta.items():
        if value < 0:
            raise errors.ClearingNotOptimal(f"headroom dual of {zone} is negative")
        if zone not in inst.headroom_wh and value != 0:
            raise errors.ClearingMalformed(f"{zone} reports no headroom: its dual must be 0")
    flow, green_flow = _flows(inst, flows)

    balance = {key: ZERO for key in prices}
    inflow = {z: ZERO for z in inst.zones}
    dual = ZERO
    for link in inst.links:
        pair = (link.from_zone, link.to_zone)
        kept = Fraction(BASIS - link.loss_bp, BASIS)
        sent = flow.get(pair, ZERO)
        part = green_flow.get(pair, ZERO)
        inflow[link.to_zone] += sent
        rent = ZERO
        for green, amount in ((False, sent - part), (True, part)):
            balance[(link.from_zone, green)] -= amount
            balance[(link.to_zone, green)] += kept * amount
            gain = kept * prices[(link.to_zone, green)] - prices[(link.from_zone, green)]
            rent = max(rent, gain - eta[link.to_zone])
        dual += rent * link.room_wh
    welfare = ZERO
    downgrade: dict[str, Fraction] = {}
    for zone in inst.zones:
        for green in (True, False):  # the renewable balance first: what it leaves is downgraded
            key = (zone, green)
            s, price = sums[key], prices[key]
            buy_ratio, sell_ratio = ratios[(key, Side.BUY)], ratios[(key, Side.SELL)]
            bought = s.buy_in_q + buy_ratio * s.buy_at_q
            sold = s.sell_in_q + sell_ratio * s.sell_at_q
            balance[key] += sold - bought
            welfare += (
                s.buy_in_pq
                + price * buy_ratio * s.buy_at_q
                - s.sell_in_pq
                - price * sell_ratio * s.sell_at_q
            )
            dual += (s.buy_in_pq - price * s.buy_in_q) + (price * s.sell_in_q - s.sell_in_pq)
        left = balance[(zone, True)]
        if left < 0:
            raise errors.ClearingInfeasible(
                f"renewable-only bids in {zone} take {-left} Wh more than the renewable "
                "energy there"
            )
        downgrade[zone] = left
        balance[(zone, False)] += left
        if balance[(zone, False)] != 0:
            raise errors.ClearingInfeasible(
                f"zone {zone} does not balance: off by {balance[(zone, False)]} Wh"
            )
        limit = inst.headroom_wh.get(zone)
        if limit is not None:
            if inflow[zone] > max(limit, 0):
                raise errors.ClearingInfeasible(f"imports into {zone} exceed its headroom")
            dual += eta[zone] * max(limit, 0)
    if dual != welfare:
        raise errors.ClearingNotOptimal(
            f"duality gap {float(dual - welfare):.6g}: welfare {float(welfare):.6g} is not optimal"
        )
    return Checked(
        {z: prices[(z, False)] for z in inst.zones},
        {z: ratios[((z, False), Side.BUY)] for z in inst.zones},
        {z: ratios[((z, False), Side.SELL)] for z in inst.zones},
        flow,
        welfare,
        eta,
        {z: prices[(z, True)] for z in inst.zones},
        {z: ratios[((z, True), Side.BUY)] for z in inst.zones},
        {z: ratios[((z, True), Side.SELL)] for z in inst.zones},
        green_flow,
        downgrade,
        sums,
    )


# --- the price rule ----------------------------------------------------------------------------
def price_cap(inst: Instance) -> Fraction:
    """The highest price the rule considers: the dearest step, grossed up over the lossiest
    link once per zone (a price the curves leave unbounded above is capped here, one they
    leave unbounded below is floored at 0)."""
    dearest = max(map(itemgetter(4), inst.steps), default=0)
    kept = min((BASIS - link.loss_bp for link in inst.links), default=BASIS)
    return Fraction(dearest) * Fraction(BASIS, max(kept, 1)) ** len(inst.zones)


def _step_bounds(inst: Instance, checked: Checked) -> dict[Key, list[Fraction]]:
    """Each zone's and commodity's [lowest, highest] price its own steps allow, given what
    the clearing accepts (complementary slackness): a step accepted at all bounds the price
    from one side (a buy: at most its price; a sell: at least), one not accepted whole from
    the other. Steps priced below the price (buys rejected, sells accepted) bound it from
    below, steps above it from above; steps at it by their ratios. Read from the check's
    one pass over the steps (`_zone_sums`)."""
    cap = price_cap(inst)
    sums = checked.sums
    if sums is None:
        prices = {(z, g): checked.price(z, g) for z in inst.zones for g in (False, True)}
        sums = _zone_sums(inst, prices)
    bounds = {}
    for key, acc in sums.items():
        lo = ZERO if acc.below < 0 else Fraction(acc.below)
        hi = cap if acc.above == NONE_ABOVE else Fraction(acc.above)
        here = checked.price(*key)
        # Steps exactly at the price: their accepted share bounds one side, the share left
        # the other (a buy: accepted bounds from above; a sell: from below).
        for side, present in ((Side.BUY, acc.buy_at_q), (Side.SELL, acc.sell_at_q)):
            if not present:
                continue
            ratio, buy = checked.ratio(*key, side), side is Side.BUY
            if ratio > 0:
                lo, hi = (lo, min(hi, here)) if buy else (max(lo, here), hi)
            if ratio < 1:
                lo, hi = (max(lo, here), hi) if buy else (lo, min(hi, here))
        bounds[key] = [lo, hi]
    return bounds


def _extremes(
    bounds: dict[Key, list[Fraction]],
    below: list[Edge],
    above: list[Edge],
    start: tuple[dict[Key, Fraction], dict[Key, Fraction]] | None = None,
) -> tuple[dict[Key, Fraction], dict[Key, Fraction]] | None:
    """The lowest and the highest solution of the bounds and the two-variable constraints
    (`below`: x_a >= k x_c - e, `above`: x_a <= k x_c - e), or None when there is none.

    Every constraint has one positive and one negative coefficient, so the solutions are
    closed under the componentwise minimum and maximum: one is lowest in every variable and
    one highest, and the midpoint of two solutions is one (convexity). Both are found by
    raising the lower bounds (and lowering the upper ones) along the constraints until
    nothing changes, re-examining only the constraints of a bound that moved (a work list,
    as in Bellman-Ford); a bound still moving after as many updates as one per variable and
    constraint means there is no solution. `start` (the extremes of a looser system) may
    replace the bounds as the starting point: the answer is the same."""
    ends = []
    limit = len(bounds) * (len(below) + len(above) + 1)
    for side in (0, 1):
        # out[u]: (target, k, e, through): target >= (side 0) or <= (side 1) of k u - e
        # when `through` is False, (u + e) / k when it is True.
        out: dict[Key, list[tuple[Key, Fraction, Fraction, bool]]] = {key: [] for key in bounds}
        for a, c, kept, e in below if side == 0 else above:
            out[c].append((a, kept, e, False))
        for a, c, kept, e in above if side == 0 else below:
            out[a].append((c, kept, e, True))
        value = {key: b[side] for key, b in bounds.items()}
        if start is not None:
            value = dict(start[side])
        queue = list(value)
        waiting = set(queue)
        updates = 0
        while queue:
            u = queue.pop(0)
            waiting.discard(u)
            for target, kept, e, through in out[u]:
                bound = (value[u] + e) / kept if through else kept * value[u] - e
                if (bound > value[target]) if side == 0 else (bound < value[target]):
                    value[target] = bound
                    updates += 1
                    if updates > limit:
                        return None
                    if target not in waiting:
                        queue.append(target)
                        waiting.add(target)
        ends.append(value)
    low, high = ends
    if any(low[key] > high[key] for key in bounds):
        return None
    return low, high


def _relaxed(inst: Instance, checked: Checked) -> tuple[list[Edge], list[Edge]]:
    """The two-variable conditions of complementary slackness on both commodities' prices:
    pi_z <= pi^G_z, equal where renewable energy is downgraded; per link and commodity a->c
    (kept share k) `x_a >= k x_c - eta_c` unless the link is full, `x_a <= k x_c - eta_c` if
    that commodity flows on it. A full link's rent, shared by both commodities, is left out
    (a four-variable condition: it ties the two price differences across the link), so
    these describe a superset of the optimal prices."""
    below: list[Edge] = []
    above: list[Edge] = []
    one = Fraction(1)
    for z in inst.zones:
        below.append(((z, True), (z, False), one, ZERO))
        if checked.downgrade.get(z, ZERO) > 0:
            above.append(((z, True), (z, False), one, ZERO))
    for link in inst.links:
        key = (link.from_zone, link.to_zone)
        kept, sent = Fraction(BASIS - link.loss_bp, BASIS), checked.flows.get(key, ZERO)
        part = checked.green_flows.get(key, ZERO)
        e = checked.headroom_dual.get(link.to_zone, ZERO)
        for green, amount in ((False, sent - part), (True, part)):
            entry = ((link.from_zone, green), (link.to_zone, green), kept, e)
            if sent < link.room_wh:
                below.append(entry)
            if amount > 0:
                above.append(entry)
    return below, above


COUPLING_ROUNDS = 8


def _tightened(
    inst: Instance, checked: Checked, bounds: dict[Key, list[Fraction]]
) -> tuple[dict[Key, Fraction], dict[Key, Fraction]] | None:
    """The lowest and highest prices of `_relaxed`, tightened by what a full link's shared
    rent implies. On a full link a->c (kept share k) carrying both commodities the price
    differences d^m = x^m_a - k x^m_c are equal; carrying only ordinary energy, d^G >= d^O;
    only renewable, d^O >= d^G. Each is four-variable, but the current bounds give each
    difference a range, and `d^O <= highest d^G` (and the like) is then a two-variable
    condition every optimal price vector meets. Adding them and recomputing, a fixed number
    of rounds or until nothing changes, narrows the superset without losing an optimum."""
    below, above = _relaxed(inst, checked)
    coupled: list[tuple[Key, Key, Key, Key, Fraction, int]] = []
    for link in inst.links:
        pair = (link.from_zone, link.to_zone)
        sent = checked.flows.get(pair, ZERO)
        if link.room_wh == 0 or sent < link.room_wh:
            continue
        part = checked.green_flows.get(pair, ZERO)
        kind = 0 if 0 < part < sent else (-1 if part == sent else 1)
        a, c = link.from_zone, link.to_zone
        kept = Fraction(BASIS - link.loss_bp, BASIS)
        coupled.append(((a, False), (c, False), (a, True), (c, True), kept, kind))
    found = _extremes(bounds, below, above)
    for _ in range(COUPLING_ROUNDS if coupled else 0):
        if found is None:
            return None
        low, high = found
        more_below, more_above = list(below), list(above)
        for oa, oc, ga, gc, kept, kind in coupled:
            d_o = (low[oa] - kept * high[oc], high[oa] - kept * low[oc])
            d_g = (low[ga] - kept * high[gc], high[ga] - kept * low[gc])
            if kind >= 0:  # d^G >= d^O
                more_above.append((oa, oc, kept, -d_g[1]))
                more_below.append((ga, gc, kept, -d_o[0]))
            if kind <= 0:  # d^O >= d^G
                more_below.append((oa, oc, kept, -d_g[0]))
                more_above.append((ga, gc, kept, -d_o[1]))
        tighter = _extremes(bounds, more_below, more_above, found)
        if tighter == found:
            break
        found = tighter
    return found


def price_range(
    inst: Instance, checked: Checked, bounds: dict[Key, list[Fraction]] | None = None
) -> tuple[dict[str, Fraction], dict[str, Fraction]]:
    """The lowest and the highest price of every zone the rule considers (its first stage),
    the headroom duals given: with no renewable-only bids, exactly its range of optimal
    prices (the renewable prices then equal the zone prices)."""
    found = _tightened(inst, checked, bounds or _step_bounds(inst, checked))
    if found is None:
        raise errors.ClearingNotOptimal("the optimal prices have no lowest or highest value")
    low, high = found
    return {z: low[(z, False)] for z in inst.zones}, {z: high[(z, False)] for z in inst.zones}


def green_floor(
    inst: Instance,
    checked: Checked,
    prices: dict[str, Fraction],
    bounds: dict[Key, list[Fraction]] | None = None,
) -> dict[str, Fraction] | None:
    """The lowest renewable prices that are optimal with the zone prices `prices`, or None
    when no renewable prices are. With the zone prices fixed every condition on the
    renewable prices has two variables (a full link's rent is then known where any energy
    flows on it, and bounded below by the ordinary rent where only renewable energy does),
    so a lowest solution exists whenever any does."""
    bounds = bounds or _step_bounds(inst, checked)
    green: dict[Key, list[Fraction]] = {}
    for z in inst.zones:
        lo, hi = bounds[(z, True)]
        lo = max(lo, prices[z])
        if checked.downgrade.get(z, ZERO) > 0:
            hi = min(hi, prices[z])
        green[(z, True)] = [lo, hi]
    below: list[Edge] = []
    above: list[Edge] = []
    for link in inst.links:
        key = (link.from_zone, link.to_zone)
        a, c = (link.from_zone, True), (link.to_zone, True)
        kept, sent = Fraction(BASIS - link.loss_bp, BASIS), checked.flows.get(key, ZERO)
        part = checked.green_flows.get(key, ZERO)
        e = checked.headroom_dual.get(link.to_zone, ZERO)
        rent = kept * prices[link.to_zone] - e - prices[link.from_zone]  # the ordinary rent
        if sent < link.room_wh:
            below.append((a, c, kept, e))
            if part > 0:
                above.append((a, c, kept, e))
        elif sent > part:  # full, and ordinary energy on it fixes the rent
            if rent < 0:
                return None
            below.append((a, c, kept, e + rent))
            if part > 0:
                above.append((a, c, kept, e + rent))
        elif part > 0:  # full with renewable energy only: its rent is at least the ordinary
            above.append((a, c, kept, e + max(rent, ZERO)))
    found = _extremes(green, below, above)
    return None if found is None else {z: found[0][(z, True)] for z in inst.zones}


Var = tuple[str, bool | None]  # a price (zone, renewable commodity) or a headroom dual (zone, None)
Row = tuple[dict[Var, Fraction], Fraction]  # sum of coef * value <= rhs


def _gain(link: Link, green: bool, sign: Fraction) -> dict[Var, Fraction]:
    """sign * (k x_c - x_a) for a commodity across a link: its rent plus the headroom dual."""
    kept = Fraction(BASIS - link.loss_bp, BASIS)
    return {(link.to_zone, green): sign * kept, (link.from_zone, green): -sign}


def _optimal_rows(
    inst: Instance,
    checked: Checked,
    bounds: dict[Key, list[Fraction]],
    free: Collection[str] = (),
) -> list[Row]:
    """Every condition of complementary slackness on both commodities' prices, the headroom
    duals given, as rows `sum coef * x <= rhs`: the polyhedron of optimal price vectors
    itself, a full link's shared rent included (eliminated: where both commodities flow on
    it their rents are equal and >= 0, where one does its rent is >= 0 and >= the other's).
    The headroom duals of the zones in `free` are variables too, (zone, None), >= 0: then
    the rows are the polyhedron of optimal duals."""
    rows: list[Row] = []
    one = Fraction(1)
    for key, (lo, hi) in bounds.items():
        rows.append(({key: -one}, -lo))
        rows.append(({key: one}, hi))
    for z in inst.zones:
        rows.append(({(z, False): one, (z, True): -one}, ZERO))
        if checked.downgrade.get(z, ZERO) > 0:
            rows.append(({(z, True): one, (z, False): -one}, ZERO))
    for z in free:
        rows.append(({(z, None): -one}, ZERO))
    for link in inst.links:
        pair = (link.from_zone, link.to_zone)
        sent = checked.flows.get(pair, ZERO)
        part = checked.green_flows.get(pair, ZERO)
        dual: dict[Var, Fraction] = {}
        if link.to_zone in free:  # gain - eta <= 0 and the like, eta a variable
            e, dual[(link.to_zone, None)] = ZERO, -one
        else:
            e = checked.headroom_dual.get(link.to_zone, ZERO)
        back = {key: -c for key, c in dual.items()}
        carried = ((False, sent - part), (True, part))
        if sent < link.room_wh:  # no rent: each commodity gains at most e, exactly where it flows
            for green, amount in carried:
                rows.append(({**_gain(link, green, one), **dual}, e))
                if amount > 0:
                    rows.append(({**_gain(link, green, -one), **back}, -e))
        elif sent > 0:  # full: one rent >= 0, each flowing commodity's gain is the largest
            for green, amount in carried:
                if amount > 0:
                    rows.append(({**_gain(link, green, -one), **back}, -e))
                    rows.append(({**_gain(link, green, -one), **_gain(link, not green, one)}, ZERO))
    return rows


def _substituted(rows: list[Row], fixed: dict[Var, Fraction]) -> list[Row]:
    """The rows with the fixed prices moved into the right-hand sides (rows left with no
    variable dropped: the fixed prices are optimal, so they hold). Fewer columns make the
    exact programmes cheaper."""
    out: list[Row] = []
    for coefs, rhs in rows:
        rest = {key: c for key, c in coefs.items() if key not in fixed}
        if rest:
            out.append(
                (rest, rhs - sum((c * fixed[k] for k, c in coefs.items() if k in fixed), ZERO))
            )
    return out


def _merged(coefs: dict[Var, Fraction], rhs: Fraction, same: dict[Var, Var]) -> Row:
    """A row with each price in `same` replaced by the price it equals (zero terms dropped)."""
    out: dict[Var, Fraction] = {}
    for key, c in coefs.items():
        key = same.get(key, key)
        out[key] = out.get(key, ZERO) + c
    return {key: c for key, c in out.items() if c}, rhs


def exact_midpoints(
    inst: Instance,
    checked: Checked,
    bounds: dict[Key, list[Fraction]] | None = None,
    known: tuple[dict[Key, Fraction], dict[Key, Fraction]] | None = None,
) -> dict[str, Fraction]:
    """Zone prices chosen zone by zone, in sorted order: each the midpoint of its exact range
    of optimal prices given the zones before it, each range two small exact linear
    programmes over `_optimal_rows`. The midpoint of a range is optimal (it lies between two
    optima), so every zone's range is nonempty and some renewable prices are optimal with
    the result; the values depend only on the allocation, not on the prices it came with.
    `known` (lowest and highest values of a superset of the optimal prices, the first
    stage's) fixes the prices it leaves one value, without a programme, and so do the
    equalities between two prices (`_ties`) once one of them is fixed."""
    rows = _optimal_rows(inst, checked, bounds or _step_bounds(inst, checked))
    # Where renewable energy is downgraded its price is the zone price: one column for both.
    same: dict[Var, Var] = {
        (z, True): (z, False) for z in inst.zones if checked.downgrade.get(z, ZERO) > 0
    }
    rows = [_merged(coefs, rhs, same) for coefs, rhs in rows]
    rows = [(coefs, rhs) for coefs, rhs in rows if coefs]  # pi <= pi^G there: 0 <= 0
    point: dict[Var, Fraction] = {
        (z, g): checked.price(z, g) for z in inst.zones for g in (False, True) if (z, g) not in same
    }
    fixed: dict[Var, Fraction] = {}
    if known is not None:
        fixed = {key: low for key, low in known[0].items() if known[1][key] == low}
    ties = _ties(rows)
    _propagate(fixed, ties)
    for z in inst.zones:
        key = (z, False)
        if key in fixed:
            continue
        live = {k: v for k, v in point.items() if k not in fixed}
        low, at_low, high, at_high = exact_lp.extent(_substituted(rows, fixed), live, key)
        fixed[key] = (low + high) / 2
        point.update({k: (at_low[k] + at_high[k]) / 2 for k in live})
        _propagate(fixed, ties)
    return {z: fixed[(z, False)] for z in inst.zones}


Tie = tuple[Var, Fraction, Var, Fraction, Fraction]  # c_u u + c_v v = r


def _ties(rows: list[Row]) -> list[Tie]:
    """The two-price equalities among the rows (a row and its negation, both tight): an
    uncongested link carrying a commodity ties its two prices by the loss, and so on."""
    tightest: dict[frozenset[tuple[Var, Fraction]], Fraction] = {}
    for coefs, rhs in rows:
        if len(coefs) == 2:
            shape = frozenset(coefs.items())
            tightest[shape] = min(rhs, tightest.get(shape, rhs))
    ties: list[Tie] = []
    for shape, rhs in tightest.items():
        if tightest.get(frozenset((key, -c) for key, c in shape)) == -rhs:
            (u, cu), (v, cv) = sorted(shape, key=lambda item: (item[0][0], str(item[0][1])))
            ties.append((u, cu, v, cv, rhs))
    return ties


def _propagate(fixed: dict[Var, Fraction], ties: list[Tie]) -> None:
    """Fix every price an equality ties to a fixed one. Its exact range is that one value,
    so this is what its two programmes would give, without them: where links tie the
    zones together, one zone's programmes fix them all."""
    moved = True
    while moved:
        moved = False
        for u, cu, v, cv, rhs in ties:
            if (u in fixed) != (v in fixed):
                if u in fixed:
                    fixed[v] = (rhs - cu * fixed[u]) / cv
                else:
                    fixed[u] = (rhs - cv * fixed[v]) / cu
                moved = True


Pair = tuple[str, str]


def _kept(link: Link) -> Fraction:
    return Fraction(BASIS - link.loss_bp, BASIS)


def rule_green_flows(inst: Instance, checked: Checked) -> dict[Pair, Fraction]:
    """The rule's renewable part of every flow, given the accepted quantities and the total
    flows: link by link in (from, to) order, each the least it can be given the links
    before it (a lexicographic minimum), so renewable energy crosses a link as renewable
    only where renewable-only bids beyond need it, and is otherwise downgraded (sold as any
    energy) as early as it can be. Every split of the same flows that leaves each zone's
    downgrade >= 0 has the same welfare, so it is optimal with the same duals: the split
    is the one thing left to choose, and the rule chooses it from the allocation alone.

    With s_z a zone's accepted renewable offers less its renewable-only bids, the splits
    are g with 0 <= g_l <= f_l and `sum_{z->c} g_zc - sum_{a->z} k_az g_az <= s_z` in every
    zone: one small exact programme (a row per zone and two per flow). Where no zone is
    short of renewable energy (every s_z >= 0) the rule is no renewable flow at all. The
    lexicographic minimum never sends renewable energy both ways across a link (less both
    ways is feasible); other energy both ways, where no renewable energy needs to cross,
    is refused by the form as before."""
    found = split_rows(inst, checked)
    if found is None:
        return {}
    rows, start = found
    point = exact_lp.lexicographic_minimum(rows, start, list(start))
    return {pair: value for pair, value in point.items() if value}


SplitRows = list[tuple[dict[Pair, Fraction], Fraction]]


def split_rows(inst: Instance, checked: Checked) -> tuple[SplitRows, dict[Pair, Fraction]] | None:
    """The polyhedron of the optimal renewable splits of the certificate's flows (rows `sum
    coef * g <= rhs`) and the certificate's split in it, flows in (from, to) order; None
    where no zone is short of renewable energy (no renewable flow is then the least)."""
    links = {(link.from_zone, link.to_zone): link for link in inst.links}
    surplus = dict(checked.downgrade)  # the downgrade with no renewable flow is s_z
    for (a, c), part in checked.green_flows.items():
        surplus[a] += part
        surplus[c] -= _kept(links[(a, c)]) * part
    if all(value >= 0 for value in surplus.values()):
        return None
    flowing = sorted(checked.flows)
    one = Fraction(1)
    rows: SplitRows = []
    for pair in flowing:
        rows.append(({pair: -one}, ZERO))
        rows.append(({pair: one}, checked.flows[pair]))
    for z in inst.zones:
        coefs = {pair: one for pair in flowing if pair[0] == z}
        coefs.update({pair: -_kept(links[pair]) for pair in flowing if pair[1] == z})
        if coefs:
            rows.append((coefs, surplus[z]))
    return rows, {pair: checked.green_flows.get(pair, ZERO) for pair in flowing}


def binding_zones(inst: Instance, checked: Checked) -> list[str]:
    """The zones whose reported headroom the flows fill: the only ones whose dual may be
    positive (elsewhere the zero duality gap makes it 0)."""
    inflow = {z: ZERO for z in inst.zones}
    for (_, c), value in checked.flows.items():
        inflow[c] += value
    heads = inst.headroom_wh
    return [z for z in inst.zones if z in heads and inflow[z] >= max(heads[z], 0)]


def _eta_floor(
    inst: Instance, checked: Checked, bounds: dict[Key, list[Fraction]], zones: Collection[str]
) -> dict[str, Fraction]:
    """A lower bound on each zone's headroom dual over all optimal duals: a link into it that
    is not full earns no rent, so the dual is at least either commodity's gain across it,
    k pi_c - pi_a, and so at least k (lowest pi_c) - (highest pi_a) by the steps' bounds."""
    floor = dict.fromkeys(zones, ZERO)
    for link in inst.links:
        a, c = link.from_zone, link.to_zone
        if c not in floor or checked.flows.get((a, c), ZERO) >= link.room_wh:
            continue
        for green in (False, True):
            low = bounds[(c, green)][0]
            high = bounds[(a, green)][1]
            if green:  # pi^G >= pi
                low = max(low, bounds[(c, False)][0])
            else:
                high = min(high, bounds[(a, True)][1])
            floor[c] = max(floor[c], _kept(link) * low - high)
    return floor


def rule_headroom_duals(
    inst: Instance, checked: Checked, bounds: dict[Key, list[Fraction]] | None = None
) -> tuple[dict[str, Fraction], dict[Var, Fraction]]:
    """The rule's headroom duals, and optimal prices with them: zone by zone in sorted order,
    each the lowest optimal one given the zones before it (a lexicographic minimum over the
    polyhedron of optimal duals, `_optimal_rows` with the duals free), as a renewable price
    is the lowest optimal one: import room is priced only as much as the curves force.
    A dual is positive only where the headroom binds, so elsewhere it is 0 without a
    programme; where each certificate dual already meets `_eta_floor`, a lower bound, it is
    lowest in every zone at once, also without one."""
    eta = {z: checked.headroom_dual.get(z, ZERO) for z in inst.zones}
    point: dict[Var, Fraction] = {
        (z, g): checked.price(z, g) for z in inst.zones for g in (False, True)
    }
    binding = binding_zones(inst, checked)
    if not binding:
        return eta, point
    bounds = bounds or _step_bounds(inst, checked)
    floor = _eta_floor(inst, checked, bounds, binding)
    if all(eta[z] == floor[z] for z in binding):
        return eta, point
    rows = _optimal_rows(inst, checked, bounds, binding)
    point.update({(z, None): eta[z] for z in binding})
    point = exact_lp.lexicographic_minimum(rows, point, [(z, None) for z in binding])
    return {z: point[(z, None)] if z in binding else ZERO for z in inst.zones}, point


def rule_prices(
    inst: Instance, checked: Checked, bounds: dict[Key, list[Fraction]] | None = None
) -> tuple[dict[str, Fraction], dict[str, Fraction]]:
    """The rule's zone prices and renewable prices for the certificate's allocation.

    First each zone price is the midpoint of its range (`price_range`); then each renewable
    price is the lowest optimal one at those zone prices (`green_floor`), so it equals the
    zone price unless renewable energy is short there. Where a full link's shared rent
    leaves no renewable prices optimal at those midpoints (the first stage's ranges were
    wider than the optimal set), or the tightening does not settle (a cycle of links whose
    implied bounds approach their limit without reaching it), the zone prices are instead
    the exact midpoints zone by zone (`exact_midpoints`), and the renewable prices the
    lowest optimal ones at them (docs/market.md section 11): one price vector for every
    allocation, its renewable split and its headroom duals (which `check` pins first)."""
    bounds = bounds or _step_bounds(inst, checked)  # one pass over the steps for all stages
    found = _tightened(inst, checked, bounds)
    green = None
    if found is not None:
        prices = {z: (found[0][(z, False)] + found[1][(z, False)]) / 2 for z in inst.zones}
        green = green_floor(inst, checked, prices, bounds)
    if green is None:
        prices = exact_midpoints(inst, checked, bounds, found)
        green = green_floor(inst, checked, prices, bounds)
        if green is None:  # cannot happen: the exact midpoints are optimal
            raise errors.ClearingNotOptimal("no renewable prices are optimal at the zone prices")
    return prices, green


def reprice(
    inst: Instance,
    checked: Checked,
    prices: dict[str, Fraction],
    green: dict[str, Fraction],
    eta: dict[str, Fraction] | None = None,
) -> Checked:
    """The same allocation at other optimal prices (and headroom duals `eta`, if given):
    each step keeps its accepted quantity, and the ratios become the accepted shares of the
    steps at the new prices (steps of one price share one ratio in every certificate, so
    the share is the same for each)."""
    eta = checked.headroom_dual if eta is None else eta
    moved = Checked(
        prices, {}, {}, checked.flows, checked.welfare, eta, green,
        {}, {}, checked.green_flows, checked.downgrade,
    )  # fmt: skip
    taken: dict[tuple[str, bool, Side], list[Fraction]] = {}
    for s in inst.steps:
        if s.price == moved.price(s.zone, s.green):
            got = taken.setdefault((s.zone, s.green, s.side), [ZERO, ZERO])
            got[0] += checked.accepted(s)
            got[1] += s.quantity_wh
    for (zone, green_step, side), (done, total) in taken.items():
        if side is Side.BUY:
            ratios = moved.green_buy_ratio if green_step else moved.buy_ratio
        else:
            ratios = moved.green_sell_ratio if green_step else moved.sell_ratio
        ratios[zone] = done / total if total else ZERO
    for ratios in (moved.buy_ratio, moved.sell_ratio, moved.green_buy_ratio,
                   moved.green_sell_ratio):  # fmt: skip
        for zone in inst.zones:
            ratios.setdefault(zone, ZERO)
    return moved


def canonical(inst: Instance, checked: Checked) -> Checked:
    """An optimal certificate moved to the rules' values, what `check` accepts: the same
    accepted quantities and flows with the rule's renewable split (`rule_green_flows`), the
    rule's headroom duals (`rule_headroom_duals`) and the rule's prices (`rule_prices`)."""
    split = rule_green_flows(inst, checked)
    if split != checked.green_flows:  # another split of the same flows is optimal too
        checked = check_optimal(inst, *certificate(replace(checked, green_flows=split)))
    bounds = _step_bounds(inst, checked)
    eta, point = rule_headroom_duals(inst, checked, bounds)
    if eta != checked.headroom_dual:
        prices = {z: point[(z, False)] for z in inst.zones}
        green = {z: point[(z, True)] for z in inst.zones}
        checked = reprice(inst, checked, prices, green, eta)
        bounds = _step_bounds(inst, checked)
    prices, green = rule_prices(inst, checked, bounds)
    return reprice(inst, checked, prices, green)
