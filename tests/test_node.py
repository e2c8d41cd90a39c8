"""Four validators as asyncio nodes on 127.0.0.1 in one process: consensus over the
encrypted gossip network, blocks built from gossiped transactions, committed to RocksDB,
identical state on every node. (Separate processes and kill -9 come with `node start`.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

from gridtokenx import genesis, tx
from gridtokenx.application import Application
from gridtokenx.consensus.core import Timeouts
from gridtokenx.crypto import PrivateKey
from gridtokenx.node import Node
from gridtokenx.sandbox import Sandbox

CHAIN = "gridtokenx-node-test"
GENESIS_TIME = 1_767_225_600
KEYS = genesis.dev_keys()
RUNNING = ("EGAT", "MEA", "PEA", "ERC")  # NEPO (6,000 of 39,000) stays offline
FAST = Timeouts(propose_ms=400, prevote_ms=200, precommit_ms=200, increment_ms=100)


def _registrations(count: int) -> list[bytes]:
    sb = Sandbox(chain_id=CHAIN, genesis_time=GENESIS_TIME)
    mea = sb.authority("MEA")
    out = []
    for i in range(count):
        who = PrivateKey.from_dev_label(f"node-test/home/{i}")
        body = tx.RegisterParticipant(who.address, "BKK", tx.ParticipantKind.HOUSEHOLD, f"h{i}")
        out.append(sb.sign(mea, body).encode())
        sb.submit(mea, body)
    return out


async def _network(tmp_path: Path) -> list[Node]:
    spec = genesis.devnet(CHAIN, GENESIS_TIME, KEYS)
    nodes = [
        Node(
            KEYS[code],
            Application.open(spec, tmp_path / code),
            FAST,
            clock=lambda: GENESIS_TIME + 10,
        )
        for code in RUNNING
    ]
    ports = [await n.gossip.listen() for n in nodes]
    for i, node in enumerate(nodes):
        for j in range(i + 1, len(nodes)):
            await node.gossip.dial("127.0.0.1", ports[j], expect=KEYS[RUNNING[j]].address)
    for _ in range(100):  # bounded wait for the full mesh
        if all(len(n.gossip.peers) == len(nodes) - 1 for n in nodes):
            break
        await asyncio.sleep(0.02)
    return nodes


def test_four_validators_commit_blocks_over_the_network(tmp_path: Path) -> None:
    async def scenario() -> None:
        nodes = await _network(tmp_path)
        try:
            for node in nodes:
                await node.start()
            txs = _registrations(12)
            for raw in txs:
                await nodes[1].submit(raw)  # into MEA's node, gossiped to the others
            for _ in range(600):  # bounded: 30 s
                if all(n.app.height >= 4 for n in nodes):
                    break
                await asyncio.sleep(0.05)
            heights = [n.app.height for n in nodes]
            assert min(heights) >= 4, heights
            assert all(n.halted is None for n in nodes)
            common = min(heights)
            blocks_at = [n.app.store.block(common) for n in nodes]
            assert all(b == blocks_at[0] for b in blocks_at)
            roots = {n.app.state.root() for n in nodes if n.app.height == common}
            assert len(roots) == 1
            registered = nodes[0].app.state.scan(b"part/")
            assert len(list(registered)) == 12  # every gossiped transaction was committed
        finally:
            for node in nodes:
                await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
