"""Certified blocks through a full node (one process, 127.0.0.1): the node checks the
certificate and forwards the block before it executes it, and it forwards one certificate
per height, the first valid one, however many variants reach it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from gridtokenx.chain.compact import CompactCommit, compact_commit
from gridtokenx.node.runtime import Node
from gridtokenx.p2p.gossip import Kind
from gridtokenx.p2p.mesh import Frame, Publish
from gridtokenx.storage.store import open_application
from gridtokenx.wire import codec
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.votes import Commit, Vote, VoteType, block_id, sign_vote
from tests.node.test_node import CHAIN, GENESIS_TIME, KEYS, _registrations
from tests.node.test_node_faults import SPEC, _Listener
from tests.p2p.rogues import eventually

_frame = msgspec.msgpack.Decoder(tuple[int, bytes])


def _certified(tmp_path: Path) -> tuple[bytes, list[bytes], dict[str, Vote]]:
    """Height 1's block (six registrations) and every validator's precommit for it."""
    proposer = open_application(SPEC, tmp_path / "proposer")
    raws = _registrations(6)
    for raw in raws:
        proposer.submit(raw)
    address = proposer.validators(1).proposer(1, 0)
    block = proposer.build_block(1, GENESIS_TIME + 10, address)
    proposer.close()
    precommits = {
        code: sign_vote(key, CHAIN, Vote(1, 0, VoteType.PRECOMMIT, block_id(block), key.address))
        for code, key in KEYS.items()
    }
    return block, raws, precommits


def _follower(tmp_path: Path, raws: list[bytes]) -> tuple[Node, list[tuple[str, int]]]:
    """A full node (its key is no validator's) that holds the block's transactions, with a
    log of what it forwards (certified blocks) and executes, in order."""
    app = open_application(SPEC, tmp_path / "follower")
    node = Node(PrivateKey.from_dev_label("certified/follower"), app, clock=lambda: GENESIS_TIME)
    assert node.core.validators.get(node.key.address) is None
    node.recent.add(raws)
    log: list[tuple[str, int]] = []
    send_all, commit = node.gossip._send_all, node.app.commit

    def forwarding(sends: list[tuple[bytes, Frame]]) -> None:
        """What the mesh sends on, one line per message (not per peer)."""
        for frame in {f.id: f for _, f in sends if isinstance(f, Publish)}.values():
            kind, payload = _frame.decode(frame.data)
            if kind == Kind.COMMIT:
                height = msgspec.msgpack.decode(payload, type=CompactCommit).height
                log.append(("forwarded", height))
        send_all(sends)

    def executing(height: int, *args: object, **kwargs: object) -> object:
        log.append(("executing", height))
        receipts = commit(height, *args, **kwargs)  # type: ignore[arg-type]
        log.append(("executed", height))
        return receipts

    node.gossip._send_all = forwarding  # type: ignore[method-assign]
    node.app.commit = executing  # type: ignore[method-assign]
    return node, log


def test_a_full_node_forwards_a_certified_block_before_it_executes_it(tmp_path: Path) -> None:
    block, raws, precommits = _certified(tmp_path)
    node, log = _follower(tmp_path, raws)
    certificate = tuple(sorted(precommits.values(), key=lambda v: v.validator))
    payload = codec.encode(compact_commit(Commit(1, block, certificate)))

    async def scenario() -> None:
        source, sink = _Listener("source"), _Listener("sink")
        try:
            port = await node.gossip.listen()
            for peer in (source, sink):
                await peer.gossip.dial("127.0.0.1", port, expect=node.key.address)
            await eventually(lambda: len(node.gossip.peers) == 2)
            source.gossip.publish(Kind.COMMIT, payload)
            await eventually(lambda: node.app.height == 1)
            assert log == [("forwarded", 1), ("executing", 1), ("executed", 1)]
            await eventually(lambda: sink.of(Kind.COMMIT) == [payload])
            stored = node.app.store.block(1)
            assert stored is not None and stored[0] == block
        finally:
            for peer in (source, sink):
                await peer.gossip.close()
            await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_one_certificate_per_height_goes_on_however_many_variants_arrive(
    tmp_path: Path,
) -> None:
    """Three valid certificates of height 1 (all five precommits, all but PEA's, all but
    ERC's) reach the full node from three peers at once. It forwards the first, once, and
    stores it in canonical order; the others are not spread."""
    block, raws, precommits = _certified(tmp_path)
    node, log = _follower(tmp_path, raws)

    def variant(without: str) -> bytes:
        votes = [v for code, v in precommits.items() if code != without]
        return codec.encode(compact_commit(Commit(1, block, tuple(reversed(votes)))))

    variants = [variant(""), variant("PEA"), variant("ERC")]
    assert len(set(variants)) == 3

    async def scenario() -> None:
        sources = [_Listener(f"source/{i}") for i in range(3)]
        sink = _Listener("sink")
        try:
            port = await node.gossip.listen()
            for peer in (*sources, sink):
                await peer.gossip.dial("127.0.0.1", port, expect=node.key.address)
            await eventually(lambda: len(node.gossip.peers) == 4)
            for source, payload in zip(sources, variants, strict=True):
                source.gossip.publish(Kind.COMMIT, payload)
            await eventually(lambda: node.app.height == 1)
            await asyncio.sleep(0.3)  # a second certificate would have gone out by now
            assert [entry for entry in log if entry[0] == "forwarded"] == [("forwarded", 1)]
            (first,) = sink.of(Kind.COMMIT)
            assert first in variants
            stored = node.app.store.block(1)
            assert stored is not None
            kept = msgspec.msgpack.decode(stored[1], type=tuple[Vote, ...])
            sent = msgspec.msgpack.decode(first, type=CompactCommit).certificate
            assert kept == tuple(sorted(sent, key=lambda v: v.validator))  # canonical order
        finally:
            for peer in (*sources, sink):
                await peer.gossip.close()
            await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))
