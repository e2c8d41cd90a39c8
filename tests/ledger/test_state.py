"""State and its root: overlays publish atomically, and the cheap incremental root always
equals the root rebuilt from scratch, whatever order the writes came in."""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridtokenx.ledger.bucket_tree import verify_range
from gridtokenx.ledger.state import State, leaf_hash


class Rec(msgspec.Struct, frozen=True, array_like=True):
    value: int


class Other(msgspec.Struct, frozen=True, array_like=True):
    label: str


def write(state: State, items: dict[bytes, int | None]) -> None:
    view = state.overlay()
    for key, value in items.items():
        if value is None:
            view.delete(key)
        else:
            view.put(key, Rec(value))
    view.commit()


keys = st.binary(min_size=1, max_size=12)
batches = st.lists(
    st.dictionaries(keys, st.one_of(st.none(), st.integers(0, 2**40)), max_size=20),
    max_size=12,
)


def test_empty_states_share_one_root() -> None:
    assert State().root() == State().root() == State().recompute_root()
    assert len(State().root()) == 32


def test_overlay_reads_its_own_writes_but_base_sees_nothing_until_commit() -> None:
    state = State()
    write(state, {b"a": 1})
    view = state.overlay()
    view.put(b"a", Rec(2))
    view.put(b"b", Rec(3))
    view.delete(b"a")
    assert view.get(b"a", Rec) is None
    assert view.get(b"b", Rec) == Rec(3)
    assert state.get(b"a", Rec) == Rec(1)
    assert state.get(b"b", Rec) is None
    view.commit()
    assert state.get(b"a", Rec) is None
    assert state.get(b"b", Rec) == Rec(3)


def test_discarded_overlay_leaves_state_and_root_untouched() -> None:
    state = State()
    write(state, {b"a": 1, b"b": 2})
    root = state.root()
    view = state.overlay()
    view.put(b"a", Rec(99))
    view.delete(b"b")
    del view
    assert state.root() == root
    assert state.get(b"a", Rec) == Rec(1)


def test_wrong_record_type_is_a_type_error() -> None:
    state = State()
    view = state.overlay()
    view.put(b"k", Other("x"))
    with pytest.raises(TypeError):
        view.get(b"k", Rec)
    view.commit()
    with pytest.raises(TypeError):
        state.get(b"k", Rec)


def test_root_changes_with_any_value_and_returns_when_undone() -> None:
    state = State()
    write(state, {b"a": 1, b"b": 2})
    before = state.root()
    write(state, {b"a": 5})
    changed = state.root()
    assert changed != before
    write(state, {b"a": 1})
    assert state.root() == before
    write(state, {b"c": 0})
    assert state.root() != before
    write(state, {b"c": None})
    assert state.root() == before


def test_deleting_everything_returns_to_the_empty_root() -> None:
    state = State()
    write(state, {bytes([i]): i for i in range(200)})
    assert state.root() != State().root()
    write(state, {bytes([i]): None for i in range(200)})
    assert state.root() == State().root()
    assert len(state) == 0


def test_root_commits_to_the_key_not_only_the_value() -> None:
    a, b = State(), State()
    write(a, {b"alice": 1})
    write(b, {b"bob": 1})
    assert a.root() != b.root()


def test_leaf_hash_is_unambiguous_between_key_and_value() -> None:
    """Without the key length prefix, (b"ab", b"c") and (b"a", b"bc") would hash the same."""
    assert leaf_hash(b"ab", b"c") != leaf_hash(b"a", b"bc")


@settings(max_examples=150, deadline=None)
@given(batches)
def test_incremental_root_equals_full_recompute_after_every_batch(
    history: list[dict[bytes, int | None]],
) -> None:
    state = State()
    for batch in history:
        write(state, batch)
        assert state.root() == state.recompute_root()


