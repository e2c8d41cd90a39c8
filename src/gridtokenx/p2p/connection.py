"""One peer's connection, after CometBFT's MConnection: bounded send lanes drained by one
writer task, a reader task, keepalive, and deadlines on everything that waits for the peer.

A node must never wait for a peer. Sending is therefore an enqueue that returns at once:
each peer has a bounded queue per lane (grid updates, mesh control frames, consensus
messages, requests and answers, transactions), and one writer task per peer seals and
writes what is queued, in that order (`SERVE_ORDER`), then waits for the socket to take
it for at most `write_timeout_s`. A peer that stops reading stalls only its own writer,
which gives up on it at the deadline. When a lane is full, the lane decides: transactions
and requests are worth less than the connection, so the oldest are dropped (and
counted); consensus messages may not be lost silently (a vote dropped is a vote the peer
never sees), so a full consensus lane disconnects the peer, which reconnects and catches
up through sync.

Keepalive: every `ping_interval_s` the writer sends PING (an empty frame of its own kind);
the peer's reader answers PONG. No PONG within `pong_timeout_s`, or nothing at all heard
for `ping_interval_s + pong_timeout_s`, and the peer is dropped: a peer that stopped
reading or answering is found even when nothing else is being sent to it.

Every exception a socket can raise (a reset, an EOF mid-frame, uvloop's RuntimeError on a
closed transport) is handled in the task that raised it and ends the connection with a
reason; each disconnect is counted by reason in the shared `PeerStats`, which the node's
metrics read.

A gossiped message can wait in a lane while the peer gets it from elsewhere and says so
(the mesh's IDONTWANT). A frame queued with its message id is therefore looked at once more
as the writer takes it: the `wanted(peer, message_id)` callback the gossip layer installs
(`p2p.mesh.Mesh.wanted`; this module knows nothing of the mesh) can still skip it, and the
skip is counted (`PeerStats.unwanted`) instead of the bytes being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Final

import msgspec

from gridtokenx.p2p import transport
from gridtokenx.p2p.peers import PEER_ID_BYTES
from gridtokenx.p2p.ratelimit import Lane

PING: Final = b"\x92\x0a\xc4\x00"  # the envelope [10, b""]: gossip's Kind.PING, empty
PONG: Final = b"\x92\x0b\xc4\x00"  # [11, b""]: Kind.PONG
SERVE_ORDER: Final = (Lane.GRID, Lane.CONTROL, Lane.CONSENSUS, Lane.REQUESTS, Lane.TX)
"""The writer's order, `p2p.mesh.PRIORITY`'s: grid updates, the mesh's control frames,
consensus messages and blocks, requests and their answers, transactions."""
BATCH_BYTES: Final = 256 * 1024  # sealed and written at once, then drained
FRAME_OVERHEAD: Final = 64  # bytes a queued frame is charged beyond its length
STALL_S: Final = 1.0  # the writer woke this much later than it asked: the loop was held up
_log: Final = logging.getLogger(__name__)
_LANE_NAMES: Final = {lane: lane.name.lower() for lane in Lane}
"""The stats' spelling of each lane, spelt once (an enum's `name` is a property)."""


def _doc(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


class PeerSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a node treats its peers' connections (config.toml's `[p2p]`; each description
    is the file's comment). The defaults suit a production node and a devnet on one
    machine alike. The caps by direction are CometBFT's (40 in, 10 out); `max_peers` is a
    ceiling over both, which is all a config written before them holds: it reads as
    before, the new fields at their defaults. Peer ids are hex, as `gridtokenx keys show`
    prints them; a malformed one names its field."""

    # fmt: off
    max_peers: Annotated[int, _doc(
        "Peer connections at most, both directions (unconditional peers exempt). Raise it"
        " with max_inbound on a sentry or seed node that many full nodes connect to."
    )] = 50
    max_inbound: Annotated[int, _doc(
        "Inbound connections at most; beyond it refused (unconditional peers exempt)."
    )] = 40
    max_outbound: Annotated[int, _doc(
        "Connections dialled to addresses learnt from peers (configured peers exempt)."
    )] = 10
    max_handshakes: Annotated[int, _doc(
        "Inbound handshakes in progress at once; a flood of connections waits here,"
        " before it costs a signature check each."
    )] = 16
    max_per_ip: Annotated[int, _doc(
        "Connections from one remote IP address (loopback is exempt); raise it when many"
        " nodes share one NAT address."
    )] = 8
    pex: Annotated[bool, _doc(
        "Peer exchange: ask peers for addresses and answer theirs. Off for a validator"
        " behind sentries, which dials only its configured peers."
    )] = True
    private_peer_ids: Annotated[tuple[str, ...], _doc(
        "Peer ids whose addresses are never passed on nor kept in peers.json: on a sentry,"
        " its validator's id."
    )] = ()
    unconditional_peer_ids: Annotated[tuple[str, ...], _doc(
        "Peer ids let in beyond every peer cap: on a sentry, its validator's id."
    )] = ()
    handshake_timeout_s: Annotated[float, _doc(
        "Seconds a connecting peer has to complete the encrypted handshake."
    )] = transport.HANDSHAKE_TIMEOUT_S
    ping_interval_s: Annotated[float, _doc(
        "Seconds between keepalive PINGs to each peer."
    )] = 10.0
    pong_timeout_s: Annotated[float, _doc(
        "Seconds to wait for a PONG before dropping a peer that stopped answering."
    )] = 20.0
    write_timeout_s: Annotated[float, _doc(
        "Seconds a peer's socket may refuse more data before the peer is dropped, so a"
        " peer that stops reading never stalls this node."
    )] = 20.0
    consensus_queue_bytes: Annotated[int, _doc(
        "Bytes of consensus messages queued per peer; a peer that lets it fill is"
        " disconnected (it catches up by sync)."
    )] = 32 * 1024 * 1024
    requests_queue_bytes: Annotated[int, _doc(
        "Bytes of block requests and answers queued per peer; the oldest are dropped beyond it."
    )] = 16 * 1024 * 1024
    tx_queue_bytes: Annotated[int, _doc(
        "Bytes of gossiped transactions queued per peer; the oldest are dropped beyond it."
    )] = 16 * 1024 * 1024
    # fmt: on

    def __post_init__(self) -> None:
        numbers = (self.max_peers, self.max_inbound, self.max_outbound, self.max_handshakes,
                   self.max_per_ip)  # fmt: skip
        times = (self.handshake_timeout_s, self.ping_interval_s, self.pong_timeout_s,
                 self.write_timeout_s)  # fmt: skip
        if min(numbers) < 1 or min(times) <= 0:
            raise ValueError("p2p limits and timeouts must be positive")
        if min(self.consensus_queue_bytes, self.requests_queue_bytes, self.tx_queue_bytes) < (
            transport.MAX_FRAME + FRAME_OVERHEAD
        ):
            raise ValueError(f"a send queue must hold one frame of {transport.MAX_FRAME} bytes")
        for name in ("private_peer_ids", "unconditional_peer_ids"):
            for text in getattr(self, name):
                if not _is_peer_id(text):
                    raise ValueError(
                        f"p2p.{name}: {text[:64]!r} is not a peer id "
                        f"({2 * PEER_ID_BYTES} hex digits, as `gridtokenx keys show` prints)"
                    )

    @property
    def private(self) -> frozenset[bytes]:
        """The peers whose addresses this node never passes on."""
        return frozenset(bytes.fromhex(text) for text in self.private_peer_ids)

    @property
    def unconditional(self) -> frozenset[bytes]:
        """The peers let in whatever the caps."""
        return frozenset(bytes.fromhex(text) for text in self.unconditional_peer_ids)

    def queue_bytes(self, lane: Lane) -> int:
        if lane is Lane.CONSENSUS:
            return self.consensus_queue_bytes
        if lane is Lane.TX:
            return self.tx_queue_bytes
        return self.requests_queue_bytes  # requests, grid updates and control frames


