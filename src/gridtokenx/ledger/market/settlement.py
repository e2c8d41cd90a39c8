"""Gate closure and settlement against meter readings (halts: halts.py; tariff: tariff.py).

`end_block` runs after every block's transactions with the block's context (the only clock):
it expires the resting orders of intervals whose gate has closed, and settles each ended
interval once every meter of its trading parties has reported, or at the governed deadline.

Settlement follows the energy. A seller's metered export for the interval was moved into
escrow when its reading arrived (`record_reading`), so it cannot be spent twice. The seller
delivers min(sold, exported), spread pro rata over its trades; a shortfall is charged at the
imbalance price; export not sold P2P is bought by the zone's distribution authority at the
buy-back rate. Buyers receive delivered energy less path losses (losses are burnt) and pay
the trade price for what was delivered from their escrow, the rest refunded. GRID received
is then burnt against the buyer's metered import; import it does not cover is billed at the
TOU tariff. A payer who is short pays what it has and the rest is recorded as a debt.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from gridtokenx.ledger import accounts, registry
from gridtokenx.ledger.chain_info import chain_info
from gridtokenx.ledger.context import BlockContext, Event, EventValue
from gridtokenx.ledger.market import bookkeeping, orderbook, records, trading
from gridtokenx.ledger.market.records import IntervalStatus, OrderStatus, ZoneReport
from gridtokenx.ledger.market.tariff import tariff_msat_per_kwh
from gridtokenx.ledger.market.trading import gate_closure
from gridtokenx.ledger.metering import ReadingRecord, reading_key
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import Overlay
from gridtokenx.wire.tx import Asset

TRANSMISSION_OPERATOR = "EGAT"
MSAT_PER_SATANG = 1000


# --- readings ------------------------------------------------------------------------------
def record_reading(
    view: Overlay, meter_address: bytes, interval_start: int, params: Params
) -> list[Event]:
    """Called after a reading is applied. For every interval the reading covers in which the
    meter's owner traded, note the metered import and move the export into escrow until
    settlement, so the same energy cannot be both delivered and spent. A reading after a
    gap covers several intervals; its energy is spread over them evenly (whole Wh, the
    remainder to the earliest), as the registers cannot say more."""
    record = view.get(reading_key(meter_address, interval_start), ReadingRecord)
    if record is None:
        return []
    length = params.interval_seconds
    covered = range(record.covers_from, interval_start + 1, length)
    exports = spread(record.export_wh, len(covered))
    imports = spread(record.import_wh, len(covered))
    events: list[Event] = []
    for start, exported, imported in zip(covered, exports, imports, strict=True):
        market = bookkeeping.interval_market(view, start)
        if market is None or market.status is IntervalStatus.SETTLED:
            continue
        pos = bookkeeping.position(view, start, record.zone, record.owner)
        if pos.sold_wh == 0 and pos.bought_wh == 0:
            continue
        lock = exported if pos.sold_wh else 0
        if lock:
            moved = accounts.move(view, record.owner, accounts.ESCROW_ADDRESS, Asset.GRID, lock)
            attrs: dict[str, EventValue] = {
                "owner": record.owner, "interval": start, "amount": lock, **moved,
            }  # fmt: skip
            events.append(Event("export_locked", attrs))
        bookkeeping.update_position(
            view,
            start,
            record.zone,
            record.owner,
            locked_export_wh=lock,
            metered_import_wh=imported,
        )
    return events


def spread(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


# --- end of block --------------------------------------------------------------------------
def end_block(view: Overlay, ctx: BlockContext, params: Params) -> list[Event]:
    """Commits as it goes (it cannot be rejected): re-matching needs each step's fills in
    the engine's books before the next step plans."""
    events = _rematch_resumed(view, ctx, params)
    active = view.get(records.ACTIVE_KEY, records.Active)
    if active is None:
        return events
    remaining = []
    for start in active.intervals:
        market = bookkeeping.interval_market(view, start)
        assert market is not None
        if market.status is IntervalStatus.OPEN and ctx.time >= gate_closure(start, params):
            events += _expire(view, start, market)
            market = msgspec.structs.replace(market, status=IntervalStatus.CLOSED)
            view.put(records.interval_key(start), market)
        end = start + params.interval_seconds
        if market.status is IntervalStatus.CLOSED and ctx.time >= end:
            deadline = ctx.time >= end + params.settlement_deadline_seconds
            if deadline or _all_reported(view, start, market):
                events += _settle(view, ctx, start, market, params, at_deadline=deadline)
                continue
        remaining.append(start)
    if remaining:
        view.put(records.ACTIVE_KEY, records.Active(tuple(remaining)))
    else:
        view.delete(records.ACTIVE_KEY)
    return events


