"""Typed rejections. Each class is one failure kind with one stable `code` for the API.

A rejection is raised from inside transaction execution; `transition.apply` lets it
propagate after discarding the transaction's overlay, so the state is exactly as before.
"""

from __future__ import annotations


class Rejection(Exception):
    """A transaction the ledger refuses. Subclasses name the reason."""

    code = "REJECTED"


# --- envelope -----------------------------------------------------------------------------
class InvalidSignature(Rejection):
    code = "INVALID_SIGNATURE"


class WrongChainId(Rejection):
    code = "WRONG_CHAIN_ID"


class NonceReplayed(Rejection):
    """Nonce below the account's next nonce: this transaction (or its slot) was used."""

    code = "NONCE_REPLAYED"


class NonceGap(Rejection):
    """Nonce above the account's next nonce: an earlier transaction is missing."""

    code = "NONCE_GAP"


class FeeTooLow(Rejection):
    code = "FEE_TOO_LOW"


class UnknownSender(Rejection):
    code = "UNKNOWN_SENDER"


# --- tokens -------------------------------------------------------------------------------
class InvalidAmount(Rejection):
    code = "INVALID_AMOUNT"


class InsufficientBalance(Rejection):
    code = "INSUFFICIENT_BALANCE"


class AmountOverflow(Rejection):
    """A balance or supply total would leave the 63-bit range every node encodes."""

    code = "AMOUNT_OVERFLOW"


class UnknownRecipient(Rejection):
    code = "UNKNOWN_RECIPIENT"


class SelfTransfer(Rejection):
    code = "SELF_TRANSFER"


class NotCustodian(Rejection):
    """THB may be issued or redeemed only by an account holding a valid ERC custodian licence."""

    code = "NOT_CUSTODIAN"


class UnlicensedSeller(Rejection):
    """Selling energy above the small-prosumer threshold needs a valid ERC seller licence."""

    code = "UNLICENSED_SELLER"


# --- registry -----------------------------------------------------------------------------
class Unauthorised(Rejection):
    """The signer does not hold the authority role this action needs."""

    code = "UNAUTHORISED"


class UnknownZone(Rejection):
    code = "UNKNOWN_ZONE"


class AlreadyRegistered(Rejection):
    code = "ALREADY_REGISTERED"


class UnknownParticipant(Rejection):
    code = "UNKNOWN_PARTICIPANT"


class MeterAlreadyRegistered(Rejection):
    code = "METER_ALREADY_REGISTERED"


class InvalidCapacity(Rejection):
    code = "INVALID_CAPACITY"


class LicenceNotFound(Rejection):
    code = "LICENCE_NOT_FOUND"


class InvalidExpiry(Rejection):
    code = "INVALID_EXPIRY"


class InvalidParticipantKind(Rejection):
    code = "INVALID_PARTICIPANT_KIND"


# --- metering -----------------------------------------------------------------------------
class UnknownMeter(Rejection):
    code = "UNKNOWN_METER"


class MisalignedInterval(Rejection):
    code = "MISALIGNED_INTERVAL"


class ReadingOutsideWindow(Rejection):
    """Interval not yet ended (beyond allowed clock skew) or older than the governed window."""

    code = "READING_OUTSIDE_WINDOW"


class ReadingBeforeRegistration(Rejection):
    """Energy from before the meter was registered is never minted."""

    code = "READING_BEFORE_REGISTRATION"


class DuplicateReading(Rejection):
    """A reading for this meter and interval was already applied: minting twice is refused."""

    code = "DUPLICATE_READING"


class ReadingOutOfOrder(Rejection):
    code = "READING_OUT_OF_ORDER"


class RegisterNotMonotonic(Rejection):
    code = "REGISTER_NOT_MONOTONIC"


class OverCapacity(Rejection):
    code = "OVER_CAPACITY"


class ExportOnConsumptionMeter(Rejection):
    code = "EXPORT_ON_CONSUMPTION_METER"


# --- market -------------------------------------------------------------------------------
class NotAParticipant(Rejection):
    """Only registered participants trade; authorities and meters do not."""

    code = "NOT_A_PARTICIPANT"


