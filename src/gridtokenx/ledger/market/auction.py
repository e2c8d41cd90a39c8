"""The day-ahead auction: step curves per interval and zone, placed until the auction gate,
then cleared at once by one certified optimal clearing (clearing.py) or cancelled.

Curves are backed like limit orders: a buy curve escrows what all its steps can cost at
their prices, a sell curve counts its total against the seller's capacity in the same
`Position` continuous trading uses, so energy offered or sold in one market cannot be sold
again in the other. The gate is the same for every interval of a delivery day (Bangkok
time): `gate_lead_seconds` before that day's midnight, 12:00 the day before by default.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

import msgspec

from gridtokenx.ledger import accounts, registry
from gridtokenx.ledger.context import BlockContext, Event, EventValue
from gridtokenx.ledger.market import bookkeeping, trading
from gridtokenx.ledger.params import AUCTION_PARAMS_KEY, AuctionParams, Params
from gridtokenx.ledger.state import Overlay
from gridtokenx.wire import errors
from gridtokenx.wire.tx import (
    AmendAuctionCurve,
    Asset,
    CancelAuctionCurve,
    CurveStep,
    PlaceAuctionCurve,
    Side,
    SubmitAuctionClearing,
)

ACTIVE_KEY: Final = b"aucactive"
DAY: Final = 86_400


class CurveStatus(IntEnum):
    OPEN = 1
    CANCELLED = 2  # by its owner before the gate
    CLEARED = 3  # the auction cleared (accepted_wh says how much of each step)
    VOID = 4  # no clearing by the deadline: escrow and offer given back


class AuctionStatus(IntEnum):
    OPEN = 1
    CLEARED = 2
    CANCELLED = 3


class AuctionCurve(msgspec.Struct, frozen=True, array_like=True):
    id: int
    owner: bytes
    side: Side
    zone: str
    interval_start: int
    steps: tuple[CurveStep, ...]
    escrow_satang: int  # buys: THB held until the clearing
    status: CurveStatus
    placed_at: int
    accepted_wh: tuple[int, ...] = ()  # per step, after clearing (buys received, sells sent)
    renewable_only: bool = False  # buys: served only by renewable offers, at the renewable price
    renewable: bool = False  # sells: every producing meter of the seller in the zone is renewable

    @property
    def green(self) -> bool:
        """Priced against the zone's renewable price (clearing.Step.green)."""
        return self.renewable_only if self.side is Side.BUY else self.renewable

    @property
    def quantity_wh(self) -> int:
        return sum(s.quantity_wh for s in self.steps)


class AuctionInterval(msgspec.Struct, frozen=True, array_like=True):
    status: AuctionStatus = AuctionStatus.OPEN
    curves: tuple[int, ...] = ()  # open curves, in id order


class AuctionResult(msgspec.Struct, frozen=True, array_like=True):
    """The accepted clearing (the certificate as submitted) and what it did."""

    clearing: SubmitAuctionClearing
    welfare_num: int  # welfare in satang x Wh / kWh, exact
    welfare_den: int
    height: int
    cleared_by: str  # authority code
    trades: tuple[int, ...]


class ActiveAuctions(msgspec.Struct, frozen=True, array_like=True):
    intervals: tuple[int, ...]  # open auctions, ascending


RECORDS: Final[tuple[type[msgspec.Struct], ...]] = (
    AuctionCurve,
    AuctionInterval,
    AuctionResult,
    ActiveAuctions,
)


def curve_key(curve_id: int) -> bytes:
    return b"aucv/" + curve_id.to_bytes(8)


def interval_key(interval_start: int) -> bytes:
    return b"auci/" + interval_start.to_bytes(8)


def result_key(interval_start: int) -> bytes:
    return b"aucr/" + interval_start.to_bytes(8)


def auction_params(view: Overlay) -> AuctionParams:
    return view.get(AUCTION_PARAMS_KEY, AuctionParams) or AuctionParams()


def gate(interval_start: int, params: Params, auction: AuctionParams) -> int:
    """The auction gate of the delivery day (Bangkok) that contains the interval."""
    offset = params.tariffs.utc_offset_seconds
    day_start = (interval_start + offset) // DAY * DAY - offset
    return day_start - auction.gate_lead_seconds


def get_curve(view: Overlay, curve_id: int) -> AuctionCurve:
    curve = view.get(curve_key(curve_id), AuctionCurve)
    if curve is None:
        raise errors.UnknownCurve(f"no auction curve {curve_id}")
    return curve


def get_interval(view: Overlay, interval_start: int) -> AuctionInterval | None:
    return view.get(interval_key(interval_start), AuctionInterval)


def result(view: Overlay, interval_start: int) -> AuctionResult | None:
    """The accepted clearing of the interval's auction (None until one is accepted)."""
    return view.get(result_key(interval_start), AuctionResult)