def _rematch_resumed(view: Overlay, ctx: BlockContext, params: Params) -> list[Event]:
    pending = view.get(records.REMATCH_KEY, records.Rematch)
    if pending is None:
        return []
    view.delete(records.REMATCH_KEY)
    view.commit()
    active = view.get(records.ACTIVE_KEY, records.Active)
    events: list[Event] = []
    books = orderbook.books(view.base)
    for start in () if active is None else active.intervals:
        market = bookkeeping.interval_market(view, start)
        if market is None or market.status is not IntervalStatus.OPEN:
            continue
        if ctx.time >= gate_closure(start, params):
            continue
        if not any(zone in market.zones for zone in pending.zones):
            continue
        ids = sorted(
            (r.priority, r.id)
            for (interval, _, _), side in books.sides.items()
            if interval == start
            for r in side.best_first()
        )
        for _, order_id in ids:
            order = bookkeeping.get_order(view, order_id)
            if order.status is OrderStatus.OPEN:
                events += trading.rematch(view, ctx, order, params)
                view.commit()
    return events


def _expire(view: Overlay, start: int, market: records.IntervalMarket) -> list[Event]:
    events = []
    for zone in market.zones:
        current = bookkeeping.book_of(view, start, zone)  # a snapshot: closing edits the levels
        for _, _, order_id in (*current.bids, *current.asks):
            order = bookkeeping.get_order(view, order_id)
            events.append(bookkeeping.close_order(view, order, OrderStatus.EXPIRED, "gate_closure"))
    return events


def _party_meters(view: Overlay, who: bytes, zone: str) -> list[tuple[bytes, registry.Meter]]:
    index = view.get(registry.owner_meters_key(who), registry.OwnerMeters)
    found = []
    for address in () if index is None else index.meters:
        meter = view.get(registry.meter_key(address), registry.Meter)
        if meter is not None and meter.zone == zone:
            found.append((address, meter))
    return found


def _all_reported(view: Overlay, start: int, market: records.IntervalMarket) -> bool:
    for who, zone in bookkeeping.interval_parties(view, start, market):
        for _, meter in _party_meters(view, who, zone):
            if meter.first_interval <= start and meter.last_interval < start:
                return False
    return True


def _authority_address(view: Overlay, code: str) -> bytes:
    ref = view.get(registry.authority_code_key(code), registry.AuthorityRef)
    assert ref is not None, f"authority {code} missing from genesis"
    return ref.address


def _distributor(view: Overlay, zone: str) -> bytes:
    return _authority_address(view, registry.require_zone(view, zone).distribution_authority)


class Where(NamedTuple):
    """The interval and zone a settlement movement is reported under (the zone whose
    `ZoneReport` counts it), and the trade it is for, if any: every payment and burn event
    carries these so an audit export can total them per interval and zone."""

    interval: int
    zone: str
    trade: int | None = None

    def attrs(self) -> dict[str, EventValue]:
        out: dict[str, EventValue] = {"interval": self.interval, "zone": self.zone}
        if self.trade is not None:
            out["trade"] = self.trade
        return out