def _is_peer_id(text: str) -> bool:
    try:
        return len(bytes.fromhex(text)) == PEER_ID_BYTES and len(text) == 2 * PEER_ID_BYTES
    except ValueError:
        return False


@dataclass
class PeerStats:
    """Counters shared by all of a node's peers, for its metrics."""

    dropped: Counter[str] = field(default_factory=Counter)  # frames, by lane name
    disconnects: Counter[str] = field(default_factory=Counter)  # by reason
    sent: Counter[str] = field(default_factory=Counter)  # frame bytes written, by lane name
    received: Counter[str] = field(default_factory=Counter)  # frame bytes read, by lane name
    discarded: Counter[tuple[str, str]] = field(default_factory=Counter)  # inbound frames
    #                                    dropped unhandled, by (lane name, reason)
    unwanted: Counter[str] = field(default_factory=Counter)  # queued frames not written
    #                                    since the peer said it has them, by lane name


class _Queue:
    """A lane's frames, each with the id of the gossiped message it carries (None for a
    direct message)."""

    __slots__ = ("frames", "size")

    def __init__(self) -> None:
        self.frames: deque[tuple[bytes, bytes | None]] = deque()
        self.size = 0

    def push(self, frame: bytes, message_id: bytes | None) -> None:
        self.frames.append((frame, message_id))
        self.size += len(frame) + FRAME_OVERHEAD

    def pop(self) -> tuple[bytes, bytes | None]:
        entry = self.frames.popleft()
        self.size -= len(entry[0]) + FRAME_OVERHEAD
        return entry


