"""Wash trading and circular trades among linked accounts.

**Pattern** (ACER guidance on wash trades, 2017): energy goes round a group of accounts
controlled by one party (A sells to B, B to C, C back to A, or A and B to each other), so
volume and prices are printed without any change of ownership.

**Links.** Two accounts are linked when one funded the other (a `transfer` of at least
`min_funding_satang`), when they share a registered name or a meter (a meter registered to
both over time), or when, over the last `lookback_intervals`, each did at least
`exclusive_share_bp` of its traded volume with the other over at least
`exclusive_min_trades` trades. Linked accounts form groups (transitively).

**Alert.** Within one delivery interval, trades among a group's accounts that form a
directed cycle (someone in the group both sold to and bought from the group), with at least
`min_cycle_wh` of energy on the cycle. The score is the cycle's share of the group's
volume in the interval.

**False positives.** Related companies (a parent and its subsidiary) may legitimately fund
each other and trade one way; one-way trading is never flagged, only circles within one
interval, which a real energy need cannot explain (one interval's position is one number).
A lower `min_funding_satang` links more households that pay each other for unrelated
things; a lower `exclusive_share_bp` links a small zone's only seller and its only buyer
(harmless unless they also trade back). Accounts that are linked but not known to the
chain (two companies with one owner, no transfers) are missed: the ERC can add links by
registering names consistently.
"""

from __future__ import annotations

from collections import defaultdict

from gridtokenx.surveillance import alerts
from gridtokenx.surveillance.alerts import Alert, Detector, Evidence
from gridtokenx.surveillance.scope import Scope
from gridtokenx.surveillance.tape import Tape, TradeFact


class _Groups:
    """Union-find over accounts, remembering what linked each group."""

    def __init__(self) -> None:
        self.parent: dict[bytes, bytes] = {}
        self.why: dict[bytes, list[Evidence]] = defaultdict(list)

    def find(self, a: bytes) -> bytes:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def join(self, a: bytes, b: bytes, evidence: list[Evidence]) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            ra, rb = min(ra, rb), max(ra, rb)
            self.parent[rb] = ra
            self.why[ra] += self.why.pop(rb, [])
        self.why[ra] += evidence


def links(tape: Tape, scope: Scope, start: int, among: set[bytes]) -> _Groups:
    """How the accounts `among` are linked (links by trading are only looked for between
    them: the accounts on a cycle in the interval)."""
    s = scope.settings.wash
    groups = _Groups()
    for t in tape.transfers:
        if t.amount >= s.min_funding_satang and t.at.time <= scope.gate(start):
            groups.join(t.sender, t.to, [alerts.transfer_evidence(t)])
    by_name: dict[str, list[bytes]] = defaultdict(list)
    for account, name in sorted(tape.names.items()):
        by_name[name].append(account)
    for same in list(by_name.values()) + [sorted(o) for o in tape.meter_owners.values()]:
        for other in same[1:]:
            groups.join(same[0], other, [])
    _exclusive(tape, scope, start, groups, among)
    return groups


class _Volumes:
    """One interval's traded volume per account and per pair, and the pair's trades."""

    def __init__(self, trades: list[TradeFact]) -> None:
        self.account: dict[bytes, int] = defaultdict(int)
        self.pair: dict[tuple[bytes, bytes], list[TradeFact]] = defaultdict(list)
        for t in trades:
            self.account[t.buyer] += t.quantity_wh
            self.account[t.seller] += t.quantity_wh
            self.pair[min(t.buyer, t.seller), max(t.buyer, t.seller)].append(t)


def _volumes(tape: Tape, at: int, start: int) -> _Volumes:
    """Intervals before `start` are final when `start` is judged (their gates closed
    earlier), so their volumes are derived once."""
    found = tape.intervals[at]
    if at == start:
        return _Volumes(found.trades)
    cached = found.derived.get("wash.volumes")
    if not isinstance(cached, _Volumes):
        cached = found.derived["wash.volumes"] = _Volumes(found.trades)
    return cached


def _exclusive(tape: Tape, scope: Scope, start: int, groups: _Groups, among: set[bytes]) -> None:
    """Pairs of the interval's trades that did nearly all their trading with each other
    over the window."""
    s = scope.settings.wash
    first = start - s.lookback_intervals * scope.params.interval_seconds
    window = [_volumes(tape, at, start) for at in sorted(tape.intervals) if first <= at <= start]
    candidates = sorted(p for p in _volumes(tape, start, start).pair if set(p) <= among)
    for a, b in candidates:
        trades = [t for v in window for t in v.pair.get((a, b), ())]
        if len(trades) < s.exclusive_min_trades:
            continue
        wh = sum(t.quantity_wh for t in trades)
        if all(wh * 10_000 >= sum(v.account.get(x, 0) for v in window) * s.exclusive_share_bp
               for x in (a, b)):  # fmt: skip
            groups.join(a, b, [alerts.trade_evidence(t) for t in trades])


def _cycle_trades(trades: list[TradeFact]) -> list[TradeFact]:
    """The trades on a directed cycle (seller -> buyer edges): an edge u -> v is on one
    when v reaches u."""
    edges: dict[bytes, set[bytes]] = defaultdict(set)
    for t in trades:
        edges[t.seller].add(t.buyer)

    def reaches(a: bytes, b: bytes) -> bool:
        seen, todo = {a}, [a]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt == b:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    return [t for t in trades if reaches(t.buyer, t.seller)]


def detect(tape: Tape, scope: Scope, start: int) -> list[Alert]:
    found = tape.intervals.get(start)
    if found is None or not found.trades:
        return []
    circling = _cycle_trades(found.trades)  # honest trading has none: one side per interval
    if not circling:
        return []
    groups = links(tape, scope, start, {a for t in circling for a in (t.buyer, t.seller)})
    inside: dict[bytes, list[TradeFact]] = defaultdict(list)
    for t in circling:
        root = groups.find(t.buyer)
        if root == groups.find(t.seller):
            inside[root].append(t)
    out = []
    for root, trades in sorted(inside.items()):
        cycle = _cycle_trades(trades)
        wh = sum(t.quantity_wh for t in cycle)
        if wh < scope.settings.wash.min_cycle_wh:
            continue
        total = sum(t.quantity_wh for t in trades)
        accounts = sorted({a for t in cycle for a in (t.seller, t.buyer)})
        evidence = [alerts.trade_evidence(t) for t in cycle] + groups.why[root]
        out.append(alerts.make(
            Detector.WASH, start, "", accounts, wh * alerts.SCORE_MAX // total,
            f"{len(cycle)} trades ({wh} Wh) went round {len(accounts)} linked accounts",
            evidence, scope.height,
        ))  # fmt: skip
    return out
