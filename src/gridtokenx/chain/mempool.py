"""The mempool: signed transactions waiting for a block.

Admission checks everything that does not need a block: canonical decoding, chain id,
the signature, the fee floor and the sender's nonce. Signatures are verified in a thread
pool in chunks, so the event loop serves consensus between them (the verifier holds the
GIL while it verifies: ADR 0008). Transactions wait per
sender in nonce order, and a block takes from each sender only the run of consecutive
nonces starting at its account's next nonce. Limits on count, bytes and pending
transactions per sender keep memory bounded. When the pool is full, a better-paying
transaction evicts the lowest fee per byte (from the end of its sender's run), and one a
block could run evicts, whatever it pays, a peer's relay that waits behind a gap (never
what this node acknowledged: `_gapped_tail`).

Back-pressure: transactions from clients (the API) are refused with MEMPOOL_FULL once the
queue holds about BACKLOG_BLOCKS blocks of work, judged from the largest recent blocks. A
chain offered more than it can commit then keeps committing at its saturation rate and
tells the excess to come back (503 with Retry-After at the API), where an unbounded queue
made every block's reaping and every client's wait grow until the committed rate fell
below saturation. Transactions relayed by peers are bounded too, but further: up to
RELAY_BACKLOG_BLOCKS blocks of work, twice the clients' bound. A node that took every
relay filled up past its limit from the others' clients (each validator's API admits its
own two blocks of work and relays all of it), so the backlog, and every block's reaping,
grew with the number of nodes. Refusing relays at the clients' bound went too far the
other way: at twice the saturation rate every pool was full, so each node held only what
its own clients sent, and a proposal carried transactions the other validators held
outside their pools (`node.compact_blocks.RecentTxs`) or no longer held at all. In kept
devnet runs at 5,000 orders/s (December 2026) a quarter of the proposals' transactions
were not in the pool and were verified on the proposal's path, before the prevote, and
one proposal in three fetched some (pushed out of `RecentTxs`: `RECENT_TXS`); those
reached a later round three times as often as the proposals the pool held whole. With the
relays' own bound a node holds most of what its peers propose, verified off the proposal's
path, while the backlog stays bounded (a constant number of blocks, whatever the number
of nodes) and clients are still refused at theirs: a pool filled by relays past the
clients' bound refuses its own clients MEMPOOL_FULL, which is back-pressure doing its
work. A relay refused here is not lost: the node that acknowledged it keeps it and
proposes it in its own turn, and sends it again while it waits (`node.runtime`). Grid
operations (`tx.is_priority`) are admitted regardless; so is a transaction whose nonce
fills a gap before its sender's waiting ones (refusing it would leave them unable to run,
holding the room that back-pressure keeps free: at twice the saturation rate the pool
filled with such transactions and the chain stopped taking any).

The backlog counts only work a block can take: a transaction waiting behind a gap in its
sender's nonces (its predecessor refused here, or sent to another node that refused it)
cannot go into any block until the gap fills, so it is not work. Counting it let a pool
full of such transactions refuse every transaction that could run at once, and the chain
proposed empty blocks while offered three times its rate (23 empty heights in a row on
the idle 2-core machine, December 2026). What waits behind a gap is counted at each
block (`update`); the hard limits (`max_txs`, `max_bytes`, `max_per_sender`, eviction by
fee) still bound the memory it takes, and the last fifth of them is kept for what fills a
gap (GAP_ROOM_SHARE): there a client's or peer's transaction that would itself wait behind
a gap is refused MEMPOOL_FULL, so a pool under overload cannot fill with transactions that
wait and then refuse the ones that would let them run.

The backlog is judged before the signature: a bounded batch has the first of its
non-priority transactions verified only as far as the backlog has room for them now, less
the room promised to batches still being checked (`reserve`); `precheck` only decodes the
rest, and `admit` verifies one (on the loop) only if it is admitted after all (it fills a
gap, or blocks drained the pool meanwhile). A refused transaction then costs a decode,
not an Ed25519 verify, which is most of admission's CPU: overload no longer buys CPU
away from the blocks.

The mempool never forgets silently: every admitted transaction ends `committed` or
`dropped` with a reason (evicted; superseded by a committed transaction with its nonce;
the ledger's rejection code once it failed to apply in three blocks this node built; or
preceded by such a drop), and `status` answers for recent ones.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final

import msgspec

from gridtokenx.wire import codec, crypto, errors, tx

_log = logging.getLogger(__name__)

NonceOf = Callable[[bytes], int | None]  # address -> the account's next nonce (None: none)

MEMPOOL_FULL: Final = "MEMPOOL_FULL"
DUPLICATE: Final = "DUPLICATE"
NONCE_TAKEN: Final = "NONCE_TAKEN"
NONCE_TOO_FAR: Final = "NONCE_TOO_FAR"
EVICTED: Final = "EVICTED"
PRECEDING_DROPPED: Final = "PRECEDING_DROPPED"
MAX_BUILD_FAILURES: Final = 3  # blocks built here in which a transaction failed to apply
BACKLOG_BLOCKS: Final = 2
"""Blocks of work the queue may hold before clients are asked to come back later."""
RELAY_BACKLOG_BLOCKS: Final = 4
"""Blocks of work the queue may hold before peers' relays are refused (see the module
docstring): past the clients' bound, so a full node still holds what its peers propose."""
MIN_BACKLOG: Final = 2_000
"""The backlog never counts as full below this, so a burst on a quiet chain (whose recent
blocks are small) is admitted."""
RECENT_BLOCKS: Final = 64
SUPERSEDED: Final = "SUPERSEDED"
GAPPED_LOOKS: Final = 16
"""Senders with a gap a full pool looks at for one that cannot run (`_gapped_tail`)."""
GAP_ROOM_SHARE: Final = 5
"""One in this many of the hard limits' places is kept for transactions that fill a gap
(`_in_gap_room`): clients and peers are refused new work there, not the gaps' fillers."""


