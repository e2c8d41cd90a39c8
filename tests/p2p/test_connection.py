"""The peer layer on 127.0.0.1: a peer that stops reading stalls nothing but itself, lanes
are bounded and served consensus first, keepalive drops a silent peer, a dead transport
kills no task, and connections beyond the caps are refused."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvloop

from gridtokenx.p2p import mesh_frames, transport
from gridtokenx.p2p.gossip import Gossip, Kind, _Envelope
from gridtokenx.p2p.mesh import IDontWant
from gridtokenx.p2p.ratelimit import Lane
from gridtokenx.wire import codec
from gridtokenx.wire.crypto import PrivateKey
from tests.p2p.rogues import NeverReading, break_writer, eventually, sent

KEYS = [PrivateKey.from_dev_label(f"test/connection/{i}") for i in range(5)]
MIB = 1024 * 1024


def run(coro: Callable[[], Awaitable[None]], seconds: float = 40) -> None:
    asyncio.run(asyncio.wait_for(coro(), seconds))


def _node(index: int, inbox: list[tuple[Kind, bytes]] | None = None, **settings: float) -> Gossip:
    async def handler(kind: Kind, payload: bytes, peer: bytes) -> bool:
        if inbox is not None:
            inbox.append((kind, payload))
        return True

    if not settings:  # the defaults: what code from before the settings existed ran with
        return Gossip(KEYS[index], handler)
    from gridtokenx.p2p.connection import PeerSettings  # imported here: main has none

    return Gossip(KEYS[index], handler, settings=PeerSettings(**settings))  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def _with_rogue(a: Gossip, *honest: Gossip) -> AsyncIterator[NeverReading]:
    """`a` listening, the `honest` peers connected to it, and a peer that never reads;
    everything closed afterwards."""
    rogue: NeverReading | None = None
    try:
        port = await a.listen()
        for peer in honest:
            await peer.dial("127.0.0.1", port, expect=a.key.address)
        rogue = await NeverReading.connect(port)
        await eventually(lambda: len(a.peers) == len(honest) + 1)
        yield rogue
    finally:
        if rogue is not None:
            rogue.close()
        for node in (a, *honest):
            await node.close()


@contextlib.asynccontextmanager
async def _pair(got: list[tuple[Kind, bytes]]) -> AsyncIterator[tuple[Gossip, Gossip]]:
    """A listening and B, whose handler collects into `got`, connected both ways, idle;
    both closed afterwards."""
    a, b = _node(0), _node(1, got)
    try:
        port = await a.listen()
        await b.dial("127.0.0.1", port, expect=KEYS[0].address)
        await eventually(lambda: KEYS[1].address in a.peers and KEYS[0].address in b.peers)
        await asyncio.sleep(0.1)  # subscriptions exchanged, nothing else is queued
        yield a, b
    finally:
        await a.close()
        await b.close()


def test_a_peer_that_stops_reading_does_not_stall_the_flood() -> None:
    """C floods 12 MiB of proposals through A to B while R, also a peer of A, never reads.
    Before the peer layer, A's forwarding waited for R's socket to drain: once R's buffers
    held about 4 MiB, A stopped forwarding to B and stopped reading from C."""

    async def scenario() -> None:
        got: list[tuple[Kind, bytes]] = []
        a, b, c = _node(0), _node(1, got), _node(2)
        async with _with_rogue(a, b, c):
            for i in range(48):
                await asyncio.wait_for(sent(c.publish(Kind.PROPOSAL, bytes([i]) * (MIB // 4))), 5)
            await eventually(lambda: len(got) == 48, 20)
            assert [p[0] for _, p in got] == list(range(48))
            assert a.publish(Kind.VOTE, b"mine") is None  # queued, nothing awaited

    run(scenario)


def test_a_silent_peer_is_dropped_at_its_deadline_and_a_live_one_is_kept() -> None:
    async def scenario() -> None:
        quick = {"ping_interval_s": 0.2, "pong_timeout_s": 0.5, "write_timeout_s": 0.5}
        a, b = _node(0, **quick), _node(1, **quick)
        async with _with_rogue(a, b) as rogue:
            await eventually(lambda: rogue.id not in a.peers, 5)
            assert {"pong_timeout", "read_timeout"} & set(a.stats.disconnects)
            await asyncio.sleep(1.5)  # many ping intervals: b answers each one
            assert KEYS[1].address in a.peers and KEYS[0].address in b.peers

    run(scenario)


def test_full_lanes_drop_old_transactions_and_cut_a_peer_behind_on_consensus() -> None:
    """R never reads. Its transaction lane keeps the newest frames (the oldest are dropped
    and counted); its consensus lane, once full, costs R the connection. B, reading, gets
    everything."""

    async def scenario() -> None:
        got: list[tuple[Kind, bytes]] = []
        tight = 4 * MIB + 1024
        a = _node(0, write_timeout_s=60, consensus_queue_bytes=tight, tx_queue_bytes=tight)
        b = _node(1, got)
        async with _with_rogue(a, b) as rogue:
            for i in range(24):  # 24 MiB: more than R's socket buffers and its lane
                assert a.send_to(rogue.id, Kind.TX, bytes([i]) * MIB)
                await asyncio.sleep(0.01)
            await eventually(lambda: a.stats.dropped["tx"] > 0)
            assert rogue.id in a.peers
            frames, size = a.peers[rogue.id].queued()[Lane.TX]
            assert 0 < size <= tight and frames <= 4
            for i in range(24):
                a.publish(Kind.PROPOSAL, bytes([i]) * MIB)
                await asyncio.sleep(0.01)
            await eventually(lambda: rogue.id not in a.peers)
            assert a.stats.disconnects["consensus_queue_full"] == 1
            await eventually(lambda: len(got) == 24, 20)

    run(scenario)


def test_the_writer_serves_consensus_before_transactions() -> None:
    async def scenario() -> None:
        got: list[tuple[Kind, bytes]] = []
        async with _pair(got) as (a, _):
            for i in range(3):  # all queued before the writer runs
                a.send_to(KEYS[1].address, Kind.TX, b"tx" + bytes([i]))
            a.publish(Kind.VOTE, b"vote")
            await eventually(lambda: len(got) == 4)
            assert [k for k, _ in got] == [Kind.VOTE, Kind.TX, Kind.TX, Kind.TX]

    run(scenario)


def test_a_closed_transport_under_uvloop_kills_no_task() -> None:
    """uvloop raises RuntimeError ("unable to perform operation on <TCPTransport
    closed=True>") when a dead peer's transport is written to. It used to escape publish
    and the forwarding reader task; now the peer's writer drops that peer alone."""

    async def scenario() -> None:
        got: list[tuple[Kind, bytes]] = []
        a, b, c = _node(0), _node(1), _node(2, got)
        try:
            port = await a.listen()
            await b.dial("127.0.0.1", port, expect=KEYS[0].address)
            await c.dial("127.0.0.1", port, expect=KEYS[0].address)
            await eventually(lambda: len(a.peers) == 2)
            await break_writer(a.peers[KEYS[1].address])  # b's socket is gone: a did not see it
            for i in range(3):
                await sent(a.publish(Kind.VOTE, b"after" + bytes([i])))
            await eventually(lambda: len(got) == 3)
            await eventually(lambda: KEYS[1].address not in a.peers)
        finally:
            for node in (a, b, c):
                await node.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(scenario(), 20))


