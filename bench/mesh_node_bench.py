"""Bytes each node sends with the node's real gossip, flooding against the mesh.

The network simulator (bench/network_bench.py) measures the mesh at 10,000 nodes; this
measures the node itself: real `Node`s with their real `Gossip` over encrypted TCP on
127.0.0.1, in one process, 4 validators and a number of full nodes (each full node dials
every validator, as `init --peer` sets up, and the next three full nodes around a ring,
so a validator has more peers than a mesh holds). The same run twice:

- `mesh`: the node as it is (`p2p.mesh` defaults: d = 8 within [6, 12], grid 4, consensus
  5, lazy IHAVE/IWANT to the rest, IDONTWANT for large messages);
- `flood`: the same code with every mesh as large as the peer count and no IDONTWANT,
  which is flooding: every message to every peer that takes its topic.

Load: client transactions submitted to full nodes at `--tps`, one grid-status update, the
validators' proposals, votes and certified blocks. After a warm-up (heartbeats settle the
meshes), for `--seconds`: frame bytes sent and received per node per second, by role
(mean and max), and by lane; heights reached; mesh sizes at the end. Printed, and written
to bench/results/mesh_node.json with the load average before and after (a shared machine:
the figure that matters is the ratio between the two runs, measured minutes apart).

    PYTHONPATH=src python bench/mesh_node_bench.py [--full 14] [--seconds 20] [--tps 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import benchkit
from gridtokenx.consensus.core import Timeouts
from gridtokenx.devnet.in_process import wire
from gridtokenx.ledger import genesis
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.node.runtime import Node
from gridtokenx.p2p.mesh import Mesh, Params
from gridtokenx.storage.store import open_application
from gridtokenx.wire import tx
from gridtokenx.wire.crypto import PrivateKey

RESULTS = Path(__file__).parent / "results" / "mesh_node.json"
CHAIN = "gridtokenx-mesh-bench"
GENESIS_TIME = 1_767_225_600
NOW = GENESIS_TIME + 10
VALIDATORS = ("EGAT", "MEA", "PEA", "ERC")
TIMEOUTS = Timeouts(propose_ms=1500, prevote_ms=500, precommit_ms=500, increment_ms=250)
WARMUP_S = 4.0
FLOOD = Params(
    d=1000, d_lo=1000, d_hi=1000, d_score=4, d_out=2, topic_degrees=(), idontwant_min_bytes=1 << 30
)
"""Every peer in every mesh, nothing left to announce lazily, no IDONTWANT: a flood."""


def _load(count: int) -> tuple[list[bytes], bytes]:
    """`count` household registrations by MEA (consecutive nonces) and EGAT's status."""
    sb = Sandbox(chain_id=CHAIN, genesis_time=GENESIS_TIME)
    mea, egat = sb.authority("MEA"), sb.authority("EGAT")
    homes = (PrivateKey.from_dev_label(f"mesh-bench/home/{i}").address for i in range(count))
    bodies = [tx.RegisterParticipant(a, "BKK", tx.ParticipantKind.HOUSEHOLD, "h") for a in homes]
    nonce = sb.next_nonce(mea)
    raws = [tx.make(mea, CHAIN, nonce + i, body).encode() for i, body in enumerate(bodies)]
    status = tx.TransmissionStatus(NOW, 50_020, (tx.LinkStatus("BKK", "CEN", 600_000, 0),))
    return raws, sb.sign(egat, status).encode()


async def _network(
    root: Path, full: int, router: str, neighbours: int
) -> tuple[list[Node], list[Node]]:
    keys = genesis.dev_keys()
    spec = genesis.devnet(CHAIN, GENESIS_TIME, keys)

    def node(key: PrivateKey, name: str) -> Node:
        n = Node(key, open_application(spec, root / name), TIMEOUTS, clock=lambda: NOW,
                 block_interval=1.0, min_block_gap=0.25)  # fmt: skip
        if router == "flood":
            n.gossip.mesh = Mesh(n.gossip.mesh.topics, random.Random(), FLOOD)
        return n

    validators = [node(keys[code], code) for code in VALIDATORS]
    fulls = [node(PrivateKey.from_dev_label(f"mesh-bench/full/{i}"), f"full{i}")
             for i in range(full)]  # fmt: skip
    await wire(validators, fulls, neighbours)
    await asyncio.sleep(0.5)
    return validators, fulls


def _totals(node: Node) -> tuple[int, int]:
    stats = node.gossip.stats
    return sum(stats.sent.values()), sum(stats.received.values())


