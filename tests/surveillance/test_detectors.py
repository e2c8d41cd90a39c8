"""Each detector with its pattern injected, and with a near-miss that must not fire."""

from __future__ import annotations

import pytest

from gridtokenx.surveillance import Detector, SurveillanceSettings
from gridtokenx.surveillance.scope import Scope
from gridtokenx.surveillance.settings import load
from tests.surveillance.exchange import INTERVAL, Exchange, T, address


def fired(ex: Exchange, detector: Detector) -> list[tuple[str, ...]]:
    return [a.accounts for a in ex.alerts if a.detector is detector]


def early(ex: Exchange) -> None:
    """A few honest trades early in the interval's window: a reference price of 300."""
    for n in range(3):
        sell = ex.place(f"seller-{n}", "SELL", 2_000, 300)
        buy = ex.place(f"buyer-{n}", "BUY", 2_000, 320)
        ex.trade(buy, sell, 2_000, 300)
    ex.commit(T - 900)


# --- wash trading -------------------------------------------------------------------------
def circle(ex: Exchange, ring: list[str], qty: int = 5_000) -> None:
    for seller, buyer in zip(ring, ring[1:] + ring[:1], strict=True):
        sell = ex.place(seller, "SELL", qty, 250)
        buy = ex.place(buyer, "BUY", qty, 250)
        ex.trade(buy, sell, qty, 250)


def test_a_funded_ring_trading_in_a_circle_is_flagged_with_its_trades_and_funding() -> None:
    ex = Exchange()
    ex.transfer("ring-a", "ring-b", 50_000)
    ex.transfer("ring-a", "ring-c", 50_000)
    ex.commit(T - 1_000)
    early(ex)
    circle(ex, ["ring-a", "ring-b", "ring-c"])
    ex.commit(T - 800)
    ex.close_and_settle()
    [alert] = [a for a in ex.alerts if a.detector is Detector.WASH]
    assert set(alert.accounts) == {address(x) for x in ("ring-a", "ring-b", "ring-c")}
    assert alert.score == 10_000  # all the group's volume went round
    kinds = [e.kind for e in alert.evidence]
    assert kinds.count("trade") == 3 and kinds.count("transfer") == 2
    assert all(len(e.tx_hash) == 64 and e.height > 0 for e in alert.evidence)


def test_the_same_circle_among_unlinked_accounts_is_not_wash_trading() -> None:
    ex = Exchange()
    early(ex)
    circle(ex, ["d", "e", "f"])
    for n, who in enumerate(("d", "e", "f")):  # each also trades with others: no exclusivity
        sell = ex.place(f"other-{n}", "SELL", 20_000, 260)
        ex.trade(ex.place(who, "BUY", 20_000, 260), sell, 20_000, 260)
    ex.commit(T - 800)
    ex.close_and_settle()
    assert fired(ex, Detector.WASH) == []


def test_funded_accounts_trading_one_way_are_not_flagged() -> None:
    ex = Exchange()
    ex.transfer("parent", "subsidiary", 50_000)
    ex.commit(T - 1_000)
    sell = ex.place("parent", "SELL", 5_000, 250)
    ex.trade(ex.place("subsidiary", "BUY", 5_000, 250), sell, 5_000, 250)
    ex.commit(T - 800)
    ex.close_and_settle()
    assert fired(ex, Detector.WASH) == []


def test_accounts_trading_only_with_each_other_are_linked() -> None:
    ex = Exchange()
    for k in range(2):  # two earlier intervals of exclusive one-way trades
        at = T - (2 - k) * INTERVAL
        for _ in range(2):
            sell = ex.place("x", "SELL", 3_000, 250, interval=at)
            ex.trade(ex.place("y", "BUY", 3_000, 250, interval=at), sell, 3_000, 250)
        ex.commit(at - 800)
    circle(ex, ["x", "y"])
    ex.commit(T - 800)
    ex.close_and_settle()
    assert fired(ex, Detector.WASH) == [(address("x"), address("y"))] or fired(
        ex, Detector.WASH
    ) == [(address("y"), address("x"))]


# --- spoofing ------------------------------------------------------------------------------
def spoof_setup(ex: Exchange, *, opposite: bool, price: int = 280) -> int:
    ex.place("honest-bid", "BUY", 2_000, 300)
    ex.commit(T - 890)
    spoof = ex.place("spoofer", "BUY", 30_000, price)
    if opposite:
        ask = ex.place("spoofer", "SELL", 2_000, 310)
        ex.trade(ex.place("lured", "BUY", 2_000, 310), ask, 2_000, 310)
    ex.commit(T - 880)
    ex.cancel(spoof)
    ex.commit(T - 600)
    return spoof


def test_a_large_bid_behind_the_touch_cancelled_after_an_opposite_fill_is_spoofing() -> None:
    ex = Exchange()
    spoof = spoof_setup(ex, opposite=True)
    ex.close_and_settle()
    [alert] = [a for a in ex.alerts if a.detector is Detector.SPOOFING]
    assert alert.accounts == (address("spoofer"),)
    assert {(e.kind, e.id) for e in alert.evidence} >= {("order", spoof), ("cancel", spoof)}
    assert any(e.kind == "trade" for e in alert.evidence)
    assert alert.score == 7_500 and alert.zone == "BKK"


