"""Joining by state sync, and serving the snapshots joining nodes fetch.

A node that joins a running chain need not replay it from genesis. Before it starts, with
an empty store, it connects to its configured peers, asks each for the snapshots it serves
(`storage.snapshots`), and keeps only offers whose blocks h and h+1 carry commit
certificates that the validators it trusts signed (the sets its genesis names for those
heights), block h+1 following block h: a quorum of their signatures vouches for block
h+1, so for its header's state root, which (heights are pipelined) is the root of the
state after h. It picks the
highest such height, fetches the chunks from every peer that offers the same snapshot at
once (a few requests in flight per peer), verifies each chunk against the certified root
as it arrives and writes it into a new store. A peer that sends a chunk that does not
prove is banned (no honest node sends one: the root is certified) and its chunks are
fetched from the others; a peer that does not answer in time loses its requests to the
others. Once every chunk is in, the root is checked once more from the store, the store
is moved into place, and the node starts as usual at the snapshot's height: block sync
takes it from there (from h+1). With no usable offer, the node starts from genesis.

The serving side is `answer`, which the running node calls for the state-sync kinds, and
`Snapshotter`, which takes a snapshot at every multiple of the configured interval and
offers it once the next height is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import shutil
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec

from gridtokenx.chain import blocks, light_client
from gridtokenx.consensus import core
from gridtokenx.ledger import genesis, validator_set
from gridtokenx.ledger import state_proofs as proofs
from gridtokenx.p2p.connection import PeerSettings
from gridtokenx.p2p.gossip import Gossip, Kind, Outcome
from gridtokenx.storage import snapshots
from gridtokenx.storage.snapshots import Chunk, ChunkRequest, Offer, Restore, Snapshots, Verified
from gridtokenx.storage.store import Store
from gridtokenx.storage.validator_history import Recorder
from gridtokenx.wire import codec, crypto
from gridtokenx.wire.votes import Vote, block_id

MAX_OFFERS: Final = 4  # offers a node sends in answer (its newest)
IN_FLIGHT: Final = 4  # chunk requests outstanding per peer
CHUNK_TIMEOUT_S: Final = 10.0
"""A peer that has sent nothing for this long while asked for chunks, none of its chunks
waiting here to be verified, is late: what it was asked goes to the others. Counted from
its last chunk (as it arrived, or as it was verified), not from each request: a peer
answers its requests in order over one connection, so behind a busy upload (many joiners
at once) the fourth request in flight waits for three chunks, and a joiner that verifies
slower than chunks arrive holds them in its own queue; a deadline per request struck
peers that were sending steadily (`bench/statesync_bench.py --joiners`)."""
OFFER_WAIT_S: Final = 2.0  # after an offer, how long to wait for the other peers'
OFFER_GRACE_S: Final = 0.2  # ...and for a peer's further offers once all have answered
STRIKES: Final = 3  # timeouts after which a peer is no longer asked
CHECKERS: Final = min(4, os.cpu_count() or 1)
"""Worker processes a joining node checks chunks in. Checking is most of a join's CPU
(about 4 us a record, Python hashing one record at a time), and in processes of their own
the checks run beside this process's receiving and writing, on every core."""
_certificate: Final = msgspec.msgpack.Decoder(tuple[Vote, ...])
_request: Final = msgspec.msgpack.Decoder(ChunkRequest)
_log: Final = logging.getLogger(__name__)


class StateSyncFailed(RuntimeError):
    """State sync could not complete (every source failed or was banned)."""


# --- serving -------------------------------------------------------------------------------
def answer(served: Snapshots | None, gossip: Gossip, kind: Kind, payload: bytes,
           peer: bytes) -> Outcome:  # fmt: skip
    """A running node's answer to a state-sync message from `peer`: its newest offers, or
    the chunk asked for (nothing when it has none). Offers and chunks sent to a node that
    did not ask are ignored."""
    if kind is Kind.SNAPSHOTS_REQUEST:
        if payload:
            return Outcome.INVALID
        for offer in [] if served is None else served.offers()[:MAX_OFFERS]:
            gossip.send_to(peer, Kind.SNAPSHOT_OFFER, offer)
        return Outcome.RELAY
    if kind is Kind.CHUNK_REQUEST:
        try:
            request = _request.decode(payload)
        except msgspec.DecodeError:
            return Outcome.INVALID
        chunk = None if served is None else served.chunk(request.height, request.index)
        if chunk is not None:
            gossip.send_to(peer, Kind.CHUNK, chunk)
        return Outcome.RELAY
    return Outcome.IGNORE


