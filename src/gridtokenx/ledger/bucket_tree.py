"""The state root's bucket tree, with a bucket count that grows with the state.

Every key falls in one of 16**depth buckets, by the first 4 * depth bits of a tagged hash of
the key. A bucket's hash commits to the leaf hashes H(key, value) of its records in key
order; a complete 16-ary tree of `depth` levels over the bucket hashes gives the top node,
and the root commits to the depth and the top: root = H(depth, top).

The depth is a deterministic function of the number of records alone (`depth_for`): the
smallest depth (at least `MIN_DEPTH`) at which the buckets hold at most `MAX_PER_BUCKET`
keys on average. So the root is a function of the records, whatever path reached them, and
a bucket holds between 1 and 16 keys on average: changing k keys costs k small bucket hashes
and k paths of `depth` node hashes (6 levels at 20 million records). Crossing a threshold
(16 * 16**depth records) regroups every key into the new buckets in the block that crosses
it: one O(state) rehash per sixteen-fold growth, paid again if the count falls back below
the threshold and crosses it again.

Growing by one level refines the buckets: bucket b at depth d holds exactly the keys of
buckets 16b..16b+15 at depth d+1, so a bucket range at one depth is a contiguous range at
the next. State sync reads the tree through `depth`, `bucket_count`, `bucket_leaves`,
`node` and `prove_range`, and checks chunks with `verify_range`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from gridtokenx.wire.crypto import tagged_hash

FANOUT_BITS: Final = 4
FANOUT: Final = 1 << FANOUT_BITS  # each node commits to 16 children
MIN_DEPTH: Final = 1
MAX_DEPTH: Final = 8  # 32 bits of the key's bucket hash
MAX_PER_BUCKET: Final = 16
_LEAF_DOMAIN: Final = b"GridTokenX/state-leaf"
_BUCKET_DOMAIN: Final = b"GridTokenX/state-bucket"
_NODE_DOMAIN: Final = b"GridTokenX/state-node"
_ROOT_DOMAIN: Final = b"GridTokenX/state-root"
_INDEX_DOMAIN: Final = b"GridTokenX/state-bucket-index"


def depth_for(count: int) -> int:
    """The tree depth for `count` records: the least depth >= MIN_DEPTH whose 16**depth
    buckets hold at most MAX_PER_BUCKET keys on average."""
    depth = MIN_DEPTH
    while count > MAX_PER_BUCKET << (FANOUT_BITS * depth) and depth < MAX_DEPTH:
        depth += 1
    return depth


def key_position(key: bytes) -> int:
    """The 32-bit position of a key; its bucket at depth d is the top 4d bits."""
    return int.from_bytes(tagged_hash(_INDEX_DOMAIN, key)[:4])


def bucket_at(position: int, depth: int) -> int:
    return position >> (32 - FANOUT_BITS * depth)


def leaf_hash(key: bytes, value: bytes) -> bytes:
    """Commitment to one key/value pair; the key length prefix keeps pairs unambiguous."""
    return tagged_hash(_LEAF_DOMAIN, len(key).to_bytes(4), key, value)


def bucket_hash(leaves: Mapping[bytes, bytes]) -> bytes:
    """A bucket's hash: its leaves (key -> leaf hash) in key order."""
    return tagged_hash(_BUCKET_DOMAIN, b"".join(leaves[k] for k in sorted(leaves)))


def node_hash(children: bytes) -> bytes:
    return tagged_hash(_NODE_DOMAIN, children)


def root_hash(depth: int, top: bytes) -> bytes:
    return tagged_hash(_ROOT_DOMAIN, depth.to_bytes(1), top)


def _empty_hashes() -> tuple[bytes, ...]:
    hashes = [tagged_hash(_BUCKET_DOMAIN)]
    for _ in range(MAX_DEPTH):
        hashes.append(node_hash(hashes[-1] * FANOUT))
    return tuple(hashes)


