"""Request and response shapes that the OpenAPI document describes, and that FastAPI checks
every answer against (`response_model`). Records inside responses are the ledger's own
(see views.py): their models are derived from the ledger's types (shapes.py), so they are
not restated here; what is written here is the envelope each route puts around them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from gridtokenx.api.shapes import Address, Hash, View, extend, view_of
from gridtokenx.chain.blocks import Header
from gridtokenx.ledger import accounts, certificates, governance, metering, registry
from gridtokenx.ledger import validator_set as validators
from gridtokenx.ledger.grid import records as grid
from gridtokenx.ledger.market import auction
from gridtokenx.ledger.market import records as market
from gridtokenx.ledger.params import Governance as GovernanceRules
from gridtokenx.ledger.params import Params
from gridtokenx.wire import codec
from gridtokenx.wire.tx import LicenceKind

MAX_TX_TEXT = 4 * codec.MAX_TX_SIZE  # room for hex or base64 of one byte too many
MAX_LIMIT = 500


class TxIn(BaseModel):
    tx: str = Field(
        min_length=1,
        max_length=MAX_TX_TEXT,
        description="a signed transaction's canonical bytes, hex or base64",
    )
    encoding: Literal["hex", "base64"] | None = Field(
        None, description="how `tx` is written; absent: hex when it is valid hex, else base64"
    )


class BatchIn(BaseModel):
    txs: list[str] = Field(min_length=1, max_length=1000)
    encoding: Literal["hex", "base64"] | None = None


class Submitted(BaseModel):
    hash: Hash = Field(description="transaction id, hex")


class Admission(BaseModel):
    hash: Hash | None
    accepted: bool
    code: str = ""
    message: str = ""


class BatchResult(BaseModel):
    results: list[Admission]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class Event(View):
    """What a transaction or the end of a block did: a kind and its attributes (amounts
    as integers, addresses as gtx... text)."""

    kind: str
    attrs: dict[str, Any]


class TxStatus(BaseModel):
    hash: Hash
    status: Literal["pending", "committed", "failed", "dropped"] = Field(
        description="failed: committed in a block but refused there by the ledger (its "
        "nonce is used and its fee paid when the sender could; nothing else happened)"
    )
    reason: str = Field(
        "", description="why it failed or was dropped: the ledger's or mempool's code"
    )
    height: int | None = None
    index: int | None = None
    events: list[Event] = []


class TxBody(TxStatus):
    """`TxStatus` and, once committed (and its block not pruned), what the transaction
    says; the fields after the status are absent before then."""

    model_config = ConfigDict(extra="forbid")
    kind: str | None = None
    sender: Address | None = None
    sender_name: str | None = Field(None, description="a participant's name or an authority's code")
    nonce: int | None = None
    fee: int | None = None
    time: int | None = Field(None, description="its block's time (unix s)")
    block_hash: Hash | None = None
    chain_id: str | None = None
    body: dict[str, Any] | None = Field(None, description="the decoded body, as in events")
    signature: str | None = None


class HouseholdBill(View):
    lines: list[dict[str, Any]] = Field(description="one per interval with energy or a trade")
    totals: dict[str, int]


class Household(View):
    """One participant's local day (see docs/dashboard.md, the household page)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    address: Address
    day: int = Field(description="YYYYMMDD, Bangkok time")
    from_: int = Field(alias="from", description="the day's first interval start (unix s)")
    to: int = Field(description="the next day's first interval start (unix s)")
    participant: dict[str, Any]
    meters: list[dict[str, Any]]
    readings: list[dict[str, Any]]
    trades: list[dict[str, Any]] = Field(description="with buyer_name and seller_name")
    buyback_msat_per_kwh: int
    bill: HouseholdBill


T = TypeVar("T")


class Page(View, Generic[T]):
    items: list[T]
    next: str | None = Field(None, description="pass as `after` for the next page")


class Health(BaseModel):
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


class Peers(BaseModel):
    inbound: int = Field(description="connections the peers opened")
    outbound: int = Field(description="connections this node dialled")


