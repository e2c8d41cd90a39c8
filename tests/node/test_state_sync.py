"""State sync between in-process nodes over the real encrypted transport on 127.0.0.1: a
validator snapshots every few heights; a new node joins from its snapshot while a rogue
peer offers the same certified snapshot and serves chunks that do not prove (it is banned
and its chunks fetched from the validator), then follows the chain by block sync to the
validator's state root. Offers whose certificate the genesis validators did not sign are
not taken. Every wait is bounded and every node is stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from gridtokenx.chain import blocks
from gridtokenx.consensus.core import Timeouts
from gridtokenx.devnet.homes import devnet_genesis
from gridtokenx.ledger import genesis
from gridtokenx.node import state_sync
from gridtokenx.node.runtime import Node
from gridtokenx.p2p.gossip import Gossip, Kind, Outcome
from gridtokenx.storage import snapshots
from gridtokenx.storage.store import open_application
from gridtokenx.wire import codec
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.votes import Vote
from tests.node.test_catching_up import _until

CHAIN = "gridtokenx-state-sync"
T0 = 1_767_225_600
INTERVAL = 5
SPEC = devnet_genesis(CHAIN, T0, ("EGAT",))


def _node(path: Path, key: PrivateKey) -> Node:
    return Node(key, open_application(SPEC, path), Timeouts(300, 200, 200), clock=lambda: T0 + 10)


def _serving(tmp_path: Path) -> tuple[Node, state_sync.Snapshotter]:
    validator = _node(tmp_path / "v", genesis.dev_keys()["EGAT"])
    validator.snapshots = snapshots.Snapshots(tmp_path / "snapshots", chunk_bytes=512)
    taker = state_sync.Snapshotter(validator.snapshots, validator.app.store, INTERVAL)
    validator.add_commit_listener(taker.on_commit)
    return validator, taker


class Rogue:
    """A peer that offers the validator's real (certified) snapshots and answers every
    chunk request with the right chunk, one record altered."""

    def __init__(self, served: snapshots.Snapshots) -> None:
        self.served = served
        self.gossip = Gossip(PrivateKey.from_dev_label("state-sync/rogue"), self._on)
        self.sent = 0

    async def _on(self, kind: Kind, payload: bytes, peer: bytes) -> Outcome:
        if kind is Kind.SNAPSHOTS_REQUEST:
            for offer in self.served.offers():
                self.gossip.send_to(peer, Kind.SNAPSHOT_OFFER, offer)
        elif kind is Kind.CHUNK_REQUEST:
            request = msgspec.msgpack.decode(payload, type=snapshots.ChunkRequest)
            raw = self.served.chunk(request.height, request.index)
            if raw is None:
                return Outcome.IGNORE
            chunk = snapshots.decode_chunk(raw)
            records = [(k, v[:-1] + bytes([v[-1] ^ 1])) for k, v in chunk.records]
            if not records:  # an empty range: claim a record in it
                records = [(b"forged", b"\x92\xa1x\xc4\x00")]
            tampered = msgspec.structs.replace(chunk, records=records)
            self.gossip.send_to(peer, Kind.CHUNK, codec.encode(tampered))
            self.sent += 1
        return Outcome.IGNORE


@pytest.mark.parametrize("checkers", [0, pytest.param(2, marks=pytest.mark.process)])
def test_a_new_node_joins_by_state_sync_past_a_corrupt_peer_and_follows(
    tmp_path: Path, checkers: int
) -> None:
    """Chunks checked on the joiner's loop (0) or in worker processes: the rogue's chunks
    are refused, it is banned once, and the others fetch what it was asked."""

    async def scenario() -> None:
        validator, taker = _serving(tmp_path)
        assert validator.snapshots is not None
        rogue = Rogue(validator.snapshots)
        joined: Node | None = None
        try:
            port = await validator.gossip.listen()
            rogue_port = await rogue.gossip.listen()
            await validator.start()
            assert await _until(lambda: len(taker.taken) >= 2, 60), taker.taken
            assert all(h % INTERVAL == 0 for h in taker.taken)
            validator.block_interval = 0.3  # the tip moves slowly from here on
            taker.interval = 0  # and the snapshots stay (2 kept, 5 heights apart)
            key = PrivateKey.from_dev_label("state-sync/new")
            peers = [("127.0.0.1", port, validator.key.address.hex()),
                     ("127.0.0.1", rogue_port, rogue.gossip.key.address.hex())]  # fmt: skip
            done = await state_sync.join(tmp_path / "new", SPEC, key, peers, timeout_s=20)
            assert done is not None and done.height in taker.taken, (done, taker.taken)
            assert done.chunks > 4 and rogue.sent >= 1, (done, rogue.sent)
            assert done.banned == [rogue.gossip.key.address], done
            assert not (tmp_path / "new.statesync").exists()

            joined = _node(tmp_path / "new", key)
            assert (
                joined.app.height == done.height and joined.app.store.pruned_below() == done.height
            )
            await joined.gossip.listen()
            await joined.start()
            await joined.gossip.dial("127.0.0.1", port, expect=validator.key.address)
            target = validator.app.height + 3
            assert await _until(lambda: joined.app.height >= target, 30), joined.app.height
            height, root = joined.app.height, joined.app.state.root()
            assert root == joined.app.state.recompute_root()
            # Pipelined heights: the state after `height` is vouched for by the next header.
            assert await _until(lambda: validator.app.store.block(height + 1) is not None, 30)
            stored = validator.app.store.block(height + 1)
            assert stored is not None
            assert blocks.decode(stored[0]).header.state_root == root
        finally:
            if joined is not None:
                await joined.stop()
            await rogue.gossip.close()
            await taker.stop()
            await validator.stop()

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_offers_the_trusted_validators_did_not_certify_are_not_taken(tmp_path: Path) -> None:
    async def scenario() -> None:
        validator, taker = _serving(tmp_path)
        try:
            await validator.start()
            assert await _until(lambda: validator.snapshots and validator.snapshots.offers(), 60)
        finally:
            await taker.stop()
            await validator.stop()

    asyncio.run(asyncio.wait_for(scenario(), 90))
    served = snapshots.Snapshots(tmp_path / "snapshots")
    raw = served.offers()[0]
    joiner = state_sync.Joiner(SPEC, PrivateKey.from_dev_label("state-sync/judge"))
    assert joiner.certified(raw) is not None
    offer = snapshots.decode_offer(raw)
    votes = msgspec.msgpack.decode(offer.certificate, type=tuple[Vote, ...])
    outsider = PrivateKey.from_dev_label("state-sync/outsider")
    forged = tuple(msgspec.structs.replace(v, validator=outsider.address) for v in votes)
    for bad in (
        msgspec.structs.replace(offer, certificate=codec.encode(())),  # no signatures
        msgspec.structs.replace(offer, certificate=codec.encode(forged)),  # not a validator
        msgspec.structs.replace(offer, height=offer.height + 1),  # another height
        msgspec.structs.replace(offer, ranges=offer.ranges[1:]),  # chunks that leave a gap
        msgspec.structs.replace(offer, depth=offer.depth + 1),  # ranges short of that depth
        msgspec.structs.replace(offer, next_certificate=codec.encode(())),  # root uncertified
        msgspec.structs.replace(offer, next_certificate=offer.certificate),  # block h's votes
        msgspec.structs.replace(offer, next_block=offer.block),  # not the next height
    ):
        assert joiner.certified(codec.encode(bad)) is None, bad
    other = devnet_genesis("another-chain", T0, ("EGAT",))
    assert state_sync.Joiner(other, outsider).certified(raw) is None


def test_snapshots_come_at_multiples_of_the_interval_and_not_while_catching_up(
    tmp_path: Path,
) -> None:
    app = open_application(SPEC, tmp_path / "data")
    behind = [True]
    served = snapshots.Snapshots(tmp_path / "snapshots")
    taker = state_sync.Snapshotter(served, app.store, INTERVAL, lambda: behind[0])

    async def commit_up_to(top: int) -> None:
        for height in range(app.height + 1, top + 1):
            app.commit(height, app.build_block(height, T0 + height, b"\0" * 20), ())
            taker.on_commit(height)
            await taker.stop()

    try:
        asyncio.run(commit_up_to(INTERVAL))  # passed while catching up: skipped
        behind[0] = False
        asyncio.run(commit_up_to(2 * INTERVAL + 2))
    finally:
        app.close()
    assert taker.taken == served.heights() == [2 * INTERVAL]
