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

from gridtokenx.wire import codec, crypto

U64 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
"""Non-negative and below 2**63, so every amount fits a signed 64-bit integer everywhere."""
Address = Annotated[bytes, msgspec.Meta(min_length=20, max_length=20)]
PublicKey = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
Signature = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]
ChainId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ZoneCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2,8}\Z")]  # \Z: "$" allows a final "\n"
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]

MAX_TOTAL_POWER: Final = 100_000
"""Cap on one validator's power and on a set's total (genesis has 39,000). Proposer rotation
builds a schedule of total / gcd(powers) entries whenever a set is built, so the cap bounds
that work: at 100,000 it is a fraction of a second even when the powers share no factor."""
VotingPower = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOTAL_POWER)]

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
    COGENERATION = 6  # a factory's gas-fired combined heat and power: exports, not renewable

    @property
    def produces(self) -> bool:
        return self is not MeterKind.CONSUMPTION

    @property
    def renewable(self) -> bool:
        return self not in (MeterKind.CONSUMPTION, MeterKind.COGENERATION)


class LicenceKind(IntEnum):
    SELLER = 1  # may sell energy above the small-prosumer threshold
    CUSTODIAN = 2  # may issue and redeem THB


class Side(IntEnum):
    BUY = 1
    SELL = 2


class OrderKind(IntEnum):
    LIMIT = 1
    MARKET = 2  # matches at any price up to (buy) or down to (sell) its protection price


class TimeInForce(IntEnum):
    GOOD_TILL_GATE = 1  # rests in the book until filled, cancelled or gate closure
    IMMEDIATE_OR_CANCEL = 2  # fills what it can at once; the rest is cancelled
    FILL_OR_KILL = 3  # fills completely at once or not at all


# Every transaction type is a frozen array of values, never tracked by the cyclic garbage
# collector (`gc=False`, inherited by the bodies). A decoded transaction was three to four
# tracked objects (an enum field makes a body tracked, and a body its transaction) that wait
# in the mempool for seconds under a backlog, so every young collection of a validator walked
# thousands of them and found nothing: values of bytes, numbers, strings, enums and tuples of
# such values cannot form a reference cycle, and reference counting frees every one
# (docs/adr/0007, "The commit in the devnet and in process").
class _Body(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, gc=False):
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


class PlaceOrder(_Body, tag=9, frozen=True):
    """An order for energy delivered in one 15-minute interval in one zone. Prices are
    satang per kWh; quantities Wh. For a market order `price` is the protection price."""

    side: Side
    zone: ZoneCode
    interval_start: U64
    quantity_wh: U64
    price: U64
    kind: OrderKind = OrderKind.LIMIT
    tif: TimeInForce = TimeInForce.GOOD_TILL_GATE
    renewable_only: bool = False


class CancelOrder(_Body, tag=10, frozen=True):
    order_id: U64


class AmendOrder(_Body, tag=11, frozen=True):
    """New total quantity and limit price. Lowering only the quantity keeps time priority;
    raising it or changing the price moves the order to the back of its price level."""

    order_id: U64
    quantity_wh: U64
    price: U64


class SetZoneHalt(_Body, tag=12, frozen=True):
    """EGAT (any zone) or the zone's distribution authority halts or resumes matching."""

    zone: ZoneCode
    halted: bool
    reason: Annotated[str, msgspec.Meta(max_length=128)] = ""


# Tags 13 and 14 are retired, never to be reused: they were SetValidator and
# UnjailValidator, the ERC's direct changes to the validator set. The set now changes only
# through a passed governance proposal (ValidatorChange, ValidatorUnjail below), and the
# decoder refuses the two tags as unknown, so an old signed transaction can never mean
# something else.
RETIRED_TAGS: Final = frozenset({13, 14})


# --- grid management (tags 15-18) ---------------------------------------------------------
SignedInt = Annotated[int, msgspec.Meta(ge=-(2**63 - 1), le=2**63 - 1)]
GridZones = Annotated[tuple[ZoneCode, ...], msgspec.Meta(min_length=1, max_length=16)]
MAX_GRID_ENTRIES: Final = 64
"""Bound on the links or zones one status update lists: the grid has a handful of each."""


