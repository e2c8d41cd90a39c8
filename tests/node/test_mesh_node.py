"""The node on the gossip mesh, in one process on 127.0.0.1: grid updates travel as a batch
kind of their own (and a grid batch carrying trading costs its sender), and a network of
4 validators and 14 full nodes (more peers than a mesh holds) keeps every node's meshes
within their bounds, commits the same blocks everywhere and brings a grid-status
transaction to every node."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gridtokenx.devnet.in_process import ring_peers, wire
from gridtokenx.ledger import genesis
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.node.runtime import Node
from gridtokenx.p2p.gossip import START_SCORE, Kind
from gridtokenx.p2p.mesh import Topic
from gridtokenx.storage.store import open_application
from gridtokenx.wire import codec, tx
from gridtokenx.wire.crypto import PrivateKey
from tests.node.test_node import CHAIN, FAST, GENESIS_TIME, KEYS, RUNNING, _registrations
from tests.node.test_node_faults import _Listener, _node
from tests.p2p.rogues import eventually

NOW = GENESIS_TIME + 10  # every node's clock (blocks all carry this time)
FULL_NODES = 14


def _grid_status() -> bytes:
    """EGAT's transmission status report, the grid update every node must get first."""
    sb = Sandbox(chain_id=CHAIN, genesis_time=GENESIS_TIME)
    body = tx.TransmissionStatus(NOW, 50_020, (tx.LinkStatus("BKK", "CEN", 600_000, 0),))
    return sb.sign(sb.authority("EGAT"), body).encode()


def test_grid_updates_travel_as_their_own_kind_and_a_grid_batch_must_hold_only_them(
    tmp_path: Path,
) -> None:
    node = _node(tmp_path, PrivateKey.from_dev_label("mesh-node/lonely"), "lonely")

    async def scenario() -> None:
        peer, rogue = _Listener("mesh-peer"), _Listener("mesh-rogue")
        try:
            port = await node.gossip.listen()
            await peer.gossip.dial("127.0.0.1", port)
            await eventually(lambda: len(node.gossip.peers) == 1)
            status, (registration,) = _grid_status(), _registrations(1)
            admitted = await node.admit([registration, status], client=True)
            assert all(a.accepted for a in admitted)
            # the report apart, on the grid topic; the registration as a transaction batch
            await eventually(lambda: peer.of(Kind.GRID) == [codec.encode([status])])
            await eventually(lambda: peer.of(Kind.TX) == [codec.encode([registration])])
            # Trading dressed as a grid update is refused and costs its sender score.
            await rogue.gossip.dial("127.0.0.1", port)
            await eventually(lambda: rogue.gossip.key.address in node.gossip.peers)
            rogue.gossip.publish(Kind.GRID, codec.encode(_registrations(3)[1:]))
            who = rogue.gossip.key.address
            await eventually(lambda: node.gossip.scores.get(who, START_SCORE) < START_SCORE)
            assert not node.app.mempool.knows(tx.hash_of(_registrations(3)[2]))
        finally:
            await peer.gossip.close()
            await rogue.gossip.close()
            await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


async def _mesh_network(tmp_path: Path) -> tuple[list[Node], list[Node]]:
    """4 validators, fully connected; 14 full nodes, each dialling every validator (as
    `init --peer` sets up) and the next three full nodes around a ring. A validator then
    has 17 peers, more than a mesh's high watermark (12)."""
    spec = genesis.devnet(CHAIN, GENESIS_TIME, KEYS)

    def node(key: PrivateKey, name: str) -> Node:
        return Node(key, open_application(spec, tmp_path / name), FAST, clock=lambda: NOW)

    validators = [node(KEYS[code], code) for code in RUNNING]
    fulls = [
        node(PrivateKey.from_dev_label(f"mesh-node/full/{i}"), f"full{i}")
        for i in range(FULL_NODES)
    ]
    await wire(validators, fulls)
    v_peers, f_peers = ring_peers(len(validators), FULL_NODES)
    await eventually(lambda: all(len(v.gossip.peers) == v_peers for v in validators), 10)
    await eventually(lambda: all(len(f.gossip.peers) == f_peers for f in fulls), 10)
    return validators, fulls


@pytest.mark.process
def test_a_network_wider_than_a_mesh_stays_within_bounds_and_agrees(tmp_path: Path) -> None:
    async def scenario() -> None:
        validators, fulls = await _mesh_network(tmp_path)
        nodes = validators + fulls
        try:
            for n in nodes:
                await n.start()
            # A grid update from a full node at the ring's far side, and some trading.
            status = _grid_status()
            await fulls[7].submit(status)
            for raw in _registrations(6):
                await fulls[3].submit(raw)
            hashes = [tx.hash_of(status), *(tx.hash_of(r) for r in _registrations(6))]
            await eventually(lambda: all(n.app.receipt(h) for n in nodes for h in hashes), 40)
            await eventually(lambda: min(n.app.height for n in nodes) >= 4, 20)
            # Every node committed the same blocks.
            common = min(n.app.height for n in nodes)
            for height in range(1, common + 1):
                assert len({n.app.store.block(height) for n in nodes}) == 1, height
            assert all(n.halted is None for n in nodes)
            # Meshes within their bounds after the heartbeats; a validator's are well
            # short of its 17 peers, so it no longer sends everything to everyone.
            for n in nodes:
                mesh = n.gossip.mesh
                for topic, members in mesh.mesh.items():
                    assert 1 <= len(members) <= mesh.degree[topic].d_hi, (topic, len(members))
            for v in validators:
                assert v.gossip.mesh.members(Topic.CONSENSUS) <= {w.key.address for w in validators}
                assert len(v.gossip.mesh.members(Topic.BLOCKS)) < len(v.gossip.peers)
            assert all(Topic.CONSENSUS not in f.gossip.mesh.mesh for f in fulls)  # not theirs
        finally:
            for n in nodes:
                await n.stop()

    asyncio.run(asyncio.wait_for(scenario(), 90))