def test_a_large_cancel_without_an_opposite_fill_or_churn_is_not_spoofing() -> None:
    ex = Exchange()
    spoof_setup(ex, opposite=False)
    ex.close_and_settle()
    assert fired(ex, Detector.SPOOFING) == []


def test_a_large_bid_at_the_touch_is_not_away_from_it() -> None:
    ex = Exchange()
    spoof_setup(ex, opposite=True, price=300)  # level with the best other bid
    ex.close_and_settle()
    assert fired(ex, Detector.SPOOFING) == []


def test_layering_with_many_cancelled_orders_is_flagged_by_the_order_to_trade_ratio() -> None:
    ex = Exchange()
    ex.place("honest-bid", "BUY", 2_000, 300)
    ex.commit(T - 890)
    layers = [ex.place("layerer", "BUY", 10_000, 290 - 5 * n) for n in range(5)]
    ex.commit(T - 880)
    for oid in layers:
        ex.cancel(oid)
    ex.commit(T - 600)
    ex.close_and_settle()
    [alert] = [a for a in ex.alerts if a.detector is Detector.SPOOFING]
    assert alert.score == 7_500 and "5 large orders (50000 Wh)" in alert.summary


# --- marking the gate ------------------------------------------------------------------------
def late_trade(ex: Exchange, price: int, qty: int = 3_000) -> None:
    ask = ex.place("late-ask", "SELL", qty, price)
    ex.commit(T - 700)
    ex.trade(ex.place("marker", "BUY", qty, price), ask, qty, price)
    ex.commit(T - 300 - 60)  # a minute before gate closure


def test_a_late_trade_far_from_the_earlier_price_marks_the_gate() -> None:
    ex = Exchange()
    early(ex)
    late_trade(ex, 400)
    ex.close_and_settle()
    [alert] = [a for a in ex.alerts if a.detector is Detector.MARKING]
    assert alert.accounts == (address("marker"),)
    assert "at 400 satang/kWh against 300" in alert.summary
    assert alert.score == 10_000  # 33 % away: more than twice the 10 % threshold


def test_a_late_trade_near_the_earlier_price_is_not_marking() -> None:
    ex = Exchange()
    early(ex)
    late_trade(ex, 320)  # 6.7 % away
    ex.close_and_settle()
    assert fired(ex, Detector.MARKING) == []


def test_the_same_trade_well_before_the_gate_is_not_late() -> None:
    ex = Exchange()
    early(ex)
    ask = ex.place("late-ask", "SELL", 3_000, 400)
    ex.trade(ex.place("marker", "BUY", 3_000, 400), ask, 3_000, 400)
    ex.commit(T - 600)
    ex.close_and_settle()
    assert fired(ex, Detector.MARKING) == []


# --- capacity withholding ----------------------------------------------------------------------
def short_zone(ex: Exchange, withholder_offer: int, price: int = 300) -> None:
    ex.meter("gen")
    ex.commit(T - 2_000)
    ex.reading("gen", T - 2 * INTERVAL, 60_000)
    ex.commit(T - 1_700)
    early(ex)
    ex.place("gen", "SELL", withholder_offer, price)
    ex.place("hungry", "BUY", 30_000, 400)  # left unfilled: the zone is short
    ex.commit(T - 800)
    ex.reading("gen", T, 60_000)


def test_offering_a_fraction_of_metered_export_in_a_short_zone_is_withholding() -> None:
    ex = Exchange()
    short_zone(ex, 10_000, price=450)  # above the hungry bid: it stays unsold
    ex.close_and_settle()
    [alert] = [a for a in ex.alerts if a.detector is Detector.WITHHOLDING]
    assert alert.accounts == (address("gen"),) and alert.zone == "BKK"
    assert "offered 10000 Wh of an expected 60000 Wh" in alert.summary


def test_offering_most_of_the_export_is_not_withholding() -> None:
    ex = Exchange()
    short_zone(ex, 40_000, price=300)
    ex.close_and_settle()
    assert fired(ex, Detector.WITHHOLDING) == []


def test_export_that_rose_unforeseeably_is_not_withholding() -> None:
    ex = Exchange()
    ex.meter("gen")
    ex.commit(T - 2_000)
    ex.reading("gen", T - 2 * INTERVAL, 8_000)  # clouds two intervals before
    ex.commit(T - 1_700)
    early(ex)
    ex.place("gen", "SELL", 7_000, 300)
    ex.place("hungry", "BUY", 30_000, 250)
    ex.commit(T - 800)
    ex.reading("gen", T, 60_000)
    ex.close_and_settle()
    assert fired(ex, Detector.WITHHOLDING) == []


