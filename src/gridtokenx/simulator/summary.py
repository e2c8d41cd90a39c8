"""The end-of-day summary, read back from the ledger (state and events), never from what
the agents believe they did: it is the ledger's account of the day that a participant or
an auditor would see.

Every record is read through the contexts' queries (`accounts`, `registry`, `metering`,
`market.queries`, `grid.queries`, `certificates`, `governance`), never by key.

Comparisons with the utility are per interval and zone from the settlement reports: a
buyer's saving is what its P2P energy would have cost at the interval's TOU rate (with Ft
and VAT) minus what it paid for it (price, platform fee, wheeling); a seller's extra income
is what it was paid minus what the buy-back rate would have paid for the same energy. CO2
avoided is renewable P2P energy received times the governed grid emission factor.

The storyline's part (operators.py, storyline.py) is read the same way: grid reports are
the committed `transmission_status` and `distribution_status` events and the latest
frequency EGAT's record in state; certificates are the certificate records of the window's
intervals (issued, retired, for whom, the CO2e their retirements claim); the proposals are
those the events show submitted, with status, tally and heights from their records, so the
summary says where a vote stands at the height it was read instead of assuming it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from rich.console import Console
from rich.table import Table

from gridtokenx.ledger import (
    accounts,
    certificates,
    chain_info,
    governance,
    metering,
    registry,
)
from gridtokenx.ledger.context import Event
from gridtokenx.ledger.grid import queries as grid
from gridtokenx.ledger.market import queries as market
from gridtokenx.ledger.market.tariff import tariff_msat_per_kwh
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import State
from gridtokenx.simulator.markets import Comparison, compare

ON_PEAK: Final = "On-Peak"
OFF_PEAK: Final = "Off-Peak"
MSAT_PER_SATANG_KWH = 1_000_000  # msat/kWh x Wh -> satang


@dataclass
class PriceCell:
    energy_wh: int = 0  # delivered (sent by sellers)
    turnover: int = 0  # sum of delivered Wh x price: turnover / energy = satang per kWh
    trades: int = 0

    @property
    def average(self) -> int:
        return self.turnover // self.energy_wh if self.energy_wh else 0


@dataclass(frozen=True)
class ProposalLine:
    """Where one proposal stands, from its record."""

    id: int
    title: str
    kind: str
    status: str
    yes: int
    no: int
    abstain: int
    total_weight: int
    ballots: int
    voting_end_height: int
    execute_height: int  # 0 until it passes
    outcome: str


@dataclass
class ZoneFlow:
    """One zone's energy and money in one interval, from its settlement report."""

    delivered_wh: int = 0  # P2P energy its sellers sent
    received_wh: int = 0  # P2P energy its buyers received
    losses_wh: int = 0
    bought_back_wh: int = 0
    buyer_savings_satang: int = 0  # against the TOU rate
    seller_extra_satang: int = 0  # against the buy-back rate


