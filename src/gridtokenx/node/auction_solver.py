"""Solving the day-ahead auction off the consensus path, with HiGHS, into an exact certificate.

HiGHS solves the two-commodity welfare LP of ledger/market/clearing.py in floating point.
Steps of one zone, side, commodity and price are one column (the ledger accepts them pro
rata, so nothing is lost). The float answer then only tells which constraints are tight;
the certificate is rebuilt exactly from that: zone prices, renewable prices, headroom and
link duals from the tight dual equations (a step accepted in part fixes its price; a
commodity flowing on a link ties its prices at the two ends by the loss and the link's
rent; a downgrade ties a zone's two prices), then step shares, flows and downgrades from
the balances given those prices.
Both are small exact linear systems in `fractions.Fraction`. The result is checked with the
ledger's own `clearing.check` before it is returned, so a rounding slip is caught here, not
by the validators.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass
from fractions import Fraction

import highspy
import numpy as np

from gridtokenx.ledger.market import clearing
from gridtokenx.ledger.market.clearing import BASIS, Instance
from gridtokenx.wire.tx import LinkFlow, Side, SubmitAuctionClearing, ZoneClearing

TOL = 1e-6


class SolveError(RuntimeError):
    pass


@dataclass(frozen=True)
class Solution:
    body: SubmitAuctionClearing
    welfare: Fraction  # satang x Wh / kWh
    float_welfare: float  # HiGHS's objective, for comparison


Group = tuple[str, Side, bool, int]  # zone, side, renewable commodity, price
COMMODITIES = (False, True)


def _groups(inst: Instance) -> dict[Group, int]:
    groups: dict[Group, int] = defaultdict(int)
    for s in inst.steps:
        groups[(s.zone, s.side, s.green, s.price)] += s.quantity_wh
    return dict(sorted(groups.items()))


@dataclass(frozen=True)
class _Floats:
    """HiGHS's answer, by name."""

    groups: dict[Group, float]
    flows: dict[tuple[bool, str, str], float]
    downgrade: dict[str, float]
    prices: dict[tuple[str, bool], float]
    eta: dict[str, float]
    rho: dict[tuple[str, str], float]
    objective: float


def _float_solve(inst: Instance, groups: dict[Group, int]) -> _Floats:
    """Columns: step groups, a flow per link and commodity, a downgrade per zone. Rows: a
    balance per zone and commodity, then headroom rows, then a room row per link."""
    zones = len(inst.zones)
    row = {(z, g): i + (zones if g else 0) for i, z in enumerate(inst.zones) for g in COMMODITIES}
    head = [z for z in inst.zones if z in inst.headroom_wh]
    head_row = {z: 2 * zones + i for i, z in enumerate(head)}
    link_row = {(lk.from_zone, lk.to_zone): 2 * zones + len(head) + i
                for i, lk in enumerate(inst.links)}  # fmt: skip
    cost, upper, cols = [], [], []  # cols: list of (row, value) pairs
    for (zone, side, green, price), q in groups.items():
        sign = -1.0 if side is Side.BUY else 1.0
        cost.append(sign * price)  # minimise cost - value
        upper.append(float(q))
        cols.append([(row[(zone, green)], sign)])  # supply - demand = 0
    for green in COMMODITIES:
        for link in inst.links:
            cost.append(0.0)
            upper.append(highspy.kHighsInf)  # the link's room row bounds it: its dual is rho
            entries = [(row[(link.from_zone, green)], -1.0)]
            entries.append((row[(link.to_zone, green)], (BASIS - link.loss_bp) / BASIS))
            if link.to_zone in head_row:
                entries.append((head_row[link.to_zone], 1.0))
            entries.append((link_row[(link.from_zone, link.to_zone)], 1.0))
            cols.append(entries)
    for z in inst.zones:
        cost.append(0.0)
        upper.append(highspy.kHighsInf)
        cols.append([(row[(z, False)], 1.0), (row[(z, True)], -1.0)])
    rows = 2 * zones + len(head) + len(inst.links)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(cols), rows
    lp.col_cost_ = np.array(cost)
    lp.col_lower_ = np.zeros(len(cols))
    lp.col_upper_ = np.array(upper)
    lp.row_lower_ = np.array([0.0] * 2 * zones + [-highspy.kHighsInf] * (rows - 2 * zones))
    lp.row_upper_ = np.array(
        [0.0] * 2 * zones
        + [float(inst.headroom_wh[z]) for z in head]
        + [float(lk.room_wh) for lk in inst.links]
    )
    starts, index, value = [0], [], []
    for entries in cols:
        for r, v in sorted(entries):
            index.append(r)
            value.append(v)
        starts.append(len(index))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value)
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise SolveError(f"HiGHS: {h.modelStatusToString(h.getModelStatus())}")
    sol = h.getSolution()
    col, dual = list(sol.col_value), list(sol.row_dual)
    n, nl = len(groups), len(inst.links)
    flows = {
        (green, lk.from_zone, lk.to_zone): col[n + j * nl + i]
        for j, green in enumerate(COMMODITIES)
        for i, lk in enumerate(inst.links)
    }
    return _Floats(
        dict(zip(groups, col[:n], strict=True)),
        flows,
        {z: col[n + 2 * nl + i] for i, z in enumerate(inst.zones)},
        {key: float(dual[r]) for key, r in row.items()},
        {z: max(0.0, -float(dual[r])) for z, r in head_row.items()},
        {key: max(0.0, -float(dual[r])) for key, r in link_row.items()},
        -h.getInfo().objective_function_value,
    )


