"""Hashes, Ed25519 keys and addresses.

Every hash in GridTokenX is SHA-256 over a domain tag followed by the payload, so that bytes
hashed or signed for one purpose (a transaction, a state bucket, an address) can never be
replayed as bytes of another purpose. (Merkle trees over lists use RFC 6962's 0x00/0x01
prefixes instead, see merkle.py; a tagged hash always starts with an ASCII tag, so the two
never collide.) Keys and signing come from libsodium via PyNaCl. Verification, which every
validator does once for every transaction, comes from ed25519-zebra (Rust, through its
Python bindings): 36 µs a verify here against PyNaCl's 54, with libsodium's refusals of
small-order and non-canonical points kept in front of it (docs/adr/0008).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Final

import ed25519_zebra
import nacl.signing

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
SEED_SIZE = 32
ADDRESS_SIZE = 20
ADDRESS_PREFIX = "gtx"
_CHECKSUM_SIZE = 5


class InvalidAddress(ValueError):
    """Address text is malformed or its checksum does not match (a typo)."""


def tagged_hash(tag: bytes, *parts: bytes) -> bytes:
    """SHA-256 of a NUL-terminated domain tag followed by the parts.

    The tag never contains NUL, so the boundary between tag and payload is unambiguous.
    The hash of each tag is started once and copied (the state root hashes this way tens of
    thousands of times per block).
    """
    started = _TAGS.get(tag)
    if started is None:
        started = tag_context(tag)
    h = started.copy()
    h.update(b"".join(parts))
    return h.digest()


def tag_prefix(tag: bytes) -> bytes:
    """The bytes `tagged_hash` hashes before its parts: for code that hashes many
    messages with one tag in a single C call each (`sha256(prefix + message)`)."""
    return tag + b"\x00"


def tag_context(tag: bytes) -> hashlib._Hash:
    """The SHA-256 `tagged_hash` starts from for `tag` (the tag and its NUL absorbed),
    shared: callers `copy()` it and never update it, for loops that hash thousands of times
    with one tag without a call per hash."""
    started = _TAGS.get(tag)
    if started is None:
        started = _TAGS[tag] = hashlib.sha256(tag_prefix(tag))
    return started


_TAGS: dict[bytes, hashlib._Hash] = {}


def address_of(public_key: bytes) -> bytes:
    """20-byte account address: a domain-separated hash of the Ed25519 public key.

    Kept by key (`_ADDRESSES`), the only cache of it: a validator asks for a transaction's
    sender address (`Transaction.sender_address`) on admission, in the block's screen, in
    execution and in surveillance's follower, four or more times a transaction, a hash
    each time otherwise. A plain dict, not `functools.lru_cache`, which builds a key tuple
    and moves the entry to the front of its list on every call: a hit 0.037-0.039 µs
    against 0.046-0.050, a miss 0.47-0.54 against 0.54-0.64 (`timeit`, the minimum of 31
    alternated, the loop's 0.01 included, December 2026)."""
    address = _ADDRESSES.get(public_key)
    if address is None:
        if len(public_key) != PUBLIC_KEY_SIZE:
            raise ValueError(f"public key must be {PUBLIC_KEY_SIZE} bytes, got {len(public_key)}")
        if len(_ADDRESSES) >= MAX_ADDRESSES:
            _ADDRESSES.clear()  # bounded: a key asked again afterwards costs one hash
        address = _ADDRESSES[public_key] = tagged_hash(_ADDRESS_TAG, public_key)[:ADDRESS_SIZE]
    return address


_ADDRESS_TAG: Final = b"GridTokenX/address"
MAX_ADDRESSES: Final = 65_536
_ADDRESSES: dict[bytes, bytes] = {}
"""Addresses by public key, at most MAX_ADDRESSES (some 6 MB, 10 with keys no transaction
holds any more), emptied when full: evicting one at a time needs the bookkeeping a plain
dict saves, and a key asked again afterwards costs one hash."""


def _checksum(address: bytes) -> bytes:
    return tagged_hash(b"GridTokenX/address-checksum", address)[:_CHECKSUM_SIZE]


def address_to_text(address: bytes) -> str:
    """Checksummed text form, `gtx` + lowercase base32 of address || checksum.

    Base32 avoids case-sensitivity problems when an address is read aloud or typed on a phone;
    the 5-byte checksum (which also makes 25 bytes fill 40 base32 characters with no
    padding) catches practically every typo before money is sent to nobody.
    """
    if len(address) != ADDRESS_SIZE:
        raise InvalidAddress(f"address must be {ADDRESS_SIZE} bytes, got {len(address)}")
    body = base64.b32encode(address + _checksum(address)).decode("ascii").lower()
    return ADDRESS_PREFIX + body


def address_from_text(text: str) -> bytes:
    """Parse and checksum-verify the text form produced by `address_to_text`."""
    if not text.startswith(ADDRESS_PREFIX):
        raise InvalidAddress(f"address must start with {ADDRESS_PREFIX!r}")
    body = text[len(ADDRESS_PREFIX) :]
    if body != body.lower() or len(body) != 40:
        raise InvalidAddress("address body must be 40 lowercase base32 characters")
    try:
        raw = base64.b32decode(body.upper())
    except (ValueError, base64.binascii.Error) as exc:  # type: ignore[attr-defined]
        raise InvalidAddress(f"address is not valid base32: {exc}") from None
    address, checksum = raw[:ADDRESS_SIZE], raw[ADDRESS_SIZE:]
    if _checksum(address) != checksum:
        raise InvalidAddress("address checksum mismatch")
    return address


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` is a valid Ed25519 signature of `message` under `public_key`.

    ed25519-zebra checks the cofactored equation over any encoding of the points (ZIP 215),
    a superset of what libsodium accepts. The refusals libsodium makes before its
    arithmetic are made here first, so that no key anyone can sign for (a point of small
    order) and no second spelling of a point (a coordinate at or above the field prime) is
    accepted; what remains different are signatures only a key's owner can make (docs/adr/
    0008), and every validator runs this same function, so they agree on each one."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    if _refused_point(public_key) or _refused_point(signature[:32]):
        return False
    return bool(ed25519_zebra.ed_verify(signature, message, public_key))


_FIELD_PRIME = 2**255 - 19
_Y_MASK = (1 << 255) - 1
_SMALL_ORDER_Y = (
    0,  # order 4
    1,  # the identity
    _FIELD_PRIME - 1,  # order 2
    2707385501144840649318225287225658788936804267575313519463743609750303402022,  # order 8
    55188659117513257062467267217118295137698188065244968500265048394206261417927,  # order 8
)
_SMALL_ORDER = frozenset(
    (y | sign << 255).to_bytes(32, "little") for y in _SMALL_ORDER_Y for sign in (0, 1)
)
"""The encodings of the eight points of small order, both signs of x (libsodium's
blocklist without its non-canonical entries, which `_refused_point` refuses anyway)."""


def _refused_point(encoded: bytes) -> bool:
    """A public key or a signature's R that libsodium refuses before any arithmetic: a
    point of small order, or a y coordinate not reduced modulo the field prime."""
    return encoded in _SMALL_ORDER or int.from_bytes(encoded, "little") & _Y_MASK >= _FIELD_PRIME


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """An Ed25519 signing key held in memory; persist it only through the keystore."""

    seed: bytes
    # Derived once: deriving the key pair from the seed costs as much as a verify, and a
    # validator asked its own address on every timeout and signed every vote with a key
    # derived again (about 1.6 µs per order per validator in the devnet at saturation).
    _signing: nacl.signing.SigningKey = field(init=False, repr=False, compare=False)
    _public: bytes = field(init=False, repr=False, compare=False)
    _address: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_SIZE:
            raise ValueError(f"seed must be {SEED_SIZE} bytes")
        signing = nacl.signing.SigningKey(self.seed)
        object.__setattr__(self, "_signing", signing)
        object.__setattr__(self, "_public", bytes(signing.verify_key))
        object.__setattr__(self, "_address", address_of(self._public))

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_dev_label(cls, label: str) -> PrivateKey:
        """Deterministic key for devnets and tests only: anyone who knows the label has the key."""
        return cls(tagged_hash(b"GridTokenX/insecure-dev-key", label.encode("utf-8")))

    @property
    def public_key(self) -> bytes:
        return self._public

    @property
    def address(self) -> bytes:
        return self._address

    def sign(self, message: bytes) -> bytes:
        return self._signing.sign(message).signature

    def __repr__(self) -> str:  # never print the seed
        return f"PrivateKey(address={address_to_text(self.address)})"