class Admission(msgspec.Struct, frozen=True):
    """One transaction's answer at admission (a Struct: one per transaction, and a frozen
    dataclass's `__init__` costs about ten times as much)."""

    tx_hash: bytes | None  # None when the bytes could not be decoded
    accepted: bool
    code: str = ""  # why not, when refused
    message: str = ""


Checked = tuple[tx.SignedTransaction | Admission, bool | None]
"""A decoded transaction and whether its signature verified (None: not verified yet, as
the pool was full when it arrived), or why it did not decode."""


class Entry(msgspec.Struct, frozen=True):
    """A waiting transaction (a Struct, as `Admission`: one per admitted transaction)."""

    tx_hash: bytes
    raw: bytes
    sender: bytes
    nonce: int
    fee: int
    seq: int  # arrival order
    emergency: bool = False  # `tx.is_priority` (grid updates, emergencies): reaped first
    decoded: tx.SignedTransaction | None = None  # as admission decoded it: not decoded again
    relayed: bool = False  # a peer's relay: the node that acknowledged it holds it too

    @property
    def fee_per_byte(self) -> float:
        return self.fee / len(self.raw)


class Mempool:
    def __init__(
        self,
        chain_id: str,
        *,
        max_txs: int = 50_000,
        max_bytes: int = 64 * 1024 * 1024,
        max_per_sender: int = 1_000,
        workers: int = 2,
        remember: int = 100_000,
        min_backlog: int = MIN_BACKLOG,
    ) -> None:
        self.chain_id = chain_id
        self.max_txs, self.max_bytes, self.max_per_sender = max_txs, max_bytes, max_per_sender
        self._by_hash: dict[bytes, Entry] = {}
        self._priority: dict[bytes, Entry] = {}  # those that are grid updates or emergencies
        self._by_sender: dict[bytes, dict[int, Entry]] = {}
        self._bytes = 0
        self._seq = itertools.count()
        self._outcomes: OrderedDict[bytes, str] = OrderedDict()  # hash -> committed/dropped:X
        self._remember = remember
        self._strikes: dict[bytes, int] = {}  # hash -> failed block builds
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify")
        # Why transactions were turned away or given up on, by the ledger's code: the node
        # logs them as digests and exports them as metrics, where one line or one series
        # per transaction would flood (each is logged one by one at debug level only).
        self.refused: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.min_backlog = min_backlog
        self._recent_blocks: deque[int] = deque(maxlen=RECENT_BLOCKS)  # their tx counts
        self._gapped = 0  # waiting behind a gap in their sender's nonces, at the last block
        self._gaps: dict[bytes, int] = {}  # the same per sender (those with any), summed
        self._touched: set[bytes] = set()  # senders whose queue changed since the last block
        # Each sender's last-in-line transaction (its highest nonce), and a heap of them by
        # (fee per byte, newest first) with stale items skipped as they surface: what a
        # full pool evicts first (`_make_room`), found without walking every queue.
        self._tail: dict[bytes, int] = {}
        self._tails: list[tuple[float, int, Entry]] = []
        self._tail_moved: set[bytes] = set()  # senders whose tail is not pushed yet
        # Hashes that left since `take_gone` was last called (committed, superseded,
        # evicted, dropped), so the node forgets its saved copies without scanning what it
        # saved; bounded like the outcomes: one missed is only re-checked at a restart.
        self._gone: deque[bytes] = deque(maxlen=remember)
        self._promised = 0  # room `reserve` gave batches still being checked
        # What the last `reap` found a block could run (each sender's run from its next
        # nonce), of the `len(self)` held: the proposer's committed line tells both, since
        # under overload a full pool whose transactions wait behind nonce gaps proposed
        # small blocks while holding 36,000-47,600 (devnet at 8,000 orders/s, December
        # 2026: blocks either full or small, the slower runs with more small ones).
        self.ready_at_reap = 0

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __len__(self) -> int:
        return len(self._by_hash)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    # --- admission -------------------------------------------------------------------------
    def precheck(self, raws: list[bytes], verify: int | None = None) -> list[Future[list[Checked]]]:
        """Decode and verify in the pool, in chunks; the futures keep the input order.
        `verify`: only the first `verify` transactions are verified whatever they are, the
        rest only if they are grid operations; the others are decoded and left for `admit`,
        which refuses them before any verify or verifies one it admits after all (a
        bounded batch: how many the backlog has room for, `reserve`). None: all of them.

        Nothing here touches the pool's own structures, so a node can await the futures
        without blocking its event loop and then `admit` on the loop.

        Two threads and chunks of at least 64 stay although the verifier holds the GIL
        (ADR 0008), on measurement (docs/consensus.md, "The verify threads at
        saturation", 6 December 2026): a verify costs its thread 38-39 µs, the verifier's
        own cost; the handoffs cost 1-2 µs per order in process
        (bench/verify_threads_bench.py); and one thread, one chunk per batch, or checking
        on the loop did not lower the devnet's CPU per order (131-142 µs against 134.5,
        medians at 3,000/s), while checking on the loop held consensus up and committed
        less."""
        chunk = max(64, -(-len(raws) // 8))
        budget = len(raws) if verify is None else verify
        return [
            self._pool.submit(_check, raws[i : i + chunk], max(0, budget - i))
            for i in range(0, len(raws), chunk)
        ]

    def reserve(self, count: int, relayed: bool = False) -> int:
        """How many of a bounded batch of `count` to verify before admission (`precheck`):
        the room left in the backlog, less what batches still being checked were promised,
        which the promise holds until `release`. A batch that arrives as blocks drain the
        pool was verified whole and then mostly refused once the first admissions filled
        it again: at twice the saturation rate about two verifies per committed
        transaction, the CPU that back-pressure is there to save. `relayed`: a peer's
        batch, judged against the relays' limit (`relay_backlog_limit`)."""
        room = max(0, min(count, self._bound(relayed) - self.backlog - self._promised))
        self._promised += room
        return room

    def release(self, promised: int) -> None:
        """The batch `reserve` promised room to was admitted (or given up)."""
        self._promised -= promised

    def check(self, raws: list[bytes]) -> list[Checked]:
        """`precheck` on the caller's thread, every signature verified: for a few grid
        updates, which must not wait in the pool's queue behind thousands of orders."""
        return _check(raws, len(raws))

    @property
    def backlog_limit(self) -> int:
        """How many waiting transactions count as BACKLOG_BLOCKS blocks of work: the
        largest of the recent blocks stands for what one block can carry (at saturation
        blocks are cut by the proposer's build budget, so they are that size)."""
        return self._limit(BACKLOG_BLOCKS)

    @property
    def relay_backlog_limit(self) -> int:
        """How many waiting transactions count as RELAY_BACKLOG_BLOCKS blocks of work,
        beyond which peers' relays are refused (`backlog_limit`, for relays)."""
        return self._limit(RELAY_BACKLOG_BLOCKS)

    def _bound(self, relayed: bool) -> int:
        """The backlog limit a bounded batch is judged against: a peer's relays', or a
        client's."""
        return self.relay_backlog_limit if relayed else self.backlog_limit

    def _limit(self, blocks: int) -> int:
        largest = max(self._recent_blocks, default=0)
        return max(self.min_backlog * blocks // BACKLOG_BLOCKS, blocks * largest)

    @property
    def backlog(self) -> int:
        """Waiting transactions a block could take: all of them but those that waited
        behind a gap at the last block (an admission since counts as work until the next
        block tells)."""
        return len(self._by_hash) - min(self._gapped, len(self._by_hash))

    @property
    def backlog_full(self) -> bool:
        """Would a bounded transaction that fills no gap be refused MEMPOOL_FULL now?"""
        return self.backlog >= self.backlog_limit

    def admit(
        self,
        raws: list[bytes],
        checked: list[Checked],
        nonce_of: NonceOf,
        min_fee: int,
        bounded: bool = False,
        hashes: list[bytes] | None = None,
        relayed: bool = False,
    ) -> list[Admission]:
        """Admit prechecked transactions (the rules that depend on the pool and the state).
        `bounded`: they come from clients or peers (not this node's own), and are refused
        MEMPOOL_FULL beyond the backlog limit unless they are grid operations or fill a gap
        before their sender's waiting transactions; `relayed` (with `bounded`): from
        peers, whose limit is `relay_backlog_limit`. `hashes`: their ids (`tx.hash_of`),
        when the caller has them (a peer's batch is hashed as it arrives), in order."""
        results = []
        limit = self._bound(relayed) if bounded else None
        ids = hashes if hashes is not None else [None] * len(raws)
        refused, admit = self.refused, self._admit
        # Asked once a batch: each refusal's record (a dict, a hex id) was built for a
        # debug line that the level left unwritten, under overload thousands a second.
        debug = _log.isEnabledFor(logging.DEBUG)
        for raw, (item, signature_ok), tx_hash in zip(raws, checked, ids, strict=True):
            result = (
                item
                if isinstance(item, Admission)
                else admit(raw, item, signature_ok, nonce_of, min_fee, limit, tx_hash, relayed)
            )
            if not result.accepted:
                refused[result.code] += 1
                if debug:
                    _log.debug("transaction refused", extra={
                        "tx": result.tx_hash.hex() if result.tx_hash else None,
                        "code": result.code, "reason": result.message})  # fmt: skip
            results.append(result)
        return results

    def add_batch(self, raws: list[bytes], nonce_of: NonceOf, min_fee: int) -> list[Admission]:
        """Admit many transactions; signatures are verified in parallel in the pool."""
        return self.admit(raws, self._checked(raws), nonce_of, min_fee)

    def add(self, raw: bytes, nonce_of: NonceOf, min_fee: int) -> Admission:
        return self.add_batch([raw], nonce_of, min_fee)[0]

    def holds(self, tx_hash: bytes) -> bool:
        """Waiting here, so its signature was verified on admission."""
        return tx_hash in self._by_hash

    def waiting(self, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        """(hash, raw) of up to `limit` waiting transactions, the oldest first: what a node
        sends again to peers (one that connects, or when a transaction waited too long)."""
        return list(itertools.islice(self.oldest(), limit))

    def oldest(self) -> Iterator[tuple[bytes, bytes]]:
        """(hash, raw) of the waiting transactions, the oldest first, as they are reached:
        a caller that wants the first few it picks (`Node._rebroadcast_stale`) stops
        early instead of copying a pool of tens of thousands. Not across an admission."""
        return ((h, e.raw) for h, e in self._by_hash.items())

    def queued_before(self, sender: bytes, nonce: int) -> list[bytes]:
        """The sender's waiting transactions with nonces below `nonce`, in nonce order:
        what a block will apply before a transaction with that nonce (chain.simulation)."""
        queue = self._by_sender.get(sender, {})
        return [queue[n].raw for n in sorted(queue) if n < nonce]

    def knows(self, tx_hash: bytes) -> bool:
        """Waiting, or recently committed or dropped: not worth checking again."""
        return tx_hash in self._by_hash or tx_hash in self._outcomes

    def raw(self, tx_hash: bytes) -> bytes | None:
        """A waiting transaction's bytes (None: not waiting here), to rebuild a compact
        block (`chain.compact`) or answer a peer that lacks one."""
        entry = self._by_hash.get(tx_hash)
        return None if entry is None else entry.raw

    def decoded(self, tx_hash: bytes) -> tx.SignedTransaction | None:
        """A waiting transaction as admission decoded it (None: not waiting here), so that
        a block holding it is screened and executed without decoding it again."""
        entry = self._by_hash.get(tx_hash)
        return None if entry is None else entry.decoded

    def priority(self, tx_hash: bytes) -> bool | None:
        """`tx.is_priority` of a waiting transaction as admission judged it (None: not
        waiting here): a node sends grid updates ahead of trading without decoding again."""
        entry = self._by_hash.get(tx_hash)
        return None if entry is None else entry.emergency

    def verify(self, raws: list[bytes]) -> list[bool]:
        """Signature verdicts for transactions from elsewhere (a block being synced), in
        the pool; bytes that do not decode count as not verified."""
        return [ok is True for _, ok in self._checked(raws)]

    def _checked(self, raws: list[bytes]) -> list[Checked]:
        """`precheck`, waited for here (callers without an event loop)."""
        return [c for future in self.precheck(raws) for c in future.result()]

    def _admit(
        self,
        raw: bytes,
        stx: tx.SignedTransaction,
        signature_ok: bool | None,
        nonce_of: NonceOf,
        min_fee: int,
        limit: int | None = None,
        tx_hash: bytes | None = None,
        relayed: bool = False,
    ) -> Admission:
        if tx_hash is None:
            tx_hash = tx.hash_of(raw)  # `stx.hash` without encoding it again: `raw` decoded
        if tx_hash in self._by_hash:
            return Admission(tx_hash, False, DUPLICATE, "already in the mempool")
        body = stx.tx
        if body.chain_id != self.chain_id:
            return Admission(tx_hash, False, errors.WrongChainId.code,
                             f"transaction is for chain {body.chain_id!r}")  # fmt: skip
        if signature_ok is False:
            return Admission(tx_hash, False, errors.InvalidSignature.code,
                             "signature does not verify")  # fmt: skip
        sender, nonce, fee = body.sender_address, body.nonce, body.fee
        next_nonce = nonce_of(sender)
        if next_nonce is None:
            return Admission(tx_hash, False, errors.UnknownSender.code, "sender has no account")
        if nonce < next_nonce:
            return Admission(tx_hash, False, errors.NonceReplayed.code,
                             f"nonce {nonce} already used")  # fmt: skip
        if nonce >= next_nonce + self.max_per_sender:
            return Admission(tx_hash, False, NONCE_TOO_FAR,
                             f"nonce more than {self.max_per_sender} ahead")  # fmt: skip
        if fee < min_fee:
            return Admission(tx_hash, False, errors.FeeTooLow.code,
                             f"fee below the minimum {min_fee}")  # fmt: skip
        queue = self._by_sender.get(sender)
        priority = tx.is_priority(body.body)
        if queue is not None and nonce in queue:
            return Admission(tx_hash, False, NONCE_TAKEN,
                             "another transaction with this nonce is waiting")  # fmt: skip
        last = self._tail.get(sender, -1)
        # The backlog is counted only for what it could refuse (a bounded, non-priority
        # transaction that fills no gap).
        if limit is not None and not priority and nonce >= last:
            if self.backlog >= limit:
                return Admission(tx_hash, False, MEMPOOL_FULL,
                                 f"{self.backlog} transactions are ready, about "
                                 f"{BACKLOG_BLOCKS} blocks of work: "
                                 "send it again shortly")  # fmt: skip
            if self._in_gap_room(len(raw)) and self._behind_gap(queue, nonce, next_nonce, last):
                return Admission(tx_hash, False, MEMPOOL_FULL,
                                 f"{len(self._by_hash)} transactions wait, and this one would "
                                 "wait behind a gap in its sender's nonces: send it again "
                                 "after those before it")  # fmt: skip
        # Next in line or filling a gap: a block could take it (with what waits behind it).
        runnable = nonce == next_nonce or nonce < last
        size = len(raw)
        # Below both hard limits nothing is evicted: `_no_room` and `_make_room` would
        # both answer so at once; asked only of a full pool.
        full = self._at_limit(size)
        if full and self._no_room(size, fee, sender, nonce, runnable):
            return Admission(tx_hash, False, MEMPOOL_FULL,
                             "the mempool is full and the fee does not outbid")  # fmt: skip
        if signature_ok is None and not _verified(stx):  # deferred by `precheck`: due now
            return Admission(tx_hash, False, errors.InvalidSignature.code,
                             "signature does not verify")  # fmt: skip
        entry = Entry(tx_hash, raw, sender, nonce, fee, next(self._seq), priority, stx, relayed)
        if full and not self._make_room(entry, runnable):
            return Admission(tx_hash, False, MEMPOOL_FULL,
                             "the mempool is full and the fee does not outbid")  # fmt: skip
        self._by_hash[tx_hash] = entry
        if priority:
            self._priority[tx_hash] = entry
        self._by_sender.setdefault(sender, {})[nonce] = entry  # (`_make_room` may empty it)
        self._touched.add(sender)
        self._bytes += size
        if nonce > self._tail.get(sender, -1):
            self._tail[sender] = nonce
            self._tail_moved.add(sender)
        return Admission(tx_hash, True)

    def _push_tails(self) -> None:
        """Push the tails that moved since the heap was last looked at, once each: a
        push per admission (a tuple, a fee per byte and a heap step, about a microsecond)
        was paid by every transaction, though only a full pool looks at the heap."""
        heap, queues, tail = self._tails, self._by_sender, self._tail
        for sender in self._tail_moved:
            nonce = tail.get(sender)
            if nonce is not None:
                entry = queues[sender][nonce]
                heapq.heappush(heap, (entry.fee_per_byte, -entry.seq, entry))
        self._tail_moved.clear()
        if len(heap) > 2 * len(self._by_hash) + 1024:  # mostly stale: rebuilt from the tails
            heap[:] = [(e.fee_per_byte, -e.seq, e)
                       for e in (queues[s][n] for s, n in tail.items())]  # fmt: skip
            heapq.heapify(heap)

    def _cheapest_tail(self) -> Entry | None:
        """The last-in-line transaction of any sender with the lowest fee per byte (the
        newest of equals). Walking every queue for it cost each admission to a full pool
        a pass over all it held: most of a validator's loop under overload, when the
        pool fills with transactions waiting behind gaps (December 2026)."""
        heap, held, tail = self._tails, self._by_hash, self._tail
        if self._tail_moved:
            self._push_tails()
        while heap:
            entry = heap[0][2]
            if held.get(entry.tx_hash) is entry and tail.get(entry.sender) == entry.nonce:
                return entry
            heapq.heappop(heap)
        return None

    def _at_limit(self, size: int) -> bool:
        """Would one more transaction of `size` bytes go past a hard limit (`max_txs`,
        `max_bytes`) unless another is evicted?"""
        return len(self._by_hash) >= self.max_txs or self._bytes + size > self.max_bytes

    def _in_gap_room(self, size: int) -> bool:
        """Would one more transaction of `size` bytes take the last of the places kept for
        transactions that fill a gap (GAP_ROOM_SHARE of each hard limit)? There a bounded
        transaction that would itself wait behind a gap is refused, whatever its fee.
        The backlog does not count what waits behind a gap, so under overload, when each
        refusal leaves its sender a gap for a second, the pool admitted the senders' later
        transactions until it held its hard limit of them, few of which a block could run;
        the transactions that would have filled the gaps were then refused unless a
        peer's relay could be evicted for them, and the chain went on at two thirds to
        three quarters of its rate, the proposers holding 50,000 of which a block could run
        170-3,900 (December 2026, twice saturation). Kept room lets the fillers in, and
        with them what waited behind."""
        room_txs, room_bytes = self.max_txs // GAP_ROOM_SHARE, self.max_bytes // GAP_ROOM_SHARE
        return (len(self._by_hash) >= self.max_txs - room_txs
                or self._bytes + size > self.max_bytes - room_bytes)  # fmt: skip

    @staticmethod
    def _behind_gap(queue: dict[int, Entry] | None, nonce: int, next_nonce: int, last: int) -> bool:
        """Would a sender's newest transaction wait behind a gap: not next in line, and
        not after an unbroken run of its waiting ones from the account's next nonce?"""
        if nonce == next_nonce:
            return False
        return queue is None or nonce != last + 1 or len(queue) != last - next_nonce + 1

    def _no_room(self, size: int, fee: int, sender: bytes, nonce: int, runnable: bool) -> bool:
        """Would `_make_room` refuse a transaction of this size, fee, sender and nonce?
        Asked before its deferred signature is verified: a full pool that refused after the
        verify spent an Ed25519 verify on the loop for each transaction it turned away
        (December 2026, an eighth of a validator's samples under overload, beside a third
        in the walk `_cheapest_tail` replaced). `runnable`: a block could take it."""
        if not self._at_limit(size):
            return False
        if runnable and self._gapped_tail(sender) is not None:
            return False
        victim = self._cheapest_tail()
        return victim is None or not _outbids(victim, fee / size, sender, nonce)

    def _make_room(self, entry: Entry, runnable: bool = False) -> bool:
        while self._at_limit(len(entry.raw)):
            # For a transaction a block could take, one that cannot run goes first, whatever
            # its fee; otherwise the cheapest last-in-line transaction of any sender.
            victim = self._gapped_tail(entry.sender) if runnable else None
            if victim is None:
                victim = self._cheapest_tail()
                if victim is None or not _outbids(
                    victim, entry.fee_per_byte, entry.sender, entry.nonce
                ):
                    return False
            self._remove(victim, f"dropped:{EVICTED}")
        return True

    def _gapped_tail(self, sender: bytes) -> Entry | None:
        """The last-in-line transaction of another sender that waited behind a gap at the
        last block and has not changed since: it cannot go into a block until its gap
        fills, so it is not work. Without this a pool filled to its hard limit with such
        transactions refused the very transaction that fills a gap unless it outbid them
        (seen once in five base runs at 3,000 orders/s, December 2026: the chain stalled
        with 4,800 of 60,000 committed). Looks at a few senders only (the oldest gaps
        first), so a full pool costs an admission no walk.

        Only a peer's relay goes so, never a transaction this node acknowledged (to a
        client, or its own): the node that acknowledged a relay still holds it. Every
        node evicting the last transactions of the same gapped senders, whoever
        acknowledged them, lost 25-277 of 160,000 orders the client was told were
        accepted in 3 of 29 devnet runs at twice saturation (December 2026: each
        validator's API answered `dropped: EVICTED` or did not know them, and the
        senders' later ones waited behind them to the end)."""
        for other in itertools.islice(self._gaps, GAPPED_LOOKS):
            queue = self._by_sender.get(other)
            if other != sender and queue and other not in self._touched:
                tail = queue[self._tail[other]]
                if tail.relayed:
                    return tail
        return None

    def _remove(self, entry: Entry, outcome: str) -> None:
        del self._by_hash[entry.tx_hash]
        if entry.emergency:
            del self._priority[entry.tx_hash]
        self._strikes.pop(entry.tx_hash, None)
        queue = self._by_sender[entry.sender]
        del queue[entry.nonce]
        if not queue:
            del self._by_sender[entry.sender]
            del self._tail[entry.sender]
        elif self._tail[entry.sender] == entry.nonce:
            self._tail[entry.sender] = max(queue)
            self._tail_moved.add(entry.sender)
        self._touched.add(entry.sender)
        self._bytes -= len(entry.raw)
        self._gone.append(entry.tx_hash)
        self._record(entry.tx_hash, outcome)

    def take_gone(self) -> list[bytes]:
        """Hashes of the transactions that left the pool since the last call."""
        gone = list(self._gone)
        self._gone.clear()
        return gone

    def _record(self, tx_hash: bytes, outcome: str) -> None:
        self._outcomes[tx_hash] = outcome
        if outcome.startswith("dropped:"):
            reason = outcome.removeprefix("dropped:")
            self.dropped[reason] += 1
            _log.debug("transaction dropped", extra={"tx": tx_hash.hex(), "reason": reason})
        while len(self._outcomes) > self._remember:
            self._outcomes.popitem(last=False)

    # --- blocks ----------------------------------------------------------------------------
    def reap(
        self, nonce_of: NonceOf, max_txs: int, max_bytes: int, ids: list[bytes] | None = None
    ) -> list[bytes]:
        """Transactions for the next block: per sender the consecutive run from its next
        nonce, senders interleaved in order of arrival so no one sender starves the rest.
        `ids` collects their ids, in the same order (the block's screen hashes none)."""
        runs = []
        for sender, queue in self._by_sender.items():
            run = _ready_run(queue, nonce_of(sender))
            if run:
                runs.append(run)
        self.ready_at_reap = sum(map(len, runs))
        runs.sort(key=lambda r: r[0].seq)
        # Grid updates and emergencies first: each run holding one leads with its
        # transactions up to the last of them (nonce order must hold), in order of arrival.
        urgent = [
            (run, max((i for i, e in enumerate(run) if e.emergency), default=-1)) for run in runs
        ]
        firsts = [run[: last + 1] for run, last in urgent if last >= 0]
        rests = [run[last + 1 :] for run, last in urgent]
        out: list[bytes] = []
        size = 0
        for batch in (*firsts, *itertools.zip_longest(*rests)):
            for entry in batch:
                if entry is None:
                    continue
                if len(out) >= max_txs or size + len(entry.raw) > max_bytes:
                    return out
                out.append(entry.raw)
                size += len(entry.raw)
                if ids is not None:
                    ids.append(entry.tx_hash)
        return out

    def failed(self, failures: list[tuple[bytes, str]]) -> list[tuple[bytes, str]]:
        """Transactions that did not apply when this node built a block. One may wait for
        another sender's (a licence for a participant registered in the same block), so
        it is dropped, with the ledger's code as the reason, only after failing in
        MAX_BUILD_FAILURES blocks. Its sender's later transactions can never apply
        without its nonce, so they are dropped with it (PRECEDING_DROPPED): a client sees
        every outcome instead of waiting forever."""
        dropped = []
        for tx_hash, code in failures:
            entry = self._by_hash.get(tx_hash)
            if entry is None:
                continue
            self._strikes[tx_hash] = strikes = self._strikes.get(tx_hash, 0) + 1
            if strikes < MAX_BUILD_FAILURES:
                continue
            queue = self._by_sender[entry.sender]
            later = [queue[n] for n in sorted(queue) if n > entry.nonce]
            self._remove(entry, f"dropped:{code}")
            dropped.append((tx_hash, code))
            for follower in later:
                self._remove(follower, f"dropped:{PRECEDING_DROPPED}")
                dropped.append((follower.tx_hash, PRECEDING_DROPPED))
        return dropped

    @property
    def priority_waiting(self) -> bool:
        """Is a grid update or an emergency waiting (`tx.is_priority`), ready or not?"""
        return bool(self._priority)

    def priority_ready(self, nonce_of: NonceOf) -> bool:
        """Could the next block take a waiting grid update or emergency (its sender's next
        nonce, or behind a run of the sender's waiting ones from it)? A proposer does not
        hold its block back for more trading while one could go in
        (`Node._propose_when_ready`); one behind a gap in its sender's nonces could not,
        and until the gap fills must not cut every height's wait short. Few wait at a
        time: each is looked at."""
        for entry in self._priority.values():
            run = _ready_run(self._by_sender[entry.sender], nonce_of(entry.sender))
            if run and run[-1].nonce >= entry.nonce:
                return True
        return False

    def has_ready(self, nonce_of: NonceOf) -> bool:
        """Is any transaction ready for the next block (its sender's next nonce)?"""
        return any(nonce_of(sender) in queue for sender, queue in self._by_sender.items())

    def update(
        self,
        committed: list[bytes],
        nonce_of: NonceOf,
        decoded: Sequence[tx.SignedTransaction] | None = None,
    ) -> list[tuple[bytes, str]]:
        """After a block: mark its transactions committed and drop every waiting one whose
        nonce a committed transaction used. Returns the drops with their reasons.

        `decoded`: the block's transactions, in the order of `committed`. A sender's nonce
        moves only by a transaction of its own, so only the block's senders can have
        waiting transactions superseded, and only they and the senders whose queue
        changed since the last block (`_touched`) can have a different count behind a
        gap: with it, those are looked at, not every sender (a walk of every queue and an
        account read per sender, each block). Without it, every sender is."""
        self._recent_blocks.append(len(committed))
        touched, by_hash = self._touched, self._by_hash
        everyone = decoded is None or len(decoded) != len(committed)
        for index, tx_hash in enumerate(committed):
            entry = by_hash.get(tx_hash)
            if entry is not None:
                self._remove(entry, "committed")  # touches its sender
            else:
                self._record(tx_hash, "committed")
                if not everyone and decoded is not None:
                    touched.add(decoded[index].tx.sender_address)
        senders = list(self._by_sender if everyone else touched)
        gaps, by_sender = self._gaps, self._by_sender
        dropped = []
        for sender in senders:
            # A sender's queue under overload holds hundreds: its lowest and highest
            # nonces (found in C) settle the common case, nothing superseded and no gap,
            # without a walk in Python over every waiting transaction each block.
            queue = by_sender.get(sender)
            nonce = nonce_of(sender) if queue else None
            if queue and (nonce is None or min(queue) < nonce):
                for entry in list(queue.values()):
                    if nonce is None or entry.nonce < nonce:
                        self._remove(entry, f"dropped:{SUPERSEDED}")
                        dropped.append((entry.tx_hash, SUPERSEDED))
                queue = by_sender.get(sender)
            if not queue or (min(queue) == nonce and max(queue) - nonce + 1 == len(queue)):
                gaps.pop(sender, None)  # empty, or exactly the nonces from the account's next
            elif gap := len(queue) - len(_ready_run(queue, nonce)):
                gaps[sender] = gap
            else:
                gaps.pop(sender, None)
        if everyone:
            for sender in [s for s in gaps if s not in by_sender]:
                del gaps[sender]
        touched.clear()
        self._gapped = sum(gaps.values())
        return dropped

    def status(self, tx_hash: bytes) -> str:
        """pending, committed, dropped:REASON, or unknown."""
        if tx_hash in self._by_hash:
            return "pending"
        return self._outcomes.get(tx_hash, "unknown")


def _ready_run(queue: dict[int, Entry], nonce: int | None) -> list[Entry]:
    """A sender's waiting transactions a block can take: the consecutive run from its
    account's next `nonce` (none without an account); the rest wait behind a gap."""
    run = []
    while nonce is not None and nonce in queue:
        run.append(queue[nonce])
        nonce += 1
    return run


def _check(raws: list[bytes], verify: int) -> list[Checked]:
    """Decode and verify one chunk (in a pool thread, a chunk at a time: the verifier
    holds the GIL while it verifies, so the event loop gets it back between calls).
    `verify`: how many of its first transactions to verify whatever they are; after
    those only grid operations are verified now (`precheck`)."""
    out: list[Checked] = []
    for i, raw in enumerate(raws):
        try:
            stx = tx.decode(raw)
        except codec.DecodeError as exc:
            out.append((Admission(None, False, exc.code, str(exc)), False))
            continue
        deferred = i >= verify and not tx.is_priority(stx.tx.body)
        out.append((stx, None if deferred else _verified(stx)))
    return out


def _outbids(victim: Entry, fee_per_byte: float, sender: bytes, nonce: int) -> bool:
    """May a newcomer paying `fee_per_byte` evict `victim`, the cheapest last-in-line
    transaction? Only if it pays more per byte, and the victim is not its own sender's
    last before it: evicting that left the newcomer waiting behind a gap of its own
    making, and dropped a transaction its sender was told was accepted for nothing a
    block could run (December 2026, seen writing the acknowledged-eviction test)."""
    if victim.fee_per_byte >= fee_per_byte:
        return False
    return not (victim.sender == sender and victim.nonce < nonce)


def _verified(stx: tx.SignedTransaction) -> bool:
    return crypto.verify(stx.tx.sender, stx.tx.signing_bytes(), stx.signature)
