"""Chunk proofs: every chunk of a state proves against its root, and a tampered chunk, a
wrong root, a proof for another range or a record moved between chunks does not."""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def chunks_of(state: State, limit: int) -> tuple[proofs.Levels, list[proofs.Range]]:
    """The state cut as a node serving snapshots cuts it."""
    grouped = proofs.group((k, codec.encode(r)) for k, r in state.items())
    levels = proofs.Levels({i: proofs.bucket_hash_of(rs) for i, rs in grouped.items()})
    sizes = {i: sum(len(k) + len(v) for k, v in rs) for i, rs in grouped.items()}
    ranges = proofs.cut(sizes, limit)
    chunks = [
        proofs.Range(a, b, [kv for i in range(a, b) for kv in grouped.get(i, [])])
        for a, b in ranges
    ]
    return levels, chunks


@pytest.mark.parametrize("n", [0, 1, 50, 3000])
def test_the_tree_of_the_bucket_hashes_has_the_state_root(n: int) -> None:
    state = state_of(n)
    levels, chunks = chunks_of(state, 4096)
    assert levels.root == state.root() == state.recompute_root()
    assert proofs.partitions([(c.first, c.end) for c in chunks])
    assert sum(len(c.records) for c in chunks) == n
    for chunk in chunks:
        proofs.verify(chunk, levels.prove(chunk.first, chunk.end), state.root())


@settings(max_examples=40, deadline=None)
@given(st.integers(0, proofs.buckets() - 1), st.integers(1, proofs.buckets()))
def test_any_range_proves_with_exactly_its_siblings(first: int, width: int) -> None:
    state = state_of(400, seed=3)
    levels, _ = chunks_of(state, 1 << 30)
    end = min(proofs.buckets(), first + width)
    grouped = proofs.group((k, codec.encode(r)) for k, r in state.items())
    records = [kv for i in range(first, end) for kv in grouped.get(i, [])]
    proofs.verify(proofs.Range(first, end, records), levels.prove(first, end), state.root())


Served = tuple[State, proofs.Levels, list[proofs.Range]]


@pytest.fixture(scope="module")
def served() -> Served:
    state = state_of(2000, seed=7)
    levels, chunks = chunks_of(state, 8192)
    assert len(chunks) > 4
    return state, levels, chunks


def test_a_tampered_record_is_rejected(
    served: Served,
) -> None:
    state, levels, chunks = served
    chunk = next(c for c in chunks if c.records)
    key, value = chunk.records[0]
    forged = proofs.Range(chunk.first, chunk.end,
                          [(key, codec.encode(Rec(1))), *chunk.records[1:]])  # fmt: skip
    assert value != forged.records[0][1]
    with pytest.raises(proofs.BadChunk, match="does not prove"):
        proofs.verify(forged, levels.prove(chunk.first, chunk.end), state.root())


def test_a_dropped_or_added_record_is_rejected(
    served: Served,
) -> None:
    state, levels, chunks = served
    chunk = next(c for c in chunks if len(c.records) > 1)
    siblings = levels.prove(chunk.first, chunk.end)
    with pytest.raises(proofs.BadChunk):
        proofs.verify(proofs.Range(chunk.first, chunk.end, chunk.records[1:]), siblings,
                      state.root())  # fmt: skip
    other = next(c for c in chunks if c is not chunk and c.records)
    moved = [*chunk.records, other.records[0]]
    with pytest.raises(proofs.BadChunk, match="a key of bucket"):
        proofs.verify(proofs.Range(chunk.first, chunk.end, moved), siblings, state.root())


def test_a_wrong_root_is_rejected(served: Served) -> None:
    _, levels, chunks = served
    chunk = chunks[1]
    other = state_of(2000, seed=8).root()
    with pytest.raises(proofs.BadChunk, match="does not prove"):
        proofs.verify(chunk, levels.prove(chunk.first, chunk.end), other)


def test_a_proof_for_another_range_is_rejected(
    served: Served,
) -> None:
    state, levels, chunks = served
    first, second = chunks[1], chunks[2]
    with pytest.raises(proofs.BadChunk):
        proofs.verify(first, levels.prove(second.first, second.end), state.root())
    # The same records claimed for a wider range: the extra buckets are taken as empty.
    wider = proofs.Range(first.first, second.end, first.records)
    with pytest.raises(proofs.BadChunk):
        proofs.verify(wider, levels.prove(first.first, second.end), state.root())


def test_unordered_keys_and_ranges_outside_the_tree_are_rejected(
    served: Served,
) -> None:
    state, levels, chunks = served
    chunk = next(c for c in chunks if len(c.records) > 1)
    swapped = proofs.Range(chunk.first, chunk.end, chunk.records[::-1])
    with pytest.raises(proofs.BadChunk, match="key order"):
        proofs.verify(swapped, levels.prove(chunk.first, chunk.end), state.root())
    with pytest.raises(proofs.BadChunk, match="outside"):
        proofs.verify(proofs.Range(0, proofs.buckets() + 1, []), (), state.root())


def test_ranges_must_partition_the_tree() -> None:
    n = proofs.buckets()
    assert proofs.partitions([(0, n)])
    assert proofs.partitions([(0, 5), (5, n)])
    assert not proofs.partitions([(0, 5), (6, n)])
    assert not proofs.partitions([(0, 5), (4, n)])
    assert not proofs.partitions([(0, 5)])
    assert not proofs.partitions([])