class NodeStatus(BaseModel):
    """What an operator (or a monitor) asks a node first: which software, which chain,
    which node, how far it got, whether it is still catching up, and whether it votes."""

    version: str = Field(description="the gridtokenx package version the node runs")
    chain_id: str
    node_id: str = Field(
        pattern=r"^[0-9a-f]{40}$", description="peer id: the node key's address, hex (PEERIDHEX)"
    )
    moniker: str = Field(description="the operator's name for the node (config.json)")
    latest_height: int = Field(description="the last committed height (0: none yet)")
    latest_hash: Hash | None = Field(description="that block's hash, hex (None at height 0)")
    latest_time: int = Field(description="that block's time, unix seconds (genesis time at 0)")
    genesis_hash: Hash | None = Field(
        description="the genesis hash operators compare (`gridtokenx genesis hash`), hex "
        "(None when the node was not started from a home)"
    )
    genesis_root: Hash | None = Field(description="the state root of the genesis state, hex")
    catching_up: bool = Field(
        description="a connected peer has shown a height more than one beyond the one this "
        "node is deciding: it lacks at least a whole block and is syncing"
    )
    peer_height: int = Field(description="the highest height a connected peer has shown")
    validator_address: Address = Field(description="the node key's gtx... address")
    voting_power: int = Field(description="its power for the next height (0: a full node)")
    peers: Peers
    mempool_txs: int
    uptime_s: float = Field(description="seconds since the node started")


class Checkpoint(BaseModel):
    """Where a checkpoint of the node's store was written, and what it holds."""

    path: str = Field(description="the checkpoint's directory, absolute")
    height: int
    state_root: Hash


class CheckpointIn(BaseModel):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="a new directory name under the home's checkpoints/ (no path)",
    )


# --- ledger records (models derived from the ledger's types, shapes.py) -------------------
if TYPE_CHECKING:  # mypy sees models; at run time they are built from the records
    Choice: TypeAlias = str
    Account: TypeAlias = View
    Participant: TypeAlias = View
    Meter: TypeAlias = View
    Reading: TypeAlias = View
    Licence: TypeAlias = View
    Order: TypeAlias = View
    Trade: TypeAlias = View
    Certificate: TypeAlias = View
    Proposal: TypeAlias = View
    Member: TypeAlias = View
    Stage: TypeAlias = View
    ChainParams: TypeAlias = View
    BlockHeader: TypeAlias = View
    ZoneRecord: TypeAlias = View
    Interconnector: TypeAlias = View
    Halt: TypeAlias = View
    ZoneBalance: TypeAlias = View
    Distribution: TypeAlias = View
    LinkState: TypeAlias = View
    Transmission: TypeAlias = View
    IntervalMarket: TypeAlias = View
    ZoneReport: TypeAlias = View
    CarbonDay: TypeAlias = View
    Rules: TypeAlias = View
    AuctionCurve: TypeAlias = View
else:
    Choice = Literal[tuple(c.name for c in governance.VoteChoice)]
    Account = extend(accounts.Account, "Account", address=Address)
    Participant = extend(registry.Participant, "Participant", address=Address)
    Meter = extend(registry.Meter, "Meter", address=Address)
    Reading = extend(metering.ReadingRecord, "Reading", interval_start=int)
    Licence = extend(
        registry.Licence, "Licence", holder=Address,
        kind=Literal[tuple(k.name for k in LicenceKind)], valid=bool,
    )  # fmt: skip
    Order = view_of(market.Order)
    Trade = view_of(market.Trade)
    Certificate = extend(certificates.Certificate, "Certificate", retired=bool)
    Proposal = extend(
        governance.Proposal, "Proposal",
        actions=list[dict[str, Any]], quorum_bp=int, approval_bp=int,
    )  # fmt: skip
    Member = extend(validators.Member, "ValidatorMember", authority=str | None)
    Stage = view_of(validators.Stage)
    ChainParams = view_of(Params)
    BlockHeader = view_of(Header)
    ZoneRecord = view_of(registry.Zone)
    Interconnector = view_of(registry.Interconnector)
    Halt = view_of(market.ZoneHalt)
    ZoneBalance = view_of(grid.ZoneBalanceState)
    Distribution = view_of(grid.DistributionState)
    LinkState = view_of(grid.LinkState)
    Transmission = view_of(grid.TransmissionState)
    IntervalMarket = view_of(market.IntervalMarket)
    ZoneReport = view_of(market.ZoneReport)
    CarbonDay = extend(certificates.CarbonTotals, "CarbonDay", day=int)
    Rules = view_of(GovernanceRules)
    AuctionCurve = view_of(auction.AuctionCurve)