FrameHandler = Callable[["Peer", bytes], Awaitable[None]]
CloseHandler = Callable[["Peer", str], None]
Wanted = Callable[[bytes, bytes], bool]
"""`(peer id, message id)`: whether a queued gossiped message should still go to the peer."""


class Peer:
    """An authenticated connection with its lanes and its two tasks. `send` never waits;
    `on_frame(peer, frame)` is awaited for each frame but PING and PONG; `on_close(peer,
    reason)` is called once, whoever ends the connection; `wanted`, when given, is asked
    before a frame queued with a message id is written."""

    def __init__(
        self,
        connection: transport.Connection,
        on_frame: FrameHandler,
        on_close: CloseHandler,
        settings: PeerSettings,
        stats: PeerStats,
        outbound: bool = False,
        wanted: Wanted | None = None,
    ) -> None:
        self.connection = connection
        self.id = connection.peer_id
        self.remote_host = connection.remote_host
        self.outbound = outbound
        self.settings = settings
        self.stats = stats
        self._on_frame, self._on_close = on_frame, on_close
        self._wanted = wanted
        self._queues = {lane: _Queue() for lane in Lane}
        self._ready = asyncio.Event()
        self._pong_due = False
        self._loop = asyncio.get_running_loop()
        self.last_heard = self._loop.time()
        self._ping_sent: float | None = None
        self.closed: str | None = None  # the reason, once closed
        self._tasks: list[asyncio.Task[None]] = []
        self._alarm: asyncio.TimerHandle | None = None  # the writer's wake-up (`_arm`)

    def start(self) -> None:
        name = self.id.hex()
        self._tasks = [
            asyncio.create_task(self._guard(self._read_loop), name=f"peer-read-{name}"),
            asyncio.create_task(self._guard(self._write_loop), name=f"peer-write-{name}"),
        ]

    @property
    def tasks(self) -> tuple[asyncio.Task[None], ...]:
        return tuple(self._tasks)

    # --- sending ---------------------------------------------------------------------------
    def send(self, lane: Lane, frame: bytes, message_id: bytes | None = None) -> bool:
        """Queue `frame` on `lane` and return at once; False when it was not queued (closed,
        or a full consensus lane, which closes the connection). A gossiped message comes
        with its `message_id`, so that the writer can skip it if the peer no longer wants it."""
        if self.closed is not None:
            return False
        queue = self._queues[lane]
        cost = len(frame) + FRAME_OVERHEAD
        limit = self.settings.queue_bytes(lane)
        if queue.size + cost > limit:
            if lane is Lane.CONSENSUS:
                self.close("consensus_queue_full")
                return False
            while queue.frames and queue.size + cost > limit:
                queue.pop()
                self.stats.dropped[_LANE_NAMES[lane]] += 1
        queue.push(frame, message_id)
        self._ready.set()
        return True

    def queued(self) -> dict[Lane, tuple[int, int]]:
        """Frames and bytes waiting per lane."""
        return {lane: (len(q.frames), q.size) for lane, q in self._queues.items()}

    def _batch(self) -> list[bytes]:
        """What to write next: a PONG owed, then the lanes in SERVE_ORDER, up to BATCH_BYTES
        (at least one frame), leaving out the messages the peer said it has meanwhile."""
        batch: list[bytes] = []
        size = 0
        if self._pong_due:
            self._pong_due = False
            batch.append(PONG)
        for lane in SERVE_ORDER:
            queue = self._queues[lane]
            taken = size
            while queue.frames and (not batch or size + len(queue.frames[0][0]) <= BATCH_BYTES):
                frame, message_id = queue.pop()
                if message_id is not None and not self._still_wanted(message_id):
                    self.stats.unwanted[_LANE_NAMES[lane]] += 1
                    continue
                batch.append(frame)
                size += len(frame)
            if size > taken:
                self.stats.sent[_LANE_NAMES[lane]] += size - taken
            if size >= BATCH_BYTES:
                break
        return batch

    def _still_wanted(self, message_id: bytes) -> bool:
        return self._wanted is None or self._wanted(self.id, message_id)

    # --- the two tasks ---------------------------------------------------------------------
    async def _guard(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run one of the peer's tasks: whatever ends it ends the connection, with a reason,
        and nothing escapes into the event loop's log as a traceback."""
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except transport.PeerClosed:
            self.close("eof")
        except transport.FrameError:
            self.close("bad_frame")
        except transport.CLOSED_ERRORS as exc:
            _log.debug("peer %s: %s: %s", self.id.hex(), type(exc).__name__, exc)
            self.close("connection_lost")
        except Exception as exc:
            _log.error("peer %s dropped after %s: %s", self.id.hex(), type(exc).__name__, exc)
            _log.debug("the error in full", exc_info=True)
            self.close("error")

    async def _read_loop(self) -> None:
        while self.closed is None:
            frame = await self.connection.receive()
            self.last_heard = self._loop.time()
            if frame == PING:
                self._pong_due = True  # however many arrive, one PONG is owed
                self._ready.set()
            elif frame == PONG:
                self._ping_sent = None
            else:
                await self._on_frame(self, frame)

    async def _write_loop(self) -> None:
        settings = self.settings
        next_ping = self._loop.time() + settings.ping_interval_s
        while self.closed is None:
            now = self._loop.time()
            if self._ping_sent is not None and now - self._ping_sent > settings.pong_timeout_s:
                self.close("pong_timeout")
                return
            silent_for = settings.ping_interval_s + settings.pong_timeout_s
            if now - self.last_heard > silent_for:
                self.close("read_timeout")
                return
            batch = self._batch()
            if self._ping_sent is None and now >= next_ping:
                batch.insert(0, PING)
                self._ping_sent, next_ping = now, now + settings.ping_interval_s
            if not batch:
                self._ready.clear()
                deadline = now + max(0.01, min(next_ping, self.last_heard + silent_for) - now)
                self._arm(deadline)
                await self._ready.wait()
                self._forgive(self._loop.time() - deadline)
                continue
            self.connection.write(batch)
            if not self.connection.flushed():
                try:
                    async with asyncio.timeout(settings.write_timeout_s):
                        await self.connection.drain()
                except TimeoutError:
                    self.close("write_timeout")
                    return

    def _arm(self, deadline: float) -> None:
        """Wake the writer by `deadline` (loop time) at the latest, for its keepalive and
        read deadlines. One timer serves many waits: it is set again only when it fired or
        a wait needs an earlier wake; one that fires early (the peer was heard meanwhile,
        so the read deadline moved on) only makes the writer look and wait again. Before,
        every wait had an `asyncio.timeout` of its own, and so had every drain (the next
        `flushed`): some 3-4 µs each under uvloop, about twenty times a height per node,
        the writer's share of a height's fixed CPU (bench/height_bench.py, December 2026)."""
        alarm = self._alarm
        if alarm is not None and not alarm.cancelled() and alarm.when() <= deadline:
            return  # set for this deadline or an earlier one, and not fired yet
        if alarm is not None:
            alarm.cancel()
        self._alarm = self._loop.call_at(deadline, self._wake)

    def _wake(self) -> None:
        self._alarm = None
        self._ready.set()

    def _forgive(self, late: float) -> None:
        """This node's own loop was held up (a long block, a stalled disk) for `late`
        seconds: the peer's answers may be waiting unread in our socket, so its deadlines
        move by as much rather than blaming the peer for our stall."""
        if late > STALL_S:
            self.last_heard += late
            if self._ping_sent is not None:
                self._ping_sent += late

    # --- closing ---------------------------------------------------------------------------
    def close(self, reason: str) -> None:
        """End the connection now (dropping what is queued); idempotent."""
        if self.closed is not None:
            return
        self.closed = reason
        self.stats.disconnects[reason] += 1
        for queue in self._queues.values():
            queue.frames.clear()
            queue.size = 0
        self.connection.abort()
        if self._alarm is not None:
            self._alarm.cancel()
            self._alarm = None
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self._ready.set()
        self._on_close(self, reason)

    async def wait_closed(self) -> None:
        """Until both tasks have ended (after `close`)."""
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
