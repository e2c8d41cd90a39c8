"""The auction solver against an independent formulation, and the certificate check against
corruption: random instances (up to 7 zones, 200 steps per zone) solved by SciPy's
`linprog` step by step (no grouping, its own signs) agree with the solver's exact
certificate on welfare within 1e-9 relative and on every price the curves determine; and a
certificate with any quantity changed, or any price or dual moved, is refused unless it is
another optimal certificate of the same welfare."""

from __future__ import annotations

import random
from fractions import Fraction

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from scipy.sparse import lil_matrix

from gridtokenx.ledger import genesis
from gridtokenx.ledger.market import clearing, exact_lp
from gridtokenx.ledger.market.clearing import Instance, Link, Step
from gridtokenx.node import auction_solver
from gridtokenx.wire import errors
from gridtokenx.wire.tx import LinkFlow, Rational, Side, SubmitAuctionClearing, ZoneClearing

ZONES = ("BKK", "CEN", "EST", "NEA", "NTH", "STH", "WST")


def random_instance(seed: int, zones: int = 7, steps: int = 200, green: float = 0.0) -> Instance:
    """The devnet's interconnectors and losses, random rooms (some zero, some binding),
    random headroom on a few zones, and `steps` random steps per zone, a share `green` of
    them renewable (offers from renewable sellers, renewable-only bids)."""
    rng = random.Random(seed)
    chosen = tuple(sorted(ZONES[:zones]))
    links = []
    for a, b, _, loss in genesis.INTERCONNECTORS:
        if a in chosen and b in chosen:
            for x, y in ((a, b), (b, a)):
                links.append(Link(x, y, loss, rng.choice([0, 2_000, 20_000, 10**8])))
    links.sort(key=lambda link: (link.from_zone, link.to_zone))
    headroom = {z: rng.choice([5_000, 50_000]) for z in chosen if rng.random() < 0.3}
    body = []
    for zone in chosen:
        bias = rng.randrange(-100, 100)
        for i in range(steps):
            side = rng.choice([Side.BUY, Side.SELL])
            price = max(0, min(1_000, rng.randrange(150, 550, rng.choice([1, 10, 50])) + bias))
            wh = rng.randrange(100, 3_000, 100)
            body.append(Step(len(body), i, side, zone, price, wh, rng.random() < green))
    return Instance(chosen, tuple(links), headroom, tuple(body))


def scipy_reference(inst: Instance) -> tuple[float, dict[str, float]]:
    """Welfare and zone prices (balance duals) of the same LP, one column per step."""
    zrow = {z: i for i, z in enumerate(inst.zones)}
    head = [z for z in inst.zones if z in inst.headroom_wh]
    n = len(inst.steps) + len(inst.links)
    a_eq = lil_matrix((len(inst.zones), n))
    a_ub = lil_matrix((max(1, len(head)), n))
    c = np.zeros(n)
    bounds = []
    for j, s in enumerate(inst.steps):
        if s.side is Side.BUY:
            c[j], a_eq[zrow[s.zone], j] = -s.price, -1.0
        else:
            c[j], a_eq[zrow[s.zone], j] = s.price, 1.0
        bounds.append((0, s.quantity_wh))
    for k, link in enumerate(inst.links):
        j = len(inst.steps) + k
        a_eq[zrow[link.from_zone], j] = -1.0
        a_eq[zrow[link.to_zone], j] = 1 - link.loss_bp / 10_000
        if link.to_zone in head:
            a_ub[head.index(link.to_zone), j] = 1.0
        bounds.append((0, link.room_wh))
    res = linprog(
        c,
        A_ub=a_ub.tocsr() if head else None,
        b_ub=[inst.headroom_wh[z] for z in head] if head else None,
        A_eq=a_eq.tocsr(),
        b_eq=np.zeros(len(inst.zones)),
        bounds=bounds,
        method="highs",
    )
    assert res.status == 0, res.message
    return -res.fun, {z: res.eqlin.marginals[i] for i, z in enumerate(inst.zones)}


@pytest.mark.parametrize("seed", range(12))
def test_the_solver_agrees_with_an_independent_scipy_formulation(seed: int) -> None:
    rng = random.Random(seed)
    inst = random_instance(seed, zones=rng.randint(1, 7), steps=rng.choice([5, 50, 200]))
    solution = auction_solver.solve(inst, 0)
    checked = clearing.check(inst, solution.body.zones, solution.body.flows)  # as validators do
    welfare, prices = scipy_reference(inst)
    assert float(checked.welfare) == pytest.approx(welfare, rel=1e-9, abs=1e-6)
    # A zone with a step accepted in part has its price fixed by that step in every optimum.
    determined = 0
    for z in solution.body.zones:
        ratios = (clearing.fraction(z.buy_ratio), clearing.fraction(z.sell_ratio))
        if any(0 < r < 1 for r in ratios):
            determined += 1
            assert float(checked.prices[z.zone]) == pytest.approx(prices[z.zone], abs=1e-6)
    if len(inst.steps) >= 50 * len(inst.zones):
        assert determined  # the comparison of prices is not vacuous