@dataclass
class DaySummary:
    first_interval: int
    intervals: int
    state_root: str
    participants: int = 0
    transactions: int = 0  # committed: the sum of every account's nonce
    orders: int = 0
    trades: int = 0
    trades_settled: int = 0
    intervals_settled: int = 0  # from `interval_settled` events
    settled_at_deadline: int = 0
    metered_export_wh: int = 0
    metered_import_wh: int = 0
    p2p_delivered_wh: int = 0  # sent by sellers
    p2p_received_wh: int = 0  # received by buyers (delivered less losses)
    losses_wh: int = 0
    cross_zone_delivered_wh: int = 0
    bought_back_wh: int = 0
    shortfall_wh: int = 0
    grid_import_wh: int = 0  # metered import not covered by P2P energy
    renewable_received_wh: int = 0
    buyer_paid_satang: int = 0
    buyer_savings_satang: int = 0
    seller_income_satang: int = 0
    seller_extra_satang: int = 0
    imbalance_satang: int = 0
    utility_bills_satang: int = 0
    platform_fees_satang: int = 0
    wheeling_satang: int = 0
    debts_satang: int = 0
    co2_avoided_g: int = 0
    grid_minted_wh: int = 0
    grid_burned_wh: int = 0
    grid_held_wh: int = 0  # sum of balances
    thb_issued_satang: int = 0
    thb_redeemed_satang: int = 0
    thb_held_satang: int = 0
    prices: dict[tuple[str, str], PriceCell] = field(default_factory=dict)
    trade_zones: set[str] = field(default_factory=set)  # zones with a settled trade
    height: int = 0  # the last committed height the summary was read at (0: not given)
    transmission_reports: int = 0  # `transmission_status` events
    distribution_reports: int = 0  # `distribution_status` events
    latest_frequency_mhz: int = 0  # EGAT's latest accepted measurement; 0: none yet
    certificates_issued: int = 0  # of the window's intervals
    certificates_issued_wh: int = 0
    certificates_retired: int = 0
    certificates_retired_wh: int = 0
    certificates_active: int = 0
    beneficiaries: int = 0  # distinct beneficiaries of the retirements
    claimed_avoided_g: int = 0  # CO2e the retirements claim (fixed at issue)
    platform_fee_bp: int = 0  # in force when read
    proposals: list[ProposalLine] = field(default_factory=list)
    # per interval and zone, for `--export` (export.py): settled trades by buyer zone, the
    # settlement reports' energy, and the retail rate each interval's buyers compare with
    interval_prices: dict[tuple[int, str], PriceCell] = field(default_factory=dict)
    zone_flows: dict[tuple[int, str], ZoneFlow] = field(default_factory=dict)
    retail_msat_per_kwh: dict[int, int] = field(default_factory=dict)
    markets: Comparison = field(default_factory=Comparison)  # auction next to continuous

    @property
    def grid_reports(self) -> int:
        return self.transmission_reports + self.distribution_reports


def _certificates(s: DaySummary, state: State, first_interval: int, end: int) -> None:
    """Certificates whose energy ends in the window, by id (they count up from 1)."""
    beneficiaries: set[str] = set()
    for cert in certificates.issued(state):
        if not first_interval <= cert.last_interval < end:
            continue
        s.certificates_issued += 1
        s.certificates_issued_wh += cert.energy_wh
        if not cert.retired:
            s.certificates_active += 1
            continue
        s.certificates_retired += 1
        s.certificates_retired_wh += cert.energy_wh
        s.claimed_avoided_g += cert.avoided_g
        beneficiaries.add(cert.beneficiary)
    s.beneficiaries = len(beneficiaries)


def _proposal(state: State, proposal_id: int) -> ProposalLine | None:
    p = governance.get_proposal(state, proposal_id)
    if p is None:
        return None
    ballots = sum(1 for _ in governance.ballots(state, proposal_id))
    return ProposalLine(p.id, p.title, p.kind.name, p.status.name, p.yes, p.no, p.abstain,
                        p.total_weight, ballots, p.voting_end_height, p.execute_height,
                        p.outcome)  # fmt: skip


def _storyline(s: DaySummary, state: State, events: list[Event]) -> None:
    """Grid reports and proposals from the committed events, their records from state."""
    submitted = []
    for event in events:
        if event.kind == "transmission_status":
            s.transmission_reports += 1
        elif event.kind == "distribution_status":
            s.distribution_reports += 1
        elif event.kind == "proposal_submitted" and isinstance(event.attrs["id"], int):
            submitted.append(event.attrs["id"])
    latest = grid.transmission(state)
    s.latest_frequency_mhz = 0 if latest is None else latest.frequency_mhz
    found = (_proposal(state, i) for i in sorted(set(submitted)))
    s.proposals = [line for line in found if line is not None]


def _holdings(s: DaySummary, state: State) -> None:
    """Accounts, supply and participants: the ledger as a whole, not just the window."""
    for _, acct in accounts.all_accounts(state):
        s.transactions += acct.nonce
        s.grid_held_wh += acct.grid_wh
        s.thb_held_satang += acct.thb_satang
    supply = accounts.supply(state)
    s.grid_minted_wh, s.grid_burned_wh = supply.grid_minted_wh, supply.grid_burned_wh
    s.thb_issued_satang = supply.thb_issued_satang
    s.thb_redeemed_satang = supply.thb_redeemed_satang
    s.participants = sum(1 for _ in registry.participants(state))


