"""Gossip over the encrypted transport: every message reaches every connected node once.

A message is `[kind, payload]`. A node hands each new message to its handler and, when the
handler says it is valid (`Outcome.RELAY`), forwards it to every other peer; a cache of
recently seen message ids (a tagged hash of the frame) stops the flood from looping. Each
kind has its own size limit. A peer that sends a frame that does not decode, breaks a
limit, or that the handler rejects as invalid, loses score; at zero it is disconnected and
banned, so a faulty or hostile peer cannot keep a node busy. A message the handler finds
forged (a consensus message whose signature or signer is wrong: no honest node relays one)
bans its sender at once, and is never forwarded.

Nothing here waits for a peer. Each connection is a `connection.Peer` with bounded send
lanes and a writer task of its own, so `publish`, `send_to`, `rebroadcast` and the
forwarding of a flood are plain calls that queue and return: a peer that stops reading can
fill only its own queues, and is dropped at its deadlines. Connections are refused before
trust is established when they would exceed the caps of `PeerSettings` (handshakes in
progress, connections per remote IP, peers in all; `reserved` peers, the validators and
configured peers, are always let in).

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
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from enum import Enum, IntEnum
from typing import Final

import msgspec

from gridtokenx.p2p import discovery, transport
from gridtokenx.p2p.connection import Peer, PeerSettings, PeerStats
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
    PING = 10  # keepalive, empty: answered by the connection itself (connection.PING)
    PONG = 11  # the answer, empty (connection.PONG)


DISCOVERY: Final = frozenset({Kind.HELLO, Kind.PEERS_REQUEST, Kind.PEERS})
DIRECT: Final = frozenset({Kind.SYNC_REQUEST, Kind.SYNC_BLOCK, Kind.TX}) | DISCOVERY
"""Not flooded by gossip: sync and discovery messages go to one peer, and transaction
batches are relayed by the node itself after admission (a node relays only what its own
mempool accepted)."""
CONTROL: Final = frozenset({Kind.PING, Kind.PONG})
"""Handled by `connection.Peer` as exact frames; one that reaches gossip is malformed."""

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
    Kind.PING: Lane.REQUESTS,
    Kind.PONG: Lane.REQUESTS,
}
"""The rate-limit budget an inbound frame draws on."""
SEND_LANES: Final = {
    **LANES,
    # A sync answer may be large and is asked again when lost: it must not cost the
    # connection when the lane is full, as a consensus message would.
    Kind.SYNC_BLOCK: Lane.REQUESTS,
}
"""The send queue an outbound frame waits in (`connection.Peer`)."""


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
    Kind.PING: 0,
    Kind.PONG: 0,
}
START_SCORE: Final = 10
PENALTY: Final = 5  # two strikes and out
SEEN_CACHE: Final = 100_000
ASK_EVERY_S: Final = 30.0  # while short of peers, ask each peer for addresses this often
DIALS_PER_STEP: Final = 4  # one `maintain` step is bounded
_log: Final = logging.getLogger(__name__)


class Outcome(Enum):
    """What the handler made of a message (a handler may also answer True for RELAY and
    False for INVALID)."""

    RELAY = "relay"  # valid: taken, and flooded on (a direct kind is only taken)
    IGNORE = "ignore"  # not for now (another height): not flooded, and a later copy is
    #                    looked at again rather than dropped as seen
    INVALID = "invalid"  # malformed or wrong: the sender loses score
    FORGED = "forged"  # a signature or signer no honest node would relay: banned at once


Handler = Callable[[Kind, bytes, bytes], Awaitable[bool | Outcome]]
"""(kind, payload, peer id) -> what the payload was (False costs the peer score)."""


class _Envelope(msgspec.Struct, array_like=True, frozen=True):
    kind: int
    payload: bytes


_decoder: Final = msgspec.msgpack.Decoder(_Envelope)


def _outcome(answer: bool | Outcome) -> Outcome:
    if isinstance(answer, Outcome):
        return answer
    return Outcome.RELAY if answer else Outcome.INVALID


class Gossip:
    """`address_book` turns peer exchange on (without one the node neither announces nor
    asks, and answers requests with an empty list); `limits` are the per-peer budgets;
    `settings` the connections' caps, queues and deadlines; `clock` (seconds) drives the
    budgets and the dial backoff, so tests need not sleep. `reserved(peer)` names peers let
    in beyond `max_peers` (the node's validators and configured peers); `on_connect(peer)`
    is told of each new connection (the node re-announces its pending transactions)."""

    def __init__(
        self,
        key: crypto.PrivateKey,
        handler: Handler,
        *,
        address_book: AddressBook | None = None,
        limits: Limits | None = None,
        settings: PeerSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self.handler = handler
        self.book = address_book
        self.clock = clock
        self.settings = settings or PeerSettings()
        self.limiter = RateLimiter(limits or Limits())
        self.peers: dict[bytes, Peer] = {}
        self.scores: dict[bytes, int] = {}
        self.throttled: Counter[bytes] = Counter()  # frames dropped over budget, per peer
        self.stats = PeerStats()
        self.gate = transport.Gate(self.settings.max_handshakes, self.settings.max_per_ip)
        self.reserved: Callable[[bytes], bool] = lambda peer: False
        self.on_connect: Callable[[bytes], None] | None = None
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._hello: bytes | None = None  # our announcement, once we listen
        self._greeted: set[bytes] = set()  # peers whose HELLO we took on this connection
        self._awaiting: set[bytes] = set()  # peers we asked for addresses, answer pending
        self._asked_at: dict[bytes, float] = {}

    # --- connections -----------------------------------------------------------------------
    async def listen(self, host: str = "127.0.0.1", port: int = 0, external_host: str = "") -> int:
        """Accept peers on `host`; HELLO announces `external_host` (the address a NAT or a
        wildcard bind hides) when given, else `host`."""
        self._server = await transport.serve(
            host, port, self.key, self._accept, gate=self.gate,
            timeout=self.settings.handshake_timeout_s,
        )  # fmt: skip
        bound = int(self._server.sockets[0].getsockname()[1])
        self._hello = discovery.announcement(external_host or host, bound)
        return bound

    async def dial(self, host: str, port: int, expect: bytes | None = None) -> bytes:
        """Connect to a peer; raises OSError (refused, unreachable, a failed or late
        handshake: `transport.HandshakeError` is one), nothing else."""
        connection = await transport.connect(
            host, port, self.key, expect, timeout=self.settings.handshake_timeout_s
        )
        dialled: Address | None = Address(connection.peer_id, host, port)
        if dialled is not None and problem(dialled) is not None:
            dialled = None
        self._adopt(connection, outbound=True, dialled=dialled)
        return connection.peer_id

    def banned(self, peer: bytes) -> bool:
        return self.scores.get(peer, START_SCORE) <= 0 or (
            self.book is not None and self.book.is_banned(peer)
        )

    async def _accept(self, connection: transport.Connection) -> None:
        self._adopt(connection)

    def _adopt(
        self,
        connection: transport.Connection,
        outbound: bool = False,
        dialled: Address | None = None,
    ) -> bool:
        """Take an authenticated connection as the peer's one connection, or refuse it."""
        peer = connection.peer_id
        existing = self.peers.get(peer)
        if peer == self.key.address or self.banned(peer):
            refusal: str | None = "banned"  # banned peers stay out
        elif existing is not None and outbound != (self.key.address < peer):
            # One connection per peer. When two nodes dial each other at once, "first
            # wins" can make each keep its own and close the other's, leaving none: both
            # keep the one the smaller address dialled instead.
            refusal = "duplicate"
        elif (existing is None and not outbound and len(self.peers) >= self.settings.max_peers
              and not self.reserved(peer)):  # fmt: skip
            refusal = "max_peers"
        else:
            refusal = None
        if refusal is not None:
            self.gate.refused[refusal] += 1
            connection.abort()
            return False
        self._start(Peer(connection, self._on_frame, self._closed, self.settings, self.stats,
                         outbound))  # fmt: skip
        if existing is not None:
            existing.close("replaced")
        else:
            _log.info("peer connected", extra={
                "peer": peer.hex(), "direction": "outbound" if outbound else "inbound",
                "host": connection.remote_host, "peers": len(self.peers)})  # fmt: skip
        self.scores.setdefault(peer, START_SCORE)
        if self.book is not None:
            if dialled is not None:  # it answered where we dialled: a verified address
                self.book.add(dialled, verified=True)
                self.book.succeeded(peer)
            if self._hello is not None:
                self.send_to(peer, Kind.HELLO, self._hello)
            self._ask(peer)
        if self.on_connect is not None:
            try:
                self.on_connect(peer)
            except Exception:
                _log.exception("the new-peer callback failed")
        return True

    def _start(self, peer: Peer) -> None:
        self._greeted.discard(peer.id)  # it may announce itself anew on this connection
        self.peers[peer.id] = peer
        if not peer.outbound:
            self.gate.established[peer.remote_host] += 1
        peer.start()
        for task in peer.tasks:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _closed(self, peer: Peer, reason: str) -> None:
        """A connection ended (told by the peer itself, whoever closed it)."""
        if not peer.outbound:
            self.gate.established[peer.remote_host] -= 1
            if self.gate.established[peer.remote_host] <= 0:
                del self.gate.established[peer.remote_host]
        if self.peers.get(peer.id) is not peer:
            return  # a replaced connection: the new one keeps the peer's state
        del self.peers[peer.id]
        _log.log(logging.DEBUG if reason == "shutdown" else logging.INFO, "peer disconnected",
                 extra={"peer": peer.id.hex(), "direction": "outbound" if peer.outbound
                        else "inbound", "reason": reason, "peers": len(self.peers)})  # fmt: skip
        self.limiter.forget(peer.id)
        self._greeted.discard(peer.id)
        self._awaiting.discard(peer.id)
        self._asked_at.pop(peer.id, None)

    def _ask(self, peer: bytes) -> None:
        self._awaiting.add(peer)
        self._asked_at[peer] = self.clock()
        self.send_to(peer, Kind.PEERS_REQUEST, b"")

    async def maintain(self, target_peers: int) -> int:
        """One step towards `target_peers` connections, for the node's housekeeping loop:
        ask connected peers for addresses again (at most every ASK_EVERY_S), then dial up to
        DIALS_PER_STEP addresses from the book whose backoff has passed, all at once. A
        failed dial backs its address off, so calling this often never hammers a dead
        address. Returns the number of dials tried."""
        if self.book is None or len(self.peers) >= target_peers:
            return 0
        now = self.clock()
        for peer in list(self.peers):
            if peer not in self._awaiting and now - self._asked_at.get(peer, -math.inf) >= (
                ASK_EVERY_S
            ):
                self._ask(peer)
        due = self.book.due(now, exclude=self.peers.keys() | {self.key.address})
        chosen = due[: min(DIALS_PER_STEP, max(0, target_peers - len(self.peers)))]
        results = await asyncio.gather(
            *(self.dial(a.host, a.port, expect=a.peer) for a in chosen), return_exceptions=True
        )
        for address, result in zip(chosen, results, strict=True):
            if isinstance(result, OSError):
                self.book.failed(address.peer, self.clock())
            elif isinstance(result, BaseException):
                raise result
        if self.book.dirty:
            self.book.save()
        return len(chosen)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(*transport.CLOSED_ERRORS):
                await self._server.wait_closed()
        for peer in list(self.peers.values()):
            peer.close("shutdown")
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.book is not None and self.book.dirty:
            self.book.save()

    def queued(self) -> dict[Lane, tuple[int, int]]:
        """Frames and bytes waiting in every peer's send queues, per lane."""
        total = {lane: (0, 0) for lane in Lane}
        for peer in self.peers.values():
            for lane, (frames, size) in peer.queued().items():
                total[lane] = (total[lane][0] + frames, total[lane][1] + size)
        return total

    # --- messages --------------------------------------------------------------------------
    def _message_id(self, frame: bytes) -> bytes:
        return crypto.tagged_hash(b"GridTokenX/gossip", frame)

    def _first_time(self, frame: bytes) -> bool:
        message_id = self._message_id(frame)
        if message_id in self._seen:
            return False
        self._seen[message_id] = None
        if len(self._seen) > SEEN_CACHE:
            self._seen.popitem(last=False)
        return True

    def publish(self, kind: Kind, payload: bytes) -> None:
        """Queue a message of our own for every peer; returns at once."""
        if len(payload) > LIMITS[kind]:
            raise ValueError(f"{kind.name} of {len(payload)} bytes exceeds {LIMITS[kind]}")
        frame = codec.encode(_Envelope(int(kind), payload))
        self._first_time(frame)
        self._forward(frame, exclude=None, lane=SEND_LANES[kind])

    def send_to(self, peer: bytes, kind: Kind, payload: bytes) -> bool:
        """Queue a direct message for one peer (sync, discovery), outside the flood;
        returns at once, False when the peer is not connected."""
        connection = self.peers.get(peer)
        if connection is None:
            return False
        return connection.send(SEND_LANES[kind], codec.encode(_Envelope(int(kind), payload)))

    def rebroadcast(self, kind: Kind, payload: bytes) -> None:
        """Queue one of our messages for every peer again (peers that saw it drop it; a
        peer that restarted or was cut off gets it now)."""
        self._forward(codec.encode(_Envelope(int(kind), payload)), None, SEND_LANES[kind])

    def _forward(self, frame: bytes, exclude: bytes | None, lane: Lane) -> None:
        for peer, connection in list(self.peers.items()):
            if peer != exclude:
                connection.send(lane, frame)

    async def _on_frame(self, connection: Peer, frame: bytes) -> None:
        """One frame from a peer (its reader task awaits this)."""
        peer = connection.id
        if self.peers.get(peer) is not connection:
            return  # replaced or dropped meanwhile
        try:
            envelope = _decoder.decode(frame)
            kind = Kind(envelope.kind)
        except (msgspec.DecodeError, ValueError):
            self.stats.discarded["unknown", "malformed"] += 1
            self.penalise(peer)
            return
        lane = LANES[kind].name.lower()
        self.stats.received[lane] += len(frame)
        if len(envelope.payload) > LIMITS[kind] or kind in CONTROL:
            self.stats.discarded[lane, "malformed"] += 1
            self.penalise(peer)
            return
        # Before the seen cache: a frame dropped here may still arrive through a peer
        # within its budget.
        verdict = self.limiter.take(peer, LANES[kind], self.clock())
        if verdict is not Verdict.ADMIT:
            self.throttled[peer] += 1
            self.stats.discarded[lane, "rate_limited"] += 1
            if verdict is Verdict.PENALISE:
                self.penalise(peer)
            return
        if kind in DISCOVERY:
            if not self._exchange(kind, envelope.payload, connection):
                self.penalise(peer)
            return
        direct = kind in DIRECT
        if not direct and not self._first_time(frame):
            return
        outcome = _outcome(await self.handler(kind, envelope.payload, peer))
        if outcome is Outcome.RELAY and not direct:
            self._forward(frame, exclude=peer, lane=SEND_LANES[kind])
        elif outcome is Outcome.IGNORE and not direct:
            self._seen.pop(self._message_id(frame), None)
        elif outcome is Outcome.INVALID:
            self.penalise(peer)
        elif outcome is Outcome.FORGED:
            self.ban(peer, "forged")

    def penalise(self, peer: bytes) -> None:
        """The peer sent something invalid (also for the handler's after-the-fact, batched
        checks): it loses score, and at zero it is disconnected and banned."""
        self.scores[peer] = self.scores.get(peer, START_SCORE) - PENALTY
        if self.scores[peer] <= 0:
            self.ban(peer)

    def ban(self, peer: bytes, reason: str = "score") -> None:
        """Disconnect `peer` and refuse it from now on (across restarts, with a book);
        `reason` is for the log: "score" (too many invalid messages) or "forged"."""
        self.scores[peer] = min(0, self.scores.get(peer, 0))
        if self.book is not None:
            self.book.ban(peer)
        connection = self.peers.get(peer)
        if connection is not None and connection.closed is None:
            _log.warning("peer banned", extra={"peer": peer.hex(), "reason": reason,
                                               "host": connection.remote_host})  # fmt: skip
            connection.close("banned")

    def _exchange(self, kind: Kind, payload: bytes, connection: Peer) -> bool:
        """Peer exchange, handled here rather than by the node; False for a malformed one."""
        peer = connection.id
        if kind is Kind.PEERS_REQUEST:
            if payload:
                return False
            known = [] if self.book is None else self.book.sample(discovery.MAX_ANSWER, {peer})
            self.send_to(peer, Kind.PEERS, discovery.encode_answer(known))
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
