"""Chunk proofs: every chunk of a state proves against its root, and a tampered chunk, a
wrong root, a proof for another range or a record moved between chunks does not."""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridtokenx.ledger import bucket_tree
from gridtokenx.ledger import state_proofs as proofs
from gridtokenx.ledger.state import State
from gridtokenx.wire import codec


class Rec(msgspec.Struct, frozen=True, array_like=True):
    value: int


def state_of(n: int, seed: int = 1) -> State:
    rng = random.Random(seed)
    state = State()
    view = state.overlay()
    for i in range(n):
        view.put(b"k/%d/%d" % (i, rng.randrange(10**9)), Rec(rng.randrange(2**40)))
    view.commit()
    return state


class Prover:
    """A state's own tree proving ranges, as a node serving snapshots proves them."""

    def __init__(self, state: State) -> None:
        self.root = state.root()
        self.tree = state.tree
        self.depth = self.tree.depth

    def prove(self, first: int, end: int) -> proofs.Siblings:
        return proofs.siblings_of(self.tree.prove_range(first, end - 1))

    def verify(self, chunk: proofs.Range, proved: proofs.Range | None = None) -> proofs.Proved:
        """Check `chunk` against this root with the proof for `proved`'s range (its own)."""
        proved = chunk if proved is None else proved
        return proofs.verify(chunk, self.depth, self.prove(proved.first, proved.end), self.root)


def chunks_of(state: State, limit: int) -> tuple[Prover, list[proofs.Range]]:
    """The state cut as a node serving snapshots cuts it."""
    prover = Prover(state)
    grouped = proofs.group(((k, codec.encode(r)) for k, r in state.items()), prover.depth)
    sizes = {i: sum(len(k) + len(v) for k, v in rs) for i, rs in grouped.items()}
    ranges = proofs.cut(sizes, limit, prover.depth)
    chunks = [
        proofs.Range(a, b, [kv for i in range(a, b) for kv in grouped.get(i, [])])
        for a, b in ranges
    ]
    return prover, chunks


@pytest.mark.parametrize("n", [0, 1, 50, 3000, 5000])
def test_every_chunk_proves_against_the_state_root_at_the_states_depth(n: int) -> None:
    state = state_of(n)
    levels, chunks = chunks_of(state, 4096)
    assert levels.root == state.recompute_root()
    assert levels.depth == bucket_tree.depth_for(n)
    assert proofs.partitions([(c.first, c.end) for c in chunks], levels.depth)
    assert sum(len(c.records) for c in chunks) == n
    for chunk in chunks:
        levels.verify(chunk)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 255), st.integers(1, 256))
def test_any_range_proves_with_exactly_its_siblings(first: int, width: int) -> None:
    state = state_of(400, seed=3)
    levels, _ = chunks_of(state, 1 << 30)
    assert proofs.buckets(levels.depth) == 256
    end = min(256, first + width)
    grouped = proofs.group(((k, codec.encode(r)) for k, r in state.items()), levels.depth)
    records = [kv for i in range(first, end) for kv in grouped.get(i, [])]
    levels.verify(proofs.Range(first, end, records))


Served = tuple[State, Prover, list[proofs.Range]]


@pytest.fixture(scope="module")
def served() -> Served:
    state = state_of(2000, seed=7)
    levels, chunks = chunks_of(state, 8192)
    assert len(chunks) > 4
    return state, levels, chunks


def test_a_tampered_record_is_rejected(
    served: Served,
) -> None:
    _state, levels, chunks = served
    chunk = next(c for c in chunks if c.records)
    key, value = chunk.records[0]
    forged = proofs.Range(chunk.first, chunk.end,
                          [(key, codec.encode(Rec(1))), *chunk.records[1:]])  # fmt: skip
    assert value != forged.records[0][1]
    with pytest.raises(proofs.BadChunk, match="does not prove"):
        levels.verify(forged, chunk)


