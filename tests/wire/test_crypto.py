"""Signature verification: what `crypto.verify` accepts, against libsodium's verdicts.

Every validator verifies every transaction with `crypto.verify`, so what it accepts is a
consensus rule. It runs ed25519-zebra behind libsodium's refusals of small-order and
non-canonical points (ADR 0008). These tests check it agrees with libsodium (PyNaCl) on
honest and altered signatures, that the refusals in front are the ones that matter (without
them a key of small order could be "signed" for by anyone), and show the one difference
left: signatures only a key's owner can make, with a key that carries a torsion component.
The curve arithmetic here is a plain affine reference (RFC 8032's formulas), independent of
both libraries.
"""

from __future__ import annotations

import hashlib

import ed25519_zebra
import nacl.exceptions
import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridtokenx.wire import crypto
from tests.conftest import AddressHashes

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
Point = tuple[int, int]
IDENTITY: Point = (0, 1)


def _add(a: Point, b: Point) -> Point:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return (
        (x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P,
        (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P,
    )


def _mul(k: int, point: Point) -> Point:
    out = IDENTITY
    while k:
        if k & 1:
            out = _add(out, point)
        point, k = _add(point, point), k >> 1
    return out


def _decode(encoded: bytes) -> Point:
    raw = int.from_bytes(encoded, "little")
    y, sign = raw & ((1 << 255) - 1), raw >> 255
    u = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(u, (P + 3) // 8, P)
    if x * x % P != u:
        x = x * pow(2, (P - 1) // 4, P) % P
    assert x * x % P == u, "not a point"
    return (P - x if x & 1 != sign else x) % P, y


def _encode(point: Point) -> bytes:
    x, y = point
    return (y | (x & 1) << 255).to_bytes(32, "little")


B = _decode((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))


def _libsodium(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, ValueError):
        return False
    return True


def _order_8() -> Point:
    """A point of order 8, from the module's own table of small-order y coordinates."""
    point = _decode(next(e for e in crypto._SMALL_ORDER if e[0] == 0x26))
    assert _mul(8, point) == IDENTITY and _mul(4, point) != IDENTITY
    return point


def test_the_table_holds_exactly_the_eight_torsion_points() -> None:
    """Every point of small order is refused, and nothing else is in the table."""
    t8 = _order_8()
    torsion = {_mul(k, t8) for k in range(8)}
    assert len(torsion) == 8
    canonical = {_encode(point) for point in torsion}
    assert canonical <= crypto._SMALL_ORDER
    for encoded in crypto._SMALL_ORDER:  # the rest: x = 0 spelled with its sign bit set
        y = int.from_bytes(encoded, "little") & ((1 << 255) - 1)
        assert y in {point[1] for point in torsion}
        assert crypto._refused_point(encoded)


def test_unreduced_coordinates_are_refused_and_reduced_ones_are_not() -> None:
    for k in range(19):
        for sign in (0, 1):
            assert crypto._refused_point(((P + k) | sign << 255).to_bytes(32, "little"))
    for k in (2, 3, 10**70):
        assert not crypto._refused_point(_encode(_mul(k, B)))


messages = st.binary(max_size=300)
seeds = st.binary(min_size=32, max_size=32)


@settings(max_examples=60, deadline=None)
@given(seeds, messages, st.integers(0, 64 * 8 - 1), st.sampled_from(["signature", "key", "none"]))
def test_agrees_with_libsodium_on_honest_and_altered_signatures(
    seed: bytes, message: bytes, bit: int, altered: str
) -> None:
    key = nacl.signing.SigningKey(seed)
    public_key, signature = bytes(key.verify_key), key.sign(message).signature
    if altered == "signature":
        signature = (int.from_bytes(signature, "little") ^ 1 << bit).to_bytes(64, "little")
    elif altered == "key":
        public_key = (int.from_bytes(public_key, "little") ^ 1 << bit % 256).to_bytes(32, "little")
    expected = _libsodium(public_key, message, signature)
    assert expected is (altered == "none")
    assert crypto.verify(public_key, message, signature) is expected


def test_an_unreduced_s_is_refused() -> None:
    """S + L is the same scalar spelled a second way: the signature is malleable with it."""
    key = nacl.signing.SigningKey(b"\x07" * 32)
    signature = key.sign(b"m").signature
    s = int.from_bytes(signature[32:], "little") + L
    assert crypto.verify(bytes(key.verify_key), b"m", signature)
    assert not crypto.verify(bytes(key.verify_key), b"m", signature[:32] + s.to_bytes(32, "little"))


def test_a_key_of_small_order_cannot_be_signed_for_by_anyone() -> None:
    """With A of order 8, R the identity and S = 0 the cofactored equation holds for any
    message: ed25519-zebra alone accepts it; libsodium and `crypto.verify` refuse it."""
    public_key = _encode(_order_8())
    forged = _encode(IDENTITY) + bytes(32)
    assert ed25519_zebra.ed_verify(forged, b"pay me", public_key)  # why the refusals exist
    assert not _libsodium(public_key, b"pay me", forged)
    assert not crypto.verify(public_key, b"pay me", forged)


def test_the_difference_left_is_a_signature_only_the_owner_can_make() -> None:
    """A key with a torsion component (aB + T, which no key generator makes) and a signature
    its owner computed: valid by the cofactored equation, not by libsodium's. Nobody without
    the secret `a` can make one, and it authorizes nothing its owner could not."""
    a, r = 0x1234567 * 2**200 % L, 0x7654321 * 2**190 % L
    public_key = _encode(_add(_mul(a, B), _order_8()))
    big_r = _encode(_mul(r, B))
    message = next(
        m
        for m in (b"%d" % i for i in range(64))
        if int.from_bytes(hashlib.sha512(big_r + public_key + m).digest(), "little") % L % 8
    )
    k = int.from_bytes(hashlib.sha512(big_r + public_key + message).digest(), "little") % L
    signature = big_r + ((r + k * a) % L).to_bytes(32, "little")
    assert crypto.verify(public_key, message, signature)
    assert not _libsodium(public_key, message, signature)
    honest = _encode(_mul(a, B))
    k = int.from_bytes(hashlib.sha512(big_r + honest + message).digest(), "little") % L
    signature = big_r + ((r + k * a) % L).to_bytes(32, "little")
    assert crypto.verify(honest, message, signature) and _libsodium(honest, message, signature)


def test_wrong_lengths_are_false_not_errors() -> None:
    key = nacl.signing.SigningKey(b"\x01" * 32)
    signature = key.sign(b"m").signature
    assert not crypto.verify(bytes(key.verify_key)[:31], b"m", signature)
    assert not crypto.verify(bytes(key.verify_key), b"m", signature[:63])
    assert not crypto.verify(bytes(key.verify_key), b"m", signature + b"\x00")


def test_addresses_are_kept_by_key_within_a_bound(
    address_hashes: AddressHashes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`address_of` hashes a key once while its cache holds it, and the cache never holds
    more than MAX_ADDRESSES keys: it is emptied when full, so a key asked again after that
    is hashed again. A key of the wrong length is refused and never kept."""
    monkeypatch.setattr(crypto, "MAX_ADDRESSES", 3)
    keys = [bytes([i]) * 32 for i in range(7)]
    expected = [hashlib.sha256(b"GridTokenX/address\x00" + k).digest()[:20] for k in keys]
    for key, address in zip(keys, expected, strict=True):
        assert crypto.address_of(key) == address
        assert crypto.address_of(key) == address  # asked again: kept
        assert 1 <= len(address_hashes.kept) <= 3
    assert address_hashes.hashed == keys
    assert crypto.address_of(keys[0]) == expected[0]  # emptied since, when key 6 came
    assert address_hashes.hashed == [*keys, keys[0]]
    assert address_hashes.kept == {keys[6]: expected[6], keys[0]: expected[0]}
    with pytest.raises(ValueError, match="32 bytes"):
        crypto.address_of(bytes(31))
    assert len(address_hashes.kept) == 2
