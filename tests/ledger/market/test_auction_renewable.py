"""Renewable-only bids in the day-ahead auction, on the ledger: a renewable-only bid is
served only by renewable offers (a seller whose producing meters in the zone are all
renewable, as for continuous sell orders) at the zone's renewable price, which rises above
the zone price only when renewable energy is short; the trades settle like any other.
Every accepted transaction is followed by the full invariant check (`Market.ok`)."""

from __future__ import annotations

from fractions import Fraction

import msgspec
import pytest

from gridtokenx.ledger.market import auction, queries
from gridtokenx.wire import errors
from gridtokenx.wire.tx import (
    AmendAuctionCurve,
    CurveStep,
    MeterKind,
    ParticipantKind,
    PlaceAuctionCurve,
    Rational,
    Side,
    SubmitAuctionClearing,
)
from tests.conftest import INTERVAL
from tests.ledger.market.test_auction import Auction, T

BUY, SELL = Side.BUY, Side.SELL


class Renewable(Auction):
    def __init__(self, sb: object) -> None:
        super().__init__(sb)
        # A Bangkok cogeneration plant: 8 kW, 2,000 Wh an interval, not renewable.
        self.cogen = self.register("bkk-cogen", "BKK", ParticipantKind.INDUSTRIAL)
        self.cogen_meter = self.add_meter(
            "bkk-cogen", self.cogen, "BKK", MeterKind.COGENERATION, 8_000
        )

    def bid(self, who: object, steps: list[tuple[int, int]], renewable_only: bool) -> int:
        body = PlaceAuctionCurve(
            BUY, "BKK", T, tuple(CurveStep(p, q) for p, q in steps), renewable_only
        )
        return int(self.ok(who, body)[0].attrs["curve"])  # type: ignore[arg-type]


@pytest.fixture
def re(sb: object) -> Renewable:
    return Renewable(sb)


def _prices(body: SubmitAuctionClearing) -> tuple[dict[str, Fraction], dict[str, Fraction]]:
    zone = {z.zone: Fraction(z.price.num, z.price.den) for z in body.zones}
    green = {
        z.zone: zone[z.zone]
        if z.green_price is None
        else Fraction(z.green_price.num, z.green_price.den)
        for z in body.zones
    }
    return zone, green


def test_a_renewable_only_bid_is_served_by_solar_while_cheaper_gas_serves_the_rest(
    re: Renewable,
) -> None:
    """Gas offers 1,000 Wh at 150, the home's solar 500 Wh at 300; the office bids 500 Wh
    at 400 for renewable energy only, the consumer 1,000 Wh at 200 for any. Renewable
    energy is short: the office buys the solar at the renewable price 300 (the lowest that
    clears it), the consumer the gas at Bangkok's price 175 (the midpoint of 150-200).
    The curves say which is which, the trades settle like any other."""
    gas = re.curve(re.cogen, SELL, [(150, 1_000)])
    solar = re.curve(re.home, SELL, [(300, 500)])
    green_bid = re.bid(re.office, [(400, 500)], renewable_only=True)
    plain_bid = re.bid(re.consumer, [(200, 1_000)], renewable_only=False)
    assert (re.get(gas).renewable, re.get(solar).renewable) == (False, True)
    assert (re.get(green_bid).renewable_only, re.get(plain_bid).renewable_only) == (True, False)
    re.to_gate()
    body = re.solved()
    events = re.ok(re.egat, body)
    zone, green = _prices(body)
    assert (zone["BKK"], green["BKK"]) == (175, 300)
    assert events[0].attrs["renewable_prices"].split()[0] == "BKK:300/1"
    trades = {(t.seller, t.buyer): (t.quantity_wh, t.price) for t in re.trades()}
    assert trades == {
        (re.home.address, re.office.address): (500, 300),
        (re.cogen.address, re.consumer.address): (1_000, 175),
    }
    assert re.get(green_bid).accepted_wh == (500,) and re.get(gas).accepted_wh == (1_000,)
    # Settlement: delivered in full, every trade settles.
    re.end_blocks_until(T + INTERVAL)
    re.read(re.home_meter, T, export_wh=500)
    re.read(re.cogen_meter, T, export_wh=1_000)
    re.read(re.consumer_meter, T, import_wh=1_000)
    re.sb.advance(1)
    assert all(t.settled and t.delivered_wh == t.quantity_wh for t in re.trades())
    # The office received 500 Wh of renewable energy (a local trade: no losses); the gas
    # is not renewable.
    received = {t.seller: queries.renewable_received_wh(re.sb.state, t) for t in re.trades()}
    assert received == {re.home.address: 500, re.cogen.address: None}


def test_when_renewable_energy_is_not_short_both_prices_are_equal(re: Renewable) -> None:
    """The solar offer (1,200 Wh at 120) covers the renewable-only bid with 700 Wh to
    spare, which serves the consumer before the gas: gas is accepted in part, both prices
    are its 150, and the solar earns 150 on every Wh whichever bid it serves."""
    gas = re.curve(re.cogen, SELL, [(150, 1_000)])
    re.curve(re.home, SELL, [(120, 1_200)])
    re.bid(re.office, [(400, 500)], renewable_only=True)
    re.bid(re.consumer, [(200, 1_000)], renewable_only=False)
    re.to_gate()
    body = re.solved()
    re.ok(re.egat, body)
    zone, green = _prices(body)
    assert zone["BKK"] == green["BKK"] == 150
    assert all(z.green_price is None for z in body.zones)  # nothing to say
    assert re.get(gas).accepted_wh == (300,)
    sold = {}
    for t in re.trades():
        sold[(t.seller, t.buyer)] = sold.get((t.seller, t.buyer), 0) + t.quantity_wh
        assert t.price == 150
    assert sold == {
        (re.home.address, re.office.address): 500,
        (re.home.address, re.consumer.address): 700,
        (re.cogen.address, re.consumer.address): 300,
    }


def test_renewable_only_is_for_bids_and_survives_an_amendment(re: Renewable) -> None:
    body = PlaceAuctionCurve(SELL, "BKK", T, (CurveStep(300, 500),), renewable_only=True)
    re.rejects(re.home, body, errors.InvalidCurve, "INVALID_CURVE")
    bid = re.bid(re.office, [(400, 500)], renewable_only=True)
    re.ok(re.office, AmendAuctionCurve(bid, (CurveStep(350, 600),)))
    assert re.get(bid).renewable_only and re.get(bid).steps == (CurveStep(350, 600),)


def test_a_clearing_with_a_wrong_renewable_price_is_refused(re: Renewable) -> None:
    re.curve(re.cogen, SELL, [(150, 1_000)])
    re.curve(re.home, SELL, [(300, 500)])
    re.bid(re.office, [(400, 500)], renewable_only=True)
    re.bid(re.consumer, [(200, 1_000)], renewable_only=False)
    re.to_gate()
    body = re.solved()
    # 320 is optimal too, but not the lowest; none (the zone price, 175) leaves the
    # renewable-only bid without renewable energy. The solar's share at 300 goes with it.
    for price, exc in (
        (Rational(320, 1), errors.ClearingNotOptimal),
        (None, errors.ClearingInfeasible),
    ):
        zones = tuple(
            msgspec.structs.replace(z, green_price=price, green_sell_ratio=None)
            if z.zone == "BKK"
            else z
            for z in body.zones
        )
        re.rejects(re.egat, msgspec.structs.replace(body, zones=zones), exc, exc.code)
    re.ok(re.egat, body)
    assert re.sb.state.get(auction.result_key(T), auction.AuctionResult) is not None
