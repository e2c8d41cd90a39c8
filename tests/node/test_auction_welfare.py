"""The auction's welfare is at least that of continuous matching of the same orders, in any
arrival order: both run on the ledger (a sandbox each), the continuous market with one
good-till-gate limit order per step in a random order, the auction with the same steps as
curves cleared by the solver's certificate. The gap is reported as a hypothesis event."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gridtokenx.ledger.market import records
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.wire.tx import CurveStep, LicenceKind, PlaceAuctionCurve, PlaceOrder, Side
from tests.ledger.market.test_auction import Auction, T

# (participant, side, zone): the cast's sellers are the home (BKK) and the factory (CEN).
SELLERS = (("home", "BKK"), ("factory", "CEN"))
BUYERS = (("consumer", "BKK"), ("office", "BKK"), ("buyer2", "BKK"))
steps = st.lists(
    st.tuples(
        st.sampled_from(("sell", "buy")),
        st.integers(0, 2),
        st.integers(150, 450),
        st.integers(1, 20),
    ),
    min_size=2,
    max_size=12,
)


def _cast() -> Auction:
    au = Auction(Sandbox())
    au.grant(au.factory, LicenceKind.SELLER)
    return au


def _orders(spec: list[tuple[str, int, int, int]]) -> list[tuple[str, Side, str, int, int]]:
    """(who, side, zone, price, Wh), the sellers' totals kept within their capacity."""
    out, sold = [], {"home": 0, "factory": 0}
    caps = {"home": 1_200, "factory": 12_000}
    for kind, who, price, lots in spec:
        if kind == "sell":
            name, zone = SELLERS[who % 2]
            wh = min(lots * 100, caps[name] - sold[name])
            if wh < 100:
                continue
            sold[name] += wh
            out.append((name, Side.SELL, zone, price, wh))
        else:
            name, zone = BUYERS[who]
            out.append((name, Side.BUY, zone, price, lots * 250))
    return out


def _continuous(orders: list[tuple[str, Side, str, int, int]]) -> Fraction:
    au = _cast()
    au.end_blocks_until(T - 86_400)  # continuous trading in T opens
    price_of = {}
    for name, side, zone, price, wh in orders:
        events = au.ok(getattr(au, name), PlaceOrder(side, zone, T, wh, price))
        price_of[int(events[0].attrs["order"])] = price
    welfare = Fraction(0)
    for _, trade in au.sb.state.scan(b"trade/"):
        assert isinstance(trade, records.Trade)
        received = Fraction(trade.quantity_wh * (10_000 - trade.loss_bp), 10_000)
        welfare += (
            price_of[trade.buy_order] * received - price_of[trade.sell_order] * trade.quantity_wh
        )
    return welfare


def _auction(orders: list[tuple[str, Side, str, int, int]]) -> Fraction:
    au = _cast()
    for name, side, zone, price, wh in orders:
        au.ok(getattr(au, name), PlaceAuctionCurve(side, zone, T, (CurveStep(price, wh),)))
    au.to_gate()
    events = au.ok(au.egat, au.solved())
    assert events[0].kind == "auction_cleared"
    from gridtokenx.ledger.market import auction

    result = au.sb.state.get(auction.result_key(T), auction.AuctionResult)
    assert result is not None
    return Fraction(result.welfare_num, result.welfare_den)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=steps, order=st.randoms(use_true_random=False))
def test_auction_welfare_is_at_least_continuous_matching_in_any_arrival_order(
    spec: list[tuple[str, int, int, int]], order: object
) -> None:
    orders = _orders(spec)
    if not any(o[1] is Side.BUY for o in orders) or not any(o[1] is Side.SELL for o in orders):
        return
    arrival = list(orders)
    order.shuffle(arrival)  # type: ignore[attr-defined]
    continuous = _continuous(arrival)
    cleared = _auction(orders)
    assert cleared >= continuous
    gap = 0.0 if cleared == 0 else float((cleared - continuous) / cleared)
    event(f"welfare gap {'0' if gap == 0 else '<5%' if gap < 0.05 else '>=5%'}")
