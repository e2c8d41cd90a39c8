"""The compiled twin of the bucket tree's loops (`ledger/_tree_hashing.pyx`) against the
Python reference in `ledger/bucket_tree.py`: the same roots and the same stored blobs for
random blocks (deletions, emptied buckets, depth changes, trials rolled back), in memory
and over a source, and the formula check on both paths. CI must have built it: there the
first test fails if the package fell back to Python."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridtokenx.ledger import bucket_tree
from gridtokenx.ledger.bucket_tree import BucketTree, TreeWrites, encode_bucket
from tests.ledger import test_state_root_formulas as formulas

REQUIRED = os.environ.get("CI") == "true" or bool(os.environ.get("GRIDTOKENX_TREE_COMPILED"))
needs_compiled = pytest.mark.skipif(
    not bucket_tree.COMPILED, reason="the compiled tree hashing was not built here"
)


def test_the_compiled_tree_hashing_is_built_and_used_where_required() -> None:
    """CI (CI=true, and .ci/run sets GRIDTOKENX_TREE_COMPILED) installs a C compiler and
    OpenSSL's headers: an install that silently fell back to Python fails here."""
    if not REQUIRED and not bucket_tree.COMPILED:
        pytest.skip("not built here, and not required (not CI)")
    assert bucket_tree.COMPILED, "src/gridtokenx/ledger/_tree_hashing was not built"
    assert bucket_tree.compiled_in_use() or os.environ.get("GRIDTOKENX_TREE_PYTHON")


@contextmanager
def path(compiled: bool) -> Iterator[None]:
    was = bucket_tree.compiled_in_use()
    bucket_tree.use_compiled(compiled)
    try:
        yield
    finally:
        bucket_tree.use_compiled(was)


class DictSource:
    """A `TreeSource` in dictionaries, written with `TreeWrites` as the store writes them."""

    def __init__(self) -> None:
        self.meta: tuple[int, int, bytes] | None = None
        self.buckets: dict[tuple[int, int], bytes] = {}
        self.kids: dict[tuple[int, int, int], bytes] = {}

    def write(self, writes: TreeWrites) -> None:
        if writes.dropped is not None:
            self.buckets = {k: v for k, v in self.buckets.items() if k[0] != writes.dropped}
            self.kids = {k: v for k, v in self.kids.items() if k[0] != writes.dropped}
        for index, blob in writes.buckets.items():
            self._put(self.buckets, (writes.depth, index), blob)
        for level, blobs in writes.children.items():
            for parent, blob in blobs.items():
                self._put(self.kids, (writes.depth, level, parent), blob)
        self.meta = (writes.depth, writes.count, writes.top)

    @staticmethod
    def _put(into: dict[tuple[int, ...], bytes], key: tuple[int, ...], blob: bytes | None) -> None:
        if blob is None:
            into.pop(key, None)
        else:
            into[key] = blob

    def tree_meta(self) -> tuple[int, int, bytes] | None:
        return self.meta

    def tree_bucket(self, depth: int, index: int) -> bytes | None:
        return self.buckets.get((depth, index))

    def tree_children(self, depth: int, level: int, parent: int) -> bytes | None:
        return self.kids.get((depth, level, parent))

    def tree_bucket_many(self, depth: int, indexes: list[int]) -> list[bytes | None]:
        return [self.buckets.get((depth, i)) for i in indexes]

    def tree_children_many(self, depth: int, level: int, parents: list[int]) -> list[bytes | None]:
        return [self.kids.get((depth, level, p)) for p in parents]

    def tree_buckets(self, depth: int) -> Iterator[tuple[int, bytes]]:
        return iter(sorted((i, b) for (d, i), b in self.buckets.items() if d == depth))

    def tree_children_level(self, depth: int, level: int) -> Iterator[tuple[int, bytes]]:
        return iter(
            sorted((p, b) for (d, lv, p), b in self.kids.items() if (d, lv) == (depth, level))
        )


# A pool of 400 keys, so that blocks rewrite and delete the same keys, empty buckets at
# depth 1 (16 buckets) and cross 256 records, where the depth grows to 2 (and back).
keys = st.integers(0, 399).map(lambda i: b"acct/" + str(i).encode())
HOW = ["keep", "undo", "redo"]
values = st.one_of(st.none(), st.binary(max_size=12))
blocks = st.lists(
    st.tuples(st.lists(st.tuples(keys, values), max_size=300), st.sampled_from(HOW)),
    min_size=1, max_size=6,
)  # fmt: skip


