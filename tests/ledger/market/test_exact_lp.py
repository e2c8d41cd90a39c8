"""The exact simplex the auction's price rule uses for a zone's range of optimal prices."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from scipy.optimize import linprog

from gridtokenx.ledger.market import exact_lp
from gridtokenx.wire import errors

F = Fraction


def test_a_small_programme_and_its_optimal_point() -> None:
    rows = [
        ({"x": F(1), "y": F(1)}, F(4)),
        ({"x": F(1), "y": F(-1)}, F(2)),
        ({"y": F(-1)}, F(0)),
        ({"x": F(-1)}, F(1)),
    ]
    value, point = exact_lp.optimise(rows, {"x": F(0), "y": F(0)}, "x", maximise=True)
    assert value == 3 and point == {"x": F(3), "y": F(1)}
    value, point = exact_lp.optimise(rows, {"x": F(0), "y": F(0)}, "x", maximise=False)
    assert value == -1 and point["x"] == -1


def test_a_start_that_breaks_a_row_or_an_unbounded_target_is_refused() -> None:
    rows = [({"x": F(1)}, F(1))]
    with pytest.raises(errors.ClearingNotOptimal, match="starting"):
        exact_lp.optimise(rows, {"x": F(2)}, "x", maximise=True)
    with pytest.raises(errors.ClearingNotOptimal, match="unbounded"):
        exact_lp.optimise(rows, {"x": F(0)}, "x", maximise=False)


@pytest.mark.parametrize("seed", range(20))
def test_random_boxed_programmes_agree_with_scipy(seed: int) -> None:
    """Random boxed programmes with degenerate rows (several tight at the start, two-sided
    equalities): the exact optimum equals HiGHS's, and the point reached meets every row."""
    rng = random.Random(seed)
    names = [f"v{i}" for i in range(rng.randint(2, 6))]
    rows = []
    for name in names:
        rows.append(({name: F(1)}, F(rng.randint(1, 50))))
        rows.append(({name: F(-1)}, F(rng.randint(0, 50))))
    for _ in range(rng.randint(1, 12)):
        coefs = {n: F(rng.randint(-9, 9), rng.choice([1, 7, 100])) for n in rng.sample(names, 2)}
        rhs = F(rng.choice([0, 0, rng.randint(1, 30)]))
        rows.append((coefs, rhs))
        if rhs == 0 and rng.random() < 0.3:
            rows.append(({n: -c for n, c in coefs.items()}, F(0)))
    start = dict.fromkeys(names, F(0))
    target = rng.choice(names)
    for maximise in (False, True):
        value, point = exact_lp.optimise(rows, start, target, maximise)
        for coefs, rhs in rows:
            assert sum(c * point[n] for n, c in coefs.items()) <= rhs
        assert point[target] == value
        c = [(-1.0 if maximise else 1.0) * (n == target) for n in names]
        a = [[float(coefs.get(n, 0)) for n in names] for coefs, _ in rows]
        res = linprog(c, A_ub=a, b_ub=[float(r) for _, r in rows], bounds=(None, None))
        assert res.status == 0
        assert float(value) == pytest.approx(res.x[names.index(target)], abs=1e-7)


@pytest.mark.parametrize("seed", range(20))
def test_a_lexicographic_minimum_is_the_sequence_of_single_minima(seed: int) -> None:
    """The one-dictionary lexicographic minimum (each stage's optimal face kept by freezing
    columns) against the textbook sequence: minimise the first target, fix it with two rows,
    minimise the next, ... each an `optimise` from the last one's point. They agree on every
    target, and the point meets every row."""
    rng = random.Random(seed)
    names = [f"v{i}" for i in range(rng.randint(2, 6))]
    rows = []
    for name in names:
        rows.append(({name: F(1)}, F(rng.randint(1, 50))))
        rows.append(({name: F(-1)}, F(0)))
    for _ in range(rng.randint(1, 10)):
        coefs = {n: F(rng.randint(-9, 9), rng.choice([1, 7, 100])) for n in rng.sample(names, 2)}
        rows.append((coefs, F(rng.choice([0, rng.randint(1, 30)]))))
    start = dict.fromkeys(names, F(0))
    targets = rng.sample(names, rng.randint(1, len(names)))
    point = exact_lp.lexicographic_minimum(rows, start, targets)
    for coefs, rhs in rows:
        assert sum(c * point[n] for n, c in coefs.items()) <= rhs
    fixed, current = list(rows), start
    for target in targets:
        value, current = exact_lp.optimise(fixed, current, target, maximise=False)
        assert point[target] == value
        fixed += [({target: F(1)}, value), ({target: F(-1)}, -value)]
    first = [1.0 * (n == targets[0]) for n in names]
    a = [[float(coefs.get(n, 0)) for n in names] for coefs, _ in rows]
    res = linprog(first, A_ub=a, b_ub=[float(r) for _, r in rows], bounds=(None, None))
    assert res.status == 0
    assert float(point[targets[0]]) == pytest.approx(res.fun, abs=1e-7)
