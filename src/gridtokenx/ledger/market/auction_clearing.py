"""Accepting a day-ahead clearing: read the auction from state, check its certificate
(clearing.py), and turn the accepted steps into ordinary trades that settle like
continuous ones.

Trades need a buyer, a seller and a path, while the clearing gives quantities per step and
flows per link. The accepted energy is traced through the zones in the order of the flows
(a zone's flows out are served after its imports arrived): in each zone the accepted sell
steps, cheapest first, and the energy imported, in arrival order, serve the zone's accepted
buy steps, dearest first, and then its flows out. Each piece becomes a trade at the seller
zone's price (rounded down to a whole satang/kWh, so the seller's step stays in the money)
along the path it travelled, with that path's compounded loss. Whole Wh are traded: each
step's accepted quantity is rounded down and a path's loss rounds against the buyer, as
in continuous trading, so the trades fall short of the exact clearing by a few Wh at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import floor

import msgspec

from gridtokenx.ledger import accounts, registry
from gridtokenx.ledger.context import BlockContext, Event, EventValue
from gridtokenx.ledger.grid import records as grid
from gridtokenx.ledger.market import auction, bookkeeping, clearing, paths, records, trading
from gridtokenx.ledger.market.auction import (
    AuctionCurve,
    AuctionInterval,
    AuctionStatus,
    CurveStatus,
)
from gridtokenx.ledger.market.clearing import Instance, Link, Step
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import Overlay
from gridtokenx.wire import errors
from gridtokenx.wire.tx import Asset, Side, SubmitAuctionClearing

BASIS = paths.BASIS


def instance(view: Overlay, start: int, p: Params) -> tuple[Instance, list[AuctionCurve]]:
    """The interval's auction as the certificate is checked against it: every zone, both
    directions of every interconnector with the room continuous trading leaves it, each
    zone's import headroom where its distributor reported one, and the open curves' steps."""
    index = registry.zone_index(view)
    links = []
    for a, b in index.links:
        link = view.get(registry.interconnector_key(a, b), registry.Interconnector)
        capacity = grid.link_capacity_kw(view, a, b)
        if link is None or capacity is None or capacity <= 0:
            continue
        for x, y in ((a, b), (b, a)):
            room = paths.link_room_wh(view, start, x, y, p.interval_seconds)
            links.append(Link(x, y, link.loss_basis_points, max(room, 0)))
    links.sort(key=lambda link: (link.from_zone, link.to_zone))
    headroom = {}
    for zone in index.zones:
        limit = grid.import_room_wh(view, start, zone, p.interval_seconds)
        if limit is not None:
            headroom[zone] = max(limit, 0)
    curves = auction.open_curves(view, start)
    steps = tuple(
        Step(c.id, i, c.side, c.zone, s.price, s.quantity_wh, c.green)
        for c in curves
        for i, s in enumerate(c.steps)
    )
    return Instance(tuple(sorted(index.zones)), tuple(links), headroom, steps), curves


def submit_clearing(
    view: Overlay, ctx: BlockContext, sender: bytes, body: SubmitAuctionClearing, p: Params
) -> list[Event]:
    """Any authority may submit: the certificate is checked in full, so who solved it does
    not matter, and limiting it to authorities bounds the checking work others can cause."""
    authority = registry.authority_of(view, sender)
    if authority is None:
        raise errors.Unauthorised("only an authority submits an auction clearing")
    start = body.interval_start
    found = auction.get_interval(view, start)
    if found is None or not found.curves:
        raise errors.NoAuction(f"no auction curves for interval {start}")
    if found.status is AuctionStatus.CLEARED:
        raise errors.AuctionAlreadyCleared(f"the auction of {start} is cleared")
    a = auction.auction_params(view)
    opens = auction.gate(start, p, a)
    closes = min(opens + a.clearing_deadline_seconds, trading.gate_closure(start, p))
    if found.status is AuctionStatus.CANCELLED or not opens <= ctx.time < closes:
        raise errors.ClearingNotDue(f"the auction of {start} clears between {opens} and {closes}")
    inst, curves = instance(view, start, p)
    checked = clearing.check(inst, body.zones, body.flows)
    tracer = _Tracer(view, ctx, start, checked, curves, p)
    trades = tracer.run(inst)
    view.put(auction.interval_key(start), AuctionInterval(AuctionStatus.CLEARED, found.curves))
    view.put(
        auction.result_key(start),
        auction.AuctionResult(
            body,
            checked.welfare.numerator,
            checked.welfare.denominator,
            ctx.height,
            authority.code,
            tuple(t.id for t in trades),
        ),
    )
    auction.set_active(view, set(auction.active(view)) - {start})
    events = [
        Event(
            "auction_cleared",
            {
                "interval": start,
                "welfare_satang": floor(checked.welfare / 1000),
                "prices": " ".join(
                    f"{z}:{p.numerator}/{p.denominator}" for z, p in checked.prices.items()
                ),
                "renewable_prices": " ".join(
                    f"{z}:{p.numerator}/{p.denominator}" for z, p in checked.green_prices.items()
                ),
                "trades": len(trades),
                "by": authority.code,
            },
        )
    ]
    return events + [trading.trade_event(t) for t in trades] + tracer.refunds


def _flow_order(inst: Instance, flows: dict[tuple[str, str], Fraction]) -> list[str]:
    """Zones so that every flow of one commodity goes from an earlier zone to a later one (a
    clearing whose flows go round in a circle is refused: its energy could not be traced to
    buyers)."""
    into = {z: 0 for z in inst.zones}
    for _, b in flows:
        into[b] += 1
    ready = sorted(z for z, n in into.items() if n == 0)
    order = []
    while ready:
        zone = ready.pop(0)
        order.append(zone)
        for a, b in sorted(flows):
            if a == zone:
                into[b] -= 1
                if into[b] == 0:
                    ready = sorted([*ready, b])
    if len(order) != len(inst.zones):
        raise errors.ClearingMalformed("the flows go round in a cycle")
    return order


@dataclass
class _Parcel:
    curve: AuctionCurve
    path: tuple[str, ...]
    losses: tuple[int, ...]
    sent: int  # Wh the seller still sends in this parcel

    @property
    def keep(self) -> int:
        return BASIS - paths.compound_loss(list(self.losses))


class _Tracer:
    """Walks the energy from accepted sell steps to accepted buy steps (module docstring)."""

    def __init__(
        self,
        view: Overlay,
        ctx: BlockContext,
        start: int,
        checked: clearing.Checked,
        curves: list[AuctionCurve],
        p: Params,
    ) -> None:
        self.view, self.ctx, self.start, self.checked, self.p = view, ctx, start, checked, p
        self.curves = curves
        self.pool = {c.id: c.escrow_satang for c in curves if c.side is Side.BUY}
        self.inbox: dict[tuple[str, bool], list[_Parcel]] = {}
        self.trades: list[records.Trade] = []
        self.refunds: list[Event] = []  # what each buy curve's trades left, back to its owner
        for zone in sorted({c.zone for c in curves}):  # every trade is between these zones
            self.market = bookkeeping.ensure_interval(view, start, zone)

    def _accepted(self, curve: AuctionCurve) -> tuple[int, ...]:
        return tuple(
            floor(
                self.checked.accepted(
                    Step(curve.id, i, curve.side, curve.zone, s.price, s.quantity_wh, curve.green)
                )
            )
            for i, s in enumerate(curve.steps)
        )

    def run(self, inst: Instance) -> list[records.Trade]:
        """Renewable energy first: in each zone it serves the renewable-only bids, then the
        renewable part of the flows out, and what it leaves (the downgrade) joins the
        zone's other energy for the other bids and flows out."""
        loss = {(link.from_zone, link.to_zone): link.loss_bp for link in inst.links}
        accepted = {c.id: self._accepted(c) for c in self.curves}

        def sells(zone: str, green: bool) -> list[_Parcel]:
            return [
                _Parcel(c, (zone,), (), wh)
                for price, cid, i, c, wh in sorted(
                    (c.steps[i].price, c.id, i, c, wh)
                    for c in self.curves
                    if c.side is Side.SELL and c.zone == zone and c.green == green
                    for i, wh in enumerate(accepted[c.id])
                    if wh
                )
            ]

        def buys(zone: str, green: bool) -> list[tuple[AuctionCurve, int]]:
            found = sorted(
                (-c.steps[i].price, c.id, i, c, wh)
                for c in self.curves
                if c.side is Side.BUY and c.zone == zone and c.green == green
                for i, wh in enumerate(accepted[c.id])
                if wh
            )
            return [(curve, wh) for _, _, _, curve, wh in found]

        green_flows = self.checked.green_flows
        ordinary_flows = {
            pair: sent - green_flows.get(pair, Fraction(0))
            for pair, sent in self.checked.flows.items()
            if sent > green_flows.get(pair, Fraction(0))
        }
        # Renewable energy never depends on other energy, so it is traced first, in its own
        # flow order; what a zone's renewable energy leaves over then joins that zone's
        # other energy, traced in the other flows' order.
        left: dict[str, list[_Parcel]] = {}
        for zone in _flow_order(inst, green_flows):
            queue = sells(zone, True) + self.inbox.pop((zone, True), [])
            for curve, wh in buys(zone, True):
                self._serve(queue, wh, curve, None, 0, True)
            for (a, b), sent in sorted(green_flows.items()):
                if a == zone:
                    self._serve(queue, floor(sent), None, b, loss[(a, b)], True)
            left[zone] = queue
        for zone in _flow_order(inst, ordinary_flows):
            queue = sells(zone, False) + self.inbox.pop((zone, False), []) + left[zone]
            for curve, wh in buys(zone, False):
                self._serve(queue, wh, curve, None, 0, False)
            for (a, b), sent in sorted(ordinary_flows.items()):
                if a == zone:
                    self._serve(queue, floor(sent), None, b, loss[(a, b)], False)
        for curve in self.curves:
            self._close(curve, accepted[curve.id])
        self.view.put(records.interval_key(self.start), self.market)
        return self.trades

    def _serve(
        self,
        queue: list[_Parcel],
        need: int,
        buyer: AuctionCurve | None,
        to: str | None,
        loss: int,
        green: bool,
    ) -> None:
        """Take `need` Wh (received in this zone) from the front of the queue, for a buy step
        (trades) or for a flow out of the commodity `green` (parcels moved on to the next
        zone). A trade is at its seller's price: the renewable price for a renewable offer,
        whichever bid it serves."""
        while need > 0 and queue:
            parcel = queue[0]
            keep = parcel.keep
            if keep == 0:  # a path that loses everything delivers nothing
                queue.pop(0)
                continue
            take = min(parcel.sent, -(-need * BASIS // keep))
            if buyer is not None:
                price = floor(self.checked.price(parcel.path[0], parcel.curve.green))
                if price:
                    take = min(take, self.pool[buyer.id] * 1000 // price)
                if take <= 0:
                    return  # the curve's escrow is spent
                self._trade(buyer, parcel, take, price)
            else:
                assert to is not None
                moved = _Parcel(parcel.curve, (*parcel.path, to), (*parcel.losses, loss), take)
                self.inbox.setdefault((to, green), []).append(moved)
            parcel.sent -= take
            if parcel.sent == 0:
                queue.pop(0)
            need -= min(need, take * keep // BASIS)

    def _trade(self, buyer: AuctionCurve, parcel: _Parcel, q: int, price: int) -> None:
        seller, view = parcel.curve, self.view
        cost = min(bookkeeping.buyer_cost_satang(q, price, self.p), self.pool[buyer.id])
        self.pool[buyer.id] -= cost
        path = paths.Path(parcel.path, paths.compound_loss(list(parcel.losses)))
        trade = records.Trade(
            id=bookkeeping.next_id(view),
            interval_start=self.start,
            buy_order=buyer.id,
            sell_order=seller.id,
            buyer=buyer.owner,
            seller=seller.owner,
            buyer_zone=buyer.zone,
            seller_zone=seller.zone,
            quantity_wh=q,
            price=price,
            loss_bp=path.loss_bp,
            path=path.zones,
            escrow_satang=cost,
            height=self.ctx.height,
            time=self.ctx.time,
        )
        view.put(records.trade_key(trade.id), trade)
        first = []
        for who, zone in ((buyer.owner, buyer.zone), (seller.owner, seller.zone)):
            listed = bookkeeping.position(view, self.start, zone, who).listed
            if not listed and (who, zone) not in first:
                first.append((who, zone))
        self.market = bookkeeping.record_trade(view, self.market, trade, first)
        if len(path.zones) > 1:
            paths.reserve(view, path, self.start, q)
        bookkeeping.update_position(view, self.start, seller.zone, seller.owner, sold_wh=q)
        bookkeeping.update_position(view, self.start, buyer.zone, buyer.owner, bought_wh=q)
        self.trades.append(trade)

    def _close(self, curve: AuctionCurve, accepted: tuple[int, ...]) -> None:
        """The curve's offer is released whole (its trades count as sold) and what its
        trades did not take from a buy's escrow is refunded."""
        left = curve.escrow_satang if curve.side is Side.SELL else self.pool[curve.id]
        if curve.side is Side.BUY:
            ref: dict[str, EventValue] = {"curve": curve.id, "escrow_satang": 0}
            self.refunds += bookkeeping.move_escrow(
                self.view, accounts.ESCROW_ADDRESS, curve.owner, Asset.THB, left, "auction", ref
            )
        if curve.side is Side.SELL:
            bookkeeping.update_position(
                self.view, self.start, curve.zone, curve.owner, offered_wh=-curve.quantity_wh
            )
        closed = msgspec.structs.replace(
            curve, status=CurveStatus.CLEARED, escrow_satang=0, accepted_wh=accepted
        )
        self.view.put(auction.curve_key(curve.id), closed)
