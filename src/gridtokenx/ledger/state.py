"""Ledger state: typed records under byte keys, a transactional overlay, and the state root.

State is a flat map from byte keys to immutable records (frozen msgspec Structs). A flat
key space maps one-to-one onto a RocksDB column family later, and lets one commitment cover
everything. Records are immutable, so the overlay that a transaction executes against can
share them with the base state; a rejected transaction simply drops its overlay, which is
how "a rejected transaction leaves the state untouched" is guaranteed by construction
rather than by careful ordering of checks and writes in each handler.

State root: a bucket tree (`ledger.bucket_tree`) whose bucket count grows with the state,
so a block costs O(changes), not O(state). See docs/architecture.md and ADR 0001.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

import msgspec

from gridtokenx.ledger.bucket_tree import (
    BucketTree,
    TreeChanges,
    TreeSource,
    TreeWrites,
    key_positions,
)
from gridtokenx.ledger.bucket_tree import leaf_hash as leaf_hash
from gridtokenx.wire import codec

R = TypeVar("R", bound=msgspec.Struct)

WARM_BATCH: Final = 64
"""Written keys that make a batch whose buckets the tree's source is asked to read ahead
(`BucketTree.warm`) while the block goes on executing: a 1,000-transfer block's 2,000
keys in some thirty batches, read side by side, and the last few dozen left to the
root's own read. (Batches of 256, one read each, left the root waiting for the last of
them under a memory limit: 30-83 ms of wall clock at 20 million records, ADR 0007.)"""
RECORD_CACHE: Final = 200_000
"""Clean records a state over a source keeps between blocks (about 100 MB)."""
_ABSENT: Final = object()
"""A dictionary miss, told apart from a held None (a deleted record) in one lookup: the
record reads below run some hundred times per order."""
_UNREAD: Final = object()
"""In a trial's undo journal: the record before the trial is the source's (it was not in
memory when the trial first wrote it), read only if the trial is rolled back."""


def wrong_type(key: bytes, record: object, typ: type) -> TypeError:
    """The one error for a record read as another type than it is stored as (every typed
    read checks; the check stays inline on the hot paths, only the message is here)."""
    return TypeError(f"record at {key!r} is {type(record).__name__}, not {typ.__name__}")


class StateSource(TreeSource, Protocol):
    """Where a state too big for memory keeps its committed records and tree (a node's
    RocksDB store): read on demand, written from `take_changes` and `take_tree_writes`."""

    def record(self, key: bytes) -> msgspec.Struct | None: ...

    def records(self, prefix: bytes) -> Iterator[tuple[bytes, msgspec.Struct]]:
        """Committed records under `prefix`, in key order."""
        ...


@dataclass(frozen=True)
class Trial:
    """A trial's net effect on a State: the records it wrote and the hashed tree after."""

    records: dict[bytes, msgspec.Struct | None]
    tree: TreeChanges


class Records(Protocol):
    """Whatever reads committed records by key and type: a `State`, an `Overlay`, or a
    node's store, which reads one record without loading the state (audit exports read
    the supply and the parameters this way). Queries that take it work on all three."""

    def get(self, key: bytes, typ: type[R]) -> R | None: ...


class DerivedIndex(Protocol):
    """An in-memory structure computed from committed records (the market's order books).

    It is a cache, never a source of truth: built from the records on first use, told of
    every committed write, and rebuildable at any time. It sees only committed state, so a
    rejected transaction cannot leave a trace in it either."""

    @property
    def prefixes(self) -> tuple[bytes, ...]:
        """The key prefixes of the records it is computed from: only writes under them
        reach `on_write` (most of a transaction's writes are under none)."""
        ...

    def on_write(self, key: bytes, record: msgspec.Struct | None) -> None: ...


IndexT = TypeVar("IndexT", bound=DerivedIndex)


