"""The mesh in the node's gossip, on 127.0.0.1: control frames on the wire are checked as
strictly as any message, a hub with more peers than a mesh holds forwards to its mesh
only and the rest fetch the message through IHAVE and IWANT at the next heartbeat, and a
node that does not take a topic neither receives nor forwards its messages."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gridtokenx.p2p import mesh_frames, transport
from gridtokenx.p2p.connection import PeerSettings
from gridtokenx.p2p.gossip import START_SCORE, Gossip, Kind, _Envelope
from gridtokenx.p2p.mesh import (
    ID_BYTES,
    Graft,
    IDontWant,
    IHave,
    IWant,
    Prune,
    Subscribe,
    Topic,
)
from gridtokenx.p2p.ratelimit import Budget, Limits
from gridtokenx.wire import codec
from gridtokenx.wire.crypto import PrivateKey
from tests.p2p.test_gossip import _eventually, run

KEYS = [PrivateKey.from_dev_label(f"test/mesh-gossip/{i}") for i in range(16)]
ID = bytes(range(ID_BYTES))


@pytest.mark.parametrize(
    "frame",
    [
        Subscribe(frozenset({Topic.GRID, Topic.BLOCKS})),
        Graft(Topic.CONSENSUS),
        Prune(Topic.TRANSACTIONS, 60.0),
        IHave(Topic.BLOCKS, (ID, bytes(ID_BYTES))),
        IWant((ID,)),
        IDontWant((ID,)),
    ],
)
def test_control_frames_travel_unchanged(frame: object) -> None:
    assert mesh_frames.decode(mesh_frames.encode(frame)) == frame  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "payload",
    [
        b"\x92\x01\x09",  # GRAFT of topic 9, which does not exist
        codec.encode([4, [b"short"]]),  # an id that is not 32 bytes
        codec.encode([4, [ID] * (mesh_frames.MAX_IDS + 1)]),  # too many ids
        codec.encode([2, 0, -5]),  # a negative backoff
        codec.encode([9, 0]),  # no such frame
        b"\xc1",  # not msgpack
    ],
)
def test_a_malformed_control_frame_is_refused(payload: bytes) -> None:
    with pytest.raises(ValueError):
        mesh_frames.decode(payload)


def test_a_peer_sending_malformed_control_frames_loses_score() -> None:
    async def scenario() -> None:
        node = Gossip(KEYS[0], _handler([], 0))
        try:
            port = await node.listen()
            rogue = await transport.connect("127.0.0.1", port, KEYS[1])
            await _eventually(lambda: KEYS[1].address in node.peers)
            await rogue.send(codec.encode(_Envelope(Kind.MESH, b"\x92\x01\x09")))
            await rogue.flush()
            await _eventually(lambda: node.scores[KEYS[1].address] < START_SCORE)
            rogue.abort()
        finally:
            await node.close()

    run(scenario)


def _handler(inbox: list[tuple[int, Kind, bytes]], index: int) -> Callable[
    [Kind, bytes, bytes], Awaitable[bool]
]:  # fmt: skip
    async def handle(kind: Kind, payload: bytes, peer: bytes) -> bool:
        inbox.append((index, kind, payload))
        return True

    return handle


def test_a_hub_forwards_to_its_mesh_and_the_others_fetch_through_ihave() -> None:
    """Fourteen leaves around one hub: the consensus mesh holds at most d_hi (8) of them,
    so a vote from one leaf reaches the mesh at once and the other leaves only once the
    hub's heartbeat has announced it (IHAVE) and they asked for it (IWANT)."""

    async def scenario() -> None:
        now = [0.0]
        inbox: list[tuple[int, Kind, bytes]] = []
        hub = Gossip(KEYS[0], _handler(inbox, 0), clock=lambda: now[0])
        leaves = [Gossip(KEYS[i], _handler(inbox, i), clock=lambda: now[0]) for i in range(1, 15)]
        try:
            port = await hub.listen()
            for leaf in leaves:
                await leaf.dial("127.0.0.1", port, expect=KEYS[0].address)
            await _eventually(lambda: len(hub.peers) == 14)
            await _eventually(lambda: len(hub.mesh.members(Topic.CONSENSUS)) >= 8)
            members = hub.mesh.members(Topic.CONSENSUS)
            assert len(members) <= hub.mesh.degree[Topic.CONSENSUS].d_hi
            source = next(i for i, leaf in enumerate(leaves, 1) if KEYS[i].address in members)
            leaves[source - 1].publish(Kind.VOTE, b"vote")
            await _eventually(lambda: len(inbox) == len(members))  # the hub and its mesh
            await asyncio.sleep(0.2)  # nobody else gets it before the heartbeat
            assert len(inbox) == len(members)
            now[0] += 1.0
            hub.heartbeat()
            await _eventually(lambda: len(inbox) == 14)  # every node but the source, once
            assert sorted(i for i, _, _ in inbox) == [i for i in range(15) if i != source]
            assert all(score >= 0 for score in hub.mesh.scores.values())  # nobody misbehaved
        finally:
            for node in [hub, *leaves]:
                await node.close()

    run(scenario)