class Ballot(View):
    voter: Address
    choice: Choice
    weight: int
    delegate: Address | None = Field(description="the delegate that cast it, if any")
    carried_weight: int = Field(description="the weight this vote carries in the tally")
    on_behalf: list[Address] = Field(description="delegators whose ballots it cast")


class ProposalWithBallots(Proposal):
    ballots: list[Ballot]


# --- envelopes, route by route ------------------------------------------------------------
class BlockSummary(View):
    height: int
    hash: Hash
    header: BlockHeader
    tx_count: int
    evidence_count: int


class Block(BlockSummary):
    txs: list[Hash] = Field(description="transaction ids, in block order")
    failed: dict[str, str] = Field(
        {},
        description="the ids of transactions that failed as the block executed, each "
        "with the ledger's code (they are in the block: nonce used, fee paid if it could be)",
    )
    end_events: list[Event] = Field(description="what the end of the block did")
    signers: list[Address] = Field(description="validators whose precommits this node holds")


class SigningValidator(View):
    address: Address
    power: int


class Validators(View):
    height: int
    members: list[Member]
    pending: list[Stage]
    signing_next: list[SigningValidator]
    total_power: int


class ChainView(View):
    chain_id: str
    genesis_time: int
    fee_collector: Address
    height: int
    clock: int = Field(description="the chain's time now (unix s; fast on an accelerated devnet)")
    params: ChainParams


class Escrow(View):
    address: Address
    thb_satang: int = Field(description="thb_in_orders_satang + thb_in_trades_satang")
    thb_in_orders_satang: int = Field(description="reserved by open buy orders")
    thb_in_trades_satang: int = Field(description="held for purchases not yet settled")
    grid_wh: int = Field(description="metered export sold, locked until its interval settles")
    open_orders: int
    offered_wh: int = Field(description="left on open sell orders (no GRID is held for them)")
    unsettled_purchases: int


class Level(View):
    price: int = Field(description="satang/kWh")
    quantity_wh: int
    orders: int


class Book(View):
    zone: str
    interval: int
    bids: list[Level] = Field(description="best (highest) first")
    asks: list[Level] = Field(description="best (lowest) first")


class CurveLevel(View):
    price: int = Field(description="satang per kWh")
    quantity_wh: int = Field(description="all steps of the side at this price")


class AuctionBook(View):
    """One zone's day-ahead curves for one interval, and the aggregate curves they make."""

    zone: str
    interval: int
    status: Literal["NONE", "OPEN", "CLEARED", "CANCELLED"]
    gate: int = Field(description="unix time: curves may change until then")
    clearing_deadline: int = Field(description="no clearing by then: cancelled, refunded")
    demand: list[CurveLevel] = Field(description="bid steps by price, highest first")
    supply: list[CurveLevel] = Field(description="offer steps by price, lowest first")
    renewable_demand: list[CurveLevel] = Field(description="the renewable-only bids' steps")
    renewable_supply: list[CurveLevel] = Field(description="the renewable sellers' steps")
    curves: list[AuctionCurve]


class AuctionZonePrice(View):
    zone: str
    price: float = Field(description="satang per kWh (exact value in price_exact)")
    price_exact: str = Field(description="the certificate's rational price, num/den")
    headroom_dual: str
    buy_ratio: str = Field(description="share accepted of the bids at exactly the price")
    sell_ratio: str
    renewable_price: float = Field(
        description="what renewable offers earn and renewable-only bids pay (>= price)"
    )
    renewable_price_exact: str
    renewable_buy_ratio: str = Field(description="as buy_ratio, at the renewable price")
    renewable_sell_ratio: str


class AuctionFlow(View):
    from_zone: str
    to_zone: str
    wh: float = Field(description="energy sent over the link (exact value in wh_exact)")
    wh_exact: str
    renewable_wh: float = Field(description="the part of it sold as renewable energy")
    renewable_wh_exact: str


class AuctionResult(View):
    interval: int
    cleared_by: str = Field(description="the authority whose certificate was accepted")
    height: int
    welfare_satang: float = Field(description="buyers' value minus sellers' cost")
    zones: list[AuctionZonePrice]
    flows: list[AuctionFlow]
    trades: list[int]


class Settlement(IntervalMarket):
    interval: int
    reports: dict[str, ZoneReport]
    settled_height: int | None = Field(
        None, description="the block that settled it (null before, or when pruned)"
    )


