"""Catching up after a time offline, on the market-day mix at `--tps` transactions a second:
block replay as a multiple of real time, and the state-sync route a node far behind takes.

A real chain is built first (one validator, EGAT, whose precommit certifies each block):
the day mix's setup (`simulator.loadgen.rolling_load`: participants, meters, licences,
funds), then `--blocks` blocks of `--tps` of its transactions, one chain second apart,
so a block is a second of a 1,000 TPS chain. A copy of the store is kept as it was after
the setup: the node that then went offline for `--blocks` seconds of chain. A snapshot is
taken `--tail` blocks before the tip.

- **replay**: the offline node comes back and block-syncs every block it missed from two
  peers over the encrypted transport on 127.0.0.1 (`node.block_sync`); the figure is chain
  seconds replayed per wall second ("x real time").
- **state sync** (`--no-state-sync` skips it; the code before it had none): the offline
  node comes back with state sync on (`node.state_sync.catch_up`): it takes the snapshot
  (verified against the certified root) instead of replaying, then block-syncs the tail.

The tip does not move while the node catches up (the peers serve the recorded chain); the
docs (docs/consensus.md, "Catching up") turn the two figures into a day offline, where the
tip moves on at one second a second meanwhile. Each figure with the load average: the
machine is shared.

    python bench/catchup_bench.py [--blocks 120] [--tps 1000] [--tail 10] [--work DIR]

`--work DIR` keeps the chain built there and reuses it when it is there already, so that
two versions of the code replay the very same blocks (`--no-state-sync` for code older
than `catch_up`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).parent))

from benchkit import print_figures, write
from gridtokenx.consensus.core import Timeouts
from gridtokenx.ledger import genesis
from gridtokenx.node.runtime import Node
from gridtokenx.simulator import loadgen
from gridtokenx.storage import snapshots
from gridtokenx.storage.store import open_application
from gridtokenx.wire import crypto
from statesync_bench import EGAT, SPEC, T0, _certificate

RESULTS: Final = Path(__file__).parent / "results" / "catchup.json"
NOW: Final = T0 + 60  # the chain's clock when the setup is committed
STALL_S = 120.0
"""A catch-up whose node applied nothing for this long has stopped: the bench says so."""


def build(work: Path, count: int, tps: int, tail: int, participants: int) -> dict[str, Any]:
    """The chain at work/chain, the store after the setup at work/offline, and a snapshot
    of height top - tail in work/snapshots; what was built."""
    started = time.perf_counter()
    load = loadgen.rolling_load(SPEC, genesis.dev_keys(), NOW, count * tps, float(tps),
                                participants, key_prefix="catchup")  # fmt: skip
    signed_s = time.perf_counter() - started
    served = snapshots.Snapshots(work / "snapshots")
    app = open_application(SPEC, work / "chain")
    txs = 0

    def commit_ready(when: int) -> None:
        nonlocal txs
        while app.mempool.has_ready(app.nonce_of):
            height = app.height + 1
            raw = app.build_block(height, when, EGAT.address)
            txs += len(app.commit(height, raw, _certificate(height, raw)))

    try:
        for phase in load.setup:  # in slices: the mempool holds a sender 1,000 nonces ahead
            for first in range(0, len(phase), 500):
                for raw in phase[first : first + 500]:
                    app.submit(raw)
                commit_ready(NOW)
        offline = app.height
    finally:
        app.close()
    shutil.copytree(work / "chain", work / "offline")  # closed: a whole copy
    app = open_application(SPEC, work / "chain")
    setup_txs, txs = txs, 0
    try:
        for second in range(count):
            for raw in load.orders[second * tps : (second + 1) * tps]:
                app.submit(raw)
            commit_ready(NOW + 1 + second)
            if second == count - 1 - tail:
                assert served.take(app.store) == app.height
        top, top_time = app.height, app.last_time
        assert served.complete(app.store), "the snapshot was not offered"
    finally:
        app.close()
    return {"offline_height": offline, "top": top, "setup_txs": setup_txs,
            "txs_offline": txs, "chain_seconds_offline": top_time - NOW,
            "snapshot_height": served.heights()[-1], "sign_s": round(signed_s, 1),
            "build_s": round(time.perf_counter() - started, 1)}  # fmt: skip


async def _catch_up(work: Path, top: int, state_sync: int | None) -> tuple[float, float]:
    """Seconds the offline node takes to reach `top` from two peers serving the chain (and
    its snapshot); with `state_sync` (heights behind), it first catches up by state sync.
    Returns (total, of which state sync)."""
    servers = []
    for i in range(2):
        shutil.copytree(work / "chain", work / f"server-{i}")
        shutil.copytree(work / "snapshots", work / f"snapshots-{i}")
        key = crypto.PrivateKey.from_dev_label(f"bench/catchup-server-{i}")
        server = Node(key, open_application(SPEC, work / f"server-{i}"), Timeouts(*[60_000] * 3))
        server.snapshots = snapshots.Snapshots(work / f"snapshots-{i}")
        servers.append(server)
    shutil.copytree(work / "offline", work / "node")
    key = crypto.PrivateKey.from_dev_label("bench/catchup-node")
    node = None
    try:
        ports = [await s.gossip.listen() for s in servers]
        peers = [("127.0.0.1", p, s.key.address.hex()) for s, p in zip(servers, ports, strict=True)]
        started = time.perf_counter()
        synced_s = 0.0
        if state_sync is not None:
            from gridtokenx.node.state_sync import catch_up  # not in the code before

            done = await catch_up(work / "node", SPEC, key, peers, state_sync, timeout_s=60)
            assert done is not None, "no snapshot taken"
            synced_s = time.perf_counter() - started
        node = await start_node(work / "node", key, servers, ports)
        for server in servers:  # a peer that committed `top` proposes and votes on top + 1
            node._catch_up(top + 1, server.key.address)
        await until_at(node, top)
        return time.perf_counter() - started, synced_s
    finally:
        await stop_all(node, servers, work)


async def start_node(data: Path, key: crypto.PrivateKey, servers: list[Node],
                     ports: list[int]) -> Node:  # fmt: skip
    """The caught-up node on its store, started and connected to the serving nodes."""
    node = Node(key, open_application(SPEC, data), Timeouts(*[60_000] * 3))
    await node.start()
    for server, port in zip(servers, ports, strict=True):
        await node.gossip.dial("127.0.0.1", port, expect=server.key.address)
    return node


async def stop_all(node: Node | None, servers: list[Node], work: Path) -> None:
    """Stop the node and the serving nodes, and remove their copies of the chain."""
    if node is not None:
        await node.stop()
    for server in servers:
        await server.stop()
    for name in ("node", "server-0", "server-1", "snapshots-0", "snapshots-1"):
        shutil.rmtree(work / name, ignore_errors=True)


async def until_at(node: Node, top: int) -> None:
    """Wait until `node` holds height `top`; raise when its height has not moved for
    STALL_S (a catch-up that stopped, reported instead of waited on for hours)."""
    height, moved = node.app.height, time.perf_counter()
    while node.app.height < top:
        await asyncio.sleep(0.05)
        if node.app.height != height:
            height, moved = node.app.height, time.perf_counter()
        elif time.perf_counter() - moved > STALL_S:
            raise RuntimeError(f"the node stopped at height {height} of {top}: "
                               f"nothing applied for {STALL_S:.0f} s")  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=120, help="seconds of chain offline")
    parser.add_argument("--tps", type=int, default=1000)
    parser.add_argument("--tail", type=int, default=10, help="blocks after the snapshot")
    parser.add_argument("--participants", type=int, default=600)
    parser.add_argument("--no-state-sync", action="store_true")
    parser.add_argument("--work", type=Path, help="build the chain here, or reuse it")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"cpus": os.cpu_count(),
                              "load_average_1m_at_start": round(os.getloadavg()[0], 2)}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="catchup-bench-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if (work / "built.json").exists():
            built = json.loads((work / "built.json").read_text()) | {"reused": True}
        else:
            built = build(work, args.blocks, args.tps, args.tail, args.participants)
            (work / "built.json").write_text(json.dumps(built))
        result |= built | {"load_average_1m_after_build": round(os.getloadavg()[0], 2)}
        seconds = built["chain_seconds_offline"]
        replay_s, _ = asyncio.run(_catch_up(work, built["top"], None))
        result |= {"replay_s": round(replay_s, 2),
                   "replay_x_real_time": round(seconds / replay_s, 2),
                   "replay_txs_per_s": round(built["txs_offline"] / replay_s),
                   "load_average_1m_after_replay": round(os.getloadavg()[0], 2)}  # fmt: skip
        if not args.no_state_sync:
            behind = built["snapshot_height"] - built["offline_height"] - 1
            total_s, synced_s = asyncio.run(_catch_up(work, built["top"], behind))
            result |= {"state_sync_route_s": round(total_s, 2),
                       "of_which_state_sync_s": round(synced_s, 2),
                       "state_sync_route_x_real_time": round(seconds / total_s, 2),
                       "load_average_1m_at_end": round(os.getloadavg()[0], 2)}  # fmt: skip
    print_figures(result)
    write(result, args.output)
    return result


if __name__ == "__main__":
    main()