def test_a_node_that_does_not_take_a_topic_neither_receives_nor_forwards_it() -> None:
    async def scenario() -> None:
        inbox: list[tuple[int, Kind, bytes]] = []
        full = frozenset(Topic) - {Topic.CONSENSUS}
        a = Gossip(KEYS[0], _handler(inbox, 0))
        b = Gossip(KEYS[1], _handler(inbox, 1), topics=full)  # a full node
        c = Gossip(KEYS[2], _handler(inbox, 2))
        try:
            port_b = await b.listen()
            await a.dial("127.0.0.1", port_b, expect=KEYS[1].address)
            await c.dial("127.0.0.1", port_b, expect=KEYS[1].address)
            await _eventually(lambda: a.mesh.peers[KEYS[1].address].topics == full)
            a.publish(Kind.VOTE, b"vote")  # b does not take votes: nobody is sent it
            a.publish(Kind.COMMIT, b"block")
            await _eventually(
                lambda: {(i, k) for i, k, _ in inbox} >= {(1, Kind.COMMIT), (2, Kind.COMMIT)}
            )
            await asyncio.sleep(0.1)
            assert (1, Kind.VOTE) not in {(i, k) for i, k, _ in inbox}
            assert (2, Kind.VOTE) not in {(i, k) for i, k, _ in inbox}
            b.subscribe(frozenset(Topic))  # voted in: it takes votes from now on
            await _eventually(lambda: a.mesh.peers[KEYS[1].address].topics == frozenset(Topic))
            await _eventually(
                lambda: (
                    KEYS[1].address in a.mesh.members(Topic.CONSENSUS)
                    or KEYS[0].address in b.mesh.members(Topic.CONSENSUS)
                )
            )
            a.publish(Kind.VOTE, b"vote-2")
            await _eventually(lambda: (2, Kind.VOTE) in {(i, k) for i, k, _ in inbox})
        finally:
            for node in (a, b, c):
                await node.close()

    run(scenario)


def test_a_direct_peer_with_a_bad_score_still_gets_consensus_messages() -> None:
    """A validator's configured peers (here: unconditional) are gossipsub's direct peers.
    Under heavy load a sentry runs over its rate budget and answers IWANTs late (broken
    promises): it must not be banned, graylisted, pruned or left out of publishing, or the
    validator loses its votes. An ordinary peer in the same state is banned."""

    async def scenario() -> None:
        now = [0.0]
        inbox: list[tuple[int, Kind, bytes]] = []
        direct = KEYS[1].address
        settings = PeerSettings(unconditional_peer_ids=(direct.hex(),))
        tight = Limits(consensus=Budget(rate=1, burst=2))
        hub = Gossip(KEYS[0], _handler(inbox, 0), settings=settings, limits=tight,
                     clock=lambda: now[0])  # fmt: skip
        sentry, rogue, source = (
            Gossip(KEYS[i], _handler(inbox, i), clock=lambda: now[0]) for i in (1, 2, 3)
        )
        try:
            port = await hub.listen()
            for node in (sentry, rogue, source):
                await node.dial("127.0.0.1", port, expect=KEYS[0].address)
            await _eventually(lambda: len(hub.peers) == 3)
            for i in range(12):  # far over the budget: two penalties and out
                sentry.publish(Kind.VOTE, b"sentry-%d" % i)
                rogue.publish(Kind.VOTE, b"rogue-%d" % i)
            await _eventually(lambda: KEYS[2].address not in hub.peers)  # banned
            await asyncio.sleep(0.2)
            assert direct in hub.peers and not hub.banned(direct)
            hub.mesh.peers[direct].behaviour = 10.0  # IWANT promises broken: -500
            now[0] += 10.0  # the budget refills
            hub.heartbeat()
            assert hub.mesh.scores[direct] == 0
            assert direct in hub.mesh.members(Topic.CONSENSUS)  # not pruned
            hub.mesh.mesh[Topic.CONSENSUS].discard(direct)  # and even outside the mesh:
            source.publish(Kind.VOTE, b"forwarded")
            hub.publish(Kind.VOTE, b"own")
            await _eventually(
                lambda: {(1, b"forwarded"), (1, b"own")} <= {(i, p) for i, _, p in inbox}
            )
            sentry.publish(Kind.VOTE, b"from-the-sentry")  # not graylisted either
            await _eventually(lambda: (0, Kind.VOTE, b"from-the-sentry") in inbox)
        finally:
            for node in (hub, sentry, rogue, source):
                await node.close()

    run(scenario)
