"""Capacity withholding: a generator keeps energy off the market when its zone is short.

**Pattern**: physical withholding offers far less than the seller could export; economic
withholding offers it at a price far above the zone's, so it does not sell. Either raises
the price the short zone pays (or pushes buyers onto the TOU rate).

**Short zone.** Bids in the zone for the interval were left unfilled at gate closure (at
least `min_unmet_bid_wh`): buyers wanted energy that was not offered at their price.

**Alert (physical)**, per seller, zone and interval: what it kept on offer until the gate
(filled, or resting until expiry; cancelled offers count as withheld; day-ahead sell
curves count whole, accepted or not) is below
`offered_bp` of the smaller of its metered export in the interval and the larger of its
exports one and two intervals before (what a persistence forecast made around order time
expected), by at least `min_withheld_wh`. Taking the smaller keeps a seller whose output
rose unforeseeably (clouds clearing) from being flagged; on a steep morning ramp it also
lets a withholder's first intervals pass.

**Alert (economic)**: at least `min_withheld_wh` of its offers expired unsold at prices at
least `markup_bp` above the zone's volume-weighted trade price of the interval, while bids
below that price went unfilled.

**False positives.** A seller with storage, or with its own load that the meter nets out
later, exports more than it chose to sell for honest reasons; a seller whose forecast was
poor twice in a row may be flagged. A smaller `min_withheld_wh` reaches rooftop households,
whose forecast errors are large relative to their size.
"""

from __future__ import annotations

from collections import defaultdict

from gridtokenx.surveillance import alerts
from gridtokenx.surveillance.alerts import Alert, Detector
from gridtokenx.surveillance.scope import Scope, vwap
from gridtokenx.surveillance.tape import BUY, SELL, IntervalTape, OrderLife, Tape


def _exports(found: IntervalTape | None) -> dict[tuple[bytes, str], int]:
    out: dict[tuple[bytes, str], int] = defaultdict(int)
    for r in () if found is None else found.readings:
        out[r.owner, r.zone] += r.export_wh
    return out


def _kept_on_offer(o: OrderLife) -> int:
    return o.filled_wh if o.closed == "cancelled" else o.quantity_wh


def detect(tape: Tape, scope: Scope, start: int) -> list[Alert]:
    found = tape.intervals.get(start)
    if found is None:
        return []
    s = scope.settings.withholding
    unmet: dict[str, list[OrderLife]] = defaultdict(list)
    offers: dict[tuple[bytes, str], list[OrderLife]] = defaultdict(list)
    for o in found.orders.values():
        if o.side == BUY and o.closed in (None, "expired") and o.unfilled_wh > 0:
            unmet[o.zone].append(o)
        elif o.side == SELL:
            offers[o.owner, o.zone].append(o)
    short = {
        z for z, bids in unmet.items() if sum(b.unfilled_wh for b in bids) >= s.min_unmet_bid_wh
    }
    if not short:
        return []
    now = _exports(found)
    ahead: dict[tuple[bytes, str], int] = defaultdict(int)  # offered in the day-ahead auction
    for owner, zone, wh in found.curve_offers.values():
        ahead[owner, zone] += wh
    length = scope.params.interval_seconds
    one, two = (_exports(tape.intervals.get(start - n * length)) for n in (1, 2))
    zone_price = {
        z: vwap([(t.quantity_wh, t.price) for t in found.trades if t.seller_zone == z])
        for z in short
    }
    out = []
    for (owner, zone), export in sorted(now.items()):
        if zone not in short:
            continue
        mine = offers.get((owner, zone), [])
        expected = min(export, max(one.get((owner, zone), 0), two.get((owner, zone), 0)))
        kept = sum(_kept_on_offer(o) for o in mine) + ahead.get((owner, zone), 0)
        withheld = expected - kept
        if kept * 10_000 < expected * s.offered_bp and withheld >= s.min_withheld_wh:
            out.append(alerts.make(
                Detector.WITHHOLDING, start, zone, [owner],
                withheld * alerts.SCORE_MAX // expected,
                f"offered {kept} Wh of an expected {expected} Wh export ({export} Wh metered) "
                f"while {sum(b.unfilled_wh for b in unmet[zone])} Wh of bids went unfilled",
                [e for o in mine for e in alerts.order_evidence(o)]
                + [alerts.order_evidence(b)[0] for b in unmet[zone]][:20],
                scope.height,
            ))  # fmt: skip
            continue
        reference = zone_price[zone]
        if reference is None:
            continue
        dear = [o for o in mine if o.closed in (None, "expired") and o.unfilled_wh > 0
                and o.price * 10_000 >= reference * (10_000 + s.markup_bp)]  # fmt: skip
        wh = sum(o.unfilled_wh for o in dear)
        if wh < s.min_withheld_wh:
            continue
        priced_out = [b for b in unmet[zone] if any(b.price < o.price for o in dear)]
        if priced_out:
            out.append(alerts.make(
                Detector.WITHHOLDING, start, zone, [owner],
                min(alerts.SCORE_MAX, wh * alerts.SCORE_MAX // max(1, export)),
                f"{wh} Wh offered at up to {max(o.price for o in dear)} satang/kWh against a "
                f"zone price of {reference} went unsold while bids went unfilled",
                [e for o in dear for e in alerts.order_evidence(o)]
                + [alerts.order_evidence(b)[0] for b in priced_out][:20],
                scope.height,
            ))  # fmt: skip
    return out