def _exact(
    rows: list[tuple[dict[Hashable, Fraction], Fraction]],
    hint: dict[Hashable, Fraction],
    basic: set[Hashable] | None = None,
) -> dict[Hashable, Fraction]:
    """Solve the linear equations exactly; variables they leave free take their hint. The
    `basic` ones (strictly inside their bounds in the float solution) are solved for
    first, so the others stay at the bound HiGHS put them on."""
    names = sorted(hint, key=lambda n: (basic is not None and n not in basic, str(n)))
    matrix = [[row.get(n, Fraction(0)) for n in names] + [rhs] for row, rhs in rows]
    pivots: list[int] = []
    r = 0
    for c in range(len(names)):
        found = next((i for i in range(r, len(matrix)) if matrix[i][c] != 0), None)
        if found is None:
            continue
        matrix[r], matrix[found] = matrix[found], matrix[r]
        lead = matrix[r][c]
        matrix[r] = [v / lead for v in matrix[r]]
        for i in range(len(matrix)):
            if i != r and matrix[i][c] != 0:
                factor = matrix[i][c]
                matrix[i] = [a - factor * b for a, b in zip(matrix[i], matrix[r], strict=True)]
        pivots.append(c)
        r += 1
    if any(all(v == 0 for v in row[:-1]) and row[-1] != 0 for row in matrix):
        raise SolveError("the tight constraints are inconsistent")
    result = dict(hint)
    for i, c in enumerate(pivots):
        row = matrix[i]
        result[names[c]] = row[-1] - sum(
            (row[j] * hint[names[j]] for j in range(len(names)) if j != c and j not in pivots),
            Fraction(0),
        )
    return result


def _snap(value: float, upper: float) -> Fraction:
    if abs(value) <= TOL * max(1.0, upper):
        return Fraction(0)
    if abs(value - upper) <= TOL * max(1.0, upper):
        return Fraction(upper)
    return Fraction(value).limit_denominator(10**6)


