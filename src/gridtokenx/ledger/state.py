"""Ledger state: typed records under byte keys, a transactional overlay, and the state root.

State is a flat map from byte keys to immutable records (frozen msgspec Structs). A flat
key space maps one-to-one onto a RocksDB column family later, and lets one commitment cover
everything. Records are immutable, so the overlay that a transaction executes against can
share them with the base state; a rejected transaction simply drops its overlay, which is
how "a rejected transaction leaves the state untouched" is guaranteed by construction
rather than by careful ordering of checks and writes in each handler.

State root ("bucket tree"): every key is assigned to one of 2**16 buckets by the hash of the
key. A bucket's hash commits to the leaf hashes H(key, value) of its records in key order;
the root is a 16-ary Merkle tree of four levels over the bucket hashes, with precomputed
hashes for empty subtrees. Changing k keys rehashes k small buckets and at most k paths of
4 nodes, independent of the state's size, so a block costs O(changes), not O(state). (A
binary tree needs 16 nodes per path; in Python the number of hash calls is what costs.) A
syncing node can recompute the root from a snapshot, and a bucket plus 15 siblings on each
of the 4 levels proves any key. See docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

import msgspec

from gridtokenx.wire import codec
from gridtokenx.wire.crypto import tagged_hash

BUCKET_BITS: Final = 16
FANOUT_BITS: Final = 4  # each node commits to 16 children
LEVELS: Final = BUCKET_BITS // FANOUT_BITS  # node levels above the buckets: 4
_LEAF_DOMAIN: Final = b"GridTokenX/state-leaf"
_BUCKET_DOMAIN: Final = b"GridTokenX/state-bucket"
_NODE_DOMAIN: Final = b"GridTokenX/state-node"

R = TypeVar("R", bound=msgspec.Struct)


def _bucket_of(key: bytes) -> int:
    return int.from_bytes(tagged_hash(b"GridTokenX/state-bucket-index", key)[:4]) >> (
        32 - BUCKET_BITS
    )


def leaf_hash(key: bytes, value: bytes) -> bytes:
    """Commitment to one key/value pair; the key length prefix keeps pairs unambiguous."""
    return tagged_hash(_LEAF_DOMAIN, len(key).to_bytes(4), key, value)


def bucket_of(key: bytes) -> int:
    """The bucket `key` belongs to: chunk proofs (`ledger.state_proofs`) group by it."""
    return _bucket_of(key)


def bucket_hash(leaves: Iterable[bytes]) -> bytes:
    """A bucket's hash from its leaf hashes in key order (no leaves: the empty bucket)."""
    return tagged_hash(_BUCKET_DOMAIN, b"".join(leaves))


def node_hash(children: Iterable[bytes]) -> bytes:
    """An inner node's hash from its 2**FANOUT_BITS children's hashes, in order."""
    return tagged_hash(_NODE_DOMAIN, b"".join(children))


