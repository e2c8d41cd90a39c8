"""The tape's facts as the detectors read them: a cancel's best prices, found in one walk
over its interval's orders, are those of the two walks over the open orders it replaced."""

from __future__ import annotations

import random

from gridtokenx.surveillance.tape import BUY, SELL, OrderLife, Ref, Tape, _best_at


def _reference(tape: Tape, order: OrderLife) -> tuple[int | None, int | None]:
    """The two walks a cancel made before (`Tape.open_orders`, then max or min)."""
    others = [o.price for o in tape.open_orders(order.interval, order.zone, order.side)
              if o.owner != order.owner and o.id != order.id]  # fmt: skip
    other_side = SELL if order.side == BUY else BUY
    across = [o.price for o in tape.open_orders(order.interval, order.zone, other_side)]
    pick = max if order.side == BUY else min
    return (
        pick(others) if others else None,
        (min if order.side == BUY else max)(across) if across else None,
    )


def test_a_cancels_best_prices_match_the_two_walks_on_random_books() -> None:
    rng = random.Random(7)
    at = Ref(1, 0, None)
    for _ in range(300):
        tape = Tape(lambda _: None)
        orders = []
        for order_id in range(1, rng.randint(1, 25)):
            order = OrderLife(
                order_id, bytes([rng.randint(1, 3)]), rng.choice((BUY, SELL)),
                rng.choice(("BKK", "CNX")), rng.choice((900, 1800)), 1_000,
                rng.randint(380, 420), at,
                closed=rng.choice((None, None, "filled", "cancelled")),
            )  # fmt: skip
            tape.interval(order.interval).orders[order_id] = order
            tape.orders[order_id] = order
            orders.append(order)
        for order in orders:
            assert _best_at(tape, order) == _reference(tape, order)
