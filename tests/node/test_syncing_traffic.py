"""A node that is catching up does not take the live transaction flood it cannot use yet.

Its state is behind: it would verify every signature of a 1,000 TPS stream, check the
transactions against a stale state (where those already committed in blocks it lacks still
look new), hold them and relay them to every peer, all while block sync needs the same
cores. So while it is catching up, gossiped transactions are ignored (not verified, not
held, not relayed); once it has caught up they are taken again. Proposals and votes of other
heights were already ignored (`_on_proposal`, `_on_vote`). A full node and a bare peer over
the real transport on 127.0.0.1; every wait bounded, both always stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gridtokenx.ledger import genesis
from gridtokenx.node.runtime import Node
from gridtokenx.p2p.gossip import Gossip, Kind, Outcome
from gridtokenx.storage.store import open_application
from gridtokenx.wire import codec
from gridtokenx.wire.crypto import PrivateKey
from tests.node.test_node import CHAIN, FAST, GENESIS_TIME, KEYS, _registrations
from tests.p2p.rogues import eventually

SPEC = genesis.devnet(CHAIN, GENESIS_TIME, KEYS)


def test_a_catching_up_node_neither_holds_nor_relays_live_transactions(tmp_path: Path) -> None:
    full = Node(PrivateKey.from_dev_label("sync-traffic/full"),
                open_application(SPEC, tmp_path / "full"), FAST,
                clock=lambda: GENESIS_TIME + 10)  # fmt: skip
    got: list[Kind] = []

    async def on_peer(kind: Kind, payload: bytes, sender: bytes) -> Outcome:
        got.append(kind)
        return Outcome.IGNORE

    peer = Gossip(PrivateKey.from_dev_label("sync-traffic/peer"), on_peer)
    raws = _registrations(20)

    async def scenario() -> None:
        try:
            port = await full.gossip.listen()
            await full.start()
            await peer.dial("127.0.0.1", port, expect=full.key.address)
            await eventually(lambda: peer.key.address in full.gossip.peers, 10)
            full._catch_up(500, peer.key.address)  # the peer's vote showed height 500
            assert full.catching_up
            outcome = await full._on_message(Kind.TX, codec.encode(raws), peer.key.address)
            assert outcome is Outcome.IGNORE
            await asyncio.sleep(0.3)  # the ingest loop would have admitted them by now
            assert full.app.mempool.waiting() == [] and Kind.TX not in got
            await peer.close()  # its claim goes with it: the node is no longer behind
            await eventually(lambda: not full.catching_up, 10)
            outcome = await full._on_message(Kind.TX, codec.encode(raws), b"\x02" * 20)
            assert outcome is Outcome.RELAY
            await eventually(lambda: len(full.app.mempool.waiting()) == len(raws), 10)
        finally:
            await peer.close()
            await full.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
