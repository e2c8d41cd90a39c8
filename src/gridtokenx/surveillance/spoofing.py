"""Spoofing and layering: large orders away from the touch, cancelled before they could
fill.

**Pattern** (ACER guidance on layering and spoofing, 2019): an account shows depth it does
not mean to trade (one large order, or several layered at successive prices, behind the
best price of their side), trades on the other side at the price that depth attracts, then
cancels the depth.

**Alert**, per account and delivery interval: the account cancelled, entirely unfilled,
orders that were large (at least `large_order_wh`, or `large_multiple` times the median
of the other accounts' orders in the interval) and at least `away_ticks` ticks behind the
best price other accounts had on that side when they were cancelled (or, alone on their
side, twice that far from the opposite side's best), together at least
`min_cancelled_wh`;
and either it traded on the opposite side between placing and cancelling them, or its
order-to-trade ratio in the interval exceeded `max_order_to_trade`. The score starts at
half and gains a quarter for each of those two aggravations.

**False positives.** A seller whose forecast drops cancels a large offer honestly; unless
it also bought meanwhile or churns orders, it is not flagged. A large order at the touch
that is cancelled is not flagged (it could have filled at any moment). Lower
`away_ticks` or `large_order_wh` catch smaller spoofers and flag more honest repricing.
A spoofer that cancels through amendments (lowering the quantity) is not seen.
"""

from __future__ import annotations

from collections import defaultdict

from gridtokenx.surveillance import alerts
from gridtokenx.surveillance.alerts import Alert, Detector
from gridtokenx.surveillance.scope import Scope
from gridtokenx.surveillance.tape import BUY, OrderLife, Tape


def _away(order: OrderLife, ticks: int) -> bool:
    """Behind the best price others had on its side when it was cancelled; alone on its
    side, at least twice as far from the opposite side's best (it could not have filled)."""
    best, across = order.best_same_side_at_close, order.best_opposite_at_close
    if best is not None:
        behind = best - order.price if order.side == BUY else order.price - best
        return behind >= ticks
    if across is None:
        return False  # an empty book: nothing to be away from
    gap = across - order.price if order.side == BUY else order.price - across
    return gap >= 2 * ticks


def detect(tape: Tape, scope: Scope, start: int) -> list[Alert]:
    found = tape.intervals.get(start)
    if found is None:
        return []
    s = scope.settings.spoofing
    away = s.away_ticks * scope.params.tick_satang_per_kwh
    by_owner: dict[bytes, list[OrderLife]] = defaultdict(list)
    for o in found.orders.values():
        by_owner[o.owner].append(o)
    trades_of: dict[bytes, int] = defaultdict(int)
    for t in found.trades:
        trades_of[t.buyer] += 1
        trades_of[t.seller] += 1
    out = []
    for owner, orders in sorted(by_owner.items()):
        unfilled = [o for o in orders if o.closed == "cancelled" and o.filled_wh == 0]
        if sum(o.quantity_wh for o in unfilled) < s.min_cancelled_wh:
            continue  # the common case: nothing (or little) cancelled; the median is dearer
        sizes = sorted(o.quantity_wh for o in found.orders.values() if o.owner != owner)
        median = sizes[len(sizes) // 2] if sizes else s.large_order_wh
        large = min(s.large_order_wh, median * s.large_multiple)
        spoofs = [o for o in unfilled if o.quantity_wh >= large and _away(o, away)]
        cancelled = sum(o.quantity_wh for o in spoofs)
        if cancelled < s.min_cancelled_wh:
            continue
        opposite = [
            t for t in found.trades
            for o in spoofs
            if o.closed_at is not None and o.placed.height <= t.at.height <= o.closed_at.height
            and (t.seller if o.side == BUY else t.buyer) == owner
        ]  # fmt: skip
        churn = len(orders) > s.max_order_to_trade * max(1, trades_of[owner])
        if not opposite and not churn:
            continue
        score = alerts.SCORE_MAX // 2 + (alerts.SCORE_MAX // 4) * (bool(opposite) + churn)
        evidence = [e for o in spoofs for e in alerts.order_evidence(o)]
        evidence += [alerts.trade_evidence(t) for t in opposite]
        zones = sorted({o.zone for o in spoofs})
        out.append(alerts.make(
            Detector.SPOOFING, start, zones[0] if len(zones) == 1 else "", [owner], score,
            f"{len(spoofs)} large orders ({cancelled} Wh) cancelled unfilled away from the "
            f"touch; {len(orders)} orders for {trades_of[owner]} trades"
            + (f"; {len({t.id for t in opposite})} opposite fills meanwhile" if opposite else ""),
            evidence, scope.height,
        ))  # fmt: skip
    return out