def open_curves(view: Overlay, interval_start: int) -> list[AuctionCurve]:
    found = get_interval(view, interval_start)
    return [get_curve(view, i) for i in (() if found is None else found.curves)]


# --- checks -----------------------------------------------------------------------------------
def _check_window(view: Overlay, ctx: BlockContext, interval_start: int, p: Params) -> None:
    if interval_start % p.interval_seconds:
        raise errors.MisalignedInterval(
            f"interval start must be a multiple of {p.interval_seconds} s"
        )
    a = auction_params(view)
    if ctx.time >= gate(interval_start, p, a):
        raise errors.AuctionGateClosed("the auction gate for this delivery day has passed")
    if interval_start - ctx.time > a.horizon_seconds:
        raise errors.AuctionNotOpen(f"the auction opens {a.horizon_seconds} s before the interval")


def _check_steps(steps: tuple[CurveStep, ...], p: Params) -> None:
    for step in steps:
        trading.check_price_and_quantity(step.quantity_wh, step.price, p)


def _back(
    view: Overlay, curve: AuctionCurve, before: AuctionCurve | None, p: Params
) -> tuple[AuctionCurve, list[Event]]:
    """Hold what the curve promises, net of what its previous version held: a sell's total
    against the seller's capacity (shared with continuous orders), a buy's cost in escrow
    (with the `escrow` event of the difference, either way)."""
    if curve.side is Side.SELL:
        extra = curve.quantity_wh - (0 if before is None else before.quantity_wh)
        capacity, _ = trading.seller_capacity(view, curve.owner, curve.zone, p.interval_seconds)
        pos = bookkeeping.position(view, curve.interval_start, curve.zone, curve.owner)
        if extra > 0 and pos.offered_wh + pos.sold_wh + extra > capacity:
            raise errors.SellCapacityExceeded(
                f"offers of {pos.offered_wh + pos.sold_wh + extra} Wh exceed the {capacity} Wh "
                f"the seller's meters in {curve.zone} can export in the interval"
            )
        bookkeeping.update_position(
            view, curve.interval_start, curve.zone, curve.owner, offered_wh=extra
        )
        return curve, []
    escrow = sum(bookkeeping.buyer_cost_satang(s.quantity_wh, s.price, p) for s in curve.steps)
    ref: dict[str, EventValue] = {"curve": curve.id, "escrow_satang": escrow}
    if before is None:
        moved = bookkeeping.move_escrow(
            view, curve.owner, accounts.ESCROW_ADDRESS, Asset.THB, escrow, "curve", ref
        )
    else:
        moved = trading.amend_escrow(view, curve.owner, escrow - before.escrow_satang, ref)
    return msgspec.structs.replace(curve, escrow_satang=escrow), moved


def release(
    view: Overlay, curve: AuctionCurve, status: CurveStatus
) -> tuple[AuctionCurve, list[Event]]:
    """Give back what an open curve holds (its escrow, its offer) and close it."""
    refund: list[Event] = []
    if curve.side is Side.BUY:
        ref: dict[str, EventValue] = {"curve": curve.id, "escrow_satang": 0}
        why = "curve_" + status.name.lower()
        refund = bookkeeping.move_escrow(
            view, accounts.ESCROW_ADDRESS, curve.owner, Asset.THB, curve.escrow_satang, why, ref
        )
    if curve.side is Side.SELL:
        bookkeeping.update_position(
            view, curve.interval_start, curve.zone, curve.owner, offered_wh=-curve.quantity_wh
        )
    closed = msgspec.structs.replace(curve, status=status, escrow_satang=0)
    view.put(curve_key(curve.id), closed)
    return closed, refund


def _own_open_curve(view: Overlay, sender: bytes, curve_id: int) -> AuctionCurve:
    curve = get_curve(view, curve_id)
    if curve.owner != sender:
        raise errors.NotOrderOwner("the curve belongs to another account")
    if curve.status is not CurveStatus.OPEN:
        raise errors.CurveNotOpen(f"curve is {curve.status.name.lower()}")
    return curve


def set_active(view: Overlay, intervals: set[int]) -> None:
    if intervals:
        view.put(ACTIVE_KEY, ActiveAuctions(tuple(sorted(intervals))))
    else:
        view.delete(ACTIVE_KEY)


def active(view: Overlay) -> tuple[int, ...]:
    found = view.get(ACTIVE_KEY, ActiveAuctions)
    return () if found is None else found.intervals


