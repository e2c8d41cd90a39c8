"""How long `gridtokenx --help` (and a few commands' help) takes, in fresh processes.

Help is the first thing a new user runs, and every command pays the same start-up: the
command tree's imports. Each run is a new interpreter, as a user's is; the median of the
runs is printed with the CPU time (user + system) the process used, which a busy shared
machine inflates less than wall time, and the load average. `--src` points at another
tree's `src` (e.g. an older commit's, from `git archive`) to compare in the same run,
the two interleaved so both see the same load.

    python bench/cli_help_bench.py [--runs 5] [--src OTHER/src]

Written to bench/results/cli_help.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchkit

HERE = Path(__file__).resolve().parent
COMMANDS = (["--help"], ["query", "--help"], ["tx", "order", "place", "--help"])


def _run(src: Path, args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one `python -m gridtokenx ARGS` process."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gridtokenx", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--src", type=Path, help="another tree's src to compare against")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "cli_help.json")
    args = parser.parse_args()
    trees = {"this": HERE.parent / "src"}
    if args.src is not None:
        trees["other"] = args.src.resolve()
    result: dict[str, object] = {"runs": args.runs, "load_average": os.getloadavg()}
    for command in COMMANDS:
        timings: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
        for _ in range(args.runs):
            for name, src in trees.items():
                timings[name].append(_run(src, command))
        for name, runs in timings.items():
            label = f"{name}: gridtokenx {' '.join(command)}"
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            result[label] = f"median {wall:.3f} s wall, {cpu:.3f} s CPU"
    result["load_average_after"] = os.getloadavg()
    benchkit.print_figures(result)
    benchkit.write(result, args.output)


if __name__ == "__main__":
    main()
