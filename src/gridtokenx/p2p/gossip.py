"""Gossip over the encrypted transport: every message reaches every connected node once.

A message is `[kind, payload]`. A node hands each new message to its handler and forwards
it to every other peer; a cache of recently seen message ids (a tagged hash of the frame)
stops the flood from looping. Each kind has its own size limit. A peer that sends a frame
that does not decode, breaks a limit, or that the handler rejects as invalid, loses score;
at zero it is disconnected, so a faulty or hostile peer cannot keep a node busy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import Final

import msgspec

from gridtokenx import codec, crypto
from gridtokenx.p2p import transport


class Kind(IntEnum):
    TX = 1
    PROPOSAL = 2
    VOTE = 3
    COMMIT = 4
    SYNC_REQUEST = 5  # direct: "send me height h", never forwarded
    SYNC_BLOCK = 6  # direct: a certified block in answer, never forwarded


DIRECT: Final = frozenset({Kind.SYNC_REQUEST, Kind.SYNC_BLOCK, Kind.TX})
"""Not flooded by gossip: sync messages go to one peer, and transaction batches are relayed
by the node itself after admission (a node relays only what its own mempool accepted)."""


LIMITS: Final = {
    Kind.TX: 4 * 1024 * 1024,  # a batch of up to 2,048 transactions
    Kind.PROPOSAL: 4 * 1024 * 1024,
    Kind.VOTE: 1024,
    Kind.COMMIT: 4 * 1024 * 1024 + 64 * 1024,
    Kind.SYNC_REQUEST: 16,
    Kind.SYNC_BLOCK: 4 * 1024 * 1024 + 64 * 1024,
}
START_SCORE: Final = 10
PENALTY: Final = 5  # two strikes and out
SEEN_CACHE: Final = 100_000

Handler = Callable[[Kind, bytes, bytes], Awaitable[bool]]
"""(kind, payload, peer id) -> whether the payload was valid (False costs the peer score)."""


class _Envelope(msgspec.Struct, array_like=True, frozen=True):
    kind: int
    payload: bytes


_decoder: Final = msgspec.msgpack.Decoder(_Envelope)


class Gossip:
    def __init__(self, key: crypto.PrivateKey, handler: Handler) -> None:
        self.key = key
        self.handler = handler
        self.peers: dict[bytes, transport.Connection] = {}
        self.scores: dict[bytes, int] = {}
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    # --- connections -----------------------------------------------------------------------
    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await transport.serve(host, port, self.key, self._adopt)
        return int(self._server.sockets[0].getsockname()[1])

    async def dial(self, host: str, port: int, expect: bytes | None = None) -> bytes:
        connection = await transport.connect(host, port, self.key, expect)
        await self._adopt(connection)
        return connection.peer_id

    async def _adopt(self, connection: transport.Connection) -> None:
        peer = connection.peer_id
        if peer in self.peers or self.scores.get(peer, START_SCORE) <= 0:
            await connection.close()  # one connection per peer; banned peers stay out
            return
        self.peers[peer] = connection
        self.scores.setdefault(peer, START_SCORE)
        task = asyncio.create_task(self._read(peer, connection))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for connection in list(self.peers.values()):
            await connection.close()
        self.peers.clear()

    # --- messages --------------------------------------------------------------------------
    def _first_time(self, frame: bytes) -> bool:
        message_id = crypto.tagged_hash(b"GridTokenX/gossip", frame)
        if message_id in self._seen:
            return False
        self._seen[message_id] = None
        if len(self._seen) > SEEN_CACHE:
            self._seen.popitem(last=False)
        return True

    async def publish(self, kind: Kind, payload: bytes) -> None:
        """Send a message of our own to every peer."""
        if len(payload) > LIMITS[kind]:
            raise ValueError(f"{kind.name} of {len(payload)} bytes exceeds {LIMITS[kind]}")
        frame = codec.encode(_Envelope(int(kind), payload))
        self._first_time(frame)
        await self._forward(frame, exclude=None)

    async def send_to(self, peer: bytes, kind: Kind, payload: bytes) -> None:
        """A direct message to one peer (sync), outside the flood."""
        connection = self.peers.get(peer)
        if connection is None:
            return
        try:
            await connection.send(codec.encode(_Envelope(int(kind), payload)))
            await connection.flush()
        except (ConnectionError, OSError):
            await self._drop(peer)

    async def rebroadcast(self, kind: Kind, payload: bytes) -> None:
        """Send one of our messages to every peer again (peers that saw it drop it; a peer
        that restarted or was cut off gets it now)."""
        await self._forward(codec.encode(_Envelope(int(kind), payload)), exclude=None)

    async def _forward(self, frame: bytes, exclude: bytes | None) -> None:
        for peer, connection in list(self.peers.items()):
            if peer == exclude:
                continue
            try:
                await connection.send(frame)
                await connection.flush()
            except (ConnectionError, OSError):
                await self._drop(peer)

    async def _read(self, peer: bytes, connection: transport.Connection) -> None:
        try:
            while self.peers.get(peer) is connection:
                frame = await connection.receive()
                await self._on_frame(peer, frame)
        except (transport.FrameError, ConnectionError, OSError):
            pass
        finally:
            if self.peers.get(peer) is connection:
                await self._drop(peer)

    async def _on_frame(self, peer: bytes, frame: bytes) -> None:
        try:
            envelope = _decoder.decode(frame)
            kind = Kind(envelope.kind)
        except (msgspec.DecodeError, ValueError):
            await self._penalise(peer)
            return
        if len(envelope.payload) > LIMITS[kind]:
            await self._penalise(peer)
            return
        direct = kind in DIRECT
        if not direct and not self._first_time(frame):
            return
        if not await self.handler(kind, envelope.payload, peer):
            await self._penalise(peer)
            return
        if not direct:
            await self._forward(frame, exclude=peer)

    async def penalise(self, peer: bytes) -> None:
        """The handler found a peer's message invalid after the fact (batched checks)."""
        await self._penalise(peer)

    async def _penalise(self, peer: bytes) -> None:
        self.scores[peer] = self.scores.get(peer, START_SCORE) - PENALTY
        if self.scores[peer] <= 0:
            await self._drop(peer)

    async def _drop(self, peer: bytes) -> None:
        connection = self.peers.pop(peer, None)
        if connection is not None:
            await connection.close()
