"""The replicated application a validator runs under consensus: a mempool, the ledger state
and a store (the `BlockStore` protocol; RocksDB in `storage.store`), with the three
questions consensus asks of it.

- `build_block`: the proposer's block from the mempool (transactions that pass the cheap
  checks, in order, under the state root after the previous height); nothing executes.
- `check_block`: is a proposed block valid? Header checks, its time against the local
  clock, its state root against this node's, then the cheap checks of `blocks.screen`.
- `commit`: execute a decided block once (failed transactions recorded as failed), write
  the height to the store in one atomic batch with its commit certificate, and drop the
  included transactions from the mempool.

Each signature is verified once per node: on admission to the mempool, or, for a block's
transactions the mempool never saw, just before that block is screened; and each
transaction is decoded once on admission, and the screen, the commit and its listeners
take that decoding (a transaction the mempool does not hold is decoded once per block).

Transactions wait in the `Mempool` (signatures verified in a thread pool, per-sender nonce
order, limits, eviction, and a reported outcome for every admitted transaction).
"""

from __future__ import annotations

from collections.abc import Collection, Container
from dataclasses import dataclass, field
from time import perf_counter, thread_time
from typing import Final, Generic, Protocol, TypeVar

import msgspec

from gridtokenx.chain import blocks
from gridtokenx.chain.blocks import StoredReceipt, encode_events
from gridtokenx.chain.mempool import DUPLICATE, Admission, Checked, Mempool
from gridtokenx.ledger import accounts, chain_info, validator_set
from gridtokenx.ledger.bucket_tree import TreeWrites
from gridtokenx.ledger.state import State
from gridtokenx.wire import codec, tx
from gridtokenx.wire.validators import ValidatorSet
from gridtokenx.wire.votes import Evidence, Vote

ZERO_HASH = b"\x00" * 32
BLOCK_TX_BYTES = 4 * 1024 * 1024 - 64 * 1024
"""The transactions a proposer puts in a block: the block, its header and per-transaction
framing, inside a proposal or a commit with its certificate, must fit one 4 MiB frame of
the transport (`p2p.transport.MAX_FRAME`); a larger one could not be sent to any peer."""


EXEC_S_PER_TX_GUESS = 300e-6
"""Seconds to execute a transaction at commit, until this node has measured its own (a
market order on a loaded 2-core machine; a quiet one takes about half)."""
MIN_BLOCK_TXS = 64  # a block may always hold this many, whatever the measured rate
SHARED_CORES_ALLOWANCE = 3.0
"""With a deep backlog, how much longer than its CPU time a block's execution may take on
the clock before the proposer cuts blocks by the clock instead: a block then holds `budget`
of execution CPU, and at most this many budgets of execution wall time (docs/consensus.md,
"What bounds a block")."""
KEPT_IDS = 4  # blocks whose transaction ids are kept (`tx_ids`): a height's proposals
DEEP_BACKLOG_BLOCKS = 2
"""More transactions waiting than this many blocks bounded by the clock is a deep backlog
(an overload): only then are blocks bounded by their execution CPU."""


class BlockStore(Protocol):
    """What the application needs of durable storage (`storage.store.Store` is the one
    implementation): the chain layer states it, the storage layer provides it, so the
    application never imports RocksDB and the simulator could run it on another store."""

    def height(self) -> int: ...

    def block(self, height: int) -> tuple[bytes, bytes] | None: ...

    def receipt(self, tx_hash: bytes) -> StoredReceipt | None: ...

    def commit_height(
        self, height: int, block: bytes, commit: bytes, tx_hashes: list[bytes],
        changes: dict[bytes, msgspec.Struct | None], receipts: list[bytes] | None = None,
        end_events: bytes | None = None, block_hash: bytes | None = None,
        tree: TreeWrites | None = None, forget: list[bytes] | None = None,
        encoded: dict[bytes, bytes] | None = None,
    ) -> None: ...  # fmt: skip

    def save_pending(self, txs: list[tuple[bytes, bytes]]) -> None: ...

    def forget_pending(self, hashes: list[bytes]) -> None: ...

    def pending(self) -> list[bytes]: ...

    def close(self) -> None: ...