class LinkStatus(
    msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, gc=False
):
    """One interconnector as EGAT measures it; `flow_kw` is positive from `zone_a` to `zone_b`."""

    zone_a: ZoneCode
    zone_b: ZoneCode
    capacity_kw: U64
    flow_kw: SignedInt


class ZoneBalance(
    msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, gc=False
):
    zone: ZoneCode
    generation_kw: U64
    demand_kw: U64


class TransmissionStatus(_Body, tag=15, frozen=True):
    """EGAT's view of the transmission grid at `measured_at`: system frequency (one
    synchronous area, so it concerns every zone), interconnector capacities and flows, and
    per-zone generation and demand. Lists may cover a subset; what is not listed keeps its
    last value. A capacity is the market's limit from then on (see docs/grid.md)."""

    measured_at: U64
    frequency_mhz: U64
    links: Annotated[tuple[LinkStatus, ...], msgspec.Meta(max_length=MAX_GRID_ENTRIES)] = ()
    zones: Annotated[tuple[ZoneBalance, ...], msgspec.Meta(max_length=MAX_GRID_ENTRIES)] = ()


class DistributionStatus(_Body, tag=16, frozen=True):
    """MEA or PEA reports one of its own zones: load and the feeder/transformer headroom,
    which caps the P2P energy the zone may import per interval."""

    measured_at: U64
    zone: ZoneCode
    load_kw: U64
    headroom_kw: U64


class DeclareEmergency(_Body, tag=17, frozen=True):
    """EGAT halts matching in the listed zones at once (open orders stay)."""

    zones: GridZones
    reason: Annotated[str, msgspec.Meta(max_length=128)] = ""


class ClearEmergency(_Body, tag=18, frozen=True):
    """EGAT (any zone) or the zone's distributor resumes matching once the grid is normal."""

    zones: GridZones
    reason: Annotated[str, msgspec.Meta(max_length=128)] = ""


BENEFICIARY_MAX_CHARS: Final = 1024
"""Wire bound on a retirement's beneficiary text, only to bound transaction size: the
ledger enforces the governed (much smaller) limit, so that too long is a clear rejection."""


class TransferCertificate(_Body, tag=19, frozen=True):
    """The owner of a renewable energy certificate hands it to another participant."""

    certificate_id: U64
    to: Address


class RetireCertificate(_Body, tag=20, frozen=True):
    """The owner claims the certificate's energy for `beneficiary`; it never moves again."""

    certificate_id: U64
    beneficiary: Annotated[str, msgspec.Meta(max_length=BENEFICIARY_MAX_CHARS)]


# --- governance (tags 21-24) ----------------------------------------------------------------
MAX_GOVERNANCE_WEIGHT: Final = 1_000_000
"""Cap on one authority's governance weight, so tallies stay far inside 63 bits."""
GovernanceWeight = Annotated[int, msgspec.Meta(ge=0, le=MAX_GOVERNANCE_WEIGHT)]
ParamName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ParamInt = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
ParamValue = ParamInt | Annotated[tuple[ParamInt, ...], msgspec.Meta(max_length=512)]


class ProposalKind(IntEnum):
    """Decides which actions a proposal may carry, its thresholds, periods and the ERC veto."""

    PARAMETER = 1  # governed parameters outside the market and licence rules; vote weights
    VALIDATOR = 2  # validator-set changes: add, change power, remove, unjail
    LICENCE_POLICY = 3  # licence parameters (small_prosumer_threshold_w); ERC may veto
    MARKET_RULE = 4  # market parameters (price band, gate closure, fees...); ERC may veto
    EMERGENCY = 5  # any action, short voting period and timelock; proposed by EGAT or ERC


class VoteChoice(IntEnum):
    YES = 1
    NO = 2
    ABSTAIN = 3  # counts toward quorum only
    VETO = 4  # the regulator's no on a market-rule or licence proposal: rejects it outright


class _Action(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, gc=False):
    pass


class ParamChange(_Action, tag=1, frozen=True):
    """Set one governed parameter: `name` is a Params field, or `struct.field` for nested
    ones (`tariffs.ft_msat_per_kwh`, `governance.timelock_heights`); the value is an
    integer, or a tuple of integers for tuple fields (`tariffs.holidays`)."""

    name: ParamName
    value: ParamValue


