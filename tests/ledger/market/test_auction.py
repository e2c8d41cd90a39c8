"""The day-ahead auction on the ledger: curves placed, amended and cancelled until the gate,
one certified clearing (solved off-chain by the node's HiGHS solver) turned into trades that
settle like continuous ones, refusals with their codes, and cancellation at the deadline.
Every accepted transaction is followed by the full invariant check (`Market.ok`)."""

from __future__ import annotations

from fractions import Fraction

import msgspec
import pytest

from gridtokenx.ledger.market import auction, auction_clearing, records
from gridtokenx.ledger.params import AUCTION_PARAMS_KEY, AuctionParams
from gridtokenx.node import auction_solver
from gridtokenx.wire import errors
from gridtokenx.wire.tx import (
    AmendAuctionCurve,
    CancelAuctionCurve,
    CurveStep,
    LicenceKind,
    ParticipantKind,
    PlaceAuctionCurve,
    PlaceOrder,
    Rational,
    Side,
    SubmitAuctionClearing,
)
from tests.conftest import DEFAULT_GENESIS_TIME, INTERVAL
from tests.ledger.market.test_market import Market

BUY, SELL = Side.BUY, Side.SELL
# The sandbox starts 2026-01-01 00:00 UTC (07:00 Bangkok). Delivery day 2 January (Bangkok)
# starts at 17:00 UTC; its auction gate is 12:00 Bangkok on 1 January = 05:00 UTC.
DAY2 = DEFAULT_GENESIS_TIME + 17 * 3600
GATE = DEFAULT_GENESIS_TIME + 5 * 3600
T = DAY2 + 8 * 3600  # 08:00 Bangkok on 2 January


class Auction(Market):
    def curve(
        self, who: object, side: Side, steps: list[tuple[int, int]], zone: str = "BKK"
    ) -> int:
        body = PlaceAuctionCurve(side, zone, T, tuple(CurveStep(p, q) for p, q in steps))
        events = self.ok(who, body)  # type: ignore[arg-type]
        return int(events[0].attrs["curve"])

    def get(self, curve_id: int) -> auction.AuctionCurve:
        found = self.sb.state.get(auction.curve_key(curve_id), auction.AuctionCurve)
        assert found is not None
        return found

    def to_gate(self) -> None:
        self.end_blocks_until(GATE)

    def solved(self) -> SubmitAuctionClearing:
        inst, _ = auction_clearing.instance(self.sb.state.overlay(), T, self.params)
        return auction_solver.solve(inst, T).body


@pytest.fixture
def au(sb: object) -> Auction:
    a = Auction(sb)
    a.grant(a.factory, LicenceKind.SELLER)
    return a


def _book(au: Auction) -> dict[str, int]:
    return {
        "home": au.curve(au.home, SELL, [(200, 600), (300, 600)]),
        "factory": au.curve(au.factory, SELL, [(250, 5_000), (450, 5_000)], zone="CEN"),
        "consumer": au.curve(au.consumer, BUY, [(400, 1_000), (320, 1_000)]),
        "office": au.curve(au.office, BUY, [(280, 3_000), (100, 1_000)]),
    }


# --- curves ------------------------------------------------------------------------------------
def test_a_buy_curve_escrows_every_step_and_a_sell_curve_counts_against_capacity(
    au: Auction,
) -> None:
    before = au.thb(au.consumer.address)
    ids = _book(au)
    # 400 + 0 fee + 30 wheeling, and 320 + 0 + 30.
    assert au.get(ids["consumer"]).escrow_satang == 430 + 350
    assert au.thb(au.consumer.address) == before - 780
    pos = au.sb.state.get(records.position_key(T, "BKK", au.home.address), records.Position)
    assert pos is not None and pos.offered_wh == 1_200
    # The home's 5 kW can export 1,250 Wh an interval: 1,200 are in the auction, so the
    # continuous market has 50 Wh left, and the other way round.
    au.end_blocks_until(T - 86_400)  # continuous trading in T opens
    au.rejects(
        au.home, PlaceOrder(SELL, "BKK", T, 100, 300), errors.SellCapacityExceeded,
        "SELL_CAPACITY_EXCEEDED",
    )  # fmt: skip


def test_amend_replaces_the_steps_and_rebalances_escrow_and_offer(au: Auction) -> None:
    ids = _book(au)
    au.ok(au.consumer, AmendAuctionCurve(ids["consumer"], (CurveStep(300, 500),)))
    assert au.get(ids["consumer"]).escrow_satang == 150 + 15
    au.ok(au.home, AmendAuctionCurve(ids["home"], (CurveStep(200, 100),)))
    pos = au.sb.state.get(records.position_key(T, "BKK", au.home.address), records.Position)
    assert pos is not None and pos.offered_wh == 100