class PriceRow(View):
    interval: int
    trades: int
    volume_wh: int
    vwap: int | None = Field(description="volume-weighted average, satang/kWh")
    low: int | None
    high: int | None
    tariff_msat_per_kwh: int
    buyback_msat_per_kwh: int


class Prices(View):
    zone: str
    intervals: list[PriceRow]


class ZoneStatus(ZoneRecord):
    halted: bool
    halt: Halt | None
    balance: ZoneBalance | None
    distribution: Distribution | None


class InterconnectorStatus(Interconnector):
    measured: LinkState | None


class GridStatus(View):
    zones: list[ZoneStatus]
    interconnectors: list[InterconnectorStatus]
    frequency: Transmission | None


class LinkFlow(View):
    zone_a: str
    zone_b: str
    capacity_wh: int
    a_to_b_wh: int
    b_to_a_wh: int
    net_wh: int = Field(description="> 0: from zone_a to zone_b")
    room_a_to_b_wh: int
    room_b_to_a_wh: int
    utilisation_bp: int
    congested: bool


class Flows(View):
    interval: int
    interconnectors: list[LinkFlow]


class GridSupply(View):
    minted_wh: int
    burned_wh: int
    outstanding_wh: int


class ThbSupply(View):
    issued_satang: int
    redeemed_satang: int
    outstanding_satang: int


class Supply(View):
    height: int
    grid: GridSupply
    thb: ThbSupply


class ZoneCarbon(View):
    renewable_received_wh: int
    co2_avoided_g: int


class TradedCarbon(View):
    from_: int = Field(alias="from")
    to: int
    emission_factor_g_per_kwh: int
    traded_wh: int
    settled_trades: int
    renewable_received_wh: int
    co2_avoided_g: int
    zones: dict[str, ZoneCarbon]


class CarbonFigures(View):
    issued_wh: int
    issued_avoided_g: int
    retired_wh: int
    retired_avoided_g: int


class CarbonTotals(CarbonFigures):
    from_day: int
    to_day: int
    days: list[CarbonDay]


class ParticipantCarbon(CarbonTotals):
    participant: Address


class ZoneCarbonTotals(CarbonTotals):
    zone: str


class ZonesCarbon(CarbonFigures):
    from_day: int
    to_day: int
    zones: dict[str, CarbonFigures]


class GovernanceOverview(View):
    weights: dict[str, int] = Field(description="vote weight per authority code")
    authorities: dict[str, Address]
    delegations: dict[str, str] = Field(description="delegator code -> delegate code")
    rules: Rules
    active: list[int] = Field(description="open proposals' ids")


class AuditEvent(View):
    height: int
    time: int
    block_hash: Hash
    tx_hash: Hash | None
    kind: str
    attrs: dict[str, Any]
    position: tuple[int, int, int]


class AccountPage(Page[Account]):
    """A page of accounts (balances and nonces) in address order."""


class AuditPage(Page[AuditEvent]):
    from_height: int
    to_height: int


class AlertEvidence(BaseModel):
    kind: Literal["order", "cancel", "trade", "transfer", "reading"]
    id: int | None = Field(None, description="the order or trade id (none for a transfer)")
    tx_hash: Hash | None = Field(None, description="none for an end-of-block event")
    height: int


class SurveillanceAlert(BaseModel):
    id: str = Field(description="hash of the alert's content: the same on every node")
    detector: Literal[
        "wash_trading", "spoofing", "marking_the_gate", "capacity_withholding", "market_power"
    ]
    interval: int = Field(description="delivery interval start (unix s)")
    zone: str | None = Field(None, description="none when the pattern spans zones")
    accounts: list[Address]
    score: int = Field(ge=0, le=10_000, description="basis points")
    summary: str
    height: int = Field(description="the height whose block raised the alert")
    evidence: list[AlertEvidence]


class SurveillanceAlerts(BaseModel):
    followed_from: int = Field(description="the first height the node's follower judged")
    height: int = Field(description="the last height it judged")
    settings_digest: str = Field(description="names the thresholds the alerts were raised under")
    total: int = Field(description="alerts matching the filters, before paging")
    items: list[SurveillanceAlert]


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "refused"},
    404: {"model": ErrorBody, "description": "not found"},
    422: {"model": ErrorBody, "description": "invalid request"},
    429: {"model": ErrorBody, "description": "rate limited"},
    503: {
        "model": ErrorBody,
        "description": "the mempool is full (back-pressure), or the node halted",
    },
}
