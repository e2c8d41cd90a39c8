"""RFC 6962 Merkle tree: vectors derived from the definition, proofs, and tamper resistance."""

from __future__ import annotations

import hashlib
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridtokenx.wire.merkle import inclusion_proof, leaf_hash, merkle_root, verify_inclusion


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def L(item: bytes) -> bytes:
    return H(b"\x00" + item)


def N(left: bytes, right: bytes) -> bytes:
    return H(b"\x01" + left + right)


def reference_mth(items: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, recursive, written straight from the text."""
    n = len(items)
    if n == 0:
        return H(b"")
    if n == 1:
        return L(items[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return N(reference_mth(items[:k]), reference_mth(items[k:]))


def reference_path(m: int, items: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n]), recursive, written straight from the text."""
    n = len(items)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*reference_path(m, items[:k]), reference_mth(items[k:])]
    return [*reference_path(m - k, items[k:]), reference_mth(items[:k])]


def make_items(n: int) -> list[bytes]:
    return [f"tx-{i}".encode() for i in range(n)]


a, b, c, d = b"a", b"b", b"c", b"d"


# --- known vectors ------------------------------------------------------------------------
def test_empty_root_is_hash_of_empty_string() -> None:
    assert merkle_root([]) == H(b"")
    assert merkle_root([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_single_leaf() -> None:
    assert merkle_root([a]) == L(a) == leaf_hash(a)


def test_two_leaves() -> None:
    assert merkle_root([a, b]) == N(L(a), L(b))


def test_three_leaves_split_at_power_of_two() -> None:
    assert merkle_root([a, b, c]) == N(N(L(a), L(b)), L(c))


def test_four_and_five_leaves() -> None:
    assert merkle_root([a, b, c, d]) == N(N(L(a), L(b)), N(L(c), L(d)))
    e = b"e"
    assert merkle_root([a, b, c, d, e]) == N(N(N(L(a), L(b)), N(L(c), L(d))), L(e))


def test_last_leaf_is_not_duplicated() -> None:
    """CVE-2012-2459: a padded tree would give [a,b,c] and [a,b,c,c] the same root."""
    assert merkle_root([a, b, c]) != merkle_root([a, b, c, c])
    assert merkle_root([a, b, c]) != N(N(L(a), L(b)), N(L(c), L(c)))


def test_order_matters() -> None:
    assert merkle_root([a, b]) != merkle_root([b, a])


@pytest.mark.parametrize("n", range(0, 70))
def test_root_matches_recursive_definition(n: int) -> None:
    items = make_items(n)
    assert merkle_root(items) == reference_mth(items)


# --- domain separation --------------------------------------------------------------------
def test_node_is_not_a_leaf_of_its_children_concatenation() -> None:
    la, lb = L(a), L(b)
    root = merkle_root([a, b])
    assert root != leaf_hash(la + lb)
    assert root != H(la + lb)
    # A one-leaf tree whose item is the two child hashes must not collide with the 2-leaf tree.
    assert merkle_root([la + lb]) != root


def test_leaf_hash_is_not_plain_sha256() -> None:
    assert leaf_hash(a) != H(a)


# --- proofs -------------------------------------------------------------------------------
@pytest.mark.parametrize("n", range(1, 34))
def test_every_index_of_every_size_proves(n: int) -> None:
    items = make_items(n)
    root = merkle_root(items)
    for i in range(n):
        proof = inclusion_proof(items, i)
        assert proof == reference_path(i, items)
        assert verify_inclusion(root, items[i], i, n, proof)


def test_known_audit_path_for_three_leaves() -> None:
    assert inclusion_proof([a, b, c], 0) == [L(b), L(c)]
    assert inclusion_proof([a, b, c], 1) == [L(a), L(c)]
    assert inclusion_proof([a, b, c], 2) == [N(L(a), L(b))]
    assert inclusion_proof([a], 0) == []


def test_inclusion_proof_rejects_bad_index() -> None:
    items = make_items(5)
    for bad in (-1, 5, 100):
        with pytest.raises(IndexError):
            inclusion_proof(items, bad)
    with pytest.raises(IndexError):
        inclusion_proof([], 0)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 16, 17, 33])