def _curve_event(kind: str, curve: AuctionCurve) -> Event:
    return Event(
        kind,
        {
            "curve": curve.id,
            "owner": curve.owner,
            "side": curve.side.name,
            "zone": curve.zone,
            "interval": curve.interval_start,
            "quantity_wh": curve.quantity_wh,
            "escrow_satang": curve.escrow_satang,
            "renewable_only": int(curve.renewable_only),
            "renewable": int(curve.renewable),
        },
    )


# --- transaction handlers -------------------------------------------------------------------
def place_curve(
    view: Overlay, ctx: BlockContext, sender: bytes, body: PlaceAuctionCurve, p: Params
) -> list[Event]:
    if view.get(registry.participant_key(sender), registry.Participant) is None:
        raise errors.NotAParticipant("only registered participants bid in the auction")
    registry.require_zone(view, body.zone)
    _check_window(view, ctx, body.interval_start, p)
    _check_steps(body.steps, p)
    if body.renewable_only and body.side is Side.SELL:
        raise errors.InvalidCurve("renewable_only is for bids: an offer's energy is what it is")
    auction = get_interval(view, body.interval_start) or AuctionInterval()
    if auction.status is not AuctionStatus.OPEN:
        raise errors.AuctionGateClosed("the interval's auction is no longer open")
    if len(auction.curves) >= auction_params(view).max_curves_per_interval:
        raise errors.InvalidCurve("the interval's auction holds the most curves it may")
    renewable = False
    if body.side is Side.SELL:
        registry.require_may_sell(view, sender, ctx.time, p.small_prosumer_threshold_w)
        # As for a continuous sell order: fixed when placed, true when the seller has
        # capacity in the zone and every producing meter there is renewable.
        _, renewable = trading.seller_capacity(view, sender, body.zone, p.interval_seconds)
    curve = AuctionCurve(
        id=bookkeeping.next_id(view),
        owner=sender,
        side=body.side,
        zone=body.zone,
        interval_start=body.interval_start,
        steps=body.steps,
        escrow_satang=0,
        status=CurveStatus.OPEN,
        placed_at=ctx.time,
        renewable_only=body.renewable_only,
        renewable=renewable,
    )
    curve, moved = _back(view, curve, None, p)
    view.put(curve_key(curve.id), curve)
    view.put(
        interval_key(body.interval_start),
        msgspec.structs.replace(auction, curves=(*auction.curves, curve.id)),
    )
    set_active(view, {*active(view), body.interval_start})
    return [_curve_event("auction_curve_placed", curve), *moved]


def amend_curve(
    view: Overlay, ctx: BlockContext, sender: bytes, body: AmendAuctionCurve, p: Params
) -> list[Event]:
    curve = _own_open_curve(view, sender, body.curve_id)
    _check_window(view, ctx, curve.interval_start, p)
    _check_steps(body.steps, p)
    amended, moved = _back(view, msgspec.structs.replace(curve, steps=body.steps), curve, p)
    view.put(curve_key(curve.id), amended)
    return [_curve_event("auction_curve_amended", amended), *moved]


def cancel_curve(
    view: Overlay, ctx: BlockContext, sender: bytes, body: CancelAuctionCurve, p: Params
) -> list[Event]:
    """Only before the gate: after it the curves are what the clearing is computed from."""
    curve = _own_open_curve(view, sender, body.curve_id)
    if ctx.time >= gate(curve.interval_start, p, auction_params(view)):
        raise errors.AuctionGateClosed("curves cannot be cancelled after the auction gate")
    closed, refund = release(view, curve, CurveStatus.CANCELLED)
    auction = get_interval(view, curve.interval_start)
    assert auction is not None
    remaining = tuple(i for i in auction.curves if i != curve.id)
    view.put(interval_key(curve.interval_start), msgspec.structs.replace(auction, curves=remaining))
    return [_curve_event("auction_curve_cancelled", closed), *refund]


# --- end of block -----------------------------------------------------------------------------
def end_block(view: Overlay, ctx: BlockContext, p: Params) -> list[Event]:
    """Cancel every auction whose clearing deadline passed without a clearing: each curve's
    escrow and offer go back to its owner. Touches only the open auctions' list."""
    intervals = active(view)
    if not intervals:
        return []
    a = auction_params(view)
    events: list[Event] = []
    still = set(intervals)
    for start in intervals:
        if ctx.time < gate(start, p, a) + a.clearing_deadline_seconds:
            continue
        refunds = [
            e for c in open_curves(view, start) for e in release(view, c, CurveStatus.VOID)[1]
        ]
        auction = get_interval(view, start) or AuctionInterval()
        view.put(interval_key(start), AuctionInterval(AuctionStatus.CANCELLED, auction.curves))
        still.discard(start)
        count = len(auction.curves)
        events += [Event("auction_cancelled", {"interval": start, "curves": count}), *refunds]
    if len(still) != len(intervals):
        set_active(view, still)
    return events