class TradingNotOpen(Rejection):
    """The interval is further ahead than the governed trading horizon."""

    code = "TRADING_NOT_OPEN"


class GateClosed(Rejection):
    """Gate closure for the interval has passed: no new orders or amendments."""

    code = "GATE_CLOSED"


class PriceOutOfBand(Rejection):
    code = "PRICE_OUT_OF_BAND"


class PriceNotOnTick(Rejection):
    code = "PRICE_NOT_ON_TICK"


class QuantityBelowLot(Rejection):
    code = "QUANTITY_BELOW_LOT"


class InvalidOrder(Rejection):
    """A combination the market does not offer (a resting market order, renewable-only sell)."""

    code = "INVALID_ORDER"


class TooManyOpenOrders(Rejection):
    code = "TOO_MANY_OPEN_ORDERS"


class ZoneHalted(Rejection):
    """Matching in the zone is halted (grid emergency); new orders wait for the resume."""

    code = "ZONE_HALTED"


class SellCapacityExceeded(Rejection):
    """Offers may not exceed what the seller's meters in the zone can export in the interval,
    minus what is already offered or sold: the same future energy cannot be sold twice."""

    code = "SELL_CAPACITY_EXCEEDED"


class UnknownOrder(Rejection):
    code = "UNKNOWN_ORDER"


class NotOrderOwner(Rejection):
    code = "NOT_ORDER_OWNER"


class OrderNotOpen(Rejection):
    code = "ORDER_NOT_OPEN"


class HaltUnchanged(Rejection):
    """Halting a halted zone or resuming a running one: almost certainly an operator mistake."""

    code = "HALT_UNCHANGED"


# --- validator set ------------------------------------------------------------------------
class InvalidValidatorKey(Rejection):
    """Not 32 bytes, or not a point consensus could ever verify a vote under."""

    code = "INVALID_VALIDATOR_KEY"


class ValidatorKeyInUse(Rejection):
    """The key is a participant's or meter's: a node key must not also trade or mint."""

    code = "VALIDATOR_KEY_IN_USE"


class PowerOutOfRange(Rejection):
    code = "POWER_OUT_OF_RANGE"


class TotalPowerTooHigh(Rejection):
    """The set's total power would grow past the cap that bounds proposer rotation work."""

    code = "TOTAL_POWER_TOO_HIGH"


class NoActiveValidator(Rejection):
    """After the change no validator would be left that is not jailed: the chain would halt."""

    code = "NO_ACTIVE_VALIDATOR"


class UnknownValidator(Rejection):
    code = "UNKNOWN_VALIDATOR"


class ValidatorUnchanged(Rejection):
    """Setting the power a validator already has: almost certainly an operator mistake."""

    code = "VALIDATOR_UNCHANGED"


class ValidatorNotJailed(Rejection):
    code = "VALIDATOR_NOT_JAILED"


# --- grid management (tags 15-18) ----------------------------------------------------------
class StaleGridStatus(Rejection):
    """The measurement is older than the governed maximum age at the block's time."""

    code = "STALE_GRID_STATUS"


class GridStatusFromFuture(Rejection):
    """The measurement is dated further ahead of the block than the governed clock skew."""

    code = "GRID_STATUS_FROM_FUTURE"


class GridStatusOutOfOrder(Rejection):
    """Not newer than the last accepted measurement of the same reporter and subject."""

    code = "GRID_STATUS_OUT_OF_ORDER"


class InvalidGridUpdate(Rejection):
    """A value no grid can have (zero frequency) or a zone or link listed twice."""

    code = "INVALID_GRID_UPDATE"


class UnknownInterconnector(Rejection):
    code = "UNKNOWN_INTERCONNECTOR"


class FrequencyOutOfBand(Rejection):
    """An emergency is not cleared while EGAT's latest frequency is outside the band."""

    code = "FREQUENCY_OUT_OF_BAND"


class ZoneNotHalted(Rejection):
    code = "ZONE_NOT_HALTED"


# --- renewable certificates (issue 6) -----------------------------------------------------
class UnknownCertificate(Rejection):
    code = "UNKNOWN_CERTIFICATE"


class NotCertificateOwner(Rejection):
    code = "NOT_CERTIFICATE_OWNER"


