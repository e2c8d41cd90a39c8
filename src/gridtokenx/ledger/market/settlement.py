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

import msgspec

from gridtokenx.ledger import accounts, registry
from gridtokenx.ledger.chain_info import chain_info
from gridtokenx.ledger.context import BlockContext, Event
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
    exports = _spread(record.export_wh, len(covered))
    imports = _spread(record.import_wh, len(covered))
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
            accounts.move(view, record.owner, accounts.ESCROW_ADDRESS, Asset.GRID, lock)
            events.append(
                Event("export_locked", {"owner": record.owner, "interval": start, "amount": lock})
            )
        bookkeeping.update_position(
            view,
            start,
            record.zone,
            record.owner,
            locked_export_wh=lock,
            metered_import_wh=imported,
        )
    return events


def _spread(total: int, parts: int) -> list[int]:
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


def _pay(view: Overlay, payer: bytes, payee: bytes, amount: int, why: str) -> list[Event]:
    """Move THB; if the payer is short, move what it has and record the rest as a debt."""
    if amount <= 0:
        return []
    account = accounts.get_account(view, payer)
    paid = min(amount, 0 if account is None else account.thb_satang)
    if paid:
        accounts.move(view, payer, payee, Asset.THB, paid)
    events = [Event("payment", {"from": payer, "to": payee, "amount": paid, "for": why})]
    if paid < amount:
        key = records.debt_key(payer, payee)
        debt = view.get(key, records.Debt) or records.Debt(0)
        view.put(key, records.Debt(debt.amount_satang + amount - paid))
        events.append(
            Event("debt", {"debtor": payer, "creditor": payee, "amount": amount - paid, "for": why})
        )
    return events


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


def _settle(
    view: Overlay,
    ctx: BlockContext,
    start: int,
    market: records.IntervalMarket,
    params: Params,
    *,
    at_deadline: bool,
) -> list[Event]:
    escrow = accounts.ESCROW_ADDRESS
    fee_collector = _fee_collector(view)
    trades = [
        view.get(records.trade_key(i), records.Trade)
        for i in bookkeeping.interval_trades(view, start, market)
    ]
    parties = bookkeeping.interval_parties(view, start, market)
    reports: dict[str, ZoneReport] = {}
    events: list[Event] = []

    def report(zone: str, **add: int) -> None:
        r = reports.get(zone, ZoneReport())
        reports[zone] = msgspec.structs.replace(r, **{k: getattr(r, k) + v for k, v in add.items()})

    # Sellers: delivered = min(sold, exported), spread over their trades.
    delivered: dict[int, int] = {}
    for who, zone in parties:
        own = [t for t in trades if t is not None and t.seller == who and t.seller_zone == zone]
        if not own:
            continue
        pos = bookkeeping.position(view, start, zone, who)
        sold, exported = sum(t.quantity_wh for t in own), pos.locked_export_wh
        done = min(sold, exported)
        delivered.update(_pro_rata(done, [(t.id, t.quantity_wh) for t in own]))
        shortfall, to_utility = sold - done, exported - done
        distributor = _distributor(view, zone)
        if to_utility:
            accounts.burn(view, escrow, Asset.GRID, to_utility)  # the utility took that energy
            buyback = to_utility * params.tariffs.buyback_msat_per_kwh // 1000 // MSAT_PER_SATANG
            events += _pay(view, distributor, who, buyback, "buyback")
            report(zone, buyback_satang=buyback)
        imbalance = shortfall * params.imbalance_satang_per_kwh // 1000
        events += _pay(view, who, distributor, imbalance, "imbalance")
        report(
            zone,
            export_wh=exported,
            delivered_wh=done,
            sold_to_utility_wh=to_utility,
            shortfall_wh=shortfall,
            imbalance_satang=imbalance,
        )

    # Trades: energy to the buyer less losses, money from escrow to the seller.
    received_by: dict[tuple[bytes, str], int] = {}
    for trade in trades:
        assert trade is not None
        d = delivered.get(trade.id, 0)
        received = d * (10_000 - trade.loss_bp) // 10_000
        if received:
            accounts.move(view, escrow, trade.buyer, Asset.GRID, received)
        if d - received:
            accounts.burn(view, escrow, Asset.GRID, d - received)
        value = bookkeeping.value_satang(d, trade.price)
        # Charges are at today's rates, but never beyond what the buyer put in escrow: a rate
        # raised since the trade takes the fee first, then wheeling, from what is left over.
        fee = min(value * params.platform_fee_basis_points // 10_000, trade.escrow_satang - value)
        wheeling = min(
            d * params.wheeling_satang_per_kwh // 1000, trade.escrow_satang - value - fee
        )
        network = (
            _distributor(view, trade.buyer_zone)
            if len(trade.path) == 1
            else _authority_address(view, TRANSMISSION_OPERATOR)
        )
        refund = trade.escrow_satang - value - fee - wheeling
        assert refund >= 0, "trade escrow must cover its cost"
        for payee, amount in (
            (trade.seller, value),
            (fee_collector, fee),
            (network, wheeling),
            (trade.buyer, refund),
        ):
            if amount:
                accounts.move(view, escrow, payee, Asset.THB, amount)
        view.put(
            records.trade_key(trade.id),
            msgspec.structs.replace(trade, delivered_wh=d, settled=True),
        )
        key = (trade.buyer, trade.buyer_zone)
        received_by[key] = received_by.get(key, 0) + received
        report(
            trade.buyer_zone,
            received_wh=received,
            paid_by_buyers_satang=value + fee + wheeling,
            refunded_satang=refund,
            platform_fees_satang=fee,
            wheeling_satang=wheeling,
        )
        report(trade.seller_zone, losses_wh=d - received, paid_to_sellers_satang=value)
        events.append(Event("trade_settled", {"trade": trade.id, "delivered_wh": d}))

    # Every party: P2P energy received is burnt against metered import; the rest is billed.
    for who, zone in parties:
        imported = bookkeeping.position(view, start, zone, who).metered_import_wh
        covered = min(imported, received_by.get((who, zone), 0))
        if covered:
            accounts.burn(view, who, Asset.GRID, covered)
        bill = (imported - covered) * tariff_msat_per_kwh(start, params) // 1000 // MSAT_PER_SATANG
        events += _pay(view, who, _distributor(view, zone), bill, "tou_tariff")
        report(zone, import_wh=imported, import_covered_wh=covered, utility_bills_satang=bill)

    for zone, r in sorted(reports.items()):
        _check_conservation(zone, r)
        view.put(records.report_key(start, zone), r)
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


def _check_conservation(zone: str, r: ZoneReport) -> None:
    """Energy in = energy out + losses; a violation is a bug, so it stops the node."""
    if r.export_wh != r.delivered_wh + r.sold_to_utility_wh:
        raise AssertionError(f"{zone}: export != delivered + sold to utility: {r}")


def _fee_collector(view: Overlay) -> bytes:
    return chain_info(view).fee_collector