def apply(tree: BucketTree, writes: list[tuple[bytes, bytes | None]], how: str) -> bytes:
    """One block's writes as `State.root` does them (prefetch, `set_many`, `root`), kept,
    or in a trial that is rolled back ("undo") or rolled back and replayed ("redo")."""
    keys = [key for key, _ in writes]
    positions = bucket_tree.key_positions(keys)
    if how != "keep":
        tree.begin()
    tree.prefetch(positions)
    tree.set_many(keys, [value for _, value in writes], positions)
    root = tree.root()
    if how != "keep":
        changes = tree.changes()
        tree.rollback()
        if how == "redo":
            tree.redo(changes)
        else:
            root = tree.root()
    return root


def snapshot(writes: TreeWrites) -> tuple[object, ...]:
    return (writes.depth, writes.count, writes.top, writes.buckets, writes.children, writes.dropped)


@needs_compiled
@settings(max_examples=40, deadline=None)
@given(blocks)
def test_compiled_and_python_trees_give_the_same_roots_and_blobs_in_memory(
    block_list: list[tuple[list[tuple[bytes, bytes | None]], str]],
) -> None:
    trees = {compiled: BucketTree() for compiled in (True, False)}
    for writes, how in block_list:
        roots, stored = {}, {}
        for compiled, tree in trees.items():
            with path(compiled):
                roots[compiled] = apply(tree, writes, how)
                stored[compiled] = snapshot(tree.take_writes())
        assert roots[True] == roots[False]
        assert stored[True] == stored[False]
        assert len(trees[True]) == len(trees[False])
        reference = trees[False]
        for index in range(reference.bucket_count):
            assert trees[True].bucket_leaves(index) == reference.bucket_leaves(index)


@needs_compiled
@settings(max_examples=30, deadline=None)
@given(blocks, st.lists(st.booleans(), min_size=6, max_size=6))
def test_compiled_and_python_trees_give_the_same_roots_and_blobs_over_a_source(
    block_list: list[tuple[list[tuple[bytes, bytes | None]], str]], reopen: list[bool]
) -> None:
    """Over a source: the buckets read and decoded by `prefetch`, the pinned levels
    hashed in their buffers, the writes handed to the source, trees reopened from it."""
    sources = {compiled: DictSource() for compiled in (True, False)}
    trees = {compiled: BucketTree(sources[compiled]) for compiled in (True, False)}
    for (writes, how), again in zip(block_list, reopen, strict=False):
        roots, stored = {}, {}
        for compiled in (True, False):
            with path(compiled):
                roots[compiled] = apply(trees[compiled], writes, how)
                taken = trees[compiled].take_writes()
                stored[compiled] = snapshot(taken)
                sources[compiled].write(taken)
                if again:
                    trees[compiled] = BucketTree(sources[compiled])
                    assert trees[compiled].root() == roots[compiled]
        assert roots[True] == roots[False]
        assert stored[True] == stored[False]
    assert sources[True].buckets == sources[False].buckets
    assert sources[True].kids == sources[False].kids


@needs_compiled
@pytest.mark.parametrize("compiled", [True, False])
def test_the_formula_check_holds_on_either_path(compiled: bool) -> None:
    with path(compiled):
        formulas.test_the_devnet_genesis_root_follows_the_documented_formulas()
        formulas.test_states_of_every_depth_up_to_three_follow_the_formulas()


@needs_compiled
@pytest.mark.parametrize(
    "sizes", [[], [0], [1, 255], [256, 32], [65_536, 7], [3] * 16, [5] * 70_000]
)
def test_a_stored_bucket_decodes_as_the_msgspec_decoder_reads_it(sizes: list[int]) -> None:
    """Key lengths across msgpack's bin8/16/32 and array counts across fixarray/array16/32."""
    leaves = {i.to_bytes(4) + b"k" * n: bytes([i % 256]) * 32 for i, n in enumerate(sizes)}
    blob = encode_bucket(leaves)
    found: dict[int, dict[bytes, bytes]] = {}
    bucket_tree._compiled.decode_buckets(found, [7, 8], [blob, None], bucket_tree._PAIRS.decode)
    assert found == {7: leaves, 8: {}}


@needs_compiled
@pytest.mark.parametrize(
    "blob",
    [b"", b"\x91", b"\x91\x92\xc4\x01k", b"\x91\x92\xc4\x01k\xc4\x01v\x00",
     b"\x91\x92\xa1k\xc4\x01v", msgspec.msgpack.encode([[b"k", b"v", b"w"]]),
     msgspec.msgpack.encode({"k": b"v"})],
)  # fmt: skip
def test_a_blob_that_is_not_a_stored_bucket_fails_as_on_the_python_path(blob: bytes) -> None:
    """Truncated, trailing bytes, a str key, a triple, a map: the compiled decoder hands
    each to msgspec's, which raises as the Python path does, and nothing is stored."""
    with pytest.raises(msgspec.DecodeError) as python:
        bucket_tree.decode_bucket(blob)
    found: dict[int, dict[bytes, bytes]] = {}
    with pytest.raises(msgspec.DecodeError) as compiled:
        bucket_tree._compiled.decode_buckets(found, [1], [blob], bucket_tree._PAIRS.decode)
    assert str(compiled.value) == str(python.value) and found == {}


