"""Misbehaving peers for the fault tests: one that completes the handshake and then never
reads again, servers that hang up in the middle of a handshake, and a flood of connections
that never say a word. On 127.0.0.1 unless a test on network hosts names an address."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from gridtokenx.p2p import transport
from gridtokenx.wire.crypto import PrivateKey

TCP_ESTABLISHED = 1  # tcpi_state, the first byte of Linux's struct tcp_info


class NeverReading:
    """An authenticated peer with a 4 KiB receive buffer that stops reading once the
    handshake is done, as a stalled (SIGSTOPped) or hostile node does."""

    def __init__(self, sock: socket.socket, writer: asyncio.StreamWriter, peer_id: bytes):
        self.sock, self.writer, self.id = sock, writer, peer_id

    @classmethod
    async def connect(
        cls, port: int, key: PrivateKey | None = None, host: str = "127.0.0.1"
    ) -> NeverReading:
        key = key or PrivateKey.generate()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            reader, writer = await asyncio.open_connection(sock=sock)
            await asyncio.wait_for(transport._handshake(reader, writer, key, True, None), 5)
        except BaseException:
            sock.close()
            raise
        writer.transport.pause_reading()  # type: ignore[attr-defined]
        return cls(sock, writer, key.address)

    def connected(self) -> bool:
        """Still established? Read from the kernel (TCP_INFO), since this peer reads nothing
        and so never sees the other side hang up."""
        try:
            info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
        except OSError:
            return False
        return info[0] == TCP_ESTABLISHED

    def close(self) -> None:
        self.writer.transport.abort()


async def break_writer(peer: object) -> None:
    """Give a gossip peer's connection a writer whose transport the event loop has closed
    already, as when the peer died and the loop tore its socket down before gossip read
    the end of it. (A `connection.Peer` holds a `transport.Connection`; older code kept
    the `Connection` itself in the peer table.)"""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    await asyncio.sleep(0.05)  # uvloop frees the handle on a later turn of the loop
    server.close()
    await server.wait_closed()
    getattr(peer, "connection", peer)._writer = writer  # type: ignore[attr-defined]


async def sent(result: object) -> None:
    """Sending queues and returns None; code from before the peer layer returned a
    coroutine that waited for the socket. Await that one, so a test shows the stall."""
    if inspect.isawaitable(result):
        await result


class HangUpServer:
    """A TCP server on 127.0.0.1 that accepts, reads the dialler's hello, sends half of its
    own and closes: a peer that dies in the middle of the handshake. A thread serves it
    until `stop`."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self.accepted = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> HangUpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:  # the accept timed out: look at the stop flag again
                continue
            self.accepted += 1  # before the hang-up: the dialler may check as soon as it sees it
            with conn, contextlib.suppress(OSError):
                conn.settimeout(2)
                conn.recv(68)
                conn.sendall(transport.MAGIC + bytes(16))  # a third of a hello


async def eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait (bounded) until `check()` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@dataclass
class Flood:
    """What a flood of silent connections met: how many the listener's kernel took, and
    how many of those the node closed (refused at once, or at its handshake deadline)."""

    opened: int = 0
    closed_by_node: int = 0
    failed: int = 0  # the connect itself failed (reset or refused before it completed)


async def flood(host: str, port: int, count: int, hold_s: float) -> Flood:
    """Open `count` connections to `host:port` at once (50 at a time), never send a byte,
    and hold each until the node closes it or `hold_s` seconds pass, as a flood would."""
    result = Flood()
    gate = asyncio.Semaphore(50)

    async def one() -> None:
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
            except (OSError, TimeoutError):
                result.failed += 1
                return
        result.opened += 1
        try:
            if await asyncio.wait_for(reader.read(1 << 16), hold_s) == b"":
                result.closed_by_node += 1
        except TimeoutError:
            pass  # still open when the hold ended
        except OSError:  # reset: the node refused it
            result.closed_by_node += 1
        finally:
            writer.transport.abort()

    await asyncio.gather(*(one() for _ in range(count)))
    return result
