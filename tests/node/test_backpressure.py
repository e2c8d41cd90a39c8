"""Back-pressure on what peers relay: a node past the relays' backlog (twice the clients')
drops a peer's transactions (without penalising the peer, and without verifying their
signatures) and still admits grid operations. One validator of five runs alone, so
nothing commits and the backlog stays full while the test looks."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from pathlib import Path

import pytest

from gridtokenx.node.runtime import Node
from gridtokenx.p2p.gossip import START_SCORE, Gossip, Kind
from gridtokenx.wire import codec, crypto, tx
from gridtokenx.wire.crypto import PrivateKey
from tests.node.test_node import CHAIN, KEYS, _network, _registrations


async def _until_settled(node: Node, sent: int) -> None:
    """Wait (bounded: 10 s) until the node has looked at `sent` relayed transactions."""
    for _ in range(200):
        mempool = node.app.mempool
        if (
            not node._inbox
            and not node._queued
            and len(mempool) + sum(mempool.refused.values()) >= sent
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the relayed transactions were not all looked at")


async def _started_with_a_peer(node: Node) -> Gossip:
    """Start `node` and connect a peer to it that relays what the test publishes."""
    await node.start()

    async def ignore(kind: Kind, payload: bytes, peer: bytes) -> bool:
        return True

    peer = Gossip(PrivateKey.from_dev_label("node-test/relay"), ignore)
    try:
        port = node.gossip._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        await peer.dial("127.0.0.1", port)
    except BaseException:
        await peer.close()
        await node.stop()
        raise
    return peer


def test_a_full_node_drops_relayed_load_unverified_but_admits_grid_operations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[bytes] = []
    real_verify = crypto.verify

    def counted(public_key: bytes, message: bytes, signature: bytes) -> bool:
        verified.append(public_key)  # from the pool's threads: list.append is atomic
        return real_verify(public_key, message, signature)

    monkeypatch.setattr(crypto, "verify", counted)

    async def scenario() -> None:
        (node,) = await _network(tmp_path, codes=("EGAT",))
        node.app.mempool.min_backlog = 5
        peer = await _started_with_a_peer(node)
        try:
            txs = _registrations(30)
            # Past the clients' bound (5) and up to the relays' (10), then past it.
            peer.publish(Kind.TX, codec.encode(txs[:12]))
            await _until_settled(node, 12)
            mempool = node.app.mempool
            assert len(mempool) == 10 and mempool.refused["MEMPOOL_FULL"] == 2
            assert mempool.backlog_full and mempool.relay_backlog_limit == 10
            verified.clear()

            # Full now: a peer's batch is dropped without one verify, forgeries included.
            forged = [tx.SignedTransaction(tx.decode(r).tx, bytes(64)).encode() for r in txs[20:]]
            peer.publish(Kind.TX, codec.encode([*txs[12:20], *forged]))
            await _until_settled(node, 30)
            assert mempool.refused["MEMPOOL_FULL"] == 2 + 18 and len(mempool) == 10
            assert verified == []
            assert not any(mempool.knows(tx.hash_of(r)) for r in txs[10:])
            me = peer.key.address
            assert node.gossip.scores.get(me, START_SCORE) == START_SCORE
            assert me in node.gossip.peers  # dropped silently: the peer is not penalised

            # A grid emergency still gets in, verified.
            mea = KEYS["MEA"]  # the registrations' signer: its nonces 0-9 wait
            alarm = tx.make(mea, CHAIN, 10, tx.DeclareEmergency(("BKK",), "49.2 Hz"), 0)
            peer.publish(Kind.TX, codec.encode([alarm.encode()]))
            await _until_settled(node, 31)
            assert mempool.status(alarm.hash) == "pending" and len(mempool) == 11
            assert verified == [mea.public_key]
        finally:
            await peer.close()
            await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_grid_update_is_admitted_ahead_of_a_queue_of_orders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer's grid batch does not wait behind the transactions queued for admission:
    with the admission of a batch of orders held (its signature checks never finish), an
    EGAT emergency sent after it is pending at once, verified on the loop."""

    async def scenario() -> None:
        (node,) = await _network(tmp_path, codes=("EGAT",))
        held: list[Future[list[object]]] = []

        def stuck(raws: list[bytes], verify: int | None = None) -> list[Future[list[object]]]:
            held.append(Future())
            return held[-1:]

        monkeypatch.setattr(node.app.mempool, "precheck", stuck)
        peer = await _started_with_a_peer(node)
        try:
            orders = _registrations(8)
            peer.publish(Kind.TX, codec.encode(orders))
            for _ in range(100):  # bounded: 5 s
                if held:
                    break
                await asyncio.sleep(0.05)
            assert held, "the orders' admission never started"
            egat = KEYS["EGAT"]
            alarm = tx.make(egat, CHAIN, 0, tx.DeclareEmergency(("BKK",), "49.2 Hz"), 0)
            peer.publish(Kind.GRID, codec.encode([alarm.encode()]))
            mempool = node.app.mempool
            for _ in range(100):  # bounded: 5 s
                if mempool.status(alarm.hash) == "pending":
                    break
                await asyncio.sleep(0.05)
            assert mempool.status(alarm.hash) == "pending"
            assert len(mempool) == 1 and len(held) == 1  # the orders still wait
            assert all(tx.hash_of(r) in node._queued for r in orders)
        finally:
            await peer.close()
            await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
