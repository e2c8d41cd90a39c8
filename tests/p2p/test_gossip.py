"""Gossip on 127.0.0.1: messages flood through a line of nodes exactly once, size limits
hold, peers that send garbage or invalid messages lose score and are disconnected, and a
peer over its rate budget loses frames, then score, while polite peers are unaffected."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gridtokenx.p2p import transport
from gridtokenx.p2p.gossip import LIMITS, PENALTY, START_SCORE, Gossip, Kind, _Envelope
from gridtokenx.p2p.ratelimit import Budget, Lane, Limits, TokenBucket, Verdict
from gridtokenx.wire import codec
from gridtokenx.wire.crypto import PrivateKey

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
            nodes[0].publish(Kind.VOTE, b"vote-1")
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
            node.publish(Kind.VOTE, b"x" * (LIMITS[Kind.VOTE] + 1))
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
            await rogue.send(codec.encode(_Envelope(Kind.TX, b"invalid")))  # strike two
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


# --- per-peer rate limits ------------------------------------------------------------------
def test_a_bucket_admits_its_burst_refills_at_its_rate_and_penalises_far_excess() -> None:
    bucket = TokenBucket(Budget(rate=10, burst=20), now=0.0)
    assert [bucket.take(0.0) for _ in range(20)] == [Verdict.ADMIT] * 20
    assert bucket.take(0.0) is Verdict.DROP
    assert [bucket.take(0.5) for _ in range(5)] == [Verdict.ADMIT] * 5  # 0.5 s = 5 tokens
    assert bucket.take(0.5) is Verdict.DROP  # the refill also forgave the first refusal
    assert bucket.take(0.4) is Verdict.DROP  # a clock stepping back refills nothing
    verdicts = [bucket.take(0.5) for _ in range(18)]
    assert verdicts == [Verdict.DROP] * 17 + [Verdict.PENALISE]  # 20 refused: twice the burst
    assert bucket.take(0.5) is Verdict.DROP  # the next penalty takes another whole burst
    assert bucket.take(10.0) is Verdict.ADMIT  # and a quiet spell forgives


def test_a_peer_a_little_over_its_rate_loses_frames_but_is_not_penalised() -> None:
    bucket = TokenBucket(Budget(rate=10, burst=20), now=0.0)
    verdicts = [bucket.take(i / 15) for i in range(1500)]  # 1.5 x the rate for 100 s
    assert Verdict.DROP in verdicts and Verdict.PENALISE not in verdicts


def test_budgets_must_be_positive() -> None:
    for rate, burst in ((0, 10), (10, 0.5), (-1, 10)):
        with pytest.raises(ValueError, match="budget"):
            Budget(rate, burst)
    limits = Limits()
    assert limits.of(Lane.CONSENSUS).rate > limits.of(Lane.TX).rate  # validators come first


TIGHT = Limits(tx=Budget(rate=10, burst=20), requests=Budget(rate=10, burst=20))


async def _flood(connection: transport.Connection, kind: Kind, tag: bytes, count: int) -> None:
    for i in range(count):
        await connection.send(codec.encode(_Envelope(kind, tag + i.to_bytes(4))))
    await connection.flush()


def _limited_node(inbox: list[tuple[bytes, Kind, bytes]], clock: Callable[[], float]) -> Gossip:
    async def handler(kind: Kind, payload: bytes, peer: bytes) -> bool:
        inbox.append((peer, kind, payload))
        return True

    return Gossip(KEYS[0], handler, limits=TIGHT, clock=clock)


def test_a_flood_beyond_budget_is_dropped_and_counted_and_a_polite_peer_is_unaffected() -> None:
    async def scenario() -> None:
        now = [0.0]  # the clock stands still unless the test moves it
        inbox: list[tuple[bytes, Kind, bytes]] = []
        node = _limited_node(inbox, lambda: now[0])
        polite = _node(1, [])
        rogue: transport.Connection | None = None
        try:
            port = await node.listen()
            await polite.dial("127.0.0.1", port, expect=KEYS[0].address)
            rogue = await transport.connect("127.0.0.1", port, KEYS[3])
            await _eventually(lambda: len(node.peers) == 2)

            def count(peer: bytes, kind: Kind) -> int:
                return sum(1 for p, k, _ in inbox if p == peer and k is kind)

            await _flood(rogue, Kind.TX, b"rogue", 30)
            for i in range(5):
                polite.publish(Kind.TX, b"polite" + bytes([i]))
            for i in range(50):  # consensus has its own, generous budget
                polite.publish(Kind.VOTE, b"vote" + bytes([i]))
            await _eventually(lambda: node.throttled[KEYS[3].address] == 10)
            await _eventually(lambda: count(KEYS[1].address, Kind.VOTE) == 50)
            assert count(KEYS[3].address, Kind.TX) == 20
            assert count(KEYS[1].address, Kind.TX) == 5
            assert KEYS[1].address not in node.throttled
            assert node.scores[KEYS[3].address] == START_SCORE  # over, but not far over
            # Our own messages are never throttled: the polite peer gets all of them.
            received: list[bytes] = []
            polite.handler = _collect(received)
            for i in range(40):
                node.publish(Kind.TX, b"own" + bytes([i]))
            await _eventually(lambda: len(received) == 40)
            now[0] += 1.0  # a second later the rogue has 10 more tokens
            await _flood(rogue, Kind.TX, b"later", 12)
            await _eventually(lambda: node.throttled[KEYS[3].address] == 12)
            assert count(KEYS[3].address, Kind.TX) == 30
        finally:
            if rogue is not None:
                await rogue.close()
            await polite.close()
            await node.close()

    run(scenario)


def _collect(into: list[bytes]) -> Callable[[Kind, bytes, bytes], Awaitable[bool]]:
    async def handler(kind: Kind, payload: bytes, peer: bytes) -> bool:
        into.append(payload)
        return True

    return handler


def test_a_peer_far_over_its_budget_ends_disconnected_and_banned() -> None:
    async def scenario() -> None:
        inbox: list[tuple[bytes, Kind, bytes]] = []
        node = _limited_node(inbox, lambda: 0.0)
        rogue: transport.Connection | None = None
        try:
            port = await node.listen()
            rogue = await transport.connect("127.0.0.1", port, KEYS[3])
            await _eventually(lambda: KEYS[3].address in node.peers)
            # 20 admitted, then every 20 refused costs a penalty: two and it is out.
            await _flood(rogue, Kind.SYNC_REQUEST, b"", 59)
            await _eventually(lambda: node.throttled[KEYS[3].address] == 39)
            assert node.scores[KEYS[3].address] == START_SCORE - PENALTY
            assert KEYS[3].address in node.peers
            await _flood(rogue, Kind.SYNC_REQUEST, b"", 1)
            await _eventually(lambda: KEYS[3].address not in node.peers)
            assert node.scores[KEYS[3].address] <= 0 and node.banned(KEYS[3].address)
            assert len(inbox) == 20
        finally:
            if rogue is not None:
                await rogue.close()
            await node.close()

    run(scenario)


def test_two_nodes_dialling_each_other_at_once_keep_one_connection() -> None:
    async def attempt(n: int) -> None:
        inbox: list[tuple[int, Kind, bytes]] = []
        a, b = _node(0, inbox), _node(1, inbox)
        try:
            port_a, port_b = await a.listen(), await b.listen()
            await asyncio.gather(
                a.dial("127.0.0.1", port_b, expect=KEYS[1].address),
                b.dial("127.0.0.1", port_a, expect=KEYS[0].address),
            )
            await asyncio.sleep(0.05)  # let both sides settle on one connection
            a.publish(Kind.TX, b"tx-%d" % n)
            b.publish(Kind.TX, b"tx-back-%d" % n)
            await _eventually(lambda: len(inbox) == 2)
            assert list(a.peers) == [KEYS[1].address] and list(b.peers) == [KEYS[0].address]
        finally:
            await a.close()
            await b.close()

    async def scenario() -> None:
        for n in range(5):  # a race, so a few tries; bounded
            await attempt(n)

    run(scenario)
