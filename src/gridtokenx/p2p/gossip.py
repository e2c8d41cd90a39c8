"""Gossip over the encrypted transport: every message reaches every node that takes its
topic, over a mesh of bounded degree per topic (`p2p.mesh`, gossipsub v1.1's way).

A message is `[kind, payload]`, its id the tagged hash of the frame, its topic given by its
kind (`TOPICS`). A node hands each new message to its handler and, when the handler says
it is valid (`Outcome.RELAY`), forwards it to its mesh peers of the topic (about `d`, not
every peer); peers outside the mesh learn its id lazily (IHAVE) and ask for it if their
own mesh missed it (IWANT). The mesh's seen cache stops a message from looping. The mesh
speaks through one control kind (`Kind.MESH`: subscriptions, grafts, prunes and the lazy
announcements), with a size limit and a rate-limit lane of its own, and its heartbeat
(`heartbeat`) runs on the node's clock. With fewer peers than a mesh's low watermark
every peer is in every mesh, so a small network spreads messages as a flood did. Each
kind has its own size limit. A peer that sends a frame that does not decode, breaks a
limit, or that the handler rejects as invalid, loses score; at zero it is disconnected and
banned, so a faulty or hostile peer cannot keep a node busy. A message the handler finds
forged (a consensus message whose signature or signer is wrong: no honest node relays one)
bans its sender at once, and is never forwarded.

Nothing here waits for a peer. Each connection is a `connection.Peer` with bounded send
lanes and a writer task of its own, so `publish`, `send_to`, `rebroadcast` and the
forwarding of a message are plain calls that queue and return: a peer that stops reading can
fill only its own queues, and is dropped at its deadlines.

Peers come in the categories CometBFT operators know, all set in `PeerSettings`:

- **Caps by direction.** Connections are refused before trust is established beyond the
  handshakes in progress and the connections per remote IP (`transport.Gate`), and once the
  peer is known, inbound ones beyond `max_inbound` or `max_peers` in all (refusals counted
  by reason in `gate.refused`). `maintain` dials learnt addresses only while the node has
  fewer than `max_outbound` outbound peers (and `max_peers` in all).
- **Persistent peers** are the node's configured peers: the node dials them itself, with a
  backoff and never giving up (`node.service`), whatever the caps.
- **Unconditional peers** (`unconditional_peer_ids`, and whatever `reserved(peer)` names:
  the node's validators and configured peers) neither need room under a cap nor take any.
  They are the mesh's direct peers (`Mesh.connect(direct=True)`), and running over their
  rate budget drops their excess without costing them score.
- **Private peers** (`private_peer_ids`: a sentry's validator) are never kept in the
  address book nor put in a PEERS answer, so their addresses are never gossiped.
- **`pex` off** (a validator behind sentries): the node announces no address, asks for
  none, answers every request with an empty list and dials only what it is told to.

Two more things keep a node connected and unbothered. Per-peer rate limits
(`ratelimit`) drop, count in `throttled` and finally penalise a peer that sends more than its
budget; only what peers send is limited, never what this node publishes. Peer exchange
(`discovery`, `peers`), on when the node is given an `AddressBook`: each side of a new
connection announces where it can be dialled and asks for the addresses its peer knows, and
`maintain` dials addresses from the book until the node has as many peers as it wants. A
host a peer claims other than the one its connection comes from is believed only once a
probe (a handshake under a throwaway key) finds the peer's key there (`discovery`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import random
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from enum import Enum, IntEnum
from typing import Final

import msgspec

from gridtokenx.p2p import discovery, mesh_frames, transport
from gridtokenx.p2p.connection import Peer, PeerSettings, PeerStats
from gridtokenx.p2p.mesh import Frame, Mesh, Params, Publish, Topic, Validation
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
    SNAPSHOTS_REQUEST = 12  # direct: "which state snapshots do you serve?" (empty payload)
    SNAPSHOT_OFFER = 13  # direct: one snapshot's height, certified block and chunk ranges
    CHUNK_REQUEST = 14  # direct: "send me chunk i of the snapshot at height h"
    CHUNK = 15  # direct: a snapshot chunk with its proof, in answer
    MESH = 16  # the mesh's control frames (`p2p.mesh_frames`), never forwarded
    GRID = 17  # a batch of grid-status and emergency transactions (`tx.is_priority`)
    TXS_REQUEST = 18  # direct: "send me these transactions" (ids a compact block named)
    TXS = 19  # direct: the transactions asked for, in order (empty: cannot supply them all)


STATE_SYNC: Final = frozenset(
    {Kind.SNAPSHOTS_REQUEST, Kind.SNAPSHOT_OFFER, Kind.CHUNK_REQUEST, Kind.CHUNK}
)
"""State sync (`node.state_sync`): requests and answers between two peers, never gossiped."""


DISCOVERY: Final = frozenset({Kind.HELLO, Kind.PEERS_REQUEST, Kind.PEERS})
TOPICS: Final = {
    Kind.TX: Topic.TRANSACTIONS,
    Kind.PROPOSAL: Topic.CONSENSUS,
    Kind.VOTE: Topic.CONSENSUS,
    Kind.COMMIT: Topic.BLOCKS,
    Kind.GRID: Topic.GRID,
}
"""The kinds spread over the mesh, and their topics. Everything else goes to one peer
(sync, discovery, state sync). Transaction batches are not forwarded as they are taken
but once the node's mempool admitted them: a batch admitted whole goes on as it came
(`forward`), else the node relays (`relay`) what it admitted. Grid updates travel as a
batch kind of their own on the grid topic, first in every send queue (`Lane.GRID`)."""
NOT_FORWARDED: Final = frozenset({Kind.TX, Kind.GRID})
COMPACT_FETCH: Final = frozenset({Kind.TXS_REQUEST, Kind.TXS})
"""Compact blocks (`node.compact_blocks`): a node asks one peer for the transactions a
compact proposal or certified block named that it does not hold (direct, never spread)."""
CONTROL: Final = frozenset({Kind.PING, Kind.PONG})
"""Handled by `connection.Peer` as exact frames; one that reaches gossip is malformed."""
TOPIC_LANES: Final = {
    Topic.TRANSACTIONS: Lane.TX,
    Topic.CONSENSUS: Lane.CONSENSUS,
    Topic.BLOCKS: Lane.CONSENSUS,
    Topic.GRID: Lane.GRID,
}
"""The send lane of a full message of each topic (`connection.SERVE_ORDER` follows
`mesh.PRIORITY`)."""

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
    # State sync: a node serves snapshots from its requests budget, and a joining node
    # takes offers and chunks from the same lane (it asked for each one).
    Kind.SNAPSHOTS_REQUEST: Lane.REQUESTS,
    Kind.SNAPSHOT_OFFER: Lane.REQUESTS,
    Kind.CHUNK_REQUEST: Lane.REQUESTS,
    Kind.CHUNK: Lane.REQUESTS,
    Kind.MESH: Lane.CONTROL,
    Kind.GRID: Lane.GRID,
    Kind.TXS_REQUEST: Lane.REQUESTS,
    Kind.TXS: Lane.CONSENSUS,  # an answer we asked for, on a proposal's way
}
"""The rate-limit budget an inbound frame draws on."""
SEND_LANES: Final = {
    **LANES,
    # A sync answer may be large and is asked again when lost: it must not cost the
    # connection when the lane is full, as a consensus message would.
    Kind.SYNC_BLOCK: Lane.REQUESTS,
    Kind.TXS: Lane.REQUESTS,  # likewise: large, and asked of another peer when lost
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
    Kind.SNAPSHOTS_REQUEST: 0,
    Kind.SNAPSHOT_OFFER: 4 * 1024 * 1024 + 64 * 1024,  # a block, its certificate, ranges
    Kind.CHUNK_REQUEST: 32,
    Kind.CHUNK: 4 * 1024 * 1024,  # 1 MiB of records and a proof; one big bucket at most
    Kind.MESH: mesh_frames.MAX_BYTES,  # a full IHAVE
    Kind.GRID: 256 * 1024,  # grid operators' reports: a few hundred bytes each
    Kind.TXS_REQUEST: 10_000 * 34 + 16,  # ids of a whole block (`blocks.MAX_BLOCK_TXS`)
    Kind.TXS: 4 * 1024 * 1024,  # a whole block's transactions at most
}
START_SCORE: Final = 10
PENALTY: Final = 5  # two strikes and out
ASK_EVERY_S: Final = 30.0  # while short of peers, ask each peer for addresses this often
DIALS_PER_STEP: Final = 4  # one `maintain` step is bounded
MAX_PROBES: Final = 8  # claimed addresses being verified at once; later claims wait a reconnect
_log: Final = logging.getLogger(__name__)


class Outcome(Enum):
    """What the handler made of a message (a handler may also answer True for RELAY and
    False for INVALID)."""

    RELAY = "relay"  # valid: taken, and forwarded to the mesh (a direct kind is only taken)
    IGNORE = "ignore"  # not for now (another height): not forwarded, and a later copy is
    #                    looked at again rather than dropped as seen
    INVALID = "invalid"  # malformed or wrong: the sender loses score
    FORGED = "forged"  # a signature or signer no honest node would relay: banned at once


_VALIDATION: Final = {Outcome.RELAY: Validation.VALID, Outcome.IGNORE: Validation.IGNORE}
"""The mesh's verdict for a handler's outcome (INVALID and FORGED: Validation.INVALID)."""


Handler = Callable[[Kind, bytes, bytes], Awaitable[bool | Outcome]]
"""(kind, payload, peer id) -> what the payload was (False costs the peer score)."""


class _Envelope(msgspec.Struct, array_like=True, frozen=True):
    """A frame: its kind (checked by the decoder, in C: an unknown kind fails to decode
    as a malformed frame did before, without an `Enum` call per frame) and its payload."""

    kind: Kind
    payload: bytes


_decoder: Final = msgspec.msgpack.Decoder(_Envelope)
_LANE_NAMES: Final = {kind: lane.name.lower() for kind, lane in LANES.items()}
"""Each kind's lane as the stats spell it (an enum's `name` is a property: slow per frame)."""


def message_id(frame: bytes) -> bytes:
    """A message's id on the mesh: the tagged hash of its whole frame."""
    return crypto.tagged_hash(b"GridTokenX/gossip", frame)