async def _run(full: int, seconds: float, tps: int, router: str, neighbours: int) -> dict[str, Any]:
    raws, status = _load(int(tps * (seconds + WARMUP_S)))
    with tempfile.TemporaryDirectory(prefix="mesh-bench-") as tmp:
        validators, fulls = await _network(Path(tmp), full, router, neighbours)
        nodes = validators + fulls
        try:
            for n in nodes:
                await n.start()
            loop = asyncio.get_running_loop()
            began = loop.time()
            await fulls[0].submit(status)
            sent = 0
            before: dict[bytes, tuple[int, int]] = {}
            lanes_before: dict[str, int] = {}
            measured_from = began + WARMUP_S
            while (now := loop.time()) < measured_from + seconds:  # bounded by the clock
                due = min(len(raws), int((now - began) * tps))
                if due > sent:
                    await fulls[sent % len(fulls)].admit(raws[sent:due], client=True)
                    sent = due
                if not before and now >= measured_from:
                    before = {n.key.address: _totals(n) for n in nodes}
                    lanes_before = _lanes(nodes)
                    start_height = min(n.app.height for n in nodes)
                await asyncio.sleep(0.05)
            window = loop.time() - measured_from
            after = {n.key.address: _totals(n) for n in nodes}
            lanes = {k: v - lanes_before.get(k, 0) for k, v in _lanes(nodes).items()}
            heights = [n.app.height for n in nodes]
            status_everywhere = all(n.app.receipt(tx.hash_of(status)) for n in nodes)
            meshes = {
                "validator": validators[0].gossip.mesh_sizes(),
                "full_node": fulls[0].gossip.mesh_sizes(),
            }
            peers = {"validator": len(validators[0].gossip.peers),
                     "full_node": len(fulls[0].gossip.peers)}  # fmt: skip
        finally:
            for n in nodes:
                await n.stop()

    def per_second(group: list[Node], which: int) -> dict[str, float]:
        rates = [
            (after[n.key.address][which] - before[n.key.address][which]) / window for n in group
        ]
        return {"mean": round(statistics.mean(rates)), "max": round(max(rates))}

    def by_role(which: int) -> dict[str, dict[str, float]]:
        return {"validator": per_second(validators, which), "full_node": per_second(fulls, which)}

    return {
        "router": router,
        "window_s": round(window, 1),
        "sent_bytes_per_s": by_role(0),
        "received_bytes_per_s": by_role(1),
        "sent_bytes_per_s_by_lane_all_nodes": {k: round(v / window) for k, v in lanes.items()},
        "blocks_in_window": min(heights) - start_height,
        "heights": [min(heights), max(heights)],
        "grid_status_committed_everywhere": status_everywhere,
        "peers": peers,
        "mesh_sizes": meshes,
    }


def _lanes(nodes: list[Node]) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in nodes:
        for lane, size in n.gossip.stats.sent.items():
            out[lane] = out.get(lane, 0) + size
    return out


def _mean_sent(runs: list[dict[str, Any]], router: str, role: str) -> float:
    return float(
        statistics.mean(r["sent_bytes_per_s"][role]["mean"] for r in runs if r["router"] == router)
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", type=int, default=14, help="full nodes besides 4 validators")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured, after warm-up")
    parser.add_argument("--tps", type=int, default=40, help="client transactions per second")
    parser.add_argument(
        "--neighbours", type=int, default=3, help="ring neighbours a full node dials"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each router, alternated")
    parser.add_argument("--routers", nargs="+", default=["mesh", "flood"])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load_before = [round(x, 2) for x in os.getloadavg()]
    runs = []
    for router in [r for _ in range(args.repeat) for r in args.routers]:
        started = time.perf_counter()
        run = asyncio.run(_run(args.full, args.seconds, args.tps, router, args.neighbours))
        run["wall_s"] = round(time.perf_counter() - started, 1)
        run["load_average_1m_after"] = round(os.getloadavg()[0], 2)
        print(f"{router}:")
        benchkit.print_figures(run)
        runs.append(run)
    result: dict[str, Any] = {
        "benchmark": "mesh_node",
        "nodes": {
            "validators": len(VALIDATORS),
            "full_nodes": args.full,
            "ring_neighbours": args.neighbours,
        },
        "tps": args.tps,
        "runs": runs,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    if {"mesh", "flood"} <= set(args.routers):
        result["mesh_over_flood_sent"] = {
            role: round(
                _mean_sent(runs, "mesh", role) / max(1.0, _mean_sent(runs, "flood", role)), 3
            )
            for role in ("validator", "full_node")
        }
        result["blocks_per_s"] = {
            router: round(statistics.mean(r["blocks_in_window"] / r["window_s"] for r in runs
                                          if r["router"] == router), 2)
            for router in ("mesh", "flood")
        }  # fmt: skip
        print("mesh / flood, bytes sent per node:", result["mesh_over_flood_sent"])
        print("blocks per second:", result["blocks_per_s"])
    benchkit.write(result, args.output)
    return result


if __name__ == "__main__":
    main()
