"""Putting compact blocks back together (`chain.compact`): the transactions a node holds,
and the fetches of those it lacks.

A compact proposal or certified block that names a transaction this node holds neither in
its mempool nor in `RecentTxs` (transactions relayed to it lately, and those of the blocks
it saw lately: a certified block's transactions have left the mempool by the time a late
peer asks for them) is held here, and the peer that sent it is asked for exactly the
missing ones (gossip kind TXS_REQUEST, the ids; the answer TXS holds the transactions in
the same order, or nothing from a peer that cannot supply them all). An answer that is not
exactly what was asked costs its sender score and the next peer is asked; so is a peer that
does not answer within FETCH_TIMEOUT_S. The peers asked are, in order, those that sent the
same message (a message still being fetched is not marked seen by gossip, so each later copy
names another source), then any other connected peer, FETCH_TRIES in all; after that the
message is given up: a proposal then times out as one that never arrived would, and a
certified block comes by block sync. Transactions that arrive by gossip meanwhile count
too: the node looks for completed messages after each batch it receives.

Nothing here does I/O or reads a clock: the node sends the requests `Fetcher` returns and
tells it of answers and expired requests.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from gridtokenx.chain import compact
from gridtokenx.chain.compact import Compact, Lookup
from gridtokenx.wire import crypto, tx

RECENT_TXS: Final = 120_000  # transactions remembered outside the mempool...
RECENT_BYTES: Final = 32 * 1024 * 1024  # ...and at most this many bytes of them
"""What a peer proposes may have waited in its pool far longer than a few blocks: at twice
the saturation rate the pools held 30,000-40,000 transactions (most behind a gap in their
sender's nonces, `chain.mempool`), and a proposal named transactions relayed 15-30 s
earlier. With 40,000 remembered they were gone by then, pushed out by the flow of relays,
and a third of the proposals fetched some (36,000-44,000 transactions a run, December
2026), each a round trip on the proposal's path. 120,000 is more than two peers' pools
hold at their `Mempool.max_txs`, about 48 MB of crossing orders (170 bytes each) with
their ids and the two maps; RECENT_BYTES still bounds larger transactions."""
FETCH_TIMEOUT_S: Final = 1.0  # a peer that has not answered by then is passed over
FETCH_TRIES: Final = 4  # peers asked for one message before it is given up
MAX_PENDING: Final = 16  # messages being fetched at once; the oldest goes first


class RecentTxs:
    """Transactions by id, the most recent RECENT_TXS (RECENT_BYTES at most)."""

    def __init__(self, count: int = RECENT_TXS, size: int = RECENT_BYTES) -> None:
        self._txs: OrderedDict[bytes, bytes] = OrderedDict()
        self._ids: dict[bytes, bytes] = {}  # the same transactions, id by bytes
        self._count, self._size, self._bytes = count, size, 0

    def __len__(self) -> int:
        return len(self._txs)

    def add(self, raws: Sequence[bytes], ids: Sequence[bytes] | None = None) -> None:
        """Remember `raws`; `ids`, when the caller hashed them already (`tx.hash_of` of
        each, in order), spares hashing every transaction a second time."""
        for raw, tx_id in zip(raws, map(tx.hash_of, raws) if ids is None else ids, strict=True):
            if tx_id in self._txs:
                self._txs.move_to_end(tx_id)
                continue
            self._txs[tx_id] = raw
            self._ids[raw] = tx_id
            self._bytes += len(raw)
            while len(self._txs) > self._count or self._bytes > self._size:
                _, old = self._txs.popitem(last=False)
                self._ids.pop(old, None)
                self._bytes -= len(old)

    def ids_of(self, raws: Sequence[bytes]) -> list[bytes]:
        """Each transaction's id (`tx.hash_of`), looked up by its bytes when it is held
        here: a copy of a transaction the node has seen (a peer's relay of one it has, a
        client sending again what is not final yet) costs a dict lookup instead of a
        tagged SHA-256. In the devnet at saturation each validator received each order
        3.7 times, 2.5 of them copies of one it held (December 2026)."""
        ids = self._ids
        return [ids.get(raw) or tx.hash_of(raw) for raw in raws]

    def get(self, tx_id: bytes) -> bytes | None:
        return self._txs.get(tx_id)


class Answer(Enum):
    """What an answer to TXS_REQUEST was."""

    TAKEN = "taken"  # exactly what was asked
    CANNOT = "cannot"  # empty: the peer cannot supply them all
    WRONG = "wrong"  # not the transactions asked for: the sender loses score
    UNASKED = "unasked"  # nothing was asked of this peer: ignored


@dataclass(frozen=True)
class Request:
    """Ask `peer` for `ids` (the node sends TXS_REQUEST and expects an answer within
    FETCH_TIMEOUT_S, then tells `Fetcher.expired(key, attempt)`)."""

    peer: bytes
    ids: tuple[bytes, ...]
    key: bytes
    attempt: int


@dataclass
class Pending:
    """A compact message waiting for transactions."""

    message: Compact
    payload: bytes  # as received: forwarded unchanged once whole
    sources: list[bytes]  # peers that sent it, the first first
    asked: list[bytes] = field(default_factory=list)
    attempt: int = 0


@dataclass(frozen=True)
class Whole:
    """A message put back together: `block` is the whole block's bytes."""

    message: Compact
    payload: bytes
    block: bytes
    sources: tuple[bytes, ...]
    txs: tuple[bytes, ...]  # the block's transactions, found by their ids (`compact.gather`)


class Fetcher:
    """`lookup` finds a transaction this node holds; `others()` lists connected peers (the
    fallback once the sources are asked); `remember` keeps the transactions answers bring."""

    def __init__(
        self,
        lookup: Lookup,
        remember: Callable[[list[bytes]], None],
        others: Callable[[], Iterable[bytes]],
    ) -> None:
        self.lookup = lookup
        self.remember = remember
        self.others = others
        self.pending: OrderedDict[bytes, Pending] = OrderedDict()
        self._asked: dict[bytes, deque[tuple[bytes, tuple[bytes, ...]]]] = {}
        self.fetched = 0  # transactions taken from answers (metrics, tests)
        self.given_up = 0  # messages abandoned after FETCH_TRIES

    @staticmethod
    def key_of(payload: bytes) -> bytes:
        return crypto.tagged_hash(b"GridTokenX/compact", payload)

    def offer(
        self, message: Compact, payload: bytes, peer: bytes
    ) -> tuple[Whole | None, Request | None]:
        """A compact message from `peer`: whole at once, or held with a request for what is
        missing (None when it is held already: `peer` is noted as another source)."""
        key = self.key_of(payload)
        held = self.pending.get(key)
        if held is not None:
            if peer not in held.sources:
                held.sources.append(peer)
            return None, None
        txs = compact.gather(message.block, self.lookup)
        if txs is not None:
            block = compact.whole(message.block, txs).encode()
            return Whole(message, payload, block, (peer,), txs), None
        self.pending[key] = Pending(message, payload, [peer])
        while len(self.pending) > MAX_PENDING:
            self.pending.popitem(last=False)
        return None, self._next(key)

    def _next(self, key: bytes) -> Request | None:
        """Ask the next peer for what is still missing, or give the message up."""
        held = self.pending[key]
        candidates = [p for p in (*held.sources, *self.others()) if p not in held.asked]
        ids = tuple(compact.missing(held.message.block, self.lookup))
        if not candidates or len(held.asked) >= FETCH_TRIES or not ids:
            del self.pending[key]
            self.given_up += bool(ids)
            return None
        peer = candidates[0]
        held.asked.append(peer)
        held.attempt += 1
        self._asked.setdefault(peer, deque(maxlen=MAX_PENDING * FETCH_TRIES)).append((key, ids))
        return Request(peer, ids, key, held.attempt)

    def expired(self, key: bytes, attempt: int) -> Request | None:
        """The request `attempt` for `key` had no answer in time: ask the next peer."""
        held = self.pending.get(key)
        if held is None or held.attempt != attempt:
            return None
        return self._next(key)

    def answered(
        self, peer: bytes, raws: list[bytes]
    ) -> tuple[Answer, list[Whole], Request | None]:
        """`peer`'s answer to its oldest open request: the messages it made whole, and the
        next request when the answer did not do."""
        queue = self._asked.get(peer)
        if not queue:
            return Answer.UNASKED, [], None
        key, ids = queue.popleft()
        if not queue:
            del self._asked[peer]
        if raws and compact.matches(ids, raws):
            self.remember(raws)
            self.fetched += len(raws)
            return Answer.TAKEN, self.completed(), None
        verdict = Answer.WRONG if raws else Answer.CANNOT
        held = self.pending.get(key)
        retry = self._next(key) if held is not None and held.asked[-1:] == [peer] else None
        return verdict, [], retry

    def completed(self) -> list[Whole]:
        """Every held message that the transactions now known make whole (an answer for one
        can complete another: a proposal's and its certified block's are the same; and the
        node asks again whenever transactions arrive by gossip meanwhile)."""
        done: list[Whole] = []
        for key, held in list(self.pending.items()):
            txs = compact.gather(held.message.block, self.lookup)
            if txs is not None:
                del self.pending[key]
                block = compact.whole(held.message.block, txs).encode()
                done.append(Whole(held.message, held.payload, block, tuple(held.sources), txs))
        return done

    def drop_below(self, height: int) -> None:
        """Forget messages of heights before `height` (decided meanwhile), and the open
        requests of peers no longer connected (a peer's answers match its requests in order,
        so those of a connected peer are kept until it answers)."""
        for key, held in list(self.pending.items()):
            if held.message.height < height:
                del self.pending[key]
        connected = set(self.others())
        for peer in [p for p in self._asked if p not in connected]:
            del self._asked[peer]
