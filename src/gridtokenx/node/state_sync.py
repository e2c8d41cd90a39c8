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

A node need not walk the validator set from genesis (`Trust`): its operator may give it a
block to trust (`--trust-height/--trust-hash`, as CometBFT's trust options), which it
fetches from its peers before it takes any offer: a peer whose block at that height is
another is banned, and with no peer agreeing the node refuses to start. It then takes only
snapshots at or above that height, and follows the set from the one that block names. A
node that restarts far behind (`catch_up`) trusts its own last state the same way.

A node that restarts with a chain (state sync on) asks its peers for offers first, and
when a certified snapshot lies more than `state_sync_behind` heights beyond its own height
it state-syncs to it instead of replaying (`catch_up`), then block-syncs the tail. Its
old store stays in place, untouched, until the new one is fetched and verified; the swap
is two renames, and `recover` undoes one cut halfway, so a crash at any point leaves one
whole store (the old or the new).

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
from gridtokenx.storage.store import Store, open_application
from gridtokenx.storage.validator_history import Recorder
from gridtokenx.wire import codec, crypto
from gridtokenx.wire.validators import ValidatorSet
from gridtokenx.wire.votes import Commit, Vote, block_id

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
    """State sync could not complete (every source failed or was banned, or no peer's
    chain passes through the trusted block)."""


@dataclass(frozen=True)
class Trust:
    """A block the joiner trusts besides genesis: it takes only snapshots at or above
    `height`, whose chain passes through it. Either `block_hash` (the operator's
    `--trust-hash`: the header hash of the block at `height`, fetched from the peers and
    compared) or `validators` (the set signing `height`, known: a restarting node's own
    state)."""

    height: int
    block_hash: bytes | None = None
    validators: ValidatorSet | None = None


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
                 checkers: int = CHECKERS, trust: Trust | None = None) -> None:  # fmt: skip
        self.spec = spec
        self.trusted = genesis.build_state(spec)
        self.trust = trust
        self.trusted_header: blocks.Header | None = None  # the trusted block's, once fetched
        self.gossip = Gossip(key, self._on_message, settings=settings)
        self._offers: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue()
        self._events: asyncio.Queue[tuple[bytes, bytes] | _Checked] = asyncio.Queue()
        self.checkers = checkers
        self._pool: ProcessPoolExecutor | None = None
        self._blocks: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue()  # the trusted one
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
        if kind is Kind.SYNC_BLOCK and self.trust is not None and self.trusted_header is None:
            self._blocks.put_nowait((peer, payload))
            return Outcome.RELAY
        return Outcome.IGNORE  # the chain's traffic: this node does not follow it yet

    async def fetch_trusted(self, deadline: float) -> None:
        """Ask every peer for the trusted block (`Trust.block_hash`) and compare: a peer
        whose block at that height is another is on another chain and banned. Raises
        `StateSyncFailed` when no peer's chain passes through it. (A block sync request
        answers with a run of blocks from the height: only the first is looked at.)"""
        trust = self.trust
        if trust is None or trust.block_hash is None:
            return
        loop = asyncio.get_running_loop()
        for peer in list(self.gossip.peers):
            self.gossip.send_to(peer, Kind.SYNC_REQUEST, trust.height.to_bytes(8))
        answered: set[bytes] = set()
        disagreed: list[str] = []
        until = deadline
        while (left := until - loop.time()) > 0 and answered < set(self.gossip.peers):
            try:
                peer, raw = await asyncio.wait_for(self._blocks.get(), left)
            except TimeoutError:
                break
            try:
                commit = msgspec.msgpack.decode(raw, type=Commit)
                block = blocks.decode(commit.block)
            except msgspec.DecodeError:
                continue
            if commit.height != trust.height or peer in answered:
                continue  # the rest of the run
            answered.add(peer)
            if block.header.chain_id == self.spec.chain_id and block.hash == trust.block_hash:
                self.trusted_header = block.header
                until = min(until, loop.time() + OFFER_GRACE_S)  # the others, a moment
                continue
            disagreed.append(f"{peer.hex()[:16]} has {block.hash.hex()}")
            _log.error("a peer's chain disagrees with the trusted block: banned", extra={
                "peer": peer.hex(), "height": trust.height, "trusted": trust.block_hash.hex(),
                "theirs": block.hash.hex()})  # fmt: skip
            self.gossip.ban(peer, "chain disagrees with the trusted block")
            self.banned.append(peer)
        if self.trusted_header is None:
            why = ("; ".join(disagreed) if disagreed else
                   "no peer served it (pruned, or no peer answered)")  # fmt: skip
            raise StateSyncFailed(
                f"no peer's chain passes through the trusted block {trust.block_hash.hex()} "
                f"at height {trust.height}: {why}"
            )

    def _anchor(self, offer: Offer) -> tuple[int, ValidatorSet] | None:
        """Where the walk of the offer's validator history starts: genesis (None), or the
        trusted block's height and set. Raises `light_client.Untrusted`."""
        trust = self.trust
        if trust is None:
            return None
        if offer.height < trust.height:
            raise light_client.Untrusted(f"a snapshot at {offer.height}, below the trusted "
                                         f"height {trust.height}")  # fmt: skip
        if trust.validators is not None:
            return trust.height, trust.validators
        header = self.trusted_header
        if header is None:
            raise light_client.Untrusted("the trusted block was not fetched")
        if offer.height == trust.height and blocks.decode(offer.block).hash != trust.block_hash:
            raise light_client.Untrusted("a snapshot of another block at the trusted height")
        genesis_set = validator_set.for_height(self.trusted, 1)
        return trust.height, light_client.set_named(header, offer.hops, genesis_set)

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
                                       offer.height + 1, self._anchor(offer))  # fmt: skip
        except light_client.Untrusted as exc:
            _log.warning("a snapshot offer's validator-set changes do not follow from "
                         "the trusted set: %s", exc)  # fmt: skip
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
               checkers: int = CHECKERS, trust: Trust | None = None,
               beyond: int = 0) -> Joined | None:  # fmt: skip
    """State-sync the store at `data` from `peers`; returns what was done, or None when no
    peer offered a certified snapshot above height `beyond` within `timeout_s` (the node
    then starts from the store it has, or from genesis). A store already at `data` (a
    restarting node's, `catch_up`) is replaced only once the new one is verified
    (`_swap_in`). Raises `StateSyncFailed` when fetching failed or no peer's chain passes
    through the `trust`ed block. `checkers`: processes that check chunks (0: on the loop,
    `Joiner`)."""
    loop = asyncio.get_running_loop()
    started = (clock or loop.time)()
    joiner = Joiner(spec, key, settings, checkers, trust)
    staging = data.with_name(data.name + ".statesync")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        deadline = loop.time() + timeout_s
        await joiner.connect(peers, deadline)
        await joiner.fetch_trusted(deadline)
        candidates = [c for c in await joiner.choose(deadline)
                      if next(iter(c.values())).height > beyond]  # fmt: skip
        if not candidates:
            return None
        offer, count = await _fetch_one(joiner, candidates, staging)
        _swap_in(staging, data)
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