def _outcome(answer: bool | Outcome) -> Outcome:
    if isinstance(answer, Outcome):
        return answer
    return Outcome.RELAY if answer else Outcome.INVALID


async def _ip_of(host: str) -> str:
    """`host` as an IP literal: a name is resolved (its first address); one that does not
    resolve is announced as "" (peers then dial the address they see), with a warning."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        if not host:
            return ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        _log.warning("external host %s does not resolve (%s): peers will dial the address "
                     "they see connections come from", host, exc)  # fmt: skip
        return ""
    return str(infos[0][4][0])


class Gossip:
    """`address_book` turns peer exchange on (without one the node neither announces nor
    asks, and answers requests with an empty list); `limits` are the per-peer budgets;
    `settings` the connections' caps, queues and deadlines; `clock` (seconds) drives the
    budgets and the dial backoff, so tests need not sleep. `reserved(peer)` names peers
    exempt from the caps besides `settings.unconditional_peer_ids` (the node's validators
    and configured peers); `on_connect(peer)` is told of each new connection (the node
    re-announces its pending transactions). `topics` are the mesh topics the node takes
    (`subscribe` changes them); `mesh_params` the mesh's degrees and scores."""

    def __init__(
        self,
        key: crypto.PrivateKey,
        handler: Handler,
        *,
        address_book: AddressBook | None = None,
        limits: Limits | None = None,
        settings: PeerSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        topics: Iterable[Topic] = tuple(Topic),
        mesh_params: Params | None = None,
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
        self.private = self.settings.private
        self.unconditional = self.settings.unconditional
        self.probes: Counter[str] = Counter()  # claimed addresses dialled, by result
        self._probing: set[bytes] = set()
        self._probe_key: crypto.PrivateKey | None = None
        self.on_connect: Callable[[bytes], None] | None = None
        # Mesh selection must not be predictable to a peer that wants a node's mesh slots.
        self.mesh: Mesh[bytes] = Mesh(topics, random.Random(), mesh_params)
        self._next_heartbeat = -math.inf
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._hello: bytes | None = None  # our announcement, once we listen
        self._greeted: set[bytes] = set()  # peers whose HELLO we took on this connection
        self._awaiting: set[bytes] = set()  # peers we asked for addresses, answer pending
        self._asked_at: dict[bytes, float] = {}

    # --- connections -----------------------------------------------------------------------
    async def listen(self, host: str = "127.0.0.1", port: int = 0, external_host: str = "") -> int:
        """Accept peers on `host`; HELLO announces `external_host` (the address a NAT or a
        wildcard bind hides) when given, else `host`. Addresses on the wire are IP literals,
        so a host name is resolved here, once."""
        self._server = await transport.serve(
            host, port, self.key, self._accept, gate=self.gate,
            timeout=self.settings.handshake_timeout_s,
        )  # fmt: skip
        bound = int(self._server.sockets[0].getsockname()[1])
        if self.settings.pex:  # a node outside peer exchange tells nobody where it is
            self._hello = discovery.announcement(await _ip_of(external_host or host), bound)
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
        elif existing is None and not outbound:
            refusal = self._over_cap(peer)
        else:
            refusal = None
        if refusal is not None:
            self.gate.refused[refusal] += 1
            connection.abort()
            return False
        self._start(Peer(connection, self._on_frame, self._closed, self.settings, self.stats,
                         outbound, wanted=self.mesh.wanted))  # fmt: skip
        if existing is not None:
            existing.close("replaced")
            self.mesh.disconnect(peer)  # it starts again: its subscription comes anew
        else:
            _log.info("peer connected", extra={
                "peer": peer.hex(), "direction": "outbound" if outbound else "inbound",
                "host": connection.remote_host, "peers": len(self.peers)})  # fmt: skip
        self._send_all(self.mesh.connect(peer, self.clock(), outbound, self.exempt(peer)))
        self.scores.setdefault(peer, START_SCORE)
        if self.book is not None:
            if dialled is not None:  # it answered where we dialled: a verified address
                self._learn(dialled, verified=True)
                self.book.succeeded(peer)
            if self._hello is not None:
                self.send_to(peer, Kind.HELLO, self._hello)
            if self.settings.pex:
                self._ask(peer)
        if self.on_connect is not None:
            try:
                self.on_connect(peer)
            except Exception:
                _log.exception("the new-peer callback failed")
        return True

    def exempt(self, peer: bytes) -> bool:
        """Whether `peer` is outside the caps (unconditional, or reserved by the node)."""
        return peer in self.unconditional or self.reserved(peer)

    def by_direction(self, capped: bool = False) -> tuple[int, int]:
        """Connected peers as (inbound, outbound); only those the caps count when `capped`."""
        inbound = outbound = 0
        for peer in self.peers.values():
            if not (capped and self.exempt(peer.id)):
                outbound += peer.outbound
                inbound += not peer.outbound
        return inbound, outbound

    def _over_cap(self, peer: bytes) -> str | None:
        """Why a new inbound peer finds no room (None: it may stay)."""
        if self.exempt(peer):
            return None
        inbound, outbound = self.by_direction(capped=True)
        if inbound >= self.settings.max_inbound:
            return "max_inbound"
        if inbound + outbound >= self.settings.max_peers:
            return "max_peers"
        return None

    def _learn(self, address: Address, verified: bool = False) -> None:
        """Put an address in the book, unless it is ours or a private peer's."""
        if self.book is not None and address.peer not in self.private | {self.key.address}:
            self.book.add(address, verified=verified)

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
        self.mesh.disconnect(peer.id)
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
        DIALS_PER_STEP addresses from the book whose backoff has passed, all at once, and no
        more than `max_outbound` and `max_peers` leave room for. A failed dial backs its
        address off, so calling this often never hammers a dead address. Does nothing with
        `pex` off. Returns the number of dials tried."""
        inbound, outbound = self.by_direction(capped=True)
        room = min(
            DIALS_PER_STEP,
            target_peers - len(self.peers),
            self.settings.max_outbound - outbound,
            self.settings.max_peers - inbound - outbound,
        )
        if self.book is None or not self.settings.pex or room <= 0:
            return 0
        now = self.clock()
        for peer in list(self.peers):
            if peer not in self._awaiting and now - self._asked_at.get(peer, -math.inf) >= (
                ASK_EVERY_S
            ):
                self._ask(peer)
        due = self.book.due(now, exclude=self.peers.keys() | {self.key.address})
        chosen = due[:room]
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
    @staticmethod
    def _message(kind: Kind, payload: bytes) -> Publish:
        if len(payload) > LIMITS[kind]:
            raise ValueError(f"{kind.name} of {len(payload)} bytes exceeds {LIMITS[kind]}")
        frame = codec.encode(_Envelope(kind, payload))
        return Publish(TOPICS[kind], message_id(frame), frame)

    def publish(self, kind: Kind, payload: bytes) -> None:
        """Queue a message of our own for every peer that takes its topic (flood
        publishing: the first hop does not wait for the mesh); returns at once."""
        message = self._message(kind, payload)
        self._send_all(self.mesh.publish(message.topic, message.id, message.data, self.clock()))

    def relay(self, kind: Kind, payload: bytes) -> None:
        """Queue a message made of what peers sent (transactions this node's mempool
        admitted) for the topic's mesh peers, as a forwarded message goes."""
        message = self._message(kind, payload)
        self._send_all(self.mesh.relay(message.topic, message.id, message.data, self.clock()))

    def forward(self, kind: Kind, payload: bytes) -> None:
        """Forward a transaction batch as it came, once the node admitted all of it: to
        the topic's mesh, not to the peers that sent it nor to those that said IDONTWANT
        (`Mesh.forward`), with its id, so that a node that has it drops further copies as
        seen before any work per transaction. A batch no longer in the mesh's cache (its
        admission outlasted the cache's windows) goes to every mesh peer, as a re-send."""
        message = self._message(kind, payload)
        sends = self.mesh.forward(message.id)
        if sends is None:
            self.rebroadcast(kind, payload)
        else:
            self._send_all(sends)

    def send_to(self, peer: bytes, kind: Kind, payload: bytes) -> bool:
        """Queue a direct message for one peer (sync, discovery), outside the mesh;
        returns at once, False when the peer is not connected."""
        connection = self.peers.get(peer)
        if connection is None:
            return False
        return connection.send(SEND_LANES[kind], codec.encode(_Envelope(kind, payload)))

    def rebroadcast(self, kind: Kind, payload: bytes) -> None:
        """Queue one of our messages again for the topic's mesh peers (peers that saw it
        drop it; a peer that restarted or was cut off gets it now)."""
        message = self._message(kind, payload)
        lane = TOPIC_LANES[message.topic]
        for peer in self.mesh.members(message.topic):
            connection = self.peers.get(peer)
            if connection is not None:
                connection.send(lane, message.data, message.id)

    def subscribe(self, topics: Iterable[Topic]) -> None:
        """Take `topics` from now on (a node voted in as a validator takes consensus
        messages); peers are told at once."""
        self._send_all(self.mesh.subscribe(topics, self.clock()))

    def heartbeat(self) -> None:
        """The mesh's upkeep (grafts, prunes, lazy announcements, scores), at most once
        per `heartbeat_s` of the node's clock: the node calls this from its housekeeping."""
        now = self.clock()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.mesh.params.heartbeat_s
            self._send_all(self.mesh.heartbeat(now))

    def mesh_sizes(self) -> dict[str, int]:
        """Peers in each topic's mesh, for status and metrics."""
        return {topic.name.lower(): len(members) for topic, members in self.mesh.mesh.items()}

    def _send_all(self, sends: list[tuple[bytes, Frame]]) -> None:
        """Queue what the mesh asked to send: a full message as its own frame in its
        topic's lane, with its id, so the peer's writer skips it if the peer says IDONTWANT
        before it is written (`Mesh.wanted`); a control frame as `Kind.MESH`."""
        for peer, frame in sends:
            connection = self.peers.get(peer)
            if connection is None:
                continue
            if isinstance(frame, Publish):
                connection.send(TOPIC_LANES[frame.topic], frame.data, frame.id)
            else:
                payload = codec.encode(_Envelope(Kind.MESH, mesh_frames.encode(frame)))
                connection.send(Lane.CONTROL, payload)

    async def _on_frame(self, connection: Peer, frame: bytes) -> None:
        """One frame from a peer (its reader task awaits this)."""
        peer = connection.id
        if self.peers.get(peer) is not connection:
            return  # replaced or dropped meanwhile
        try:
            envelope = _decoder.decode(frame)
        except msgspec.DecodeError:
            self.stats.discarded["unknown", "malformed"] += 1
            self.penalise(peer)
            return
        kind = envelope.kind
        lane = _LANE_NAMES[kind]
        self.stats.received[lane] += len(frame)
        if len(envelope.payload) > LIMITS[kind] or kind in CONTROL:
            self.stats.discarded[lane, "malformed"] += 1
            self.penalise(peer)
            return
        # Before the seen cache: a frame dropped here may still arrive through a peer
        # within its budget.
        now = self.clock()
        verdict = self.limiter.take(peer, LANES[kind], now)
        if verdict is not Verdict.ADMIT:
            self.throttled[peer] += 1
            self.stats.discarded[lane, "rate_limited"] += 1
            # Over budget is load, not misbehaviour, for the node's configured and validator
            # peers: a validator must not lose its sentries to rate limits under heavy load
            # (their frames are still dropped). What they send that is invalid still counts.
            if verdict is Verdict.PENALISE and not self.exempt(peer):
                self.penalise(peer)
            return
        if kind in DISCOVERY:
            if not self._exchange(kind, envelope.payload, connection):
                self.penalise(peer)
            return
        if kind is Kind.MESH:
            try:
                control = mesh_frames.decode(envelope.payload)
            except ValueError:
                self.stats.discarded[lane, "malformed"] += 1
                self.penalise(peer)
                return
            self._send_all(self.mesh.receive(peer, control, now).sends)
            return
        topic = TOPICS.get(kind)
        if topic is None:  # a direct message: taken, never forwarded
            outcome = _outcome(await self.handler(kind, envelope.payload, peer))
        else:
            mid = message_id(frame)
            if self.mesh.again(peer, mid, now):
                return  # a copy seen already (or a peer the mesh ignores)
            step = self.mesh.receive(peer, Publish(topic, mid, frame), now)
            self._send_all(step.sends)
            if not step.deliver:
                return  # seen already, or a topic this node does not take
            outcome = _outcome(await self.handler(kind, envelope.payload, peer))
            validation = _VALIDATION.get(outcome, Validation.INVALID)
            forward = kind not in NOT_FORWARDED
            self._send_all(self.mesh.accept(mid, validation, self.clock(), forward))
        if outcome is Outcome.INVALID:
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
        book = self.book if self.settings.pex else None
        if kind is Kind.PEERS_REQUEST:
            if payload:
                return False
            hidden = self.private | {peer}
            known = [] if book is None else book.sample(discovery.MAX_ANSWER, hidden)
            self.send_to(peer, Kind.PEERS, discovery.encode_answer(known))
            return True
        try:
            if kind is Kind.HELLO:
                hello = discovery.announced(peer, connection.remote_host, payload)
            else:
                addresses = discovery.decode_answer(payload, connection.remote_host)
        except ValueError:
            return False
        if book is None:
            return True
        if kind is Kind.HELLO:
            if peer not in self._greeted:  # later HELLOs on the same connection are ignored
                self._greeted.add(peer)
                self._greet(hello)
        elif peer in self._awaiting:  # an answer nobody asked for is ignored
            self._awaiting.discard(peer)
            for address in addresses:
                self._learn(address)
        return True

    def _greet(self, hello: discovery.Announcement) -> None:
        """Take a peer's HELLO: the address it was seen at, unless a claim of its was
        verified before; a new claim is probed."""
        if hello.claimed is not None and self.book is not None:
            if self.book.get(hello.claimed.peer) == hello.claimed:
                return  # proven on an earlier connection: keep it
            self._probe(hello.claimed)
        self._learn(hello.seen, verified=True)

    def _probe(self, claimed: Address) -> None:
        """Verify a claimed address in the background (at most MAX_PROBES at once)."""
        if claimed.peer in self._probing or claimed.peer in self.private:
            return
        if len(self._probing) >= MAX_PROBES:
            self.probes["skipped"] += 1
            return
        self._probing.add(claimed.peer)
        task = asyncio.create_task(self._verify(claimed), name=f"probe-{claimed.peer.hex()}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _verify(self, claimed: Address) -> None:
        """Dial the claimed address under a throwaway key (the handshake proves the key at
        the other end; ours need not be known, and the peer's connection to us is left
        alone) and take the address if the peer's key is there."""
        if self._probe_key is None:
            self._probe_key = crypto.PrivateKey.generate()
        try:
            connection = await transport.connect(
                claimed.host, claimed.port, self._probe_key, expect=claimed.peer,
                timeout=self.settings.handshake_timeout_s,
            )  # fmt: skip
        except OSError as exc:
            self.probes["failed"] += 1
            _log.debug("%s is not at its claimed %s: %s", claimed.peer.hex(), claimed.host, exc)
            return
        finally:
            self._probing.discard(claimed.peer)
        connection.abort()
        self.probes["verified"] += 1
        if not self.banned(claimed.peer):
            self._learn(claimed, verified=True)