def solve(inst: Instance, interval_start: int) -> Solution:
    groups = _groups(inst)
    fl = _float_solve(inst, groups)
    kept_of = {(lk.from_zone, lk.to_zone): Fraction(BASIS - lk.loss_bp, BASIS) for lk in inst.links}
    # 1. Prices, renewable prices, headroom and link duals from the tight dual equations: a
    # step group accepted in part, or priced at its float price, fixes that price; a
    # commodity on a link, or with its float rent equal to the link's, ties its prices at
    # the two ends; a downgrade, or equal float prices, ties a zone's two prices; a slack
    # headroom or link has no dual. Taking every tight one keeps a price the curves leave
    # free from landing, after rounding, a hair off a tie and so owing a flow.
    dual_rows: list[tuple[dict[Hashable, Fraction], Fraction]] = []
    for (zone, side, green, price), value in fl.groups.items():
        q = groups[(zone, side, green, price)]
        if TOL * q < value < q - TOL * q or abs(price - fl.prices[(zone, green)]) <= TOL:
            dual_rows.append(({("pi", zone, green): Fraction(1)}, Fraction(price)))
    inflow: dict[str, float] = defaultdict(float)
    for link in inst.links:
        key = (link.from_zone, link.to_zone)
        total = fl.flows[(False, *key)] + fl.flows[(True, *key)]
        inflow[link.to_zone] += total
        kept_f = (BASIS - link.loss_bp) / BASIS
        for green in COMMODITIES:
            f = fl.flows[(green, *key)]
            gain = kept_f * fl.prices[(link.to_zone, green)] - fl.prices[(link.from_zone, green)]
            rent_f = gain - fl.eta.get(link.to_zone, 0.0)
            if f > TOL or abs(rent_f - fl.rho[key]) <= TOL:
                row: dict[Hashable, Fraction] = {("pi", link.from_zone, green): Fraction(-1)}
                row[("pi", link.to_zone, green)] = kept_of[key]
                if link.to_zone in inst.headroom_wh:
                    row[("eta", link.to_zone)] = Fraction(-1)
                row[("rho", *key)] = Fraction(-1)
                dual_rows.append((row, Fraction(0)))
        if total < link.room_wh - TOL * max(1, link.room_wh) or fl.rho[key] <= TOL:
            dual_rows.append(({("rho", *key): Fraction(1)}, Fraction(0)))
    for z in inst.zones:
        tied = fl.downgrade[z] > TOL or abs(fl.prices[(z, True)] - fl.prices[(z, False)]) <= TOL
        if tied:
            dual_rows.append(({("pi", z, True): Fraction(1), ("pi", z, False): Fraction(-1)},
                              Fraction(0)))  # fmt: skip
        if z in inst.headroom_wh:
            slack = inflow[z] < inst.headroom_wh[z] - TOL * max(1, inst.headroom_wh[z])
            if slack or fl.eta[z] <= TOL:
                dual_rows.append(({("eta", z): Fraction(1)}, Fraction(0)))
    hint: dict[Hashable, Fraction] = {
        ("pi", z, g): Fraction(v).limit_denominator(10**4) for (z, g), v in fl.prices.items()
    }
    for z, v in fl.eta.items():
        hint[("eta", z)] = Fraction(v).limit_denominator(10**4)
    for key, v in fl.rho.items():
        hint[("rho", *key)] = Fraction(v).limit_denominator(10**4)
    d = _exact(dual_rows, hint)
    pi = {(z, g): d[("pi", z, g)] for z in inst.zones for g in COMMODITIES}
    eta = {z: d.get(("eta", z), Fraction(0)) for z in inst.zones}
    # 2. Step shares, flows and downgrades from the balances, given the prices.
    fixed = {key: Fraction(0) for key in pi}  # supply - demand of the decided steps
    at: dict[tuple[str, bool, Side], int] = defaultdict(int)
    done: dict[tuple[str, bool, Side], float] = defaultdict(float)
    for (zone, side, green, p), q in groups.items():
        if p == pi[(zone, green)]:
            at[(zone, green, side)] += q
            done[(zone, green, side)] += fl.groups[(zone, side, green, p)]
        elif side is Side.BUY and p > pi[(zone, green)]:
            fixed[(zone, green)] -= q
        elif side is Side.SELL and p < pi[(zone, green)]:
            fixed[(zone, green)] += q
    share_hint: dict[Hashable, Fraction] = {}
    balance: dict[tuple[str, bool], dict[Hashable, Fraction]] = {key: {} for key in pi}
    for (zone, green, side), q in at.items():
        share_hint[("r", zone, green, side)] = min(
            Fraction(1), _snap(done[(zone, green, side)] / q, 1.0)
        )
        balance[(zone, green)][("r", zone, green, side)] = Fraction(q if side is Side.SELL else -q)
    rhs = {key: -v for key, v in fixed.items()}
    upper_of: dict[Hashable, Fraction] = {}
    headrow: dict[str, dict[Hashable, Fraction]] = {z: {} for z in inst.headroom_wh}
    roomrow: dict[tuple[str, str], dict[Hashable, Fraction]] = {}
    for z in inst.zones:
        if pi[(z, True)] == pi[(z, False)]:
            var = ("d", z)
            left = fl.downgrade[z]
            share_hint[var] = (
                Fraction(0) if left <= TOL else Fraction(left).limit_denominator(10**6)
            )
            balance[(z, False)][var] = Fraction(1)
            balance[(z, True)][var] = Fraction(-1)
            upper_of[var] = Fraction(-1)  # no upper bound: basic unless at 0
    for link in inst.links:
        key = (link.from_zone, link.to_zone)
        kept = kept_of[key]
        rho = d[("rho", *key)]
        roomrow[key] = {}
        for green in COMMODITIES:
            rent = (
                kept * pi[(link.to_zone, green)] - eta[link.to_zone] - pi[(link.from_zone, green)]
            )
            if rent < rho:
                continue  # this commodity does not use the link
            flow_var: Hashable = ("f", green, *key)
            share_hint[flow_var] = _snap(fl.flows[(green, *key)], float(link.room_wh))
            upper_of[flow_var] = Fraction(link.room_wh)
            balance[(link.from_zone, green)][flow_var] = Fraction(-1)
            balance[(link.to_zone, green)][flow_var] = kept
            roomrow[key][flow_var] = Fraction(1)
            if link.to_zone in headrow:
                headrow[link.to_zone][flow_var] = Fraction(1)
    primal_rows = [(balance[key], rhs[key]) for key in pi]
    primal_rows += [(headrow[z], Fraction(inst.headroom_wh[z])) for z in headrow if eta[z] > 0]
    primal_rows += [
        (roomrow[(lk.from_zone, lk.to_zone)], Fraction(lk.room_wh))
        for lk in inst.links
        if d[("rho", lk.from_zone, lk.to_zone)] > 0
    ]
    inside = {n for n, v in share_hint.items() if v not in (0, upper_of.get(n, 1))}
    prim = _exact(primal_rows, share_hint, inside)
    opt = {True: lambda v: None if v == 0 else clearing.rational(v), False: clearing.rational}
    zones = tuple(
        ZoneClearing(
            z,
            clearing.rational(pi[(z, False)]),
            clearing.rational(eta[z]),
            clearing.rational(prim.get(("r", z, False, Side.BUY), Fraction(0))),
            clearing.rational(prim.get(("r", z, False, Side.SELL), Fraction(0))),
            clearing.rational(pi[(z, True)]),
            opt[True](prim.get(("r", z, True, Side.BUY), Fraction(0))),
            opt[True](prim.get(("r", z, True, Side.SELL), Fraction(0))),
        )
        for z in inst.zones
    )
    flows = []
    for lk in inst.links:
        key = (lk.from_zone, lk.to_zone)
        ordinary = prim.get(("f", False, *key), Fraction(0))
        green_part = prim.get(("f", True, *key), Fraction(0))
        if ordinary + green_part > 0:
            flows.append(LinkFlow(*key, clearing.rational(ordinary + green_part),
                                  opt[True](green_part)))  # fmt: skip
    try:  # the same allocation at the rule's prices, then the ledger's own check
        zones_, flows_ = clearing.certificate(
            clearing.midpoint(inst, clearing.check_optimal(inst, zones, tuple(flows)))
        )
        checked = clearing.check(inst, zones_, flows_)
    except Exception as exc:  # the ledger's refusal, with its reason
        raise SolveError(f"the exact certificate does not check: {exc}") from exc
    body = SubmitAuctionClearing(interval_start, zones_, flows_)
    return Solution(body, checked.welfare, fl.objective)