def test_cancel_gives_back_the_escrow(au: Auction) -> None:
    before = au.thb(au.consumer.address)
    ids = _book(au)
    au.ok(au.consumer, CancelAuctionCurve(ids["consumer"]))
    assert au.thb(au.consumer.address) == before
    assert au.get(ids["consumer"]).status is auction.CurveStatus.CANCELLED


def _place(au: Auction, who: object, body: PlaceAuctionCurve, exc: type, code: str) -> None:
    au.rejects(who, body, exc, code)  # type: ignore[arg-type]


STEP = (CurveStep(300, 500),)


@pytest.mark.parametrize(
    ("body", "exc"),
    [
        (PlaceAuctionCurve(BUY, "XYZ", T, STEP), errors.UnknownZone),
        (PlaceAuctionCurve(BUY, "BKK", T + 1, STEP), errors.MisalignedInterval),
        (PlaceAuctionCurve(BUY, "BKK", T + 5 * 86_400, STEP), errors.AuctionNotOpen),
        (PlaceAuctionCurve(BUY, "BKK", T, (CurveStep(1_001, 500),)), errors.PriceOutOfBand),
        (PlaceAuctionCurve(BUY, "BKK", T, (CurveStep(300, 99),)), errors.QuantityBelowLot),
        (PlaceAuctionCurve(SELL, "BKK", T, (CurveStep(300, 1_300),)), errors.SellCapacityExceeded),
    ],
)
def test_place_refusals(au: Auction, body: PlaceAuctionCurve, exc: type[errors.Rejection]) -> None:
    _place(au, au.home, body, exc, exc.code)


def test_place_refusals_that_need_their_own_setup(au: Auction) -> None:
    _place(au, au.egat, PlaceAuctionCurve(BUY, "BKK", T, STEP), errors.NotAParticipant,
           "NOT_A_PARTICIPANT")  # fmt: skip
    poor = au.register("bkk-poor", "BKK", ParticipantKind.HOUSEHOLD)
    _place(au, poor, PlaceAuctionCurve(BUY, "BKK", T, STEP), errors.InsufficientBalance,
           "INSUFFICIENT_BALANCE")  # fmt: skip
    unlicensed = Auction(type(au.sb)())
    _place(unlicensed, unlicensed.factory, PlaceAuctionCurve(SELL, "CEN", T, STEP),
           errors.UnlicensedSeller, "UNLICENSED_SELLER")  # fmt: skip
    view = au.sb.state.overlay()
    view.put(AUCTION_PARAMS_KEY, AuctionParams(max_curves_per_interval=1))
    view.commit()
    au.curve(au.office, BUY, [(300, 500)])
    _place(au, au.consumer, PlaceAuctionCurve(BUY, "BKK", T, STEP), errors.InvalidCurve,
           "INVALID_CURVE")  # fmt: skip


def test_tick_is_checked_on_every_step() -> None:
    from tests.conftest import sandbox_with_params

    au = Auction(sandbox_with_params(tick_satang_per_kwh=10))
    body = PlaceAuctionCurve(BUY, "BKK", T, (CurveStep(300, 500), CurveStep(305, 500)))
    _place(au, au.consumer, body, errors.PriceNotOnTick, "PRICE_NOT_ON_TICK")


def test_amend_and_cancel_refusals(au: Auction) -> None:
    ids = _book(au)
    for body in (AmendAuctionCurve(999_999, STEP), CancelAuctionCurve(999_999)):
        au.rejects(au.consumer, body, errors.UnknownCurve, "UNKNOWN_CURVE")
    for body in (AmendAuctionCurve(ids["home"], STEP), CancelAuctionCurve(ids["home"])):
        au.rejects(au.consumer, body, errors.NotOrderOwner, "NOT_ORDER_OWNER")
    au.rejects(au.home, AmendAuctionCurve(ids["home"], (CurveStep(300, 1_300),)),
               errors.SellCapacityExceeded, "SELL_CAPACITY_EXCEEDED")  # fmt: skip
    au.rejects(au.consumer, AmendAuctionCurve(ids["consumer"], (CurveStep(1_000, 10**9),)),
               errors.InsufficientBalance, "INSUFFICIENT_BALANCE")  # fmt: skip
    au.ok(au.office, CancelAuctionCurve(ids["office"]))
    for body in (AmendAuctionCurve(ids["office"], STEP), CancelAuctionCurve(ids["office"])):
        au.rejects(au.office, body, errors.CurveNotOpen, "CURVE_NOT_OPEN")
    au.to_gate()
    au.rejects(au.consumer, AmendAuctionCurve(ids["consumer"], STEP), errors.AuctionGateClosed,
               "AUCTION_GATE_CLOSED")  # fmt: skip
    au.rejects(au.consumer, CancelAuctionCurve(ids["consumer"]), errors.AuctionGateClosed,
               "AUCTION_GATE_CLOSED")  # fmt: skip
    _place(au, au.consumer, PlaceAuctionCurve(BUY, "BKK", T, STEP), errors.AuctionGateClosed,
           "AUCTION_GATE_CLOSED")  # fmt: skip


