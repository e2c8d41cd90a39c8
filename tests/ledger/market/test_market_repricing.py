"""Market bookkeeping under changes made after an order or trade: a party whose trades a
capacity cut took away and who trades again, and fee or wheeling rates that governance raises
while a bid rests or a trade waits for settlement. Every fact is read back from the ledger;
`Market.ok` checks all invariants (escrow, conservation, supply) after each transaction."""

from __future__ import annotations

import pytest

from gridtokenx.ledger.market import bookkeeping, records
from gridtokenx.wire.tx import (
    LinkStatus,
    ParamChange,
    PlaceOrder,
    ProposalKind,
    Side,
    TransmissionStatus,
)
from tests.ledger.market.test_market import INTERVAL, Market, licensed_factory, trade_events
from tests.ledger.test_governance import YES, finish, governed_sandbox, propose, vote

BUY, SELL = Side.BUY, Side.SELL
NORMAL_HZ = 50_000


@pytest.fixture
def gm() -> Market:
    """A market whose governance acts within a few blocks (3 to vote, 2 of timelock)."""
    return Market(governed_sandbox())


def raise_rates(mk: Market, fee_bp: int, wheeling: int) -> None:
    """Pass and execute a market-rule vote setting the platform fee and wheeling rate."""
    pid = propose(
        mk,
        mk.egat,
        ProposalKind.MARKET_RULE,
        ParamChange("platform_fee_basis_points", fee_bp),
        ParamChange("wheeling_satang_per_kwh", wheeling),
    )
    vote(mk, pid, (mk.egat, YES), (mk.mea, YES), (mk.pea, YES), (mk.erc, YES))
    finish(mk, pid)
    assert (mk.params.platform_fee_basis_points, mk.params.wheeling_satang_per_kwh) == (
        fee_bp,
        wheeling,
    )


def settle(mk: Market, *readings: tuple[object, int]) -> list[object]:
    """Deliver T, report each (meter, export) and end the block that settles it."""
    mk.end_blocks_until(mk.T + INTERVAL)
    for meter, export in readings:
        mk.read(meter, mk.T, export_wh=export)  # type: ignore[arg-type]
    events = mk.sb.advance(1)
    assert "interval_settled" in [e.kind for e in events]
    return events


def test_a_party_cut_to_nothing_that_trades_again_is_listed_and_settled_once(gm: Market) -> None:
    mk = gm
    licensed_factory(mk)
    mk.place(mk.factory, SELL, 1_000, 300, zone="CEN")
    [first] = trade_events(mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 400)))
    cut = TransmissionStatus(mk.sb.time, NORMAL_HZ, (LinkStatus("BKK", "CEN", 0, 0),))
    assert any(e.kind == "trade_curtailed" for e in mk.ok(mk.egat, cut))
    view = mk.sb.state.overlay()
    assert bookkeeping.position(view, mk.T, "CEN", mk.factory.address).sold_wh == 0
    # The link comes back; the factory offers again and trades with another Bangkok buyer.
    back = TransmissionStatus(mk.sb.time + 1, NORMAL_HZ, (LinkStatus("BKK", "CEN", 800, 0),))
    mk.ok(mk.egat, back)
    mk.place(mk.factory, SELL, 1_000, 300, zone="CEN")
    [second] = trade_events(mk.ok(mk.buyer2, PlaceOrder(BUY, "BKK", mk.T, 1_000, 400)))
    view = mk.sb.state.overlay()
    market = bookkeeping.interval_market(view, mk.T)
    assert market is not None
    parties = bookkeeping.interval_parties(view, mk.T, market)
    assert len(parties) == len(set(parties)) == 3  # factory, office, buyer2: once each
    factory_thb = mk.thb(mk.factory.address)
    settle(mk, (mk.factory_meter, 1_000))
    by_id = {t.id: t for t in mk.trades()}
    assert by_id[first.attrs["trade"]].delivered_wh == 0  # curtailed to nothing
    assert by_id[second.attrs["trade"]].delivered_wh == 1_000
    assert mk.thb(mk.factory.address) == factory_thb + bookkeeping.value_satang(1_000, 300)
    report = mk.sb.state.get(records.report_key(mk.T, "CEN"), records.ZoneReport)
    assert report is not None
    assert (report.export_wh, report.delivered_wh, report.sold_to_utility_wh) == (1_000, 1_000, 0)


def test_rates_raised_while_a_bid_rests_share_its_escrow_and_sellers_are_paid_in_full(
    gm: Market,
) -> None:
    mk = gm
    bid = mk.place(mk.office, BUY, 1_000, 400)
    escrow = mk.order(bid).escrow_satang
    assert escrow == bookkeeping.buyer_cost_satang(1_000, 400, mk.params) == 400 + 0 + 30
    office_thb = mk.thb(mk.office.address)
    raise_rates(mk, fee_bp=5_000, wheeling=600)  # 50 % fee and 0.60 THB/kWh, far above
    # Half the bid at today's rates would cost 200 + 100 + 300: the fill takes what it can
    # and leaves the rest's value (200) in escrow, so the second fill's seller is paid too.
    [t1] = trade_events(mk.ok(mk.home, PlaceOrder(SELL, "BKK", mk.T, 500, 400)))
    rest = mk.order(bid)
    assert rest.remaining_wh == 500
    assert rest.escrow_satang == bookkeeping.value_satang(500, 400)
    [t2] = trade_events(mk.ok(mk.home, PlaceOrder(SELL, "BKK", mk.T, 500, 400)))
    trades = {t.id: t for t in mk.trades()}
    held = trades[t1.attrs["trade"]].escrow_satang + trades[t2.attrs["trade"]].escrow_satang
    assert held == escrow and mk.thb(mk.office.address) == office_thb  # nothing more taken
    home_thb = mk.thb(mk.home.address)
    settle(mk, (mk.home_meter, 1_000))
    assert mk.thb(mk.home.address) == home_thb + 400  # both fills' value, in full
    report = mk.sb.state.get(records.report_key(mk.T, "BKK"), records.ZoneReport)
    assert report is not None
    # The charges took what was left of the escrow, fee first, then wheeling; no refund.
    assert report.paid_by_buyers_satang == escrow and report.refunded_satang == 0
    assert (report.platform_fees_satang, report.wheeling_satang) == (30, 0)


def test_rates_raised_before_settlement_are_capped_at_the_trade_escrow(gm: Market) -> None:
    mk = gm
    mk.place(mk.home, SELL, 1_000, 300)
    [t] = trade_events(mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 300)))
    trade_escrow = mk.trades()[0].escrow_satang
    assert trade_escrow == 300 + 0 + 30  # value, 0.1 % fee rounds to 0, 0.30 THB/kWh wheeling
    raise_rates(mk, fee_bp=100, wheeling=600)  # 1 % fee (3) and 0.60 THB/kWh (600)
    home_thb = mk.thb(mk.home.address)
    settle(mk, (mk.home_meter, 1_000))
    assert mk.trades()[0].delivered_wh == 1_000 and t.attrs["quantity_wh"] == 1_000
    assert mk.thb(mk.home.address) == home_thb + 300
    report = mk.sb.state.get(records.report_key(mk.T, "BKK"), records.ZoneReport)
    assert report is not None
    assert (report.platform_fees_satang, report.wheeling_satang) == (3, 27)
    assert (report.paid_by_buyers_satang, report.refunded_satang) == (trade_escrow, 0)