def test_offers_priced_far_above_the_zone_price_while_bids_go_unfilled_are_withholding() -> None:
    ex = Exchange()
    short_zone(ex, 50_000, price=600)  # 100 % above the zone's 300
    ex.close_and_settle()
    [alert] = [a for a in ex.alerts if a.detector is Detector.WITHHOLDING]
    assert "50000 Wh offered at up to 600" in alert.summary


def test_offers_a_little_above_the_zone_price_are_not_economic_withholding() -> None:
    ex = Exchange()
    short_zone(ex, 50_000, price=420)  # 40 % above, and above the unfilled bid of 400
    ex.close_and_settle()
    assert fired(ex, Detector.WITHHOLDING) == []


# --- market power ------------------------------------------------------------------------------
def dominated(ex: Exchange, price: int) -> None:
    small = ex.place("small-seller", "SELL", 1_000, 300, zone="CEN")
    big = ex.place("dominant", "SELL", 40_000, price, zone="CEN")
    ex.commit(T - 890)
    ex.trade(ex.place("b1", "BUY", 1_000, 610, zone="CEN"), small, 1_000, 300)
    for n in range(3):
        ex.trade(ex.place(f"b{n + 2}", "BUY", 10_000, 610, zone="CEN"), big, 10_000, price)
    ex.place("b9", "BUY", 20_000, 280, zone="CEN")  # unfilled
    ex.commit(T - 880)


def test_a_pivotal_dominant_seller_pricing_near_the_buyers_cap_is_flagged() -> None:
    ex = Exchange()
    dominated(ex, 590)
    ex.close_and_settle()
    [alert] = [a for a in ex.alerts if a.detector is Detector.MARKET_POWER]
    assert alert.accounts == (address("dominant"),) and alert.zone == "CEN"
    assert alert.score >= 9_000  # the HHI: 30 of 31 kWh
    low, cap = Scope(ex.params, SurveillanceSettings(), 0).price_band(T)
    assert (low, cap) == (220, 606)


def test_a_dominant_seller_at_competitive_prices_is_not_flagged() -> None:
    ex = Exchange()
    dominated(ex, 300)
    ex.close_and_settle()
    assert fired(ex, Detector.MARKET_POWER) == []


def test_a_dominant_seller_that_is_not_pivotal_is_not_flagged() -> None:
    ex = Exchange()
    ex.place("rival", "SELL", 100_000, 500, zone="CEN")  # enough to serve every bid
    ex.commit(T - 895)
    dominated(ex, 590)
    ex.close_and_settle()
    assert fired(ex, Detector.MARKET_POWER) == []


# --- the engine and the settings ------------------------------------------------------------
def test_an_interval_is_judged_once_at_settlement_and_ids_are_reproducible() -> None:
    runs = []
    for _ in range(2):
        ex = Exchange()
        early(ex)
        late_trade(ex, 400)
        gate = ex.commit(T - 300)
        assert gate == []  # not judged at gate closure: the readings are still to come
        ex.close_and_settle()
        ex.commit(T + 3 * INTERVAL)
        runs.append([a.id for a in ex.alerts])
    assert runs[0] == runs[1] and len(runs[0]) == 1


def test_settings_load_refuses_unknown_keys_and_bad_values() -> None:
    good = load("[marking]\nmove_bp = 500\n")
    assert good.marking.move_bp == 500 and good.wash == SurveillanceSettings().wash
    with pytest.raises(ValueError, match="move_pb"):
        load("[marking]\nmove_pb = 500\n")
    with pytest.raises(ValueError, match="offered_bp must be at most 10000"):
        load("[withholding]\noffered_bp = 20000\n")
    with pytest.raises(ValueError, match="must not be negative"):
        load('{"spoofing": {"away_ticks": -1}}', "json")
    assert good.digest != SurveillanceSettings().digest


def monopsony(ex: Exchange, limit: int) -> None:
    big = ex.place("big-buyer", "BUY", 30_000, limit, zone="CEN")
    small = ex.place("small-buyer", "BUY", 1_000, limit, zone="CEN")
    ex.commit(T - 890)
    for n in range(3):
        ex.trade(big, ex.place(f"s{n}", "SELL", 10_000, 220, zone="CEN"), 10_000, limit)
    ex.trade(small, ex.place("s9", "SELL", 11_000, 220, zone="CEN"), 1_000, limit)
    ex.commit(T - 880)


def test_a_pivotal_dominant_buyer_bidding_near_the_buy_back_rate_is_flagged() -> None:
    ex = Exchange()
    monopsony(ex, 230)  # 2.6 % of the way from buy-back (220) to the buyers' cap (606)
    ex.close_and_settle()
    [alert] = [a for a in ex.alerts if a.detector is Detector.MARKET_POWER]
    assert alert.accounts == (address("big-buyer"),) and "pivotal buyer" in alert.summary


def test_a_dominant_buyer_bidding_a_fair_price_is_not_flagged() -> None:
    ex = Exchange()
    monopsony(ex, 500)  # 72.5 % of the way
    ex.close_and_settle()
    assert fired(ex, Detector.MARKET_POWER) == []
