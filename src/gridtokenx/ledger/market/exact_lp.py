"""A small linear programme solved exactly in `Fraction`, for the auction's price rule.

The optimal prices of a two-commodity clearing form a polyhedron that is not always a
lattice (a full link's shared rent ties four prices), so a zone's exact range of optimal
prices is the minimum and the maximum of a linear programme over it. Those programmes are
tiny (two prices per zone, a few rows per link) and consensus may not use floating point,
so they are solved here by the textbook simplex method on rationals, with Bland's rule
(the smallest index enters and leaves), which never cycles and makes the answer a function
of the rows alone: every validator computes the same value.

The caller always knows a feasible point (the certificate's own optimal prices, or the
midpoint of two earlier optima), so the programme starts there and needs no first phase:
with u = x - start split into nonnegative parts u = p - q, every row's slack is >= 0 at
the origin.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from fractions import Fraction
from typing import TypeVar

from gridtokenx.wire import errors

K = TypeVar("K", bound=Hashable)


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
    names = list(start)
    n = len(names)
    index = {name: i for i, name in enumerate(names)}
    # Dictionary form: basic_i = rhs_i - sum_j table_i[j] * nonbasic_j, objective
    # z = z0 + sum_j cost[j] * nonbasic_j. Columns 0..n-1 are p, n..2n-1 are q, and the
    # row slacks are labelled 2n + i.
    table: list[list[Fraction]] = []
    rhs: list[Fraction] = []
    for coefs, bound in rows:
        line = [Fraction(0)] * (2 * n)
        slack = bound
        for name, c in coefs.items():
            j = index[name]
            line[j] += c
            line[n + j] -= c
            slack -= c * start[name]
        if slack < 0:
            raise errors.ClearingNotOptimal("the starting prices are not optimal")
        table.append(line)
        rhs.append(slack)
    sign = 1 if maximise else -1
    cost = [Fraction(0)] * (2 * n)
    cost[index[target]] = Fraction(sign)
    cost[n + index[target]] = Fraction(-sign)
    nonbasic = list(range(2 * n))
    basic = [2 * n + i for i in range(len(rows))]
    while True:
        entering = min((j for j in range(2 * n) if cost[j] > 0), key=nonbasic.__getitem__,
                       default=None)  # fmt: skip
        if entering is None:
            break
        leave, best = None, Fraction(0)
        for i, line in enumerate(table):
            a = line[entering]
            if a > 0:
                ratio = rhs[i] / a
                if leave is None or ratio < best or (ratio == best and basic[i] < basic[leave]):
                    leave, best = i, ratio
        if leave is None:
            raise errors.ClearingNotOptimal("a price of the rule is unbounded")
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
    value = [Fraction(0)] * (2 * n)
    for i, label in enumerate(basic):
        if label < 2 * n:
            value[label] = rhs[i]
    point = {name: start[name] + value[j] - value[n + j] for j, name in enumerate(names)}
    return point[target], point
