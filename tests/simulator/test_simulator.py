"""The market-day simulator through the in-process ledger: invariants after every block,
settlement, trades across zones, a summary that agrees with the ledger, determinism, and
the storyline (grid operators' reports, the fee vote, certificate claims) on chain."""

from __future__ import annotations

import dataclasses
import datetime

import msgspec
import pytest

from gridtokenx.devnet.homes import DEVNET_GOVERNANCE
from gridtokenx.ledger import accounts, certificates, governance, invariants, registry
from gridtokenx.ledger.grid import records as grid
from gridtokenx.ledger.market import records
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.simulator import (
    DayConfig,
    MarketDay,
    SandboxSink,
    SimulationRejected,
    Step,
    render,
    run_day_in_sandbox,
    sandbox_for,
    storyline,
    summarize,
)
from gridtokenx.simulator.devnet_day import DEMO_GOVERNANCE
from gridtokenx.simulator.operators import FREQUENCY_SWING_MHZ, NOMINAL_FREQUENCY_MHZ, average_kw
from gridtokenx.simulator.population import Archetype, build_population, spread_over_zones
from gridtokenx.wire import errors, tx
from gridtokenx.wire.crypto import PrivateKey

SMALL = DayConfig(seed=11, participants=30, start_minute=10 * 60, intervals=8)


