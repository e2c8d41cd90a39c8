"""Day-ahead auction: solve time (HiGHS and the exact certificate) and certificate check
time per interval, for 7 zones and 1,000 / 10,000 / 100,000 steps, next to the raw Ed25519
rate of the same run. A share of the curves is renewable (`--renewable`, 0.2 by default):
offers from renewable sellers and renewable-only bids, so the clearing is the
two-commodity one (docs/market.md section 11).

Three figures per size, each the min and median of `--repeats` runs:
- `solve`: node/auction_solver.solve, HiGHS plus rebuilding the certificate exactly (and
  the solver's own final check);
- `check`: ledger/market/clearing.check alone, what every validator computes;
- `ledger_check`: reading the interval's curves and the grid from a RocksDB-free ledger
  state (`auction_clearing.instance`) and then `check`, as the clearing transaction does
  before it writes any trade;
- `exact_stage`: the price rule's third stage (`clearing.exact_midpoints`, two exact
  linear programmes per zone not tied to one already fixed) forced on the same clearing:
  what a check adds, at most, where stage 1's midpoints are not optimal (`rule_stage`
  says which stage this clearing took). `split_programme` says whether the renewable
  split rule needed its exact programme (some zone short of renewable energy), and
  `binding_headrooms` how many headrooms bind (the headroom rule's programme runs only
  there).
Targets (issue 18): check < 50 ms at 10,000 steps, solve < 1 s.

    PYTHONPATH=src python bench/auction_bench.py [--sizes 1000 10000 100000] [--repeats 5]
        [--renewable 0.2]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import benchkit
from gridtokenx.ledger import chain_info, genesis
from gridtokenx.ledger.market import auction, auction_clearing, clearing
from gridtokenx.ledger.market.clearing import Instance, Link, Step
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.node import auction_solver
from gridtokenx.wire import crypto, errors, tx
from gridtokenx.wire.tx import CurveStep, Side

ZONES = ("BKK", "CEN", "EST", "NEA", "NTH", "STH", "WST")
STEPS_PER_CURVE = 10
INTERVAL_START = 1_767_315_600  # 2 January 2026, 08:00 Bangkok
RESULTS = Path(__file__).parent / "results" / "auction.json"


BenchStep = tuple[str, Side, int, int, bool]  # zone, side, price, Wh, renewable


def steps_for(total: int, seed: int, renewable: float = 0.2) -> list[BenchStep]:
    """(zone, side, price, Wh, renewable) for `total` steps spread over the 7 zones, each
    zone's prices shifted so that links carry energy and some bind; a share `renewable` of
    the curves (whole curves of STEPS_PER_CURVE steps) renewable, renewable-only bids
    priced a little higher."""
    rng = random.Random(seed)
    bias = {z: rng.randrange(-80, 80) for z in ZONES}
    out = []
    green = False
    for i in range(total):
        if i % STEPS_PER_CURVE == 0:
            green = rng.random() < renewable
        zone = ZONES[i % len(ZONES)]
        side = rng.choice((Side.BUY, Side.SELL))
        extra = 40 if green and side is Side.BUY else 0
        price = max(0, min(1_000, rng.randrange(150, 550) + bias[zone] + extra))
        out.append((zone, side, price, rng.randrange(100, 5_000, 100), green))
    return out


def instance_of(steps: list[BenchStep], seed: int) -> Instance:
    rng = random.Random(seed)
    links = []
    for a, b, capacity_kw, loss in genesis.INTERCONNECTORS:
        for x, y in ((a, b), (b, a)):
            room = rng.choice([capacity_kw * 250, 50_000, 500_000])  # kW x 0.25 h, or tight
            links.append(Link(x, y, loss, room))
    links.sort(key=lambda link: (link.from_zone, link.to_zone))
    body = tuple(
        Step(1 + i // STEPS_PER_CURVE, i % STEPS_PER_CURVE, side, zone, price, wh, green)
        for i, (zone, side, price, wh, green) in enumerate(steps)
    )
    return Instance(tuple(sorted(ZONES)), tuple(links), {"BKK": 2_000_000}, body)


def ledger_with(steps: list[BenchStep]) -> Sandbox:
    """A devnet ledger holding the steps as open auction curves of one interval (records
    written directly: this measures reading and checking them, not placing them)."""
    sb = Sandbox()
    view = sb.state.overlay()
    ids = []
    for n in range(0, len(steps), STEPS_PER_CURVE):
        chunk = steps[n : n + STEPS_PER_CURVE]
        zone, side, green = chunk[0][0], chunk[0][1], chunk[0][4]
        curve_id = 1 + n // STEPS_PER_CURVE
        owner = crypto.address_of(crypto.PrivateKey.from_dev_label(f"bench/{curve_id}").public_key)
        curve = auction.AuctionCurve(
            curve_id, owner, side, zone, INTERVAL_START,
            tuple(CurveStep(p, q) for _, _, p, q, _ in chunk), 0, auction.CurveStatus.OPEN, 0,
            renewable_only=green and side is Side.BUY, renewable=green and side is Side.SELL,
        )  # fmt: skip
        view.put(auction.curve_key(curve_id), curve)
        ids.append(curve_id)
    view.put(auction.interval_key(INTERVAL_START), auction.AuctionInterval(curves=tuple(ids)))
    view.commit()
    return sb


def timed(work: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(min, median) wall milliseconds of `repeats` runs."""
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        runs.append((time.perf_counter() - started) * 1000)
    return min(runs), statistics.median(runs)


