"""The matching engine's early stop (`orderbook.meets`): an incoming order that meets no
reachable book's best order across its path's loss returns at once. It must decide exactly
what the full walk decides, at the rounding edges of the loss above all."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridtokenx.ledger.market import orderbook
from gridtokenx.wire.tx import Side

BASIS = 10_000
books = st.lists(st.integers(1, 400).map(lambda p: p * 7), min_size=1, max_size=4)
losses = st.sampled_from([0, 1, 99, 100, 250, 347, 3_333])


def side_book(zone: str, side: Side, prices: list[int], first_id: int) -> orderbook.SideBook:
    book = orderbook.SideBook(zone, side)
    for n, price in enumerate(prices):
        order_id = first_id + n
        book.add(orderbook.Resting(order_id, b"o%d" % order_id, price, order_id, 500, True, False))
    return book


def seen(price: int, loss: int, buying: bool) -> int:
    """A resting price as the incoming order sees it across `loss` (`_best_head`)."""
    if buying:
        return -(-price * BASIS // (BASIS - loss))
    return price * (BASIS - loss) // BASIS


@settings(max_examples=300, deadline=None)
@given(st.booleans(), books, books, losses, losses, st.integers(-1, 1), st.booleans())
def test_the_early_stop_decides_what_the_full_walk_decides(
    buying: bool,
    local: list[int],
    remote: list[int],
    local_loss: int,
    remote_loss: int,
    edge: int,
    at_remote: bool,
) -> None:
    resting_side = Side.SELL if buying else Side.BUY
    reachable = [
        orderbook.Reachable("BKK", side_book("BKK", resting_side, local, 1), local_loss, ()),
        orderbook.Reachable(
            "CEN", side_book("CEN", resting_side, remote, 100), remote_loss, (("CEN", "BKK"),)
        ),
    ]
    # the limit at a best order's price as the incoming order sees it, or one tick off it
    prices, loss = (remote, remote_loss) if at_remote else (local, local_loss)
    best = min(prices) if buying else max(prices)
    limit = seen(best, loss, buying) + edge
    incoming = orderbook.Incoming(
        Side.BUY if buying else Side.SELL, limit, b"incoming", 2_000, False, True
    )
    decided = orderbook.match(incoming, reachable, {("CEN", "BKK"): 10_000})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(orderbook, "meets", lambda *_: True)  # never stop early
        walked = orderbook.match(incoming, reachable, {("CEN", "BKK"): 10_000})
    assert decided.fills == walked.fills
    assert decided.self_trades == walked.self_trades
