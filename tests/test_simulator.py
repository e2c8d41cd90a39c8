"""The market-day simulator through the in-process ledger: invariants after every block,
settlement, trades across zones, a summary that agrees with the ledger, determinism."""

from __future__ import annotations

import datetime

import pytest

from gridtokenx import accounts, errors, invariants, registry, tx
from gridtokenx.crypto import PrivateKey
from gridtokenx.market import records
from gridtokenx.sandbox import Sandbox
from gridtokenx.simulator import (
    DayConfig,
    MarketDay,
    SandboxSink,
    SimulationRejected,
    Step,
    render,
    run_day_in_sandbox,
    sandbox_for,
    summarize,
)
from gridtokenx.simulator.population import Archetype, build_population, spread_over_zones

SMALL = DayConfig(seed=11, participants=30, start_minute=10 * 60, intervals=8)


class Run:
    """A day through a SandboxSink, with the invariants checked after every block."""

    def __init__(self, config: DayConfig) -> None:
        self.sandbox = sandbox_for(config)
        self.sink = SandboxSink(self.sandbox)
        self.day = MarketDay(
            config, self.sandbox.genesis, self.sandbox.authority_keys, self.sink.next_nonce
        )
        self.steps: list[Step] = []
        self.day.run(self.sink, self.after)
        invariants.check_all(self.sandbox.state)
        self.summary = summarize(
            self.sandbox.state, self.sink.events, self.day.first_interval, config.intervals
        )

    def after(self, step: Step) -> None:
        invariants.check_all(self.sandbox.state)
        self.steps.append(step)


@pytest.fixture(scope="module")
def small() -> Run:
    return Run(SMALL)


def test_small_day_settles_every_interval_with_trades_in_several_zones(small: Run) -> None:
    state = small.sandbox.state
    assert len(small.steps) == SMALL.intervals + 2
    assert state.get(records.ACTIVE_KEY, records.Active) is None  # nothing left to settle
    for k in range(SMALL.intervals):
        market = state.get(records.interval_key(small.day.start(k)), records.IntervalMarket)
        assert market is not None and market.status is records.IntervalStatus.SETTLED
    s = small.summary
    assert s.intervals_settled == SMALL.intervals and s.settled_at_deadline == 0
    assert s.trades == s.trades_settled > 0
    assert len(s.trade_zones) >= 3
    assert s.cross_zone_delivered_wh > 0
    assert s.buyer_savings_satang > 0 and s.seller_extra_satang > 0


def test_summary_agrees_with_ledger_state(small: Run) -> None:
    state, s = small.sandbox.state, small.summary
    grid, thb = invariants.balance_totals(state)
    supply = state.get(accounts.SUPPLY_KEY, accounts.Supply)
    assert supply is not None
    assert s.grid_held_wh == grid == s.grid_minted_wh - s.grid_burned_wh
    assert s.thb_held_satang == thb == s.thb_issued_satang - s.thb_redeemed_satang
    assert s.grid_minted_wh == s.metered_export_wh  # the setup intervals metered nothing
    # energy: what sellers delivered reached buyers or was lost on the way
    assert s.p2p_delivered_wh == s.p2p_received_wh + s.losses_wh > 0
    # money: what buyers paid went to sellers, the fee collector and the networks
    assert (
        s.buyer_paid_satang == s.seller_income_satang + s.platform_fees_satang + s.wheeling_satang
    )
    assert s.transactions == small.sink.committed == small.day.signer.signed
    trades = [t for _, t in state.scan(b"trade/") if isinstance(t, records.Trade)]
    assert len(trades) == s.trades
    assert sum(t.delivered_wh for t in trades) == s.p2p_delivered_wh
    assert sum(c.energy_wh for c in s.prices.values()) == s.p2p_delivered_wh
    assert s.participants == SMALL.participants + 1  # and the custodian
    assert s.co2_avoided_g == s.renewable_received_wh * 475 // 1000
    assert 0 < s.grid_import_wh <= s.metered_import_wh
    assert s.state_root == state.root().hex()


def test_every_price_sits_between_buy_back_and_retail(small: Run) -> None:
    for (_, period), cell in small.summary.prices.items():
        retail = 637 if period == "On-Peak" else 299  # satang/kWh incl. Ft and VAT
        assert 220 <= cell.average <= retail


def test_setup_goes_through_the_authorities_of_each_zone(small: Run) -> None:
    state = small.sandbox.state
    threshold = small.sandbox.genesis.params.small_prosumer_threshold_w
    time = small.sandbox.time
    licensed = 0
    for m in small.day.population.members:
        part = state.get(registry.participant_key(m.key.address), registry.Participant)
        assert part is not None and part.zone == m.zone
        assert part.registered_by == ("MEA" if m.zone == "BKK" else "PEA")
        meter = state.get(registry.meter_key(m.meter.address), registry.Meter)
        assert meter is not None and meter.owner == m.key.address
        assert meter.kind is (tx.MeterKind.SOLAR if m.pv_w else tx.MeterKind.CONSUMPTION)
        seller = registry.has_valid_licence(
            state.overlay(), m.key.address, tx.LicenceKind.SELLER, time
        )
        assert seller == (m.pv_w > threshold)
        licensed += seller
    assert licensed >= 1  # at least the solar farm
    custodian = small.day.population.custodian.address
    assert registry.has_valid_licence(state.overlay(), custodian, tx.LicenceKind.CUSTODIAN, time)