def _pay(
    view: Overlay, payer: bytes, payee: bytes, amount: int, why: str, where: Where
) -> list[Event]:
    """Move THB; if the payer is short, move what it has and record the rest as a debt."""
    if amount <= 0:
        return []
    account = accounts.get_account(view, payer)
    paid = min(amount, 0 if account is None else account.thb_satang)
    moved = accounts.move(view, payer, payee, Asset.THB, paid) if paid else {}
    attrs: dict[str, EventValue] = {
        "from": payer, "to": payee, "amount": paid, "for": why, **moved,
    }  # fmt: skip
    events = [Event("payment", attrs | where.attrs())]
    if paid < amount:
        key = records.debt_key(payer, payee)
        debt = view.get(key, records.Debt) or records.Debt(0)
        view.put(key, records.Debt(debt.amount_satang + amount - paid))
        owed: dict[str, EventValue] = {
            "debtor": payer, "creditor": payee, "amount": amount - paid, "for": why,
        }  # fmt: skip
        events.append(Event("debt", owed | where.attrs()))
    return events


def _burn(
    view: Overlay, holder: bytes, amount: int, why: str, where: Where, owner: bytes
) -> list[Event]:
    """Burn GRID at settlement, with the event that accounts for it: `owner` is the
    participant whose energy it was (the escrow holds sellers' energy anonymously)."""
    if not amount:
        return []
    burned = accounts.burn(view, holder, Asset.GRID, amount)
    attrs: dict[str, EventValue] = {
        "from": holder, "owner": owner, "amount": amount, **burned, "for": why,
    }  # fmt: skip
    return [Event("burned", attrs | where.attrs())]


