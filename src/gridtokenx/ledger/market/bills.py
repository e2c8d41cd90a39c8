"""A household's day against the retail tariff, interval by interval: what its meters
imported and exported, what it bought and sold P2P, and what it paid and earned, next to
what the TOU tariff alone would have charged for the same import.

The figures are settlement's own (`settlement.spread`, `settlement.trade_charges`, the
same rounding), read back from the records settlement leaves: a reading's energy spread
over the intervals it covers, the trades with what was delivered, and the position's
locked export. An interval the household traded in is settled on chain; in one it did
not trade, its import is billed by its distributor at the same TOU rate off the chain, so
the line shows that bill (`on_chain` false) and the household page can add the day up."""

from __future__ import annotations

from typing import Final, NamedTuple

from gridtokenx.ledger import metering, registry
from gridtokenx.ledger.chain_info import params as chain_params
from gridtokenx.ledger.market import bookkeeping, paths, queries, records, settlement
from gridtokenx.ledger.market.tariff import tariff_msat_per_kwh
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import State

MSAT_PER_SATANG: Final = settlement.MSAT_PER_SATANG


class BillLine(NamedTuple):
    """One interval of one household (energy in Wh, money in satang, rates in
    milli-satang per kWh)."""

    interval: int
    status: str  # NO_TRADES, OPEN, CLOSED or SETTLED (the interval market's)
    on_chain: bool  # settled (or to be settled) by the chain: the household traded
    tariff_msat_per_kwh: int
    import_wh: int
    export_wh: int
    bought_wh: int
    received_wh: int  # bought less path losses (delivered only once settled)
    sold_wh: int
    delivered_wh: int  # of what was sold, what the export covered
    p2p_paid_satang: int  # trade value, platform fee and wheeling, as a buyer
    p2p_earned_satang: int  # trade value, as a seller
    tou_satang: int  # import not covered by P2P energy, at the tariff
    buyback_satang: int  # export sold but not P2P, at the buy-back rate (sellers)
    imbalance_satang: int  # sold but not exported
    tariff_only_satang: int  # all import at the tariff: the bill without the market

    @property
    def net_satang(self) -> int:
        """What the interval cost the household (negative: it earned)."""
        paid = self.tou_satang + self.p2p_paid_satang + self.imbalance_satang
        return paid - self.p2p_earned_satang - self.buyback_satang


def _at_rate(wh: int, msat_per_kwh: int) -> int:
    return wh * msat_per_kwh // 1000 // MSAT_PER_SATANG


def metered(state: State, owner: bytes, intervals: range) -> dict[int, tuple[int, int]]:
    """(import, export) Wh per interval of `intervals` from every meter of `owner`, a
    reading after a gap spread over the intervals it covers as settlement spreads it."""
    out: dict[int, tuple[int, int]] = {}
    first = intervals.start
    for address, _ in registry.meters(state, owner=owner):
        for start, reading in metering.readings(state, address, first - intervals.step):
            covered = range(reading.covers_from, start + 1, intervals.step)
            if reading.covers_from >= intervals.stop:
                break
            imports = settlement.spread(reading.import_wh, len(covered))
            exports = settlement.spread(reading.export_wh, len(covered))
            for at, imported, exported in zip(covered, imports, exports, strict=True):
                if at in intervals:
                    was = out.get(at, (0, 0))
                    out[at] = (was[0] + imported, was[1] + exported)
    return out


def bill_line(
    state: State,
    owner: bytes,
    interval: int,
    energy: tuple[int, int],
    own: list[records.Trade],
    params: Params,
) -> BillLine:
    """One interval's line; `energy` is its metered (import, export) in Wh and `own` the
    household's trades in it."""
    imported, exported = energy
    rate = tariff_msat_per_kwh(interval, params)
    market = queries.interval_market(state, interval)
    status = market.status.name if own and market is not None else "NO_TRADES"
    bought = received = sold = delivered = paid = earned = 0
    for trade in own:
        sent = trade.delivered_wh if trade.settled else trade.quantity_wh
        if trade.buyer == owner:
            bought += trade.quantity_wh
            received += sent * (paths.BASIS - trade.loss_bp) // paths.BASIS
            paid += settlement.trade_charges(trade, sent, params).paid_by_buyer_satang
        if trade.seller == owner:
            sold += trade.quantity_wh
            delivered += sent
            earned += bookkeeping.value_satang(sent, trade.price)
    unsold = 0
    if sold:
        zone = next(t.seller_zone for t in own if t.seller == owner)
        locked = bookkeeping.position(state.overlay(), interval, zone, owner).locked_export_wh
        unsold = max(locked - delivered, 0)
    covered = min(imported, received) if own else 0
    return BillLine(
        interval=interval,
        status=status,
        on_chain=bool(own),
        tariff_msat_per_kwh=rate,
        import_wh=imported,
        export_wh=exported,
        bought_wh=bought,
        received_wh=received,
        sold_wh=sold,
        delivered_wh=delivered,
        p2p_paid_satang=paid,
        p2p_earned_satang=earned,
        tou_satang=_at_rate(imported - covered, rate),
        buyback_satang=_at_rate(unsold, params.tariffs.buyback_msat_per_kwh),
        imbalance_satang=(sold - delivered) * params.imbalance_satang_per_kwh // 1000,
        tariff_only_satang=_at_rate(imported, rate),
    )


def day_bill(state: State, owner: bytes, intervals: range) -> list[BillLine]:
    """The lines of the intervals in which the household metered energy or traded."""
    params = chain_params(state)
    energy = metered(state, owner, intervals)
    by_interval: dict[int, list[records.Trade]] = {}
    for trade in owner_trades(state, owner, intervals):
        by_interval.setdefault(trade.interval_start, []).append(trade)
    metered_any = {i for i, (imported, exported) in energy.items() if imported or exported}
    active = sorted(metered_any | set(by_interval))
    return [
        bill_line(state, owner, i, energy.get(i, (0, 0)), by_interval.get(i, []), params)
        for i in active
    ]


def totals(lines: list[BillLine]) -> dict[str, int]:
    """The day's sums of every amount, with the net and what the market saved on import
    (the tariff-only bill less what was actually paid for energy)."""
    names = [n for n in BillLine._fields if n.endswith(("_wh", "_satang"))]
    out = {name: sum(getattr(line, name) for line in lines) for name in names}
    out["net_satang"] = sum(line.net_satang for line in lines)
    out["saved_satang"] = out["tariff_only_satang"] - out["tou_satang"] - out["p2p_paid_satang"]
    return out


def owner_trades(state: State, owner: bytes, intervals: range) -> list[records.Trade]:
    """The household's trades delivered in `intervals`, in the order they were made."""
    return [
        t
        for interval in intervals
        for t in queries.interval_trades(state, interval)
        if owner in (t.buyer, t.seller)
    ]
