"""The fixed cost of a height: the CPU a validator spends per height when blocks are empty.

Four `gridtokenx node start` processes on 127.0.0.1 (as `devnet_bench.py` runs them) are
left to commit empty blocks, one every `--block-ms`, for `--seconds`; nothing is offered.
What each validator process used in that window (user and system CPU, its threads
included), divided by the heights committed meanwhile, is what a height costs whatever
its block holds: the proposal and the votes (signing, verifying, the write-ahead log's
synced writes), the commit's synced batch, the mempool's update, the commit listeners
(surveillance, the API's streams, snapshots), telemetry, metrics and housekeeping.

At 1,000 crossing orders a second the devnet commits about 20 heights a second of 40-50
orders each (docs/consensus.md, "What bounds a block"), so a per-height cost of c ms is
c / 50 ms per order there: the default `--block-ms 50` paces empty heights as fast.

Beside it, in the same run: the raw Ed25519 rate and the load average, since CPU per
height is inflated on a machine whose caches and cores are shared.

    python bench/height_bench.py [--block-ms 50] [--seconds 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import benchkit
from devnet_bench import CHAIN, _cpu_seconds, the_machine, validators_running
from gridtokenx.devnet.homes import devnet_validators, init_devnet
from gridtokenx.devnet.processes import free_base_port
from gridtokenx.node.home import read_status

RESULTS = Path(__file__).parent / "results" / "height.json"
WARMUP_S = 3.0  # after the validators connect: the first heights' start-up work settles


def _height(home: Path) -> int:
    status = read_status(home) or {}
    height = status.get("height", 0)
    return height if isinstance(height, int) else 0


def run(block_ms: int, seconds: float, validators: int, folder: Path) -> dict[str, object]:
    """One devnet left idle for `seconds` after a warm-up; CPU per height per validator."""
    now = int(time.time())
    homes = init_devnet(folder, CHAIN, now - 60, free_base_port(validators),
                        block_ms=block_ms, validators=devnet_validators(validators))  # fmt: skip
    with validators_running(homes) as procs:
        pids = [p.pid for p in procs]
        time.sleep(WARMUP_S)
        heights_before = [_height(h) for h in homes]
        cpu_before = [_cpu_seconds(pid) for pid in pids]
        started = time.perf_counter()
        time.sleep(seconds)
        cpu = [_cpu_seconds(pid) - c for pid, c in zip(pids, cpu_before, strict=True)]
        window = time.perf_counter() - started
        heights = [_height(h) - b for h, b in zip(homes, heights_before, strict=True)]
    committed = statistics.median(heights)
    per_height = [c / max(1, n) for c, n in zip(cpu, heights, strict=True)]
    return {
        "heights": heights,
        "heights_per_s": round(committed / window, 2),
        "validator_cpu_cores": [round(c / window, 3) for c in cpu],
        "validator_cpu_ms_per_height": [round(p * 1000, 2) for p in per_height],
        "validator_cpu_ms_per_height_mean": round(statistics.mean(per_height) * 1000, 2),
    }


def _once(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="gridtokenx-height-bench-") as folder:
        figures = run(args.block_ms, args.seconds, args.validators, Path(folder))
    return {
        "benchmark": "height",
        "validators": args.validators,
        "block_ms": args.block_ms,
        "seconds": args.seconds,
        **the_machine(),
        **figures,
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block-ms", type=int, default=50, help="empty heights this often")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    runs = [_once(args) for _ in range(max(1, args.repeats))]
    result = benchkit.summarize(runs)
    benchkit.print_figures(result)
    with contextlib.suppress(OSError):
        benchkit.write(result, args.output)
    return result


if __name__ == "__main__":
    main()