StoreT = TypeVar("StoreT", bound=BlockStore)


class Rejected(ValueError):
    """The mempool refused a transaction; `code` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Application(Generic[StoreT]):
    chain_id: str
    state: State
    store: StoreT
    last_hash: bytes = ZERO_HASH
    last_time: int = 0
    mempool: Mempool = field(init=False)
    evidence: list[Evidence] = field(default_factory=list)  # reported, not yet in a block
    _screened: dict[bytes, list[tx.SignedTransaction]] = field(default_factory=dict, repr=False)
    _exec_s_per_tx: float = field(default=EXEC_S_PER_TX_GUESS, repr=False)  # recent, wall
    _exec_cpu_per_tx: float = field(default=EXEC_S_PER_TX_GUESS, repr=False)  # recent, CPU
    _kept: set[bytes] = field(default_factory=set, repr=False)  # hashes saved as pending
    _committed: tuple[int, list[tx.SignedTransaction]] | None = field(default=None, repr=False)
    screened: bool = field(default=True, repr=False)  # the last commit's block was screened
    last_block_limit: int = field(default=0, repr=False)  # `block_limit` of the last build
    _ids: dict[bytes, tuple[tuple[bytes, ...], tuple[bytes, ...]]] = field(
        default_factory=dict, repr=False
    )  # block hash -> (its transactions, their ids): `tx_ids`

    def __post_init__(self) -> None:
        self.mempool = Mempool(self.chain_id)

    def validators(self, height: int) -> ValidatorSet:
        """The set that signs `height`, from the ledger (changes land two heights later)."""
        return validator_set.for_height(self.state, height)

    def report_evidence(self, evidence: Evidence) -> None:
        if evidence not in self.evidence:
            self.evidence.append(evidence)

    def resume(self) -> None:
        """Continue from the store's last committed block, re-admitting what the mempool
        held when the node stopped (`storage.store.open_application` calls it)."""
        height = self.store.height()
        if height:
            stored = self.store.block(height)
            assert stored is not None
            last = blocks.decode(stored[0])
            self.last_hash, self.last_time = last.hash, last.header.time
        self._readmit(self.store.pending())

    def _readmit(self, raws: list[bytes]) -> None:
        """What the mempool held when the node stopped: admitted again (what was committed
        or went stale meanwhile is refused and forgotten), so a crash loses no transaction
        the node had acknowledged."""
        min_fee = chain_info.params(self.state).min_fee_satang
        results = self.mempool.add_batch(raws, self.nonce_of, min_fee)
        self._kept = {r.tx_hash for r in results if r.accepted and r.tx_hash is not None}
        stale = [tx.hash_of(raw) for raw in raws]
        self.store.forget_pending([h for h in stale if h not in self._kept])

    @property
    def height(self) -> int:
        return self.store.height()

    def receipt(self, tx_hash: bytes) -> StoredReceipt | None:
        """Where a committed transaction is and the events it produced (None: unknown here,
        pending, or pruned)."""
        return self.store.receipt(tx_hash)

    def close(self) -> None:
        self.mempool.close()
        self.store.close()

    # --- mempool ---------------------------------------------------------------------------
    def nonce_of(self, address: bytes) -> int | None:
        account = accounts.get_account(self.state, address)
        return None if account is None else account.nonce

    def submit(self, raw: bytes) -> bytes:
        """Admit a signed transaction to the mempool; returns its hash."""
        result = self.mempool.add(raw, self.nonce_of, chain_info.params(self.state).min_fee_satang)
        if not result.accepted or result.tx_hash is None:
            raise Rejected(result.code, result.message)
        self._keep([raw], [result])
        return result.tx_hash

    def admit(
        self,
        raws: list[bytes],
        checked: list[Checked],
        bounded: bool = False,
        hashes: list[bytes] | None = None,
        keep: bool = True,
    ) -> list[Admission]:
        """Admit transactions the mempool prechecked (decoded, signatures verified);
        `bounded`: from clients or peers, subject to the mempool's back-pressure; `hashes`:
        their ids when the caller has them (`Mempool.admit`). `keep` False: a peer relayed
        them, so nobody is told this node took them, they are not saved (`_keep`), and
        the relays' own limit bounds them (`Mempool.relay_backlog_limit`)."""
        min_fee = chain_info.params(self.state).min_fee_satang
        results = self.mempool.admit(
            raws, checked, self.nonce_of, min_fee, bounded, hashes, relayed=not keep
        )
        if keep:
            self._keep(raws, results)
        return results

    def _keep(self, raws: list[bytes], results: list[Admission]) -> None:
        """Save what this node acknowledges before anyone is told (see `Store.save_pending`):
        what it admitted, and what it already held when a client sends it again (DUPLICATE
        is an acknowledgement: docs/faults.md) but had not saved, having taken it from a
        peer. A peer's relay is not saved: a crash loses no acknowledged transaction that
        way, since the node that acknowledged it saved it, and saving it cost every other
        node a RocksDB write per transaction (and a delete when it commits)."""
        kept_already, holds = self._kept, self.mempool.holds
        kept = [(r.tx_hash, raw) for raw, r in zip(raws, results, strict=True)
                if r.tx_hash is not None and r.tx_hash not in kept_already
                and (r.accepted or (r.code == DUPLICATE and holds(r.tx_hash)))]  # fmt: skip
        self.store.save_pending(kept)
        kept_already.update(h for h, _ in kept)

    # --- what consensus asks ---------------------------------------------------------------
    def next_time(self, proposed: int) -> int:
        """Block time: the proposer's clock, but never before the previous block's (several
        blocks may share a second: the ledger's clock has whole seconds)."""
        return max(proposed, self.last_time)

    def build_block(
        self, height: int, time: int, proposer: bytes, budget: float | None = None
    ) -> bytes:
        """The proposer's block; with a `budget` (seconds), it holds no more transactions
        than `block_limit` allows, and transactions stop being added once building has
        taken that long (the rest wait for the next block). Building no longer executes,
        so without the first bound a block could take a whole backlog: up to MAX_BLOCK_TXS
        that every validator then executes at its commit, far beyond the consensus
        timeouts on a loaded machine. How much goes into a block is the proposer's choice,
        not part of consensus."""
        deadline = None if budget is None else perf_counter() + budget
        skipped: list[tuple[bytes, str]] = []
        ids: list[bytes] = []
        most = blocks.MAX_BLOCK_TXS if budget is None else self.block_limit(budget)
        self.last_block_limit = most
        reaped: list[bytes] = []
        candidates = self.mempool.reap(self.nonce_of, most, BLOCK_TX_BYTES, reaped)
        block, decoded = blocks.propose(
            self.state,
            self.chain_id,
            height,
            self.next_time(time),
            self.last_hash,
            proposer,
            validator_set.set_hash(self.validators(height)),
            candidates,
            self.evidence,
            verified=_AllVerified(),  # reaped from the mempool: verified on admission
            stop=None if deadline is None else lambda: perf_counter() > deadline,
            skipped=skipped,
            known=self.mempool.decoded,
            ids=ids,
            hashes=reaped,
        )
        self.mempool.failed(skipped)
        self._keep_screened(block.hash, decoded)
        self.keep_ids(block, tuple(ids))
        return block.encode()

    def block_limit(self, budget: float) -> int:
        """The most transactions a block built with `budget` holds: as many as this node's
        recent commits executed in `budget` seconds on the clock; and when more than
        DEEP_BACKLOG_BLOCKS such blocks wait (an overload), as many as they executed in
        `budget` seconds of CPU, up to SHARED_CORES_ALLOWANCE budgets on the clock.
        Bounding by the clock alone cut blocks whenever the validators shared cores: four
        on two cores each executed at half speed, so blocks held half the work and heights
        came no faster, and under overload each validator used a third of a core while the
        chain held at 1,077 orders/s (December 2026). The CPU bound sizes a block by its
        work wherever it runs; the clock still bounds it when a node gets under a third of
        a core, so its execution stays within the consensus timeouts on a loaded machine.
        Below overload blocks stay as they were, and so does finality."""
        by_wall = budget / self._exec_s_per_tx
        most = by_wall
        if len(self.mempool) > DEEP_BACKLOG_BLOCKS * by_wall:
            most = min(budget / self._exec_cpu_per_tx, SHARED_CORES_ALLOWANCE * by_wall)
        return max(MIN_BLOCK_TXS, min(blocks.MAX_BLOCK_TXS, int(max(most, by_wall))))

    def check_block(
        self,
        height: int,
        raw: bytes,
        now: int | None = None,
        drift: int = blocks.MAX_CLOCK_DRIFT,
        verified: Collection[bytes] | None = None,
    ) -> bool:
        """Is a proposal valid? `now` (the validator's clock, unix seconds) bounds its
        time: a proposer cannot date a block into the past (trading into a closed gate)
        or the future beyond `blocks.MAX_CLOCK_DRIFT`. `verified`, when given, holds the
        hashes of the block's transactions whose signatures the caller verified (a node
        does it off its event loop); otherwise they are verified here."""
        try:
            block = blocks.decode(raw)
            blocks.check_header(block, self.chain_id, height, self.last_hash, self.last_time)
            if now is not None:
                blocks.check_time(block.header.time, now, self.last_time, drift)
            if block.header.validators_hash != validator_set.set_hash(self.validators(height)):
                raise blocks.InvalidBlock("validator set hash differs")
            good = self._verified(block) if verified is None else verified
            decoded = blocks.screen(self.state, block, good, self.mempool.decoded,
                                    self.tx_ids(block))  # fmt: skip
        except (blocks.InvalidBlock, ValueError):
            return False
        self._keep_screened(block.hash, decoded)
        return True

    def _keep_screened(self, block_hash: bytes, decoded: list[tx.SignedTransaction]) -> None:
        """Keep the decoded transactions of this height's last few proposals for the
        commit, so that a transaction is decoded once per block a node votes on."""
        self._screened = dict(list(self._screened.items())[-3:])
        self._screened[block_hash] = decoded

    def tx_ids(self, block: blocks.Block) -> tuple[bytes, ...]:
        """`blocks.tx_ids`, kept for the last few blocks (by their hash, which covers
        their transactions): a node hashed each transaction of a block up to four times
        (the signatures' check, the screen, the compact form it announces, execution).
        The transactions are compared too: a block not checked yet may carry a header
        whose root does not cover them (comparing costs a memcmp, hashing a SHA-256)."""
        found = self._ids.get(block.hash)
        if found is not None and found[0] == block.txs:
            return found[1]
        ids = blocks.tx_ids(block)
        self.keep_ids(block, ids)
        return ids

    def keep_ids(self, block: blocks.Block, ids: tuple[bytes, ...]) -> None:
        """Keep `ids` as `block`'s transaction ids (`tx_ids`): the caller vouches that
        they are (the proposer's screen hashed them; a compact block's transactions were
        each found by its id)."""
        kept = self._ids
        if len(kept) >= KEPT_IDS:
            del kept[next(iter(kept))]
        kept[block.hash] = (block.txs, ids)

    def _verified(self, block: blocks.Block) -> set[bytes]:
        """Hashes of the block's transactions with good signatures: those the mempool
        admitted, plus the others verified now in the pool (a block from sync, or one
        whose transactions never reached us)."""
        hashes = self.tx_ids(block)
        held = {h for h in hashes if self.mempool.holds(h)}
        others = [(h, raw) for h, raw in zip(hashes, block.txs, strict=True) if h not in held]
        verdicts = self.mempool.verify([raw for _, raw in others])
        return held | {h for (h, _), ok in zip(others, verdicts, strict=True) if ok}

    def commit(
        self,
        height: int,
        raw: bytes,
        certificate: tuple[Vote, ...],
        verified: Container[bytes] | None = None,
    ) -> list[blocks.Receipt]:
        """Execute a decided block (see the module docstring); `verified` as for
        `check_block`, used only when this node has not screened the block. Raises
        RuntimeError when this node's state has diverged from the block's."""
        block = blocks.decode(raw)
        ids = self.tx_ids(block)
        decoded = self._screened.get(block.hash)
        self.screened = decoded is not None
        good: Container[bytes]
        if decoded is not None:
            good = _AllVerified()  # the screen verified every signature
        else:
            good = self._verified(block) if verified is None else verified
            decoded = self._decoded(block, ids)
        started, cpu = perf_counter(), thread_time()
        receipts, end_events = blocks.commit(self.state, block, good, decoded, ids)
        if block.txs:  # the proposer's bound on its next blocks follows what this took
            took = (perf_counter() - started) / len(block.txs)
            self._exec_s_per_tx = 0.7 * self._exec_s_per_tx + 0.3 * took
            used = (thread_time() - cpu) / len(block.txs)
            self._exec_cpu_per_tx = 0.7 * self._exec_cpu_per_tx + 0.3 * used
        self._screened = {}
        hashes = [r.tx_hash for r in receipts]
        # The mempool follows the executed state first, so that the saved copies of what
        # left it (committed, superseded, or evicted and dropped since the last block) are
        # deleted in the height's own synced batch rather than in a write of their own.
        self.mempool.update(hashes, self.nonce_of, decoded)
        holds = self.mempool.holds  # one that left and came back (sent again) stays saved
        gone = [h for h in self.mempool.take_gone() if h in self._kept and not holds(h)]
        encoded: dict[bytes, bytes] = {}
        self.store.commit_height(
            height, raw, codec.encode(certificate), hashes, self.state.take_changes(encoded),
            [encode_events(r.events) for r in receipts], encode_events(end_events), block.hash,
            self.state.take_tree_writes(), gone, encoded,
        )  # fmt: skip
        self.last_hash, self.last_time = block.hash, block.header.time
        self._committed = None if decoded is None else (height, decoded)
        self._kept.difference_update(gone)
        self.evidence = [e for e in self.evidence if e not in block.evidence]
        return receipts

    def _decoded(
        self, block: blocks.Block, ids: tuple[bytes, ...]
    ) -> list[tx.SignedTransaction] | None:
        """A block this node did not screen (decided through a peer's certificate, or its
        screen was dropped): its transactions as the mempool decoded them on admission,
        decoding only those it does not hold, so that execution and the commit listeners
        have them decoded once. None when one does not decode: execution decodes them
        itself and halts on it (`blocks.commit`). A validator that lags behind commits
        heights this way (under a profiler, or on a loaded machine)."""
        held, pairs = self.mempool.decoded, zip(ids, block.txs, strict=True)
        try:
            return [held(tx_id) or tx.decode(raw) for tx_id, raw in pairs]
        except ValueError:
            return None

    def committed_txs(self, height: int) -> list[tx.SignedTransaction] | None:
        """The transactions of `height` as this node decoded them to execute it, while it
        is the last height committed here (None otherwise): the commit listeners
        (surveillance) read them instead of decoding every transaction of the block
        again."""
        if self._committed is None or self._committed[0] != height:
            return None
        return self._committed[1]


class _AllVerified:
    """Every hash counts as verified: for candidates reaped from the mempool, and for a
    block whose commit certificate the node checked (`CERTIFIED`)."""

    def __contains__(self, item: object) -> bool:
        return True


CERTIFIED: Final[Container[bytes]] = _AllVerified()
"""`verified` for a certified block: validators with more than 2/3 of the power checked its
signatures before they precommitted it (docs/consensus.md, "Replaying certified blocks")."""
