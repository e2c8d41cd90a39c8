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

The loops that run once per key, bucket or node of a block (`key_positions`, `leaf_hashes`,
`BucketTree.set_many`, the bucket decoding in `prefetch`, the bucket and node hashes of
`root`, the bucket encoding in `take_writes`) have a compiled twin in `_tree_hashing`
(Cython over OpenSSL's SHA-256, built by setup.py), used where it was built: the Python
code here is the reference it must equal byte for byte, and what runs where no C
compiler built it. `use_compiled` switches.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, cast

import msgspec

from gridtokenx.wire.crypto import tag_context, tag_prefix, tagged_hash

try:
    from gridtokenx.ledger import _tree_hashing as _compiled
except ImportError:  # not built here (no C compiler or OpenSSL headers): the Python loops
    _compiled = None  # type: ignore[assignment]
if _compiled is not None and not hasattr(_compiled, "encode_buckets"):
    # Built from an older .pyx (a checkout updated without `make native`): it lacks loops
    # this module calls, so it counts as not built (CI, which requires it, then fails).
    _compiled = None  # type: ignore[assignment]

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


# Started SHA-256 contexts (`crypto.tag_context`) for the loops below that hash thousands of
# times a block: copied rather than calling `tagged_hash`, the same digests.
_LEAF: Final = tag_context(_LEAF_DOMAIN)
_BUCKET: Final = tag_context(_BUCKET_DOMAIN)
_NODE: Final = tag_context(_NODE_DOMAIN)

COMPILED: Final = _compiled is not None
"""Was the compiled twin of the tree's loops (`_tree_hashing`) built and imported here?"""
_native = COMPILED
if COMPILED:
    _compiled.start(*map(tag_prefix, (_INDEX_DOMAIN, _LEAF_DOMAIN, _BUCKET_DOMAIN, _NODE_DOMAIN)))


def use_compiled(on: bool) -> None:
    """Run the tree's loops compiled (`on`, where built) or in Python (the reference): for
    the tests and benchmarks that compare the two; both give the same bytes."""
    global _native
    if on and not COMPILED:
        raise RuntimeError("the compiled tree hashing (_tree_hashing) was not built here")
    _native = on


def compiled_in_use() -> bool:
    return _native


@functools.lru_cache(maxsize=1 << 16)
def key_position(key: bytes) -> int:
    """The 32-bit position of a key; its bucket at depth d is the top 4d bits. Memoised
    (a few MB): the same accounts, positions and flows are written block after block."""
    return int.from_bytes(tagged_hash(_INDEX_DOMAIN, key)[:4])


def key_positions(keys: Iterable[bytes]) -> list[int]:
    """`key_position` of each key, in one comprehension: a joining node places millions of
    keys, and calling `key_position` (four Python steps a key) was most of its checking."""
    if _native:
        return _compiled.key_positions(keys)
    sha, prefix = hashlib.sha256, tag_prefix(_INDEX_DOMAIN)
    return [int.from_bytes(sha(prefix + key).digest()[:4]) for key in keys]


def leaf_hashes(pairs: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    """`leaf_hash` of each (key, canonical bytes) pair, in one comprehension (as above)."""
    if _native:
        return _compiled.leaf_hashes(pairs)
    sha, prefix = hashlib.sha256, tag_prefix(_LEAF_DOMAIN)
    return [sha(prefix + len(k).to_bytes(4) + k + v).digest() for k, v in pairs]


def bucket_hash_of(leaves: Iterable[bytes]) -> bytes:
    """A bucket's hash from its leaf hashes already in key order (`bucket_hash`)."""
    return hashlib.sha256(_BUCKET_PREFIX + b"".join(leaves)).digest()


_BUCKET_PREFIX: Final = tag_prefix(_BUCKET_DOMAIN)


def bucket_at(position: int, depth: int) -> int:
    return position >> (32 - FANOUT_BITS * depth)


def leaf_hash(key: bytes, value: bytes) -> bytes:
    """Commitment to one key/value pair; the key length prefix keeps pairs unambiguous."""
    return tagged_hash(_LEAF_DOMAIN, len(key).to_bytes(4), key, value)


def bucket_hash(leaves: Mapping[bytes, bytes]) -> bytes:
    """A bucket's hash: its leaves (key -> leaf hash) in key order."""
    return tagged_hash(_BUCKET_DOMAIN, b"".join([leaves[k] for k in sorted(leaves)]))


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


def encode_bucket(leaves: Mapping[bytes, bytes]) -> bytes:
    """A bucket as stored: a MessagePack array of [key, leaf hash] pairs in key order
    (decoded in C, which matters: a block reads a bucket for every key it writes). The
    reference that `_tree_hashing.encode_buckets` (what `take_writes` runs where it was
    built: 2.6 buckets a crossing order) must equal byte for byte."""
    return msgspec.msgpack.encode([(k, leaves[k]) for k in sorted(leaves)])


def decode_bucket(blob: bytes) -> dict[bytes, bytes]:
    return dict(_PAIRS.decode(blob))


_PAIRS: Final = msgspec.msgpack.Decoder(list[tuple[bytes, bytes]])


class TreeSource(Protocol):
    """Where a tree too big for memory keeps its buckets and node hashes (RocksDB in
    `storage.store`), as the last `TreeWrites` left them; read on demand."""

    def tree_meta(self) -> tuple[int, int, bytes] | None:
        """(depth, record count, top node hash), None for a store without a tree."""
        ...

    def tree_bucket(self, depth: int, index: int) -> bytes | None:
        """A bucket (`encode_bucket`), None when empty."""
        ...

    def tree_children(self, depth: int, level: int, parent: int) -> bytes | None:
        """The 16 hashes of nodes (level, 16 * parent ...), None when all are empty."""
        ...

    def tree_bucket_many(self, depth: int, indexes: list[int]) -> list[bytes | None]:
        """`tree_bucket` for many buckets in one read."""
        ...

    def tree_children_many(
        self, depth: int, level: int, parents: list[int]
    ) -> list[bytes | None]: ...

    def tree_buckets(self, depth: int) -> Iterator[tuple[int, bytes]]:
        """Every non-empty bucket, for regrouping them at another depth."""
        ...

    def tree_children_level(self, depth: int, level: int) -> Iterator[tuple[int, bytes]]:
        """Every non-empty children blob of `level` as (parent, blob), to pin the level."""
        ...


@dataclass(frozen=True)
class TreeWrites:
    """What a tree changed since its last writes, for the store to persist in the same
    batch as the records: buckets and children blobs (None: delete), the depth, count and
    top node, and `dropped`: a depth whose stored tree is now obsolete (regrouped)."""

    depth: int
    count: int
    top: bytes
    buckets: dict[int, bytes | None]
    children: dict[int, dict[int, bytes | None]]  # level -> parent -> blob
    dropped: int | None = None


_EMPTY_KIDS: Final = tuple(h * FANOUT for h in EMPTY)
_BLOB_BITS: Final = 9  # a children blob is 16 hashes of 32 bytes: 512 = 1 << 9


class _Level:
    """A children level held whole (pinned over a source) as one buffer: the blob of
    `parent` is bytes [512 * parent, 512 * parent + 512), empty hashes where nothing was
    written. One buffer, not a dict of 16**k blobs, so that a block writes its changed
    hashes into a level with one numpy scatter instead of a Python step per hash (a
    third of the node hashing's CPU at 20 million records), and 16**5 blobs take 512 MB,
    not 600. `get`, `pop` and item assignment are the dict's, so trials treat both alike;
    a blob from `get` is a view: copy it to keep it."""

    __slots__ = ("_view", "data", "hashes", "level")

    def __init__(self, level: int, blobs: int, data: bytearray | None = None) -> None:
        import numpy as np  # only a node's tree over its store has whole levels

        self.level = level
        self.data = bytearray(_EMPTY_KIDS[level]) * blobs if data is None else data
        self._view = memoryview(self.data)
        self.hashes = np.frombuffer(self.data, dtype=np.uint8).reshape(-1, 32)

    def get(self, parent: int, default: object = None) -> memoryview:
        return self._view[parent << _BLOB_BITS : (parent + 1) << _BLOB_BITS]

    def __setitem__(self, parent: int, blob: bytes | bytearray | memoryview) -> None:
        self._view[parent << _BLOB_BITS : (parent + 1) << _BLOB_BITS] = blob

    def pop(self, parent: int, default: object = None) -> None:
        self[parent] = _EMPTY_KIDS[self.level]

    def copy(self) -> _Level:
        return _Level(self.level, 0, bytearray(self.data))

    def fill(self, blobs: Iterable[tuple[int, bytes]]) -> None:
        """Every stored blob of the level, (parent, blob): what a tree reads when it opens
        (a million at 20 million records, so one loop without a call per blob)."""
        view = self._view
        for parent, blob in blobs:
            view[parent << _BLOB_BITS : (parent + 1) << _BLOB_BITS] = blob


Kids = dict[int, bytearray] | _Level


@dataclass
class _Shape:
    """Everything a tree holds; swapped whole when the depth changes inside a trial."""

    depth: int = MIN_DEPTH
    count: int = 0
    buckets: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    # kids[level][parent]: the 16 hashes of nodes (level, 16 * parent ...), level 0 the
    # buckets; absent: all empty, or (over a source) not read yet. A pinned level over a
    # source is a `_Level` instead, holding every blob.
    kids: list[Kids] = field(default_factory=lambda: [{}])
    top: bytes = EMPTY[MIN_DEPTH]
    # With a source: buckets and children blobs not yet written there, the blobs as
    # level -> parents (ints, not (level, parent) tuples: a block at 20 million records
    # touches 5,800 blobs, and as many tuples cost 1-3 ms of its root, collector included).
    unsaved_buckets: set[int] = field(default_factory=set)
    unsaved_children: dict[int, set[int]] = field(default_factory=dict)
    dropped: int | None = None
    fresh: bool = False  # regrouped: memory holds all of it, the source none of it yet
    # Levels of `kids` memory holds whole (`pinned`): a blob missing there is empty.
    complete: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class TreeChanges:
    """What a trial did to the tree: each touched key with its position and leaf hash, and
    each touched children blob by (level, parent) (level `depth`: the top; None: absent);
    or, when the trial changed the depth, the whole tree after it (`shape`)."""

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


BUCKET_CACHE: Final = 100_000
NODE_CACHE: Final = 100_000
"""Clean buckets and children blobs a tree over a source keeps between blocks (about 60 MB
each), on the levels that are not pinned."""
PINNED_BLOBS: Final = 1 << 20
"""A children level of at most this many blobs (512 MB of hashes) is pinned: read whole
when a tree opens over a source (as one `_Level` buffer) and never evicted, so a block
reads no node there, only its buckets. Every level is pinned up to 268 million records
(depth 6): at 20 million the bottom level's 16**5 blobs take 512 MB and about 3 s of CPU
to read at a restart, against some 2,000 random RocksDB reads a block (one bottom blob
per bucket it changes, each cold in the block cache, which the tree outgrows there)."""


def pinned(depth: int, level: int) -> bool:
    """Is children level `level` of a tree of `depth` held whole in memory?"""
    return 1 << (FANOUT_BITS * (depth - 1 - level)) <= PINNED_BLOBS


class BucketTree:
    """The incremental commitment described in the module docstring.

    Without a source everything is in memory. Over a `TreeSource`, buckets and children
    blobs are read when first needed and kept until `take_writes` has handed them to the
    store and the caches are full; an entry missing from memory is the source's, so
    undoing a trial may simply forget an entry that the source still holds as it was."""

    def __init__(self, source: TreeSource | None = None) -> None:
        self._source = source
        self._s = _Shape()
        meta = None if source is None else source.tree_meta()
        if source is not None and meta is not None:
            depth, count, top = meta
            self._s = _Shape(depth, count, kids=self._levels(depth), top=top)
            for level, kids in enumerate(self._s.kids):
                if isinstance(kids, _Level):
                    kids.fill(source.tree_children_level(depth, level))
                    self._s.complete.add(level)
        self._dirty: set[int] = set()
        # While a trial is open: the first leaf of every key and the first value of every
        # children blob it touches (a journal per key: a bucket is never copied), or the
        # whole tree before it when the trial changed the depth.
        self._old_leaves: dict[bytes, tuple[int, bytes | None]] | None = None
        self._old_nodes: dict[tuple[int, int], bytes | None] = {}
        self._before: _Shape | None = None

    def _levels(self, depth: int) -> list[Kids]:
        """Empty children levels for a tree of `depth`: the pinned ones whole (`_Level`)
        over a source, the others (and all of an in-memory tree) as dicts."""
        return [
            _Level(level, 1 << (FANOUT_BITS * (depth - 1 - level)))
            if self._source is not None and pinned(depth, level)
            else {}
            for level in range(depth)
        ]

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

    def lacks(self, key: bytes) -> bool:
        """Whether memory shows that the tree, as of its last hashing, has no leaf for
        `key`: its bucket is held and the key is not in it. False when the bucket is not
        held (the source may have it). Mostly asked of keys never seen before (a block's
        new records), so the position is not memoised (`key_positions`, compiled: 0.2 µs
        where a memoised miss costs 1)."""
        s = self._s
        [position] = key_positions((key,))
        bucket = s.buckets.get(bucket_at(position, s.depth))
        if bucket is None:
            return s.fresh or self._source is None
        return key not in bucket

    def bucket_leaves(self, index: int) -> dict[bytes, bytes]:
        """The keys of bucket `index` and their leaf hashes (after `root`)."""
        return dict(self._bucket(index) or {})

    def node(self, level: int, index: int) -> bytes:
        """The hash at (level, index) after `root`: level 0 a bucket, level `depth` the top."""
        depth = self._s.depth
        if not 0 <= level <= depth or not 0 <= index < 1 << (FANOUT_BITS * (depth - level)):
            raise IndexError(f"no node ({level}, {index}) at depth {depth}")
        if level == depth:
            return self._s.top
        at = (index & (FANOUT - 1)) * 32
        return bytes(self._kids(level, index >> FANOUT_BITS, keep=False)[at : at + 32])

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

    # --- reading through the source -----------------------------------------------------
    def prefetch(self, positions: Iterable[int]) -> None:
        """Read the buckets of the keys at `positions` (`key_position`) that memory lacks,
        in one batch (before writing them)."""
        s = self._s
        if self._source is None or s.fresh:
            return
        buckets = s.buckets
        missing = self._missing(positions)
        if missing:
            found, decode = self._source.tree_bucket_many(s.depth, missing), _PAIRS.decode
            if _native:
                _compiled.decode_buckets(buckets, missing, list(found), decode)
                return
            for index, blob in zip(missing, found, strict=True):
                buckets[index] = {} if blob is None else dict(decode(blob))

    def warm(self, positions: Iterable[int]) -> None:
        """Tell a source that can take the hint (`tree_warm`) which buckets `prefetch` will
        want: those of the keys at `positions` that memory lacks. It starts reading them
        while the block still executes, and `prefetch` gets them through its
        `tree_bucket_many` as any other read (a read ahead that the source's own writes
        made old is the source's to drop: `storage.read_ahead`)."""
        hint = getattr(self._source, "tree_warm", None)
        if hint is None or self._s.fresh:
            return
        missing = self._missing(positions)
        if missing:
            hint(self._s.depth, missing)

    def _missing(self, positions: Iterable[int]) -> list[int]:
        """The buckets of the keys at `positions` that memory does not hold. Not `set -
        buckets.keys()`: a set minus a dict's view walks the whole view (1.8 ms with 65,536
        buckets held, for 64 positions); this looks up each bucket."""
        s = self._s
        shift, buckets = 32 - FANOUT_BITS * s.depth, s.buckets
        return [b for b in {p >> shift for p in positions} if b not in buckets]

    def _prefetch_kids(self, level: int, parents: Iterable[int]) -> None:
        s = self._s
        if self._source is None or s.fresh or level in s.complete:
            return
        kids = s.kids[level]
        assert not isinstance(kids, _Level), "a whole level is complete"
        missing = [p for p in parents if p not in kids]
        if missing:
            found = self._source.tree_children_many(s.depth, level, missing)
            empty = _EMPTY_KIDS[level]
            for parent, blob in zip(missing, found, strict=True):
                kids[parent] = bytearray(empty if blob is None else blob)

    def _bucket(self, index: int) -> dict[bytes, bytes] | None:
        s = self._s
        bucket = s.buckets.get(index)
        if bucket is None and self._source is not None and not s.fresh:
            blob = self._source.tree_bucket(s.depth, index)
            bucket = s.buckets[index] = {} if blob is None else decode_bucket(blob)
        return bucket

    def _kids(self, level: int, parent: int, keep: bool = True) -> bytearray | memoryview:
        """The children blob (level, parent), read from the source if memory lacks it;
        kept in memory (to change it, or as a cache over a source) unless `keep` is off."""
        s = self._s
        kids = s.kids[level]
        if isinstance(kids, _Level):
            return kids.get(parent)
        blob = kids.get(parent)
        if blob is None:
            stored = None
            if self._source is not None and not s.fresh and level not in s.complete:
                stored = self._source.tree_children(s.depth, level, parent)
            blob = bytearray(_EMPTY_KIDS[level] if stored is None else stored)
            if keep or self._source is not None:
                kids[parent] = blob
        return blob

    def take_writes(self) -> TreeWrites:
        """What changed since the last call, for the store (call `root` first, close any
        trial); the caches first shrink back to their bounds, keeping what is unsaved."""
        if self._dirty or self._old_leaves is not None:
            raise RuntimeError("hash pending changes, and close the trial, before writing")
        s = self._s
        if self._source is not None:  # what earlier calls handed over is stored by now
            if len(s.buckets) > BUCKET_CACHE:
                s.buckets = {i: s.buckets[i] for i in s.unsaved_buckets if i in s.buckets}
            for level, kids in enumerate(s.kids):
                if not isinstance(kids, _Level) and len(kids) > NODE_CACHE:
                    unsaved = s.unsaved_children.get(level, set())
                    s.kids[level] = {p: b for p, b in kids.items() if p in unsaved}
                    s.complete.discard(level)
        buckets: dict[int, bytes | None]
        if _native:
            buckets = _compiled.encode_buckets(s.buckets, s.unsaved_buckets, self._bucket)
        else:
            buckets = {}
            for index in s.unsaved_buckets:
                bucket = self._bucket(index)
                buckets[index] = encode_bucket(bucket) if bucket else None
        children: dict[int, dict[int, bytes | None]] = {}
        for level, parents in s.unsaved_children.items():
            blobs, empty = children.setdefault(level, {}), _EMPTY_KIDS[level]
            for parent in parents:
                blob = bytes(self._kids(level, parent, keep=False))
                blobs[parent] = None if blob == empty else blob
        writes = TreeWrites(s.depth, s.count, s.top, buckets, children, s.dropped)
        s.unsaved_buckets, s.unsaved_children, s.dropped, s.fresh = set(), {}, None, False
        return writes

    # --- trials: undo and redo without hashing again --------------------------------------
    def begin(self) -> None:
        if self._dirty:
            raise RuntimeError("hash pending changes (root) before a trial")
        self._old_leaves, self._old_nodes, self._before = {}, {}, None

    def changes(self) -> TreeChanges:
        """What the open trial did to the tree (after `root`), to `redo` on the same tree."""
        if self._old_leaves is None or self._dirty:
            raise RuntimeError("no trial open, or changes not hashed yet")
        s = self._s
        if self._before is not None:
            return TreeChanges({}, {}, s)
        leaves = {}
        for key, (position, _) in self._old_leaves.items():
            found = s.buckets.get(bucket_at(position, s.depth))
            leaves[key] = (position, None if found is None else found.get(key))
        nodes: dict[tuple[int, int], bytes | None] = {}
        for level, parent in self._old_nodes:
            if level == s.depth:
                nodes[(level, parent)] = s.top
            else:
                blob = s.kids[level].get(parent)
                nodes[(level, parent)] = None if blob is None else bytes(blob)
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
        s = self._s
        if old is not None and self._before is None:  # inside a trial: journal this too
            for key, (position, _) in changes.leaves.items():
                if key not in old:
                    found = self._bucket(bucket_at(position, s.depth))
                    old[key] = (position, None if found is None else found.get(key))
            for level, parent in changes.nodes:
                self._journal(level, parent)
        self._restore(changes)

    def _journal(self, level: int, parent: int) -> None:
        """Remember the children blob (level, parent), or the top, before a trial changes it."""
        s, old = self._s, self._old_nodes
        if (level, parent) not in old:
            if level == s.depth:
                old[(level, parent)] = s.top
            else:
                blob = s.kids[level].get(parent)
                old[(level, parent)] = None if blob is None else bytes(blob)

    def _restore(self, changes: TreeChanges, shape: _Shape | None = None) -> None:
        s = self._s if shape is None else shape
        buckets, depth = s.buckets, s.depth
        for key, (position, leaf) in changes.leaves.items():
            index = bucket_at(position, depth)
            bucket = buckets.get(index)
            if bucket is None and shape is None:
                bucket = self._bucket(index)
            had = bucket is not None and key in bucket
            s.unsaved_buckets.add(index)
            if leaf is not None:
                buckets.setdefault(index, {})[key] = leaf
                s.count += not had
            elif bucket is not None and had:
                del bucket[key]
                s.count -= 1
                if not bucket and self._source is None:  # as `root` leaves it
                    del buckets[index]
        for (level, parent), blob in changes.nodes.items():
            if level == depth:
                assert blob is not None
                s.top = blob
                continue
            s.unsaved_children.setdefault(level, set()).add(parent)
            if blob is None:
                s.kids[level].pop(parent, None)
            else:
                s.kids[level][parent] = bytearray(blob)
        if shape is None:
            self._dirty = set()

    def _copy(self) -> _Shape:
        s = self._s
        return _Shape(
            s.depth, s.count, {i: dict(b) for i, b in s.buckets.items()},
            [k.copy() if isinstance(k, _Level) else {p: bytearray(b) for p, b in k.items()}
             for k in s.kids], s.top,
            set(s.unsaved_buckets), {k: set(p) for k, p in s.unsaved_children.items()},
            s.dropped, s.fresh,
            set(s.complete),
        )  # fmt: skip

    def _undo_journal(self, shape: _Shape) -> None:
        """Turn a copy of the tree in a trial back into the tree the trial started from."""
        assert self._old_leaves is not None
        self._restore(TreeChanges(self._old_leaves, self._old_nodes), shape)

    # --- writes and hashing ----------------------------------------------------------------
    def set(self, key: bytes, value: bytes | None, position: int | None = None) -> None:
        """Write `key` (None: delete); `position`: its `key_position`, when known."""
        s = self._s
        if position is None:
            position = key_position(key)
        index = bucket_at(position, s.depth)
        bucket = self._bucket(index)
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

    def set_many(
        self, keys: Sequence[bytes], values: Sequence[bytes | None], positions: Sequence[int]
    ) -> None:
        """`set` for a block's keys at once (values None: deleted; positions from
        `key_positions`), with `prefetch` first over a source. The same as calling `set`
        for each, as one loop: a block writes thousands of keys, and a call and a
        `tagged_hash` per key were a large part of its root."""
        s, old = self._s, self._old_leaves
        if old is not None and self._before is not None:
            old = None  # the trial already keeps the whole tree before it
        shift, buckets, dirty = 32 - FANOUT_BITS * s.depth, s.buckets, self._dirty
        if _native:
            s.count += _compiled.set_many(
                list(keys), list(values), list(positions), shift, buckets, self._bucket, old,
                dirty,
            )  # fmt: skip
            return
        start, count = _LEAF.copy, s.count
        for key, value, position in zip(keys, values, positions, strict=True):
            index = position >> shift
            bucket = buckets.get(index)
            if bucket is None:
                bucket = self._bucket(index)
                if bucket is None:
                    if value is None:
                        continue  # nothing to delete, and no empty bucket to leave behind
                    bucket = buckets[index] = {}
            had = bucket.get(key)
            if old is not None and key not in old:
                old[key] = (position, had)
            if value is None:
                if had is not None:
                    del bucket[key]
                    count -= 1
            else:
                h = start()
                h.update(len(key).to_bytes(4) + key + value)
                bucket[key] = h.digest()
                count += had is None
            dirty.add(index)
        s.count = count

    def root(self) -> bytes:
        depth = depth_for(self._s.count)
        if depth != self._s.depth:
            self._regroup(depth)
        s = self._s
        if not self._dirty:
            return root_hash(s.depth, s.top)
        s.top = self._hash_levels(self._hash_buckets())
        self._dirty = set()
        return root_hash(s.depth, s.top)

    def _hash_buckets(self) -> dict[int, bytes]:
        """The new hash of each changed bucket, by index."""
        s = self._s
        keep_empty = self._source is not None  # an absent entry would read the source's
        if _native:
            changed = _compiled.hash_buckets(s.buckets, self._dirty, keep_empty, EMPTY[0])
            s.unsaved_buckets.update(self._dirty)
            return changed
        changed = {}
        buckets, start = s.buckets, _BUCKET.copy
        for index in self._dirty:
            bucket = buckets.get(index)
            if bucket:
                h = start()
                update = h.update
                for key in sorted(bucket):  # = bucket_hash, without joining the leaves
                    update(bucket[key])
                changed[index] = h.digest()
            else:
                changed[index] = EMPTY[0]
                if not keep_empty:
                    buckets.pop(index, None)
        s.unsaved_buckets.update(self._dirty)
        return changed

    def _hash_levels(self, changed: dict[int, bytes]) -> bytes:
        """Each children blob above the `changed` hashes, level by level: the new top."""
        s = self._s
        journal = self._old_leaves is not None and self._before is None
        keep_empty = self._source is not None
        start = _NODE.copy
        reads = self._source is not None and not s.fresh
        for level in range(s.depth):
            if journal or (reads and level not in s.complete):
                parents = {i >> FANOUT_BITS for i in changed}
                if journal:
                    for parent in parents:
                        self._journal(level, parent)
                self._prefetch_kids(level, parents)
            kids = s.kids[level]
            if isinstance(kids, _Level):
                changed = self._hash_level(kids, changed)
                continue
            if _native:
                changed = _compiled.hash_dict_level(
                    kids, changed, functools.partial(self._kids, level), _EMPTY_KIDS[level],
                    EMPTY[level + 1], keep_empty,
                )  # fmt: skip
                s.unsaved_children.setdefault(level, set()).update(changed)
                continue
            blobs = dict[int, bytearray]()
            for index, hashed in changed.items():
                parent = index >> FANOUT_BITS
                blob = blobs.get(parent)
                if blob is None:
                    blob = kids.get(parent)
                    if blob is None:
                        blob = cast(bytearray, self._kids(level, parent))  # a dict level's
                    blobs[parent] = blob
                at = (index & (FANOUT - 1)) << 5
                blob[at : at + 32] = hashed
            s.unsaved_children.setdefault(level, set()).update(blobs)
            changed, empty = {}, _EMPTY_KIDS[level]
            for parent, blob in blobs.items():
                if blob == empty:
                    changed[parent] = EMPTY[level + 1]
                    if not keep_empty:
                        del kids[parent]
                else:
                    h = start()
                    h.update(blob)
                    changed[parent] = h.digest()
        if journal:
            self._journal(s.depth, 0)
        return changed[0]

    def _hash_level(self, kids: _Level, changed: dict[int, bytes]) -> dict[int, bytes]:
        """`_hash_levels` on a whole level: the changed hashes written with one scatter,
        then each touched blob hashed (an all-empty blob hashes to EMPTY[level + 1])."""
        if _native:
            above = _compiled.hash_level(kids.data, changed)
            self._s.unsaved_children.setdefault(kids.level, set()).update(above)
            return above
        import numpy as np  # loaded already by the `_Level`

        indexes = np.fromiter(changed, dtype=np.int64, count=len(changed))
        hashes = np.frombuffer(b"".join(changed.values()), dtype=np.uint8)
        kids.hashes[indexes] = hashes.reshape(-1, 32)
        # A set comprehension, not np.unique: in a block's root the latter cost 0.5 ms a
        # level (2.5 ms of 8.8 for the node hashes at 6 million records), this 0.1 ms.
        parents = {index >> FANOUT_BITS for index in changed}
        self._s.unsaved_children.setdefault(kids.level, set()).update(parents)
        view, start, above = memoryview(kids.data), _NODE.copy, {}
        for parent in parents:
            h = start()
            h.update(view[parent << _BLOB_BITS : (parent + 1) << _BLOB_BITS])
            above[parent] = h.digest()
        return above

    def _regroup(self, depth: int) -> None:
        """Every key into the buckets of the new depth, all of them to hash: the one cost
        that is O(state), paid when the record count crosses a threshold."""
        if self._old_leaves is not None and self._before is None:
            self._before = self._copy()
            self._undo_journal(self._before)
        old = self._s
        everything = dict(old.buckets)
        if self._source is not None and not old.fresh:  # what memory lacks is the source's
            for index, blob in self._source.tree_buckets(old.depth):
                if index not in everything:
                    everything[index] = decode_bucket(blob)
        buckets: dict[int, dict[bytes, bytes]] = {}
        keys = [key for bucket in everything.values() for key in bucket]
        leaves = [leaf for bucket in everything.values() for leaf in bucket.values()]
        shift = 32 - FANOUT_BITS * depth  # positions in one batch: every key of the state
        for key, leaf, position in zip(keys, leaves, key_positions(keys), strict=True):
            buckets.setdefault(position >> shift, {})[key] = leaf
        kids = self._levels(depth)
        dropped = old.depth if old.dropped is None else old.dropped
        self._s = _Shape(
            depth, old.count, buckets, kids, EMPTY[depth], set(buckets), {}, dropped, True,
            set(range(depth)),  # every blob is hashed anew in memory
        )  # fmt: skip
        self._dirty = set(buckets) or {0}


class TreeBuilder:
    """A tree built from its buckets given in increasing index order, holding one children
    blob per level: how a store rebuilds its tree from its records without holding them
    all (the migration of a store written before the tree was kept). `emit` receives
    each non-empty children blob (level, parent, blob) as it is complete."""

    def __init__(self, depth: int, emit: Callable[[int, int, bytes], None]) -> None:
        self.depth = depth
        self._emit = emit
        self._open: list[tuple[int, bytearray] | None] = [None] * depth
        self._top = EMPTY[depth]

    def add_bucket(self, index: int, leaves: Mapping[bytes, bytes]) -> None:
        self._add(0, index, bucket_hash(leaves) if leaves else EMPTY[0])

    def add_hash(self, index: int, hashed: bytes) -> None:
        """A bucket by its hash (one state sync proved: nothing to hash again)."""
        self._add(0, index, hashed)

    def _add(self, level: int, index: int, hashed: bytes) -> None:
        parent = index >> FANOUT_BITS
        current = self._open[level]
        if current is not None and current[0] != parent:
            self._close(level)
            current = None
        if current is None:
            current = self._open[level] = (parent, bytearray(_EMPTY_KIDS[level]))
        at = (index & (FANOUT - 1)) * 32
        current[1][at : at + 32] = hashed

    def _close(self, level: int) -> None:
        current = self._open[level]
        assert current is not None
        parent, blob = current
        self._open[level] = None
        hashed = node_hash(blob)  # type: ignore[arg-type]
        if blob != _EMPTY_KIDS[level]:
            self._emit(level, parent, bytes(blob))
        if level + 1 < self.depth:
            self._add(level + 1, parent, hashed)
        else:
            self._top = hashed

    def finish(self) -> bytes:
        """The top node, once every bucket was added."""
        for level in range(self.depth):
            if self._open[level] is not None:
                self._close(level)
        return self._top


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
    hashes: dict[int, bytes] = {}
    for index, leaves in buckets.items():
        if any(bucket_at(key_position(key), depth) != index for key in leaves):
            return False
        if leaves:
            hashes[index] = bucket_hash(leaves)
    return verify_hashes(root, proof, hashes)


def verify_hashes(root: bytes, proof: RangeProof, hashes: Mapping[int, bytes]) -> bool:
    """Do the bucket hashes `hashes` (index -> hash; a bucket of the range that is missing
    is empty) fill buckets proof.first..proof.last of the tree whose root is `root`? What
    `verify_range` checks once it has hashed the buckets, for a caller that hashed them
    already (state sync, which keeps the hashes to build the tree from)."""
    depth, lo, hi = proof.depth, proof.first, proof.last
    if not MIN_DEPTH <= depth <= MAX_DEPTH or not 0 <= lo <= hi < FANOUT**depth:
        return False
    if any(not lo <= index <= hi for index in hashes):
        return False
    level_hashes = {index: hashes.get(index, EMPTY[0]) for index in range(lo, hi + 1)}
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
