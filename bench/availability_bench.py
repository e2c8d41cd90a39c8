"""Availability soak: the market-day load on four validators and a full node, a perturbation
every 30-60 s, then the fault harness's checker (docs/faults.md).

The schedule is a seeded random choice among kill/restart, restart, pause, partition, rogue
peer, slow link and clock offset (`scenario.soak_schedule`): each perturbation hits one
node and is over before the next, so never more than one validator is faulty at once. The
load is the simulator's market day (its agents' orders for the intervals ahead,
`simulator.loadgen`) with a quarter THB transfers, sent through the nodes' APIs; every
transaction a node acknowledges is followed to its block.

Printed and written to bench/results/availability.json: the fraction of seconds in which
the chain committed, the longest stall, transactions acknowledged / committed / dropped /
lost, finality p50/p99 from submission, whether the issue's targets are met (no stall over
3 s, at least 99.99 % of acknowledged transactions final within 3 s, nothing lost), each
perturbation's own figures, and the load average. A fault-free run of the same load
(`--baseline-minutes`, on by default) comes first in the same process: the figures the
perturbed run is measured against on this machine at this moment.

    python bench/availability_bench.py [--minutes 3] [--rate 20] [--seed 1]
    python bench/availability_bench.py --minutes 30          # the full soak
    python bench/availability_bench.py --scenario bench/scenarios/pause.toml
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

import benchkit
from gridtokenx.devnet.faults import Load, Scenario, load_file, run
from gridtokenx.devnet.faults.scenario import soak_schedule
from gridtokenx.ledger import genesis
from gridtokenx.simulator import loadgen

RESULTS = Path(__file__).parent / "results" / "availability.json"
TARGET_STALL_S = 3.0
TARGET_FINAL_FRACTION = 0.9999
HEADLINE = (
    "seconds_with_commit_fraction", "longest_stall_s", "acknowledged", "committed", "dropped",
    "lost", "finality_p50_s", "finality_p99_s", "final_within_target_fraction",
)  # fmt: skip


def market_day_orders(
    spec: genesis.Genesis, load: Load, now: int, count: int, next_nonce: Callable[[bytes], int]
) -> tuple[list[list[bytes]], list[bytes]]:
    """`count` orders of the market day's agents (`simulator.loadgen`) for the intervals
    ahead: more intervals (doubling) until there are enough, and more participants
    (doubling) once the intervals reach the trading horizon."""
    participants, intervals = load.participants, 4
    for _ in range(40):  # bounded: each step doubles intervals or participants
        try:
            made = loadgen.market_load(spec, genesis.dev_keys(), now, intervals, participants,
                                       seed=load.seed, next_nonce=next_nonce,
                                       key_prefix=f"faults/{load.seed}")  # fmt: skip
        except ValueError:  # past the trading horizon: more agents instead
            participants, intervals = participants * 2, max(4, intervals // 2)
            continue
        if len(made.orders) >= count:
            return made.setup, made.orders[:count]
        intervals *= 2
    raise ValueError(f"the market day would not give {count} orders")


def soak(
    minutes: float, rate: float, seed: int, block_ms: int, full_nodes: int, redundancy: int = 2
) -> Scenario:
    seconds = minutes * 60
    base = Scenario("soak", full_nodes=full_nodes, block_ms=block_ms)
    faults = soak_schedule(seed, seconds, base.validator_names(), base.node_names()[4:])
    load = Load("mixed", rate, seconds, participants=max(60, int(rate * seconds) // 60),
                seed=seed, redundancy=redundancy)  # fmt: skip
    return msgspec.structs.replace(base, name=f"soak-{minutes:g}min-seed{seed}", load=load,
                                   faults=faults)  # fmt: skip


def _targets(result: dict[str, Any]) -> dict[str, bool]:
    within = result["final_within_target_fraction"]
    return {
        "no_stall_over_3s": result["longest_stall_s"] <= TARGET_STALL_S,
        "final_within_3s_99.99pct": within is not None and within >= TARGET_FINAL_FRACTION,
        "nothing_lost": result["lost"] == 0,
        "safe": result["safe"],
        "no_crash": not result["crashes"],
    }


def _runs(scenario: Scenario, repeat: int, keep: Path | None) -> list[dict[str, Any]]:
    results = []
    for i in range(repeat):
        root = None if keep is None else keep / f"{scenario.name}-{i}"
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        results.append(run(scenario, root, orders=market_day_orders))
    return results


def _spread(results: list[dict[str, Any]]) -> dict[str, Any]:
    """min and median of each headline figure over repeated runs."""
    out: dict[str, Any] = {}
    for name in HEADLINE:
        values = [r[name] for r in results if r[name] is not None]
        if values:
            out[name] = {"min": min(values), "median": statistics.median(values)}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=20.0, help="transactions per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--block-ms", type=int, default=1000)
    parser.add_argument("--full-nodes", type=int, default=1)
    parser.add_argument("--redundancy", type=int, default=2,
                        help="nodes each batch goes to at once (1: one node)")  # fmt: skip
    parser.add_argument("--baseline-minutes", type=float, default=1.0, help="0: no baseline")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--scenario", type=Path, help="run this scenario file instead")
    parser.add_argument("--keep", type=Path, help="keep every run's homes under this folder")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.scenario is not None:
        scenario = load_file(args.scenario)
    else:
        scenario = soak(args.minutes, args.rate, args.seed, args.block_ms, args.full_nodes,
                        args.redundancy)  # fmt: skip
    load_before = os.getloadavg()
    baseline = None
    if args.baseline_minutes > 0 and args.scenario is None:
        quiet = soak(args.baseline_minutes, args.rate, args.seed, args.block_ms,
                     args.full_nodes, args.redundancy)  # fmt: skip
        quiet = msgspec.structs.replace(quiet, name="baseline", faults=())
        baseline = _runs(quiet, 1, args.keep)[0]
    results = _runs(scenario, args.repeat, args.keep)
    last = results[-1]
    out: dict[str, Any] = {
        "benchmark": "availability",
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "scenario": scenario.name,
        "minutes": round(scenario.seconds / 60, 2),
        "rate_tx_per_s": scenario.load.rate,
        "redundancy": scenario.load.redundancy,
        "repeat": args.repeat,
        "load_average_1m_before": round(load_before[0], 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "targets": _targets(last),
        **{name: last[name] for name in HEADLINE},
        "crashes": len(last["crashes"]),
        "violations": last["violations"],
        "spread": _spread(results) if args.repeat > 1 else None,
        "baseline": None if baseline is None else {n: baseline[n] for n in HEADLINE},
        "faults": last["faults"],
        "runs": results,
    }
    benchkit.print_figures({k: v for k, v in out.items() if k not in ("runs", "faults")})
    for row in last["faults"]:
        print(f"  {json.dumps(row)}")
    benchkit.write(out, args.output)
    return out


if __name__ == "__main__":
    benchkit.run_main(main, sys.argv[1:])