def _pro_rata(total: int, weights: list[tuple[int, int]]) -> dict[int, int]:
    """Split `total` over (id, weight) in proportion, whole units, largest remainders first
    (ties by id): deterministic and exact."""
    weight_sum = sum(w for _, w in weights)
    if weight_sum == 0:
        return {i: 0 for i, _ in weights}
    shares = {i: w * total // weight_sum for i, w in weights}
    leftover = total - sum(shares.values())
    by_remainder = sorted(weights, key=lambda iw: (-(iw[1] * total % weight_sum), iw[0]))
    for i, _ in by_remainder[:leftover]:
        shares[i] += 1
    return shares


class _ZoneReports:
    """Each zone's report for the interval, added to as sellers, trades and bills settle.

    One trade adds to its seller's zone and to its buyer's zone, so a report is the sum of
    many small contributions rather than built in one place."""

    def __init__(self) -> None:
        self._by_zone: dict[str, ZoneReport] = {}

    def add(self, zone: str, **amounts: int) -> None:
        r = self._by_zone.get(zone, ZoneReport())
        self._by_zone[zone] = msgspec.structs.replace(
            r, **{k: getattr(r, k) + v for k, v in amounts.items()}
        )

    def by_zone(self) -> list[tuple[str, ZoneReport]]:
        """Sorted by zone code: the order they are written in must not depend on the trades."""
        return sorted(self._by_zone.items())


def _settle(
    view: Overlay,
    ctx: BlockContext,
    start: int,
    market: records.IntervalMarket,
    params: Params,
    *,
    at_deadline: bool,
) -> list[Event]:
    """Sellers first, since what each delivered decides what its trades carry; then the
    trades, since what a buyer received covers part of its import; then every party's bill."""
    trades = _interval_trades(view, start, market)
    parties = bookkeeping.interval_parties(view, start, market)
    reports = _ZoneReports()
    delivered, events = _settle_sellers(view, start, parties, trades, params, reports)
    received_by, trade_events = _settle_trades(view, trades, delivered, params, reports)
    events += trade_events
    events += _settle_bills(view, start, parties, received_by, params, reports)
    for zone, r in reports.by_zone():
        _check_conservation(zone, r)
        view.put(records.report_key(start, zone), r)
        fields: dict[str, EventValue] = msgspec.structs.asdict(r)
        where: dict[str, EventValue] = {"interval": start, "zone": zone}
        events.append(Event("zone_report", where | fields))
    view.put(
        records.interval_key(start), msgspec.structs.replace(market, status=IntervalStatus.SETTLED)
    )
    events.append(
        Event(
            "interval_settled",
            {"interval": start, "trades": len(trades), "at_deadline": int(at_deadline)},
        )
    )
    return events


def _interval_trades(
    view: Overlay, start: int, market: records.IntervalMarket
) -> list[records.Trade]:
    trades = []
    for trade_id in bookkeeping.interval_trades(view, start, market):
        trade = view.get(records.trade_key(trade_id), records.Trade)
        assert trade is not None, f"interval {start} lists trade {trade_id}, which is missing"
        trades.append(trade)
    return trades


# --- settlement: sellers -------------------------------------------------------------------
def _settle_sellers(
    view: Overlay,
    start: int,
    parties: list[tuple[bytes, str]],
    trades: list[records.Trade],
    params: Params,
    reports: _ZoneReports,
) -> tuple[dict[int, int], list[Event]]:
    """Each seller delivers min(sold, exported), spread pro rata over its trades; returns the
    energy delivered per trade id. Export beyond what was sold went to the utility, and what
    was sold but not exported is the seller's imbalance."""
    delivered_wh_by_trade: dict[int, int] = {}
    events: list[Event] = []
    for who, zone in parties:
        own = [t for t in trades if t.seller == who and t.seller_zone == zone]
        if not own:
            continue
        sold_wh = sum(t.quantity_wh for t in own)
        exported_wh = bookkeeping.position(view, start, zone, who).locked_export_wh
        delivered_wh = min(sold_wh, exported_wh)
        delivered_wh_by_trade.update(_pro_rata(delivered_wh, [(t.id, t.quantity_wh) for t in own]))
        where = Where(start, zone)
        amounts = {
            "sold_wh": sold_wh,
            "export_wh": exported_wh,
            "delivered_wh": delivered_wh,
            "sold_to_utility_wh": exported_wh - delivered_wh,
            "shortfall_wh": sold_wh - delivered_wh,
            "buyback_satang": _buyback_satang(exported_wh - delivered_wh, params),
            "imbalance_satang": (sold_wh - delivered_wh) * params.imbalance_satang_per_kwh // 1000,
        }
        base: dict[str, EventValue] = {"owner": who, "zone": zone, "interval": start}
        events.append(Event("seller_settled", base | amounts))
        events += _buy_back(view, who, where, amounts["sold_to_utility_wh"], params, reports)
        events += _charge_imbalance(view, who, where, amounts["imbalance_satang"], reports)
        reports.add(
            zone,
            export_wh=exported_wh,
            delivered_wh=delivered_wh,
            sold_to_utility_wh=exported_wh - delivered_wh,
            shortfall_wh=sold_wh - delivered_wh,
        )
    return delivered_wh_by_trade, events


def _buyback_satang(unsold_wh: int, params: Params) -> int:
    return unsold_wh * params.tariffs.buyback_msat_per_kwh // 1000 // MSAT_PER_SATANG


def _buy_back(
    view: Overlay, seller: bytes, where: Where, unsold_wh: int, params: Params,
    reports: _ZoneReports,
) -> list[Event]:  # fmt: skip
    """The utility took the export nobody bought: its GRID leaves escrow, and the zone's
    distribution authority pays the seller the buy-back rate."""
    if not unsold_wh:
        return []
    events = _burn(view, accounts.ESCROW_ADDRESS, unsold_wh, "buyback", where, seller)
    buyback = _buyback_satang(unsold_wh, params)
    reports.add(where.zone, buyback_satang=buyback)
    return events + _pay(view, _distributor(view, where.zone), seller, buyback, "buyback", where)


def _charge_imbalance(
    view: Overlay, seller: bytes, where: Where, imbalance: int, reports: _ZoneReports
) -> list[Event]:
    """Energy sold but not exported was made up by the grid: the seller pays for it."""
    reports.add(where.zone, imbalance_satang=imbalance)
    return _pay(view, seller, _distributor(view, where.zone), imbalance, "imbalance", where)


# --- settlement: trades --------------------------------------------------------------------
class TradeCharges(NamedTuple):
    """What a trade's escrow pays for its delivered energy; the refund is what is left."""

    value_satang: int  # to the seller
    fee_satang: int  # to the platform's fee collector
    wheeling_satang: int  # to the network the energy crossed
    refund_satang: int  # back to the buyer

    @property
    def paid_by_buyer_satang(self) -> int:
        return self.value_satang + self.fee_satang + self.wheeling_satang


def _settle_trades(
    view: Overlay,
    trades: list[records.Trade],
    delivered_wh_by_trade: dict[int, int],
    params: Params,
    reports: _ZoneReports,
) -> tuple[dict[tuple[bytes, str], int], list[Event]]:
    """Energy to each buyer less losses, money from escrow to the seller and the network;
    returns the energy each (buyer, zone) received."""
    fee_collector = _fee_collector(view)
    received_wh_by_buyer: dict[tuple[bytes, str], int] = {}
    events: list[Event] = []
    for trade in trades:
        delivered_wh = delivered_wh_by_trade.get(trade.id, 0)
        received_wh, burned = _deliver(view, trade, delivered_wh)
        charges = trade_charges(trade, delivered_wh, params)
        events.append(_trade_settled(trade, delivered_wh, received_wh, charges))
        events += burned + _pay_from_escrow(view, trade, charges, fee_collector)
        view.put(
            records.trade_key(trade.id),
            msgspec.structs.replace(trade, delivered_wh=delivered_wh, settled=True),
        )
        key = (trade.buyer, trade.buyer_zone)
        received_wh_by_buyer[key] = received_wh_by_buyer.get(key, 0) + received_wh
        reports.add(
            trade.buyer_zone,
            received_wh=received_wh,
            paid_by_buyers_satang=charges.paid_by_buyer_satang,
            refunded_satang=charges.refund_satang,
            platform_fees_satang=charges.fee_satang,
            wheeling_satang=charges.wheeling_satang,
        )
        reports.add(
            trade.seller_zone,
            losses_wh=delivered_wh - received_wh,
            paid_to_sellers_satang=charges.value_satang,
        )
    return received_wh_by_buyer, events


def _trade_settled(
    trade: records.Trade, delivered_wh: int, received_wh: int, charges: TradeCharges
) -> Event:
    """What the trade delivered and cost: the record its payments and its losses' burn are
    checked against in an audit (each is also reported under its zone)."""
    attrs: dict[str, EventValue] = {
        "trade": trade.id,
        "interval": trade.interval_start,
        "buyer_zone": trade.buyer_zone,
        "seller_zone": trade.seller_zone,
        "delivered_wh": delivered_wh,
        "received_wh": received_wh,
        "losses_wh": delivered_wh - received_wh,
        "value_satang": charges.value_satang,
        "fee_satang": charges.fee_satang,
        "wheeling_satang": charges.wheeling_satang,
        "refund_satang": charges.refund_satang,
    }
    return Event("trade_settled", attrs)


def _deliver(view: Overlay, trade: records.Trade, delivered_wh: int) -> tuple[int, list[Event]]:
    """The buyer receives the delivered energy less the path's losses, which are burnt
    (reported under the seller's zone); returns what it received and the burn's event."""
    received_wh = delivered_wh * (10_000 - trade.loss_bp) // 10_000
    ref: dict[str, EventValue] = {"trade": trade.id, "interval": trade.interval_start}
    received = bookkeeping.move_escrow(
        view, accounts.ESCROW_ADDRESS, trade.buyer, Asset.GRID, received_wh, "delivery", ref
    )
    where = Where(trade.interval_start, trade.seller_zone, trade.id)
    losses_wh = delivered_wh - received_wh
    return received_wh, received + _burn(
        view, accounts.ESCROW_ADDRESS, losses_wh, "losses", where, trade.seller
    )


def trade_charges(trade: records.Trade, delivered_wh: int, params: Params) -> TradeCharges:
    """Charges are at today's rates, but never beyond what the buyer put in escrow: a rate
    raised since the trade takes the fee first, then wheeling, from what is left over."""
    value = bookkeeping.value_satang(delivered_wh, trade.price)
    fee = min(value * params.platform_fee_basis_points // 10_000, trade.escrow_satang - value)
    wheeling = min(
        delivered_wh * params.wheeling_satang_per_kwh // 1000, trade.escrow_satang - value - fee
    )
    refund = trade.escrow_satang - value - fee - wheeling
    assert refund >= 0, "trade escrow must cover its cost"
    return TradeCharges(value, fee, wheeling, refund)


def _pay_from_escrow(
    view: Overlay, trade: records.Trade, charges: TradeCharges, fee_collector: bytes
) -> list[Event]:
    """A trade's escrow always covers its charges (`_charges`), so these never run short.
    The value is reported under the seller's zone, the rest under the buyer's (as in
    `ZoneReport`)."""
    network = (
        _distributor(view, trade.buyer_zone)
        if len(trade.path) == 1
        else _authority_address(view, TRANSMISSION_OPERATOR)
    )
    events = []
    for payee, amount, why, zone in (
        (trade.seller, charges.value_satang, "trade_value", trade.seller_zone),
        (fee_collector, charges.fee_satang, "platform_fee", trade.buyer_zone),
        (network, charges.wheeling_satang, "wheeling", trade.buyer_zone),
        (trade.buyer, charges.refund_satang, "refund", trade.buyer_zone),
    ):
        if amount:
            events += _pay(
                view, accounts.ESCROW_ADDRESS, payee, amount, why,
                Where(trade.interval_start, zone, trade.id),
            )  # fmt: skip
    return events


# --- settlement: bills ---------------------------------------------------------------------
def _settle_bills(
    view: Overlay,
    start: int,
    parties: list[tuple[bytes, str]],
    received_wh_by_buyer: dict[tuple[bytes, str], int],
    params: Params,
    reports: _ZoneReports,
) -> list[Event]:
    """Every party's P2P energy received is burnt against its metered import; import it does
    not cover is billed at the TOU tariff by the zone's distribution authority."""
    tariff = tariff_msat_per_kwh(start, params)
    events: list[Event] = []
    for who, zone in parties:
        imported_wh = bookkeeping.position(view, start, zone, who).metered_import_wh
        covered_wh = min(imported_wh, received_wh_by_buyer.get((who, zone), 0))
        bill = (imported_wh - covered_wh) * tariff // 1000 // MSAT_PER_SATANG
        where = Where(start, zone)
        if imported_wh:
            attrs: dict[str, EventValue] = {
                "owner": who, "zone": zone, "interval": start, "import_wh": imported_wh,
                "import_covered_wh": covered_wh, "bill_satang": bill,
            }  # fmt: skip
            events.append(Event("import_billed", attrs))
        events += _burn(view, who, covered_wh, "import_covered", where, who)
        events += _pay(view, who, _distributor(view, zone), bill, "tou_tariff", where)
        reports.add(
            zone, import_wh=imported_wh, import_covered_wh=covered_wh, utility_bills_satang=bill
        )
    return events


def _check_conservation(zone: str, r: ZoneReport) -> None:
    """Energy in = energy out + losses; a violation is a bug, so it stops the node."""
    if r.export_wh != r.delivered_wh + r.sold_to_utility_wh:
        raise AssertionError(f"{zone}: export != delivered + sold to utility: {r}")


def _fee_collector(view: Overlay) -> bytes:
    return chain_info(view).fee_collector
