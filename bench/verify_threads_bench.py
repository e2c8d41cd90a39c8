"""What the mempool's verify threads cost a validator's process, in process: the CPU per
signature check of N crossing orders admitted beside a busy event loop, by where they are
checked: on the loop itself a chunk at a time (`Mempool.check`, then the loop's other work),
or in the mempool's pool of 1 or 2 threads with the loop awaiting the futures
(`Mempool.precheck`, as `Node.admit` does).

The verifier holds the GIL while it verifies (ADR 0008), so the threads cannot verify beside
the loop; what they can cost is GIL handoffs, context switches and colder caches. This
measures that cost on its own: the same decodes, verifies and loop work in every mode, so
the difference in process CPU (`time.process_time`, every thread) is the threads' overhead.
Context switches are the process's (getrusage: voluntary and involuntary, every thread).

The loop's work is a stand-in for consensus and the commit (a Python dict loop of about
0.1 ms, then a yield); `--streams` batches are admitted at once, as a validator takes its
API's and its peers' batches.

    python bench/verify_threads_bench.py [--verifies 20000] [--rounds 5] [--work 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import time
from pathlib import Path

import benchkit
from gridtokenx.chain.mempool import Mempool
from gridtokenx.wire import crypto, tx

RESULTS = Path(__file__).parent / "results" / "verify_threads.json"
CHAIN = "gridtokenx-verify-threads"
BATCH = 500  # a REST batch (devnet_bench's API_BATCH)
LOOP_CHUNK = 64  # the pool's smallest chunk, checked on the loop between yields
MODES = {"loop": 0, "1 thread": 1, "2 threads": 2}


def _orders(count: int) -> list[bytes]:
    keys = [crypto.PrivateKey.from_dev_label(f"bench-verify-threads/{i}") for i in range(50)]
    return [
        tx.make(keys[i % 50], CHAIN, i // 50,
                tx.PlaceOrder(tx.Side.SELL, "BKK", 900 * (1 + i % 8), 1_000, 300)).encode()
        for i in range(count)
    ]  # fmt: skip


def _python_work(n: int) -> int:
    kept: dict[int, int] = {}
    for i in range(n):
        kept[i & 255] = kept.get(i & 255, 0) + i
    return len(kept)


async def _loop_work(units: int) -> None:
    for _ in range(units):
        _python_work(2_000)
        await asyncio.sleep(0)


async def _intake(mempool: Mempool, raws: list[bytes], on_loop: bool) -> int:
    """Check `raws` a batch at a time; how many verified (every one, or the run is void)."""
    good = 0
    for i in range(0, len(raws), BATCH):
        batch = raws[i : i + BATCH]
        if on_loop:
            for j in range(0, len(batch), LOOP_CHUNK):
                good += sum(ok is True for _, ok in mempool.check(batch[j : j + LOOP_CHUNK]))
                await asyncio.sleep(0)
        else:
            for future in mempool.precheck(batch):
                good += sum(ok is True for _, ok in await asyncio.wrap_future(future))
    return good


async def _both(
    mempool: Mempool, raws: list[bytes], work: int, streams: int, on_loop: bool
) -> None:
    share = -(-len(raws) // streams)
    busy = asyncio.create_task(_loop_work(work))
    good = sum(
        await asyncio.gather(
            *(_intake(mempool, raws[k * share : (k + 1) * share], on_loop) for k in range(streams))
        )
    )
    await busy
    if good != len(raws):
        raise RuntimeError(f"{good} of {len(raws)} signatures verified")


def _switches() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw + usage.ru_nivcsw


def _one(raws: list[bytes], workers: int, work: int, streams: int) -> dict[str, float]:
    mempool = Mempool(CHAIN, workers=max(1, workers))
    list(mempool._pool.map(abs, range(8)))  # its threads started before the clock
    switches, cpu, loop_cpu = _switches(), time.process_time(), time.thread_time()
    wall = time.perf_counter()
    asyncio.run(_both(mempool, raws, work, streams, on_loop=workers == 0))
    wall = time.perf_counter() - wall
    cpu, loop_cpu = time.process_time() - cpu, time.thread_time() - loop_cpu
    switches = _switches() - switches
    mempool.close()
    n = len(raws)
    return {"cpu_us_per_verify": cpu / n * 1e6, "loop_thread_us_per_verify": loop_cpu / n * 1e6,
            "wall_s": wall, "switches_per_1000": switches / n * 1e3}  # fmt: skip


def run(verifies: int, rounds: int, work: int, streams: int) -> dict[str, object]:
    raws = _orders(verifies)
    signed = [tx.decode(raw) for raw in raws]
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for _ in range(rounds):  # the modes alternate, so a busy neighbour hits each alike
        for mode, workers in MODES.items():
            runs[mode].append(_one(raws, workers, work, streams))
    started = time.process_time()
    asyncio.run(_loop_work(work))
    work_us = (time.process_time() - started) / verifies * 1e6
    figures: dict[str, object] = {
        "benchmark": "verify_threads",
        "verifies": verifies,
        "rounds": rounds,
        "streams": streams,
        "loop_work_us_per_verify": round(work_us, 1),
        "raw_ed25519_verify_per_s": round(benchkit.raw_verify_rate(signed)),
        "node_ed25519_verify_per_s": round(benchkit.node_verify_rate(signed)),
    }
    for mode, results in runs.items():
        for name in results[0]:
            values = [r[name] for r in results]
            figures[f"{mode}: {name} (min, median)"] = [
                round(min(values), 2),
                round(statistics.median(values), 2),
            ]
    figures["load_average"] = [round(v, 2) for v in os.getloadavg()]
    return figures


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verifies", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", type=int, default=1_000, help="the loop's units of 0.1 ms")
    parser.add_argument("--streams", type=int, default=4, help="batches admitted at once")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = run(args.verifies, args.rounds, args.work, args.streams)
    benchkit.print_figures(result)
    benchkit.write(result, args.output)
    return result


if __name__ == "__main__":
    main()
