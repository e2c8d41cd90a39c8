"""Rogue peers: they complete the transport's handshake with a node, as any peer may, and
then never read a byte.

A node that waits for every peer's socket to drain before it goes on is stalled by one such
peer once the buffers between them are full. To fill them in seconds rather than minutes,
the rogue reaches the node through a relay of its own whose socket to the node has a small
receive buffer (`RCVBUF`, set before it connects, so the window it advertises stays small),
and the relay stops reading from the node as soon as the handshake is done. The handshake
itself is `p2p.transport.connect`: the rogue is a well-formed peer with its own key.

A rogue may also ask: with `requests_per_s` it sends block requests (`SYNC_REQUEST` for the
first heights in turn, within the node's per-peer request budget) and reads none of the
answers, so the node's buffers to it fill in seconds even on an idle chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Final

from gridtokenx.p2p import transport
from gridtokenx.p2p.gossip import Kind
from gridtokenx.wire import codec
from gridtokenx.wire.crypto import PrivateKey

HOST: Final = "127.0.0.1"
RCVBUF: Final = 4096
ASKED_HEIGHTS: Final = 20  # a requesting rogue asks for heights 1..20 in turn


class Rogue:
    """One never-reading peer of the node listening at `port` whose id is `node_id`."""

    def __init__(self, port: int, node_id: bytes, label: str, requests_per_s: int = 0) -> None:
        self.port, self.node_id, self.requests_per_s = port, node_id, requests_per_s
        self.key = PrivateKey.from_dev_label(f"faults/rogue/{label}")
        self._frozen = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._connection: transport.Connection | None = None

    async def connect(self) -> None:
        """Handshake with the node through the relay, then freeze: from here on nothing
        the node sends is read. Raises OSError / ConnectionError when the node is down."""
        self._server = await asyncio.start_server(self._relay, HOST, 0)
        relay_port = int(self._server.sockets[0].getsockname()[1])
        self._connection = await asyncio.wait_for(
            transport.connect(HOST, relay_port, self.key, expect=self.node_id), 10
        )
        self._frozen.set()
        if self.requests_per_s > 0:
            task = asyncio.create_task(self._ask(self._connection))
            self._tasks.add(task)

    async def _ask(self, connection: transport.Connection) -> None:
        """Ask for blocks at `requests_per_s` (a gossip envelope, [kind, payload], as any
        peer sends), never reading an answer; ends when the node hangs up."""
        height = 0
        with contextlib.suppress(OSError, ConnectionError, transport.FrameError):
            while True:  # until the node drops us or `close` cancels this task
                height = height % ASKED_HEIGHTS + 1
                await connection.send(codec.encode((int(Kind.SYNC_REQUEST), height.to_bytes(8))))
                await connection.flush()
                await asyncio.sleep(1 / self.requests_per_s)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sockets.append(upstream)
        upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        upstream.setblocking(False)
        try:
            await loop.sock_connect(upstream, (HOST, self.port))
        except OSError:
            writer.close()
            return
        task = asyncio.create_task(self._to_node(reader, upstream))
        self._tasks.add(task)
        with contextlib.suppress(OSError):
            while not self._frozen.is_set():  # until the handshake is over, then never
                recv = asyncio.ensure_future(loop.sock_recv(upstream, 4096))
                frozen = asyncio.ensure_future(self._frozen.wait())
                done, _ = await asyncio.wait({recv, frozen}, return_when=asyncio.FIRST_COMPLETED)
                if recv not in done:
                    recv.cancel()  # nothing was taken from the socket
                    break
                frozen.cancel()
                if not (data := recv.result()):
                    break
                writer.write(data)
                await writer.drain()

    async def _to_node(self, reader: asyncio.StreamReader, upstream: socket.socket) -> None:
        """What the rogue sends (its half of the handshake) goes on to the node."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            while data := await reader.read(4096):
                await loop.sock_sendall(upstream, data)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._connection is not None:
            await self._connection.close()
        for sock in self._sockets:
            sock.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)
