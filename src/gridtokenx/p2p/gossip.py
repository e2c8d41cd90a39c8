"""Gossip over the encrypted transport: every message reaches every connected node once.

A message is `[kind, payload]`. A node hands each new message to its handler and forwards
it to every other peer; a cache of recently seen message ids (a tagged hash of the frame)
stops the flood from looping. Each kind has its own size limit. A peer that sends a frame
that does not decode, breaks a limit, or that the handler rejects as invalid, loses score;
at zero it is disconnected and banned, so a faulty or hostile peer cannot keep a node busy.

Two things keep a node connected and unbothered beyond that. Per-peer rate limits
(`ratelimit`) drop, count in `throttled` and finally penalise a peer that sends more than its
budget; only what peers send is limited, never what this node publishes. Peer exchange
(`discovery`, `peers`), on when the node is given an `AddressBook`: each side of a new
connection announces its listen port and asks for the addresses its peer knows, and
`maintain` dials addresses from the book until the node has as many peers as it wants.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import Final

import msgspec

from gridtokenx.p2p import discovery, transport
from gridtokenx.p2p.peers import Address, AddressBook, problem
from gridtokenx.p2p.ratelimit import Lane, Limits, RateLimiter, Verdict
from gridtokenx.wire import codec, crypto


class Kind(IntEnum):
    TX = 1
    PROPOSAL = 2
    VOTE = 3
    COMMIT = 4
    SYNC_REQUEST = 5  # direct: "send me height h", never forwarded
    SYNC_BLOCK = 6  # direct: a certified block in answer, never forwarded
    HELLO = 7  # direct: "I listen on this port", once per connection
    PEERS_REQUEST = 8  # direct: "which addresses do you know?" (empty payload)
    PEERS = 9  # direct: up to discovery.MAX_ANSWER addresses in answer


DISCOVERY: Final = frozenset({Kind.HELLO, Kind.PEERS_REQUEST, Kind.PEERS})
DIRECT: Final = frozenset({Kind.SYNC_REQUEST, Kind.SYNC_BLOCK, Kind.TX}) | DISCOVERY
"""Not flooded by gossip: sync and discovery messages go to one peer, and transaction
batches are relayed by the node itself after admission (a node relays only what its own
mempool accepted)."""

LANES: Final = {
    Kind.TX: Lane.TX,
    Kind.PROPOSAL: Lane.CONSENSUS,
    Kind.VOTE: Lane.CONSENSUS,
    Kind.COMMIT: Lane.CONSENSUS,
    Kind.SYNC_BLOCK: Lane.CONSENSUS,  # an answer we asked for, as good as a commit
    Kind.SYNC_REQUEST: Lane.REQUESTS,
    Kind.HELLO: Lane.REQUESTS,
    Kind.PEERS_REQUEST: Lane.REQUESTS,
    Kind.PEERS: Lane.REQUESTS,
}


LIMITS: Final = {
    Kind.TX: 4 * 1024 * 1024,  # a batch of up to 2,048 transactions
    Kind.PROPOSAL: 4 * 1024 * 1024,
    Kind.VOTE: 1024,
    Kind.COMMIT: 4 * 1024 * 1024 + 64 * 1024,
    Kind.SYNC_REQUEST: 16,
    Kind.SYNC_BLOCK: 4 * 1024 * 1024 + 64 * 1024,
    Kind.HELLO: 64,
    Kind.PEERS_REQUEST: 0,
    Kind.PEERS: 4 * 1024,  # 32 addresses of at most about 75 bytes each
}
START_SCORE: Final = 10
PENALTY: Final = 5  # two strikes and out
SEEN_CACHE: Final = 100_000
ASK_EVERY_S: Final = 30.0  # while short of peers, ask each peer for addresses this often
DIAL_TIMEOUT_S: Final = 3.0
DIALS_PER_STEP: Final = 4  # one `maintain` step is bounded

Handler = Callable[[Kind, bytes, bytes], Awaitable[bool]]
"""(kind, payload, peer id) -> whether the payload was valid (False costs the peer score)."""


class _Envelope(msgspec.Struct, array_like=True, frozen=True):
    kind: int
    payload: bytes


_decoder: Final = msgspec.msgpack.Decoder(_Envelope)


class Gossip:
    """`address_book` turns peer exchange on (without one the node neither announces nor
    asks, and answers requests with an empty list); `limits` are the per-peer budgets;
    `clock` (seconds) drives the budgets and the dial backoff, so tests need not sleep."""

    def __init__(
        self,
        key: crypto.PrivateKey,
        handler: Handler,
        *,
        address_book: AddressBook | None = None,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self.handler = handler
        self.book = address_book
        self.clock = clock
        self.limiter = RateLimiter(limits or Limits())
        self.peers: dict[bytes, transport.Connection] = {}
        self.scores: dict[bytes, int] = {}
        self.throttled: Counter[bytes] = Counter()  # frames dropped over budget, per peer
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._hello: bytes | None = None  # our announcement, once we listen
        self._greeted: set[bytes] = set()  # peers whose HELLO we took on this connection
        self._awaiting: set[bytes] = set()  # peers we asked for addresses, answer pending
        self._asked_at: dict[bytes, float] = {}

    # --- connections -----------------------------------------------------------------------
    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await transport.serve(host, port, self.key, self._adopt)
        bound = int(self._server.sockets[0].getsockname()[1])
        self._hello = discovery.announcement(host, bound)
        return bound

    async def dial(self, host: str, port: int, expect: bytes | None = None) -> bytes:
        connection = await asyncio.wait_for(
            transport.connect(host, port, self.key, expect), DIAL_TIMEOUT_S
        )
        dialled = Address(connection.peer_id, host, port)
        await self._adopt(
            connection, outbound=True, dialled=dialled if problem(dialled) is None else None
        )
        return connection.peer_id

    def banned(self, peer: bytes) -> bool:
        return self.scores.get(peer, START_SCORE) <= 0 or (
            self.book is not None and self.book.is_banned(peer)
        )

    async def _adopt(
        self,
        connection: transport.Connection,
        outbound: bool = False,
        dialled: Address | None = None,
    ) -> None:
        peer = connection.peer_id
        if peer == self.key.address or self.banned(peer):
            await connection.close()  # banned peers stay out
            return
        existing = self.peers.get(peer)
        if existing is not None:
            # One connection per peer. When two nodes dial each other at once, "first
            # wins" can make each keep its own and close the other's, leaving none: both
            # keep the one the smaller address dialled instead.
            if outbound != (self.key.address < peer):
                await connection.close()
                return
            self._greeted.discard(peer)  # it may announce itself anew
        self.peers[peer] = connection
        if existing is not None:
            await existing.close()  # its reader sees it was replaced and ends quietly
        self.scores.setdefault(peer, START_SCORE)
        task = asyncio.create_task(self._read(peer, connection))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if self.book is not None:
            if dialled is not None:  # it answered where we dialled: a verified address
                self.book.add(dialled, verified=True)
                self.book.succeeded(peer)
            if self._hello is not None:
                await self.send_to(peer, Kind.HELLO, self._hello)
            await self._ask(peer)

    async def _ask(self, peer: bytes) -> None:
        self._awaiting.add(peer)
        self._asked_at[peer] = self.clock()
        await self.send_to(peer, Kind.PEERS_REQUEST, b"")

    async def maintain(self, target_peers: int) -> int:
        """One step towards `target_peers` connections, for the node's housekeeping loop:
        ask connected peers for addresses again (at most every ASK_EVERY_S), then dial up to
        DIALS_PER_STEP addresses from the book whose backoff has passed. A failed dial backs
        its address off, so calling this often never hammers a dead address. Returns the
        number of dials tried."""
        if self.book is None or len(self.peers) >= target_peers:
            return 0
        now = self.clock()
        for peer in list(self.peers):
            if peer not in self._awaiting and now - self._asked_at.get(peer, -math.inf) >= (
                ASK_EVERY_S
            ):
                await self._ask(peer)
        dials = 0
        for address in self.book.due(now, exclude=self.peers.keys() | {self.key.address}):
            if len(self.peers) >= target_peers or dials >= DIALS_PER_STEP:
                break
            dials += 1
            try:
                await self.dial(address.host, address.port, expect=address.peer)
            except (OSError, ConnectionError, TimeoutError, EOFError):
                self.book.failed(address.peer, self.clock())
        if self.book.dirty:
            self.book.save()
        return dials

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
        if self.book is not None and self.book.dirty:
            self.book.save()

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
        """Frames of one connection until it ends or another replaces it."""
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
        # Before the seen cache: a frame dropped here may still arrive through a peer
        # within its budget.
        verdict = self.limiter.take(peer, LANES[kind], self.clock())
        if verdict is not Verdict.ADMIT:
            self.throttled[peer] += 1
            if verdict is Verdict.PENALISE:
                await self._penalise(peer)
            return
        if kind in DISCOVERY:
            if not await self._exchange(kind, envelope.payload, peer):
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

    async def _exchange(self, kind: Kind, payload: bytes, peer: bytes) -> bool:
        """Peer exchange, handled here rather than by the node; False for a malformed one."""
        connection = self.peers.get(peer)
        if connection is None:
            return True
        if kind is Kind.PEERS_REQUEST:
            if payload:
                return False
            known = [] if self.book is None else self.book.sample(discovery.MAX_ANSWER, {peer})
            await self.send_to(peer, Kind.PEERS, discovery.encode_answer(known))
            return True
        try:
            if kind is Kind.HELLO:
                addresses = [discovery.announced(peer, connection.remote_host, payload)]
            else:
                addresses = discovery.decode_answer(payload, connection.remote_host)
        except ValueError:
            return False
        if self.book is None:
            return True
        if kind is Kind.HELLO:
            if peer not in self._greeted:  # later HELLOs on the same connection are ignored
                self._greeted.add(peer)
                self.book.add(addresses[0], verified=True)
        elif peer in self._awaiting:  # an answer nobody asked for is ignored
            self._awaiting.discard(peer)
            for address in addresses:
                if address.peer != self.key.address:
                    self.book.add(address)
        return True

    async def _penalise(self, peer: bytes) -> None:
        self.scores[peer] = self.scores.get(peer, START_SCORE) - PENALTY
        if self.scores[peer] <= 0:
            if self.book is not None:
                self.book.ban(peer)
            await self._drop(peer)

    async def _drop(self, peer: bytes) -> None:
        connection = self.peers.pop(peer, None)
        self.limiter.forget(peer)
        self._greeted.discard(peer)
        self._awaiting.discard(peer)
        self._asked_at.pop(peer, None)
        if connection is not None:
            await connection.close()
