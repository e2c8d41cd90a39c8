"""Gossip on 127.0.0.1: messages flood through a line of nodes exactly once, size limits
hold, and peers that send garbage or invalid messages lose score and are disconnected."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gridtokenx import codec
from gridtokenx.crypto import PrivateKey
from gridtokenx.p2p import transport
from gridtokenx.p2p.gossip import LIMITS, Gossip, Kind, _Envelope

KEYS = [PrivateKey.from_dev_label(f"test/gossip/{i}") for i in range(4)]


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 20))


async def _eventually(check: Callable[[], bool]) -> None:
    for _ in range(200):  # bounded: 4 s
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


def _node(index: int, inbox: list[tuple[int, Kind, bytes]], valid: bool = True) -> Gossip:
    async def handler(kind: Kind, payload: bytes, peer: bytes) -> bool:
        inbox.append((index, kind, payload))
        return valid and payload != b"invalid"

    return Gossip(KEYS[index], handler)


def test_a_message_floods_a_line_of_nodes_exactly_once() -> None:
    async def scenario() -> None:
        inbox: list[tuple[int, Kind, bytes]] = []
        nodes = [_node(i, inbox) for i in range(4)]
        try:
            ports = [await n.listen() for n in nodes]
            for i in range(3):  # 0 - 1 - 2 - 3
                await nodes[i].dial("127.0.0.1", ports[i + 1], expect=KEYS[i + 1].address)
            await _eventually(
                lambda: all(len(n.peers) == (1 if i in (0, 3) else 2) for i, n in enumerate(nodes))
            )
            await nodes[0].publish(Kind.VOTE, b"vote-1")
            await _eventually(lambda: len(inbox) == 3)
            await asyncio.sleep(0.1)  # give any duplicate the chance to arrive
            assert sorted(i for i, _, _ in inbox) == [1, 2, 3]
            assert {(k, p) for _, k, p in inbox} == {(Kind.VOTE, b"vote-1")}
        finally:
            for n in nodes:
                await n.close()

    run(scenario)


def test_publishing_beyond_the_limit_is_refused() -> None:
    async def scenario() -> None:
        node = _node(0, [])
        with pytest.raises(ValueError):
            await node.publish(Kind.VOTE, b"x" * (LIMITS[Kind.VOTE] + 1))
        await node.close()

    run(scenario)


def test_a_peer_sending_garbage_or_invalid_messages_is_disconnected() -> None:
    async def scenario() -> None:
        inbox: list[tuple[int, Kind, bytes]] = []
        honest = _node(0, inbox)
        try:
            port = await honest.listen()
            rogue = await transport.connect("127.0.0.1", port, KEYS[3])
            await _eventually(lambda: KEYS[3].address in honest.peers)
            await rogue.send(b"\xc1 not msgpack")  # strike one
            await rogue.flush()
            await rogue.send(codec.encode(_Envelope(int(Kind.TX), b"invalid")))  # strike two
            await rogue.flush()
            await _eventually(lambda: KEYS[3].address not in honest.peers)
            assert honest.scores[KEYS[3].address] <= 0
            # A banned peer that comes back is turned away.
            again = await transport.connect("127.0.0.1", port, KEYS[3])
            await asyncio.sleep(0.1)
            assert KEYS[3].address not in honest.peers
            await again.close()
            await rogue.close()
        finally:
            await honest.close()

    run(scenario)
