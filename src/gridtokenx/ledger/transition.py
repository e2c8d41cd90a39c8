"""The ledger state machine: `apply(state, signed_tx, block_context)`.

Pure: no I/O, no clock but the block's, no randomness, integers only. A transaction either
commits all of its effects (and the sender's nonce advances) or raises an `errors.Rejection`
and changes nothing, because it executes against an overlay that is committed only at the
end. Envelope checks (chain id, signature, sender, nonce, fee) come first and are shared by
every transaction type; the body is then dispatched to the context that owns its rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

import msgspec

from gridtokenx.ledger import (
    accounts,
    certificates,
    chain_info,
    governance,
    metering,
    registry,
    tokens,
    validator_set,
)
from gridtokenx.ledger.context import BlockContext, Event, EventValue
from gridtokenx.ledger.grid import records as grid_records
from gridtokenx.ledger.grid import status
from gridtokenx.ledger.market import (
    auction,
    auction_clearing,
    curtailment,
    halts,
    settlement,
    trading,
)
from gridtokenx.ledger.market import records as market_records
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import Overlay, State
from gridtokenx.wire import errors
from gridtokenx.wire.tx import (
    AmendAuctionCurve,
    AmendOrder,
    Asset,
    CancelAuctionCurve,
    CancelOrder,
    CastVote,
    ClearEmergency,
    DeclareEmergency,
    DelegateVote,
    DistributionStatus,
    GrantLicence,
    IssueThb,
    LicenceKind,
    MeterReading,
    PlaceAuctionCurve,
    PlaceOrder,
    RedeemThb,
    RegisterMeter,
    RegisterParticipant,
    RetireCertificate,
    RevokeLicence,
    SetZoneHalt,
    SignedTransaction,
    SubmitAuctionClearing,
    SubmitProposal,
    Transfer,
    TransferCertificate,
    TransmissionStatus,
    WithdrawProposal,
)

CONTEXTS: Final = (
    chain_info, accounts, registry, metering, market_records, grid_records, certificates,
    governance, validator_set, auction,
)  # fmt: skip
"""The contexts that store records; each declares them in `RECORDS`."""
RECORD_TYPES: Final[tuple[type[msgspec.Struct], ...]] = tuple(
    t for context in CONTEXTS for t in context.RECORDS
)
"""Every record type the ledger stores (the store refuses any other type)."""

__all__ = [
    "CONTEXTS",
    "RECORD_TYPES",
    "TX_FAILED",
    "apply",
    "apply_in_block",
    "end_block",
    "fee_exempt",
]

TX_FAILED: Final = "tx_failed"
"""The event of a block's transaction that failed as it executed (`apply_in_block`)."""
VOID: Final = (
    errors.WrongChainId, errors.InvalidSignature, errors.UnknownSender, errors.NonceReplayed,
    errors.NonceGap,
)  # fmt: skip
"""Envelope failures: the transaction has no valid claim on an account, so nothing is charged."""

Handler = Callable[[Overlay, BlockContext, bytes, Any, Params], list[Event]]