@settings(max_examples=150, deadline=None)
@given(batches, st.randoms(use_true_random=False))
def test_root_is_independent_of_write_order_and_batching(
    history: list[dict[bytes, int | None]], rnd: random.Random
) -> None:
    """Two nodes that reach the same records by different paths agree on the root."""
    final: dict[bytes, int | None] = {}
    for batch in history:
        final.update(batch)
    one = State()
    for batch in history:
        write(one, batch)
        one.root()  # interleave hashing with writes on this node only
    two = State()
    items = list(final.items())
    rnd.shuffle(items)
    for key, value in items:
        write(two, {key: value})
    assert one.root() == two.root()
    assert dict(one.items()) == dict(two.items())


def test_items_and_scan_iterate_in_key_order() -> None:
    state = State()
    write(state, {b"z": 1, b"acct/2": 2, b"acct/1": 3, b"b": 4})
    assert [k for k, _ in state.items()] == [b"acct/1", b"acct/2", b"b", b"z"]
    assert [k for k, _ in state.scan(b"acct/")] == [b"acct/1", b"acct/2"]


def _tree_of(state: State) -> tuple[object, object]:
    shape = state._tree._s
    buckets = {i: dict(b) for i, b in shape.buckets.items()}
    kids = [{p: bytes(b) for p, b in level.items()} for level in shape.kids]
    return (shape.depth, shape.count, buckets), (kids, shape.top)


@settings(max_examples=100, deadline=None)
@given(batches, batches, st.booleans())
def test_a_trial_rolls_back_and_replays_without_rehashing_to_the_same_tree(
    before: list[dict[bytes, int | None]], trial: list[dict[bytes, int | None]], hash_mid: bool
) -> None:
    """Rollback restores the records and the hashed tree exactly; replaying the trial on
    the state it started from gives the records, root and tree that executing it gives."""
    state, reference = State(), State()
    for batch in before:
        write(state, batch)
        write(reference, batch)
    if hash_mid:
        state.root()
    start_root, start_records = state.root(), dict(state.items())
    start_tree = _tree_of(state)
    state.begin()
    for batch in trial:
        write(state, batch)
    kept = state.trial()
    trial_root = state.root()
    state.rollback()
    assert state.root() == start_root == state.recompute_root()
    assert dict(state.items()) == start_records and _tree_of(state) == start_tree
    state.begin()
    state.replay(kept)
    assert state.root() == trial_root
    state.release()
    for batch in trial:
        write(reference, batch)
    assert reference.root() == trial_root == state.recompute_root()
    assert dict(state.items()) == dict(reference.items())
    assert _tree_of(state) == _tree_of(reference)
    state.begin()  # a replay inside a trial rolls back too
    state.rollback()
    assert state.root() == trial_root


def test_a_replay_inside_a_trial_is_undone_by_its_rollback() -> None:
    state = State()
    write(state, {b"a": 1})
    start = state.root()
    state.begin()
    write(state, {b"a": 2, b"b": 3})
    kept = state.trial()
    state.rollback()
    state.begin()
    state.replay(kept)
    assert state.root() != start
    state.rollback()
    assert state.root() == start == state.recompute_root()
    assert dict(state.items()) == {b"a": Rec(1)}


def _keys(count: int, start: int = 0) -> dict[bytes, int | None]:
    return {f"k{i}".encode(): i for i in range(start, start + count)}


def test_the_bucket_count_grows_and_shrinks_with_the_record_count_alone() -> None:
    """16 buckets up to 256 records, 256 up to 4,096: about 1-16 keys a bucket; the root
    of a state reached by growing then deleting equals the root of the same records
    written directly, so the depth is a function of the records, not of their history."""
    state = State()
    write(state, _keys(256))
    assert state.tree.depth == 1 and state.tree.bucket_count == 16
    write(state, _keys(1, 256))
    assert state.tree.depth == 2 and state.tree.bucket_count == 256
    assert state.root() == state.recompute_root()
    write(state, dict.fromkeys(_keys(200, 57)))
    assert state.tree.depth == 1 and len(state.tree) == len(state) == 57
    direct = State()
    write(direct, _keys(57))
    assert state.root() == direct.root() == state.recompute_root()


