"""The encrypted transport on 127.0.0.1: handshake, authentication of the peer's node key,
frames that survive only intact, and limits. Every server is closed when its test ends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gridtokenx.p2p import transport
from gridtokenx.wire.crypto import PrivateKey, address_of

ALICE = PrivateKey.from_dev_label("test/p2p/alice")
BOB = PrivateKey.from_dev_label("test/p2p/bob")
MALLORY = PrivateKey.from_dev_label("test/p2p/mallory")


async def _echo_server(key: PrivateKey, seen: list[bytes]) -> asyncio.Server:
    async def handle(conn: transport.Connection) -> None:
        seen.append(conn.peer_id)
        try:
            for _ in range(10_000):  # bounded
                frame = await conn.receive()
                await conn.send(frame[::-1])
                await conn.flush()
        except transport.FrameError:
            pass
        finally:
            await conn.close()

    return await transport.serve("127.0.0.1", 0, key, handle)


def _port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 20))


def test_handshake_authenticates_both_sides_and_frames_round_trip() -> None:
    async def scenario() -> None:
        seen: list[bytes] = []
        server = await _echo_server(BOB, seen)
        try:
            conn = await transport.connect("127.0.0.1", _port(server), ALICE, expect=BOB.address)
            assert conn.peer_id == BOB.address
            for payload in (b"hello", b"", bytes(range(256)) * 100):
                await conn.send(payload)
                await conn.flush()
                assert await conn.receive() == payload[::-1]
            assert seen == [ALICE.address]
            await conn.close()
        finally:
            server.close()
            await server.wait_closed()

    run(scenario)


def test_a_dialler_refuses_a_node_it_did_not_expect() -> None:
    async def scenario() -> None:
        server = await _echo_server(MALLORY, [])
        try:
            with pytest.raises(transport.HandshakeError):
                await transport.connect("127.0.0.1", _port(server), ALICE, expect=BOB.address)
        finally:
            server.close()
            await server.wait_closed()

    run(scenario)


def test_a_tampered_frame_closes_the_connection() -> None:
    async def scenario() -> None:
        received: list[bytes] = []
        failures: list[str] = []

        async def handle(conn: transport.Connection) -> None:
            try:
                received.append(await conn.receive())
                received.append(await conn.receive())
            except transport.FrameError as exc:
                failures.append(str(exc))
            finally:
                await conn.close()

        server = await transport.serve("127.0.0.1", 0, BOB, handle)
        try:
            conn = await transport.connect("127.0.0.1", _port(server), ALICE)
            await conn.send(b"first")
            await conn.flush()
            # Flip one byte of the next frame on the wire.
            sealed = bytearray(conn._send.aead.encrypt(conn._send.nonce(), b"second", None))
            sealed[3] ^= 1
            conn._writer.write(transport._LENGTH.pack(len(sealed)) + bytes(sealed))
            await conn.flush()
            for _ in range(100):
                if failures:
                    break
                await asyncio.sleep(0.02)
            assert received == [b"first"]
            assert failures and "authentication" in failures[0]
            await conn.close()
        finally:
            server.close()
            await server.wait_closed()

    run(scenario)


def test_oversized_frames_are_refused_before_sending() -> None:
    async def scenario() -> None:
        server = await _echo_server(BOB, [])
        try:
            conn = await transport.connect("127.0.0.1", _port(server), ALICE)
            with pytest.raises(transport.FrameError):
                await conn.send(b"x" * (transport.MAX_FRAME + 1))
            await conn.close()
        finally:
            server.close()
            await server.wait_closed()

    run(scenario)


def test_not_a_peer_is_dropped_at_the_handshake() -> None:
    async def scenario() -> None:
        seen: list[bytes] = []
        server = await _echo_server(BOB, seen)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", _port(server))
            writer.write(b"GET / HTTP/1.1\r\n\r\n" + b"x" * 64)
            await writer.drain()
            data = await reader.read()  # the server's hello, then it hangs up
            assert data[:4] == transport.MAGIC and len(data) == 68
            writer.close()
            await asyncio.sleep(0.05)
            assert seen == []
        finally:
            server.close()
            await server.wait_closed()

    run(scenario)


def test_peer_id_is_the_address_of_the_node_key() -> None:
    assert address_of(ALICE.public_key) == ALICE.address