class Snapshotter:
    """Takes a snapshot whenever a committed height is a multiple of `interval` (so every
    node snapshots the same heights, and a joining node finds several peers offering the
    same one): the store is checkpointed on the loop, in the commit listener, and the
    chunks are cut in a worker thread. One at a time; a height reached while one is being
    cut is skipped."""

    def __init__(self, served: Snapshots, store: Store, interval: int,
                 behind: Callable[[], bool] = lambda: False) -> None:  # fmt: skip
        """`behind()`: the node is catching up, and skips the snapshots it passes (a node
        syncing a day of blocks would otherwise cut the state every `interval` blocks)."""
        self.served = served
        self.store = store
        self.interval = interval
        self.behind = behind
        self.recorder = Recorder(store)  # the set changes its offers carry
        self.taken: list[int] = []
        self._task: asyncio.Task[int | None] | None = None
        self._waiting = bool(served.pending())  # cut, to offer once h+1 is committed

    def _complete(self) -> None:
        try:
            offered = self.served.complete(self.store, self.recorder)
        except snapshots.SnapshotError as exc:
            _log.error("a state snapshot was dropped: %s", exc)
            offered = []
        self._waiting = bool(self.served.pending())
        for height in offered:
            _log.info("state snapshot offered", extra={"height": height})

    def on_commit(self, height: int, *_: object) -> None:
        self.recorder.observe()
        if self._waiting:
            self._complete()
        if self.interval <= 0 or height % self.interval or self.busy or self.behind():
            return
        copy = self.served.checkpoint(self.store)
        self._task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(self.served.build, copy)
        )
        self._task.add_done_callback(self._done)

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def _done(self, task: asyncio.Task[int | None]) -> None:
        if task.cancelled():
            return
        if (exc := task.exception()) is not None:
            _log.error("taking a state snapshot failed: %s", exc)
            return
        if (height := task.result()) is not None:
            self.taken.append(height)
            _log.info("state snapshot taken", extra={"height": height})
            self._complete()  # h+1 may be committed already

    async def stop(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


# --- joining -------------------------------------------------------------------------------
@dataclass
class _Source:
    offer: Offer
    asked: set[int] = field(default_factory=set)  # chunk indexes outstanding
    heard: float = 0.0  # its last chunk taken, or the request that ended its idleness
    strikes: int = 0


@dataclass(frozen=True)
class Joined:
    """What a state sync did: the height reached, the chunks, and the peers it banned."""

    height: int
    chunks: int
    banned: list[bytes]
    seconds: float


class Joiner:
    """One state sync, over a gossip instance of its own (the node is not running yet)."""

    def __init__(self, spec: genesis.Genesis, key: crypto.PrivateKey,
                 settings: PeerSettings | None = None,
                 checkers: int = CHECKERS) -> None:  # fmt: skip
        self.spec = spec
        self.trusted = genesis.build_state(spec)
        self.gossip = Gossip(key, self._on_message, settings=settings)
        self._offers: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue()
        self._events: asyncio.Queue[tuple[bytes, bytes] | _Checked] = asyncio.Queue()
        self.checkers = checkers
        self._pool: ProcessPoolExecutor | None = None
        self.banned: list[bytes] = []
        self._heard: dict[bytes, float] = {}  # each peer's last chunk, as it arrived
        self._queued: dict[bytes, int] = {}  # each peer's chunks arrived, not yet verified

    async def _on_message(self, kind: Kind, payload: bytes, peer: bytes) -> Outcome:
        if kind is Kind.SNAPSHOT_OFFER:
            self._offers.put_nowait((peer, payload))
            return Outcome.RELAY
        if kind is Kind.CHUNK:
            self._heard[peer] = asyncio.get_running_loop().time()  # not when verified
            self._queued[peer] = self._queued.get(peer, 0) + 1
            self._events.put_nowait((peer, payload))
            return Outcome.RELAY
        return Outcome.IGNORE  # the chain's traffic: this node does not follow it yet

    def certified(self, raw: bytes) -> Offer | None:
        """The offer if it is well formed, its block h and the next block h+1 (whose
        header carries the snapshot's root) are each certified by the trusted set, and
        h+1 follows h."""
        try:
            offer = snapshots.decode_offer(raw)
            header = blocks.decode(offer.block).header
            following = blocks.decode(offer.next_block)
            certificate = _certificate.decode(offer.certificate)
            next_certificate = _certificate.decode(offer.next_certificate)
        except msgspec.DecodeError:
            return None
        if header.height != offer.height or header.chain_id != self.spec.chain_id:
            return None
        if following.header.height != offer.height + 1 or following.header.prev_hash != (
            blocks.decode(offer.block).hash
        ):
            return None
        if not proofs.partitions(offer.ranges, offer.depth):
            return None
        genesis_set = validator_set.for_height(self.trusted, 1)
        try:
            walked = light_client.walk(self.spec.chain_id, genesis_set, offer.hops,
                                       offer.height + 1)  # fmt: skip
        except light_client.Untrusted as exc:
            _log.warning("a snapshot offer's validator-set changes do not follow from "
                         "genesis: %s", exc)  # fmt: skip
            return None
        pairs = ((offer.height, offer.block, certificate),
                 (offer.height + 1, offer.next_block, next_certificate))  # fmt: skip
        for height, block, votes in pairs:
            validators = walked.for_height(height)
            if not core.check_commit(self.spec.chain_id, validators, height, block, votes,
                                     crypto.verify):  # fmt: skip
                return None
        return offer

    async def connect(self, peers: list[tuple[str, int, str]], deadline: float) -> None:
        """Dial the peers until at least one answers (or the deadline passes)."""
        loop = asyncio.get_running_loop()
        while not self.gossip.peers and loop.time() < deadline:
            await asyncio.gather(
                *(self.gossip.dial(h, p, bytes.fromhex(i)) for h, p, i in peers),
                return_exceptions=True,
            )
            if not self.gossip.peers:
                await asyncio.sleep(0.5)
        if not self.gossip.peers:
            return
        await asyncio.gather(  # the others, once more: every source counts
            *(self.gossip.dial(h, p, bytes.fromhex(i)) for h, p, i in peers
              if bytes.fromhex(i) not in self.gossip.peers),
            return_exceptions=True,
        )  # fmt: skip

    async def choose(self, deadline: float) -> list[dict[bytes, Offer]]:
        """Ask every peer for offers; the certified snapshots, each with the peers that
        serve it, newest first (and among equals the most served first)."""
        loop = asyncio.get_running_loop()
        for peer in list(self.gossip.peers):
            self.gossip.send_to(peer, Kind.SNAPSHOTS_REQUEST, b"")
        # Honest nodes cut the same state alike: sources must agree on block and chunks.
        by_snapshot: dict[tuple[int, bytes, int, tuple[tuple[int, int], ...]],
                          dict[bytes, Offer]] = {}  # fmt: skip
        until, offered = deadline, set[bytes]()
        while (left := until - loop.time()) > 0:
            try:
                peer, raw = await asyncio.wait_for(self._offers.get(), left)
            except TimeoutError:
                break
            offer = self.certified(raw)
            if offer is None:  # maybe honest, from after a change of the validator set
                _log.warning("a snapshot offer without a trusted certificate was ignored",
                             extra={"peer": peer.hex()})  # fmt: skip
                continue
            snapshot = (offer.height, block_id(offer.next_block), offer.depth, offer.ranges)
            by_snapshot.setdefault(snapshot, {})[peer] = offer
            offered.add(peer)
            # Wait a while for more, and only a moment once every peer has answered.
            more = OFFER_WAIT_S if offered < set(self.gossip.peers) else OFFER_GRACE_S
            until = min(deadline, loop.time() + more)
        ranked = sorted(by_snapshot.items(), key=lambda s: (s[0][0], len(s[1])), reverse=True)
        return [peers for _, peers in ranked]

    async def fetch(self, sources: dict[bytes, Offer], store: Store) -> Restore:
        """Every chunk of the chosen snapshot, verified and written; returns the restore
        to finish (`Restore.finish`). Chunks are checked in the worker processes
        (`checkers`) while this loop receives the next ones and writes those checked; a
        chunk being checked still counts among its peer's requests in flight, so at
        most IN_FLIGHT chunks a peer are held here."""
        loop = asyncio.get_running_loop()
        offer = next(iter(sources.values()))
        fetching = _Fetching(offer, Restore(store, offer), deque(range(len(offer.ranges))),
                             {peer: _Source(o) for peer, o in sources.items()})  # fmt: skip
        active, todo, done = fetching.active, fetching.todo, fetching.done
        while len(done) < len(offer.ranges):
            now = loop.time()
            for peer, source in list(active.items()):
                heard = max(source.heard, self._heard.get(peer, 0.0))
                waiting = self._queued.get(peer, 0)  # this node's own backlog, not the peer's
                if source.asked and not waiting and now - heard > CHUNK_TIMEOUT_S:
                    todo.extend(source.asked)  # late: someone else gets them
                    source.asked.clear()
                    source.strikes += 1
                if source.strikes >= STRIKES or peer not in self.gossip.peers:
                    todo.extend(source.asked)
                    del active[peer]
            if not active and not fetching.checking:
                raise StateSyncFailed(f"{len(offer.ranges) - len(done)} chunks left and no "
                                      "peer to fetch them from")  # fmt: skip
            for peer, source in sorted(active.items(), key=lambda a: len(a[1].asked)):
                while todo and len(source.asked) < IN_FLIGHT:
                    index = todo.popleft()
                    if index in done or index in fetching.checking:
                        continue
                    if not source.asked:
                        source.heard = now  # the wait starts now
                    source.asked.add(index)
                    request = codec.encode(ChunkRequest(offer.height, index))
                    self.gossip.send_to(peer, Kind.CHUNK_REQUEST, request)
            try:
                event = await asyncio.wait_for(self._events.get(), 0.5)
            except TimeoutError:
                continue
            if isinstance(event, _Checked):
                self._checked(event, fetching)
            else:
                self._take(*event, fetching)
        return fetching.restore

    def _take(self, peer: bytes, raw: bytes, fetching: _Fetching) -> None:
        """A chunk arrived: if it was asked for, off to be checked."""
        source = fetching.active.get(peer)
        if source is not None:
            source.heard = asyncio.get_running_loop().time()  # its other requests wait from now
        try:
            chunk = snapshots.decode_chunk(raw)
        except msgspec.DecodeError:
            chunk = None
        if source is not None and chunk is not None and chunk.height != source.offer.height:
            self._queued[peer] = self._queued.get(peer, 1) - 1
            return  # a late answer for a snapshot given up on
        if (source is None or chunk is None or chunk.index not in source.asked
                or chunk.index in fetching.checking):  # fmt: skip
            self._queued[peer] = self._queued.get(peer, 1) - 1
            if source is not None:
                self.gossip.penalise(peer)  # nobody asked it for that
            return
        if chunk.index in fetching.done:
            self._queued[peer] = self._queued.get(peer, 1) - 1
            source.asked.discard(chunk.index)
            return
        fetching.checking.add(chunk.index)
        self._check(peer, chunk, raw, source.offer)

    def _check(self, peer: bytes, chunk: Chunk, raw: bytes, offer: Offer) -> None:
        """Verify `chunk` (its bytes `raw`) in a worker process, or here without workers;
        the outcome comes back as a `_Checked` event."""
        if self.checkers <= 0:
            try:
                verified = snapshots.verify_chunk(chunk, offer, offer.root)
            except proofs.BadChunk as exc:
                self._events.put_nowait(_Checked(peer, chunk, None, exc))
            else:
                self._events.put_nowait(_Checked(peer, chunk, verified, None))
            return
        if self._pool is None:  # spawned, not forked: this process runs threads and a loop
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.checkers, mp_context=context)
        future = asyncio.get_running_loop().run_in_executor(
            self._pool, snapshots.verify_encoded, raw, offer
        )

        def checked(future: asyncio.Future[Verified]) -> None:
            if future.cancelled():
                return
            exc = future.exception()
            verified = None if exc is not None else future.result()
            self._events.put_nowait(_Checked(peer, chunk, verified, exc))

        future.add_done_callback(checked)

    def _checked(self, event: _Checked, fetching: _Fetching) -> None:
        """A chunk's check is over: write it, or ban the peer that sent a bad one. A chunk
        that proved is taken though its peer was dropped meanwhile (it is proved)."""
        peer, index = event.peer, event.chunk.index
        self._queued[peer] = self._queued.get(peer, 1) - 1
        fetching.checking.discard(index)
        source = fetching.active.get(peer)
        if source is not None:
            source.asked.discard(index)
            source.heard = asyncio.get_running_loop().time()
        if event.verified is not None:
            if index not in fetching.done:
                verified = dataclasses.replace(event.verified, records=event.chunk.records)
                fetching.restore.add(verified)
                fetching.done.add(index)
            return
        if not isinstance(event.failure, proofs.BadChunk):
            raise StateSyncFailed(f"checking chunk {index} failed: {event.failure!r}")
        fetching.todo.append(index)
        if peer in self.banned:  # its other chunks were being checked as it was banned
            return
        _log.warning("a peer sent a snapshot chunk that does not prove: banned", extra={
            "peer": peer.hex(), "chunk": index, "why": str(event.failure)})  # fmt: skip
        self.gossip.ban(peer, "bad chunk")
        self.banned.append(peer)
        if source is not None:
            fetching.todo.extend(source.asked)
            del fetching.active[peer]

    def close(self) -> None:
        """Stop the checking processes (`fetch` starts them when first needed)."""
        if self._pool is not None:  # waited for: their CPU time then counts as this one's
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