def test_a_dropped_or_added_record_is_rejected(
    served: Served,
) -> None:
    _state, levels, chunks = served
    chunk = next(c for c in chunks if len(c.records) > 1)
    with pytest.raises(proofs.BadChunk):
        levels.verify(proofs.Range(chunk.first, chunk.end, chunk.records[1:]))
    other = next(c for c in chunks if c is not chunk and c.records)
    moved = [*chunk.records, other.records[0]]
    with pytest.raises(proofs.BadChunk, match="a key of bucket"):
        levels.verify(proofs.Range(chunk.first, chunk.end, moved))


def test_a_wrong_root_or_depth_is_rejected(served: Served) -> None:
    state, levels, chunks = served
    chunk = chunks[1]
    siblings = levels.prove(chunk.first, chunk.end)
    other = state_of(2000, seed=8).root()
    with pytest.raises(proofs.BadChunk, match="does not prove"):
        proofs.verify(chunk, levels.depth, siblings, other)
    # The root commits to the depth: the same buckets claimed one level deeper do not prove.
    with pytest.raises(proofs.BadChunk):
        proofs.verify(chunk, levels.depth + 1, siblings, state.root())
    with pytest.raises(proofs.BadChunk, match="depth"):
        proofs.verify(chunk, bucket_tree.MAX_DEPTH + 1, siblings, state.root())


def test_a_proof_for_another_range_is_rejected(
    served: Served,
) -> None:
    _state, levels, chunks = served
    first, second = chunks[1], chunks[2]
    with pytest.raises(proofs.BadChunk):
        levels.verify(first, second)
    # The same records claimed for a wider range: the extra buckets are taken as empty.
    wider = proofs.Range(first.first, second.end, first.records)
    with pytest.raises(proofs.BadChunk):
        levels.verify(wider)


def test_unordered_keys_and_ranges_outside_the_tree_are_rejected(
    served: Served,
) -> None:
    state, levels, chunks = served
    chunk = next(c for c in chunks if len(c.records) > 1)
    swapped = proofs.Range(chunk.first, chunk.end, chunk.records[::-1])
    with pytest.raises(proofs.BadChunk, match="key order"):
        levels.verify(swapped, chunk)
    outside = proofs.Range(0, proofs.buckets(levels.depth) + 1, [])
    with pytest.raises(proofs.BadChunk, match="outside"):
        proofs.verify(outside, levels.depth, (), state.root())


def test_ranges_must_partition_the_tree() -> None:
    n = proofs.buckets(2)
    assert proofs.partitions([(0, n)], 2)
    assert proofs.partitions([(0, 5), (5, n)], 2)
    assert not proofs.partitions([(0, n)], 3)
    assert not proofs.partitions([(0, 5), (6, n)], 2)
    assert not proofs.partitions([(0, 5), (4, n)], 2)
    assert not proofs.partitions([(0, 5)], 2)
    assert not proofs.partitions([], 2)
    assert not proofs.partitions([(0, 16**9)], 9)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=80)), max_size=30))
def test_the_batch_hashes_are_the_tree_hashes(pairs: list[tuple[bytes, bytes]]) -> None:
    """What a chunk check computes in comprehensions is exactly the tree's own formula."""
    keys = [k for k, _ in pairs]
    assert bucket_tree.key_positions(keys) == [bucket_tree.key_position(k) for k in keys]
    assert bucket_tree.leaf_hashes(pairs) == [bucket_tree.leaf_hash(k, v) for k, v in pairs]
    leaves = dict(zip(keys, bucket_tree.leaf_hashes(pairs), strict=True))
    in_order = [leaves[k] for k in sorted(leaves)]
    assert bucket_tree.bucket_hash_of(in_order) == bucket_tree.bucket_hash(leaves)


def test_a_proved_chunk_gives_the_buckets_the_tree_holds(served: Served) -> None:
    """Each bucket a chunk proves comes back with the hash and stored blob the serving
    tree has for it, so a restore can write them as they are."""
    _, levels, chunks = served
    buckets = [bucket for chunk in chunks for bucket in levels.verify(chunk).buckets]
    assert len(buckets) == sum(1 for i in range(levels.tree.bucket_count)
                               if levels.tree.bucket_leaves(i))  # fmt: skip
    for index, hashed, blob in buckets:
        assert hashed == levels.tree.node(0, index)
        assert blob == bucket_tree.encode_bucket(levels.tree.bucket_leaves(index))
