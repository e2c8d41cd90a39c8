"""Bytes per height on the wire: compact blocks and one certificate per height.

Two parts. **Sizes**: a block of 1,000 market orders (`workload.MarketLoad`) as a whole
proposal and certified block (what PROPOSAL and COMMIT carried before) and in compact form
(what they carry now), with a five-validator certificate. **Live**: five validators and a
full node in one process on 127.0.0.1 (every node connected to every other, as flooding
gossip runs today) commit the market setup and a stream of orders; every frame a node
queues for a peer is counted by kind, and the totals are divided by the heights committed.
The live part runs against whatever `gridtokenx` is on the path, so the same script
measures the code before the change (`PYTHONPATH=<old checkout>/src`) and after.

    PYTHONPATH=src python bench/compact_bench.py [--orders 3000] [--output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path

import msgspec

import benchkit
from gridtokenx.chain import blocks
from gridtokenx.consensus.core import Timeouts
from gridtokenx.ledger import genesis
from gridtokenx.node.runtime import Node
from gridtokenx.p2p import connection
from gridtokenx.storage.store import open_application
from gridtokenx.wire import codec, crypto
from gridtokenx.wire.votes import Commit, Proposal, Vote, VoteType, block_id, sign_vote
from workload import MarketLoad

CHAIN = "gridtokenx-compact-bench"
GENESIS_TIME = 1_767_225_600
KEYS = genesis.dev_keys()
TIMEOUTS = Timeouts(propose_ms=3000, prevote_ms=1000, precommit_ms=1000, increment_ms=500)
_frame = msgspec.msgpack.Decoder(tuple[int, bytes])
KIND_NAMES = {1: "tx", 2: "proposal", 3: "vote", 4: "commit", 5: "sync_request",
              6: "sync_block", 16: "txs_request", 17: "txs"}  # fmt: skip


def sizes(load: MarketLoad, orders: list[bytes]) -> dict[str, object]:
    """Whole and compact encodings of one block of 1,000 orders."""
    header = blocks.Header(CHAIN, 2, GENESIS_TIME, bytes(32), bytes(20), bytes(32), bytes(32),
                           bytes(32), bytes(32))  # fmt: skip
    block = blocks.Block(header, tuple(orders[:1000])).encode()
    bid = block_id(block)
    certificate = tuple(
        sign_vote(key, CHAIN, Vote(2, 0, VoteType.PRECOMMIT, bid, key.address))
        for key in sorted(KEYS.values(), key=lambda k: k.address)
    )
    proposal = Proposal(2, 0, block, -1, bytes(20), bytes(64))
    out: dict[str, object] = {
        "block_txs": 1000,
        "block_bytes": len(block),
        "proposal_whole_bytes": len(codec.encode(proposal)),
        "commit_whole_bytes": len(codec.encode(Commit(2, block, certificate))),
        "certificate_bytes": len(codec.encode(certificate)),
    }
    try:
        from gridtokenx.chain import compact
    except ImportError:  # the code before compact blocks
        return out
    out["proposal_compact_bytes"] = len(codec.encode(compact.compact_proposal(proposal)))
    commit = compact.compact_commit(Commit(2, block, certificate))
    out["commit_compact_bytes"] = len(codec.encode(commit))
    return out


class Wire:
    """Every frame queued on any connection, by kind: frames and bytes, while it is open
    (`close` puts the connections' own `send` back)."""

    def __init__(self) -> None:
        self.frames: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self._send = send = connection.Peer.send
        wire = self

        def counting(peer: connection.Peer, lane: object, frame: bytes, *rest: object) -> bool:
            kind, _ = _frame.decode(frame)
            name = KIND_NAMES.get(kind, "other")
            wire.frames[name] += 1
            wire.bytes[name] += len(frame)
            return send(peer, lane, frame, *rest)  # type: ignore[arg-type]

        connection.Peer.send = counting  # type: ignore[method-assign,assignment]

    def close(self) -> None:
        connection.Peer.send = self._send  # type: ignore[method-assign]


async def live(orders_count: int, home: Path, accounts: int = 100) -> dict[str, object]:
    spec = genesis.devnet(CHAIN, GENESIS_TIME, KEYS)
    load = MarketLoad(spec, GENESIS_TIME + 10, accounts_per_side=accounts)
    phases = load.setup()
    orders = list(load.orders(orders_count))
    keys = [*KEYS.values(), crypto.PrivateKey.from_dev_label("compact-bench/full-node")]
    clock = lambda: GENESIS_TIME + 10  # noqa: E731
    nodes = [
        Node(key, open_application(spec, home / str(i)), TIMEOUTS, clock=clock, min_block_gap=0.3,
             build_budget=5.0)
        for i, key in enumerate(keys)
    ]  # fmt: skip
    wire = Wire()
    ports = [await n.gossip.listen() for n in nodes]
    for i, node in enumerate(nodes):
        for j in range(i + 1, len(nodes)):
            await node.gossip.dial("127.0.0.1", ports[j], expect=keys[j].address)
    try:
        for node in nodes:
            await node.start()
        for phase in phases:
            await nodes[0].admit(phase)
            await _until(nodes, lambda: all(len(n.app.mempool) == 0 for n in nodes), 120)
        start_height = nodes[-1].app.height
        wire.frames.clear()
        wire.bytes.clear()
        started = time.perf_counter()
        for i in range(0, len(orders), 1000):
            await nodes[i // 1000 % 5].admit(orders[i : i + 1000])
            await asyncio.sleep(0.5)
        await _until(nodes, lambda: all(len(n.app.mempool) == 0 for n in nodes), 180)
        took = time.perf_counter() - started
        heights = nodes[-1].app.height - start_height
        roots = {n.app.state.root() for n in nodes}
    finally:
        wire.close()
        for node in nodes:
            await node.stop()
    per_height = {f"{k}_bytes_per_height": round(v / heights) for k, v in wire.bytes.items()}
    frames = {f"{k}_frames_per_height": round(v / heights, 1) for k, v in wire.frames.items()}
    return {
        "nodes": "5 validators + 1 full node, all connected",
        "orders": orders_count,
        "heights": heights,
        "txs_per_height": round(orders_count / heights, 1),
        "seconds": round(took, 2),
        "same_state_everywhere": len(roots) == 1,
        "bytes_per_height_all_kinds": round(sum(wire.bytes.values()) / heights),
        **dict(sorted(per_height.items())),
        **dict(sorted(frames.items())),
    }


async def _until(nodes: list[Node], done: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not done():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"not done in {seconds} s: heights {[n.app.height for n in nodes]}")
        if any(n.failed or n.halted for n in nodes):
            raise RuntimeError(f"a node failed: {[(n.failed, n.halted) for n in nodes]}")
        await asyncio.sleep(0.1)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--accounts", type=int, default=100, help="buyers and sellers each")
    parser.add_argument("--output", type=Path, default=Path("bench/results/compact.json"))
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    spec = genesis.devnet(CHAIN, GENESIS_TIME, KEYS)
    load = MarketLoad(spec, GENESIS_TIME + 10, accounts_per_side=100)
    load.setup()
    result: dict[str, object] = {"sizes": sizes(load, list(load.orders(1000)))}
    with tempfile.TemporaryDirectory() as home:
        result["live"] = asyncio.run(live(args.orders, Path(home), args.accounts))
    result["load_average"] = [load_before[0], os.getloadavg()[0]]
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    for part in ("sizes", "live"):
        print(part)
        benchkit.print_figures(result[part])  # type: ignore[arg-type]
    print("load average (start, end):", result["load_average"])
    benchkit.write(result, args.output)
    return result


if __name__ == "__main__":
    main()
