"""Typed results of the SDK's reads, one dataclass per shape the API answers with.

Field names and units are the API's (docs/api.md, and the schemas at /docs): amounts are
integers (Wh, satang), times unix seconds, addresses `gtx...` text, hashes hex, enums
their names. `decode` builds them from the JSON with msgspec, which checks every type, so
a node that answers something else fails loudly at the read, not later in the caller;
fields a newer node adds are ignored, so an older SDK keeps working.

They are dataclasses (as `Balance` and `Receipt` were from the start): `to_json`, or
orjson, turns any of them back into the API's JSON. Reads returned plain dicts before they
were typed, so a result still answers `result["field"]` (and `.get`) for code written then;
new code should use the attributes, which mypy checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from gridtokenx.client.errors import BAD_RESPONSE, ApiError

JSON = dict[str, Any]
T = TypeVar("T")


class Record:
    """Dict-style reading of a typed result, for code written when reads were dicts."""

    def __getitem__(self, name: str) -> Any:
        if not isinstance(name, str) or name not in self.__dataclass_fields__:  # type: ignore[attr-defined]
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default


def to_json(result: Any) -> Any:
    """A typed result (or a list of them) as the API's JSON: dicts, lists and scalars."""
    return msgspec.json.decode(msgspec.json.encode(result))


def decode(kind: type[T]) -> Any:
    """A decoder of the API's JSON into `kind` (for an endpoint's `Call`); an answer of
    another shape is an `ApiError` with code BAD_RESPONSE (a node of another version, or
    not a GridTokenX node at all)."""

    def convert(data: Any) -> T:
        try:
            return msgspec.convert(data, type=kind, strict=True)
        except msgspec.ValidationError as exc:
            name = getattr(kind, "__name__", str(kind))
            raise ApiError(200, BAD_RESPONSE, f"not a {name}: {exc}") from None

    return convert


@dataclass(frozen=True)
class Event(Record):
    """One thing a transaction (or a block's end) did, as the ledger emitted it: `kind`
    (participant_registered, order_accepted, trade, transfer, ...) and its attributes,
    named and valued as the API sends them (addresses gtx... text, amounts integers).
    Receipts, simulations and transaction stream events carry them."""

    kind: str
    attrs: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class Page(Record, Generic[T]):
    """One page of a listing; pass `next` as `after` for the following one (None: last)."""

    items: list[T]
    next: str | None = None


# --- chain --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Health(Record):
    chain_id: str
    height: int
    latest_time: int
    pruned_below: int
    round: int
    peers: int
    mempool_txs: int
    mempool_bytes: int
    halted: str | None
    validating: bool


@dataclass(frozen=True)
class BlockHeader(Record):
    chain_id: str
    height: int
    time: int
    prev_hash: str
    proposer: str
    tx_root: str
    state_root: str
    validators_hash: str
    evidence_hash: str


@dataclass(frozen=True)
class Block(Record):
    """A block; `txs`, `failed`, `end_events` and `signers` are empty in a listing's
    summaries. `failed`: the transactions that failed as the block executed, each with the
    ledger's code (in the block all the same: nonce used, fee paid if it could be)."""

    height: int
    hash: str
    header: BlockHeader
    tx_count: int
    evidence_count: int
    txs: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    end_events: list[JSON] = field(default_factory=list)
    signers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ChainInfo(Record):
    chain_id: str
    genesis_time: int
    fee_collector: str
    height: int
    clock: int  # the chain's time now (fast on an accelerated devnet)
    params: JSON  # the governed parameters, as docs/protocol.md lists them


@dataclass(frozen=True)
class Validator(Record):
    address: str
    public_key: str
    power: int
    jailed: bool
    accountable_from: int
    authority: str | None = None


@dataclass(frozen=True)
class SigningPower(Record):
    address: str
    power: int


@dataclass(frozen=True)
class ValidatorStage(Record):
    from_height: int
    members: list[Validator]


@dataclass(frozen=True)
class Validators(Record):
    height: int
    members: list[Validator]
    pending: list[ValidatorStage]
    signing_next: list[SigningPower]
    total_power: int


@dataclass(frozen=True)
class GridSupply(Record):
    minted_wh: int
    burned_wh: int
    outstanding_wh: int


@dataclass(frozen=True)
class ThbSupply(Record):
    issued_satang: int
    redeemed_satang: int
    outstanding_satang: int


@dataclass(frozen=True)
class Supply(Record):
    height: int
    grid: GridSupply
    thb: ThbSupply


# --- registry -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Participant(Record):
    address: str
    zone: str
    kind: str
    name: str
    registered_by: str
    registered_at: int