def test_run_day_in_sandbox_is_deterministic_per_seed() -> None:
    config = DayConfig(seed=5, participants=16, start_minute=11 * 60, intervals=4)
    first = run_day_in_sandbox(config)
    again = run_day_in_sandbox(config)
    other = run_day_in_sandbox(DayConfig(seed=6, participants=16, start_minute=11 * 60,
                                         intervals=4))  # fmt: skip
    assert first.state_root == again.state_root
    assert first == again
    assert other.state_root != first.state_root


@pytest.mark.parametrize(
    ("seed", "start_minute", "date", "hot"),
    [
        (2, 6 * 60, datetime.date(2026, 1, 17), None),  # a Saturday morning: all off-peak
        (3, 8 * 60 + 30, datetime.date(2026, 4, 22), True),  # across 09:00, the peak start
        (4, 17 * 60, datetime.date(2026, 8, 19), False),  # sunset into the evening peak
        (5, 21 * 60 + 30, datetime.date(2026, 1, 14), None),  # across 22:00 and midnight
    ],
)
def test_other_seeds_and_times_keep_the_invariants(
    seed: int, start_minute: int, date: datetime.date, hot: bool | None
) -> None:
    config = DayConfig(
        seed=seed, participants=14, date=date, start_minute=start_minute, intervals=6,
        hot_season=hot,
    )  # fmt: skip
    run = Run(config)
    assert run.summary.intervals_settled == 6
    assert run.sandbox.state.get(records.ACTIVE_KEY, records.Active) is None


def test_population_spreads_over_all_zones_and_sizes_rooftops_within_the_scheme() -> None:
    zones = ["BKK", "CEN", "NTH", "NEA", "EST", "WST", "STH"]
    pop = build_population(300, "1", zones)
    assert len(pop.members) == 300
    assert {m.zone for m in pop.members} == set(zones)
    assert len({m.key.address for m in pop.members}) == 300
    by_kind = {a: [m for m in pop.members if m.archetype is a] for a in Archetype}
    assert all(by_kind[a] for a in Archetype)
    assert all(3_000 <= m.pv_w <= 10_000 for m in by_kind[Archetype.SOLAR_HOME])
    assert all(m.pv_w == 0 for m in by_kind[Archetype.HOME])
    assert all(m.zone != "BKK" for m in by_kind[Archetype.SOLAR_FARM])
    assert spread_over_zones(3, zones) == ["BKK", "NEA", "CEN"]
    with pytest.raises(ValueError, match="at least 6"):
        build_population(5, "1", zones)


def test_a_bad_config_is_refused_before_anything_is_signed() -> None:
    sb = Sandbox()
    for bad in (
        DayConfig(start_minute=7),
        DayConfig(intervals=0),
        DayConfig(participants=3),
    ):
        with pytest.raises(ValueError, match="invalid day"):
            MarketDay(bad, sb.genesis, sb.authority_keys)


def test_sandbox_sink_reports_a_refused_transaction_and_changes_nothing() -> None:
    sb = Sandbox()
    sink = SandboxSink(sb)
    stranger = PrivateKey.from_dev_label("test/stranger")
    good = tx.make(sb.authority("MEA"), sb.chain_id, 0,
                   tx.RegisterParticipant(stranger.address, "BKK", tx.ParticipantKind.HOUSEHOLD,
                                          "ok")).encode()  # fmt: skip
    bad = tx.make(stranger, sb.chain_id, 5, tx.RedeemThb(1)).encode()  # nonce gap
    sink.submit([good])
    root = sb.state.root()
    with pytest.raises(SimulationRejected, match="NONCE_GAP") as caught:
        sink.submit([bad])
    assert caught.value.code == errors.NonceGap.code
    assert sb.state.root() == root and sink.committed == 1
    with pytest.raises(ValueError, match="not after"):
        sink.advance_to(sb.time)


def test_render_prints_every_section(small: Run) -> None:
    from rich.console import Console

    console = Console(record=True, width=120)
    render(small.summary, console)
    text = console.export_text()
    for heading in ("Energy", "Money", "Average P2P price", "Ledger", "CO2 avoided"):
        assert heading in text
    assert small.summary.state_root[:16] in text


def _used_chain(config: DayConfig) -> Sandbox:
    """A sandbox where MEA has already sent a transaction (its next nonce is 1)."""
    sb = sandbox_for(config)
    earlier = PrivateKey.from_dev_label("test/registered-earlier")
    body = tx.RegisterParticipant(earlier.address, "BKK", tx.ParticipantKind.HOUSEHOLD, "x")
    sb.submit(sb.authority("MEA"), body)
    return sb


def test_a_day_starts_from_the_nonces_the_chain_already_holds() -> None:
    config = DayConfig(seed=9, participants=8, start_minute=12 * 60, intervals=2)
    sb = _used_chain(config)
    with pytest.raises(SimulationRejected, match="NONCE_REPLAYED"):
        MarketDay(config, sb.genesis, sb.authority_keys).run(SandboxSink(sb))  # fresh nonces
    sb = _used_chain(config)
    sink = SandboxSink(sb)
    MarketDay(config, sb.genesis, sb.authority_keys, sink.next_nonce).run(sink)
    invariants.check_all(sb.state)
    first = config.first_interval(sb.genesis.params)
    assert summarize(sb.state, sink.events, first, 2).intervals_settled == 2
