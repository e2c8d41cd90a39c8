"""Governed parameters: every market and metering rule reads its numbers from here.

Defaults come from ../shared/thai-market.md (sources named there). They live in the genesis
file and in state, never as constants in the rules, so that governance can change them. All
values are integers: money in satang or milli-satang, energy in Wh, power in W, time in
seconds, frequency in mHz, emission factor in gCO2e per kWh.
"""

from __future__ import annotations

import msgspec


class Tariffs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Utility rates in milli-satang per kWh (1 THB = 100,000 msat), so 5.7982 THB is exact."""

    tou_peak_msat_per_kwh: int = 579_820  # 5.7982 THB/kWh, residential TOU < 22 kV
    tou_offpeak_msat_per_kwh: int = 263_690  # 2.6369 THB/kWh
    ft_msat_per_kwh: int = 16_230  # 0.1623 THB/kWh fuel adjustment (2026 quote)
    vat_basis_points: int = 700  # 7 %
    buyback_msat_per_kwh: int = 220_000  # 2.20 THB/kWh rooftop solar buy-back since 2021
    peak_start_minute: int = 9 * 60  # On-Peak Monday-Friday 09:00-22:00 Asia/Bangkok
    peak_end_minute: int = 22 * 60
    peak_weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0
    utc_offset_seconds: int = 7 * 3600  # Asia/Bangkok, no daylight saving
    holidays: tuple[int, ...] = ()  # public holidays as YYYYMMDD integers: Off-Peak all day


class Governance(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Voting rules for on-chain governance (docs/governance.md). Periods are in heights,
    because execution happens at a height; the devnet makes about one block a second.
    Thresholds are basis points: quorum of the total governance weight (snapshotted when the
    proposal is submitted) that must vote at all, approval of the yes + no weight that must
    be yes."""

    voting_period_heights: int = 86_400  # a day of 1-second blocks
    timelock_heights: int = 43_200  # half a day between passing and execution
    emergency_voting_period_heights: int = 300
    emergency_timelock_heights: int = 60
    parameter_quorum_bp: int = 5_000
    parameter_approval_bp: int = 6_000
    validator_quorum_bp: int = 6_000
    validator_approval_bp: int = 6_667
    licence_quorum_bp: int = 5_000
    licence_approval_bp: int = 6_000
    market_quorum_bp: int = 5_000
    market_approval_bp: int = 6_000
    emergency_quorum_bp: int = 6_000
    emergency_approval_bp: int = 7_500
    max_active_proposals: int = 32  # bounds the work end_block does per height

    def validate(self) -> list[str]:
        problems = []
        if min(self.voting_period_heights, self.emergency_voting_period_heights) < 1:
            problems.append("governance voting periods must be at least one height")
        if min(self.timelock_heights, self.emergency_timelock_heights) < 0:
            problems.append("governance timelocks must be non-negative")
        if self.emergency_voting_period_heights > self.voting_period_heights:
            problems.append("the emergency voting period must not exceed the normal one")
        if self.emergency_timelock_heights > self.timelock_heights:
            problems.append("the emergency timelock must not exceed the normal one")
        thresholds = (
            self.parameter_quorum_bp,
            self.parameter_approval_bp,
            self.validator_quorum_bp,
            self.validator_approval_bp,
            self.licence_quorum_bp,
            self.licence_approval_bp,
            self.market_quorum_bp,
            self.market_approval_bp,
            self.emergency_quorum_bp,
            self.emergency_approval_bp,
        )
        if not all(0 < t <= 10_000 for t in thresholds):
            problems.append("governance quorum and approval must be in (0, 10000] basis points")
        if not 1 <= self.max_active_proposals <= 256:
            problems.append("max_active_proposals must be between 1 and 256")
        return problems


class AuctionParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The day-ahead auction's rules (docs/market.md, "Day-ahead auction"). Stored under
    their own key (`AUCTION_PARAMS_KEY`, defaults while absent) rather than inside `Params`,
    so chains that never vote on them keep their state bytes; governed as `auction.<field>`
    by market-rule proposals."""

    gate_lead_seconds: int = 12 * 3600  # gate: 12:00 Bangkok the day before the delivery day
    horizon_seconds: int = 3 * 86_400  # curves open this long before an interval starts
    clearing_deadline_seconds: int = 3_600  # after the gate; no clearing by then: cancelled
    max_curves_per_interval: int = 2_000  # bounds one clearing's check

    def validate(self) -> list[str]:
        problems = []
        if self.gate_lead_seconds < 0 or self.clearing_deadline_seconds <= 0:
            problems.append("auction gate lead must be >= 0 and clearing deadline > 0")
        if self.horizon_seconds <= self.gate_lead_seconds:
            problems.append("auction horizon must exceed the gate lead")
        if self.max_curves_per_interval <= 0:
            problems.append("max_curves_per_interval must be positive")
        return problems


AUCTION_PARAMS_KEY = b"aucparams"


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    interval_seconds: int = 900  # 15-minute settlement interval
    reading_max_age_seconds: int = 7 * 86_400  # oldest interval a reading may still report
    reading_clock_skew_seconds: int = 60  # how early before interval end a reading is accepted
    small_prosumer_threshold_w: int = 10_000  # rooftop scheme cap: above it sellers need a licence
    min_fee_satang: int = 0
    trading_horizon_seconds: int = 86_400  # market opens 24 h ahead (used by the market)
    gate_closure_seconds: int = 300  # and closes 5 minutes before delivery
    price_min_satang_per_kwh: int = 0  # order price band 0-10 THB/kWh
    price_max_satang_per_kwh: int = 1_000
    tick_satang_per_kwh: int = 1  # order prices are multiples of this
    min_lot_wh: int = 100  # smallest order quantity
    max_open_orders_per_account: int = 200
    imbalance_satang_per_kwh: int = 600  # charged to a seller per kWh sold but not delivered
    platform_fee_basis_points: int = 10  # 0.1 % of trade value, paid by the buyer
    wheeling_satang_per_kwh: int = 30  # network charge per kWh delivered P2P (illustrative)
    settlement_deadline_seconds: int = 7_200  # settle without missing readings after this
    emission_factor_g_per_kwh: int = 475  # TGO grid factor 0.4750 kgCO2e/kWh (2026)
    frequency_min_mhz: int = 49_500  # normal band 49.5-50.5 Hz
    frequency_max_mhz: int = 50_500
    grid_status_max_age_seconds: int = 300  # a grid measurement older than this is stale
    grid_status_clock_skew_seconds: int = 30  # how far ahead of block time a measurement may be
    tariffs: Tariffs = msgspec.field(default_factory=Tariffs)
    rec_size_wh: int = 1_000_000  # one renewable energy certificate per MWh, as I-REC and T-REC
    rec_max_per_reading: int = 1_000  # certificates one reading may issue; the rest waits
    rec_beneficiary_max_chars: int = 128  # longest beneficiary text a retirement may name
    governance: Governance = msgspec.field(default_factory=Governance)

    def validate(self) -> list[str]:
        """Human-readable problems; an empty list means the parameters are usable."""
        problems = []
        if self.interval_seconds <= 0 or 86_400 % self.interval_seconds:
            problems.append("interval_seconds must be positive and divide a day")
        if self.reading_max_age_seconds < self.interval_seconds:
            problems.append("reading_max_age_seconds must cover at least one interval")
        if self.reading_clock_skew_seconds < 0:
            problems.append("reading_clock_skew_seconds must be non-negative")
        if self.small_prosumer_threshold_w < 0 or self.min_fee_satang < 0:
            problems.append("thresholds and fees must be non-negative")
        if not 0 <= self.price_min_satang_per_kwh <= self.price_max_satang_per_kwh:
            problems.append("price band must satisfy 0 <= min <= max")
        if not 0 < self.frequency_min_mhz < self.frequency_max_mhz:
            problems.append("frequency band must satisfy 0 < min < max")
        if self.tick_satang_per_kwh <= 0 or self.min_lot_wh <= 0:
            problems.append("tick size and minimum lot must be positive")
        if self.max_open_orders_per_account <= 0:
            problems.append("max_open_orders_per_account must be positive")
        if min(self.imbalance_satang_per_kwh, self.wheeling_satang_per_kwh) < 0:
            problems.append("imbalance and wheeling charges must be non-negative")
        if not 0 <= self.platform_fee_basis_points < 10_000:
            problems.append("platform fee must be in [0, 10000) basis points")
        if self.settlement_deadline_seconds < 0:
            problems.append("settlement deadline must be non-negative")
        if self.gate_closure_seconds < 0 or self.trading_horizon_seconds <= 0:
            problems.append("gate closure must be >= 0 and trading horizon > 0")
        if self.grid_status_max_age_seconds <= 0 or self.grid_status_clock_skew_seconds < 0:
            problems.append("grid status max age must be positive and clock skew non-negative")
        if self.rec_size_wh <= 0 or self.emission_factor_g_per_kwh < 0:
            problems.append("rec_size_wh must be positive and the emission factor non-negative")
        if self.rec_max_per_reading <= 0:
            problems.append("rec_max_per_reading must be positive")
        if self.rec_beneficiary_max_chars <= 0:
            problems.append("rec_beneficiary_max_chars must be positive")
        t = self.tariffs
        if not 0 <= t.peak_start_minute < t.peak_end_minute <= 1440:
            problems.append("peak period must lie within one day")
        if any(d not in range(7) for d in t.peak_weekdays):
            problems.append("peak_weekdays must be 0 (Monday) to 6 (Sunday)")
        rates = (t.tou_peak_msat_per_kwh, t.tou_offpeak_msat_per_kwh, t.buyback_msat_per_kwh)
        if min(rates) < 0 or t.ft_msat_per_kwh < 0:
            problems.append("tariff rates must be non-negative")
        problems.extend(self.governance.validate())
        return problems
