"""Market power per zone and interval: concentration (HHI) and pivotal participants, on
the sellers' side and on the buyers'.

**Measures.** The Herfindahl-Hirschman index of the zone's traded volume in the interval
(sellers by their zone, buyers by theirs): the sum of squared shares in per cent, 0 to
10,000 (US merger guidelines call above 2,500 highly concentrated: the default). A seller
is pivotal when the zone's bids exceed what the other sellers in the zone offered
(without it, demand cannot be met locally); a buyer is pivotal when the zone's offers
exceed what the other buyers bid. `measure` gives these for any zone and interval.

**Alert.** HHI at least `hhi_threshold`, the largest participant of that side pivotal, and
its prices showing the power used: for a seller, its filled offers' limit prices weighted
by volume at least `seller_price_index_bp` of the way from the buy-back rate (its outside
option) to the buyers' cap (where the TOU rate makes buying P2P pointless); for a buyer,
its filled bids at most `buyer_price_index_bp` of that way. Zones and intervals with less
than `min_zone_wh` traded are not judged.

**False positives.** A solar farm alone in a rural zone is structurally dominant every
sunny interval; concentration alone is not abuse, so it is flagged only when it also
prices near the buyers' cap. Imports are ignored when judging pivotality (zonal view):
a seller may be flagged as pivotal although cross-zone offers could have served the
zone, which is why the price test is required. A lower price index catches milder abuse
and flags sellers who merely price at the upper end of honest temperaments.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from gridtokenx.surveillance import alerts
from gridtokenx.surveillance.alerts import Alert, Detector
from gridtokenx.surveillance.scope import Scope, vwap
from gridtokenx.surveillance.tape import BUY, SELL, OrderLife, Tape, TradeFact


@dataclass(frozen=True)
class SideMeasure:
    side: str
    volume_wh: int
    hhi: int
    top: bytes | None
    top_share_bp: int
    top_pivotal: bool
    top_price: int | None  # its filled orders' limit prices, volume-weighted


def _side(side: str, zone: str, trades: list[TradeFact], orders: list[OrderLife]) -> SideMeasure:
    volume: dict[bytes, int] = defaultdict(int)
    for t in trades:
        if (t.seller_zone if side == SELL else t.buyer_zone) == zone:
            volume[t.seller if side == SELL else t.buyer] += t.quantity_wh
    total = sum(volume.values())
    if not total:
        return SideMeasure(side, 0, 0, None, 0, False, None)
    hhi = sum((v * 100 // total) ** 2 for v in volume.values())
    top = min(volume, key=lambda a: (-volume[a], a))
    own = [o for o in orders if o.zone == zone and o.side == side]
    other = [o for o in orders if o.zone == zone and o.side != side]
    others_own_side = sum(o.quantity_wh for o in own if o.owner != top)
    pivotal = sum(o.quantity_wh for o in other) > others_own_side
    price = vwap([(o.filled_wh, o.price) for o in own if o.owner == top])
    return SideMeasure(side, total, hhi, top, volume[top] * 10_000 // total, pivotal, price)


def measure(tape: Tape, start: int, zone: str) -> tuple[SideMeasure, SideMeasure]:
    """(sellers, buyers) of one zone and interval."""
    found = tape.intervals.get(start)
    trades = [] if found is None else found.trades
    orders = [] if found is None else list(found.orders.values())
    return _side(SELL, zone, trades, orders), _side(BUY, zone, trades, orders)


def detect(tape: Tape, scope: Scope, start: int) -> list[Alert]:
    found = tape.intervals.get(start)
    if found is None or not found.trades:
        return []
    s = scope.settings.market_power
    low, cap = scope.price_band(start)
    span = max(1, cap - low)
    out = []
    zones = sorted({t.seller_zone for t in found.trades} | {t.buyer_zone for t in found.trades})
    for zone in zones:
        for m in measure(tape, start, zone):
            if (m.volume_wh < s.min_zone_wh or m.hhi < s.hhi_threshold or not m.top_pivotal
                    or m.top is None or m.top_price is None):  # fmt: skip
                continue
            index = (m.top_price - low) * 10_000 // span
            if m.side == SELL and index < s.seller_price_index_bp:
                continue
            if m.side == BUY and index > s.buyer_price_index_bp:
                continue
            top = m.top
            mine = [o for o in found.orders.values()
                    if o.owner == top and o.zone == zone and o.filled_wh]  # fmt: skip
            trades = [t for t in found.trades if top in (t.seller, t.buyer)]
            who = "seller" if m.side == SELL else "buyer"
            out.append(alerts.make(
                Detector.MARKET_POWER, start, zone, [top], m.hhi,
                f"pivotal {who} with {m.top_share_bp / 100:.1f} % of {m.volume_wh} Wh (HHI "
                f"{m.hhi}) at a price index of {index / 100:.1f} % between buy-back {low} and "
                f"the buyers' cap {cap}",
                [alerts.order_evidence(o)[0] for o in mine]
                + [alerts.trade_evidence(t) for t in trades],
                scope.height,
            ))  # fmt: skip
    return out