def _replaced(data: Path) -> Path:
    return data.with_name(data.name + ".replaced")


def _swap_in(staging: Path, data: Path) -> None:
    """Move the verified store at `staging` into place: the old one (if any) is moved
    aside first and deleted only once the new one is in place. A crash between the two
    renames leaves no `data`, which `recover` answers by moving the old one back."""
    old = _replaced(data)
    shutil.rmtree(old, ignore_errors=True)
    if data.exists():
        data.rename(old)
    staging.rename(data)
    shutil.rmtree(old, ignore_errors=True)


def recover(data: Path) -> str | None:
    """Finish or undo a `_swap_in` a crash cut short (the node calls it before it opens
    its store); what was done, or None. Without `data` the old store goes back (the new one
    may not have been in place); with it, the old one is deleted."""
    old = _replaced(data)
    if not old.exists():
        return None
    if data.exists():
        shutil.rmtree(old)
        return "the store replaced by state sync was deleted"
    old.rename(data)
    return "state sync was cut off while swapping stores: the old store is back"


async def catch_up(data: Path, spec: genesis.Genesis, key: crypto.PrivateKey,
                   peers: list[tuple[str, int, str]], behind: int,
                   settings: PeerSettings | None = None,
                   timeout_s: float = 30.0) -> Joined | None:  # fmt: skip
    """A restarting node with a chain at `data`: when its peers offer a certified snapshot
    more than `behind` heights beyond its height, state-sync to it rather than replay
    every block in between; None when none is offered (it then block-syncs as usual). It
    trusts its own state: the set signing its next height, from which it follows the
    offers' validator history (no walk from genesis). Raises `StateSyncFailed` when a
    fetch fails; the old store is then still in place."""
    app = open_application(spec, data)
    try:
        height = app.height
        trust = Trust(height + 1, validators=app.validators(height + 1))
    finally:
        app.close()
    return await join(data, spec, key, peers, settings, timeout_s, trust=trust,
                      beyond=height + behind)  # fmt: skip


def has_chain(data: Path) -> bool:
    """Whether the store at `data` holds any block (state sync needs one that does not)."""
    if not (data / "CURRENT").exists():
        return False
    with Store(data) as store:
        return store.height() > 0