def _trades(s: DaySummary, state: State, p: Params, window: range) -> None:
    """Orders and trades of the window's intervals; prices per buyer zone and TOU period,
    renewable energy received, from the settled trades."""
    peak_rate = (
        (p.tariffs.tou_peak_msat_per_kwh + p.tariffs.ft_msat_per_kwh)
        * (10_000 + p.tariffs.vat_basis_points)
        // 10_000
    )
    s.orders += sum(1 for order in market.orders(state) if order.interval_start in window)
    for trade in market.trades(state):
        if trade.interval_start not in window:
            continue
        s.trades += 1
        if not trade.settled:
            continue
        s.trades_settled += 1
        d = trade.delivered_wh
        if len(trade.path) > 1:
            s.cross_zone_delivered_wh += d
        s.renewable_received_wh += market.renewable_received_wh(state, trade) or 0
        peak = tariff_msat_per_kwh(trade.interval_start, p) == peak_rate
        cell = s.prices.setdefault((trade.buyer_zone, ON_PEAK if peak else OFF_PEAK), PriceCell())
        cell.energy_wh += d
        cell.turnover += d * trade.price
        cell.trades += 1
        one = s.interval_prices.setdefault((trade.interval_start, trade.buyer_zone), PriceCell())
        one.energy_wh += d
        one.turnover += d * trade.price
        one.trades += 1
        if d:
            s.trade_zones.update((trade.buyer_zone, trade.seller_zone))


def _reports(s: DaySummary, state: State, p: Params, window: range) -> None:
    """The settlement reports of the window's intervals, and what buyers saved and sellers
    earned against the utility's rates."""
    for start, zone, r in market.zone_reports(state):
        if start not in window:
            continue
        retail = tariff_msat_per_kwh(start, p)
        s.retail_msat_per_kwh[start] = retail
        saved = r.received_wh * retail // MSAT_PER_SATANG_KWH - r.paid_by_buyers_satang
        extra = (
            r.paid_to_sellers_satang
            - r.delivered_wh * p.tariffs.buyback_msat_per_kwh // MSAT_PER_SATANG_KWH
        )
        s.zone_flows[(start, zone)] = ZoneFlow(r.delivered_wh, r.received_wh, r.losses_wh,
                                               r.sold_to_utility_wh, saved, extra)  # fmt: skip
        s.p2p_delivered_wh += r.delivered_wh
        s.p2p_received_wh += r.received_wh
        s.losses_wh += r.losses_wh
        s.bought_back_wh += r.sold_to_utility_wh
        s.shortfall_wh += r.shortfall_wh
        s.grid_import_wh -= r.import_covered_wh
        s.buyer_paid_satang += r.paid_by_buyers_satang
        s.buyer_savings_satang += saved
        s.seller_income_satang += r.paid_to_sellers_satang
        s.seller_extra_satang += extra
        s.imbalance_satang += r.imbalance_satang
        s.utility_bills_satang += r.utility_bills_satang
        s.platform_fees_satang += r.platform_fees_satang
        s.wheeling_satang += r.wheeling_satang


def _settlements(s: DaySummary, events: list[Event], window: range) -> None:
    """Intervals settled (at their deadline or not) and debts, from the committed events."""
    for event in events:
        if event.kind == "interval_settled":
            settled = event.attrs["interval"]
            if isinstance(settled, int) and settled in window:
                s.intervals_settled += 1
                s.settled_at_deadline += int(event.attrs["at_deadline"] == 1)
        elif event.kind == "debt":
            amount = event.attrs["amount"]
            s.debts_satang += amount if isinstance(amount, int) else 0