# --- clearing ------------------------------------------------------------------------------------
def test_a_certified_clearing_trades_in_the_money_steps_and_settles(au: Auction) -> None:
    ids = _book(au)
    au.to_gate()
    body = au.solved()
    events = au.ok(au.egat, body)
    assert events[0].kind == "auction_cleared"
    prices = {z.zone: Fraction(z.price.num, z.price.den) for z in body.zones}
    # Every accepted step is in the money at its zone price; no rejected step is.
    for name, curve_id in ids.items():
        curve = au.get(curve_id)
        assert curve.status is auction.CurveStatus.CLEARED and curve.escrow_satang == 0, name
        for step, accepted in zip(curve.steps, curve.accepted_wh, strict=True):
            price = prices[curve.zone]
            if accepted:
                assert (step.price >= price) if curve.side is BUY else (step.price <= price)
            if accepted < step.quantity_wh - 1:
                assert (step.price <= price) if curve.side is BUY else (step.price >= price)
    trades = au.trades()
    # Central's 250 step sets both prices: 250 in CEN and 250 / 0.99 = 252.53 in Bangkok
    # over the uncongested 1 % link. The home's 200 step is in the money, its 300 step and
    # the office's 100 bid are not.
    assert prices == {**prices, "CEN": 250, "BKK": Fraction(25_000, 99)}
    assert sum(t.quantity_wh for t in trades if t.seller == au.home.address) == 600
    assert au.get(ids["home"]).accepted_wh == (600, 0)
    assert au.get(ids["office"]).accepted_wh == (3_000, 0)
    # Trades are at the seller zone's price rounded down: 250 for Central energy, 252 for
    # the home's (25000/99 = 252.53 in Bangkok).
    assert {(t.seller_zone, t.price) for t in trades} == {("CEN", 250), ("BKK", 252)}
    assert au.get(ids["consumer"]).accepted_wh == (1_000, 1_000)
    result = au.sb.state.get(auction.result_key(T), auction.AuctionResult)
    assert result is not None and result.cleared_by == "EGAT"
    au.rejects(au.mea, body, errors.AuctionAlreadyCleared, "AUCTION_ALREADY_CLEARED")
    # Settlement: the sellers deliver, meters report, and the interval settles like any other.
    au.end_blocks_until(T + INTERVAL)
    au.read(au.home_meter, T, export_wh=1_200)
    au.read(au.factory_meter, T, export_wh=10_000)
    au.read(au.consumer_meter, T, import_wh=2_000)
    au.sb.advance(1)
    settled = [t for t in au.trades() if t.settled]
    assert len(settled) == len(trades)
    assert sum(t.delivered_wh for t in settled) == sum(t.quantity_wh for t in trades)


def _corrupt_price(body: SubmitAuctionClearing, zone: str) -> SubmitAuctionClearing:
    """A price raised where no step is priced: still feasible, but the links into the zone
    would earn a rent the flows do not collect, so the dual exceeds the welfare."""
    zones = tuple(
        msgspec.structs.replace(z, price=Rational(z.price.num + 10**6 * z.price.den, z.price.den))
        if z.zone == zone
        else z
        for z in body.zones
    )
    return msgspec.structs.replace(body, zones=zones)


def test_clearing_refusals(au: Auction) -> None:
    _book(au)
    early = SubmitAuctionClearing(T, ())
    au.rejects(au.egat, early, errors.ClearingNotDue, "CLEARING_NOT_DUE")
    au.rejects(au.egat, SubmitAuctionClearing(T + INTERVAL, ()), errors.NoAuction, "NO_AUCTION")
    au.to_gate()
    body = au.solved()
    au.rejects(au.home, body, errors.Unauthorised, "UNAUTHORISED")
    au.rejects(au.egat, msgspec.structs.replace(body, zones=body.zones[1:]),
               errors.ClearingMalformed, "CLEARING_MALFORMED")  # fmt: skip
    au.rejects(au.egat, msgspec.structs.replace(body, flows=()), errors.ClearingInfeasible,
               "CLEARING_INFEASIBLE")  # fmt: skip
    au.rejects(
        au.egat, _corrupt_price(body, "EST"), errors.ClearingNotOptimal, "CLEARING_NOT_OPTIMAL"
    )
    au.ok(au.egat, body)