class BucketTree:
    """The incremental commitment described in the module docstring."""

    def __init__(self) -> None:
        self._buckets: dict[int, dict[bytes, bytes]] = {}
        self._dirty: set[int] = set()
        # _nodes[level][index]: level 0 holds bucket hashes, level LEVELS the root.
        self._nodes: list[dict[int, bytes]] = [{} for _ in range(LEVELS + 1)]
        self._empty = [tagged_hash(_BUCKET_DOMAIN)]
        for _ in range(LEVELS):
            self._empty.append(tagged_hash(_NODE_DOMAIN, self._empty[-1] * (1 << FANOUT_BITS)))

        # While a trial is open: the first value of every bucket and node it touches.
        self._old_buckets: dict[int, dict[bytes, bytes] | None] | None = None
        self._old_nodes: dict[tuple[int, int], bytes | None] = {}

    # --- trials: undo and redo without hashing again --------------------------------------
    def begin(self) -> None:
        if self._dirty:
            raise RuntimeError("hash pending changes (root) before a trial")
        self._old_buckets, self._old_nodes = {}, {}

    def changes(self) -> TreeChanges:
        """What the open trial did to the tree (after `root`), to `redo` on the same tree."""
        if self._old_buckets is None or self._dirty:
            raise RuntimeError("no trial open, or changes not hashed yet")
        buckets = {i: dict(self._buckets[i]) if i in self._buckets else None
                   for i in self._old_buckets}  # fmt: skip
        nodes = {(level, i): self._nodes[level].get(i) for level, i in self._old_nodes}
        return TreeChanges(buckets, nodes)

    def rollback(self) -> None:
        """Back to the tree the trial started from, exactly, with nothing to rehash."""
        if self._old_buckets is None:
            raise RuntimeError("no trial open")
        self._restore(TreeChanges(self._old_buckets, self._old_nodes))
        self.release()

    def release(self) -> None:
        self._old_buckets, self._old_nodes = None, {}

    def redo(self, changes: TreeChanges) -> None:
        """Apply a trial's `changes` to the tree it started from."""
        if self._dirty:
            raise RuntimeError("hash pending changes (root) before a redo")
        old = self._old_buckets
        if old is not None:  # redone inside a trial: a rollback must undo this too
            buckets = self._buckets
            for index in changes.buckets:
                if index not in old:  # no copy: _restore replaces buckets, never edits them
                    old[index] = buckets.get(index)
            for level, index in changes.nodes:
                self._old_nodes.setdefault((level, index), self._nodes[level].get(index))
        self._restore(changes)

    def _restore(self, changes: TreeChanges) -> None:
        for index, bucket in changes.buckets.items():
            if bucket is None:
                self._buckets.pop(index, None)
            else:
                self._buckets[index] = dict(bucket)
        for (level, index), node in changes.nodes.items():
            if node is None:
                self._nodes[level].pop(index, None)
            else:
                self._nodes[level][index] = node
        self._dirty = set()

    def set(self, key: bytes, value: bytes | None) -> None:
        index = _bucket_of(key)
        old = self._old_buckets
        if old is not None and index not in old:
            found = self._buckets.get(index)
            old[index] = None if found is None else dict(found)
        bucket = self._buckets.setdefault(index, {})
        if value is None:
            bucket.pop(key, None)
        else:
            bucket[key] = leaf_hash(key, value)
        self._dirty.add(index)

    def root(self) -> bytes:
        level_dirty = self._dirty
        if self._old_buckets is not None:  # a trial: remember every node before it changes
            self._remember_nodes(level_dirty)
        for index in level_dirty:
            bucket = self._buckets.get(index)
            if bucket:
                leaves = b"".join(bucket[k] for k in sorted(bucket))
                self._nodes[0][index] = tagged_hash(_BUCKET_DOMAIN, leaves)
            else:
                self._buckets.pop(index, None)
                self._nodes[0].pop(index, None)
        width = 1 << FANOUT_BITS
        for level in range(LEVELS):
            parents = {i >> FANOUT_BITS for i in level_dirty}
            nodes, above, empty = self._nodes[level], self._nodes[level + 1], self._empty[level]
            for p in parents:
                first = p << FANOUT_BITS
                children = [nodes.get(first + c, empty) for c in range(width)]
                if children.count(empty) == width:
                    above.pop(p, None)
                else:
                    above[p] = tagged_hash(_NODE_DOMAIN, b"".join(children))
            level_dirty = parents
        self._dirty = set()
        return self._nodes[LEVELS].get(0, self._empty[LEVELS])

    def _remember_nodes(self, dirty: Iterable[int]) -> None:
        old, indexes = self._old_nodes, dirty
        for level in range(LEVELS + 1):
            nodes = self._nodes[level]
            for i in indexes:
                if (level, i) not in old:
                    old[(level, i)] = nodes.get(i)
            indexes = {i >> FANOUT_BITS for i in indexes}


@dataclass(frozen=True)
class TreeChanges:
    """Buckets and nodes as a trial left them (None: absent), keyed by position."""

    buckets: dict[int, dict[bytes, bytes] | None]
    nodes: dict[tuple[int, int], bytes | None]


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