_HANDLERS: dict[type, Handler] = {
    Transfer: tokens.transfer,
    RegisterParticipant: lambda v, c, s, b, p: registry.register_participant(v, c, s, b),
    RegisterMeter: lambda v, c, s, b, p: registry.register_meter(v, c, s, b, p.interval_seconds),
    GrantLicence: lambda v, c, s, b, p: registry.grant_licence(v, c, s, b),
    RevokeLicence: lambda v, c, s, b, p: registry.revoke_licence(v, c, s, b),
    MeterReading: lambda v, c, s, b, p: _reading(v, c, s, b, p),
    IssueThb: lambda v, c, s, b, p: tokens.issue_thb(v, c, s, b),
    RedeemThb: lambda v, c, s, b, p: tokens.redeem_thb(v, c, s, b),
    PlaceOrder: trading.place_order,
    CancelOrder: trading.cancel_order,
    AmendOrder: trading.amend_order,
    SetZoneHalt: halts.set_zone_halt,
    TransmissionStatus: lambda v, c, s, b, p: _transmission_status(v, c, s, b, p),
    DistributionStatus: status.distribution_status,
    DeclareEmergency: halts.declare,
    ClearEmergency: halts.clear,
    TransferCertificate: certificates.transfer_certificate,
    RetireCertificate: certificates.retire_certificate,
    SubmitProposal: governance.submit_proposal,
    CastVote: governance.cast_vote,
    WithdrawProposal: governance.withdraw_proposal,
    DelegateVote: governance.delegate_vote,
    PlaceAuctionCurve: auction.place_curve,
    AmendAuctionCurve: auction.amend_curve,
    CancelAuctionCurve: auction.cancel_curve,
    SubmitAuctionClearing: auction_clearing.submit_clearing,
}


def _reading(
    view: Overlay, ctx: BlockContext, sender: bytes, body: MeterReading, p: Params
) -> list[Event]:
    """Mint from the reading, let the market escrow export it already sold, then certify
    renewable export (certificates follow the energy's origin, not who bought it)."""
    events = metering.submit_reading(view, ctx, sender, body, p)
    events += settlement.record_reading(view, sender, body.interval_start, p)
    return events + certificates.accrue(view, ctx, sender, body.interval_start, p)


def _transmission_status(
    view: Overlay, ctx: BlockContext, sender: bytes, body: TransmissionStatus, p: Params
) -> list[Event]:
    """Record EGAT's telemetry, then apply the market's rules to it: curtail trades a
    capacity cut no longer fits, and halt every zone when the frequency left the band."""
    update = status.transmission_status(view, ctx, sender, body, p)
    events = update.events
    if update.capacity_cut:
        events += curtailment.curtail(view, ctx, p)
    return events + halts.on_frequency(view, ctx, body.frequency_mhz, update.by, p)


def fee_exempt(view: Overlay, ctx: BlockContext, sender: bytes, body: object) -> bool:
    """Authorities run the chain and meters hold no THB, so the minimum fee is for participants.

    Without this, a chain with a positive minimum fee could never register its first
    custodian (authorities start with no THB) and no meter could ever report. THB issuance by
    a licensed custodian is exempt for the same reason: it is how THB enters the chain, so
    before it nobody holds any to pay a fee with.
    """
    if registry.authority_of(view, sender) is not None:
        return True
    if isinstance(body, IssueThb):
        return registry.has_valid_licence(view, sender, LicenceKind.CUSTODIAN, ctx.time)
    return view.get(registry.meter_key(sender), registry.Meter) is not None


def apply(
    state: State, stx: SignedTransaction, ctx: BlockContext, *, check_signature: bool = True
) -> list[Event]:
    """Apply one signed transaction; return its events or raise a Rejection leaving no trace.

    `check_signature=False` is for callers that verified the signature already (the mempool
    verifies in a thread pool before block execution); everything else is always checked.
    """
    view = state.overlay()
    tx = stx.tx
    info = chain_info.chain_info(view)
    if tx.chain_id != info.chain_id:
        raise errors.WrongChainId(f"transaction is for chain {tx.chain_id!r}")
    if check_signature and not stx.signature_valid():
        raise errors.InvalidSignature("signature does not verify under the sender's key")
    sender = tx.sender_address
    account_key = accounts.account_key(sender)  # read here, written back with its nonce
    account = view.get(account_key, accounts.Account)
    if account is None:
        raise errors.UnknownSender("sender has no account: register it first")
    if tx.nonce < account.nonce:
        raise errors.NonceReplayed(f"nonce {tx.nonce} already used; next is {account.nonce}")
    if tx.nonce > account.nonce:
        raise errors.NonceGap(f"nonce {tx.nonce} skips ahead; next is {account.nonce}")
    p = chain_info.params(view)
    if tx.fee < p.min_fee_satang and not fee_exempt(view, ctx, sender, tx.body):
        raise errors.FeeTooLow(f"fee {tx.fee} satang is below the minimum {p.min_fee_satang}")
    events: list[Event] = []
    if tx.fee:
        moved = accounts.move(view, sender, info.fee_collector, Asset.THB, tx.fee)
        fee: dict[str, EventValue] = {
            "from": sender, "to": info.fee_collector, "amount": tx.fee, **moved,
        }  # fmt: skip
        events.append(Event("fee_paid", fee))
    events += _HANDLERS[type(tx.body)](view, ctx, sender, tx.body, p)
    account = view.get(account_key, accounts.Account)
    assert account is not None
    view.put(account_key, msgspec.structs.replace(account, nonce=tx.nonce + 1))
    view.commit()
    return events