def test_tampering_fails(n: int) -> None:
    items = make_items(n)
    root = merkle_root(items)
    for i in range(n):
        proof = inclusion_proof(items, i)
        assert not verify_inclusion(root, items[i] + b"!", i, n, proof)
        assert not verify_inclusion(root, b"", i, n, proof)
        for j in range(n):
            if j != i:
                assert not verify_inclusion(root, items[i], j, n, proof)
        for size in range(0, 2 * n + 3):
            if size <= i or len(reference_path(i, make_items(size))) != len(proof):
                assert not verify_inclusion(root, items[i], i, size, proof)
        if proof:
            assert not verify_inclusion(root, items[i], i, n, proof[:-1])
            assert not verify_inclusion(root, items[i], i, n, proof[1:])
        if len(set(proof)) > 1:
            assert not verify_inclusion(root, items[i], i, n, list(reversed(proof)))
        assert not verify_inclusion(root, items[i], i, n, [*proof, root])
        assert not verify_inclusion(root, items[i], i, n, [*proof, bytes(32)])
        for k, node in enumerate(proof):
            for bit in (0, 7, 255):
                flipped = bytearray(node)
                flipped[bit // 8] ^= 1 << (bit % 8)
                bad = [*proof[:k], bytes(flipped), *proof[k + 1 :]]
                assert not verify_inclusion(root, items[i], i, n, bad)
        wrong_root = bytearray(root)
        wrong_root[0] ^= 1
        assert not verify_inclusion(bytes(wrong_root), items[i], i, n, proof)


def test_verify_never_raises_on_garbage() -> None:
    items = make_items(6)
    root = merkle_root(items)
    proof = inclusion_proof(items, 2)
    assert verify_inclusion(root, items[2], 2, 6, proof)
    cases: list[tuple[object, object, object, object, object]] = [
        (root, items[2], -1, 6, proof),
        (root, items[2], 6, 6, proof),
        (root, items[2], 2, -6, proof),
        (root, items[2], 0, 0, []),
        (root[:31], items[2], 2, 6, proof),
        (root + b"\x00", items[2], 2, 6, proof),
        ("not bytes", items[2], 2, 6, proof),
        (root, None, 2, 6, proof),
        (root, items[2], True, 6, proof),
        (root, items[2], 2.0, 6, proof),
        (root, items[2], 2, "6", proof),
        (root, items[2], 2, 6, [p[:31] for p in proof]),
        (root, items[2], 2, 6, [*proof[:-1], None]),
        (root, items[2], 2, 6, [*proof[:-1], "x" * 32]),
        (root, items[2], 2, 6, [*proof, *proof, *proof]),
    ]
    for case in cases:
        assert verify_inclusion(*case) is False  # type: ignore[arg-type]


def test_tree_size_is_bound_only_through_the_path_shape() -> None:
    """RFC 9162 limitation, pinned here so nobody relies on more: leaf 0 has the same
    three-step all-left path in trees of 5..8 leaves, so the proof alone cannot tell those
    sizes apart. The size must come from the same authenticated header as the root."""
    items = make_items(8)
    root = merkle_root(items)
    proof = inclusion_proof(items, 0)
    assert all(verify_inclusion(root, items[0], 0, size, proof) for size in (5, 6, 7, 8))
    assert not verify_inclusion(root, items[0], 0, 4, proof)
    assert not verify_inclusion(root, items[0], 0, 9, proof)


def test_single_leaf_tree_rejects_nonempty_proof() -> None:
    root = merkle_root([a])
    assert verify_inclusion(root, a, 0, 1, [])
    assert not verify_inclusion(root, a, 0, 1, [L(a)])


def test_ten_thousand_items_is_fast() -> None:
    items = [i.to_bytes(8, "big") * 16 for i in range(10_000)]
    start = time.perf_counter()
    root = merkle_root(items)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    for index in (0, 4_321, 9_999):
        proof = inclusion_proof(items, index)
        assert len(proof) <= 14  # ceil(log2(10_000))
        assert verify_inclusion(root, items[index], index, 10_000, proof)
    assert len(inclusion_proof(items, 0)) == 14


# --- properties ---------------------------------------------------------------------------
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=80), st.data())
def test_property_random_lists(items: list[bytes], data: st.DataObject) -> None:
    root = merkle_root(items)
    assert root == reference_mth(items)
    n = len(items)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof = inclusion_proof(items, i)
    assert verify_inclusion(root, items[i], i, n, proof)
    other = data.draw(st.binary(max_size=40))
    if other != items[i]:
        assert not verify_inclusion(root, other, i, n, proof)
    j = data.draw(st.integers(min_value=0, max_value=n - 1))
    if items[j] != items[i]:
        assert not verify_inclusion(root, items[j], i, n, proof)


@given(st.lists(st.binary(max_size=16), min_size=1, max_size=40), st.data())
def test_property_changing_any_item_changes_root(items: list[bytes], data: st.DataObject) -> None:
    i = data.draw(st.integers(min_value=0, max_value=len(items) - 1))
    replacement = data.draw(st.binary(max_size=16).filter(lambda x: x != items[i]))
    changed = [*items[:i], replacement, *items[i + 1 :]]
    assert merkle_root(changed) != merkle_root(items)