class ValidatorChange(_Action, tag=2, frozen=True):
    """Add a validator (a key not yet in the set), change its power, or remove it with
    power 0; in force two heights after the block that executes the proposal."""

    public_key: PublicKey
    power: VotingPower


class ValidatorUnjail(_Action, tag=3, frozen=True):
    """Let a validator jailed for equivocation count again, at the power it had."""

    address: Address


class WeightChange(_Action, tag=4, frozen=True):
    """Set an authority's governance weight (its consensus power is a validator change)."""

    authority: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
    weight: GovernanceWeight


class InterconnectorChange(_Action, tag=5, frozen=True):
    """Set an interconnector's rated capacity and loss factor, or build a new one between two
    zones: the grid's topology and losses are governed data, not genesis constants. Once
    EGAT has reported a link's capacity (TransmissionStatus), the market uses EGAT's figure;
    the rated capacity is what it uses until then (a new link, say)."""

    zone_a: ZoneCode
    zone_b: ZoneCode
    capacity_kw: U64
    loss_basis_points: Annotated[int, msgspec.Meta(ge=0, lt=10_000)]


Action = ParamChange | ValidatorChange | ValidatorUnjail | WeightChange | InterconnectorChange


class SubmitProposal(_Body, tag=22, frozen=True):
    """An authority proposes actions that execute together, automatically, if the vote passes."""

    kind: ProposalKind
    actions: Annotated[tuple[Action, ...], msgspec.Meta(min_length=1, max_length=16)]
    title: Annotated[str, msgspec.Meta(max_length=256)] = ""


class CastVote(_Body, tag=23, frozen=True):
    proposal_id: U64
    choice: VoteChoice


class WithdrawProposal(_Body, tag=24, frozen=True):
    """The proposer takes its proposal back while voting is still open."""

    proposal_id: U64


class DelegateVote(_Body, tag=21, frozen=True):
    """An authority lets another authority's votes carry its governance weight (until it
    votes itself), or clears its delegation with an empty `delegate` (docs/governance.md)."""

    delegate: Annotated[str, msgspec.Meta(max_length=16)]  # an authority code, "" clears


# --- day-ahead auction (tags 25-28) ---------------------------------------------------------
MAX_CURVE_STEPS: Final = 32
"""Steps one auction curve may carry: a household's or a plant's curve has a handful."""
MAX_CLEARING_ENTRIES: Final = 64
"""Bound on the zones or directed links one clearing lists (the grid has a handful)."""


class CurveStep(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, gc=False):
    """One step of a curve: up to `quantity_wh` at `price` satang/kWh (a buy's highest, a
    sell's lowest). Buy quantities are Wh received in the zone, sell quantities Wh sent."""

    price: U64
    quantity_wh: U64


CurveSteps = Annotated[
    tuple[CurveStep, ...], msgspec.Meta(min_length=1, max_length=MAX_CURVE_STEPS)
]


class PlaceAuctionCurve(_Body, tag=25, frozen=True):
    """A bid (BUY) or offer (SELL) curve in the day-ahead auction of one interval and zone;
    every step is accepted, rejected or (at the zone price) accepted pro rata. A
    `renewable_only` bid is served only by renewable offers and pays the zone's renewable
    price (buys only, as for continuous orders)."""

    side: Side
    zone: ZoneCode
    interval_start: U64
    steps: CurveSteps
    renewable_only: bool = False


class AmendAuctionCurve(_Body, tag=26, frozen=True):
    """Replace the steps of one's own curve before the auction gate."""

    curve_id: U64
    steps: CurveSteps


class CancelAuctionCurve(_Body, tag=27, frozen=True):
    curve_id: U64


class Rational(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, gc=False):
    """An exact rational `num / den` (den > 0): clearing prices and quantities are rational
    because loss factors divide them; the ledger checks them without floating point."""

    num: SignedInt
    den: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class ZoneClearing(
    msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, gc=False
):
    """One zone's result: its price (the balance constraint's dual, satang/kWh), the dual of
    its import headroom, and the share accepted of the buy and sell steps priced exactly at
    the zone price (steps above or below it are accepted or rejected whole). The renewable
    commodity's price (renewable offers earn it, renewable-only bids pay it; None: the zone
    price) and the shares of its steps at that price (None: 0) follow."""

    zone: ZoneCode
    price: Rational
    headroom_dual: Rational
    buy_ratio: Rational
    sell_ratio: Rational
    green_price: Rational | None = None
    green_buy_ratio: Rational | None = None
    green_sell_ratio: Rational | None = None


