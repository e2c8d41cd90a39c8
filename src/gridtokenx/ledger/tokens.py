"""GRID and THB movements: transfers, and THB issuance and redemption by the custodian.

GRID is never issued here: only a meter reading mints it (see `metering`). THB enters and
leaves the chain only through an account the ERC has licensed as custodian, which holds the
baht that back it off-chain.
"""

from __future__ import annotations

from gridtokenx.ledger import accounts, registry
from gridtokenx.ledger.context import BlockContext, Event, EventValue
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import Overlay
from gridtokenx.wire import errors
from gridtokenx.wire.tx import Asset, IssueThb, LicenceKind, RedeemThb, Transfer


def _require_holder(view: Overlay, address: bytes) -> None:
    """Only registered participants and authorities hold tokens (KYC through registration)."""
    registered = view.get(registry.participant_key(address), registry.Participant) is not None
    if not registered and registry.authority_of(view, address) is None:
        raise errors.UnknownRecipient("recipient is not a registered participant or authority")


def _require_positive(amount: int) -> None:
    if amount <= 0:
        raise errors.InvalidAmount("amount must be positive")


def _require_custodian(view: Overlay, sender: bytes, ctx: BlockContext) -> None:
    if not registry.has_valid_licence(view, sender, LicenceKind.CUSTODIAN, ctx.time):
        raise errors.NotCustodian("sender holds no valid ERC custodian licence")


def transfer(
    view: Overlay, ctx: BlockContext, sender: bytes, body: Transfer, params: Params
) -> list[Event]:
    _require_positive(body.amount)
    if body.to == sender:
        raise errors.SelfTransfer("sender and recipient are the same account")
    _require_holder(view, body.to)
    if body.asset is Asset.GRID:
        registry.require_may_sell(view, sender, ctx.time, params.small_prosumer_threshold_w)
    moved = accounts.move(view, sender, body.to, body.asset, body.amount)
    attrs: dict[str, EventValue] = {
        "from": sender,
        "to": body.to,
        "asset": body.asset.name,
        "amount": body.amount,
        **moved,
    }
    return [Event("transfer", attrs)]


def issue_thb(view: Overlay, ctx: BlockContext, sender: bytes, body: IssueThb) -> list[Event]:
    _require_positive(body.amount)
    _require_custodian(view, sender, ctx)
    _require_holder(view, body.to)
    issued = accounts.mint(view, body.to, Asset.THB, body.amount)
    attrs: dict[str, EventValue] = {
        "custodian": sender, "to": body.to, "amount": body.amount, **issued,
    }  # fmt: skip
    return [Event("thb_issued", attrs)]


def redeem_thb(view: Overlay, ctx: BlockContext, sender: bytes, body: RedeemThb) -> list[Event]:
    _require_positive(body.amount)
    _require_custodian(view, sender, ctx)
    redeemed = accounts.burn(view, sender, Asset.THB, body.amount)
    return [Event("thb_redeemed", {"custodian": sender, "amount": body.amount, **redeemed})]
