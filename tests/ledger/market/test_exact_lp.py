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
