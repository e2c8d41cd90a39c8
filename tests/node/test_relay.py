"""What a node passes on of the transactions a peer sent. A batch its mempool admitted
whole goes on as it came, with the id the other nodes saw, so a node that has it drops
further copies as seen before decoding one; it is not sent back to the peer it came from.
A batch admitted in part is relayed as a batch of the node's making. One validator of five
runs alone, so nothing commits while the test looks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from gridtokenx.p2p.gossip import Gossip, Kind
from gridtokenx.wire import codec, tx
from gridtokenx.wire.crypto import PrivateKey
from tests.node.test_node import _network, _registrations


class _Listener:
    """A client peer that keeps the transaction batches it is sent, as they came."""

    def __init__(self, label: str) -> None:
        self.batches: list[bytes] = []
        self.gossip = Gossip(PrivateKey.from_dev_label(f"node-test/{label}"), self._on_message)

    @property
    def received(self) -> list[bytes]:
        return [r for b in self.batches for r in msgspec.msgpack.decode(b, type=list[bytes])]

    async def _on_message(self, kind: Kind, payload: bytes, peer: bytes) -> bool:
        if kind is Kind.TX:
            self.batches.append(payload)
        return True


async def _until(done: object, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):  # bounded
        if callable(done) and done():
            return
        await asyncio.sleep(0.05)


def test_a_batch_admitted_whole_goes_on_as_it_came_and_not_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        (node,) = await _network(tmp_path, codes=("EGAT",))
        await node.start()
        sender, other = _Listener("relay-sender"), _Listener("relay-other")
        try:
            port = node.gossip._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            for listener in (sender, other):
                await listener.gossip.dial("127.0.0.1", port)
            await _until(lambda: node.gossip.mesh_sizes()["transactions"] == 2)
            txs = _registrations(8)
            whole = codec.encode(txs[:6])
            sender.gossip.publish(Kind.TX, whole)
            await _until(lambda: len(other.batches) >= 1)
            # As it came: before, a batch admitted whole made the same bytes, whose id the
            # mesh had seen, and it went nowhere.
            assert other.batches == [whole]
            assert all(node.app.mempool.holds(tx.hash_of(r)) for r in txs[:6])

            # In part (one held already): what was admitted, in a batch of the node's own.
            sender.gossip.publish(Kind.TX, codec.encode([txs[0], txs[6]]))
            await _until(lambda: len(other.batches) >= 2)
            assert other.batches[1:] == [codec.encode([txs[6]])]
            await asyncio.sleep(0.3)  # a copy of the whole batch going back would be here
            assert whole not in sender.batches
        finally:
            for listener in (sender, other):
                await listener.gossip.close()
            await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
