"""A validator node: the consensus core, the application and gossip, on one asyncio loop.

The node is the only place with a clock and sockets. It feeds the core the messages gossip
delivers and the timeouts the core asked for, and carries out the core's actions: it
publishes votes and proposals (after writing the core's state to the write-ahead log in
RocksDB, so a restart never signs twice), builds blocks when it proposes, checks proposed
blocks by trial execution, and commits decided blocks into the store before starting the
next height with the validator set the ledger gives for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

import msgspec

from gridtokenx.chain.application import Application, Rejected
from gridtokenx.chain.blocks import MAX_CLOCK_DRIFT, Receipt
from gridtokenx.chain.mempool import Admission, Checked
from gridtokenx.consensus import core
from gridtokenx.ledger.context import Event
from gridtokenx.node.metrics import Metrics
from gridtokenx.p2p.gossip import Gossip, Kind
from gridtokenx.p2p.peers import AddressBook
from gridtokenx.storage.store import Store
from gridtokenx.wire import codec, crypto, errors, tx
from gridtokenx.wire.votes import Commit, Proposal, Vote

SYNC_RETRY_S: Final = 2.0  # ask again for a block that no peer sent
TX_BATCH_MAX: Final = 2048  # transactions in one relayed frame
_tx_batch: Final = msgspec.msgpack.Decoder(list[bytes])
_DISHONEST: Final = frozenset(
    {errors.InvalidSignature.code, errors.WrongChainId.code, *codec.DECODE_ERROR_CODES}
)


CommitListener = Callable[[int, bytes, list[Receipt], list[Event]], None]
"""Told of every commit: (height, block bytes, receipts, end-of-block events)."""
_log: Final = logging.getLogger(__name__)


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
    ) -> None:
        """`block_interval` (seconds) paces empty blocks: with nothing to include, a
        proposer waits that long after the previous commit (the others' propose timeout
        must allow for it). With transactions ready it proposes `min_block_gap` after the
        commit, and stops adding transactions to a block once building it has taken
        `build_budget` seconds, so that validating it fits the consensus timeouts."""
        self.key = key
        self.app = app
        self.clock = clock
        height = app.height + 1
        wal = app.store.load_wal()
        persistent = wal if wal is not None and wal.height == height else None
        self.core = core.Core(
            app.chain_id,
            app.validators(height),
            key,
            crypto.verify,
            height,
            timeouts,
            persistent,
        )
        self.gossip = Gossip(key, self._on_message, address_book=address_book)
        self._logged: core.Persistent | None = None  # what the WAL holds
        self._timers: list[asyncio.TimerHandle] = []
        self._tasks: set[asyncio.Future[None]] = set()
        self.decided = asyncio.Event()
        self.halted: str | None = None
        self.block_interval = block_interval
        self.min_block_gap = min_block_gap
        self.build_budget = build_budget
        self.clock_drift = clock_drift  # chain seconds a proposal may be off this clock
        self._txs_arrived = asyncio.Event()
        self.metrics = Metrics()
        self._own: list[tuple[Kind, bytes]] = []  # this height's proposals and votes
        self._regossip: asyncio.Task[None] | None = None
        self._last_commit = 0.0  # loop time of the last commit
        self._asked = (0, 0.0)  # the height we last asked a peer for, and when (loop time)
        self._best_seen = 0  # the highest height any peer's message showed
        self._inbox: list[tuple[bytes, bytes, bytes]] = []  # (raw tx, its hash, from peer)
        self._queued: set[bytes] = set()  # hashes in the inbox or being admitted
        self._inbox_ready = asyncio.Event()
        self._ingest: asyncio.Task[None] | None = None
        self._listeners: list[CommitListener] = []

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
        await self._act(self.core.start())
        self._regossip = asyncio.create_task(self._regossip_loop())
        self._ingest = asyncio.create_task(self._ingest_loop())

    async def _regossip_loop(self, every: float = 1.0) -> None:
        """Consensus assumes messages eventually arrive: re-send this height's own
        proposals and votes every second, for peers that restarted or reconnected. After
        a restart they include the votes the WAL held (the core broadcasts them again on
        `start`, before any peer is connected), which the crash may have lost."""
        while not self.halted:
            await asyncio.sleep(every)
            for kind, payload in list(self._own):
                await self.gossip.rebroadcast(kind, payload)

    async def stop(self) -> None:
        for loop_task in (self._regossip, self._ingest):
            if loop_task is not None:
                loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop_task
        for timer in self._timers:
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self.gossip.close()
        self.app.close()

    # --- transactions ----------------------------------------------------------------------
    async def admit(self, raws: list[bytes]) -> list[Admission]:
        """The one way into this node's mempool, for gossip, a single submit and a batch
        alike: decode and verify in the mempool's thread pool (the loop keeps serving
        consensus meanwhile), admit on the loop (which saves the admitted as pending
        before anyone is told), wake the proposer, and relay what was admitted. One
        result per transaction, in order. Waking the proposer is what a path of its own
        would forget: its transactions then wait for the empty-block timer."""
        checked: list[Checked] = []
        for future in self.app.mempool.precheck(raws):
            chunk: list[Checked] = await asyncio.wrap_future(future)
            checked += chunk
        admissions = self.app.admit(raws, checked)
        admitted = [raw for raw, a in zip(raws, admissions, strict=True) if a.accepted]
        if admitted:
            self._txs_arrived.set()
        await self._relay(admitted)
        return admissions

    async def submit(self, raw: bytes) -> bytes:
        """A client's transaction: `admit` it (or raise `Rejected`); returns its hash."""
        (admission,) = await self.admit([raw])
        if not admission.accepted or admission.tx_hash is None:
            raise Rejected(admission.code, admission.message)
        return admission.tx_hash

    async def _relay(self, raws: list[bytes]) -> None:
        """Send admitted transactions to every peer, in batches (one frame, one encryption
        and one write for many). Peers that already hold one recognise it by its hash."""
        for i in range(0, len(raws), TX_BATCH_MAX):
            await self.gossip.publish(Kind.TX, codec.encode(raws[i : i + TX_BATCH_MAX]))

    def _receive_txs(self, payload: bytes, peer: bytes) -> bool:
        """Queue a peer's transaction batch for admission, skipping the ones already held
        or already queued; False (the peer loses score) when the batch is malformed."""
        try:
            raws = _tx_batch.decode(payload)
        except msgspec.DecodeError:
            return False
        if len(raws) > TX_BATCH_MAX:
            return False
        mempool = self.app.mempool
        for raw in raws:
            tx_hash = tx.hash_of(raw)
            if tx_hash not in self._queued and not mempool.knows(tx_hash):
                self._queued.add(tx_hash)
                self._inbox.append((raw, tx_hash, peer))
        if self._inbox:
            self._inbox_ready.set()
        return True

    async def _ingest_loop(self) -> None:
        """Admit queued transactions in batches (`admit`), and take score from peers that
        sent transactions no honest node relays (undecodable, wrong chain, bad signature)."""
        while not self.halted:
            await self._inbox_ready.wait()
            self._inbox_ready.clear()
            while self._inbox and not self.halted:
                batch, self._inbox = self._inbox[:TX_BATCH_MAX], self._inbox[TX_BATCH_MAX:]
                admissions = await self.admit([raw for raw, _, _ in batch])
                self._queued.difference_update(h for _, h, _ in batch)
                offenders = {
                    peer
                    for (_, _, peer), admission in zip(batch, admissions, strict=True)
                    if not admission.accepted and admission.code in _DISHONEST
                }
                for peer in offenders:
                    await self.gossip.penalise(peer)

    # --- inputs ----------------------------------------------------------------------------
    async def _on_message(self, kind: Kind, payload: bytes, peer: bytes) -> bool:
        try:
            if kind is Kind.TX:
                return self._receive_txs(payload, peer)
            if kind is Kind.SYNC_REQUEST:
                height = int.from_bytes(payload)
                stored = self.app.store.block(height) if height <= self.app.height else None
                if stored is not None:
                    certificate = msgspec.msgpack.decode(stored[1], type=tuple[Vote, ...])
                    answer = codec.encode(Commit(height, stored[0], certificate))
                    await self.gossip.send_to(peer, Kind.SYNC_BLOCK, answer)
                return True
            if kind is Kind.PROPOSAL:
                proposal = msgspec.msgpack.decode(payload, type=Proposal)
                await self._catch_up(proposal.height, peer)
                now = int(self.clock())
                valid = self.app.check_block(proposal.height, proposal.block, now, self.clock_drift)
                await self._act(self.core.on_proposal(proposal, valid=valid))
                return True
            if kind is Kind.VOTE:
                vote = msgspec.msgpack.decode(payload, type=Vote)
                await self._catch_up(vote.height, peer)
                await self._act(self.core.on_vote(vote))
                return True
            commit = msgspec.msgpack.decode(payload, type=Commit)
            await self._act(self.core.on_commit(commit.height, commit.block, commit.certificate))
            if kind is Kind.SYNC_BLOCK:
                await self._catch_up(self._best_seen, peer)  # keep asking while behind
            return True
        except msgspec.DecodeError:
            return False

    async def _catch_up(self, seen_height: int, peer: bytes) -> None:
        """A peer is at a later height: ask it for our next block, once per height unless
        no answer came within SYNC_RETRY_S (the peer pruned that block, or the request or
        answer was lost); the retry goes to whichever peer shows a later height next."""
        self._best_seen = max(self._best_seen, seen_height)
        want = self.core.height
        now = asyncio.get_running_loop().time()
        asked, at = self._asked
        if self._best_seen > want and (asked != want or now - at > SYNC_RETRY_S):
            self._asked = (want, now)
            await self.gossip.send_to(peer, Kind.SYNC_REQUEST, want.to_bytes(8))

    def _timeout(self, t: core.ScheduleTimeout) -> None:
        self._spawn(self._act(self.core.on_timeout(t.height, t.round, t.step)))

    # --- outputs ---------------------------------------------------------------------------
    async def _act(self, actions: list[core.Action]) -> None:
        if self.halted or not actions:
            return
        if self.core.state != self._logged:  # a synced write only when the state moved
            self.app.store.save_wal(self.core.state)  # before anything leaves this node
            self._logged = msgspec.structs.replace(self.core.state)
        for action in actions:
            if isinstance(action, core.Broadcast):
                message = action.message
                kind = Kind.PROPOSAL if isinstance(message, Proposal) else Kind.VOTE
                payload = codec.encode(message)
                self._own.append((kind, payload))
                await self.gossip.publish(kind, payload)
            elif isinstance(action, core.ScheduleTimeout):
                loop = asyncio.get_running_loop()
                self._timers.append(loop.call_later(action.delay_ms / 1000, self._timeout, action))
            elif isinstance(action, core.RequestValue):
                self._spawn(self._propose_when_ready(action))
            elif isinstance(action, core.Decide):
                await self._decide(action)
            elif isinstance(action, core.ReportEvidence):
                self.app.report_evidence(action.evidence)

    async def _propose_when_ready(self, request: core.RequestValue) -> None:
        """Propose as soon as transactions are ready to go into a block (but not sooner
        than `min_block_gap` after the last commit, so blocks gather what arrives while
        one is being agreed), and otherwise an empty block `block_interval` after the last
        commit. Later rounds propose at once: their time has passed already."""
        loop = asyncio.get_running_loop()
        empty_at = self._last_commit + self.block_interval
        earliest = self._last_commit + self.min_block_gap
        while request.round == 0 and (now := loop.time()) < empty_at:
            if self.app.mempool.has_ready(self.app.nonce_of):
                if now >= earliest:
                    break
                await asyncio.sleep(earliest - now)
                continue
            self._txs_arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._txs_arrived.wait(), empty_at - now)
        if (self.core.height, self.core.state.round) == (request.height, request.round):
            await self._propose_now(request)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run timer-driven work as a task the node keeps a reference to until it ends."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _propose_now(self, request: core.RequestValue) -> None:
        block = self.app.build_block(
            request.height, int(self.clock()), self.key.address, self.build_budget
        )
        await self._act(self.core.on_value(request.height, request.round, block))

    async def _decide(self, decision: core.Decide) -> None:
        try:
            receipts = self.app.commit(decision.height, decision.block, decision.commit)
        except RuntimeError as exc:  # a divergent state root: stop, do not continue
            self.halted = str(exc)
            return
        await self.gossip.publish(
            Kind.COMMIT, codec.encode(Commit(decision.height, decision.block, decision.commit))
        )
        self._timers = [t for t in self._timers if not t.cancelled()]
        now = asyncio.get_running_loop().time()
        if self._last_commit:
            self.metrics.block_time.observe(now - self._last_commit)
        self._last_commit = now
        self.metrics.height.set(decision.height)
        self.metrics.commit_txs.set(len(receipts))
        self._notify(decision, receipts)
        self._own = [
            (Kind.COMMIT, codec.encode(Commit(decision.height, decision.block, decision.commit)))
        ]
        self.decided.set()
        self.decided = asyncio.Event()
        await self._act(self.core.advance(self.app.validators(decision.height + 1)))
