"""A small linear programme solved exactly in `Fraction`, for the auction's rules.

The optimal prices of a two-commodity clearing form a polyhedron that is not always a
lattice (a full link's shared rent ties four prices), so a zone's exact range of optimal
prices is the minimum and the maximum of a linear programme over it; the lowest optimal
headroom duals and the canonical renewable split of the flows are lexicographic minima over
polyhedra of the same kind. Those programmes are tiny (two prices per zone, a few rows per
link) and consensus may not use floating point, so they are solved here by the textbook
simplex method on rationals, with Bland's rule (the smallest index enters and leaves),
which never cycles and makes the answer a function of the rows alone: every validator
computes the same value.

The caller always knows a feasible point (the certificate's own optimal values, or the
midpoint of two earlier optima), so the programme starts there and needs no first phase:
with u = x - start split into nonnegative parts u = p - q, every row's slack is >= 0 at
the origin.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from fractions import Fraction
from typing import Generic, TypeVar

from gridtokenx.wire import errors

K = TypeVar("K", bound=Hashable)
ZERO = Fraction(0)


class _Dictionary(Generic[K]):
    """The simplex dictionary: basic_i = rhs_i - sum_j table_i[j] * nonbasic_j, objective
    z = z0 + sum_j cost[j] * nonbasic_j. Columns 0..n-1 are p, n..2n-1 are q, and the row
    slacks are labelled 2n + i. Columns listed in `frozen` never enter again: after a
    lexicographic stage they hold the point on that stage's optimal face."""

    def __init__(
        self, rows: Sequence[tuple[dict[K, Fraction], Fraction]], start: dict[K, Fraction]
    ):
        self.names = list(start)
        self.start = start
        n = self.n = len(self.names)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.table: list[list[Fraction]] = []
        self.rhs: list[Fraction] = []
        for coefs, bound in rows:
            line = [ZERO] * (2 * n)
            slack = bound
            for name, c in coefs.items():
                j = self.index[name]
                line[j] += c
                line[n + j] -= c
                slack -= c * start[name]
            if slack < 0:
                raise errors.ClearingNotOptimal("the starting prices are not optimal")
            self.table.append(line)
            self.rhs.append(slack)
        self.nonbasic = list(range(2 * n))
        self.basic = [2 * n + i for i in range(len(rows))]
        self.frozen: set[int] = set()
        self.cost: list[Fraction] = []

    def objective(self, target: K, sign: int) -> None:
        """Set the objective sign * x[target] in terms of the current nonbasic columns."""
        n, j = self.n, self.index[target]
        cost = [ZERO] * (2 * n)
        for label, s in ((j, sign), (n + j, -sign)):
            if label in self.nonbasic:
                cost[self.nonbasic.index(label)] += s
            else:
                line = self.table[self.basic.index(label)]
                for col, a in enumerate(line):
                    if a:
                        cost[col] -= s * a
        self.cost = cost

    def run(self) -> None:
        """Pivot until no column that may enter improves the objective."""
        table, rhs, cost, basic, nonbasic = (
            self.table,
            self.rhs,
            self.cost,
            self.basic,
            self.nonbasic,
        )
        frozen = self.frozen
        while True:
            entering = min((j for j in range(2 * self.n) if cost[j] > 0 and j not in frozen),
                           key=nonbasic.__getitem__, default=None)  # fmt: skip
            if entering is None:
                return
            leave, best = None, ZERO
            for i, line in enumerate(table):
                a = line[entering]
                if a > 0:
                    ratio = rhs[i] / a
                    if leave is None or ratio < best or (ratio == best and basic[i] < basic[leave]):
                        leave, best = i, ratio
            if leave is None:
                raise errors.ClearingNotOptimal("a value of the rule is unbounded")
            pivot_line, pivot = table[leave], table[leave][entering]
            new = [a / pivot for a in pivot_line]
            new[entering] = 1 / pivot
            rhs[leave] = rhs[leave] / pivot
            table[leave] = new
            for i, line in enumerate(table):
                a = line[entering]
                if i == leave or not a:
                    continue
                for j, b in enumerate(new):
                    if b and j != entering:
                        line[j] -= a * b
                line[entering] = -a * new[entering]
                rhs[i] -= a * rhs[leave]
            c = cost[entering]
            for j, b in enumerate(new):
                if b and j != entering:
                    cost[j] -= c * b
            cost[entering] = -c * new[entering]
            basic[leave], nonbasic[entering] = nonbasic[entering], basic[leave]

    def freeze(self) -> None:
        """Keep the current objective at its optimum: the columns that would lower it stay
        at zero from now on."""
        self.frozen.update(j for j, c in enumerate(self.cost) if c < 0)

    def point(self) -> dict[K, Fraction]:
        n = self.n
        value = [ZERO] * (2 * n)
        for i, label in enumerate(self.basic):
            if label < 2 * n:
                value[label] = self.rhs[i]
        return {
            name: self.start[name] + value[j] - value[n + j] for j, name in enumerate(self.names)
        }


def optimise(
    rows: Sequence[tuple[dict[K, Fraction], Fraction]],  # sum of coef * x <= rhs
    start: dict[K, Fraction],
    target: K,
    maximise: bool,
) -> tuple[Fraction, dict[K, Fraction]]:
    """The least (or greatest) value of x[target] over the rows, and a point reaching it.

    `start` must satisfy every row; the rows must bound x[target] (the rule's rows box
    every price). A start that breaks a row, or an unbounded target, is refused as
    not optimal: it means the certificate's prices were not optimal after all."""
    lp = _Dictionary(rows, start)
    lp.objective(target, 1 if maximise else -1)
    lp.run()
    point = lp.point()
    return point[target], point


def extent(
    rows: Sequence[tuple[dict[K, Fraction], Fraction]],
    start: dict[K, Fraction],
    target: K,
) -> tuple[Fraction, dict[K, Fraction], Fraction, dict[K, Fraction]]:
    """The least and the greatest value of x[target] over the rows, each with a point reaching
    it: `optimise` both ways on one dictionary (the maximum continues from the minimum's
    vertex, so the rows are set up once). Same conditions as `optimise`."""
    lp = _Dictionary(rows, start)
    lp.objective(target, -1)
    lp.run()
    at_low = lp.point()
    lp.objective(target, 1)
    lp.run()
    at_high = lp.point()
    return at_low[target], at_low, at_high[target], at_high


def lexicographic_minimum(
    rows: Sequence[tuple[dict[K, Fraction], Fraction]],
    start: dict[K, Fraction],
    targets: Sequence[K],
) -> dict[K, Fraction]:
    """The point of the rows whose x[targets[0]] is least, then, among those, whose
    x[targets[1]] is least, and so on: one dictionary, each stage starting from the last
    one's optimum with the columns that would leave its optimal face frozen. Where the
    targets are all the variables the point is unique. Same conditions as `optimise`."""
    lp = _Dictionary(rows, start)
    for target in targets:
        lp.objective(target, -1)
        lp.run()
        lp.freeze()
    return lp.point()