class CertificateRetired(Rejection):
    """A retired certificate has been claimed for its beneficiary: it can never move again."""

    code = "CERTIFICATE_RETIRED"


class InvalidBeneficiary(Rejection):
    """Empty, blank, longer than the governed limit, or holding control characters."""

    code = "INVALID_BENEFICIARY"


class RecipientNotParticipant(Rejection):
    """Certificates are held by registered participants only, never authorities or meters."""

    code = "RECIPIENT_NOT_PARTICIPANT"


# --- governance (tags 22-24) ----------------------------------------------------------------
class NoGovernanceWeight(Rejection):
    """The authority has governance weight 0: it may neither propose nor vote."""

    code = "NO_GOVERNANCE_WEIGHT"


class InvalidProposal(Rejection):
    """An action the proposal's kind may not carry, an unknown parameter, a value of the
    wrong shape, or a weight change for an authority that does not exist."""

    code = "INVALID_PROPOSAL"


class InvalidParams(Rejection):
    """The parameters the proposal would set fail Params.validate."""

    code = "INVALID_PARAMS"


class TooManyProposals(Rejection):
    code = "TOO_MANY_PROPOSALS"


class UnknownProposal(Rejection):
    code = "UNKNOWN_PROPOSAL"


class VotingClosed(Rejection):
    """The proposal's voting period is over (or it was withdrawn): votes no longer count."""

    code = "VOTING_CLOSED"


class AlreadyVoted(Rejection):
    code = "ALREADY_VOTED"


class VetoNotAllowed(Rejection):
    """Only the regulator vetoes, and only market-rule and licence changes."""

    code = "VETO_NOT_ALLOWED"


# --- vote delegation (tag 21) ---------------------------------------------------------------
class InvalidDelegate(Rejection):
    """The named delegate is not an authority, or has no governance weight to vote with."""

    code = "INVALID_DELEGATE"


class SelfDelegation(Rejection):
    code = "SELF_DELEGATION"


class DelegationChain(Rejection):
    """Delegation is one level deep: a delegate may not itself delegate, and an authority
    others delegate to may not delegate, so a vote never follows a chain."""

    code = "DELEGATION_CHAIN"


class NotDelegating(Rejection):
    """Clearing a delegation the authority does not have."""

    code = "NOT_DELEGATING"


class DelegationUnchanged(Rejection):
    """The authority already delegates to this delegate."""

    code = "DELEGATION_UNCHANGED"


# --- day-ahead auction ------------------------------------------------------------------------
class AuctionGateClosed(Rejection):
    """The interval's auction gate has passed: curves can no longer be placed or amended."""

    code = "AUCTION_GATE_CLOSED"


class AuctionNotOpen(Rejection):
    """The interval is further ahead than the auction horizon."""

    code = "AUCTION_NOT_OPEN"


class InvalidCurve(Rejection):
    """A curve step outside the price band, off the tick or below the lot."""

    code = "INVALID_CURVE"


class UnknownCurve(Rejection):
    code = "UNKNOWN_CURVE"


class CurveNotOpen(Rejection):
    code = "CURVE_NOT_OPEN"


class ClearingNotDue(Rejection):
    """A clearing before the gate (curves may still change) or after its deadline."""

    code = "CLEARING_NOT_DUE"


class AuctionAlreadyCleared(Rejection):
    code = "AUCTION_ALREADY_CLEARED"


class NoAuction(Rejection):
    """No open auction curve for the interval: there is nothing to clear."""

    code = "NO_AUCTION"


class ClearingMalformed(Rejection):
    """The clearing does not list each zone once, in order, or names an unknown link."""

    code = "CLEARING_MALFORMED"


class ClearingInfeasible(Rejection):
    """The quantities break a zone balance, a link's room, a headroom or a step's bounds."""

    code = "CLEARING_INFEASIBLE"


class ClearingNotOptimal(Rejection):
    """The duals are infeasible or welfare differs from the dual bound (a duality gap)."""

    code = "CLEARING_NOT_OPTIMAL"


ALL_REJECTIONS: tuple[type[Rejection], ...] = tuple(
    cls
    for cls in list(globals().values())
    if isinstance(cls, type) and issubclass(cls, Rejection) and cls is not Rejection
)
