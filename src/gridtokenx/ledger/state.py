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
from typing import Protocol, TypeVar

import msgspec

from gridtokenx.ledger.bucket_tree import BucketTree, TreeChanges
from gridtokenx.ledger.bucket_tree import leaf_hash as leaf_hash
from gridtokenx.wire import codec

R = TypeVar("R", bound=msgspec.Struct)


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

    def on_write(self, key: bytes, record: msgspec.Struct | None) -> None: ...


IndexT = TypeVar("IndexT", bound=DerivedIndex)


class State:
    """The committed ledger state. Mutate it only through `Overlay.commit`."""

    def __init__(self) -> None:
        self._records: dict[bytes, msgspec.Struct] = {}
        self._tree = BucketTree()
        self._unhashed: set[bytes] = set()
        self._indexes: dict[str, DerivedIndex] = {}
        self._unpersisted: set[bytes] = set()
        self._undo: dict[bytes, msgspec.Struct | None] | None = None

    def index(self, name: str, build: Callable[[State], IndexT]) -> IndexT:
        """The derived index `name`, built from the records the first time it is asked for."""
        found = self._indexes.get(name)
        if found is None:
            found = self._indexes[name] = build(self)
        return found  # type: ignore[return-value]

    def get(self, key: bytes, typ: type[R]) -> R | None:
        record = self._records.get(key)
        if record is None:
            return None
        if not isinstance(record, typ):
            raise TypeError(f"record at {key!r} is {type(record).__name__}, not {typ.__name__}")
        return record

    def overlay(self) -> Overlay:
        return Overlay(self)

    def items(self) -> Iterator[tuple[bytes, msgspec.Struct]]:
        """All records in key order (deterministic iteration for invariants and snapshots)."""
        for key in sorted(self._records):
            yield key, self._records[key]

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, msgspec.Struct]]:
        for key in sorted(k for k in self._records if k.startswith(prefix)):
            yield key, self._records[key]

    def __len__(self) -> int:
        return len(self._records)

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
        self._write(undo, hashed=True)
        self._tree.rollback()
        self._unhashed.clear()  # begin left none; the trial's own are undone with the tree

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
        records = {key: self._records.get(key) for key in self._undo}
        return Trial(records, self._tree.changes())

    def replay(self, trial: Trial) -> None:
        """Apply a trial's net effect (see `trial`); derived indexes follow."""
        self.root()
        self._write(trial.records, hashed=True)
        self._tree.redo(trial.tree)

    def _write(self, writes: dict[bytes, msgspec.Struct | None], hashed: bool = False) -> None:
        """`hashed`: the tree already accounts for these writes (rollback, replay)."""
        undo = self._undo
        for key, record in writes.items():
            if undo is not None and key not in undo:
                undo[key] = self._records.get(key)
            if record is None:
                self._records.pop(key, None)
            else:
                self._records[key] = record
            if not hashed:
                self._unhashed.add(key)
            self._unpersisted.add(key)
            for index in self._indexes.values():
                index.on_write(key, record)

    def take_changes(self) -> dict[bytes, msgspec.Struct | None]:
        """Records written since the last call (None: deleted), for the store to persist in
        the same atomic batch as the block that wrote them."""
        changes = {key: self._records.get(key) for key in sorted(self._unpersisted)}
        self._unpersisted.clear()
        return changes

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
        keys = sorted(self.tree.bucket_leaves(index))
        return [(key, self._records[key]) for key in keys]

    def root(self) -> bytes:
        """State root; hashes only the keys written since the previous call."""
        for key in self._unhashed:
            record = self._records.get(key)
            self._tree.set(key, None if record is None else codec.encode(record))
        self._unhashed.clear()
        return self._tree.root()

    def recompute_root(self) -> bytes:
        """Root rebuilt from scratch: the reference the incremental root must always equal."""
        tree = BucketTree()
        for key, record in self._records.items():
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
            raise TypeError(f"record at {key!r} is {type(record).__name__}, not {typ.__name__}")
        yield suffix, record


class Overlay:
    """Buffered writes over a State: reads see the writes, `commit` publishes them at once."""

    def __init__(self, base: State) -> None:
        self._base = base
        self._writes: dict[bytes, msgspec.Struct | None] = {}

    def get(self, key: bytes, typ: type[R]) -> R | None:
        if key in self._writes:
            record = self._writes[key]
            if record is None:
                return None
            if not isinstance(record, typ):
                raise TypeError(f"record at {key!r} is {type(record).__name__}")
            return record
        return self._base.get(key, typ)

    @property
    def base(self) -> State:
        """The committed state below: derived indexes live there."""
        return self._base

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
