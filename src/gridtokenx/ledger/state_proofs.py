"""Chunk proofs over the state root's bucket tree, for state sync.

A snapshot of the state is cut into chunks, each a contiguous range of buckets with every
record in them. A chunk is proved against the state root on its own: the receiver hashes
the chunk's records into the buckets of its range (an empty bucket hashes as one), then
climbs the tree level by level, taking from the proof the hashes of the siblings its range
does not cover inside the first and the last parent of each level (at most 2 * (fanout - 1)
per level), until one node is left: the root. A chunk whose records were altered, dropped or
added, a proof for another range, or a root other than the certified one all end in a root
that differs, and the chunk is refused before anything of it is written.

This module reads the tree through `ledger.state`'s public rules only (`bucket_of`,
`leaf_hash`, `bucket_hash`, `node_hash`) and its shape constants, read when called, so
the tree can grow (more buckets, more levels) without this code changing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from gridtokenx.ledger import state as tree


class BadChunk(ValueError):
    """A chunk that does not prove against the root it was checked against."""


def _shape() -> tuple[int, int, int]:
    """(buckets, fanout, levels above the buckets) of the tree as it is defined now."""
    return 1 << tree.BUCKET_BITS, 1 << tree.FANOUT_BITS, tree.LEVELS


def buckets() -> int:
    """How many buckets the state tree has: chunk ranges partition [0, buckets())."""
    return _shape()[0]


def empty_hashes() -> list[bytes]:
    """The hash of an empty bucket (index 0) and of an empty node at each level above."""
    _, fanout, levels = _shape()
    empty = [tree.bucket_hash(())]
    for _ in range(levels):
        empty.append(tree.node_hash([empty[-1]] * fanout))
    return empty


_EMPTY_CACHE: Final[dict[tuple[int, int, int], list[bytes]]] = {}


def _empty() -> list[bytes]:
    shape = _shape()
    found = _EMPTY_CACHE.get(shape)
    if found is None:
        found = _EMPTY_CACHE[shape] = empty_hashes()
    return found


def group(entries: Iterable[tuple[bytes, bytes]]) -> dict[int, list[tuple[bytes, bytes]]]:
    """(key, canonical bytes) pairs by bucket, each bucket in key order."""
    grouped: dict[int, list[tuple[bytes, bytes]]] = {}
    for key, value in entries:
        grouped.setdefault(tree.bucket_of(key), []).append((key, value))
    for bucket in grouped.values():
        bucket.sort()
    return grouped


def bucket_hash_of(records: Sequence[tuple[bytes, bytes]]) -> bytes:
    """One bucket's hash from its (key, canonical bytes) pairs in key order."""
    return tree.bucket_hash(tree.leaf_hash(k, v) for k, v in records)


class Levels:
    """Every node of a tree built from its non-empty bucket hashes: what a node that serves
    snapshots keeps to prove any range (a few megabytes at 2**16 buckets)."""

    def __init__(self, bucket_hashes: dict[int, bytes]) -> None:
        _, fanout, levels = _shape()
        empty = _empty()
        self._levels: list[dict[int, bytes]] = [dict(bucket_hashes)]
        for level in range(levels):
            below, above = self._levels[-1], {}
            for parent in {i // fanout for i in below}:
                first = parent * fanout
                children = [below.get(first + c, empty[level]) for c in range(fanout)]
                above[parent] = tree.node_hash(children)
            self._levels.append(above)

    def get(self, level: int, index: int) -> bytes:
        return self._levels[level].get(index, _empty()[level])

    @property
    def root(self) -> bytes:
        return self.get(len(self._levels) - 1, 0)

    def prove(self, first: int, end: int) -> tuple[bytes, ...]:
        """The sibling hashes that prove buckets [first, end) (see `climb`)."""
        siblings: list[bytes] = []
        for level, outside in enumerate(_outside(first, end)):
            siblings += (self.get(level, i) for i in outside)
        return tuple(siblings)


def _outside(first: int, end: int) -> list[list[int]]:
    """Per level, the indexes of the nodes a range's climb needs and does not compute: the
    siblings of its first and last parents that lie outside it, in index order."""
    count, fanout, levels = _shape()
    if not 0 <= first < end <= count:
        raise BadChunk(f"bucket range [{first}, {end}) is outside [0, {count})")
    needed = []
    for _ in range(levels):
        low, high = (first // fanout) * fanout, -(-end // fanout) * fanout
        needed.append([*range(low, first), *range(end, high)])
        first, end = low // fanout, high // fanout
    return needed


def climb(
    bucket_hashes: dict[int, bytes], first: int, end: int, siblings: Sequence[bytes]
) -> bytes:
    """The root that buckets [first, end) (hashes given for the non-empty ones) and the
    proof's `siblings` lead to. Raises `BadChunk` for a proof of the wrong length."""
    _, fanout, levels = _shape()
    outside = _outside(first, end)
    if len(siblings) != sum(len(o) for o in outside):
        raise BadChunk(f"the proof holds {len(siblings)} hashes, not {sum(map(len, outside))}")
    empty = _empty()
    known = {i: bucket_hashes.get(i, empty[0]) for i in range(first, end)}
    taken = 0
    for level in range(levels):
        for index in outside[level]:
            known[index] = siblings[taken]
            taken += 1
        known = {
            parent: tree.node_hash(known[parent * fanout + c] for c in range(fanout))
            for parent in sorted({i // fanout for i in known})
        }
    (root,) = known.values()
    return root


@dataclass(frozen=True)
class Range:
    """Buckets [first, end) and their records as (key, canonical bytes), bucket by bucket
    and each bucket in key order."""

    first: int
    end: int
    records: list[tuple[bytes, bytes]]


def verify(chunk: Range, siblings: Sequence[bytes], root: bytes) -> None:
    """Check that `chunk` holds exactly the records of its buckets under `root`; raises
    `BadChunk` otherwise. Records come bucket by bucket, each bucket in key order, keys
    unique and inside the range."""
    previous = (-1, b"")
    by_bucket: dict[int, list[tuple[bytes, bytes]]] = {}
    for key, value in chunk.records:
        index = tree.bucket_of(key)
        if not chunk.first <= index < chunk.end:
            raise BadChunk(f"a key of bucket {index} in a chunk of [{chunk.first}, {chunk.end})")
        if (index, key) <= previous:
            raise BadChunk("the chunk's keys are not unique and in bucket and key order")
        previous = (index, key)
        by_bucket.setdefault(index, []).append((key, value))
    hashes = {i: bucket_hash_of(rs) for i, rs in by_bucket.items()}
    if climb(hashes, chunk.first, chunk.end, siblings) != root:
        raise BadChunk("the chunk does not prove against the state root")


def cut(sizes: dict[int, int], limit: int) -> list[tuple[int, int]]:
    """Bucket ranges partitioning the whole tree, each holding at most `limit` bytes of
    records (a single bucket larger than that makes a chunk of its own): `sizes` gives the
    bytes of each non-empty bucket."""
    count = buckets()
    ranges: list[tuple[int, int]] = []
    first, held = 0, 0
    for index in sorted(sizes):
        size = sizes[index]
        if held and held + size > limit:
            ranges.append((first, index))
            first, held = index, 0
        held += size
    ranges.append((first, count))
    return ranges


def partitions(ranges: Sequence[tuple[int, int]]) -> bool:
    """Whether `ranges` cover every bucket once, in order (what a snapshot's chunks must)."""
    at = 0
    for first, end in ranges:
        if first != at or end <= first:
            return False
        at = end
    return at == buckets()