EMPTY: Final = _empty_hashes()
"""EMPTY[level]: the hash of an empty subtree whose top is at `level` (0: an empty bucket)."""


@dataclass
class _Shape:
    """Everything a tree holds; swapped whole when the depth changes inside a trial."""

    depth: int = MIN_DEPTH
    count: int = 0
    buckets: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    # nodes[level][index]: level 0 holds bucket hashes, level `depth` the top node.
    nodes: list[dict[int, bytes]] = field(default_factory=lambda: [{}, {}])


@dataclass(frozen=True)
class TreeChanges:
    """What a trial did to the tree: each touched key with its position and leaf hash, and
    each touched node by (level, index) (None: absent); or, when the trial changed the
    depth, the whole tree after it (`shape`)."""

    leaves: dict[bytes, tuple[int, bytes | None]]
    nodes: dict[tuple[int, int], bytes | None]
    shape: _Shape | None = None


@dataclass(frozen=True)
class RangeProof:
    """What proves buckets first..last (inclusive) against a root, besides the buckets
    themselves: the depth, and for every level below the top the hashes of the siblings
    outside the range that share a parent with a bucket or node of the range, by
    (level, index)."""

    depth: int
    first: int
    last: int
    siblings: dict[tuple[int, int], bytes]


class BucketTree:
    """The incremental commitment described in the module docstring."""

    def __init__(self) -> None:
        self._s = _Shape()
        self._dirty: set[int] = set()
        # While a trial is open: the first leaf of every key and the first hash of every
        # node it touches (a journal per key: a touched bucket is never copied), or the
        # whole tree before it when the trial changed the depth.
        self._old_leaves: dict[bytes, tuple[int, bytes | None]] | None = None
        self._old_nodes: dict[tuple[int, int], bytes | None] = {}
        self._before: _Shape | None = None

    # --- what state sync reads --------------------------------------------------------------
    @property
    def depth(self) -> int:
        return self._s.depth

    @property
    def bucket_count(self) -> int:
        return 1 << (FANOUT_BITS * self._s.depth)

    def __len__(self) -> int:
        return self._s.count

    def bucket_of(self, key: bytes) -> int:
        return bucket_at(key_position(key), self._s.depth)

    def bucket_leaves(self, index: int) -> dict[bytes, bytes]:
        """The keys of bucket `index` and their leaf hashes (after `root`)."""
        return dict(self._s.buckets.get(index, {}))

    def node(self, level: int, index: int) -> bytes:
        """The hash at (level, index) after `root`: level 0 a bucket, level `depth` the top."""
        if not 0 <= level <= self._s.depth or not 0 <= index < FANOUT ** (self._s.depth - level):
            raise IndexError(f"no node ({level}, {index}) at depth {self._s.depth}")
        return self._s.nodes[level].get(index, EMPTY[level])

    def prove_range(self, first: int, last: int) -> RangeProof:
        """The proof for buckets first..last (call `root` first)."""
        if self._dirty:
            raise RuntimeError("hash pending changes (root) before a proof")
        if not 0 <= first <= last < self.bucket_count:
            raise IndexError(f"no bucket range {first}..{last} in {self.bucket_count}")
        siblings: dict[tuple[int, int], bytes] = {}
        lo, hi = first, last
        for level in range(self._s.depth):
            for index in range(lo & ~(FANOUT - 1), (hi | (FANOUT - 1)) + 1):
                if not lo <= index <= hi:
                    siblings[(level, index)] = self.node(level, index)
            lo, hi = lo >> FANOUT_BITS, hi >> FANOUT_BITS
        return RangeProof(self._s.depth, first, last, siblings)

    # --- trials: undo and redo without hashing again --------------------------------------
    def begin(self) -> None:
        if self._dirty:
            raise RuntimeError("hash pending changes (root) before a trial")
        self._old_leaves, self._old_nodes, self._before = {}, {}, None

    def changes(self) -> TreeChanges:
        """What the open trial did to the tree (after `root`), to `redo` on the same tree."""
        if self._old_leaves is None or self._dirty:
            raise RuntimeError("no trial open, or changes not hashed yet")
        if self._before is not None:
            return TreeChanges({}, {}, self._s)
        buckets, depth = self._s.buckets, self._s.depth
        leaves = {}
        for key, (position, _) in self._old_leaves.items():
            found = buckets.get(bucket_at(position, depth))
            leaves[key] = (position, None if found is None else found.get(key))
        nodes = {(level, i): self._s.nodes[level].get(i) for level, i in self._old_nodes}
        return TreeChanges(leaves, nodes)

    def rollback(self) -> None:
        """Back to the tree the trial started from, exactly, with nothing to rehash."""
        if self._old_leaves is None:
            raise RuntimeError("no trial open")
        if self._before is not None:
            self._s, self._dirty = self._before, set()
        else:
            self._restore(TreeChanges(self._old_leaves, self._old_nodes))
        self.release()

    def release(self) -> None:
        self._old_leaves, self._old_nodes, self._before = None, {}, None

    def redo(self, changes: TreeChanges) -> None:
        """Apply a trial's `changes` to the tree it started from."""
        if self._dirty:
            raise RuntimeError("hash pending changes (root) before a redo")
        old = self._old_leaves
        if changes.shape is not None:
            if old is not None and self._before is None:  # inside a trial: keep the way back
                self._before = self._copy()
                self._undo_journal(self._before)
            self._s = changes.shape
            return
        if old is not None and self._before is None:  # inside a trial: journal this too
            buckets, depth = self._s.buckets, self._s.depth
            for key, (position, _) in changes.leaves.items():
                if key not in old:
                    found = buckets.get(bucket_at(position, depth))
                    old[key] = (position, None if found is None else found.get(key))
            for level, index in changes.nodes:
                self._old_nodes.setdefault((level, index), self._s.nodes[level].get(index))
        self._restore(changes)

    def _restore(self, changes: TreeChanges, shape: _Shape | None = None) -> None:
        s = self._s if shape is None else shape
        buckets, depth = s.buckets, s.depth
        for key, (position, leaf) in changes.leaves.items():
            index = bucket_at(position, depth)
            bucket = buckets.get(index)
            had = bucket is not None and key in bucket
            if leaf is not None:
                buckets.setdefault(index, {})[key] = leaf
                s.count += not had
            elif bucket is not None and had:
                del bucket[key]
                s.count -= 1
                if not bucket:  # as `root` leaves it: no empty bucket is kept
                    del buckets[index]
        for (level, index), node in changes.nodes.items():
            if node is None:
                s.nodes[level].pop(index, None)
            else:
                s.nodes[level][index] = node
        if shape is None:
            self._dirty = set()

    def _copy(self) -> _Shape:
        s = self._s
        return _Shape(
            s.depth, s.count, {i: dict(b) for i, b in s.buckets.items()},
            [dict(level) for level in s.nodes],
        )  # fmt: skip

    def _undo_journal(self, shape: _Shape) -> None:
        """Turn a copy of the tree in a trial back into the tree the trial started from."""
        assert self._old_leaves is not None
        self._restore(TreeChanges(self._old_leaves, self._old_nodes), shape)

    # --- writes and hashing ----------------------------------------------------------------
    def set(self, key: bytes, value: bytes | None) -> None:
        s = self._s
        position = key_position(key)
        index = bucket_at(position, s.depth)
        bucket = s.buckets.get(index)
        if bucket is None:
            if value is None:
                return  # nothing to delete, and no empty bucket to leave behind
            bucket = s.buckets[index] = {}
        had = bucket.get(key)
        old = self._old_leaves
        if old is not None and self._before is None and key not in old:
            old[key] = (position, had)
        if value is None:
            if had is not None:
                del bucket[key]
                s.count -= 1
        else:
            bucket[key] = leaf_hash(key, value)
            s.count += had is None
        self._dirty.add(index)

    def root(self) -> bytes:
        depth = depth_for(self._s.count)
        if depth != self._s.depth:
            self._regroup(depth)
        s = self._s
        level_dirty = self._dirty
        if self._old_leaves is not None and self._before is None:
            self._remember_nodes(level_dirty)  # a trial: remember every node before it changes
        for index in level_dirty:
            bucket = s.buckets.get(index)
            if bucket:
                s.nodes[0][index] = bucket_hash(bucket)
            else:
                s.buckets.pop(index, None)
                s.nodes[0].pop(index, None)
        for level in range(s.depth):
            parents = {i >> FANOUT_BITS for i in level_dirty}
            nodes, above, empty = s.nodes[level], s.nodes[level + 1], EMPTY[level]
            for p in parents:
                first = p << FANOUT_BITS
                children = [nodes.get(first + c, empty) for c in range(FANOUT)]
                if children.count(empty) == FANOUT:
                    above.pop(p, None)
                else:
                    above[p] = node_hash(b"".join(children))
            level_dirty = parents
        self._dirty = set()
        return root_hash(s.depth, s.nodes[s.depth].get(0, EMPTY[s.depth]))

    def _regroup(self, depth: int) -> None:
        """Every key into the buckets of the new depth, all of them to hash: the one cost
        that is O(state), paid when the record count crosses a threshold."""
        if self._old_leaves is not None and self._before is None:
            self._before = self._copy()
            self._undo_journal(self._before)
        old = self._s
        buckets: dict[int, dict[bytes, bytes]] = {}
        for bucket in old.buckets.values():
            for key, leaf in bucket.items():
                buckets.setdefault(bucket_at(key_position(key), depth), {})[key] = leaf
        nodes: list[dict[int, bytes]] = [{} for _ in range(depth + 1)]
        self._s = _Shape(depth, old.count, buckets, nodes)
        self._dirty = set(buckets)

    def _remember_nodes(self, dirty: Iterable[int]) -> None:
        old, indexes = self._old_nodes, dirty
        for level in range(self._s.depth + 1):
            nodes = self._s.nodes[level]
            for i in indexes:
                if (level, i) not in old:
                    old[(level, i)] = nodes.get(i)
            indexes = {i >> FANOUT_BITS for i in indexes}


