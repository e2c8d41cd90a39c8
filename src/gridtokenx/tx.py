"""Transactions: the wire types, their canonical bytes, signing and hashing.

A signed transaction is `[tx, signature]` where `tx = [chain_id, nonce, sender, fee, body]`
and `body = [type_tag, fields...]`. The signature covers a domain tag followed by the canonical
bytes of `tx`, so a signature made for GridTokenX transactions can never be passed off as a
signature over a block, a vote or another chain's transaction. Field-level bounds (sizes,
ranges) are in the types; rules that need state (balances, roles, licences) are in the ledger.
"""

from __future__ import annotations

import typing
from enum import IntEnum
from typing import Annotated, Final

import msgspec

from gridtokenx import codec, crypto

U64 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
"""Non-negative and below 2**63, so every amount fits a signed 64-bit integer everywhere."""
Address = Annotated[bytes, msgspec.Meta(min_length=20, max_length=20)]
PublicKey = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
Signature = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]
ChainId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ZoneCode = Annotated[str, msgspec.Meta(pattern="^[A-Z]{2,8}$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]

TX_SIGNING_DOMAIN: Final = b"GridTokenX/tx/v1"
TX_HASH_DOMAIN: Final = b"GridTokenX/txid/v1"


class Asset(IntEnum):
    GRID = 1  # energy, in Wh (1 GRID = 1 kWh = 1,000 Wh)
    THB = 2  # baht settlement token, in satang


class ParticipantKind(IntEnum):
    HOUSEHOLD = 1
    BUSINESS = 2
    INDUSTRIAL = 3
    GENERATOR = 4  # solar farm, independent power producer
    RETAILER = 5
    CUSTODIAN = 6  # holds the baht that backs THB


class MeterKind(IntEnum):
    SOLAR = 1
    WIND = 2
    HYDRO = 3
    BIOMASS = 4
    CONSUMPTION = 5  # consumption-only: never exports

    @property
    def renewable(self) -> bool:
        return self is not MeterKind.CONSUMPTION


class LicenceKind(IntEnum):
    SELLER = 1  # may sell energy above the small-prosumer threshold
    CUSTODIAN = 2  # may issue and redeem THB


class _Body(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    pass


class Transfer(_Body, tag=1, frozen=True):
    asset: Asset
    to: Address
    amount: U64


class RegisterParticipant(_Body, tag=2, frozen=True):
    account: Address
    zone: ZoneCode
    kind: ParticipantKind
    name: Name


class RegisterMeter(_Body, tag=3, frozen=True):
    """Registers carry the meter's cumulative readings at installation: energy before that
    point is never minted, and an installed meter need not start at zero."""

    meter_key: PublicKey
    owner: Address
    zone: ZoneCode
    kind: MeterKind
    rated_capacity_w: U64
    import_register_wh: U64 = 0
    export_register_wh: U64 = 0


class GrantLicence(_Body, tag=4, frozen=True):
    holder: Address
    kind: LicenceKind
    expires_at: U64


class RevokeLicence(_Body, tag=5, frozen=True):
    holder: Address
    kind: LicenceKind


class MeterReading(_Body, tag=6, frozen=True):
    """Cumulative register values at the end of a 15-minute interval, signed by the meter."""

    interval_start: U64
    import_wh: U64
    export_wh: U64


class IssueThb(_Body, tag=7, frozen=True):
    to: Address
    amount: U64


class RedeemThb(_Body, tag=8, frozen=True):
    amount: U64


Body = (
    Transfer
    | RegisterParticipant
    | RegisterMeter
    | GrantLicence
    | RevokeLicence
    | MeterReading
    | IssueThb
    | RedeemThb
)
BODY_TYPES: Final[tuple[type[_Body], ...]] = typing.get_args(Body)


class Transaction(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    chain_id: ChainId
    nonce: U64
    sender: PublicKey
    fee: U64
    body: Body

    def signing_bytes(self) -> bytes:
        return TX_SIGNING_DOMAIN + b"\x00" + codec.encode(self)

    def sign(self, key: crypto.PrivateKey) -> SignedTransaction:
        if key.public_key != self.sender:
            raise ValueError("signing key does not match the transaction's sender")
        return SignedTransaction(self, key.sign(self.signing_bytes()))

    @property
    def sender_address(self) -> bytes:
        return crypto.address_of(self.sender)


class SignedTransaction(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    tx: Transaction
    signature: Signature

    def encode(self) -> bytes:
        return codec.encode(self)

    @property
    def hash(self) -> bytes:
        """Transaction id. Ed25519 in libsodium rejects malleable signatures, so hashing the
        signed bytes gives one id per transaction."""
        return crypto.tagged_hash(TX_HASH_DOMAIN, self.encode())

    def signature_valid(self) -> bool:
        return crypto.verify(self.tx.sender, self.tx.signing_bytes(), self.signature)


_decoder = codec.CanonicalDecoder(SignedTransaction, codec.MAX_TX_SIZE, tag_path=(0, 4, 0))


def decode(data: bytes) -> SignedTransaction:
    """Decode a signed transaction, raising a `codec.DecodeError` subclass on any bad input."""
    return _decoder.decode(data)


def make(
    key: crypto.PrivateKey, chain_id: str, nonce: int, body: Body, fee: int = 0
) -> SignedTransaction:
    """Build and sign a transaction in one call (clients and tests)."""
    return Transaction(chain_id, nonce, key.public_key, fee, body).sign(key)
