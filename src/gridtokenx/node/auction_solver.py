"""Solving the day-ahead auction off the consensus path, with HiGHS, into an exact certificate.

HiGHS's simplex solves the two-commodity welfare LP of ledger/market/clearing.py in
floating point. Steps of one zone, side, commodity and price are one column (the ledger
accepts them pro rata, so nothing is lost). The float answer is then only used for its
optimal basis: which columns are basic and which constraints are tight. The certificate is
rebuilt exactly from that basis, as the simplex method defines it: the basic columns from
the tight rows with every other column at its bound, the duals from the basic columns'
zero reduced costs. Both are square, nonsingular linear systems solved in
`fractions.Fraction`, so the result is the exact vertex HiGHS approximated (a basis needs
no guessing where the LP is degenerate, as it is wherever renewable energy could as well
cross a link as renewable or as other energy). It is then moved to the rule's prices and
checked with the ledger's own `clearing.check` before it is returned, so a slip is caught
here, not by the validators.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction

import highspy
import numpy as np

from gridtokenx.ledger.market import clearing
from gridtokenx.ledger.market.clearing import BASIS, Instance
from gridtokenx.wire.tx import LinkFlow, Side, SubmitAuctionClearing, ZoneClearing


class SolveError(RuntimeError):
    pass


@dataclass(frozen=True)
class Solution:
    body: SubmitAuctionClearing
    welfare: Fraction  # satang x Wh / kWh
    float_welfare: float  # HiGHS's objective, for comparison


Group = tuple[str, Side, bool, int]  # zone, side, renewable commodity, price
COMMODITIES = (False, True)
INF = highspy.kHighsInf


def _groups(inst: Instance) -> dict[Group, int]:
    groups: dict[Group, int] = defaultdict(int)
    for s in inst.steps:
        groups[(s.zone, s.side, s.green, s.price)] += s.quantity_wh
    return dict(sorted(groups.items()))


@dataclass
class _Model:
    """The LP in exact numbers: minimise cost.x subject to row_lower <= A x <= row_upper
    and 0 <= x <= upper (None: unbounded). Columns: step groups, then a flow per
    commodity and link, then a downgrade per zone. Rows: a balance (supply - demand) per
    zone and commodity, headroom rows, a room row per link."""

    cost: list[Fraction]
    upper: list[Fraction | None]
    cols: list[dict[int, Fraction]]
    row_lower: list[Fraction | None]
    row_upper: list[Fraction | None]


def _model(inst: Instance, groups: dict[Group, int]) -> tuple[_Model, dict[tuple[str, bool], int]]:
    zones = len(inst.zones)
    row = {(z, g): i + (zones if g else 0) for i, z in enumerate(inst.zones) for g in COMMODITIES}
    head = [z for z in inst.zones if z in inst.headroom_wh]
    head_row = {z: 2 * zones + i for i, z in enumerate(head)}
    link_row = {(lk.from_zone, lk.to_zone): 2 * zones + len(head) + i
                for i, lk in enumerate(inst.links)}  # fmt: skip
    m = _Model([], [], [], [], [])
    one = Fraction(1)
    for (zone, side, green, price), q in groups.items():
        sign = -one if side is Side.BUY else one
        m.cost.append(sign * price)  # minimise cost - value
        m.upper.append(Fraction(q))
        m.cols.append({row[(zone, green)]: sign})
    for green in COMMODITIES:
        for link in inst.links:
            col = {row[(link.from_zone, green)]: -one}
            col[row[(link.to_zone, green)]] = Fraction(BASIS - link.loss_bp, BASIS)
            if link.to_zone in head_row:
                col[head_row[link.to_zone]] = one
            col[link_row[(link.from_zone, link.to_zone)]] = one
            m.cost.append(Fraction(0))
            m.upper.append(None)  # the link's room row bounds it: its dual is the rent
            m.cols.append(col)
    for z in inst.zones:
        m.cost.append(Fraction(0))
        m.upper.append(None)
        m.cols.append({row[(z, False)]: one, row[(z, True)]: -one})
    limits = [inst.headroom_wh[z] for z in head] + [lk.room_wh for lk in inst.links]
    m.row_lower = [Fraction(0) if i < 2 * zones else None for i in range(2 * zones + len(limits))]
    m.row_upper = [Fraction(0) if i < 2 * zones else Fraction(limits[i - 2 * zones])
                   for i in range(2 * zones + len(limits))]  # fmt: skip
    return m, row


def _float_solve(m: _Model) -> tuple[list[bool], list[int], float]:
    """HiGHS's simplex: which columns are basic, each nonbasic row's status (1: at its
    upper bound, -1: at its lower, 0: basic), and the objective."""
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(m.cols), len(m.row_lower)
    lp.col_cost_ = np.array([float(c) for c in m.cost])
    lp.col_lower_ = np.zeros(len(m.cols))
    lp.col_upper_ = np.array([INF if u is None else float(u) for u in m.upper])
    lp.row_lower_ = np.array([-INF if v is None else float(v) for v in m.row_lower])
    lp.row_upper_ = np.array([INF if v is None else float(v) for v in m.row_upper])
    starts, index, value = [0], [], []
    for col in m.cols:
        for r, v in sorted(col.items()):
            index.append(r)
            value.append(float(v))
        starts.append(len(index))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value)
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("solver", "simplex")
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise SolveError(f"HiGHS: {h.modelStatusToString(h.getModelStatus())}")
    basis = h.getBasis()
    if not basis.valid:
        raise SolveError("HiGHS returned no basis")
    S = highspy.HighsBasisStatus
    cols = [status == S.kBasic for status in basis.col_status]
    col_upper = [status == S.kUpper for status in basis.col_status]
    rows = [0 if s == S.kBasic else (1 if s == S.kUpper else -1) for s in basis.row_status]
    # An equality row is "at" its one bound either way; a one-sided row at the bound it has.
    for i, s in enumerate(rows):
        if s and m.row_lower[i] is None:
            rows[i] = 1
        elif s and m.row_upper[i] is None:
            rows[i] = -1
    return cols + col_upper, rows, -h.getInfo().objective_function_value


def _solve_square(rows: list[dict[int, Fraction]], rhs: list[Fraction], n: int) -> list[Fraction]:
    """Gauss-Jordan elimination in `Fraction` of a square system (a basis is nonsingular)."""
    matrix = [
        [row.get(j, Fraction(0)) for j in range(n)] + [b] for row, b in zip(rows, rhs, strict=True)
    ]
    for c in range(n):
        found = next((i for i in range(c, n) if matrix[i][c] != 0), None)
        if found is None:
            raise SolveError("the basis is singular")
        matrix[c], matrix[found] = matrix[found], matrix[c]
        lead = matrix[c][c]
        matrix[c] = [v / lead for v in matrix[c]]
        for i in range(n):
            if i != c and matrix[i][c] != 0:
                factor = matrix[i][c]
                matrix[i] = [a - factor * b for a, b in zip(matrix[i], matrix[c], strict=True)]
    return [matrix[i][n] for i in range(n)]


def _vertex(
    m: _Model, basic: list[bool], at_upper: list[bool], row_status: list[int]
) -> tuple[list[Fraction], list[Fraction]]:
    """The exact primal columns and row duals of the basis."""
    n_cols, n_rows = len(m.cols), len(m.row_lower)
    x: list[Fraction] = []
    for j in range(n_cols):
        upper = m.upper[j]
        x.append(upper if at_upper[j] and not basic[j] and upper is not None else Fraction(0))
    base = [j for j in range(n_cols) if basic[j]]
    tight = [i for i in range(n_rows) if row_status[i]]
    if len(base) != len(tight):
        raise SolveError(f"a basis of {len(base)} columns for {len(tight)} tight rows")
    position = {j: k for k, j in enumerate(base)}
    by_row: list[dict[int, Fraction]] = [{} for _ in range(n_rows)]
    for j, col in enumerate(m.cols):
        for r, v in col.items():
            by_row[r][j] = v
    eqs, rhs = [], []
    for i in tight:
        bound = m.row_upper[i] if row_status[i] > 0 else m.row_lower[i]
        assert bound is not None
        fixed = sum((v * x[j] for j, v in by_row[i].items() if not basic[j]), Fraction(0))
        eqs.append({position[j]: v for j, v in by_row[i].items() if basic[j]})
        rhs.append(bound - fixed)
    for k, value in enumerate(_solve_square(eqs, rhs, len(base))):
        x[base[k]] = value
    # Duals: zero reduced cost on every basic column, zero on every basic (slack) row.
    place = {i: k for k, i in enumerate(tight)}
    dual_eqs = [{place[r]: v for r, v in m.cols[j].items() if r in place} for j in base]
    solved = _solve_square(dual_eqs, [m.cost[j] for j in base], len(tight))
    y = [Fraction(0)] * n_rows
    for k, i in enumerate(tight):
        y[i] = solved[k]
    return x, y


def solve(inst: Instance, interval_start: int) -> Solution:
    groups = _groups(inst)
    m, row = _model(inst, groups)
    status, row_status, objective = _float_solve(m)
    n_cols = len(m.cols)
    x, y = _vertex(m, status[:n_cols], status[n_cols:], row_status)
    n, nl, zones = len(groups), len(inst.links), len(inst.zones)
    head = [z for z in inst.zones if z in inst.headroom_wh]
    price = {key: y[r] for key, r in row.items()}
    eta = {z: -y[2 * zones + i] for i, z in enumerate(head)}
    # Step shares at each commodity's price; flows with their renewable parts.
    at: dict[tuple[str, bool, Side], list[Fraction]] = {}
    for (zone, side, green, p), value in zip(groups, x[:n], strict=True):
        if p == price[(zone, green)]:
            got = at.setdefault((zone, green, side), [Fraction(0), Fraction(0)])
            got[0] += value
            got[1] += groups[(zone, side, green, p)]

    def share(zone: str, green: bool, side: Side) -> Fraction:
        done, total = at.get((zone, green, side), (Fraction(0), Fraction(0)))
        return done / total if total else Fraction(0)

    zone_results = tuple(
        ZoneClearing(
            z,
            clearing.rational(price[(z, False)]),
            clearing.rational(eta.get(z, Fraction(0))),
            clearing.rational(share(z, False, Side.BUY)),
            clearing.rational(share(z, False, Side.SELL)),
            clearing.rational(price[(z, True)]),
            clearing.rational(share(z, True, Side.BUY)),
            clearing.rational(share(z, True, Side.SELL)),
        )
        for z in inst.zones
    )
    flows = []
    for i, lk in enumerate(inst.links):
        ordinary, green_part = x[n + i], x[n + nl + i]
        if ordinary + green_part > 0:
            total = clearing.rational(ordinary + green_part)
            flows.append(LinkFlow(lk.from_zone, lk.to_zone, total, clearing.rational(green_part)))
    try:  # the same allocation at the rule's prices, then the ledger's own check
        optimal = clearing.check_optimal(inst, zone_results, tuple(flows))
        zones_, flows_ = clearing.certificate(clearing.canonical(inst, optimal))
        checked = clearing.check(inst, zones_, flows_)
    except Exception as exc:  # the ledger's refusal, with its reason
        raise SolveError(f"the exact certificate does not check: {exc}") from exc
    body = SubmitAuctionClearing(interval_start, zones_, flows_)
    return Solution(body, checked.welfare, objective)
