"""What a node relays of the transactions a peer sent: on to its other peers, never back to
the peer they came from (which holds them: a copy sent back is bytes sealed, written, read,
opened, decoded and hashed for nothing). One validator of five runs alone, so nothing
commits while the test looks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from gridtokenx.p2p.gossip import Gossip, Kind
from gridtokenx.wire import codec, tx
from gridtokenx.wire.crypto import PrivateKey
from tests.node.test_node import _network, _registrations


class _Listener:
    """A client peer that keeps the transactions it is sent."""

    def __init__(self, label: str) -> None:
        self.received: list[bytes] = []
        self.gossip = Gossip(PrivateKey.from_dev_label(f"node-test/{label}"), self._on_message)

    async def _on_message(self, kind: Kind, payload: bytes, peer: bytes) -> bool:
        if kind is Kind.TX:
            self.received += msgspec.msgpack.decode(payload, type=list[bytes])
        return True


def test_relayed_transactions_go_to_the_other_peers_and_not_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        (node,) = await _network(tmp_path, codes=("EGAT",))
        await node.start()
        sender, other = _Listener("relay-sender"), _Listener("relay-other")
        try:
            port = node.gossip._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            for listener in (sender, other):
                await listener.gossip.dial("127.0.0.1", port)
            for _ in range(200):  # bounded: both peers in the node's transactions mesh
                if node.gossip.mesh_sizes()["transactions"] == 2:
                    break
                await asyncio.sleep(0.05)
            txs = _registrations(6)
            # One repeated: the node relays a batch of its own making, not the frame as it
            # came (the mesh drops an unchanged one as seen; see the report of issue 16).
            sender.gossip.publish(Kind.TX, codec.encode([*txs, txs[0]]))
            for _ in range(200):  # bounded: 10 s
                if len(other.received) >= len(txs):
                    break
                await asyncio.sleep(0.05)
            assert sorted(other.received) == sorted(txs)  # relayed on, all of them
            assert all(node.app.mempool.holds(tx.hash_of(r)) for r in txs)
            await asyncio.sleep(0.3)  # a copy going back would have arrived by now
            assert sender.received == []

            # A client's own transaction (the API's path) still goes to every peer.
            (mine,) = _registrations(7)[6:]
            await node.submit(mine)
            for _ in range(200):
                if mine in sender.received and mine in other.received:
                    break
                await asyncio.sleep(0.05)
            assert sender.received == [mine] and other.received[-1] == mine
        finally:
            for listener in (sender, other):
                await listener.gossip.close()
            await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