class State:
    """The committed ledger state. Mutate it only through `Overlay.commit`.

    Without a source, every record is in memory. Over a `StateSource` (`State(source)`),
    records and the tree are read when first needed: memory holds the writes not yet
    persisted (None: deleted) and a bounded cache of clean records, so a node's memory
    and its restart do not grow with the state."""

    def __init__(self, source: StateSource | None = None) -> None:
        self._source = source
        self._records: dict[bytes, msgspec.Struct | None] = {}
        self._tree = BucketTree(source)
        self._unhashed: set[bytes] = set()
        self._indexes: dict[str, DerivedIndex] = {}
        self._watched: tuple[bytes, ...] = ()  # every index's prefixes
        self._watchers: list[tuple[tuple[bytes, ...], DerivedIndex]] = []  # each one's
        self._unpersisted: set[bytes] = set()
        self._encoded: dict[bytes, tuple[msgspec.Struct, bytes]] = {}  # `take_changes`
        self._undo: dict[bytes, object] | None = None
        # Written keys whose buckets the source has not been asked to read ahead yet, and
        # the positions of those it has (so the root does not hash them again); only over
        # a source that reads ahead (`tree_warm`).
        self._warms = source is not None and hasattr(source, "tree_warm")
        self._cold: list[bytes] = []
        self._positions: dict[bytes, int] = {}

    def index(self, name: str, build: Callable[[State], IndexT]) -> IndexT:
        """The derived index `name`, built from the records the first time it is asked for."""
        found = self._indexes.get(name)
        if found is None:
            found = self._indexes[name] = build(self)
            self._watched = (*self._watched, *found.prefixes)
            self._watchers.append((tuple(found.prefixes), found))
        return found  # type: ignore[return-value]

    def _lookup(self, key: bytes) -> msgspec.Struct | None:
        records = self._records
        found = records.get(key, records)  # the dict itself: not held
        if found is not records:
            return found  # type: ignore[return-value]
        if self._source is None:
            return None
        if key not in self._unhashed and self._tree.lacks(key):
            records[key] = None
            return None
        record = records[key] = self._source.record(key)
        return record

    def get(self, key: bytes, typ: type[R]) -> R | None:
        record = self._records.get(key, _ABSENT)
        if record is _ABSENT:
            record = self._lookup(key)
        if record is None:
            return None
        if not isinstance(record, typ):
            raise wrong_type(key, record, typ)
        return record

    def overlay(self) -> Overlay:
        return Overlay(self)

    def items(self) -> Iterator[tuple[bytes, msgspec.Struct]]:
        """All records in key order (deterministic iteration for invariants and snapshots)."""
        return self.scan(b"")

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, msgspec.Struct]]:
        records = self._records
        if self._source is None:
            for key in sorted(k for k in records if k.startswith(prefix)):
                yield key, records[key]  # type: ignore[misc]
            return
        # The source's records, with the writes it does not hold yet merged in key order.
        pending = sorted(k for k in self._unpersisted if k.startswith(prefix))
        at = 0
        for key, record in self._source.records(prefix):
            while at < len(pending) and pending[at] < key:
                if (written := records[pending[at]]) is not None:
                    yield pending[at], written
                at += 1
            if at < len(pending) and pending[at] == key:
                at += 1
                if (written := records[key]) is not None:
                    yield key, written
                continue
            yield key, record
        for key in pending[at:]:
            if (written := records[key]) is not None:
                yield key, written

    def __len__(self) -> int:
        if self._source is None:
            return len(self._records)
        return len(self.tree)

    def begin(self) -> None:
        """Start a trial (executing a proposed block): `rollback` undoes every commit since,
        the state root's tree included, so nothing needs hashing again afterwards."""
        if self._undo is not None:
            raise RuntimeError("a trial is already open")
        self.root()  # the tree must match the records when the trial starts
        self._undo = {}
        self._tree.begin()

    def rollback(self) -> None:
        undo, self._undo = self._undo, None
        if undo is None:
            raise RuntimeError("no trial to roll back")
        self._write({key: self._before(was, key) for key, was in undo.items()}, hashed=True)
        self._tree.rollback()
        self._unhashed.clear()  # begin left none; the trial's own are undone with the tree
        self._cold.clear()
        self._positions.clear()

    def _before(self, was: object, key: bytes) -> msgspec.Struct | None:
        """A record as the undo journal holds it: the source's when it was not read."""
        if was is _UNREAD:
            assert self._source is not None  # only a state over a source leaves one unread
            return self._source.record(key)
        return was  # type: ignore[return-value]

    def release(self) -> None:
        """Keep what the trial wrote."""
        if self._undo is None:
            raise RuntimeError("no trial to release")
        self._undo = None
        self._tree.release()

    def trial(self) -> Trial:
        """The open trial's net effect, after its `root`: replayed with `replay` on the
        state the trial started from, it gives the same records and the same root without
        executing or hashing again. A validator keeps this from checking a proposal for
        when it is decided."""
        if self._undo is None:
            raise RuntimeError("no trial is open")
        self.root()
        records = {key: self._lookup(key) for key in self._undo}
        return Trial(records, self._tree.changes())

    def replay(self, trial: Trial) -> None:
        """Apply a trial's net effect (see `trial`); derived indexes follow."""
        self.root()
        self._write(trial.records, hashed=True)
        self._tree.redo(trial.tree)

    def _write(self, writes: dict[bytes, msgspec.Struct | None], hashed: bool = False) -> None:
        """`hashed`: the tree already accounts for these writes (rollback, replay)."""
        undo, records, keep_deleted = self._undo, self._records, self._source is not None
        if undo is not None:
            # Each key's value before the trial's first write to it. One that is not in
            # memory is the source's, unchanged until the trial ends: reading it now would
            # cost a store read for every key a block creates (most of them are new).
            unread = _UNREAD if keep_deleted else None
            for key in writes:
                if key not in undo:
                    undo[key] = records.get(key, unread)
        watched, watchers = self._watched, self._watchers
        for key, record in writes.items():
            if record is None and not keep_deleted:
                records.pop(key, None)
            else:
                records[key] = record
            if key.startswith(watched):
                for prefixes, index in watchers:
                    if key.startswith(prefixes):
                        index.on_write(key, record)
        if not hashed:
            self._unhashed.update(writes)
            if self._warms and self.reads_ahead:
                cold = self._cold
                cold.extend(writes)
                if len(cold) >= WARM_BATCH:
                    self._warm(cold)
                    self._cold = []
        self._unpersisted.update(writes)

    @property
    def reads_ahead(self) -> bool:
        """Does the source read ahead now (`Store.reading_ahead`)? When it does not (a
        state that fits in memory), nothing is gathered for it: the hints cost a
        saturated devnet about 30 µs of CPU per order, December 2026."""
        return bool(getattr(self._source, "reading_ahead", False))

    def warm_records(self, keys: list[bytes]) -> None:
        """Records a block is about to read (its transactions' senders), that memory
        lacks: a source that can (`records_warm`) reads them ahead, side by side, and
        hands them over when they are read (`_lookup`). Only a hint: the same records
        are read either way."""
        hint = getattr(self._source, "records_warm", None)
        if hint is not None:
            records = self._records
            hint([key for key in dict.fromkeys(keys) if key not in records])

    def _warm(self, keys: list[bytes]) -> None:
        """Have the tree's source read the buckets of `keys` ahead (`BucketTree.warm`)."""
        positions = key_positions(keys)
        self._positions.update(zip(keys, positions, strict=True))
        self._tree.warm(positions)

    def take_changes(
        self, encoded: dict[bytes, bytes] | None = None
    ) -> dict[bytes, msgspec.Struct | None]:
        """Records written since the last call (None: deleted), for the store to persist in
        the same atomic batch as the block that wrote them. `encoded` receives the
        encodings (`codec.encode`) the state root made of them, so that the store does
        not encode each again: only a state over a source keeps them, until this call; a
        record rolled back or written again since its root is left out."""
        records = self._records
        if self._source is not None and len(records) > RECORD_CACHE:
            # what earlier calls handed over is stored by now: keep only what is not
            self._records = {key: records[key] for key in self._unpersisted}
        changes = {key: self._records.get(key) for key in sorted(self._unpersisted)}
        self._unpersisted.clear()
        kept, self._encoded = self._encoded, {}
        if encoded is not None:
            encoded.update({key: body for key, (record, body) in kept.items()
                            if changes.get(key) is record})  # fmt: skip
        return changes

    def take_tree_writes(self) -> TreeWrites:
        """The tree's buckets and nodes changed since the last call (see `take_changes`),
        for a store that keeps the tree so that a restart reads rather than rehashes it."""
        self.root()
        return self._tree.take_writes()

    @classmethod
    def restore(cls, records: Iterator[tuple[bytes, msgspec.Struct]]) -> State:
        """A state loaded from the store: nothing to persist, everything to hash once."""
        state = cls()
        for key, record in records:
            state._records[key] = record
            state._unhashed.add(key)
        return state

    @property
    def tree(self) -> BucketTree:
        """The state root's tree, hashed up to date: what state sync reads (its depth,
        buckets, node hashes and range proofs)."""
        self.root()
        return self._tree

    def bucket_records(self, index: int) -> list[tuple[bytes, msgspec.Struct]]:
        """The records of bucket `index` of the tree, in key order."""
        found = []
        for key in sorted(self.tree.bucket_leaves(index)):
            record = self._lookup(key)
            assert record is not None, "the tree and the records disagree"
            found.append((key, record))
        return found

    def root(self) -> bytes:
        """State root; hashes only the keys written since the previous call."""
        tree = self._tree
        if self._unhashed:
            keys = list(self._unhashed)
            known = self._positions
            if known:  # the keys' positions hashed for `_warm` already
                todo = [key for key in keys if key not in known]
                known.update(zip(todo, key_positions(todo), strict=True))
                positions = [known[key] for key in keys]
                known.clear()
            else:
                positions = key_positions(keys)
            self._cold.clear()
            if self._source is not None:
                tree.prefetch(positions)
            held, lookup, encode = self._records, self._lookup, codec.encode
            records = [held[key] if key in held else lookup(key) for key in keys]  # held: written
            values = [None if r is None else encode(r) for r in records]
            tree.set_many(keys, values, positions)
            self._unhashed.clear()
            if self._source is not None:  # its store persists them: `take_changes`
                unpersisted, rows = self._unpersisted, zip(keys, records, values, strict=True)
                self._encoded.update(
                    {key: (record, value) for key, record, value in rows  # type: ignore[misc]
                     if value is not None and key in unpersisted}
                )  # fmt: skip
        return tree.root()

    def recompute_root(self) -> bytes:
        """Root rebuilt from scratch: the reference the incremental root must always equal."""
        tree = BucketTree()
        for key, record in self.items():
            tree.set(key, codec.encode(record))
        return tree.root()


