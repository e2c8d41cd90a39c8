"""The encrypted transport on 127.0.0.1: handshake, authentication of the peer's node key,
frames that survive only intact, and limits. Every server is closed when its test ends."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable

import nacl.bindings as sodium
import pytest

from gridtokenx.p2p import transport
from gridtokenx.wire.crypto import PrivateKey, address_of
from tests.p2p.rogues import HangUpServer

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


# --- limits before trust -------------------------------------------------------------------
async def _raw_hello(port: int, ephemeral: bytes, key: PrivateKey = MALLORY) -> tuple[
    asyncio.StreamReader, asyncio.StreamWriter
]:  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(transport.MAGIC + ephemeral + key.public_key)
    await writer.drain()
    return reader, writer


def test_a_huge_frame_before_authentication_is_refused_at_its_length() -> None:
    """The handshake's one frame (the proof) is 80 bytes. A peer that announces 4 MiB
    instead is cut off as soon as the length is read: nothing of the frame is awaited or
    buffered. (The limit used to be the 4 MiB of any frame, so 40 such connections held
    180 MB until their handshakes timed out.)"""

    async def scenario() -> None:
        server = await _echo_server(BOB, [])
        try:
            ephemeral, _ = sodium.crypto_box_keypair()
            reader, writer = await _raw_hello(_port(server), ephemeral)
            await reader.readexactly(68)  # the server's hello
            writer.write(transport._LENGTH.pack(transport.MAX_FRAME))  # and no frame
            await writer.drain()
            rest = await asyncio.wait_for(reader.read(), 2)  # EOF, long before the 5 s
            assert len(rest) < 200  # at most the server's own proof, then the end
            writer.close()
        finally:
            server.close()
            await server.wait_closed()

    run(scenario)


@pytest.mark.parametrize(
    "ephemeral",
    [
        bytes(32),  # all zero
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    ],  # the second: a point of order 8
    ids=["all-zero", "low-order"],
)
def test_a_degenerate_x25519_key_is_refused_without_a_traceback(
    ephemeral: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        seen: list[bytes] = []
        problems: list[dict[str, object]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: problems.append(ctx))
        server = await _echo_server(BOB, seen)
        try:
            reader, writer = await _raw_hello(_port(server), ephemeral)
            data = await asyncio.wait_for(reader.read(), 2)  # the hello, then the end
            assert data[:4] == transport.MAGIC and len(data) == 68
            writer.close()
            await asyncio.sleep(0.1)
            gc.collect()  # a failed accept task would report its exception now
            await asyncio.sleep(0.1)
            assert seen == [] and problems == []
        finally:
            server.close()
            await server.wait_closed()

    with caplog.at_level(logging.INFO):
        run(scenario)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


def test_a_peer_that_hangs_up_mid_handshake_is_a_handshake_error() -> None:
    """Dialling a peer that accepts and closes half-way through its hello raised
    asyncio.IncompleteReadError, which callers did not expect from a dial (a validator
    with such a peer in its config exited at start). Now every failure of a dial is an
    OSError: refused, unreachable, or transport.HandshakeError."""

    async def scenario() -> None:
        with HangUpServer() as hang_up:
            with pytest.raises(transport.HandshakeError, match="handshake failed"):
                await transport.connect("127.0.0.1", hang_up.port, ALICE)
            with pytest.raises(OSError):
                await transport.connect("127.0.0.1", hang_up.port, ALICE)
            assert hang_up.accepted == 2

    run(scenario)