def test_an_auction_without_a_clearing_by_the_deadline_is_cancelled_and_refunded(
    au: Auction,
) -> None:
    before = {w: au.thb(w.address) for w in (au.consumer, au.office)}
    ids = _book(au)
    events = au.end_blocks_until(GATE + AuctionParams().clearing_deadline_seconds + 1)
    assert [e for e in events if e.kind == "auction_cancelled"]
    assert {w: au.thb(w.address) for w in before} == before
    assert all(au.get(i).status is auction.CurveStatus.VOID for i in ids.values())
    pos = au.sb.state.get(records.position_key(T, "BKK", au.home.address), records.Position)
    assert pos is not None and pos.offered_wh == 0
    au.rejects(au.egat, SubmitAuctionClearing(T, ()), errors.ClearingNotDue, "CLEARING_NOT_DUE")


def test_auction_parameters_are_governed_market_rules(au: Auction) -> None:
    """`auction.<field>` is a market-rule parameter (the ERC may veto it), stored in its own
    record; a bad value or name is refused like any parameter change."""
    from gridtokenx.ledger import governance
    from gridtokenx.wire.tx import ParamChange, ProposalKind

    assert governance._field_kind("auction.gate_lead_seconds") is ProposalKind.MARKET_RULE
    view = au.sb.state.overlay()
    governance._set_params(view, [ParamChange("auction.gate_lead_seconds", 6 * 3600)])
    assert auction.auction_params(view).gate_lead_seconds == 6 * 3600
    with pytest.raises(errors.InvalidParams):
        governance._set_params(view, [ParamChange("auction.clearing_deadline_seconds", 0)])
    with pytest.raises(errors.InvalidProposal):
        governance._set_params(view, [ParamChange("auction.no_such_field", 1)])
    # 18:00 Bangkok the day before: curves for 2 January are still open at 05:00 UTC.
    view.commit()
    au.end_blocks_until(GATE + 60)
    au.curve(au.office, BUY, [(300, 500)])


def test_amend_checks_every_step_like_a_new_curve(au: Auction) -> None:
    ids = _book(au)
    for steps, exc in (
        ((CurveStep(1_001, 500),), errors.PriceOutOfBand),
        ((CurveStep(300, 99),), errors.QuantityBelowLot),
    ):
        au.rejects(au.consumer, AmendAuctionCurve(ids["consumer"], steps), exc, exc.code)


def test_a_congested_link_separates_zone_prices(au: Auction) -> None:
    """EGAT reports both links into Bangkok (from CEN and from EST) at 4 kW, 1,000 Wh an
    interval: the clearing fills them (Central's energy also goes round through EST),
    Bangkok's price is set by its own bid and Central's by its own offer, far more apart
    than the losses; the links' flow records then hold the auction's trades, so continuous
    trading sees them full."""
    from gridtokenx.wire.tx import LinkStatus, TransmissionStatus

    au.curve(au.factory, SELL, [(250, 5_000)], zone="CEN")
    au.curve(au.home, SELL, [(300, 600)])
    au.curve(au.office, BUY, [(400, 3_000)])
    au.to_gate()
    links = (LinkStatus("BKK", "CEN", 4, 0), LinkStatus("BKK", "EST", 4, 0))
    au.ok(au.egat, TransmissionStatus(au.sb.time, 50_000, links))
    body = au.solved()
    au.ok(au.egat, body)
    prices = {z.zone: Fraction(z.price.num, z.price.den) for z in body.zones}
    assert (prices["BKK"], prices["CEN"]) == (400, 250)
    flows = {(f.from_zone, f.to_zone): Fraction(f.wh.num, f.wh.den) for f in body.flows}
    assert flows[("CEN", "BKK")] == flows[("EST", "BKK")] == 1_000
    assert flows[("CEN", "EST")] == Fraction(1_000 * 100, 98)  # 2 % lost on the way
    # Trades reserve the Wh their seller sent on every link of their path, as continuous
    # trades do: the direct link holds its 1,000 Wh; the path through EST books the 1,020
    # Wh sent in Central on both of its links, though 2 % is lost before EST->BKK
    # (docs/market.md §12: conservative for continuous trading, never above capacity
    # physically).
    used = {
        (a, b): au.sb.state.get(records.flow_key(T, a, b), records.FlowUsed)
        for a, b in (("CEN", "BKK"), ("CEN", "EST"), ("EST", "BKK"))
    }
    assert {k: v.wh for k, v in used.items() if v is not None} == {
        ("CEN", "BKK"): 1_000, ("CEN", "EST"): 1_020, ("EST", "BKK"): 1_020,
    }  # fmt: skip