def summarize(
    state: State,
    events: Iterable[Event],
    first_interval: int,
    intervals: int,
    height: int = 0,
) -> DaySummary:
    """The day's summary from `state` and the committed `events`; `height` is the last
    committed height (only shown: the proposals' status comes from their records)."""
    events = list(events)
    p = chain_info.params(state)
    end = first_interval + intervals * p.interval_seconds
    window = range(first_interval, end)  # the interval starts the day covers
    s = DaySummary(first_interval, intervals, state.root().hex(), height=height)
    s.platform_fee_bp = p.platform_fee_basis_points
    _holdings(s, state)
    for _, start, reading in metering.all_readings(state):
        if start in window:
            s.metered_export_wh += reading.export_wh
            s.metered_import_wh += reading.import_wh
    _trades(s, state, p, window)
    s.markets = compare(state, window)
    _reports(s, state, p, window)
    s.grid_import_wh += s.metered_import_wh
    s.co2_avoided_g = s.renewable_received_wh * p.emission_factor_g_per_kwh // 1000
    _settlements(s, events, window)
    _certificates(s, state, first_interval, end)
    _storyline(s, state, events)
    return s


def _kwh(wh: int) -> str:
    return f"{wh / 1000:,.1f} kWh"


def _thb(satang: int) -> str:
    return f"{satang / 100:,.2f} THB"


def facts_table(title: str, rows: tuple[tuple[str, str], ...]) -> Table:
    table = Table(title=title, show_header=False)
    for label, value in rows:
        table.add_row(label, value)
    return table


def _grid_table(s: DaySummary) -> Table:
    frequency = f"{s.latest_frequency_mhz / 1000:.3f} Hz" if s.latest_frequency_mhz else "-"
    return facts_table("Grid operators (SCADA reports)", (
        ("grid status reports committed", f"{s.grid_reports:,}"),
        ("  transmission (EGAT) / distribution (MEA, PEA)",
         f"{s.transmission_reports:,} / {s.distribution_reports:,}"),
        ("latest system frequency", frequency),
    ))  # fmt: skip


def _certificate_table(s: DaySummary) -> Table:
    return facts_table("Renewable energy certificates", (
        ("issued", f"{s.certificates_issued:,} ({s.certificates_issued_wh / 1e6:,.1f} MWh)"),
        ("retired / beneficiaries", f"{s.certificates_retired:,} / {s.beneficiaries:,}"),
        ("CO2e claimed by retirements", f"{s.claimed_avoided_g / 1000:,.1f} kgCO2e"),
        ("still active", f"{s.certificates_active:,}"),
    ))  # fmt: skip


def _stage(line: ProposalLine) -> str:
    """The status, with the reason when it was rejected or failed."""
    return f"{line.status}: {line.outcome}" if line.outcome else line.status


def _governance_table(s: DaySummary) -> Table:
    rows: list[tuple[str, str]] = []
    for line in s.proposals:
        rows += [
            (f"proposal {line.id} ({line.kind})", line.title),
            (f"proposal {line.id} status", _stage(line)),
            ("  yes / no / abstain of total weight",
             f"{line.yes:,} / {line.no:,} / {line.abstain:,} of {line.total_weight:,} "
             f"({line.ballots} ballots)"),
            ("  voting ends / executes at height",
             f"{line.voting_end_height:,} / {line.execute_height or '-'}"),
        ]  # fmt: skip
    if not rows:
        rows.append(("proposals submitted", "none"))
    rows.append(("chain height when read", f"{s.height:,}" if s.height else "-"))
    fee = f"{s.platform_fee_bp} bp ({s.platform_fee_bp / 100:.2f} %)"
    rows.append(("platform fee in force", fee))
    return facts_table("Governance", tuple(rows))


