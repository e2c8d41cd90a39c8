"""Mesh gossip against flooding at 10,000 nodes, in the deterministic network simulator.

Both routers run the same scenario (`gridtokenx.netsim`): 5 validators behind 20 sentries
and the rest full nodes, Thai link latencies, 100 Mbit/s uploads for validators and
sentries and 20 Mbit/s for household full nodes, blocks of the market-day mix at 1,000
TPS (one certified block a second, sent compact as the node sends it: about 35 KB of
header and transaction ids against 145 KB whole, from the real encodings), proposals and
votes among validators and sentries, transaction batches and grid-status updates; each
once calm and once with 1 % of full nodes never reading and 1 % churning. For each run:

- time for a grid update and for a certified block to reach every node (up and reading
  throughout), p50/p99/max over the messages, and over every (node, message) delivery;
- bytes sent and received per second per node, by role (mean, p99, max);
- connections per validator and per sentry;
- duplicate copies received per message, by topic;
- mesh degree checks after each heartbeat (outside [d_lo, d_hi] while a peer was free);
- and, per router, how much the faults cost the p99 figures.

Printed, and written to bench/results/network.json with the load average before and after
and the wall time of each run. Simulated time is not wall time: a 10,000-node run takes
minutes.

    PYTHONPATH=src python bench/network_bench.py [--nodes 10000] [--seconds 6]
        [--routers mesh flood] [--seeds 1] [--first-seed 1] [--cases calm faults]

`--cases faults` runs the faulty case alone (on a loaded machine, the calm and faulty runs
of a seed may go as separate processes side by side; the fault cost then needs both files).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import benchkit
from gridtokenx.netsim import engine, topology, traffic

RESULTS = Path(__file__).parent / "results" / "network.json"
FAULTS = 0.01
TARGETS = {
    "grid_reach_p99_s": 1.0,
    "block_reach_p99_s": 1.5,
    "full_node_bytes_per_s": 2_000_000,
    "duplicates_per_message": 3.0,
    "validator_connections": 50,
    "sentry_connections": 200,
    "fault_p99_cost": 0.10,
}


def spread(values: list[float], digits: int = 3) -> dict[str, float]:
    return {
        "p50": round(benchkit.quantile(values, 0.50), digits),
        "p99": round(benchkit.quantile(values, 0.99), digits),
        "max": round(max(values), digits) if values else math.nan,
    }


def figures(report: engine.Report, wall_s: float) -> dict[str, Any]:
    by_role = {
        role: {
            direction: {k: round(v / 1e6, 3) for k, v in spread(values, 0).items()}
            | {"mean": round(sum(values) / len(values) / 1e6, 3) if values else math.nan}
            for direction, values in rates.items()
        }
        for role, rates in report.bytes_per_s.items()
    }
    return {
        "wall_s": round(wall_s, 1),
        "events": report.events,
        "events_per_s": round(report.events / wall_s),
        "messages": report.messages,
        "grid_reach_s": spread(report.reach_s["grid"]),
        "block_reach_s": spread(report.reach_s["blocks"]),
        "grid_delivery_s": spread(report.delivery_s["grid"]),
        "block_delivery_s": spread(report.delivery_s["blocks"]),
        "transactions_reach_s": spread(report.reach_s["transactions"]),
        "consensus_reach_s": spread(report.reach_s["consensus"]),
        "missed_deliveries": report.missed,
        "megabytes_per_s": by_role,
        "connections": {
            role: {"mean": round(sum(c) / len(c), 1), "max": max(c)}
            for role, c in report.connections.items()
        },
        "duplicates_per_message": {k: round(v, 2) for k, v in report.duplicates.items()},
        "degree_violations": report.degree_violations,
        "degree_checks": report.heartbeats_checked,
        "frames_lost_in_stuck_peers": report.dropped_stuck,
        "copies_cancelled_by_idontwant": report.cancelled,
    }


def verdicts(calm: dict[str, Any], faulty: dict[str, Any] | None) -> dict[str, bool]:
    full = calm["megabytes_per_s"]["full"]
    out = {
        "grid_reach_p99_s": calm["grid_reach_s"]["p99"] <= TARGETS["grid_reach_p99_s"],
        "block_reach_p99_s": calm["block_reach_s"]["p99"] <= TARGETS["block_reach_p99_s"],
        "full_node_bytes_per_s": max(full["sent"]["p99"], full["received"]["p99"]) * 1e6
        <= TARGETS["full_node_bytes_per_s"],
        "duplicates_per_message_blocks": calm["duplicates_per_message"].get("blocks", math.inf)
        <= TARGETS["duplicates_per_message"],
        "duplicates_per_message_grid": calm["duplicates_per_message"].get("grid", math.inf)
        <= TARGETS["duplicates_per_message"],
        "validator_connections": calm["connections"]["validator"]["max"]
        <= TARGETS["validator_connections"],
        "sentry_connections": calm["connections"]["sentry"]["max"] <= TARGETS["sentry_connections"],
    }
    if faulty is not None:
        for name in ("grid_reach_s", "block_reach_s"):
            cost = faulty[name]["p99"] / calm[name]["p99"] - 1
            faulty.setdefault("p99_cost_of_faults", {})[name] = round(cost, 3)
            out[f"fault_cost_{name}"] = cost <= TARGETS["fault_p99_cost"]
    return out


def finite(value: Any) -> Any:
    """JSON has no infinity: a message that never reached a node is written as null (the
    missed deliveries count them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=6.0, help="measured simulated time")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--drain", type=float, default=3.0)
    parser.add_argument("--routers", nargs="+", default=["mesh", "flood"])
    parser.add_argument("--seeds", type=int, default=1, help="repeats, one seed each")
    parser.add_argument("--first-seed", type=int, default=1, help="seed of the first repeat")
    parser.add_argument("--no-faults", action="store_true", help="calm runs only")
    parser.add_argument("--cases", nargs="+", choices=["calm", "faults"],
                        default=["calm", "faults"], help="which cases to run")  # fmt: skip
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    sizes = traffic.sizes(1_000, 1.0, 2.0, 5)
    result: dict[str, Any] = {
        "benchmark": "network",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "load_average_before": [round(x, 2) for x in load_before],
        "nodes": args.nodes,
        "measured_s": args.seconds,
        "warmup_s": args.warmup,
        "drain_s": args.drain,
        "message_bytes": dataclasses.asdict(sizes),
        "targets": TARGETS,
        "runs": {},
    }
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for router in args.routers:
            per_fault: dict[str, dict[str, Any]] = {}
            cases = [c for c in args.cases if not (args.no_faults and c == "faults")]
            for faults in [FAULTS if case == "faults" else 0.0 for case in cases]:
                scenario = engine.Scenario(
                    layout=topology.Layout(nodes=args.nodes), router=router, seed=seed,
                    warmup_s=args.warmup, duration_s=args.seconds, drain_s=args.drain,
                    non_reading=faults, churn=faults,
                )  # fmt: skip
                label = f"{router}/{'faults' if faults else 'calm'}/seed{seed}"
                print(f"running {label} ({args.nodes} nodes)...", file=sys.stderr, flush=True)
                started = time.perf_counter()
                report = engine.run(scenario, sizes)
                per_fault["faults" if faults else "calm"] = figures(
                    report, time.perf_counter() - started
                )
                per_fault["faults" if faults else "calm"]["load_average_1m_after"] = round(
                    os.getloadavg()[0], 2
                )
            calm, faulty = per_fault.get("calm"), per_fault.get("faults")
            result["runs"][f"{router}/seed{seed}"] = {
                **per_fault, "targets_met": verdicts(calm, faulty) if calm else {},
            }  # fmt: skip
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(f"GridTokenX network benchmark: {args.nodes} nodes, {args.seconds} s measured")
    for name, run in result["runs"].items():
        if "calm" not in run:
            faulty = run["faults"]
            print(f"{name} with faults: grid {faulty['grid_reach_s']} blocks "
                  f"{faulty['block_reach_s']}, {faulty['wall_s']} s wall")  # fmt: skip
            continue
        calm = run["calm"]
        print(f"{name}: grid reach p50/p99/max {calm['grid_reach_s']} s, blocks "
              f"{calm['block_reach_s']} s, full node MB/s {calm['megabytes_per_s']['full']}, "
              f"duplicates {calm['duplicates_per_message']}, connections "
              f"{calm['connections']}, {calm['wall_s']} s wall")  # fmt: skip
        if "faults" in run:
            print(
                f"  with faults: grid {run['faults']['grid_reach_s']} blocks "
                f"{run['faults']['block_reach_s']} cost {run['faults']['p99_cost_of_faults']}"
            )
        print(f"  targets met: {run['targets_met']}")
    result = finite(result)
    benchkit.write(result, args.output)
    return result


if __name__ == "__main__":
    main()