class RecordingSink(SandboxSink):
    """A SandboxSink that keeps every signed transaction it was given, in order."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(sandbox)
        self.submitted: list[bytes] = []

    def submit(self, txs: list[bytes]) -> None:
        self.submitted += txs
        super().submit(txs)


class Run:
    """A day through a SandboxSink, with the invariants checked after every block."""

    def __init__(self, config: DayConfig, params: Params | None = None) -> None:
        self.config = config
        self.sandbox = sandbox_for(config, params)
        self.sink = RecordingSink(self.sandbox)
        self.day = MarketDay(
            config, self.sandbox.genesis, self.sandbox.authority_keys, self.sink.next_nonce
        )
        self.steps: list[Step] = []
        self.day.run(self.sink, self.after)
        invariants.check_all(self.sandbox.state)
        self.summary = summarize(
            self.sandbox.state,
            self.sink.events,
            self.day.first_interval,
            config.intervals,
            self.sandbox.height - 1,
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
    for heading in ("Energy", "Money", "Average P2P price", "Ledger", "CO2 avoided",
                    "Grid operators", "Renewable energy certificates", "Governance"):  # fmt: skip
        assert heading in text
    assert storyline.fee_title(small.sandbox.genesis.params) in text
    assert f"{small.summary.grid_reports:,}" in text
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


# --- the storyline -------------------------------------------------------------------------
def _events(run: Run, kind: str) -> list[dict[str, object]]:
    return [dict(e.attrs) for e in run.sink.events if e.kind == kind]


def test_the_operators_report_every_metered_interval_first_in_its_step(small: Run) -> None:
    spec, state, day = small.sandbox.genesis, small.sandbox.state, small.day
    view = state.overlay()
    reports = 1 + len(spec.zones)  # EGAT's, and one per zone by its distributor
    for step in small.steps:
        bodies = [tx.decode(raw).tx.body for raw in step.txs]
        grid_bodies = [
            b for b in bodies if isinstance(b, tx.TransmissionStatus | tx.DistributionStatus)
        ]
        assert len(grid_bodies) == (reports if step.read >= 0 else 0)
        assert bodies[: len(grid_bodies)] == grid_bodies  # first in the step's transactions
        assert all(b.measured_at == step.time for b in grid_bodies)
    transmissions = _events(small, "transmission_status")
    assert len(transmissions) == SMALL.intervals == small.summary.transmission_reports
    assert len(_events(small, "distribution_status")) == SMALL.intervals * len(spec.zones)
    assert small.summary.grid_reports == SMALL.intervals * reports
    for event in transmissions:
        frequency = event["frequency_mhz"]
        assert isinstance(frequency, int)
        assert abs(frequency - NOMINAL_FREQUENCY_MHZ) <= FREQUENCY_SWING_MHZ
    latest = grid.transmission(view)
    last = SMALL.intervals - 1
    assert latest is not None and latest.reported_by == "EGAT"
    assert latest.measured_at == day.start(SMALL.intervals)  # the end of the last interval
    assert (
        latest.frequency_mhz
        == small.summary.latest_frequency_mhz
        == transmissions[-1]["frequency_mhz"]
    )
    interval = spec.params.interval_seconds
    for zone in spec.zones:
        members = [m for m in day.population.members if m.zone == zone.code]
        balance = state.get(grid.zone_balance_key(zone.code), grid.ZoneBalanceState)
        assert balance is not None and balance.measured_at == latest.measured_at
        pv = sum(day.plans[m.name].actual_pv[last] for m in members)
        load = sum(day.plans[m.name].actual_load[last] for m in members)
        assert (balance.generation_kw, balance.demand_kw) == (
            average_kw(pv, interval), average_kw(load, interval))  # fmt: skip
        status = state.get(grid.distribution_key(zone.code), grid.DistributionState)
        assert status is not None and status.reported_by == zone.distribution_authority
        assert status.load_kw == balance.demand_kw
        for k in range(SMALL.intervals):  # the headroom never bound a P2P import
            room = grid.import_room_wh(view, day.start(k), zone.code, interval)
            assert room is not None and room > 0


def test_the_storyline_leaves_the_market_alone_and_can_be_switched_off(small: Run) -> None:
    plain = Run(dataclasses.replace(SMALL, storyline=False))
    assert not plain.summary.grid_reports and not plain.summary.proposals
    assert plain.summary.certificates_issued == small.summary.certificates_issued > 0
    assert plain.summary.certificates_retired == 0
    assert plain.summary.certificates_active == plain.summary.certificates_issued
    # the same trades and settlement reports: the headroom reported never bound an import
    for prefix in (b"trade/", b"rep/", b"ord/"):
        assert list(plain.sandbox.state.scan(prefix)) == list(small.sandbox.state.scan(prefix))
    assert plain.sandbox.state.root() != small.sandbox.state.root()


def test_the_fee_proposal_is_open_with_the_four_validating_authorities_yes(small: Run) -> None:
    state, spec = small.sandbox.state, small.sandbox.genesis
    erc = small.sandbox.authority("ERC").address
    (submitted,) = _events(small, "proposal_submitted")
    proposal = governance.get_proposal(state, int(str(submitted["id"])))
    assert proposal is not None and proposal.proposer == erc
    assert proposal.kind is tx.ProposalKind.MARKET_RULE
    fee = spec.params.platform_fee_basis_points
    assert proposal.actions == (tx.ParamChange("platform_fee_basis_points", fee // 2),)
    # production periods and one block per step: still voting when the day ends
    assert proposal.status is governance.ProposalStatus.VOTING
    assert proposal.voting_end_height > small.sandbox.height
    weights = {a.code: a.weight for a in spec.authorities}
    for code in storyline.VOTERS:
        address = small.sandbox.authority(code).address
        ballot = state.get(governance.ballot_key(proposal.id, address), governance.Ballot)
        assert ballot == governance.Ballot(tx.VoteChoice.YES, weights[code])
    assert proposal.yes == sum(weights[c] for c in storyline.VOTERS)
    assert proposal.total_weight == sum(weights.values())
    assert proposal.no == proposal.abstain == 0
    (line,) = small.summary.proposals
    assert (line.id, line.status, line.yes, line.ballots) == (
        proposal.id,
        "VOTING",
        proposal.yes,
        4,
    )
    assert small.summary.platform_fee_bp == fee  # not executed, so not in force


def test_certificates_are_claimed_by_the_corporate_buyer_and_their_holders(small: Run) -> None:
    state, day = small.sandbox.state, small.day
    buyer = storyline.corporate_buyer(day.population.members, day.plans)
    assert buyer is not None and buyer.archetype in storyline.CORPORATE
    owners = {m.key.address: m for m in day.population.members}
    certs = [c for _, c in state.scan(b"cert/") if isinstance(c, certificates.Certificate)]
    assert certs and all(c.retired for c in certs)
    for cert in certs:
        first = owners[cert.issued_to]
        claimant = buyer if first.archetype is Archetype.SOLAR_FARM else first
        assert cert.owner == claimant.key.address
        assert cert.beneficiary == storyline.beneficiary(claimant, SMALL.date)
        assert claimant.name in cert.beneficiary
    assert any(owners[c.issued_to].archetype is Archetype.SOLAR_FARM for c in certs)
    for m in day.population.members:
        assert small.sink.certificates_of(m.key.address) == []
    s = small.summary
    assert s.certificates_issued == s.certificates_retired == len(certs)
    assert s.certificates_issued_wh == sum(c.energy_wh for c in certs)
    assert s.claimed_avoided_g == sum(c.avoided_g for c in certs)
    assert s.beneficiaries == len({c.beneficiary for c in certs})
    assert s.certificates_active == 0
    assert len(_events(small, "certificate_retired")) == len(certs)


def test_the_same_config_signs_the_same_bytes() -> None:
    config = DayConfig(seed=5, participants=16, start_minute=11 * 60, intervals=4)
    first, again = Run(config), Run(config)
    assert first.sink.submitted == again.sink.submitted
    assert first.sandbox.state.root() == again.sandbox.state.root()
    assert _events(first, "proposal_submitted") and _events(first, "transmission_status")


def test_with_devnet_periods_the_fee_vote_executes_within_the_day() -> None:
    """One block per step: 60 heights of voting and 10 of timelock fit in 72 intervals."""
    params = msgspec.structs.replace(Params(), governance=DEVNET_GOVERNANCE)
    run = Run(DayConfig(seed=7, participants=8, start_minute=4 * 60, intervals=72), params)
    (line,) = run.summary.proposals
    assert line.status == "EXECUTED"
    assert line.execute_height == line.voting_end_height + DEVNET_GOVERNANCE.timelock_heights
    assert line.execute_height <= run.summary.height
    assert run.summary.platform_fee_bp == params.platform_fee_basis_points // 2
    executed = _events(run, "proposal_executed")
    assert executed == [{"id": line.id}]
    assert run.summary.intervals_settled == 72


def test_the_votes_need_the_proposal_on_chain_first() -> None:
    config = DayConfig(seed=5, participants=8, start_minute=11 * 60, intervals=2)
    sb = sandbox_for(config)
    day = MarketDay(config, sb.genesis, sb.authority_keys)
    for chain in (None, SandboxSink(sb)):  # no chain, or one without the proposal
        with pytest.raises(RuntimeError, match="not on chain"):
            day.fee_votes(chain)


def test_with_the_demo_periods_the_day_waits_for_the_vote_and_the_fee_halves() -> None:
    """Short periods: the day holds its second step until the vote executed, so every
    settlement of the day pays the halved fee, however many blocks a machine makes."""
    params = msgspec.structs.replace(Params(), governance=DEMO_GOVERNANCE)
    voted = Run(SMALL, params)
    (line,) = voted.summary.proposals
    assert line.status == "EXECUTED"
    assert voted.summary.platform_fee_bp == params.platform_fee_basis_points // 2
    plain = Run(dataclasses.replace(SMALL, storyline=False), params)  # the same trades
    assert plain.summary.trades_settled == voted.summary.trades_settled > 0
    full, half = plain.summary.platform_fees_satang, voted.summary.platform_fees_satang
    assert 0 < half < full  # each trade's fee rounds down on its own
    assert half * 2 <= full <= half * 2 + 2 * plain.summary.trades_settled