def _markets_table(c: Comparison) -> Table:
    """The auction next to continuous trading: energy share, welfare, prices per zone."""
    table = Table(title="Day-ahead auction and continuous trading (from the committed trades)")
    for column in ("", "auction", "continuous"):
        table.add_column(column)
    a, k = c.auction, c.continuous
    table.add_row("auctions cleared / cancelled", f"{c.auctions_cleared} / "
                  f"{c.auctions_cancelled}", "-")  # fmt: skip
    table.add_row("trades", f"{a.trades:,}", f"{k.trades:,}")
    share = [f"{_kwh(m.energy_wh)} ({c.share_permille(m) / 10:.1f} %)" for m in (a, k)]
    table.add_row("energy traded (share)", *share)
    table.add_row("welfare at stated prices", _thb(a.welfare_satang), _thb(k.welfare_satang))
    table.add_row("  certified by the clearings", _thb(c.certified_satang), "-")
    for zone in c.zones:
        vwap = [f"{m.vwap(zone) / 100:.2f}" if zone in m.zones else "-" for m in (a, k)]
        table.add_row(f"average price into {zone}, THB/kWh", *vwap)
    return table


def render(summary: DaySummary, console: Console | None = None) -> None:
    """Print the summary as tables (what `gridtokenx demo` will show at the end)."""
    out = console or Console()
    s = summary
    energy = facts_table(
        "Energy",
        (
            ("metered export (all meters)", _kwh(s.metered_export_wh)),
            ("metered import (all meters)", _kwh(s.metered_import_wh)),
            ("traded P2P, delivered by sellers", _kwh(s.p2p_delivered_wh)),
            ("  of which across zones", _kwh(s.cross_zone_delivered_wh)),
            ("  received by buyers", _kwh(s.p2p_received_wh)),
            ("  transmission losses", _kwh(s.losses_wh)),
            ("from the grid (import not covered P2P)", _kwh(s.grid_import_wh)),
            ("sold export bought back by the utility", _kwh(s.bought_back_wh)),
            ("sold but not delivered (imbalance)", _kwh(s.shortfall_wh)),
            ("CO2 avoided", f"{s.co2_avoided_g / 1000:,.1f} kgCO2e"),
        ),
    )
    money = facts_table(
        "Money",
        (
            ("paid by buyers (price, fee, wheeling)", _thb(s.buyer_paid_satang)),
            ("buyers saved versus the TOU tariff", _thb(s.buyer_savings_satang)),
            ("paid to sellers", _thb(s.seller_income_satang)),
            ("sellers earned above the buy-back rate", _thb(s.seller_extra_satang)),
            ("imbalance charges", _thb(s.imbalance_satang)),
            ("TOU bills of trading parties", _thb(s.utility_bills_satang)),
            (
                "platform fees / wheeling",
                f"{_thb(s.platform_fees_satang)} / {_thb(s.wheeling_satang)}",
            ),
            ("recorded debts", _thb(s.debts_satang)),
        ),
    )
    prices = Table(title="Average P2P price by buyer zone and TOU period")
    for column in ("zone", "period", "trades", "energy", "THB/kWh"):
        prices.add_column(column)
    for (zone, period), cell in sorted(s.prices.items()):
        prices.add_row(zone, period, str(cell.trades), _kwh(cell.energy_wh),
                       f"{cell.average / 100:.2f}")  # fmt: skip
    ledger = facts_table("Ledger", (
        ("participants", f"{s.participants:,}"),
        ("transactions committed", f"{s.transactions:,}"),
        ("orders / trades (settled)", f"{s.orders:,} / {s.trades:,} ({s.trades_settled:,})"),
        ("intervals settled (at deadline)", f"{s.intervals_settled} ({s.settled_at_deadline})"),
        ("GRID minted - burned = held",
         f"{s.grid_minted_wh:,} - {s.grid_burned_wh:,} = {s.grid_held_wh:,} Wh"),
        ("THB issued - redeemed = held",
         f"{s.thb_issued_satang:,} - {s.thb_redeemed_satang:,} = {s.thb_held_satang:,} satang"),
        ("state root", s.state_root),
    ))  # fmt: skip
    markets = [_markets_table(s.markets)] if s.markets.auctions_cleared else []
    for table in (energy, money, prices, *markets, _grid_table(s), _certificate_table(s),
                  _governance_table(s), ledger):  # fmt: skip
        out.print(table)