@needs_compiled
def test_bad_input_to_the_compiled_loops_is_a_clear_error() -> None:
    with pytest.raises(TypeError):
        bucket_tree._compiled.key_positions(["not bytes"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        bucket_tree._compiled.leaf_hashes([(b"k", None)])  # type: ignore[list-item]
    level = bytearray(bucket_tree._EMPTY_KIDS[0])
    with pytest.raises(IndexError):
        bucket_tree._compiled.hash_level(level, {16: b"\x00" * 32})
    with pytest.raises(ValueError):
        bucket_tree._compiled.hash_level(level, {1: b"short"})
    assert level == bucket_tree._EMPTY_KIDS[0]


def test_use_compiled_refuses_a_module_that_was_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bucket_tree, "_native", bucket_tree.compiled_in_use())  # restored after
    monkeypatch.setattr(bucket_tree, "COMPILED", False)
    with pytest.raises(RuntimeError, match="not built"):
        bucket_tree.use_compiled(True)
    bucket_tree.use_compiled(False)
    assert not bucket_tree.compiled_in_use()


def _fresh_process(script: str) -> str:
    """What `script` prints, run in a new interpreter on this one's path (a module as it
    imports, before this process imported it)."""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    return done.stdout


@needs_compiled
def test_the_compiled_loops_refuse_to_hash_before_their_tags_are_absorbed() -> None:
    """The module alone (not through `bucket_tree`, which starts it as it imports it)
    would hash from empty contexts: wrong roots, silently, but for this refusal."""
    script = (
        "from gridtokenx.ledger import _tree_hashing as t\n"
        "try:\n    t.key_positions([b'k'])\nexcept RuntimeError as e:\n    print(e)\n"
    )
    assert "start() was not called" in _fresh_process(script)


@needs_compiled
@pytest.mark.parametrize(
    "sizes", [[], [0], [1, 255], [256, 32], [65_536, 7], [3] * 15, [3] * 16, [5] * 70_000]
)
def test_a_bucket_encodes_as_the_python_reference_writes_it(sizes: list[int]) -> None:
    """Key lengths across msgpack's bin8/16/32 and counts across fixarray/array16/32, keys
    given out of order: the same bytes as `encode_bucket`."""
    leaves = {(i * 2_654_435_761 % 2**32).to_bytes(4) + b"k" * n: bytes([i % 256]) * (32 + n % 3)
              for i, n in enumerate(sizes)}  # fmt: skip
    assert len(leaves) == len(sizes)
    blob = encode_bucket(leaves)
    assert bucket_tree._compiled.encode_bucket(leaves) == blob
    found = bucket_tree._compiled.encode_buckets({4: leaves, 5: {}}, [4, 5, 6], {6: None}.get)
    assert found == {4: blob if leaves else None, 5: None, 6: None}


@needs_compiled
@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.binary(max_size=40), st.binary(max_size=300), max_size=40))
def test_any_bucket_encodes_as_the_python_reference_writes_it(leaves: dict[bytes, bytes]) -> None:
    assert bucket_tree._compiled.encode_bucket(leaves) == encode_bucket(leaves)


@needs_compiled
def test_a_bucket_that_is_not_bytes_to_bytes_is_refused_by_the_compiled_encoding() -> None:
    with pytest.raises(TypeError):
        bucket_tree._compiled.encode_bucket({"k": b"v"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        bucket_tree._compiled.encode_buckets({1: [(b"k", b"v")]}, [1], {}.get)  # type: ignore[dict-item]


def test_a_compiled_module_built_from_an_older_pyx_counts_as_not_built() -> None:
    """A checkout updated without `make native` keeps a module that lacks the newest
    loops: the tree runs its Python loops rather than failing at its first writes."""
    script = (
        "import sys, types\n"
        "sys.modules['gridtokenx.ledger._tree_hashing'] = types.ModuleType('stale')\n"
        "from gridtokenx.ledger import bucket_tree\n"
        "print(bucket_tree.COMPILED, bucket_tree.BucketTree().take_writes().count)\n"
    )
    assert _fresh_process(script).split() == ["False", "0"]