@dataclass
class _Fetching:
    """One snapshot being fetched: what is left to ask, being checked, and done."""

    offer: Offer
    restore: Restore
    todo: deque[int]
    active: dict[bytes, _Source]
    done: set[int] = field(default_factory=set)
    checking: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class _Checked:
    """The outcome of checking a chunk `peer` sent: what it proved, or why not."""

    peer: bytes
    chunk: Chunk
    verified: Verified | None
    failure: BaseException | None


async def join(data: Path, spec: genesis.Genesis, key: crypto.PrivateKey,
               peers: list[tuple[str, int, str]], settings: PeerSettings | None = None,
               timeout_s: float = 30.0, clock: Callable[[], float] | None = None,
               checkers: int = CHECKERS) -> Joined | None:  # fmt: skip
    """State-sync the store at `data` (which must hold no chain) from `peers`; returns what
    was done, or None when no peer offered a certified snapshot within `timeout_s` (the
    node then starts from genesis). Raises `StateSyncFailed` when fetching failed.
    `checkers`: processes that check chunks (0: on the loop, `Joiner`)."""
    loop = asyncio.get_running_loop()
    started = (clock or loop.time)()
    joiner = Joiner(spec, key, settings, checkers)
    staging = data.with_name(data.name + ".statesync")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        deadline = loop.time() + timeout_s
        await joiner.connect(peers, deadline)
        candidates = await joiner.choose(deadline)
        if not candidates:
            return None
        offer, count = await _fetch_one(joiner, candidates, staging)
        shutil.rmtree(data, ignore_errors=True)  # a store with no chain (`has_chain`)
        staging.rename(data)
    finally:
        joiner.close()
        await joiner.gossip.close()
        shutil.rmtree(staging, ignore_errors=True)
    seconds = (clock or loop.time)() - started
    _log.info("state sync done", extra={"height": offer.height, "chunks": count,
                                         "seconds": round(seconds, 2)})  # fmt: skip
    return Joined(offer.height, count, joiner.banned, seconds)