# --- corruption ------------------------------------------------------------------------------
ZONE_FIELDS = ("price", "headroom_dual", "buy_ratio", "sell_ratio", "green_price",
               "green_buy_ratio", "green_sell_ratio")  # fmt: skip


def _fields(body: SubmitAuctionClearing) -> list[tuple[str, int, str]]:
    found = [("zone", i, name) for i in range(len(body.zones)) for name in ZONE_FIELDS]
    return found + [
        ("flow", i, name) for i in range(len(body.flows)) for name in ("wh", "green_wh")
    ]


def _corrupt(
    body: SubmitAuctionClearing, where: tuple[str, int, str], delta: Fraction
) -> SubmitAuctionClearing:
    kind, i, name = where
    items = list(body.zones if kind == "zone" else body.flows)
    was = getattr(items[i], name)
    if was is None:  # a renewable field left out: the zone price, or 0
        was = items[i].price if name == "green_price" else Rational(0, 1)  # type: ignore[union-attr]
    value = clearing.fraction(was) + delta
    items[i] = msgspec.structs.replace(items[i], **{name: clearing.rational(value)})
    if kind == "zone":
        return msgspec.structs.replace(body, zones=tuple(items))
    return msgspec.structs.replace(body, flows=tuple(items))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    pick=st.integers(0, 10**6),
    delta=st.tuples(st.integers(1, 50_000), st.integers(1, 97), st.booleans()).map(
        lambda t: Fraction(t[0], t[1]) * (1 if t[2] else -1)
    ),
)
def test_a_corrupted_certificate_is_refused(seed: int, pick: int, delta: Fraction) -> None:
    """Every field, corrupted by any amount, is refused: a price, ratio or flow breaks
    feasibility or optimality, and what could still be optimal (an undetermined price, a
    headroom dual where the headroom binds, a flow's renewable part where renewable energy
    could be downgraded before the link or after it) is pinned by its rule (docs/market.md
    section 11). With renewable steps in two instances of three: their prices, ratios and
    the renewable part of each flow are corrupted too (the downgrade is not sent: it is
    what the renewable balance leaves, so corrupting any of those moves it)."""
    inst = random_instance(seed, zones=1 + seed % 7, steps=20, green=(0.0, 0.2, 0.5)[seed % 3])
    body = auction_solver.solve(inst, 0).body
    fields = _fields(body)
    where = fields[pick % len(fields)]
    bad = _corrupt(body, where, delta)
    with pytest.raises(
        (errors.ClearingMalformed, errors.ClearingInfeasible, errors.ClearingNotOptimal)
    ) as refused:
        clearing.check(inst, bad.zones, bad.flows)
    event(f"refused: {refused.value.code} ({where[2]})")


def test_every_field_of_a_certificate_is_load_bearing() -> None:
    """Moving any one field of a solved certificate by any amount is refused: ratios and
    flows pin the zone balances, and prices, headroom duals and renewable parts are pinned
    by their rules."""
    inst = random_instance(3, zones=7, steps=50, green=0.3)
    body = auction_solver.solve(inst, 0).body
    assert any(f.green_wh for f in body.flows)  # renewable energy crosses links
    assert any(z.headroom_dual != Rational(0, 1) for z in body.zones)  # a headroom binds
    for where in _fields(body):
        for delta in (Fraction(1, 7), Fraction(-1, 3), Fraction(1000)):
            bad = _corrupt(body, where, delta)
            with pytest.raises(errors.Rejection):
                clearing.check(inst, bad.zones, bad.flows)


def test_a_price_is_refused_when_it_breaks_the_step_rule() -> None:
    """Raising a zone price above every step there rejects all its buys and accepts all its
    sells: the balance breaks."""
    inst = random_instance(5, zones=3, steps=40)
    body = auction_solver.solve(inst, 0).body
    bad = _corrupt(body, ("zone", 0, "price"), Fraction(2_000))
    refusals = (errors.ClearingMalformed, errors.ClearingInfeasible, errors.ClearingNotOptimal)
    with pytest.raises(refusals):
        clearing.check(inst, bad.zones, bad.flows)
    assert Rational(1, 1) == clearing.rational(Fraction(1))


