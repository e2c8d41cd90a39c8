"""Marking the gate: trades in the last minutes before gate closure that move the
interval's price away from its earlier trades.

**Pattern**: an account with a position that settles on the interval's price (or that
wants the published closing price high or low) trades aggressively just before the gate
closes, when there is no time left for others to answer, at prices far from where the
interval traded all along.

**Alert**, per interval and account: the account's trades as aggressor (the incoming
order) in the last `late_seconds` before gate closure, at least `min_late_wh`, whose
volume-weighted price is at least `move_bp` away from that of the interval's earlier
trades (which need at least `min_earlier_trades` trades to be a reference). The score
grows from half at the threshold to full at twice it. Day-ahead auction trades are left
out of both: they were cleared the day before at the auction's own price, and continuous
prices near delivery differ from it for honest reasons.

**False positives.** Prices do move near the gate for honest reasons (a forecast update
makes a buyer chase the last offers), and an interval with few early trades has a poor
reference, hence `min_earlier_trades`. A wider `late_seconds` catches slower markers and
flags more honest late buyers. `min_late_wh` defaults to one lot (100 Wh): in a thin
interval a few dozen Wh at the gate set the last price, which is the harm (at 1 kWh, all
5 of the simulated marker's misses in 81 instances were such small sweeps), so size alone
does not excuse a late trade; raise it where honest small late trades are common.
"""

from __future__ import annotations

from collections import defaultdict

from gridtokenx.surveillance import alerts
from gridtokenx.surveillance.alerts import Alert, Detector
from gridtokenx.surveillance.scope import Scope, vwap
from gridtokenx.surveillance.tape import Tape, TradeFact


def detect(tape: Tape, scope: Scope, start: int) -> list[Alert]:
    found = tape.intervals.get(start)
    if found is None:
        return []
    s = scope.settings.marking
    late_from = scope.gate(start) - s.late_seconds
    continuous = [t for t in found.trades if not t.auction]  # the auction sets no late price
    earlier = [t for t in continuous if t.at.time < late_from]
    reference = vwap([(t.quantity_wh, t.price) for t in earlier])
    if reference is None or len(earlier) < s.min_earlier_trades or reference == 0:
        return []
    late: dict[bytes, list[TradeFact]] = defaultdict(list)
    for t in continuous:
        if t.at.time >= late_from:
            late[t.aggressor].append(t)
    out = []
    for account, trades in sorted(late.items()):
        wh = sum(t.quantity_wh for t in trades)
        price = vwap([(t.quantity_wh, t.price) for t in trades])
        if price is None or wh < s.min_late_wh:
            continue
        move = abs(price - reference) * 10_000 // reference
        if move < s.move_bp:
            continue
        score = alerts.SCORE_MAX // 2 + (move - s.move_bp) * (alerts.SCORE_MAX // 2) // max(
            1, s.move_bp
        )
        zones = sorted({t.buyer_zone for t in trades})
        out.append(alerts.make(
            Detector.MARKING, start, zones[0] if len(zones) == 1 else "", [account], score,
            f"{len(trades)} late trades ({wh} Wh) at {price} satang/kWh against {reference} "
            f"before ({move / 100:.1f} % away)",
            [alerts.trade_evidence(t) for t in trades], scope.height,
        ))  # fmt: skip
    return out