def verify_range(
    root: bytes, proof: RangeProof, buckets: Mapping[int, Mapping[bytes, bytes]]
) -> bool:
    """Do `buckets` (index -> key -> leaf hash; a bucket of the range that is missing is
    empty) fill buckets proof.first..proof.last of the tree whose root is `root`? Every
    key must belong to the bucket it is given in, and every bucket to the range."""
    depth, lo, hi = proof.depth, proof.first, proof.last
    if not MIN_DEPTH <= depth <= MAX_DEPTH or not 0 <= lo <= hi < FANOUT**depth:
        return False
    if any(not lo <= index <= hi for index in buckets):
        return False
    level_hashes: dict[int, bytes] = {}
    for index in range(lo, hi + 1):
        leaves = buckets.get(index, {})
        if any(bucket_at(key_position(key), depth) != index for key in leaves):
            return False
        level_hashes[index] = bucket_hash(leaves) if leaves else EMPTY[0]
    for level in range(depth):
        above: dict[int, bytes] = {}
        for parent in range(lo >> FANOUT_BITS, (hi >> FANOUT_BITS) + 1):
            children = []
            for index in range(parent << FANOUT_BITS, (parent + 1) << FANOUT_BITS):
                found = level_hashes.get(index, proof.siblings.get((level, index)))
                if found is None:
                    return False
                children.append(found)
            above[parent] = node_hash(b"".join(children))  # EMPTY[level + 1] if all empty
        level_hashes, lo, hi = above, lo >> FANOUT_BITS, hi >> FANOUT_BITS
    return root_hash(depth, level_hashes[0]) == root
