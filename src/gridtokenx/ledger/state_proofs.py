"""Chunk proofs over the state root's bucket tree (`ledger.bucket_tree`), for state sync.

A snapshot of the state is cut into chunks, each a contiguous range of buckets with every
record in them. A chunk is proved against the state root on its own: the receiver hashes
the chunk's records into the buckets of its range and checks them with the tree's own range
proof (`bucket_tree.verify_range`: the siblings outside the range under its first and last
parents, level by level, up to the root, which commits to the depth). A chunk whose records
were altered, dropped or added, a proof for another range, another depth, or a root other
than the certified one all end in a root that differs, and the chunk is refused before
anything of it is written.

The tree's depth grows with the record count (`bucket_tree.depth_for`), so a snapshot's
buckets are counted at its own depth, which its offer states: the root commits to it, so an
offer with a wrong depth has no chunk that proves.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from gridtokenx.ledger import bucket_tree as tree

Siblings = tuple[tuple[int, int, bytes], ...]
"""A range proof's sibling hashes as sent: (level, index, hash), in (level, index) order."""


_pairs: Final = msgspec.msgpack.Encoder()  # a bucket's blob, as `tree.encode_bucket` makes it


_UNORDERED: Final = "the chunk's keys are not unique and in bucket and key order"


class BadChunk(ValueError):
    """A chunk that does not prove against the root it was checked against."""


def buckets(depth: int) -> int:
    """How many buckets a tree of `depth` has: chunk ranges partition [0, buckets(depth))."""
    if not tree.MIN_DEPTH <= depth <= tree.MAX_DEPTH:
        raise BadChunk(f"no state tree has depth {depth}")
    return 1 << (tree.FANOUT_BITS * depth)


def group(
    entries: Iterable[tuple[bytes, bytes]], depth: int
) -> dict[int, list[tuple[bytes, bytes]]]:
    """(key, bytes) pairs by their bucket at `depth`, each bucket in key order."""
    grouped: dict[int, list[tuple[bytes, bytes]]] = {}
    for key, value in entries:
        grouped.setdefault(tree.bucket_at(tree.key_position(key), depth), []).append((key, value))
    for bucket in grouped.values():
        bucket.sort()
    return grouped


def siblings_of(proof: tree.RangeProof) -> Siblings:
    return tuple((level, index, h) for (level, index), h in sorted(proof.siblings.items()))


@dataclass(frozen=True)
class Range:
    """Buckets [first, end) and their records as (key, canonical bytes), bucket by bucket
    and each bucket in key order."""

    first: int
    end: int
    records: list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Proved:
    """What a chunk that proved gives the store it is restored into besides its records:
    each non-empty bucket as (index, bucket hash, `bucket_tree.encode_bucket` blob), in
    index order, so the tree is stored and built upwards without hashing a record again."""

    buckets: list[tuple[int, bytes, bytes]]


def verify(chunk: Range, depth: int, siblings: Siblings, root: bytes) -> Proved:
    """Check that `chunk` holds exactly the records of its buckets under `root`, in a tree
    of `depth`; raises `BadChunk` otherwise. Records come bucket by bucket, each bucket in
    key order, keys unique and inside the range. Each step runs over the whole chunk in
    one comprehension or C call (a joining node checks millions of records)."""
    count = buckets(depth)
    if not 0 <= chunk.first < chunk.end <= count:
        raise BadChunk(f"bucket range [{chunk.first}, {chunk.end}) is outside [0, {count})")
    keys = [key for key, _ in chunk.records]
    shift = 32 - tree.FANOUT_BITS * depth
    indexes = [position >> shift for position in tree.key_positions(keys)]
    if indexes != sorted(indexes) or len(set(keys)) != len(keys):
        raise BadChunk(_UNORDERED)
    if indexes and not chunk.first <= indexes[0] <= indexes[-1] < chunk.end:
        stray = indexes[0] if indexes[0] < chunk.first else indexes[-1]
        raise BadChunk(f"a key of bucket {stray} in a chunk of [{chunk.first}, {chunk.end})")
    leaves = tree.leaf_hashes(chunk.records)
    proved: list[tuple[int, bytes, bytes]] = []
    at = 0
    while at < len(keys):  # bucket by bucket: a run of equal indexes
        index = indexes[at]
        end = bisect.bisect_right(indexes, index, at)
        bucket_keys, bucket_leaves = keys[at:end], leaves[at:end]
        if bucket_keys != sorted(bucket_keys):
            raise BadChunk(_UNORDERED)
        pairs = list(zip(bucket_keys, bucket_leaves, strict=True))
        proved.append((index, tree.bucket_hash_of(bucket_leaves), _pairs.encode(pairs)))
        at = end
    proof = tree.RangeProof(depth, chunk.first, chunk.end - 1,
                            {(level, index): h for level, index, h in siblings})  # fmt: skip
    hashes = {index: hashed for index, hashed, _ in proved}
    if len(proof.siblings) != len(siblings) or not tree.verify_hashes(root, proof, hashes):
        raise BadChunk("the chunk does not prove against the state root")
    return Proved(proved)


def cut(sizes: dict[int, int], limit: int, depth: int) -> list[tuple[int, int]]:
    """Bucket ranges partitioning the whole tree of `depth`, each holding at most `limit`
    bytes of records (a single bucket larger than that makes a chunk of its own): `sizes`
    gives the bytes of each non-empty bucket."""
    ranges: list[tuple[int, int]] = []
    first, held = 0, 0
    for index in sorted(sizes):
        size = sizes[index]
        if held and held + size > limit:
            ranges.append((first, index))
            first, held = index, 0
        held += size
    ranges.append((first, buckets(depth)))
    return ranges


def partitions(ranges: Sequence[tuple[int, int]], depth: int) -> bool:
    """Whether `ranges` cover every bucket of a tree of `depth` once, in order (what a
    snapshot's chunks must)."""
    if not tree.MIN_DEPTH <= depth <= tree.MAX_DEPTH:
        return False
    at = 0
    for first, end in ranges:
        if first != at or end <= first:
            return False
        at = end
    return at == buckets(depth)