@dataclass(frozen=True)
class Meter(Record):
    address: str
    owner: str
    zone: str
    kind: str
    rated_capacity_w: int
    public_key: str
    registered_at: int
    first_interval: int
    last_interval: int
    import_register_wh: int
    export_register_wh: int
    baseline_export_wh: int


@dataclass(frozen=True)
class Reading(Record):
    interval_start: int
    owner: str
    zone: str
    covers_from: int
    import_wh: int
    export_wh: int
    minted_wh: int
    height: int


@dataclass(frozen=True)
class Licence(Record):
    holder: str
    kind: str
    valid: bool
    granted_at: int
    expires_at: int
    revoked_at: int


# --- market -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Order(Record):
    id: int
    owner: str
    side: str
    zone: str
    interval_start: int
    quantity_wh: int
    remaining_wh: int
    price: int
    kind: str
    tif: str
    renewable_only: bool
    renewable: bool
    priority: int
    escrow_satang: int
    status: str
    placed_at: int


@dataclass(frozen=True)
class Trade(Record):
    id: int
    interval_start: int
    buy_order: int
    sell_order: int
    buyer: str
    seller: str
    buyer_zone: str
    seller_zone: str
    quantity_wh: int
    price: int
    loss_bp: int
    path: list[str]
    escrow_satang: int
    height: int
    time: int
    delivered_wh: int
    settled: bool


@dataclass(frozen=True)
class Level(Record):
    price: int
    quantity_wh: int
    orders: int


@dataclass(frozen=True)
class Book(Record):
    zone: str
    interval: int
    bids: list[Level]
    asks: list[Level]


@dataclass(frozen=True)
class ZoneReport(Record):
    export_wh: int
    delivered_wh: int
    sold_to_utility_wh: int
    shortfall_wh: int
    received_wh: int
    losses_wh: int
    import_wh: int
    import_covered_wh: int
    paid_by_buyers_satang: int
    paid_to_sellers_satang: int
    platform_fees_satang: int
    wheeling_satang: int
    refunded_satang: int
    imbalance_satang: int
    utility_bills_satang: int
    buyback_satang: int


@dataclass(frozen=True)
class Settlement(Record):
    interval: int
    status: str
    zones: list[str]
    trade_count: int
    party_count: int
    reports: dict[str, ZoneReport]
    settled_height: int | None = None  # the block that settled it


@dataclass(frozen=True)
class PriceRow(Record):
    interval: int
    trades: int
    volume_wh: int
    vwap: int | None
    low: int | None
    high: int | None
    tariff_msat_per_kwh: int
    buyback_msat_per_kwh: int


@dataclass(frozen=True)
class Prices(Record):
    zone: str
    intervals: list[PriceRow]


@dataclass(frozen=True)
class ZoneHalt(Record):
    halted_by: str
    since: int
    reason: str


@dataclass(frozen=True)
class ZoneBalance(Record):
    measured_at: int
    generation_kw: int
    demand_kw: int


@dataclass(frozen=True)
class Distribution(Record):
    measured_at: int
    reported_by: str
    load_kw: int
    headroom_kw: int


@dataclass(frozen=True)
class ZoneStatus(Record):
    code: str
    name: str
    distribution_authority: str
    halted: bool
    halt: ZoneHalt | None
    balance: ZoneBalance | None
    distribution: Distribution | None


@dataclass(frozen=True)
class LinkMeasure(Record):
    measured_at: int
    capacity_kw: int
    flow_kw: int


@dataclass(frozen=True)
class Interconnector(Record):
    zone_a: str
    zone_b: str
    capacity_kw: int
    loss_basis_points: int
    measured: LinkMeasure | None


@dataclass(frozen=True)
class Frequency(Record):
    measured_at: int
    frequency_mhz: int
    reported_by: str


@dataclass(frozen=True)
class GridStatus(Record):
    zones: list[ZoneStatus]
    interconnectors: list[Interconnector]
    frequency: Frequency | None


@dataclass(frozen=True)
class LinkFlow(Record):
    zone_a: str
    zone_b: str
    capacity_wh: int
    a_to_b_wh: int
    b_to_a_wh: int
    net_wh: int
    room_a_to_b_wh: int
    room_b_to_a_wh: int
    utilisation_bp: int
    congested: bool


@dataclass(frozen=True)
class Flows(Record):
    interval: int
    interconnectors: list[LinkFlow]


# --- day-ahead auction ----------------------------------------------------------------------
@dataclass(frozen=True)
class CurveStep(Record):
    price: int
    quantity_wh: int


@dataclass(frozen=True)
class AuctionCurve(Record):
    id: int
    owner: str
    side: str
    zone: str
    interval_start: int
    steps: list[CurveStep]
    escrow_satang: int
    status: str  # OPEN, CANCELLED, CLEARED, VOID
    placed_at: int
    accepted_wh: list[int]  # per step, once cleared
    renewable_only: bool = False  # a bid served only by renewable offers
    renewable: bool = False  # an offer from renewable meters only


