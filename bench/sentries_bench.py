"""Validators behind sentries next to validators meshed directly, as processes on 127.0.0.1.

The same load as devnet_bench (crossing market orders, signed beforehand, offered at
`--rate` per second in batches every 20 ms) runs against two layouts of four validators,
one after the other, `--repeat` times each, alternating so that the machine's load falls
on both alike:

- direct: the validators meshed with each other; the generator is a client peer of each
  validator;
- sentries: each validator behind a sentry full node (`init_devnet(..., sentries=True)`:
  validators with peer exchange off, dialling only the sentries); the generator is a
  client peer of each sentry, as the public would be, so every order and every vote
  crosses a sentry on its way.

Finality is from submission to the first COMMIT holding the order that reaches the
generator. For each layout it prints the min and median over the runs of committed
orders per second and of finality p50 and p99, with the machine's load average, and
writes bench/results/sentries.json (every run's figures too).

    python bench/sentries_bench.py [--rate 200] [--seconds 15] [--repeat 2] [--block-ms 500]
                                   [--accounts 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchkit
from devnet_bench import _drive, _same_chain, height_steps, validators_running
from gridtokenx.devnet.homes import devnet_genesis, init_devnet, read_key_id, sentry_homes
from gridtokenx.devnet.processes import free_base_port
from gridtokenx.node.home import read_config
from workload import MarketLoad

RESULTS = Path(__file__).parent / "results" / "sentries.json"
CHAIN = "gridtokenx-bench-sentries"
VALIDATORS = 4
LAYOUTS = ("direct", "sentries")
FIGURES = ("committed_tx_per_s", "finality_p50_ms", "finality_p99_ms")
Run = dict[str, Any]  # one run's figures, as devnet_bench._drive gives them


def run_once(
    layout: str, rate: int, seconds: float, block_ms: int, accounts: int, folder: Path
) -> Run:
    """One run of `layout` in a new devnet under `folder`; its figures."""
    behind = layout == "sentries"
    now = int(time.time())
    base = free_base_port(2 * VALIDATORS)
    homes = init_devnet(folder, CHAIN, now - 60, base, block_ms=block_ms, sentries=behind)
    guards = sentry_homes(homes) if behind else []
    # Connected: a validator to the N sentries; a sentry to its validator, the other
    # sentries and the other validators (2N - 1); directly meshed, each to the others.
    peers = [VALIDATORS] * VALIDATORS + [2 * VALIDATORS - 1] * VALIDATORS if behind else None
    entries = guards or homes
    load = MarketLoad(devnet_genesis(CHAIN, now - 60), now, accounts_per_side=accounts)
    with validators_running([*homes, *guards], peers) as procs:
        ids = [bytes.fromhex(read_key_id(h)) for h in entries]
        ports = [read_config(h).listen_port for h in entries]
        figures = asyncio.run(_drive(load, ports, ids, rate, seconds, [p.pid for p in procs]))
    figures["heights_checked_identical"] = _same_chain([*homes, *guards])
    trading = figures.pop("trading_heights")
    assert isinstance(trading, list)
    figures["height_steps"] = height_steps(homes, set(trading))
    figures["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    return figures


def summary(runs: list[Run]) -> dict[str, object]:
    """Min and median of each figure over the runs of one layout."""
    out: dict[str, object] = {"runs": len(runs)}
    for name in FIGURES:
        values = [r[name] for r in runs if r[name] is not None]
        out[f"{name}_min"] = min(values, default=None)
        out[f"{name}_median"] = round(statistics.median(values), 1) if values else None
    out["all_committed"] = all(r["all_committed"] for r in runs)
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200, help="orders offered per second")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each layout")
    parser.add_argument("--block-ms", type=int, default=500)
    parser.add_argument("--accounts", type=int, default=300, help="buyers, and as many sellers")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    runs: dict[str, list[Run]] = {layout: [] for layout in LAYOUTS}
    for _ in range(args.repeat):
        for layout in LAYOUTS:
            with tempfile.TemporaryDirectory(prefix=f"gridtokenx-{layout}-bench-") as folder:
                shape = (args.rate, args.seconds, args.block_ms, args.accounts, Path(folder))
                runs[layout].append(run_once(layout, *shape))
    result: dict[str, object] = {
        "benchmark": "sentries",
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "validators": VALIDATORS,
        "block_ms": args.block_ms,
        "offered_tx_per_s": args.rate,
        "offered_for_s": args.seconds,
        **{layout: summary(runs[layout]) for layout in LAYOUTS},
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }
    benchkit.print_figures(result)
    benchkit.write({**result, "every_run": runs}, args.output)
    return result


if __name__ == "__main__":
    benchkit.run_main(main, sys.argv[1:])