def test_peers_beyond_the_cap_are_refused_unless_reserved() -> None:
    async def scenario() -> None:
        a = _node(0, max_peers=2)
        others = [_node(i) for i in range(1, 5)]
        try:
            port = await a.listen()
            for other in others[:3]:
                await other.dial("127.0.0.1", port, expect=KEYS[0].address)
            await eventually(lambda: a.gate.refused["max_peers"] == 1)
            assert len(a.peers) == 2
            a.reserved = lambda peer: peer == KEYS[4].address  # a validator, say
            await others[3].dial("127.0.0.1", port, expect=KEYS[0].address)
            await eventually(lambda: KEYS[4].address in a.peers)
            assert len(a.peers) == 3
        finally:
            for node in (a, *others):
                await node.close()

    run(scenario)


async def _hello_or_eof(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        data = await asyncio.wait_for(reader.read(68), 2)
    except TimeoutError:
        data = b"(nothing)"
    return reader, writer, data


@pytest.mark.parametrize("limit_loopback", [False, True])
def test_handshakes_in_progress_and_per_ip_are_capped(limit_loopback: bool) -> None:
    """Three silent connections: with a cap of two handshakes in progress the third is
    closed before a byte is exchanged; with two per IP (loopback counted) as well."""

    async def scenario() -> None:
        gate = transport.Gate(max_handshakes=2 if not limit_loopback else 10, max_per_ip=2,
                              limit_loopback=limit_loopback)  # fmt: skip

        async def never(conn: transport.Connection) -> None:
            raise AssertionError("no handshake completes here")

        server = await transport.serve("127.0.0.1", 0, KEYS[0], never, gate=gate, timeout=5)
        held = []
        try:
            port = int(server.sockets[0].getsockname()[1])
            for _ in range(3):
                held.append(await _hello_or_eof(port))
            hellos = [data for _, _, data in held]
            assert [len(h) for h in hellos[:2]] == [68, 68]
            assert hellos[2] == b""  # closed at once: no hello, nothing read from us
            reason = "per_ip" if limit_loopback else "handshakes_in_progress"
            assert gate.refused == {reason: 1}
        finally:
            for _, writer, _ in held:
                writer.close()
            server.close()
            await server.wait_closed()

    run(scenario)


def test_a_node_whose_own_loop_stalled_does_not_blame_its_peers() -> None:
    """Both ends share this loop, which is held up for twice the keepalive deadline: when
    it runs again the pongs are still unread in the sockets. Neither side drops the other
    for a silence that was its own."""

    async def scenario() -> None:
        quick = {"ping_interval_s": 0.2, "pong_timeout_s": 0.5}
        a, b = _node(0, **quick), _node(1, **quick)
        try:
            port = await a.listen()
            await b.dial("127.0.0.1", port, expect=KEYS[0].address)
            await eventually(lambda: KEYS[1].address in a.peers)
            await asyncio.sleep(0.5)
            time.sleep(1.5)  # the whole loop stalls (a long block, a slow disk)
            await asyncio.sleep(1.0)
            assert KEYS[1].address in a.peers and KEYS[0].address in b.peers
            assert not a.stats.disconnects and not b.stats.disconnects
        finally:
            await a.close()
            await b.close()

    run(scenario)


def test_a_queued_message_the_peer_said_it_has_is_not_written() -> None:
    """A queues 24 proposals of 1 MiB for B while B is not reading, so most wait in A's
    consensus lane; B then says IDONTWANT for the last one. When B reads again, 23 frames
    arrive on the wire: the last was skipped as the writer reached it, and counted."""

    async def scenario() -> None:
        got: list[tuple[Kind, bytes]] = []
        async with _pair(got) as (a, b):
            to_a = b.peers[KEYS[0].address]
            to_a.connection._writer.transport.pause_reading()  # type: ignore[attr-defined]
            payloads = [bytes([i]) * MIB for i in range(24)]
            for payload in payloads:
                a.publish(Kind.PROPOSAL, payload)
            last = Gossip._message(Kind.PROPOSAL, payloads[-1]).id
            notice = mesh_frames.encode(IDontWant((last,)))
            to_a.send(Lane.CONTROL, codec.encode(_Envelope(Kind.MESH, notice)))
            await eventually(lambda: not a.mesh.wanted(KEYS[1].address, last))
            assert a.peers[KEYS[1].address].queued()[Lane.CONSENSUS][0] > 0  # still waiting
            to_a.connection._writer.transport.resume_reading()  # type: ignore[attr-defined]
            await eventually(lambda: a.peers[KEYS[1].address].queued()[Lane.CONSENSUS] == (0, 0))
            await eventually(lambda: len(got) == 23, 20)
            await asyncio.sleep(0.2)
            assert [p for _, p in got] == payloads[:-1]
            assert a.stats.unwanted["consensus"] == 1
            assert b.stats.received["consensus"] == sum(
                len(Gossip._message(Kind.PROPOSAL, p).data) for p in payloads[:-1]
            )

    run(scenario)
