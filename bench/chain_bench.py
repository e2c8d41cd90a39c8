"""End to end: four validators on 127.0.0.1 fed signed transactions at a controlled rate.

The validators are asyncio nodes in this one process, talking over the real encrypted
transport and gossip, committing into RocksDB in a temporary folder. Sharing one
interpreter, they share its one core (the GIL), so these figures are a floor for four
separate processes. Transactions are registrations signed by MEA and PEA, submitted
round-robin to the four nodes. The benchmark reports committed transactions per second and
the p50/p99 latency from submission to finality (the commit at the first node), next to the
raw Ed25519 verification rate measured in the same run, and writes
bench/results/chain.json.

    python bench/chain_bench.py [--rate 300] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import benchkit
from gridtokenx.chain.application import Rejected
from gridtokenx.consensus.core import Timeouts
from gridtokenx.devnet.homes import DEVNET_VALIDATORS, devnet_genesis
from gridtokenx.ledger import genesis
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.node.runtime import Node
from gridtokenx.storage.store import open_application
from gridtokenx.wire import tx
from gridtokenx.wire.crypto import PrivateKey

RESULTS = Path(__file__).parent / "results" / "chain.json"
CHAIN = "gridtokenx-bench"
GENESIS_TIME = 1_767_225_600
FAST = Timeouts(propose_ms=500, prevote_ms=250, precommit_ms=250, increment_ms=250)


def transactions(count: int) -> list[bytes]:
    sb = Sandbox(spec=devnet_genesis(CHAIN, GENESIS_TIME))
    signers = [sb.authority("MEA"), sb.authority("PEA")]
    zones = ["BKK", "CEN"]
    out = []
    for i in range(count):
        who = PrivateKey.from_dev_label(f"bench/chain/{i}")
        signer, zone = signers[i % 2], zones[i % 2]
        body = tx.RegisterParticipant(who.address, zone, tx.ParticipantKind.HOUSEHOLD, f"h{i}")
        out.append(sb.sign(signer, body).encode())
        sb.submit(signer, body)
    return out


async def run(rate: int, seconds: float, folder: Path) -> dict[str, object]:
    spec = devnet_genesis(CHAIN, GENESIS_TIME)
    keys = genesis.dev_keys()
    nodes = [
        Node(keys[code], open_application(spec, folder / code), FAST, block_interval=0.25)
        for code in DEVNET_VALIDATORS
    ]
    ports = [await n.gossip.listen() for n in nodes]
    for i, node in enumerate(nodes):
        for j in range(i + 1, len(nodes)):
            await node.gossip.dial("127.0.0.1", ports[j], expect=keys[DEVNET_VALIDATORS[j]].address)
    for node in nodes:
        await node.start()
    raws = transactions(int(rate * seconds))
    submitted: dict[bytes, float] = {}
    committed_at: dict[int, float] = {}
    loop = asyncio.get_running_loop()

    seen = nodes[0].app.height

    def sweep() -> None:
        """Time every height committed since the last sweep."""
        nonlocal seen
        height = nodes[0].app.height
        for h in range(seen + 1, height + 1):
            committed_at[h] = loop.time()
        seen = height

    async def watch() -> None:
        while True:
            sweep()
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    started = loop.time()
    refused = 0
    for index, raw in enumerate(raws):  # a steady rate: each tx at its own moment
        due = started + index / rate
        if (delay := due - loop.time()) > 0:
            await asyncio.sleep(delay)
        try:
            tx_hash = await nodes[index % 4].submit(raw)
        except Rejected:  # the mempool pushes back (a sender too far ahead of its commits)
            refused += 1
            continue
        submitted[tx_hash] = loop.time()
    deadline = loop.time() + 60
    store = nodes[0].app.store
    while loop.time() < deadline and any(store.tx_location(h) is None for h in submitted):
        await asyncio.sleep(0.05)
    watcher.cancel()
    # The wait above can see the last block before the watcher's next tick does: time it
    # now, or its transactions would count as never committed.
    sweep()
    latencies = []
    last = started
    for tx_hash, at in submitted.items():
        location = store.tx_location(tx_hash)
        if location is not None and location[0] in committed_at:
            latencies.append(committed_at[location[0]] - at)
            last = max(last, committed_at[location[0]])
    heights = nodes[0].app.height
    for node in nodes:
        await node.stop()
    latencies.sort()
    done = len(latencies)
    return {
        "offered_tx_per_s": rate,
        "submitted": len(submitted),
        "refused_by_mempool": refused,
        "committed": done,
        "committed_tx_per_s": round(done / (last - started), 1) if done else 0,
        "finality_p50_ms": round(statistics.median(latencies) * 1000, 1) if done else None,
        "finality_p99_ms": benchkit.quantile_ms(latencies, 0.99),
        "heights": heights,
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=300, help="transactions offered per second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gridtokenx-bench-") as folder:
        figures = asyncio.run(run(args.rate, args.seconds, Path(folder)))
    result: dict[str, object] = {
        "benchmark": "chain",
        "python": platform.python_version(),
        "validators": 4,
        "processes": 1,
        "raw_ed25519_verify_per_s": round(
            benchkit.raw_verify_rate(tx.decode(r) for r in transactions(2_000))
        ),
        **figures,
    }
    benchkit.print_figures(result)
    benchkit.write(result, args.output)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