@pytest.mark.parametrize("grows", [True, False])
def test_a_trial_that_changes_the_depth_rolls_back_and_replays(grows: bool) -> None:
    state, reference = State(), State()
    start_keys = _keys(250) if grows else _keys(300)
    write(state, start_keys)
    write(reference, start_keys)
    start_root, start_tree = state.root(), _tree_of(state)
    change = _keys(20, 1_000) if grows else dict.fromkeys(_keys(100))
    state.begin()
    write(state, {b"k3": 7})  # journalled per key before the depth changes
    write(state, change)
    kept = state.trial()
    trial_root = state.root()
    assert state.tree.depth == (2 if grows else 1)
    state.rollback()
    assert state.root() == start_root and _tree_of(state) == start_tree
    state.begin()
    state.replay(kept)
    state.rollback()  # a replay inside a trial is undone too
    assert state.root() == start_root and _tree_of(state) == start_tree
    state.begin()
    state.replay(kept)
    state.release()
    write(reference, {b"k3": 7})
    write(reference, change)
    assert state.root() == trial_root == reference.root() == state.recompute_root()
    assert _tree_of(state) == _tree_of(reference)


def _leaves(state: State, first: int, last: int) -> dict[int, dict[bytes, bytes]]:
    tree = state.tree
    return {i: tree.bucket_leaves(i) for i in range(first, last + 1) if tree.bucket_leaves(i)}


@pytest.mark.parametrize(("first", "last"), [(0, 0), (0, 255), (17, 17), (30, 200), (255, 255)])
def test_a_bucket_range_proves_against_the_root(first: int, last: int) -> None:
    state = State()
    write(state, _keys(1_000))
    root, tree = state.root(), state.tree
    assert tree.depth == 2
    proof = tree.prove_range(first, last)
    assert verify_range(root, proof, _leaves(state, first, last))
    records = state.bucket_records(first)
    assert [k for k, _ in records] == sorted(tree.bucket_leaves(first))
    assert all(tree.bucket_of(k) == first for k, _ in records)


def test_a_tampered_or_misplaced_range_does_not_prove() -> None:
    state = State()
    write(state, _keys(1_000))
    root, tree = state.root(), state.tree
    proof = tree.prove_range(30, 40)
    good = _leaves(state, 30, 40)
    changed = {i: dict(b) for i, b in good.items()}
    key = next(iter(changed[31]))
    changed[31][key] = bytes(32)
    assert not verify_range(root, proof, changed)
    dropped = {i: dict(b) for i, b in good.items()}
    del dropped[32][next(iter(dropped[32]))]
    assert not verify_range(root, proof, dropped)
    outside = _leaves(state, 41, 41)
    assert not verify_range(root, proof, {**good, **outside})  # a bucket outside the range
    moved = {i: dict(b) for i, b in good.items()}
    moved[30].update(moved.pop(33))  # keys in a bucket they do not belong to
    assert not verify_range(root, proof, moved)
    assert not verify_range(bytes(32), proof, good)
    other = State()
    write(other, _keys(999))
    assert not verify_range(other.root(), proof, good)
    with pytest.raises(IndexError):
        tree.prove_range(10, 256)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(keys, st.one_of(st.none(), st.binary(max_size=8))), max_size=60),
       st.integers(0, 2_000))  # fmt: skip
def test_a_blocks_keys_in_one_loop_match_them_one_by_one(
    writes: list[tuple[bytes, bytes | None]], grown: int
) -> None:
    """`set_many` (what `State.root` uses) against `set` per key: the same root, count and
    buckets, with deletes of absent keys, rewrites and a key written twice in one call;
    `grown` records first, so the tree may be deeper than one level."""
    from gridtokenx.ledger.bucket_tree import BucketTree, key_position, key_positions

    one, many = BucketTree(), BucketTree()
    for tree in (one, many):
        for i in range(grown):
            tree.set(b"base/" + str(i).encode(), b"v")
        tree.root()
    for key, value in writes:
        one.set(key, value)
    keys = [key for key, _ in writes]
    assert key_positions(keys) == [key_position(key) for key in keys]
    many.set_many(keys, [value for _, value in writes], key_positions(keys))
    assert many.root() == one.root() and len(many) == len(one)
    assert all(many.bucket_leaves(i) == one.bucket_leaves(i) for i in range(one.bucket_count))
