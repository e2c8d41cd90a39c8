"""A validator node: the consensus core, the application and gossip, on one asyncio loop.

The node is the only place with a clock and sockets. It feeds the core the messages gossip
delivers and the timeouts the core asked for, and carries out the core's actions: it
publishes votes and proposals (after writing the core's state to the write-ahead log in
RocksDB, so a restart never signs twice), builds blocks when it proposes, checks proposed
blocks by trial execution, and commits decided blocks into the store before starting the
next height with the validator set the ledger gives for it.

The consensus path never waits for a peer: sending is queueing (`p2p.connection.Peer`), so
carrying out the core's actions (`_act`) is a plain call. What a peer sends is checked from
the cheap end: a proposal's proposer and signature, a vote's signer and signature and a
commit's certificate are verified before anything is executed or relayed (a forgery bans
its sender), and a proposal's transactions are verified in the mempool's thread pool, off
the loop, before its trial execution, which runs once the proposal is relayed. Proposals
and certified blocks travel compact (`chain.compact`): a node rebuilds the block from its
mempool and recent transactions and fetches only what it lacks (`node.compact_blocks`);
it forwards one certificate per height, as soon as it checks, before the block executes.
Nothing a node acknowledged is stranded: its pending transactions go to every peer that
connects, and those that waited too long are sent again, with a backoff. The long-running
tasks run under a `Supervisor`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from typing import Any, Final

import msgspec

from gridtokenx.chain import blocks, compact
from gridtokenx.chain.application import CERTIFIED, Application, Rejected
from gridtokenx.chain.blocks import MAX_BLOCK_TXS, MAX_CLOCK_DRIFT, Receipt
from gridtokenx.chain.compact import Compact, CompactCommit, CompactProposal
from gridtokenx.chain.mempool import Admission, Checked
from gridtokenx.consensus import core
from gridtokenx.ledger import registry
from gridtokenx.ledger.context import Event
from gridtokenx.node import state_sync
from gridtokenx.node.auction_clearer import AuctionClearer
from gridtokenx.node.block_sync import SYNC_CONTINUE_S, SYNC_RUN, BlockSync
from gridtokenx.node.compact_blocks import (
    FETCH_TIMEOUT_S,
    Answer,
    Fetcher,
    RecentTxs,
    Request,
    Whole,
)
from gridtokenx.node.metrics import Metrics
from gridtokenx.node.presence import ABSENT_PROPOSE_S, Presence
from gridtokenx.node.supervisor import Supervisor
from gridtokenx.node.telemetry import CommitInfo, Telemetry
from gridtokenx.p2p.connection import PeerSettings
from gridtokenx.p2p.gossip import LIMITS, STATE_SYNC, Gossip, Kind, Outcome
from gridtokenx.p2p.mesh import Topic
from gridtokenx.p2p.peers import AddressBook
from gridtokenx.storage.snapshots import Snapshots
from gridtokenx.storage.store import Store
from gridtokenx.wire import codec, crypto, errors, tx
from gridtokenx.wire.votes import Commit, Proposal, Vote, block_id

SYNC_RUN_BYTES: Final = 2 * 1024 * 1024  # and at most about this many bytes
TX_BATCH_MAX: Final = 2048  # transactions in one relayed frame
ANNOUNCE_MAX: Final = 4 * TX_BATCH_MAX  # pending transactions sent to a peer that connects
STALE_TX_S: Final = 10.0  # a pending transaction is sent to every peer again after this...
STALE_TX_MAX_S: Final = 300.0  # ...then after twice as long each time, up to this
STALE_CHECK_S: Final = 5.0  # how often the pending transactions are looked over
STALE_PER_PASS: Final = TX_BATCH_MAX  # at most this many sent again per look
SIGNATURE_CACHE: Final = 4096
GRID_INLINE_MAX: Final = 16
"""A peer's grid batch of at most this many is admitted as it arrives, its signatures
verified on the loop (some 60 us each), instead of joining the queue of transactions
waiting for admission: at 1,000 orders/s on a loaded machine that queue held seconds of
orders, and a grid update behind it reached a block 15 heights after it was sent
(December 2026). A larger one (no honest node sends one: they relay as they admit) takes
the queue, so a peer cannot hold the loop with thousands of signatures."""
HEARD_MAX: Final = 1024  # this height's relayed proposals and votes kept for new peers...
HEARD_BYTES: Final = 16 * 1024 * 1024  # ...and their bytes at most (the newest kept)
_tx_batch: Final = msgspec.msgpack.Decoder(list[bytes])
_ids: Final = _tx_batch  # a TXS_REQUEST: transaction ids
_DISHONEST: Final = frozenset(
    {errors.InvalidSignature.code, errors.WrongChainId.code, *codec.DECODE_ERROR_CODES}
)


def _is_grid(raw: bytes, known: bool | None = None) -> bool:
    """A grid operator's status report or an emergency (`tx.is_priority`). `known`: the
    mempool's verdict, when it holds it (`Mempool.priority`: each transaction is decoded
    and judged once a node)."""
    if known is not None:
        return known
    try:
        return tx.is_priority(tx.decode(raw).tx.body)
    except ValueError:  # codec.DecodeError: it travels, and fails, with the rest
        return False


class _Arrival:
    """A peer's transaction batch on its way through admission: forwarded as it came once
    all of it is admitted (`Gossip.forward`), else what was admitted of it is relayed."""

    __slots__ = ("admitted", "count", "kind", "left", "payload", "whole")

    def __init__(self, kind: Kind, payload: bytes, count: int, whole: bool) -> None:
        self.kind, self.payload, self.count = kind, payload, count
        self.left = count  # transactions not yet through admission
        self.whole = whole  # none of them was held or queued already as it arrived
        self.admitted: list[tuple[bytes, bytes]] = []  # (raw, hash)


CommitListener = Callable[[int, bytes, list[Receipt], list[Event]], None]
"""Told of every commit: (height, block bytes, receipts, end-of-block events)."""
_log: Final = logging.getLogger(__name__)


class _Signatures:
    """Ed25519 with a memory of recent good signatures: a vote is verified before it is
    relayed and again by the core, and the second time costs a lookup."""

    def __init__(self, size: int = SIGNATURE_CACHE) -> None:
        self._good: OrderedDict[tuple[bytes, bytes, bytes], None] = OrderedDict()
        self._size = size

    def __call__(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        key = (public_key, message, signature)
        if key in self._good:
            return True
        if not crypto.verify(public_key, message, signature):
            return False
        self._good[key] = None
        if len(self._good) > self._size:
            self._good.popitem(last=False)
        return True


class Node:
    def __init__(
        self,
        key: crypto.PrivateKey,
        app: Application[Store],
        timeouts: core.Timeouts | None = None,
        clock: Callable[[], float] = time.time,
        block_interval: float = 0.0,
        address_book: AddressBook | None = None,
        min_block_gap: float = 0.0,
        build_budget: float = 0.25,
        clock_drift: int = MAX_CLOCK_DRIFT,
        peer_settings: PeerSettings | None = None,
    ) -> None:
        """`block_interval` (seconds) paces empty blocks: with nothing to include, a
        proposer waits that long after the previous commit (the others' propose timeout
        must allow for it). With transactions ready it proposes `min_block_gap` after the
        commit, and stops adding transactions to a block once building it has taken
        `build_budget` seconds, so that validating it fits the consensus timeouts.
        `peer_settings` caps and times the node's connections (`p2p.connection`)."""
        self.key = key
        self.app = app
        self.clock = clock
        height = app.height + 1
        wal = app.store.load_wal()
        persistent = wal if wal is not None and wal.height == height else None
        self.verify = _Signatures()
        self.core = core.Core(
            app.chain_id,
            app.validators(height),
            key,
            self.verify,
            height,
            timeouts,
            persistent,
        )
        self._sentry = bool(peer_settings is not None and peer_settings.private_peer_ids)
        self.gossip = Gossip(key, self._on_message, address_book=address_book,
                             settings=peer_settings, topics=self._topics())  # fmt: skip
        self.gossip.reserved = self._reserved
        self.gossip.on_connect = self._announce_pending
        self.reserved_peers: set[bytes] = set()  # configured peers, let in beyond the cap
        self.supervisor = Supervisor()
        self._logged: core.Persistent | None = None  # what the WAL holds
        self._timers: list[asyncio.TimerHandle] = []  # fetches' expiries (`_ask`)
        self._timeouts: list[asyncio.TimerHandle] = []  # this height's consensus timeouts
        self.decided = asyncio.Event()
        self.halted: str | None = None
        self.block_interval = block_interval
        self.min_block_gap = min_block_gap
        self.build_budget = build_budget
        self.clock_drift = clock_drift  # chain seconds a proposal may be off this clock
        self._txs_arrived = asyncio.Event()
        self._priority_arrived = asyncio.Event()  # a grid update or emergency was admitted
        self.metrics = Metrics()
        self.metrics.watch(self.gossip, self.supervisor, app.mempool)
        self.telemetry = Telemetry(self.metrics, app.chain_id, self.verify, self._monikers,
                                   lambda: self.gossip.peers)  # fmt: skip
        self._via_certificate = False  # the decision being carried out is a peer's commit
        self._certified: set[int] = set()  # heights whose one certificate went out (or came)
        self._own: list[tuple[Kind, bytes]] = []  # this height's proposals and votes
        self._heard: deque[tuple[Kind, bytes]] = deque()  # peers' ones (`_keep_heard`)
        self._heard_bytes = 0
        self._last_commit = 0.0  # loop time of the last commit
        self._steps: dict[str, float] = {}  # this height's step times, logged at its commit
        self._proposal_at: float | None = None  # loop time the core took a valid proposal
        self.block_sync = BlockSync()  # runs of blocks asked, and blocks ahead of their turn
        self._synced = asyncio.Event()  # a synced block arrived: the applier looks
        self.started_at = time.monotonic()  # for the uptime `GET /status` reports
        self._inbox: list[tuple[bytes, bytes, bytes, _Arrival]] = []  # (raw tx, its hash,
        #                                                   from peer, the batch it came in)
        self._queued: set[bytes] = set()  # hashes in the inbox or being admitted
        self._inbox_ready = asyncio.Event()
        self._listeners: list[CommitListener] = []
        self._announced: dict[bytes, tuple[float, int]] = {}  # hash -> (loop time, times)
        self._checking: set[tuple[int, int]] = set()  # proposals in their trial: (height, round)
        self.presence = Presence(height)  # who signed what lately: cuts an absent proposer's turn
        self.snapshots: Snapshots | None = None  # what this node serves to state sync
        self.recent = RecentTxs()  # relayed and decided transactions, for compact blocks
        self.fetcher = Fetcher(self._lookup_tx, self.recent.add, lambda: list(self.gossip.peers))

    @property
    def failed(self) -> str | None:
        """Why the node stopped working (a supervised task failed for good), or None."""
        return self.supervisor.failed

    def _monikers(self) -> dict[bytes, str]:
        """The authorities' codes by validator address, for logs and metric labels."""
        return {
            crypto.address_of(a.public_key): a.code for _, a in registry.authorities(self.app.state)
        }

    def _topics(self) -> frozenset[Topic]:
        """The mesh topics this node takes: consensus messages stay among validators and
        sentries (a node that keeps its validator's address private); every node takes
        transactions, blocks and grid updates."""
        if self._sentry or self.core.validators.get(self.key.address) is not None:
            return frozenset(Topic)
        return frozenset(Topic) - {Topic.CONSENSUS}

    def _reserved(self, peer: bytes) -> bool:
        return peer in self.reserved_peers or self.core.validators.get(peer) is not None

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call `listener` after each commit, on the node's loop. It must only take note
        (queue, set a flag) and return: the next height waits for it. What it raises is
        logged and swallowed, so an API client can never stop consensus."""
        self._listeners.append(listener)

    def _notify(self, decision: core.Decide, receipts: list[Receipt]) -> None:
        if not self._listeners:
            return
        end_events = self.app.store.block_events(decision.height) or []
        for listener in self._listeners:
            try:
                listener(decision.height, decision.block, receipts, end_events)
            except Exception:
                _log.exception("a commit listener failed at height %d", decision.height)

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Gossip and the mempool run at once; consensus from genesis time on. Operators
        of a new chain start their nodes before the time the ceremony fixed, so that all
        of them are connected when the first height begins (as CometBFT's nodes wait for
        the genesis time), rather than the first validator up proposing alone into rounds
        that lengthen while the others arrive."""
        self.supervisor.keep("regossip", self._regossip_loop)
        self.supervisor.keep("ingest", self._ingest_loop)
        self.supervisor.keep("auction", AuctionClearer(self).run)
        self.supervisor.keep("block-sync", self._apply_synced)
        if self.genesis_in() > 0:
            self.supervisor.watch("genesis", self._start_at_genesis())
        else:
            self._act(self.core.start())

    def genesis_in(self) -> float:
        """Chain seconds until genesis time (0 once it has passed, or any block exists)."""
        if self.app.height > 0:
            return 0.0
        return max(0.0, self.app.last_time - self.clock())

    async def _start_at_genesis(self) -> None:
        while (left := self.genesis_in()) > 0:  # bounded: the clock reaches genesis time
            await asyncio.sleep(min(1.0, left))
        _log.info("genesis time reached: consensus starts", extra={"height": 1})
        self._act(self.core.start())

    async def _regossip_loop(self, every: float = 1.0) -> None:
        """Consensus assumes messages eventually arrive: re-send this height's own
        proposals and votes every second, for peers that restarted or reconnected. After
        a restart they include the votes the WAL held (the core broadcasts them again on
        `start`, before any peer is connected), which the crash may have lost. Pending
        transactions that waited too long go out again too. The gossip mesh's heartbeat
        runs here, and the node's topics follow the validator set."""
        loop = asyncio.get_running_loop()
        stale_checked = loop.time()
        while not self.halted:
            await asyncio.sleep(every)
            self.gossip.subscribe(self._topics())  # no-op unless voted in or out
            self.gossip.heartbeat()
            for kind, payload in list(self._own):
                self.gossip.rebroadcast(kind, payload)
            if (now := loop.time()) - stale_checked >= STALE_CHECK_S:
                stale_checked = now
                self._rebroadcast_stale(now)

    async def stop(self) -> None:
        await self.supervisor.stop()
        self.block_sync.clear()
        for timer in (*self._timers, *self._timeouts):
            timer.cancel()
        await self.gossip.close()
        self.app.close()

    # --- transactions ----------------------------------------------------------------------
    async def admit(
        self,
        raws: list[bytes],
        client: bool = False,
        relayed: bool = False,
        relay: bool = True,
        hashes: list[bytes] | None = None,
        inline: bool = False,
    ) -> list[Admission]:
        """The one way into this node's mempool, for gossip, a single submit and a batch
        alike: decode and verify in the mempool's thread pool (the loop keeps serving
        consensus meanwhile), admit on the loop (which saves what it acknowledges as
        pending before anyone is told, but not a peer's relay: `Application._keep`), wake
        the proposer, and queue what was admitted for every peer. One result per
        transaction, in order. Waking the proposer is what a path of its own would
        forget: its transactions then wait for the empty-block timer.
        `client` (from the API) or `relayed` (from a peer): subject to back-pressure
        (`chain.mempool`), judged before any signature is verified; a relay refused
        MEMPOOL_FULL is dropped without a word to the peer and costs it no score. `relay`
        False: the caller relays what was admitted (`_ingest_loop`: a peer's batch admitted
        whole is forwarded as it came). `hashes`: the transactions' ids, when the caller has
        them (a peer's batch is hashed as it arrives), so admission does not hash again.
        `inline`: decode and verify on the loop, not queued in the pool behind other
        batches (a few grid updates, `GRID_INLINE_MAX`); nothing is awaited then."""
        bounded = client or relayed
        mempool = self.app.mempool
        checked: list[Checked] = mempool.check(raws) if inline else []
        promised = mempool.reserve(len(raws), relayed) if bounded and not inline else 0
        try:
            for future in () if inline else mempool.precheck(raws, promised if bounded else None):
                chunk: list[Checked] = await asyncio.wrap_future(future)
                checked += chunk
            admissions = self.app.admit(raws, checked, bounded, hashes, keep=not relayed)
        finally:
            mempool.release(promised)
        accepted = [(raw, a.tx_hash) for raw, a in zip(raws, admissions, strict=True)
                    if a.accepted and a.tx_hash is not None]  # fmt: skip
        if accepted:
            self._txs_arrived.set()
            if self.app.mempool.priority_waiting:
                self._priority_arrived.set()
            sent = (asyncio.get_running_loop().time(), 0)  # one tuple for the batch
            self._announced.update((tx_hash, sent) for _, tx_hash in accepted)
        if relay:
            send = self.gossip.publish if client else self.gossip.relay
            self._relay([raw for raw, _ in accepted], send, [h for _, h in accepted])
        return admissions

    async def submit(self, raw: bytes) -> bytes:
        """A client's transaction: `admit` it (or raise `Rejected`); returns its hash."""
        (admission,) = await self.admit([raw], client=True)
        if not admission.accepted or admission.tx_hash is None:
            raise Rejected(admission.code, admission.message)
        return admission.tx_hash

    def _relay(
        self,
        raws: list[bytes],
        send: Callable[[Kind, bytes], object],
        hashes: list[bytes] | None = None,
        grid: list[bool] | None = None,
    ) -> None:
        """Queue transactions in batches (one frame, one encryption and one write for
        many) with `send`: a client's are published to every peer that takes them, those
        peers sent are relayed to the mesh, stale ones sent again to it, or sent to one
        peer. Grid updates and emergencies (`tx.is_priority`) go first, as a batch of
        their own kind on the grid topic, ahead of everything in every send queue. Peers
        that hold one recognise it by its hash. `hashes`: their ids, when the caller has
        them (admission), each in the order of `raws`; `grid`: which are grid updates,
        when the caller judged it already (`_pass_on`)."""
        if grid is None:
            priority = self.app.mempool.priority
            ids = [tx.hash_of(raw) for raw in raws] if hashes is None else hashes
            grid = [_is_grid(raw, priority(h)) for raw, h in zip(raws, ids, strict=True)]
        urgent: list[bytes] = []
        if any(grid):
            urgent = [raw for raw, g in zip(raws, grid, strict=True) if g]
            raws = [raw for raw, g in zip(raws, grid, strict=True) if not g]
        for kind, batch in ((Kind.GRID, urgent), (Kind.TX, raws)):
            for i in range(0, len(batch), TX_BATCH_MAX):
                send(kind, codec.encode(batch[i : i + TX_BATCH_MAX]))

    def _announce_pending(self, peer: bytes) -> None:
        """A peer connected (or reconnected): send it this height's proposals and votes,
        this node's own and those it relayed, then what it holds pending, the oldest
        first, up to ANNOUNCE_MAX. A node spreads a message once, when it first sees it:
        without this, what a sentry relayed before its other links existed never crossed
        them (its validator's re-sent copies are dropped there as seen), and validators
        behind sentries that came up a few seconds apart waited in round 0 for prevotes
        that never came (minutes, December 2026). A transaction acknowledged while the
        node was cut off, or before it restarted, would likewise wait here forever."""
        for kind, payload in [*self._own, *self._heard]:
            self.gossip.send_to(peer, kind, payload)
        waiting = self.app.mempool.waiting(ANNOUNCE_MAX)
        send = functools.partial(self.gossip.send_to, peer)
        self._relay([raw for _, raw in waiting], send, [h for h, _ in waiting])

    def _rebroadcast_stale(self, now: float) -> None:
        """Send again the pending transactions that waited longer than STALE_TX_S since
        they were last sent (twice as long after each time, up to STALE_TX_MAX_S), at most
        STALE_PER_PASS at a time: a relay lost to a full queue or a dropped peer is
        repaired, and a transaction that cannot apply yet costs little. The look stops
        once a pass's worth is due: under overload the pool holds tens of thousands, and
        walking all of them every STALE_CHECK_S for at most STALE_PER_PASS cost a
        validator about 3.6 µs per committed order at saturation (December 2026)."""
        announced, due = self._announced, list[tuple[bytes, bytes]]()
        mempool = self.app.mempool
        for tx_hash, raw in mempool.oldest():
            at, times = announced.setdefault(tx_hash, (now, 0))
            if now - at >= min(STALE_TX_MAX_S, STALE_TX_S * 2**times):
                announced[tx_hash] = (now, times + 1)
                due.append((tx_hash, raw))
                if len(due) >= STALE_PER_PASS:
                    break
        if len(announced) > 2 * len(mempool) + 1024:  # forget what left the mempool
            self._announced = {h: v for h, v in announced.items() if mempool.holds(h)}
        self._relay([raw for _, raw in due], self.gossip.rebroadcast, [h for h, _ in due])

    async def _receive_txs(self, payload: bytes, peer: bytes, grid: bool = False) -> bool:
        """Queue a peer's transaction batch for admission, skipping the ones already held
        or already queued; a small `grid` batch is admitted at once instead, ahead of the
        queue (`GRID_INLINE_MAX`). False (the peer loses score) when the batch is
        malformed, is a `grid` batch carrying anything but grid updates (which would buy
        trading the grid's place in every queue), or holds a grid update no honest node
        relays (a bad signature, another chain)."""
        try:
            raws = _tx_batch.decode(payload)
        except msgspec.DecodeError:
            return False
        if len(raws) > TX_BATCH_MAX or (grid and not all(_is_grid(raw) for raw in raws)):
            return False
        hashes = self.recent.ids_of(raws)
        self.recent.add(raws, hashes)  # a compact block may name one the mempool turns away
        mempool, queued = self.app.mempool, self._queued
        new = [(raw, tx_hash) for raw, tx_hash in zip(raws, hashes, strict=True)
               if tx_hash not in queued and not mempool.knows(tx_hash)]  # fmt: skip
        kind = Kind.GRID if grid else Kind.TX
        arrival = _Arrival(kind, payload, len(new), whole=len(new) == len(raws))
        if grid and len(raws) <= GRID_INLINE_MAX:
            if not new:
                return True
            admissions = await self.admit([raw for raw, _ in new], relayed=True, relay=False,
                                          hashes=[h for _, h in new], inline=True)  # fmt: skip
            self._pass_on([(raw, h, peer, arrival) for raw, h in new], admissions)
            return not any(a.code in _DISHONEST for a in admissions if not a.accepted)
        for raw, tx_hash in new:
            queued.add(tx_hash)
            self._inbox.append((raw, tx_hash, peer, arrival))
        if self._inbox:
            self._inbox_ready.set()
        return True

    async def _ingest_loop(self) -> None:
        """Admit queued transactions in batches (`admit`), pass them on (`_pass_on`), and
        take score from peers that sent transactions no honest node relays (undecodable,
        wrong chain, bad signature)."""
        while not self.halted:
            await self._inbox_ready.wait()
            self._inbox_ready.clear()
            while self._inbox and not self.halted:
                batch, self._inbox = self._inbox[:TX_BATCH_MAX], self._inbox[TX_BATCH_MAX:]
                try:
                    raws, hashes = [e[0] for e in batch], [e[1] for e in batch]
                    admissions = await self.admit(raws, relayed=True, relay=False, hashes=hashes)
                finally:
                    self._queued.difference_update(h for _, h, _, _ in batch)
                self._pass_on(batch, admissions)
                offenders = {
                    peer
                    for (_, _, peer, _), admission in zip(batch, admissions, strict=True)
                    if not admission.accepted and admission.code in _DISHONEST
                }
                for peer in offenders:
                    self.gossip.penalise(peer)

    def _pass_on(
        self, batch: list[tuple[bytes, bytes, bytes, _Arrival]], admissions: list[Admission]
    ) -> None:
        """Send on what peers sent and this node admitted. A batch admitted whole, as it
        came, is forwarded as it came (`Gossip.forward`): its id is the one the other
        nodes saw, so a node that has it drops later copies as seen, by the frame's id,
        before decoding it or hashing a transaction, and none goes back to the peers that
        sent it. Relaying the same transactions under a batch of this node's making
        (`Gossip.relay`) gave them a new id each hop, so in a full mesh of four each
        validator got up to three copies of each; and a batch admitted whole made the same
        bytes, whose id the mesh had seen, so it went nowhere and the other validators
        got those transactions only by fetching them for a proposal, or from the
        re-send after STALE_TX_S. The rest (a batch partly refused or partly held
        already, a TX batch carrying grid updates, which go first on their own kind) is
        relayed as before: its admitted transactions, batched."""
        priority = self.app.mempool.priority
        raws: list[bytes] = []
        hashes: list[bytes] = []
        grid: list[bool] = []
        for (raw, tx_hash, _, arrival), admission in zip(batch, admissions, strict=True):
            arrival.left -= 1
            if admission.accepted:
                arrival.admitted.append((raw, tx_hash))
            if arrival.left:
                continue  # the rest of it is in the next slice of the inbox
            whole = arrival.whole and len(arrival.admitted) == arrival.count
            if whole and arrival.kind is Kind.GRID:
                self.gossip.forward(arrival.kind, arrival.payload)
                continue
            urgent = [_is_grid(r, priority(h)) for r, h in arrival.admitted]  # judged once
            if whole and not any(urgent):
                self.gossip.forward(arrival.kind, arrival.payload)
                continue
            for (r, h), g in zip(arrival.admitted, urgent, strict=True):
                raws.append(r)
                hashes.append(h)
                grid.append(g)
        if raws:
            self._relay(raws, self.gossip.relay, hashes, grid)

    # --- inputs ----------------------------------------------------------------------------
    async def _on_message(self, kind: Kind, payload: bytes, peer: bytes) -> Outcome:
        """What a peer sent, checked from the cheap end (see the module docstring)."""
        try:
            if kind is Kind.TX or kind is Kind.GRID:
                if self.catching_up:  # its state is stale: verifying, holding and relaying
                    return Outcome.IGNORE  # the live stream would only slow block sync
                if not await self._receive_txs(payload, peer, grid=kind is Kind.GRID):
                    return Outcome.INVALID
                for whole in self.fetcher.completed() if self.fetcher.pending else ():
                    await self._on_completed(whole)  # what was being fetched arrived
                return Outcome.RELAY
            if kind is Kind.SYNC_REQUEST:
                return self._answer_sync(payload, peer)
            if kind in STATE_SYNC:
                return state_sync.answer(self.snapshots, self.gossip, kind, payload, peer)
            if kind is Kind.PROPOSAL or kind is Kind.VOTE:
                if kind is Kind.PROPOSAL:
                    proposal = msgspec.msgpack.decode(payload, type=CompactProposal)
                    outcome = await self._on_compact(proposal, payload, peer)
                else:
                    outcome = self._on_vote(msgspec.msgpack.decode(payload, type=Vote), peer)
                if outcome is Outcome.RELAY:  # of this height: kept for peers to come
                    self._keep_heard(kind, payload)
                return outcome
            if kind is Kind.TXS_REQUEST:
                return self._answer_txs(_ids.decode(payload), peer)
            if kind is Kind.TXS:
                return await self._on_txs(_tx_batch.decode(payload), peer)
            if kind is Kind.COMMIT:
                certified = msgspec.msgpack.decode(payload, type=CompactCommit)
                return await self._on_compact(certified, payload, peer)
            commit = msgspec.msgpack.decode(payload, type=Commit)
            return self._on_synced(commit, peer, len(payload))
        except msgspec.DecodeError:
            return Outcome.INVALID

    # --- compact blocks (`chain.compact`, `node.compact_blocks`) ---------------------------
    def _lookup_tx(self, tx_id: bytes) -> bytes | None:
        """A transaction this node holds: waiting in its mempool, or seen lately."""
        raw = self.app.mempool.raw(tx_id)
        return raw if raw is not None else self.recent.get(tx_id)

    async def _on_compact(self, message: Compact, payload: bytes, peer: bytes) -> Outcome:
        """A compact proposal or certified block: the checks that need no block first (a
        proposal's height and proposer, a certified block's height), then the block is put
        back together from what this node holds and judged as a whole one would be. One
        that lacks transactions is held while they are fetched, and not marked seen, so
        later copies name other peers to ask (`node.compact_blocks`); it is forwarded once
        whole and found valid (`_on_completed`)."""
        try:
            message.block.check()
        except ValueError:
            return Outcome.INVALID
        if isinstance(message, CompactProposal):
            early = self._before_block(message.height, message.round, message.proposer, peer)
        else:
            self._catch_up(message.height, peer)  # a full node hears of heights from these
            if message.height > self.core.height:  # it came while this node applied the
                return self._hold_ahead(message, peer, len(payload))  # one before
            early = self._before_certified(message.height)
        if early is not None:
            return early
        whole, request = self.fetcher.offer(message, payload, peer)
        if request is not None:
            if isinstance(message, CompactProposal):  # the height's committed line tells
                self._steps["fetched"] = self._steps.get("fetched", 0) + len(request.ids)
            self._ask(request)
        return Outcome.IGNORE if whole is None else await self._judge(whole, peer)

    def _hold_ahead(self, message: CompactCommit, peer: bytes, size: int) -> Outcome:
        """A certified block for a later height than this node decides: held for its turn
        in block sync's buffer (a node on the blocks mesh only would otherwise lose it and
        fall behind), when this node holds its transactions; else block sync, which the
        height shown has started, fetches it whole. Not forwarded: it is judged at its turn."""
        block = compact.assemble(message.block, self.fetcher.lookup)
        if block is not None:
            self._on_synced(message.whole(block), peer, size)
        return Outcome.IGNORE

    async def _judge(self, whole: Whole, peer: bytes) -> Outcome:
        """A message made whole: its block's ids are the compact form's (each transaction
        was found by its id), kept so that checking and executing it hash none again."""
        message = whole.message
        self.app.keep_ids(compact.whole(message.block, whole.txs), message.block.tx_ids)
        if isinstance(message, CompactProposal):
            return await self._on_proposal(message.whole(whole.block), peer)
        return self._on_certified(message.whole(whole.block))

    async def _on_completed(self, whole: Whole) -> None:
        """A held message made whole by an answer: judged, then forwarded as received
        when valid; a forgery bans every peer that sent it (none would have relayed it)."""
        outcome = await self._judge(whole, whole.sources[0])
        kind = Kind.PROPOSAL if isinstance(whole.message, CompactProposal) else Kind.COMMIT
        if outcome is Outcome.RELAY:  # on to the topic's mesh, as forwarding would have
            self.gossip.relay(kind, whole.payload)
            if kind is Kind.PROPOSAL:  # of this height: kept for peers to come
                self._keep_heard(kind, whole.payload)
        elif outcome is Outcome.FORGED:
            for source in whole.sources:
                self.gossip.ban(source, "forged")
        elif outcome is Outcome.INVALID:
            for source in whole.sources:
                self.gossip.penalise(source)

    def _ask(self, request: Request) -> None:
        """Send a fetch and give it FETCH_TIMEOUT_S; a peer gone meanwhile is passed over."""
        payload = codec.encode(list(request.ids))
        if not self.gossip.send_to(request.peer, Kind.TXS_REQUEST, payload):
            self._fetch_expired(request.key, request.attempt)
            return
        loop = asyncio.get_running_loop()
        expire = loop.call_later(FETCH_TIMEOUT_S, self._fetch_expired, request.key, request.attempt)
        self._timers.append(expire)

    def _fetch_expired(self, key: bytes, attempt: int) -> None:
        if (request := self.fetcher.expired(key, attempt)) is not None:
            self._ask(request)

    def _answer_txs(self, ids: list[bytes], peer: bytes) -> Outcome:
        """A peer asks for transactions a compact block named: all of them, in order, or
        an empty answer when this node lacks one (or they would not fit one frame)."""
        if len(ids) > MAX_BLOCK_TXS or any(len(i) != compact.ID_SIZE for i in ids):
            return Outcome.INVALID
        found = [self._lookup_tx(i) for i in ids]
        raws = [r for r in found if r is not None]
        if len(raws) != len(ids) or sum(len(r) + 5 for r in raws) + 5 > LIMITS[Kind.TXS]:
            raws = []
        self.gossip.send_to(peer, Kind.TXS, codec.encode(raws))
        return Outcome.RELAY

    async def _on_txs(self, raws: list[bytes], peer: bytes) -> Outcome:
        """An answer to a fetch: what it completed is judged and forwarded; an answer that
        is not what was asked costs its sender score, and the next peer is asked."""
        answer, completed, retry = self.fetcher.answered(peer, raws)
        if retry is not None:
            self._ask(retry)
        for whole in completed:
            await self._on_completed(whole)
        return Outcome.INVALID if answer is Answer.WRONG else Outcome.RELAY

    def _before_certified(self, height: int) -> Outcome | None:
        """A certified block is judged only at this node's height, before it decided, and
        only the first valid one: one certificate per height goes on (`_on_certified`)."""
        if height != self.core.height or self.core.decided or height in self._certified:
            return Outcome.IGNORE
        return None

    def _on_certified(self, commit: Commit) -> Outcome:
        """A certified block from gossip: its certificate is checked (the signatures of
        more than 2/3 of the power of this height's validators, for this block), and a
        valid one is forwarded at once, before it is executed: gossip forwards it as this
        returns, and the execution (`_on_commit`) runs as a task of its own after. Each hop
        then costs a certificate check rather than an execution. It is the first valid
        certificate this node has for the height, and the only one it forwards: any valid
        one proves the block, and the header carries no last commit that would need more
        (docs/consensus.md, "One certificate per height"); later ones are not spread."""
        early = self._before_certified(commit.height)
        if early is not None:
            return early
        if not core.check_commit(self.app.chain_id, self.core.validators, commit.height,
                                 commit.block, commit.certificate, self.verify):  # fmt: skip
            return Outcome.FORGED
        self._certified.add(commit.height)
        self.supervisor.watch("certified-block", self._execute_certified(commit))
        return Outcome.RELAY

    async def _execute_certified(self, commit: Commit) -> None:
        await self._on_commit(commit)

    def _keep_heard(self, kind: Kind, payload: bytes) -> None:
        """Keep a relayed proposal or vote of this height for the peers that connect later
        (`_announce_pending`), the newest HEARD_MAX and HEARD_BYTES at most: a proposer that
        signs a large block for each of its rounds cannot make the node hold them all."""
        self._heard.append((kind, payload))
        self._heard_bytes += len(payload)
        while len(self._heard) > HEARD_MAX or self._heard_bytes > HEARD_BYTES:
            self._heard_bytes -= len(self._heard.popleft()[1])

    def _answer_sync(self, payload: bytes, peer: bytes) -> Outcome:
        """A peer asked for the blocks from a height on: send a run of them (SYNC_RUN, or
        SYNC_RUN_BYTES), each with its certificate, in order. The peer reads one frame at
        a time, so each block is committed before the next is looked at."""
        first = int.from_bytes(payload)
        sent = 0
        for height in range(max(first, 1), min(first + SYNC_RUN, self.app.height + 1)):
            stored = self.app.store.block(height)
            if stored is None:  # pruned
                break
            certificate = msgspec.msgpack.decode(stored[1], type=tuple[Vote, ...])
            answer = codec.encode(Commit(height, stored[0], certificate))
            if not self.gossip.send_to(peer, Kind.SYNC_BLOCK, answer):
                break
            sent += len(answer)
            if sent >= SYNC_RUN_BYTES:
                break
        return Outcome.RELAY

    async def _on_proposal(self, proposal: Proposal, peer: bytes) -> Outcome:
        """The proposer and its signature first (a forgery bans the sender, unexecuted);
        then the proposal is relayed at once and checked in the background (`_check`).
        Relaying waits for the signature only, as for a vote: a signed proposal of an
        invalid block is refused by every node's own trial, and waiting for the trial at
        each hop would add one trial per hop to the proposal's way, which behind sentries
        (two hops) can outlast the propose timeout on a loaded machine."""
        early = self._before_block(proposal.height, proposal.round, proposal.proposer, peer)
        if early is not None:
            return early
        member = self.core.validators.get(proposal.proposer)
        if member is None or not self.verify(
            member.public_key, proposal.signing_bytes(self.app.chain_id), proposal.signature
        ):
            return Outcome.FORGED
        self.presence.heard(proposal.proposer, proposal.height)
        at = (proposal.height, proposal.round)
        self._checking.add(at)
        self.supervisor.watch("proposal-check", self._check(proposal))
        return Outcome.RELAY

    def _before_block(
        self, height: int, round: int, proposer: bytes, peer: bytes
    ) -> Outcome | None:
        """What a proposal's height, round and proposer decide before its block is looked
        at (or fetched): None when it is worth judging."""
        self._catch_up(height, peer)
        if height != self.core.height:
            return Outcome.IGNORE  # not checkable against this height's validators
        validators = self.core.validators
        if (
            round < 0
            or proposer != validators.proposer(height, round)
            or validators.get(proposer) is None
        ):
            return Outcome.FORGED
        if round in self.core.proposals or (height, round) in self._checking:
            return Outcome.IGNORE  # the round has its proposal; a second one is not spread
        return None

    async def _check(self, proposal: Proposal) -> None:
        """The transactions' signatures off the loop, then the trial execution, then the
        core is told. A trial that raises (a bug, not a bad block: those are invalid) is
        logged and the block taken as invalid, so the node prevotes nil and goes on.

        The block's time is judged against this node's clock only when it is proposed
        fresh (`valid_round` -1), as CometBFT's proposer-based timestamps do. A block
        proposed again with a valid round had a polka: more than 2/3 of the power judged
        it timely then, and the core prevotes it only once it has seen that polka. Judging
        its time again would make it invalid once the height has lasted MAX_CLOCK_DRIFT,
        and the validators locked on it would then prevote nil on every round for ever: a
        height that took over 5 s under load stopped the chain for good (83 s until the
        soak's end, December 2026)."""
        at = (proposal.height, proposal.round)
        try:
            verified = await self._signatures(proposal.block)
            if proposal.height != self.core.height or proposal.round in self.core.proposals:
                return  # the node moved on while the pool verified
            now = int(self.clock()) if proposal.valid_round < 0 else None
            began = time.perf_counter()
            try:
                valid = self.app.check_block(proposal.height, proposal.block, now,
                                             self.clock_drift, verified=verified)  # fmt: skip
            except Exception:
                _log.exception("checking the proposal at height %d round %d failed", *at)
                valid = False
            self._steps["check_s"] = time.perf_counter() - began
            if valid:
                self._proposed()
            self._act(self.core.on_proposal(proposal, valid=valid))
        finally:
            self._checking.discard(at)

    def _on_vote(self, vote: Vote, peer: bytes) -> Outcome:
        """A vote of this height is relayed only once its signer and signature check out."""
        self._catch_up(vote.height, peer)
        if vote.height != self.core.height:
            if vote.height == self.core.height - 1 and self.telemetry.late_precommit(vote):
                self.presence.heard(vote.validator, vote.height)
            return Outcome.IGNORE
        member = self.core.validators.get(vote.validator)
        if (
            vote.round < 0
            or member is None
            or not self.verify(member.public_key, vote.signing_bytes(self.app.chain_id),
                               vote.signature)
        ):  # fmt: skip
            return Outcome.FORGED
        self.presence.heard(vote.validator, vote.height)
        self._act(self.core.on_vote(vote))
        return Outcome.RELAY

    async def _on_commit(self, commit: Commit) -> Outcome:
        """A certified block for this height: once its certificate checks, the core decides
        it. Its transactions' signatures are not verified again (`_decide`): validators
        with more than 2/3 of the power vouched for the block, signatures included, the
        trust state sync and the light client rest on too (docs/consensus.md,
        "Replaying certified blocks")."""
        if commit.height != self.core.height or self.core.decided:
            return Outcome.IGNORE
        if not core.check_commit(self.app.chain_id, self.core.validators, commit.height,
                                 commit.block, commit.certificate, self.verify):  # fmt: skip
            return Outcome.FORGED
        self._via_certificate = True
        try:
            self._act(self.core.on_commit(commit.height, commit.block, commit.certificate))
        finally:
            self._via_certificate = False
        return Outcome.RELAY

    async def _signatures(self, raw: bytes) -> set[bytes] | None:
        """Hashes of a block's transactions whose signatures verify: those the mempool
        admitted, and the rest verified now in its thread pool while the loop goes on.
        None when the block does not decode (its check fails on its own). How many it
        verified and how long that took go into the height's committed line (`unheld`,
        `unheld_s`), beside `fetched`: under overload they showed that what delayed the
        prevote was the fetches, not these verifies (`chain.mempool`, December 2026)."""
        try:
            block = blocks.decode(raw)
        except ValueError:
            return None
        hashes = self.app.tx_ids(block)
        mempool = self.app.mempool
        others = [(h, r) for h, r in zip(hashes, block.txs, strict=True) if not mempool.holds(h)]
        verified = set(hashes) - {h for h, _ in others}
        checked: list[Checked] = []
        began = time.perf_counter()
        for future in mempool.precheck([r for _, r in others]):
            chunk: list[Checked] = await asyncio.wrap_future(future)
            checked += chunk
        if others:
            steps = self._steps
            steps["unheld"] = steps.get("unheld", 0) + len(others)
            steps["unheld_s"] = steps.get("unheld_s", 0) + time.perf_counter() - began
        verified.update(h for (h, _), (_, ok) in zip(others, checked, strict=True) if ok)
        return verified

    def _catch_up(self, seen_height: int, peer: bytes, shown: bool = True) -> None:
        """A peer is at a later height: ask for the runs of blocks from our next height on
        that are not asked or arriving yet, of the peers that have shown them, several at
        once (`node.block_sync`); no further than the peers have shown."""
        want = self.core.height
        now = asyncio.get_running_loop().time()
        self.telemetry.seen(peer, seen_height, want, now, shown)
        best = self.telemetry.best_seen
        if best <= want:
            return

        def peers_at(height: int) -> list[bytes]:
            return self.telemetry.peers_at(height) or [peer]

        for target, first in self.block_sync.plan(want, best, peers_at, now):
            self.gossip.send_to(target, Kind.SYNC_REQUEST, first.to_bytes(8))

    def _on_synced(self, commit: Commit, peer: bytes, size: int) -> Outcome:
        """A block sync answer: held for its turn, the applier woken, and the next runs asked."""
        now = asyncio.get_running_loop().time()
        self.block_sync.take(commit, peer, size, self.core.height, now)
        self._synced.set()  # also for a block held since, now due after a commit
        self._catch_up(self.telemetry.best_seen, peer, shown=False)  # ask on
        return Outcome.RELAY

    async def _apply_synced(self) -> None:
        """Apply synced blocks in height order as they become due, each through
        `_on_commit` (its certificate checked against its height's validators); a forged
        certificate bans the peer that sent it. A task of its own, so no peer's reader
        waits while a run executes; it gives the loop a turn after each block (a run
        applies without awaiting anything, and would otherwise hold the loop for the
        whole run: no vote, API read or status between its blocks).

        With nothing arriving for SYNC_CONTINUE_S it asks on by itself: a peer answers a
        run with SYNC_RUN_BYTES at most (a run of full blocks comes in part), and the rest
        is asked only when `plan` is called after the run went quiet. Arrivals and
        applied blocks call it, and so do peers' votes at the tip; a node whose peers were
        quiet (or whose blocks applied faster than they came) waited for ever."""
        while not self.halted:
            with contextlib.suppress(TimeoutError):
                # Not `wait_for`: on Python 3.11 it can swallow a cancellation that comes
                # as the wait ends, and the node's stop then waited on this task for ever.
                async with asyncio.timeout(SYNC_CONTINUE_S):
                    await self._synced.wait()
            self._synced.clear()
            best = self.telemetry.best_seen
            peers = self.telemetry.peers_at(self.core.height)
            if best > self.core.height and peers:
                self._catch_up(best, peers[0], shown=False)
            while not self.halted and (ahead := self.block_sync.pop(self.core.height)):
                outcome = await self._on_commit(ahead.commit)
                if outcome is Outcome.FORGED:
                    self.gossip.ban(ahead.peer, "forged")
                self._catch_up(self.telemetry.best_seen, ahead.peer, shown=False)
                await asyncio.sleep(0)

    @property
    def peer_height(self) -> int:
        """The highest height a connected peer has shown (0: none yet)."""
        return self.telemetry.peer_height()

    @property
    def catching_up(self) -> bool:
        """Whether the node is behind its peers (`Telemetry.behind`: a connected peer shows
        a height two or more beyond the one this node decides), the same answer the logs
        and the gridtokenx_sync_catching_up gauge give."""
        try:
            now = asyncio.get_running_loop().time()
        except RuntimeError:  # read from outside the node's loop (a test, a tool)
            now = time.monotonic()
        return self.telemetry.behind(self.core.height, now)

    def _timeout(self, t: core.ScheduleTimeout) -> None:
        """A timer the core asked for fired (a loop callback: nothing may escape it)."""
        state = self.core.state
        before = (state.height, state.round, state.step)
        try:
            actions = self.core.on_timeout(t.height, t.round, t.step)
        except Exception as exc:
            self.supervisor.fail(f"a consensus timeout failed with {type(exc).__name__}: {exc}")
            return
        if before != (self.core.state.height, self.core.state.round, self.core.state.step):
            self.telemetry.timeout(t.height, t.round, t.step.name.lower())
        self._act(actions)

    # --- outputs ---------------------------------------------------------------------------
    def _act(self, actions: list[core.Action]) -> None:
        """Carry out the core's actions; returns without waiting for any peer. A failure
        here (the WAL could not be written) leaves consensus unsafe to go on: the node
        stops."""
        if self.halted or self.failed or not actions:
            return
        try:
            self._carry_out(actions)
        except Exception as exc:
            self.supervisor.fail(f"a consensus step failed with {type(exc).__name__}: {exc}")
            return
        now = asyncio.get_running_loop().time()
        self.telemetry.round_at(self.core.height, self.core.state.round, now)

    def _carry_out(self, actions: list[core.Action]) -> None:
        """One synced WAL write per consensus step at most: only when this node is about to
        send something (a proposal or a vote it signed) and its state moved since the last
        write. Never signing twice needs the signed vote durable before it leaves; a state
        change that sends nothing (a timeout into the next round, the start of a height,
        a valid value noted) protects no signature, so it waits for the next send. A crash
        before then resumes from the earlier state, which can only cost a round: everything
        the node ever signed is in the WAL."""
        sends = any(isinstance(a, core.Broadcast) for a in actions)
        if sends and self.core.state != self._logged:
            self.app.store.save_wal(self.core.state)  # before anything leaves this node
            self._logged = msgspec.structs.replace(self.core.state)
        for action in actions:
            if isinstance(action, core.Broadcast):
                message = action.message
                if isinstance(message, Proposal):
                    proposal = compact.compact_proposal(message, self.app.tx_ids)
                    kind, payload = Kind.PROPOSAL, codec.encode(proposal)
                else:
                    kind, payload = Kind.VOTE, codec.encode(message)
                self._own.append((kind, payload))
                self.gossip.publish(kind, payload)
            elif isinstance(action, core.ScheduleTimeout):
                loop = asyncio.get_running_loop()
                delay = self._timeout_delay(action)
                self._timeouts.append(loop.call_later(delay, self._timeout, action))
            elif isinstance(action, core.RequestValue):
                self._spawn(self._propose_when_ready(action))
            elif isinstance(action, core.Decide):
                self._decide(action)
            elif isinstance(action, core.ReportEvidence):
                if action.evidence not in self.app.evidence:
                    self.telemetry.evidence(action.evidence)
                self.app.report_evidence(action.evidence)

    def _timeout_delay(self, timeout: core.ScheduleTimeout) -> float:
        """Seconds until `timeout` fires. The core's propose timeout includes the block
        time (`block_interval`) because an honest proposer with nothing to include waits
        that long; when the proposer cannot have waited (a later round proposes at once;
        at round 0 this node holds transactions ready, which gossip has given the proposer
        too), that allowance only delays the move past a proposer that is down. A proposer
        this node has not heard from for a few heights (`node.presence`) gets
        ABSENT_PROPOSE_S only. Timeouts are each validator's own liveness decision, so
        shortening one is always safe."""
        delay = timeout.delay_ms / 1000
        if timeout.step != core.Step.PROPOSE:
            return delay
        proposer = self.core.validators.proposer(timeout.height, timeout.round)
        if proposer != self.key.address and self.presence.absent(proposer, timeout.height):
            return min(delay, ABSENT_PROPOSE_S)
        if self.block_interval <= 0:
            return delay
        if timeout.round > 0 or self.app.mempool.has_ready(self.app.nonce_of):
            return max(delay - self.block_interval, delay / 2)
        return delay

    async def _propose_when_ready(self, request: core.RequestValue) -> None:
        """Propose as soon as transactions are ready to go into a block (but not sooner
        than `min_block_gap` after the last commit, so blocks gather what arrives while
        one is being agreed, unless a full block or a grid update waits already), and
        otherwise an empty block `block_interval` after the last commit. Later rounds
        propose at once: their time has passed already.

        A grid update or emergency a block could take cuts the gap short, whether it was
        waiting or arrives during it: the gap trades latency for fewer heights, which
        suits trading, but grid updates must reach every validator within 200 ms (issue
        16), and a gap of 100 ms was half of that (p99 199-205 ms at 1,000 orders/s,
        December 2026). One behind a gap in its sender's nonces does not: it could not go
        into the block, and would cut every height's wait short until the gap filled."""
        loop = asyncio.get_running_loop()
        empty_at = self._last_commit + self.block_interval
        earliest = self._last_commit + self.min_block_gap
        mempool = self.app.mempool
        while request.round == 0 and (now := loop.time()) < empty_at:
            if mempool.has_ready(self.app.nonce_of):
                if (
                    now >= earliest
                    or mempool.priority_ready(self.app.nonce_of)
                    or self._full_block_waits()
                ):
                    break
                self._priority_arrived.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(earliest):  # not `wait_for`: no task of
                        await self._priority_arrived.wait()  # its own (a height's wait)
                continue
            self._txs_arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(empty_at):
                    await self._txs_arrived.wait()
        if (self.core.height, self.core.state.round) == (request.height, request.round):
            self._propose_now(request)

    def _full_block_waits(self) -> bool:
        """Would the block hold as many transactions now as after `min_block_gap`? The gap
        trades a little latency for fewer heights while the backlog is light (each height
        costs its votes, synced writes and commit whatever it holds); with a block's worth
        ready (`Application.block_limit`) waiting adds nothing to the block, and under
        overload it would only slow the chain."""
        mempool = self.app.mempool
        return mempool.backlog >= self.app.block_limit(self.build_budget)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run the proposer's wait as a task the supervisor watches: if it fails, the node
        stops rather than go on as a validator that cannot propose."""
        self.supervisor.watch("proposer", work)

    def _propose_now(self, request: core.RequestValue) -> None:
        began = time.perf_counter()
        block = self.app.build_block(
            request.height, int(self.clock()), self.key.address, self.build_budget
        )
        steps, mempool = self._steps, self.app.mempool
        steps["build_s"] = time.perf_counter() - began
        # What the pool held, what of it a block could run, and the block's bound: a
        # small block from a full pool is told from one the bound cut (`Mempool.reap`).
        steps["held"], steps["ready"] = len(mempool), mempool.ready_at_reap
        steps["limit"] = self.app.last_block_limit
        self._proposed()
        self._act(self.core.on_value(request.height, request.round, block))

    def _proposed(self) -> None:
        """Note when this height first had a valid proposal (built or checked): the
        committed line then splits the height into waiting for a proposal, the votes and
        the execution (docs/consensus.md, "Where a height's time goes")."""
        if self._proposal_at is None:
            self._proposal_at = asyncio.get_running_loop().time()

    def _cancel_timers(self) -> None:
        """Drop the decided height's consensus timeouts: every timer the core asked for is
        for its height then, and one of a past height changes nothing (`Core.on_timeout`
        ignores it). Left to fire, they did so about twice a height each, for nothing, up
        to a second after the height ended (`_timeout`, a loop callback: 544 calls in 272
        empty heights of bench/height_bench.py, December 2026). A fetch's expiry may be
        for the next height (a message held ahead): of those only the spent ones go."""
        for timer in self._timeouts:
            timer.cancel()
        self._timeouts.clear()
        if self._timers:
            now = asyncio.get_running_loop().time()
            self._timers = [t for t in self._timers if not t.cancelled() and t.when() > now]

    def _height_steps(self, decided_at: float, now: float, cpu: float) -> dict[str, float]:
        """The height's step times for its committed line, and a fresh start for the next:
        `propose_s` from the last commit to a valid proposal, `vote_s` from there to the
        decision, `execute_s` (wall) and `execute_cpu_s` (this thread's CPU) of the commit,
        with `build_s` (the proposer's) or `check_s` (the others') when there were any."""
        steps, proposal_at = self._steps, self._proposal_at
        if proposal_at is not None and self._last_commit:
            steps["propose_s"] = proposal_at - self._last_commit
            steps["vote_s"] = decided_at - proposal_at
        steps["execute_s"] = now - decided_at
        steps["execute_cpu_s"] = cpu
        self._steps, self._proposal_at = {}, None
        return steps

    def _decide(self, decision: core.Decide) -> None:
        """Announce the certified block (unless a certificate for the height went out
        already: one per height), before executing it, then execute and store it with its
        certificate in canonical order (by validator address, as the core builds its own),
        and start the next height. A decided block has a certificate: its signatures are
        not verified again (`CERTIFIED`), whether this node screened it or not."""
        decided_id = block_id(decision.block)
        certificate = tuple(sorted(decision.commit, key=lambda v: v.validator))
        block, txs = compact.compact(decision.block, self.app.tx_ids)
        self.recent.add(txs, block.tx_ids)  # a peer that fetches the certified block asks
        self.fetcher.drop_below(decision.height + 1)
        commit = codec.encode(CompactCommit(decision.height, block, certificate))
        if decision.height not in self._certified:
            self._certified.add(decision.height)
            self.gossip.publish(Kind.COMMIT, commit)
        self._certified = {h for h in self._certified if h >= decision.height}
        for vote in certificate:
            self.presence.heard(vote.validator, decision.height)
        decided_at = asyncio.get_running_loop().time()
        cpu = time.thread_time()
        try:
            receipts = self.app.commit(decision.height, decision.block, certificate, CERTIFIED)
        except RuntimeError as exc:  # a divergent state root: stop, do not continue
            self.halted = str(exc)
            self.telemetry.halted(decision.height, str(exc))
            return
        now = asyncio.get_running_loop().time()
        steps = self._height_steps(decided_at, now, time.thread_time() - cpu)
        self._cancel_timers()
        self._last_commit = now
        info = CommitInfo(decision.height, decision.round, decided_id, len(decision.block),
                          len(receipts), certificate, self.core.validators,
                          self._via_certificate, steps, self.app.screened)  # fmt: skip
        self.telemetry.committed(info, now)
        self._notify(decision, receipts)
        self._own = [(Kind.COMMIT, commit)]
        self._heard.clear()
        self._heard_bytes = 0
        self.decided.set()
        self.decided = asyncio.Event()
        self._act(self.core.advance(self.app.validators(decision.height + 1)))
