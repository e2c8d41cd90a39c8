"""Merkle tree hash (MTH) and inclusion proofs, exactly as RFC 6962 §2.1 / RFC 9162 §2.1.

Why this construction rather than a home-grown tree:

* Second-preimage resistance. Leaves are hashed as ``SHA-256(0x00 || item)`` and interior nodes
  as ``SHA-256(0x01 || left || right)``, so no interior node can be passed off as a leaf (or the
  reverse) to forge a different list with the same root.
* No duplicated last leaf. An unbalanced tree splits at the largest power of two below ``n``
  and promotes the odd subtree unchanged, so ``[a, b, c]`` and ``[a, b, c, c]`` have different
  roots (the Bitcoin CVE-2012-2459 mutation cannot happen).
* It is a published standard with an audit-path format and a verification algorithm that
  light clients (meter gateways, wallets, regulators' auditors) can implement from the RFC
  without reading this code, and check a single transaction against a block header in
  ``O(log n)`` hashes.

The 0x00/0x01 prefixes also keep Merkle hashes apart from every other GridTokenX hash: those
go through `crypto.tagged_hash`, whose input always begins with an ASCII tag, never with a
0x00 or 0x01 byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(item: bytes) -> bytes:
    """RFC 6962 leaf hash; the 0x00 prefix is what stops a leaf posing as an interior node."""
    return hashlib.sha256(_LEAF_PREFIX + item).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _next_level(level: list[bytes]) -> list[bytes]:
    """Pair neighbours; an odd last node is promoted as is, never hashed with itself.

    Promoting the odd node level by level yields exactly the RFC 6962 split at the largest
    power of two below ``n``, without recursion or slicing, so the root costs ``n - 1`` node
    hashes and ``O(n)`` memory.
    """
    paired = [_node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        paired.append(level[-1])
    return paired


def merkle_root(items: Sequence[bytes]) -> bytes:
    """MTH(D[n]); the empty list has root SHA-256("") so every list, even empty, has a root."""
    if not items:
        return hashlib.sha256(b"").digest()
    level = [leaf_hash(item) for item in items]
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def inclusion_proof(items: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 PATH(index, D[n]): sibling hashes from the leaf up to the root.

    Raises `IndexError` for an index outside the list: asking for a proof of a leaf that
    does not exist is a bug in the caller, not data to be judged.
    """
    if isinstance(index, bool) or not 0 <= index < len(items):
        raise IndexError(f"leaf index {index} out of range for {len(items)} items")
    level = [leaf_hash(item) for item in items]
    proof: list[bytes] = []
    position = index
    while len(level) > 1:
        sibling = position ^ 1
        if sibling < len(level):  # else this node is the promoted odd one: no hash at this level
            proof.append(level[sibling])
        position >>= 1
        level = _next_level(level)
    return proof


def verify_inclusion(
    root: bytes, item: bytes, index: int, tree_size: int, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.3.2: does `item` sit at `index` in a tree of `tree_size` with this root?

    Proofs arrive from untrusted peers, so every malformed input (wrong types, wrong hash
    lengths, an index outside the tree, a path that is too short or too long) yields False
    instead of an exception that a caller might forget to catch.
    """
    if not _is_index(index) or not _is_index(tree_size) or index >= tree_size:
        return False
    if not _is_hash(root) or not isinstance(item, bytes | bytearray | memoryview):
        return False
    fn, sn = index, tree_size - 1
    r = leaf_hash(bytes(item))
    for p in proof:
        if sn == 0 or not _is_hash(p):
            return False
        if fn & 1 or fn == sn:
            r = _node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE
