"""Solving the day-ahead auction off the consensus path, with HiGHS, into an exact certificate.

HiGHS solves the welfare LP of ledger/market/clearing.py in floating point. Steps of one
zone, side and price are one column (the ledger accepts them pro rata, so nothing is lost).
The float answer then only tells which constraints are tight; the certificate is rebuilt
exactly from that: zone prices and headroom duals from the tight dual equations (a step
accepted in part fixes its zone's price; a link used below its room ties its two zones'
prices by its loss), then step shares and flows from the zone balances given those prices.
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


def _groups(inst: Instance) -> dict[tuple[str, Side, int], int]:
    groups: dict[tuple[str, Side, int], int] = defaultdict(int)
    for s in inst.steps:
        groups[(s.zone, s.side, s.price)] += s.quantity_wh
    return dict(sorted(groups.items()))


def _float_solve(
    inst: Instance, groups: dict[tuple[str, Side, int], int]
) -> tuple[np.ndarray, np.ndarray, float]:
    """Column values and row duals (balances, then headroom rows) from HiGHS."""
    zone_row = {z: i for i, z in enumerate(inst.zones)}
    head = [z for z in inst.zones if z in inst.headroom_wh]
    head_row = {z: len(inst.zones) + i for i, z in enumerate(head)}
    cost, upper, cols = [], [], []  # cols: list of (row, value) pairs
    for (zone, side, price), q in groups.items():
        sign = -1.0 if side is Side.BUY else 1.0
        cost.append(sign * price)  # minimise cost - value
        upper.append(float(q))
        cols.append([(zone_row[zone], sign)])  # supply - demand = 0
    for link in inst.links:
        cost.append(0.0)
        upper.append(float(link.room_wh))
        entries = [(zone_row[link.from_zone], -1.0)]
        entries.append((zone_row[link.to_zone], (BASIS - link.loss_bp) / BASIS))
        if link.to_zone in head_row:
            entries.append((head_row[link.to_zone], 1.0))
        cols.append(entries)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(cols), len(inst.zones) + len(head)
    lp.col_cost_ = np.array(cost)
    lp.col_lower_ = np.zeros(len(cols))
    lp.col_upper_ = np.array(upper)
    lp.row_lower_ = np.array([0.0] * len(inst.zones) + [-highspy.kHighsInf] * len(head))
    lp.row_upper_ = np.array([0.0] * len(inst.zones) + [float(inst.headroom_wh[z]) for z in head])
    starts, index, value = [0], [], []
    for entries in cols:
        for row, v in sorted(entries):
            index.append(row)
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
    return np.array(sol.col_value), np.array(sol.row_dual), -h.getInfo().objective_function_value


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
    cols, duals, objective = _float_solve(inst, groups)
    n = len(groups)
    keys = list(groups)
    flows_f = {(lk.from_zone, lk.to_zone): cols[n + i] for i, lk in enumerate(inst.links)}
    # 1. Prices and headroom duals from the tight dual equations: a step group accepted in
    # part, or priced at its zone's float price, fixes that price; a link used inside its
    # room, or with no rent in the float duals, ties its zones' prices; slack headroom has
    # no dual. Taking every tight one keeps a price the curves leave free from landing,
    # after rounding, a hair off a link's tie and so owing that link a flow.
    pi_f = {z: float(duals[i]) for i, z in enumerate(inst.zones)}
    head = [z for z in inst.zones if z in inst.headroom_wh]
    eta_f = {z: max(0.0, -float(duals[len(inst.zones) + i])) for i, z in enumerate(head)}
    dual_rows: list[tuple[dict[Hashable, Fraction], Fraction]] = []
    for (zone, side, price), value in zip(keys, cols[:n], strict=True):
        q = groups[(zone, side, price)]
        if TOL * q < value < q - TOL * q or abs(price - pi_f[zone]) <= TOL:
            dual_rows.append(({("pi", zone): Fraction(1)}, Fraction(price)))
    inflow: dict[str, float] = defaultdict(float)
    for link in inst.links:
        f = flows_f[(link.from_zone, link.to_zone)]
        inflow[link.to_zone] += f
        kept_f = (BASIS - link.loss_bp) / BASIS
        rent_f = kept_f * pi_f[link.to_zone] - eta_f.get(link.to_zone, 0.0) - pi_f[link.from_zone]
        if TOL < f < link.room_wh - TOL * max(1, link.room_wh) or abs(rent_f) <= TOL:
            row: dict[Hashable, Fraction] = {("pi", link.from_zone): Fraction(-1)}
            row[("pi", link.to_zone)] = Fraction(BASIS - link.loss_bp, BASIS)
            if link.to_zone in inst.headroom_wh:
                row[("eta", link.to_zone)] = Fraction(-1)
            dual_rows.append((row, Fraction(0)))
    for z in head:
        slack = inflow[z] < inst.headroom_wh[z] - TOL * max(1, inst.headroom_wh[z])
        if slack or eta_f[z] <= TOL:
            dual_rows.append(({("eta", z): Fraction(1)}, Fraction(0)))
    hint: dict[Hashable, Fraction] = {
        ("pi", z): Fraction(v).limit_denominator(10**4) for z, v in pi_f.items()
    }
    for z in head:
        hint[("eta", z)] = Fraction(eta_f[z]).limit_denominator(10**4)
    d = _exact(dual_rows, hint)
    prices = {z: d[("pi", z)] for z in inst.zones}
    eta = {z: d.get(("eta", z), Fraction(0)) for z in inst.zones}
    # 2. Step shares and flows from the balances, given the prices.
    at: dict[tuple[str, Side], int] = defaultdict(int)
    fixed = {z: Fraction(0) for z in inst.zones}  # supply - demand of the decided steps
    for (zone, side, price), q in groups.items():
        if price == prices[zone]:
            at[(zone, side)] += q
        elif side is Side.BUY and price > prices[zone]:
            fixed[zone] -= q
        elif side is Side.SELL and price < prices[zone]:
            fixed[zone] += q
    share_hint: dict[Hashable, Fraction] = {}
    for (zone, side), q in at.items():
        done = sum(
            cols[i]
            for i, k in enumerate(keys)
            if k[0] == zone and k[1] is side and k[2] == prices[zone]
        )
        share_hint[("r", zone, side)] = min(Fraction(1), _snap(done / q, 1.0))
    balance: dict[str, dict[Hashable, Fraction]] = {z: {} for z in inst.zones}
    rhs = {z: -fixed[z] for z in inst.zones}
    for (zone, side), q in at.items():
        balance[zone][("r", zone, side)] = Fraction(q if side is Side.SELL else -q)
    flow_value: dict[tuple[str, str], Fraction] = {}
    upper_of: dict[Hashable, Fraction] = {}
    headrow: dict[str, dict[Hashable, Fraction]] = {z: {} for z in head}
    head_rhs = {z: Fraction(inst.headroom_wh[z]) for z in head}
    for link in inst.links:
        key = (link.from_zone, link.to_zone)
        kept = Fraction(BASIS - link.loss_bp, BASIS)
        rent = kept * prices[link.to_zone] - eta[link.to_zone] - prices[link.from_zone]
        if rent != 0:
            value = Fraction(link.room_wh) if rent > 0 else Fraction(0)
            flow_value[key] = value
            rhs[link.from_zone] += value
            rhs[link.to_zone] -= kept * value
            if link.to_zone in headrow:
                head_rhs[link.to_zone] -= value
            continue
        var = ("f", *key)
        share_hint[var] = _snap(float(flows_f[key]), float(link.room_wh))
        upper_of[var] = Fraction(link.room_wh)
        balance[link.from_zone][var] = Fraction(-1)
        balance[link.to_zone][var] = kept
        if link.to_zone in headrow:
            headrow[link.to_zone][var] = Fraction(1)
    primal_rows = [(balance[z], rhs[z]) for z in inst.zones]
    primal_rows += [(headrow[z], head_rhs[z]) for z in head if eta[z] > 0]
    inside = {n for n, v in share_hint.items() if v not in (0, upper_of.get(n, 1))}
    p = _exact(primal_rows, share_hint, inside)
    for key in [(lk.from_zone, lk.to_zone) for lk in inst.links]:
        if ("f", *key) in p:
            flow_value[key] = p[("f", *key)]
    zones = tuple(
        ZoneClearing(
            z,
            clearing.rational(prices[z]),
            clearing.rational(eta[z]),
            clearing.rational(p.get(("r", z, Side.BUY), Fraction(0))),
            clearing.rational(p.get(("r", z, Side.SELL), Fraction(0))),
        )
        for z in inst.zones
    )
    flows = tuple(
        LinkFlow(a, b, clearing.rational(v)) for (a, b), v in sorted(flow_value.items()) if v > 0
    )
    try:  # the same allocation at the midpoint rule's prices, then the ledger's own check
        zones, flows = clearing.certificate(
            clearing.midpoint(inst, clearing.check_optimal(inst, zones, flows))
        )
        checked = clearing.check(inst, zones, flows)
    except Exception as exc:  # the ledger's refusal, with its reason
        raise SolveError(f"the exact certificate does not check: {exc}") from exc
    return Solution(SubmitAuctionClearing(interval_start, zones, flows), checked.welfare, objective)
