"""Grid-update propagation on a devnet of separate validator processes on 127.0.0.1.

EGAT's transmission status (tag 15) must reach every node quickly: a capacity cut or a
frequency excursion changes what the market may do. This submits one signed status at a
time to a validator (round-robin) through its API, and times until every validator has
committed it, polling each node's transaction lookup every 50 ms. The figure per update is the
slowest node's; the next update goes once all have it. Reported next to the raw Ed25519
verification rate measured in the same run; writes bench/results/grid.json.

    python bench/grid_bench.py [--updates 30] [--validators 4] [--block-ms 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import benchkit
from devnet_bench import validators_running
from gridtokenx.client import ApiError, AsyncClient
from gridtokenx.devnet.homes import devnet_validators, init_devnet
from gridtokenx.devnet.processes import free_base_port
from gridtokenx.ledger import genesis
from gridtokenx.node.home import read_config
from gridtokenx.wire import tx
from gridtokenx.wire.crypto import PrivateKey
from workload import grid_status

RESULTS = Path(__file__).parent / "results" / "grid.json"
CHAIN = "gridtokenx-bench-grid"
WAIT_S = 30.0  # for any one update to reach every node
POLL_S = 0.05  # per node: 20 lookups/s, well inside the API's per-client rate limit


class Watcher:
    """Polls one node (every POLL_S) for the awaited updates; notes when each committed there.

    Polling the node's transaction lookup, rather than following its block stream, keeps
    working on a loaded machine where a slow WebSocket client would be dropped by the node
    (it never waits for clients); the figures carry up to POLL_S of sampling error."""

    def __init__(self, base_url: str) -> None:
        self.client = AsyncClient(base_url)
        self.awaited: set[str] = set()
        self.committed_at: dict[str, float] = {}
        self.ready = asyncio.Event()
        self.refused: dict[str, int] = {}

    async def run(self) -> None:
        await self.client.health()  # the node answers: ready
        self.ready.set()
        while True:
            for tx_hash in sorted(self.awaited):
                try:
                    receipt = await self.client.tx(tx_hash)
                except ApiError as exc:  # e.g. RATE_LIMITED: the next poll asks again
                    self.refused[exc.code] = self.refused.get(exc.code, 0) + 1
                    continue
                if receipt.status == "committed":
                    self.committed_at[tx_hash] = time.perf_counter()
                    self.awaited.discard(tx_hash)
            await asyncio.sleep(POLL_S)


def status(key: PrivateKey, nonce: int, measured_at: int, n: int) -> bytes:
    """A realistic update (`workload.grid_status`) on this benchmark's chain."""
    return grid_status(key, CHAIN, nonce, measured_at, n)


async def _drive(api_urls: list[str], updates: int) -> dict[str, object]:
    egat = genesis.dev_keys()["EGAT"]
    watchers = [Watcher(url) for url in api_urls]
    tasks = [asyncio.create_task(w.run()) for w in watchers]
    latencies: list[float] = []
    first_node: list[float] = []
    try:
        async with asyncio.timeout(WAIT_S):
            await asyncio.gather(*(w.ready.wait() for w in watchers))
        nonce = (await watchers[0].client.balance(egat)).nonce
        last_measured = 0
        for n in range(updates):
            measured_at = max(int(time.time()), last_measured + 1)
            last_measured = measured_at
            raw = status(egat, nonce + n, measured_at, n)
            tx_hash = tx.hash_of(raw).hex()
            for w in watchers:
                w.awaited.add(tx_hash)
            submitted = time.perf_counter()
            await watchers[n % len(watchers)].client.submit(raw)
            deadline = submitted + WAIT_S
            while not all(tx_hash in w.committed_at for w in watchers):
                if time.perf_counter() > deadline:
                    refused = [w.refused for w in watchers]
                    raise RuntimeError(
                        f"update {n} did not reach every node in {WAIT_S} s "
                        f"(lookups refused: {refused})"
                    )
                await asyncio.sleep(0.005)
            times = [w.committed_at[tx_hash] - submitted for w in watchers]
            latencies.append(max(times))
            first_node.append(min(times))
    finally:
        for task in tasks:
            task.cancel()
        for w in watchers:
            with contextlib.suppress(Exception):
                await w.client.close()
    latencies.sort()
    return {
        "updates": updates,
        "all_nodes_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "all_nodes_p99_ms": benchkit.quantile_ms(latencies, 0.99),
        "all_nodes_max_ms": round(latencies[-1] * 1000, 1),
        "first_node_p50_ms": round(statistics.median(first_node) * 1000, 1),
        "within_1s": sum(1 for t in latencies if t <= 1.0),
    }


def run(updates: int, validators: int, block_ms: int, folder: Path) -> dict[str, object]:
    now = int(time.time())
    base = free_base_port(validators)
    codes = devnet_validators(validators)
    homes = init_devnet(folder, CHAIN, now - 60, base, block_ms=block_ms, validators=codes)
    urls = [f"http://127.0.0.1:{read_config(h).api_port}" for h in homes]
    with validators_running(homes):
        return asyncio.run(_drive(urls, updates))


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--block-ms", type=int, default=200)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gridtokenx-grid-bench-") as folder:
        figures = run(args.updates, args.validators, args.block_ms, Path(folder))
    sample = [tx.decode(status(genesis.dev_keys()["EGAT"], n, n + 1, n)) for n in range(2_000)]
    result: dict[str, object] = {
        "benchmark": "grid_propagation",
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "validators": args.validators,
        "processes": args.validators,
        "block_ms": args.block_ms,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "raw_ed25519_verify_per_s": round(benchkit.raw_verify_rate(sample)),
        **figures,
    }
    benchkit.print_figures(result)
    benchkit.write(result, args.output)
    return result


if __name__ == "__main__":
    benchkit.run_main(main, sys.argv[1:])
