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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gridtokenx.ledger import bucket_tree as tree

Siblings = tuple[tuple[int, int, bytes], ...]
"""A range proof's sibling hashes as sent: (level, index, hash), in (level, index) order."""


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


def verify(chunk: Range, depth: int, siblings: Siblings, root: bytes) -> None:
    """Check that `chunk` holds exactly the records of its buckets under `root`, in a tree
    of `depth`; raises `BadChunk` otherwise. Records come bucket by bucket, each bucket in
    key order, keys unique and inside the range."""
    count = buckets(depth)
    if not 0 <= chunk.first < chunk.end <= count:
        raise BadChunk(f"bucket range [{chunk.first}, {chunk.end}) is outside [0, {count})")
    previous = (-1, b"")
    leaves: dict[int, dict[bytes, bytes]] = {}
    for key, value in chunk.records:
        index = tree.bucket_at(tree.key_position(key), depth)
        if not chunk.first <= index < chunk.end:
            raise BadChunk(f"a key of bucket {index} in a chunk of [{chunk.first}, {chunk.end})")
        if (index, key) <= previous:
            raise BadChunk("the chunk's keys are not unique and in bucket and key order")
        previous = (index, key)
        leaves.setdefault(index, {})[key] = tree.leaf_hash(key, value)
    proof = tree.RangeProof(depth, chunk.first, chunk.end - 1,
                            {(level, index): h for level, index, h in siblings})  # fmt: skip
    if len(proof.siblings) != len(siblings) or not tree.verify_range(root, proof, leaves):
        raise BadChunk("the chunk does not prove against the state root")


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
