"""The same network on separate hosts and on loopback, in one run: block rate and finality.

Four validators and some full nodes run twice per repeat, alternately: once each on a
network namespace of its own with its own address on a bridge (devnet/netns; every
packet between nodes, and every API request from the load generator, crosses veth pairs
and the bridge), once all on 127.0.0.1. The load is the fault harness's: THB transfers
at `--rate` per second through every node's API, each acknowledged one followed to its
block. Alternating the two keeps a busy shared machine from favouring either.

Printed and written to bench/results/netns.json, per placement: blocks per second over
the load window, finality p50 and p99 from the acknowledged submission to the first
report of its block, transactions acknowledged and committed, each as min and median over
the repeats, plus whether the checker found every store identical; the load average
before and after. Needs root for the namespaces (the loopback half alone runs without).

    python bench/netns_bench.py [--repeat 3] [--seconds 30] [--rate 20] [--full-nodes 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import benchkit
from gridtokenx.devnet.faults.report import percentile
from gridtokenx.devnet.faults.scenario import Load
from gridtokenx.devnet.homes import devnet_validators
from gridtokenx.devnet.netns.hosts import Hosts, available
from gridtokenx.devnet.netns.nodes import Nodes, Site, on_hosts, on_loopback
from gridtokenx.devnet.netns.session import Session
from gridtokenx.devnet.processes import free_base_port

RESULTS = Path(__file__).parent / "results" / "netns.json"
FIGURES = ("blocks_per_s", "finality_p50_s", "finality_p99_s", "acknowledged", "committed")


async def _measure(
    root: Path, place: Callable[[int], Site], args: argparse.Namespace
) -> dict[str, Any]:
    nodes = Nodes(root, place, block_ms=args.block_ms)
    nodes.create(devnet_validators(args.validators), args.full_nodes)
    load = Load("transfers", rate=args.rate, seconds=args.seconds, participants=60)
    session = Session(nodes, load, log=lambda line: None)
    try:
        await session.start()
        await asyncio.sleep(args.seconds)
        verdict = await session.finish()
    finally:
        await session.close()
    assert session.follower is not None and session.generator is not None
    seen = [t for h, t in session.follower.first_seen.items()
            if h > session.load_from and t <= args.seconds]  # fmt: skip
    acked = session.generator.acked("load")
    final_at = session.follower.final_at
    latencies = [final_at[h] - (s.sent or s.submitted) for h, s in acked.items() if h in final_at]
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    return {
        "blocks_per_s": round(len(seen) / args.seconds, 3),
        "finality_p50_s": None if p50 is None else round(p50, 3),
        "finality_p99_s": None if p99 is None else round(p99, 3),
        "acknowledged": len(acked),
        "committed": sum(1 for h in acked if h in verdict.committed),
        "identical_stores": verdict.safe and len(set(verdict.heights.values())) == 1,
        "lost": len(verdict.lost),
    }


def _once(netns: bool, args: argparse.Namespace) -> dict[str, Any]:
    count = args.validators + args.full_nodes
    with tempfile.TemporaryDirectory(prefix="gtx-netns-bench-") as tmp:
        if not netns:
            return asyncio.run(_measure(Path(tmp), on_loopback(free_base_port(count)), args))
        with Hosts() as hosts:
            hosts.create(count)
            return asyncio.run(_measure(Path(tmp), on_hosts(hosts), args))


def _spread(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in FIGURES:
        values = [r[name] for r in runs if r[name] is not None]
        if values:
            out[name] = {"min": min(values), "median": statistics.median(values)}
    out["identical_stores"] = all(r["identical_stores"] for r in runs)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0, help="of load per run")
    parser.add_argument("--rate", type=float, default=20.0, help="transactions per second")
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--full-nodes", type=int, default=4)
    parser.add_argument("--block-ms", type=int, default=1000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    unavailable = available()
    if unavailable is not None:
        print(f"namespaces unavailable ({unavailable}): loopback only", file=sys.stderr)
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {"loopback": [], "netns": []}
    for i in range(args.repeat):  # alternate, so the machine's load falls on both alike
        for mode in runs if unavailable is None else ["loopback"]:
            runs[mode].append(_once(mode == "netns", args))
            print(f"run {i + 1} {mode}: {runs[mode][-1]}")
    out: dict[str, Any] = {
        "benchmark": "netns",
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "validators": args.validators,
        "full_nodes": args.full_nodes,
        "rate_tx_per_s": args.rate,
        "seconds": args.seconds,
        "block_ms": args.block_ms,
        "repeat": args.repeat,
        "load_average_1m_before": round(load_before[0], 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        **{mode: _spread(r) for mode, r in runs.items() if r},
        "runs": runs,
    }
    benchkit.print_figures({k: v for k, v in out.items() if k != "runs"})
    benchkit.write(out, args.output)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