async def _fetch_one(
    joiner: Joiner, candidates: list[dict[bytes, Offer]], staging: Path
) -> tuple[Offer, int]:
    """The first candidate snapshot (newest first) whose chunks all arrive, written into a
    new store at `staging` and finished there (its tree checked against the certified
    root, `Restore.finish`); a candidate whose sources all fail gives way to the next."""
    failures, trusted_root = [], joiner.trusted.root()
    for sources in candidates:
        offer = next(iter(sources.values()))
        _log.info("state sync: fetching a snapshot", extra={"height": offer.height,
                  "chunks": len(offer.ranges), "peers": len(sources)})  # fmt: skip
        shutil.rmtree(staging, ignore_errors=True)
        try:
            with Store(staging, bulk=True) as store:
                restore = await joiner.fetch(sources, store)
                await asyncio.to_thread(restore.finish, trusted_root, joiner.spec.hash())
                return offer, len(offer.ranges)
        except StateSyncFailed as exc:
            failures.append(f"height {offer.height}: {exc}")
    raise StateSyncFailed("; ".join(failures))


def has_chain(data: Path) -> bool:
    """Whether the store at `data` holds any block (state sync needs one that does not)."""
    if not (data / "CURRENT").exists():
        return False
    with Store(data) as store:
        return store.height() > 0