# --- the midpoint rule ------------------------------------------------------------------------
def _certificate(
    inst: Instance,
    prices: dict[str, Fraction],
    flows: dict[tuple[str, str], Fraction],
    ratios: dict[str, tuple[Fraction, Fraction]] | None = None,
) -> tuple[tuple[ZoneClearing, ...], tuple[LinkFlow, ...]]:
    ratios = ratios or {}
    zones = tuple(
        ZoneClearing(z, clearing.rational(prices[z]), Rational(0, 1),
                     *(clearing.rational(r) for r in ratios.get(z, (Fraction(0), Fraction(0)))))
        for z in inst.zones
    )  # fmt: skip
    return zones, tuple(LinkFlow(a, b, clearing.rational(v)) for (a, b), v in flows.items())


def test_a_price_the_curves_leave_undetermined_must_be_the_midpoint_of_its_range() -> None:
    """One zone: a 1,000 Wh offer at 200 and a 1,000 Wh bid at 300 clear whole at any price
    from 200 to 300. Every such price is optimal (same welfare); only 250 is the rule's."""
    inst = Instance(("BKK",), (), {}, (Step(1, 0, Side.SELL, "BKK", 200, 1_000),
                                       Step(2, 0, Side.BUY, "BKK", 300, 1_000)))  # fmt: skip
    whole_sell, whole_buy = (Fraction(0), Fraction(1)), (Fraction(1), Fraction(0))
    cases = ((Fraction(220), None), (Fraction(200), whole_sell), (Fraction(300), whole_buy),
             (Fraction(250), None))  # fmt: skip
    for price, ratios in cases:
        zones, flows = _certificate(inst, {"BKK": price}, {}, ratios and {"BKK": ratios})
        optimal = clearing.check_optimal(inst, zones, flows)  # valid: zero duality gap
        assert optimal.welfare == 1_000 * (300 - 200)
        if price != 250:
            with pytest.raises(errors.ClearingNotOptimal, match="midpoint"):
                clearing.check(inst, zones, flows)
        else:
            assert clearing.check(inst, zones, flows).prices == {"BKK": Fraction(250)}
    assert auction_solver.solve(inst, 0).body.zones[0].price == Rational(250, 1)


def test_across_an_uncongested_lossy_link_the_midpoints_keep_the_loss_between_prices() -> None:
    """CEN offers 1,000 Wh at 200, BKK bids 990 Wh at 300 over a link keeping 99 %: every
    price pair with pi_CEN = 0.99 pi_BKK and 200 <= pi_CEN, pi_BKK <= 300 is optimal. The
    rule takes each zone's midpoint, (200 + 297) / 2 and (200 / 0.99 + 300) / 2, and they
    keep the link's loss between them (the midpoint of two optimal price vectors)."""
    inst = Instance(
        ("BKK", "CEN"),
        (Link("BKK", "CEN", 100, 5_000), Link("CEN", "BKK", 100, 5_000)),
        {},
        (Step(1, 0, Side.SELL, "CEN", 200, 1_000), Step(2, 0, Side.BUY, "BKK", 300, 990)),
    )
    kept = Fraction(99, 100)
    low, high = clearing.price_range(inst, clearing.check_optimal(
        inst, *_certificate(inst, {"BKK": Fraction(250) / kept, "CEN": Fraction(250)},
                            {("CEN", "BKK"): Fraction(1_000)})))  # fmt: skip
    assert (low, high) == ({"BKK": 200 / kept, "CEN": Fraction(200)},
                           {"BKK": Fraction(300), "CEN": 300 * kept})  # fmt: skip
    mid = {"CEN": (200 + 300 * kept) / 2, "BKK": (200 / kept + 300) / 2}
    assert mid["CEN"] == kept * mid["BKK"]
    body = auction_solver.solve(inst, 0).body
    assert {z.zone: clearing.fraction(z.price) for z in body.zones} == mid
    off = _certificate(inst, {"BKK": Fraction(250) / kept, "CEN": Fraction(250)},
                       {("CEN", "BKK"): Fraction(1_000)})  # fmt: skip
    with pytest.raises(errors.ClearingNotOptimal, match="midpoint"):
        clearing.check(inst, *off)


@pytest.mark.parametrize("seed", range(8))
def test_every_solved_price_is_its_zones_midpoint_and_any_other_is_refused(seed: int) -> None:
    inst = random_instance(seed, zones=1 + seed % 7, steps=30)
    body = auction_solver.solve(inst, 0).body
    checked = clearing.check(inst, body.zones, body.flows)
    low, high = clearing.price_range(inst, checked)
    for i, zone in enumerate(inst.zones):
        assert low[zone] <= checked.prices[zone] == (low[zone] + high[zone]) / 2 <= high[zone]
        if low[zone] < high[zone]:  # an undetermined price: a quarter of the way is refused
            moved = _corrupt(body, ("zone", i, "price"), (high[zone] - low[zone]) / 4)
            with pytest.raises(errors.ClearingNotOptimal):
                clearing.check(inst, moved.zones, moved.flows)