def timed_on_ledger(steps: list[BenchStep], repeats: int) -> tuple[float, float]:
    """What the clearing transaction does before it writes: read the auction and the grid
    from the ledger state, then check (the devnet's links, so solved for them here)."""
    sb = ledger_with(steps)
    params = chain_info.params(sb.state.overlay())
    inst, _ = auction_clearing.instance(sb.state.overlay(), INTERVAL_START, params)
    body = auction_solver.solve(inst, INTERVAL_START).body

    def work() -> None:
        found, _ = auction_clearing.instance(sb.state.overlay(), INTERVAL_START, params)
        clearing.check(found, body.zones, body.flows)

    return timed(work, repeats)


def stage_of(inst: Instance, checked: clearing.Checked) -> str:
    """Which stage of the price rule gave this clearing's zone prices (docs/market.md
    section 11): "midpoints" (stage 1) or "exact" (the exact midpoints, zone by zone)."""
    try:
        low, high = clearing.price_range(inst, checked)
    except errors.ClearingNotOptimal:
        return "exact"
    mid = {z: (low[z] + high[z]) / 2 for z in inst.zones}
    return "midpoints" if clearing.green_floor(inst, checked, mid) is not None else "exact"


def main(argv: list[str]) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--renewable", type=float, default=0.2, help="share of curves")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    result: dict[str, object] = {
        "benchmark": "auction",
        "python": platform.python_version(),
        "zones": len(ZONES),
        "repeats": args.repeats,
        "renewable_share": args.renewable,
        "load_average_1m_before": round(load_before[0], 2),
    }
    for size in args.sizes:
        steps = steps_for(size, seed=size, renewable=args.renewable)
        inst = instance_of(steps, seed=size)
        solution = auction_solver.solve(inst, INTERVAL_START)
        body = solution.body
        solve = functools.partial(auction_solver.solve, inst, INTERVAL_START)
        solve_min, solve_med = timed(solve, args.repeats)
        check = functools.partial(clearing.check, inst, body.zones, body.flows)
        check_min, check_med = timed(check, args.repeats)
        ledger_min, ledger_med = timed_on_ledger(steps, args.repeats)
        checked = check()
        exact = functools.partial(clearing.exact_midpoints, inst, checked)
        exact_min, exact_med = timed(exact, args.repeats)
        result[f"steps_{size}"] = {
            "welfare_satang": round(float(solution.welfare) / 1000),
            "price_zones": len({z.price for z in body.zones}),
            "renewable_steps": sum(1 for step in steps if step[4]),
            "renewable_prices_above_zone_price": sum(z.green_price is not None for z in body.zones),
            "flows": len(body.flows),
            "solve_ms_min": round(solve_min, 1),
            "solve_ms_median": round(solve_med, 1),
            "check_ms_min": round(check_min, 2),
            "check_ms_median": round(check_med, 2),
            "ledger_check_ms_min": round(ledger_min, 1),
            "ledger_check_ms_median": round(ledger_med, 1),
            "rule_stage": stage_of(inst, checked),
            "split_programme": clearing.split_rows(inst, checked) is not None,
            "binding_headrooms": len(clearing.binding_zones(inst, checked)),
            "exact_stage_ms_min": round(exact_min, 1),
            "exact_stage_ms_median": round(exact_med, 1),
        }
    signer = crypto.PrivateKey.from_dev_label("bench/ed25519")
    signed = [
        tx.make(signer, "bench", n, tx.Transfer(tx.Asset.THB, b"\x01" * 20, n + 1))
        for n in range(2_000)
    ]
    result["raw_ed25519_verify_per_s"] = round(benchkit.raw_verify_rate(signed))
    result["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    print(f"GridTokenX day-ahead auction benchmark: {len(ZONES)} zones, sizes {args.sizes}")
    benchkit.print_figures(result)
    benchkit.write(result, args.output)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