def read_senders_ahead(state: State, stxs: Iterable[SignedTransaction]) -> None:
    """Before a block executes: every transaction reads its sender's account first (the
    envelope in `apply`), so the state may read those ahead, side by side
    (`State.warm_records`: a store under a memory limit waits for the disk for most)."""
    if state.reads_ahead:
        state.warm_records([accounts.account_key(stx.tx.sender_address) for stx in stxs])


def apply_in_block(
    state: State, stx: SignedTransaction, ctx: BlockContext, *, check_signature: bool = True
) -> list[Event]:
    """Apply one transaction of a decided block, which may fail: validators voted for the
    block on cheap checks (`chain.blocks.Screen`), not on its execution. The rule, the same
    on every node, is:

    - it succeeds: as `apply`;
    - its envelope fails (`VOID`: wrong chain, bad signature, unknown sender, a nonce not
      its sender's next; the screen makes these impossible in a valid block, but a rule
      must still say what they do): nothing changes;
    - anything else fails (the fee below the minimum, the market's or the ledger's rules,
      the fee itself unaffordable): its effects are discarded, its sender's nonce advances
      (so the signed transaction can never apply later: a client told "failed" stays
      told), and its fee is paid when the sender's THB covers it (failing is not free).

    The two failures return one `TX_FAILED` event with the ledger's code and message."""
    try:
        return apply(state, stx, ctx, check_signature=check_signature)
    except VOID as exc:
        return [_failed(exc)]
    except errors.Rejection as exc:
        rejection = exc
    view = state.overlay()
    tx = stx.tx
    sender = tx.sender_address
    events: list[Event] = []
    if tx.fee:
        collector = chain_info.chain_info(view).fee_collector
        paid = view.fork()
        try:
            accounts.move(paid, sender, collector, Asset.THB, tx.fee)
        except errors.Rejection:
            pass  # the sender cannot pay: nothing is charged
        else:
            view.absorb(paid)
            events.append(Event("fee_paid", {"from": sender, "to": collector, "amount": tx.fee}))
    account = accounts.get_account(view, sender)
    assert account is not None  # not VOID: the sender exists
    view.put(accounts.account_key(sender), msgspec.structs.replace(account, nonce=tx.nonce + 1))
    view.commit()
    return [*events, _failed(rejection)]


def _failed(rejection: errors.Rejection) -> Event:
    return Event(TX_FAILED, {"code": rejection.code, "message": str(rejection)})


def end_block(state: State, ctx: BlockContext) -> list[Event]:
    """Work the block itself does after its transactions: order expiry at gate closure and
    interval settlement, then governance (tallies and executions due at this height, whose
    parameter changes apply from the next block on). Deterministic in (state, ctx), like
    `apply`."""
    view = state.overlay()
    events = auction.end_block(view, ctx, chain_info.params(view))
    events += settlement.end_block(view, ctx, chain_info.params(view))
    events += governance.end_block(view, ctx)
    validator_set.end_block(view, ctx)
    view.commit()
    return events