class LinkFlow(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, gc=False):
    """Energy sent from `from_zone` over the interconnector to `to_zone` (Wh, before loss),
    and how much of it is renewable energy still sold as such (None: none)."""

    from_zone: ZoneCode
    to_zone: ZoneCode
    wh: Rational
    green_wh: Rational | None = None


class SubmitAuctionClearing(_Body, tag=28, frozen=True):
    """An authority submits the optimal clearing of one interval's auction with its
    certificate (zone prices and duals); every validator checks it in exact arithmetic."""

    interval_start: U64
    zones: Annotated[tuple[ZoneClearing, ...], msgspec.Meta(max_length=MAX_CLEARING_ENTRIES)]
    flows: Annotated[tuple[LinkFlow, ...], msgspec.Meta(max_length=MAX_CLEARING_ENTRIES)] = ()


Body = (
    Transfer
    | RegisterParticipant
    | RegisterMeter
    | GrantLicence
    | RevokeLicence
    | MeterReading
    | IssueThb
    | RedeemThb
    | PlaceOrder
    | CancelOrder
    | AmendOrder
    | SetZoneHalt
    | TransmissionStatus
    | DistributionStatus
    | DeclareEmergency
    | ClearEmergency
    | TransferCertificate
    | RetireCertificate
    | SubmitProposal
    | CastVote
    | WithdrawProposal
    | DelegateVote
    | PlaceAuctionCurve
    | AmendAuctionCurve
    | CancelAuctionCurve
    | SubmitAuctionClearing
)
BODY_TYPES: Final[tuple[type[_Body], ...]] = typing.get_args(Body)


def is_emergency(body: object) -> bool:
    """Grid emergencies jump the queue: the mempool reaps them (and the sender's transactions
    before them) ahead of everything else, so the block being built carries them first."""
    return isinstance(body, DeclareEmergency | ClearEmergency)


def is_priority(body: object) -> bool:
    """Grid operations are admitted however long the queue: emergencies, zone halts and the
    grid operators' status reports. Back-pressure turns away trading when the chain is
    saturated; it must never keep the grid's operators from acting on it. They also go
    first end to end: a batch kind of their own in gossip, first in every send queue, and
    reaped first into the block being built."""
    return type(body) in _PRIORITY


_PRIORITY: Final = frozenset(
    {DeclareEmergency, ClearEmergency, SetZoneHalt, TransmissionStatus, DistributionStatus}
)
"""`is_priority`'s kinds, matched by exact type (bodies are final: msgspec decodes these
very types). `isinstance` on a msgspec Struct against other classes costs 1.5-1.7 us a
call, a set lookup of its type some 0.04 us, and this runs several times per transaction."""


class Transaction(
    msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, gc=False
):
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
        """Asked four or more times a transaction by a validator, kept by key in
        `crypto.address_of` (not on the transaction: msgspec allows no `dict=True` on a
        type untracked by the collector, `gc=False`, which is worth more). The call costs
        0.02 µs an ask more than a dict read here did (`timeit`, December 2026)."""
        return crypto.address_of(self.sender)


class SignedTransaction(
    msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, gc=False
):
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


def hash_of(raw: bytes) -> bytes:
    """The id of a transaction from its canonical bytes, without decoding it (equal to
    `decode(raw).hash` for every `raw` that decodes, because decoding requires canonical
    bytes). Nodes use it to recognise transactions they already hold before any work."""
    return crypto.tagged_hash(TX_HASH_DOMAIN, raw)


def decode(data: bytes) -> SignedTransaction:
    """Decode a signed transaction, raising a `codec.DecodeError` subclass on any bad input."""
    return _decoder.decode(data)


def make(
    key: crypto.PrivateKey, chain_id: str, nonce: int, body: Body, fee: int = 0
) -> SignedTransaction:
    """Build and sign a transaction in one call (clients and tests)."""
    return Transaction(chain_id, nonce, key.public_key, fee, body).sign(key)