def records_under(
    state: State, prefix: bytes, typ: type[R], after: bytes | None = None
) -> Iterator[tuple[bytes, R]]:
    """Each record under `prefix` in key order as (the key after the prefix, the record),
    starting after the suffix `after`. The one walk the contexts' listing queries share, so
    that a key layout is sliced only by the context that owns it; a record of another type
    under the prefix is a bug, raised as in `State.get`."""
    skip = len(prefix)
    for key, record in state.scan(prefix):
        suffix = key[skip:]
        if after is not None and suffix <= after:
            continue
        if not isinstance(record, typ):
            raise wrong_type(key, record, typ)
        yield suffix, record


class Overlay:
    """Buffered writes over a State: reads see the writes, `commit` publishes them at once."""

    def __init__(self, base: State) -> None:
        self._base = base
        self._writes: dict[bytes, msgspec.Struct | None] = {}

    def get(self, key: bytes, typ: type[R]) -> R | None:
        record = self._writes.get(key, _ABSENT)
        if record is _ABSENT:  # `State.get` inlined: a call less on the hottest read
            base = self._base
            record = base._records.get(key, _ABSENT)
            if record is _ABSENT:
                record = base._lookup(key)
        if record is None:
            return None
        if not isinstance(record, typ):
            raise wrong_type(key, record, typ)
        return record

    @property
    def base(self) -> State:
        """The committed state below: derived indexes live there."""
        return self._base

    def touches(self, prefixes: tuple[bytes, ...]) -> bool:
        """True when this overlay holds a write (not yet committed) under one of the
        prefixes: a derived index of the committed state does not see it."""
        for key in self._writes:  # noqa: SIM110 - a loop costs less than any() and its generator
            if key.startswith(prefixes):
                return True
        return False

    def put(self, key: bytes, record: msgspec.Struct) -> None:
        self._writes[key] = record

    def delete(self, key: bytes) -> None:
        self._writes[key] = None

    def commit(self) -> None:
        self._base._write(self._writes)
        self._writes = {}

    def fork(self) -> Overlay:
        """A child that sees this overlay's writes and keeps its own until `absorb`: work
        that may fail half-way (a governance proposal's actions) runs in a fork, so a
        failure drops all of it and a success lands all of it."""
        child = Overlay(self._base)
        child._writes = dict(self._writes)
        return child

    def absorb(self, child: Overlay) -> None:
        """Take over the writes of `child`, a fork of this overlay."""
        self._writes.update(child._writes)