# --- the rule for the headroom duals ------------------------------------------------------------
def _at_highest_eta(inst: Instance, checked: clearing.Checked) -> tuple[str, clearing.Checked]:
    """The same allocation at other optimal duals: the first binding headroom's dual at its
    highest, and the price rule's prices given it (a certificate the old check accepted)."""
    bounds = clearing._step_bounds(inst, checked)
    binding = clearing.binding_zones(inst, checked)
    rows = clearing._optimal_rows(inst, checked, bounds, binding)
    start: dict[clearing.Var, Fraction] = {
        (z, g): checked.price(z, g) for z in inst.zones for g in (False, True)
    }
    start.update({(z, None): checked.headroom_dual[z] for z in binding})
    for zone in binding:
        high, point = exact_lp.optimise(rows, start, (zone, None), maximise=True)
        if high > checked.headroom_dual[zone]:
            eta = {z: point[(z, None)] if z in binding else Fraction(0) for z in inst.zones}
            moved = clearing.reprice(
                inst, checked, {z: point[(z, False)] for z in inst.zones},
                {z: point[(z, True)] for z in inst.zones}, eta,
            )  # fmt: skip
            return zone, clearing.reprice(inst, moved, *clearing.rule_prices(inst, moved))
    raise AssertionError("every headroom dual is determined")


def _headroom_instance() -> Instance:
    """CEN offers 1,000 Wh at 200 and BKK bids 990 Wh at 300 across a 1 % link with room to
    spare, but BKK's headroom takes 1,000 Wh: exactly what crosses."""
    links = (Link("BKK", "CEN", 100, 5_000), Link("CEN", "BKK", 100, 5_000))
    steps = (Step(1, 0, Side.SELL, "CEN", 200, 1_000), Step(2, 0, Side.BUY, "BKK", 300, 990))
    return Instance(("BKK", "CEN"), links, {"BKK": 1_000}, steps)


def test_a_binding_headroom_is_priced_at_its_lowest_optimal_dual() -> None:
    """The headroom binds, so its dual may be anything from 0 to 0.99 x 300 - 200 = 97 with
    the same welfare: at 97 the prices are 200 and 300, at 0 they are tied by the loss alone.
    The rule takes the lowest, 0 (the import room is priced only as much as the curves
    force), and then the prices' midpoints, as if the headroom were not there; a
    certificate at 97, or anywhere between, is optimal and refused."""
    inst = _headroom_instance()
    body = auction_solver.solve(inst, 0).body
    checked = clearing.check(inst, body.zones, body.flows)
    kept = Fraction(99, 100)
    assert checked.headroom_dual == {"BKK": 0, "CEN": 0}
    assert checked.prices == {"CEN": (200 + 300 * kept) / 2, "BKK": (200 / kept + 300) / 2}
    zone, other = _at_highest_eta(inst, checked)
    assert zone == "BKK" and other.headroom_dual["BKK"] == 97
    assert other.prices == {"CEN": 200, "BKK": 300}
    for eta in (Fraction(97), Fraction(1, 3)):
        at = clearing.reprice(inst, other, other.prices, other.green_prices,
                              {"BKK": eta, "CEN": Fraction(0)})  # fmt: skip
        zones, flows = clearing.certificate(
            clearing.reprice(inst, at, *clearing.rule_prices(inst, at))
        )
        assert clearing.check_optimal(inst, zones, flows).welfare == checked.welfare
        with pytest.raises(errors.ClearingNotOptimal, match="headroom dual of BKK must be 0"):
            clearing.check(inst, zones, flows)
        optimal = clearing.check_optimal(inst, zones, flows)
        assert clearing.certificate(clearing.canonical(inst, optimal)) == (body.zones, body.flows)


def test_where_a_headroom_dual_has_more_than_one_optimum_the_lowest_is_the_rule() -> None:
    """An instance found by a seeded search: Central's headroom binds and its dual can take a
    range of values. The certificate at the top of that range, with the price rule's prices
    given it, is optimal with the same welfare (the old check accepted it) and is now
    refused; moved to the rules it is the solver's certificate again."""
    inst = random_instance(91, zones=5, steps=10, green=0.5)
    body = auction_solver.solve(inst, 0).body
    checked = clearing.check(inst, body.zones, body.flows)
    zone, other = _at_highest_eta(inst, checked)
    assert zone == "CEN" and other.headroom_dual[zone] > checked.headroom_dual[zone] > 0
    zones, flows = clearing.certificate(other)
    optimal = clearing.check_optimal(inst, zones, flows)
    assert optimal.welfare == checked.welfare
    with pytest.raises(errors.ClearingNotOptimal, match="headroom dual of CEN must be"):
        clearing.check(inst, zones, flows)
    assert clearing.certificate(clearing.canonical(inst, optimal)) == (body.zones, body.flows)
