"""The ledger state machine: `apply(state, signed_tx, block_context)`.

Pure: no I/O, no clock but the block's, no randomness, integers only. A transaction either
commits all of its effects (and the sender's nonce advances) or raises an `errors.Rejection`
and changes nothing, because it executes against an overlay that is committed only at the
end. Envelope checks (chain id, signature, sender, nonce, fee) come first and are shared by
every transaction type; the body is then dispatched to the context that owns its rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from gridtokenx import accounts, errors, metering, registry, tokens
from gridtokenx.context import BlockContext, Event
from gridtokenx.params import Params
from gridtokenx.state import Overlay, State
from gridtokenx.tx import (
    Asset,
    GrantLicence,
    IssueThb,
    MeterReading,
    RedeemThb,
    RegisterMeter,
    RegisterParticipant,
    RevokeLicence,
    SignedTransaction,
    Transfer,
)

CHAIN_KEY = b"chain"
PARAMS_KEY = b"params"


class ChainInfo(msgspec.Struct, frozen=True, array_like=True):
    chain_id: str
    genesis_time: int
    fee_collector: bytes  # address that receives transaction fees


Handler = Callable[[Overlay, BlockContext, bytes, Any, Params], list[Event]]

_HANDLERS: dict[type, Handler] = {
    Transfer: tokens.transfer,
    RegisterParticipant: lambda v, c, s, b, p: registry.register_participant(v, c, s, b),
    RegisterMeter: lambda v, c, s, b, p: registry.register_meter(v, c, s, b, p.interval_seconds),
    GrantLicence: lambda v, c, s, b, p: registry.grant_licence(v, c, s, b),
    RevokeLicence: lambda v, c, s, b, p: registry.revoke_licence(v, c, s, b),
    MeterReading: metering.submit_reading,
    IssueThb: lambda v, c, s, b, p: tokens.issue_thb(v, c, s, b),
    RedeemThb: lambda v, c, s, b, p: tokens.redeem_thb(v, c, s, b),
}


def chain_info(state: State | Overlay) -> ChainInfo:
    info = state.get(CHAIN_KEY, ChainInfo)
    if info is None:
        raise RuntimeError("state has no genesis")
    return info


def params(state: State | Overlay) -> Params:
    value = state.get(PARAMS_KEY, Params)
    if value is None:
        raise RuntimeError("state has no parameters")
    return value


def _fee_exempt(view: Overlay, sender: bytes) -> bool:
    """Authorities run the chain and meters hold no THB, so the minimum fee is for participants.

    Without this, a chain with a positive minimum fee could never register its first
    custodian (authorities start with no THB) and no meter could ever report.
    """
    if registry.authority_of(view, sender) is not None:
        return True
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
    info = chain_info(view)
    if tx.chain_id != info.chain_id:
        raise errors.WrongChainId(f"transaction is for chain {tx.chain_id!r}")
    if check_signature and not stx.signature_valid():
        raise errors.InvalidSignature("signature does not verify under the sender's key")
    sender = tx.sender_address
    account = accounts.get_account(view, sender)
    if account is None:
        raise errors.UnknownSender("sender has no account: register it first")
    if tx.nonce < account.nonce:
        raise errors.NonceReplayed(f"nonce {tx.nonce} already used; next is {account.nonce}")
    if tx.nonce > account.nonce:
        raise errors.NonceGap(f"nonce {tx.nonce} skips ahead; next is {account.nonce}")
    p = params(view)
    if tx.fee < p.min_fee_satang and not _fee_exempt(view, sender):
        raise errors.FeeTooLow(f"fee {tx.fee} satang is below the minimum {p.min_fee_satang}")
    if tx.fee:
        accounts.debit(view, sender, Asset.THB, tx.fee)
        accounts.credit(view, info.fee_collector, Asset.THB, tx.fee)
    events = _HANDLERS[type(tx.body)](view, ctx, sender, tx.body, p)
    account = accounts.get_account(view, sender)
    assert account is not None
    view.put(accounts.account_key(sender), msgspec.structs.replace(account, nonce=tx.nonce + 1))
    view.commit()
    return events