@dataclass(frozen=True)
class CurveLevel(Record):
    price: int
    quantity_wh: int


@dataclass(frozen=True)
class AuctionBook(Record):
    zone: str
    interval: int
    status: str  # NONE, OPEN, CLEARED, CANCELLED
    gate: int
    clearing_deadline: int
    demand: list[CurveLevel]
    supply: list[CurveLevel]
    curves: list[AuctionCurve]
    renewable_demand: list[CurveLevel] = field(default_factory=list)
    renewable_supply: list[CurveLevel] = field(default_factory=list)


@dataclass(frozen=True)
class AuctionZonePrice(Record):
    zone: str
    price: float
    price_exact: str
    headroom_dual: str
    buy_ratio: str
    sell_ratio: str
    renewable_price: float | None = None  # None from a node before renewable-only bids
    renewable_price_exact: str | None = None
    renewable_buy_ratio: str = "0/1"
    renewable_sell_ratio: str = "0/1"


@dataclass(frozen=True)
class AuctionFlow(Record):
    from_zone: str
    to_zone: str
    wh: float
    wh_exact: str
    renewable_wh: float = 0.0
    renewable_wh_exact: str = "0/1"


@dataclass(frozen=True)
class AuctionResult(Record):
    interval: int
    cleared_by: str
    height: int
    welfare_satang: float
    zones: list[AuctionZonePrice]
    flows: list[AuctionFlow]
    trades: list[int]

    def price(self, zone: str) -> float:
        return next(z.price for z in self.zones if z.zone == zone)


# --- certificates and carbon --------------------------------------------------------------
@dataclass(frozen=True)
class Certificate(Record):
    id: int
    owner: str
    issued_to: str
    meter: str
    source: str
    zone: str
    first_interval: int
    last_interval: int
    energy_wh: int
    emission_factor_g_per_kwh: int
    avoided_g: int
    issued_height: int
    issue_day: int
    retire_day: int
    beneficiary: str
    retired: bool


@dataclass(frozen=True)
class CarbonFigures(Record):
    issued_wh: int
    issued_avoided_g: int
    retired_wh: int
    retired_avoided_g: int


@dataclass(frozen=True)
class CarbonDay(CarbonFigures):
    day: int


@dataclass(frozen=True)
class Carbon(CarbonFigures):
    """Certificate totals over local days from_day..to_day: of a participant (`days`), of
    a zone (`days`), or of every zone (`zones`, with the sum in the totals)."""

    from_day: int
    to_day: int
    participant: str | None = None
    zone: str | None = None
    days: list[CarbonDay] = field(default_factory=list)
    zones: dict[str, CarbonFigures] = field(default_factory=dict)


# --- governance ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Ballot(Record):
    voter: str
    choice: str
    weight: int
    delegate: str | None
    carried_weight: int
    on_behalf: list[str]


@dataclass(frozen=True)
class Proposal(Record):
    """A proposal; `ballots` is filled by `proposal(id)`, empty in a listing."""

    id: int
    kind: str
    proposer: str
    actions: list[JSON]
    title: str
    submitted_height: int
    voting_end_height: int
    timelock_heights: int
    total_weight: int
    yes: int
    no: int
    abstain: int
    vetoed: bool
    status: str
    execute_height: int
    outcome: str
    quorum_bp: int
    approval_bp: int
    ballots: list[Ballot] = field(default_factory=list)


@dataclass(frozen=True)
class Governance(Record):
    weights: dict[str, int]
    authorities: dict[str, str]
    delegations: dict[str, str]
    rules: dict[str, int]
    active: list[int]


# --- audit --------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditEvent(Record):
    height: int
    time: int
    block_hash: str
    tx_hash: str | None
    kind: str
    attrs: JSON
    position: tuple[int, int, int]


@dataclass(frozen=True)
class AuditPage(Page[AuditEvent]):
    from_height: int = 0
    to_height: int = 0


# --- surveillance -------------------------------------------------------------------------
@dataclass(frozen=True)
class AlertEvidence(Record):
    kind: str  # order, cancel, trade, transfer, reading
    height: int
    id: int | None = None
    tx_hash: str | None = None


@dataclass(frozen=True)
class SurveillanceAlert(Record):
    id: str
    detector: str  # wash_trading, spoofing, marking_the_gate, capacity_withholding, market_power
    interval: int
    accounts: list[str]
    score: int  # basis points
    summary: str
    height: int
    evidence: list[AlertEvidence]
    zone: str | None = None


@dataclass(frozen=True)
class SurveillanceAlerts(Record):
    followed_from: int
    height: int
    settings_digest: str
    total: int
    items: list[SurveillanceAlert]
