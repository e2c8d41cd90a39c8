"""On-chain governance: proposals of every kind, weighted votes, quorum, approval, the ERC
veto, the timelock and automatic execution in end_block, vote delegation, and every
rejection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridtokenx.chain.application import Application
from gridtokenx.consensus.simulation import CHAIN_ID, Scenario, Simulation
from gridtokenx.ledger import (
    chain_info,
    genesis,
    governance,
    invariants,
    registry,
    validator_set,
)
from gridtokenx.ledger.context import Event
from gridtokenx.ledger.governance import ProposalStatus
from gridtokenx.ledger.params import Governance
from gridtokenx.ledger.sandbox import DEFAULT_GENESIS_TIME, Sandbox
from gridtokenx.wire import errors, tx
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import (
    Action,
    Asset,
    CastVote,
    DelegateVote,
    InterconnectorChange,
    ParamChange,
    ProposalKind,
    SubmitProposal,
    Transfer,
    ValidatorChange,
    ValidatorUnjail,
    VoteChoice,
    WeightChange,
    WithdrawProposal,
)
from tests.conftest import Cast, Net, key

NEW = key("governance/validator")
VOTING, TIMELOCK = 3, 2  # short periods so a lifecycle fits a test
K = ProposalKind
YES, NO, ABSTAIN, VETO = VoteChoice.YES, VoteChoice.NO, VoteChoice.ABSTAIN, VoteChoice.VETO


def governed_sandbox(params: dict[str, int] | None = None, **changes: int) -> Sandbox:
    """Governance that acts within a few blocks (`changes` to its rules), and other governed
    parameters changed by `params`."""
    base = genesis.devnet("gridtokenx-sandbox", DEFAULT_GENESIS_TIME, genesis.dev_keys())
    rules = {
        "voting_period_heights": VOTING,
        "timelock_heights": TIMELOCK,
        "emergency_voting_period_heights": 1,
        "emergency_timelock_heights": 0,
        **changes,
    }
    gov = msgspec.structs.replace(Governance(), **rules)
    return Sandbox(
        spec=msgspec.structs.replace(
            base, params=msgspec.structs.replace(base.params, **(params or {}), governance=gov)
        )
    )


@pytest.fixture
def g() -> Cast:
    return Cast(governed_sandbox())


def propose(n: Cast, signer: PrivateKey, kind: ProposalKind, *actions: Action) -> int:
    events = n.ok(signer, SubmitProposal(kind, actions, "test"))
    assert events[0].kind == "proposal_submitted"
    proposal_id = events[0].attrs["id"]
    assert isinstance(proposal_id, int)
    return proposal_id


def vote(n: Cast, proposal_id: int, *voters: tuple[PrivateKey, VoteChoice]) -> None:
    for signer, choice in voters:
        n.ok(signer, CastVote(proposal_id, choice))


def proposal(n: Cast, proposal_id: int) -> governance.Proposal:
    found = governance.get_proposal(n.sb.state, proposal_id)
    assert found is not None
    return found


def advance_to(n: Cast, height: int) -> list[Event]:
    """End blocks until the sandbox is at `height`; the events of every block ended."""
    events: list[Event] = []
    while n.sb.height < height:
        events += n.sb.advance(1)
    return events


def finish(n: Cast, proposal_id: int) -> list[Event]:
    """Run past the proposal's voting end and timelock: every end_block that could act on it."""
    p = proposal(n, proposal_id)
    return advance_to(n, p.voting_end_height + p.timelock_heights + 1)


def kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


# --- lifecycles, one per kind --------------------------------------------------------------
def test_a_fee_change_passes_waits_out_its_timelock_then_binds_participants(g: Cast) -> None:
    start = g.sb.height
    pid = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    vote(g, pid, (g.egat, YES), (g.mea, YES), (g.pea, YES), (g.nepo, NO))
    p = proposal(g, pid)
    assert (p.yes, p.no, p.abstain, p.total_weight) == (26_000, 6_000, 0, 39_000)
    assert p.voting_end_height == start + VOTING - 1
    execute_at = p.voting_end_height + TIMELOCK
    # Nothing executes early: at every height up to the execution height the fee is 0 and a
    # participant's fee-less transfer goes through.
    while g.sb.height < execute_at:
        g.ok(g.office, Transfer(Asset.THB, g.home.address, 1))
        events = g.sb.advance(1)
        assert "proposal_executed" not in kinds(events)
        assert g.params.min_fee_satang == 0
    assert proposal(g, pid).status is ProposalStatus.PASSED
    assert proposal(g, pid).execute_height == execute_at
    events = g.sb.advance(1)  # end of the execution height
    assert kinds(events) == ["proposal_executed", "params_changed"]
    assert events[1].attrs == {"name": "min_fee_satang", "old": "0", "new": "50"}
    assert proposal(g, pid).status is ProposalStatus.EXECUTED
    assert g.params.min_fee_satang == 50
    g.rejects(g.office, Transfer(Asset.THB, g.home.address, 1), errors.FeeTooLow, "FEE_TOO_LOW")
    thb = g.thb(g.office.address)
    g.ok(g.office, Transfer(Asset.THB, g.home.address, 1), fee=50)
    assert g.thb(g.office.address) == thb - 51
    assert governance.active_ids(g.sb.state) == ()


def test_nested_tariffs_and_tuple_parameters_change_together(g: Cast) -> None:
    pid = propose(
        g,
        g.nepo,
        K.PARAMETER,
        ParamChange("tariffs.ft_msat_per_kwh", 19_720),
        ParamChange("tariffs.holidays", (20260413, 20260414, 20260415)),
        ParamChange("emission_factor_g_per_kwh", 470),
    )
    vote(g, pid, (g.egat, YES), (g.mea, YES), (g.erc, ABSTAIN))
    events = finish(g, pid)
    assert kinds(events).count("params_changed") == 3
    t = g.params.tariffs
    assert t.ft_msat_per_kwh == 19_720 and t.holidays == (20260413, 20260414, 20260415)
    assert g.params.emission_factor_g_per_kwh == 470
    assert t.tou_peak_msat_per_kwh == 579_820  # untouched fields keep their values


def test_a_vote_changes_the_voting_rules_themselves(g: Cast) -> None:
    pid = propose(g, g.egat, K.PARAMETER, ParamChange("governance.voting_period_heights", 5))
    vote(g, pid, (g.egat, YES), (g.mea, YES), (g.pea, YES))
    finish(g, pid)
    assert g.params.governance.voting_period_heights == 5
    later = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 1))
    assert proposal(g, later).voting_end_height == g.sb.height + 4


def test_a_validator_vote_adds_reweights_and_removes_validators(g: Cast) -> None:
    pid = propose(
        g,
        g.erc,
        K.VALIDATOR,
        ValidatorChange(NEW.public_key, 5_000),
        ValidatorChange(g.mea.public_key, 9_000),
        ValidatorChange(g.nepo.public_key, 0),
    )
    vote(g, pid, (g.egat, YES), (g.mea, YES), (g.pea, YES), (g.erc, YES))
    p = proposal(g, pid)
    advance_to(g, p.voting_end_height + TIMELOCK)
    h = g.sb.height
    assert g.sb.validators(h + 2).power(NEW.address) == 0
    events = g.sb.advance(1)
    assert kinds(events) == [
        "proposal_executed",
        "validator_added",
        "validator_power_changed",
        "validator_removed",
    ]
    assert all(e.attrs["from_height"] == h + 2 for e in events[1:])
    powers = {v.address: v.power for v in g.sb.validators(h + 2).validators}
    assert powers[NEW.address] == 5_000 and powers[g.mea.address] == 9_000
    assert g.nepo.address not in powers
    assert g.nepo.address in {v.address for v in g.sb.validators(h + 1).validators}


def test_a_validator_vote_unjails(g: Cast) -> None:
    from tests.ledger.test_validator_changes import _equivocation

    g.sb.punish(_equivocation(g.sb, g.pea))
    g.sb.advance(1)
    g.sb.advance(1)
    assert g.sb.validators().get(g.pea.address) is None
    pid = propose(g, g.erc, K.VALIDATOR, ValidatorUnjail(g.pea.address))
    vote(g, pid, (g.egat, YES), (g.mea, YES), (g.erc, YES), (g.nepo, YES))
    events = finish(g, pid)
    assert "validator_unjailed" in kinds(events)
    assert g.sb.validators(g.sb.height + 2).power(g.pea.address) == 8_000


def test_a_licence_policy_vote_lets_a_larger_prosumer_sell_unlicensed(g: Cast) -> None:
    view = g.sb.state.overlay()
    with pytest.raises(errors.UnlicensedSeller):
        registry.require_may_sell(
            view, g.factory.address, g.sb.time, g.params.small_prosumer_threshold_w
        )
    pid = propose(g, g.mea, K.LICENCE_POLICY, ParamChange("small_prosumer_threshold_w", 50_000))
    vote(g, pid, (g.mea, YES), (g.pea, YES), (g.erc, YES))
    finish(g, pid)
    assert g.params.small_prosumer_threshold_w == 50_000
    registry.require_may_sell(
        g.sb.state.overlay(), g.factory.address, g.sb.time, g.params.small_prosumer_threshold_w
    )


def test_a_market_rule_vote_widens_the_price_band(g: Cast) -> None:
    pid = propose(g, g.egat, K.MARKET_RULE, ParamChange("price_max_satang_per_kwh", 1_500))
    vote(g, pid, (g.egat, YES), (g.erc, YES), (g.nepo, YES))
    events = finish(g, pid)
    assert "proposal_executed" in kinds(events)
    assert g.params.price_max_satang_per_kwh == 1_500


def test_the_regulator_vetoes_a_market_rule_that_everyone_else_wants(g: Cast) -> None:
    pid = propose(g, g.egat, K.MARKET_RULE, ParamChange("platform_fee_basis_points", 50))
    vote(g, pid, (g.egat, YES), (g.mea, YES), (g.pea, YES), (g.nepo, YES), (g.erc, VETO))
    p = proposal(g, pid)
    assert (p.yes, p.no, p.vetoed) == (32_000, 7_000, True)
    events = finish(g, pid)
    assert kinds(events) == ["proposal_rejected"]
    assert events[0].attrs["reason"] == "vetoed by the regulator"
    assert proposal(g, pid).status is ProposalStatus.REJECTED
    assert g.params.platform_fee_basis_points == 10


def test_an_emergency_executes_right_after_its_short_vote(g: Cast) -> None:
    h = g.sb.height
    pid = propose(g, g.egat, K.EMERGENCY, ParamChange("frequency_min_mhz", 49_000))
    vote(g, pid, (g.egat, YES), (g.mea, YES), (g.pea, YES), (g.erc, YES))
    assert proposal(g, pid).voting_end_height == h
    events = g.sb.advance(1)  # emergency timelock 0: tallied and executed in the same block
    assert kinds(events) == ["proposal_passed", "proposal_executed", "params_changed"]
    assert g.params.frequency_min_mhz == 49_000


def test_an_emergency_touching_market_rules_can_be_vetoed(g: Cast) -> None:
    pid = propose(g, g.egat, K.EMERGENCY, ParamChange("gate_closure_seconds", 600))
    vote(g, pid, (g.egat, YES), (g.mea, YES), (g.pea, YES), (g.erc, VETO))
    assert kinds(finish(g, pid)) == ["proposal_rejected"]
    assert g.params.gate_closure_seconds == 300


def test_a_weight_change_takes_away_a_vote(g: Cast) -> None:
    pid = propose(g, g.egat, K.PARAMETER, WeightChange("NEPO", 0), WeightChange("ERC", 9_000))
    vote(g, pid, (g.egat, YES), (g.mea, YES), (g.pea, YES))
    finish(g, pid)
    assert governance.weights(g.sb.state) == {
        "EGAT": 10_000,
        "MEA": 8_000,
        "PEA": 8_000,
        "ERC": 9_000,
        "NEPO": 0,
    }
    later = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 1))
    assert proposal(g, later).total_weight == 35_000
    g.rejects(g.nepo, CastVote(later, YES), errors.NoGovernanceWeight, "NO_GOVERNANCE_WEIGHT")


# --- votes that fail ------------------------------------------------------------------------
def test_quorum_not_reached_rejects(g: Cast) -> None:
    pid = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    vote(g, pid, (g.egat, YES), (g.nepo, YES))  # 16,000 of 39,000 < 50 %
    events = finish(g, pid)
    assert kinds(events) == ["proposal_rejected"]
    assert str(events[0].attrs["reason"]).startswith("quorum not reached: 16000 of 39000")
    assert g.params.min_fee_satang == 0


def test_approval_not_reached_rejects_and_abstentions_only_count_for_quorum(g: Cast) -> None:
    pid = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    # Quorum: 33,000 of 39,000. Approval: 10,000 yes of 18,000 yes + no = 55.6 % < 60 %.
    vote(g, pid, (g.egat, YES), (g.mea, NO), (g.pea, ABSTAIN), (g.erc, ABSTAIN))
    events = finish(g, pid)
    assert str(events[0].attrs["reason"]).startswith("not approved: 10000 yes of 18000")
    assert proposal(g, pid).status is ProposalStatus.REJECTED


def test_the_approval_threshold_is_read_from_state(g: Cast) -> None:
    """60 % yes fails a validator-set change (66.67 % needed) that passes a parameter change."""
    pid = propose(g, g.erc, K.VALIDATOR, ValidatorChange(NEW.public_key, 1_000))
    vote(g, pid, (g.egat, YES), (g.mea, YES), (g.pea, NO), (g.nepo, NO))  # 18,000 of 32,000
    assert kinds(finish(g, pid)) == ["proposal_rejected"]


def test_a_passed_proposal_that_no_longer_validates_fails_without_effect(g: Cast) -> None:
    low = propose(g, g.egat, K.MARKET_RULE, ParamChange("price_min_satang_per_kwh", 500))
    high = propose(g, g.egat, K.MARKET_RULE, ParamChange("price_max_satang_per_kwh", 400))
    for pid in (low, high):
        vote(g, pid, (g.egat, YES), (g.mea, YES), (g.erc, YES))
    events = finish(g, high)
    assert kinds(events)[-3:] == ["proposal_executed", "params_changed", "proposal_failed"]
    failed = proposal(g, high)
    assert failed.status is ProposalStatus.FAILED
    assert failed.outcome.startswith("INVALID_PARAMS: new parameters are invalid: price band")
    assert (g.params.price_min_satang_per_kwh, g.params.price_max_satang_per_kwh) == (500, 1_000)


def test_withdrawn_proposals_never_execute(g: Cast) -> None:
    pid = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    vote(g, pid, (g.egat, YES), (g.mea, YES), (g.pea, YES))
    assert kinds(g.ok(g.egat, WithdrawProposal(pid))) == ["proposal_withdrawn"]
    assert kinds(finish(g, pid)) == []
    assert proposal(g, pid).status is ProposalStatus.WITHDRAWN
    assert g.params.min_fee_satang == 0


def test_the_same_votes_give_the_same_state_root() -> None:
    def run() -> bytes:
        n = Cast(governed_sandbox())
        a = propose(n, n.egat, K.PARAMETER, ParamChange("min_fee_satang", 5))
        b = propose(n, n.erc, K.VALIDATOR, ValidatorChange(NEW.public_key, 2_000))
        vote(n, a, (n.egat, YES), (n.mea, YES), (n.pea, NO))
        vote(n, b, (n.egat, YES), (n.mea, YES), (n.pea, YES), (n.erc, YES))
        finish(n, b)
        return n.sb.state.root()

    assert run() == run()


# --- rejections -----------------------------------------------------------------------------
FEE = SubmitProposal(K.PARAMETER, (ParamChange("min_fee_satang", 50),))


def test_a_non_authority_may_neither_propose_nor_vote(g: Cast) -> None:
    g.rejects(g.home, FEE, errors.Unauthorised, "UNAUTHORISED")
    pid = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    g.rejects(g.office, CastVote(pid, YES), errors.Unauthorised, "UNAUTHORISED")


def nepo_without_weight() -> Cast:
    """The devnet cast with NEPO's governance weight 0 from genesis."""
    base = genesis.devnet("gridtokenx-sandbox", DEFAULT_GENESIS_TIME, genesis.dev_keys())
    authorities = tuple(
        msgspec.structs.replace(a, governance_weight=0) if a.code == "NEPO" else a
        for a in base.authorities
    )
    return Cast(Sandbox(spec=msgspec.structs.replace(base, authorities=authorities)))


def test_an_authority_without_weight_may_neither_propose_nor_vote() -> None:
    n = nepo_without_weight()
    n.rejects(n.nepo, FEE, errors.NoGovernanceWeight, "NO_GOVERNANCE_WEIGHT")
    pid = propose(n, n.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    assert proposal(n, pid).total_weight == 33_000
    n.rejects(n.nepo, CastVote(pid, YES), errors.NoGovernanceWeight, "NO_GOVERNANCE_WEIGHT")


def test_only_egat_or_the_regulator_may_propose_an_emergency(g: Cast) -> None:
    body = SubmitProposal(K.EMERGENCY, (ParamChange("frequency_min_mhz", 49_000),))
    for signer in (g.mea, g.pea, g.nepo):
        g.rejects(signer, body, errors.Unauthorised, "UNAUTHORISED")
    g.ok(g.erc, body)


def test_a_vote_after_the_period_is_refused(g: Cast) -> None:
    pid = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    vote(g, pid, (g.egat, YES), (g.mea, YES), (g.pea, YES))
    advance_to(g, proposal(g, pid).voting_end_height)
    g.ok(g.erc, CastVote(pid, NO))  # the last height still counts
    g.sb.advance(1)
    g.rejects(g.nepo, CastVote(pid, YES), errors.VotingClosed, "VOTING_CLOSED")


def test_a_vote_on_a_rejected_proposal_is_refused(g: Cast) -> None:
    pid = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    finish(g, pid)
    g.rejects(g.egat, CastVote(pid, YES), errors.VotingClosed, "VOTING_CLOSED")


def test_a_second_vote_is_refused(g: Cast) -> None:
    pid = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    vote(g, pid, (g.mea, YES))
    g.rejects(g.mea, CastVote(pid, NO), errors.AlreadyVoted, "ALREADY_VOTED")
    g.rejects(g.mea, CastVote(pid, YES), errors.AlreadyVoted, "ALREADY_VOTED")


def test_a_vote_on_an_unknown_proposal_is_refused(g: Cast) -> None:
    g.rejects(g.egat, CastVote(7, YES), errors.UnknownProposal, "UNKNOWN_PROPOSAL")
    g.rejects(g.egat, WithdrawProposal(7), errors.UnknownProposal, "UNKNOWN_PROPOSAL")


def test_a_veto_by_anyone_but_the_regulator_or_on_other_kinds_is_refused(g: Cast) -> None:
    market = propose(g, g.egat, K.MARKET_RULE, ParamChange("min_lot_wh", 200))
    g.rejects(g.egat, CastVote(market, VETO), errors.VetoNotAllowed, "VETO_NOT_ALLOWED")
    plain = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    g.rejects(g.erc, CastVote(plain, VETO), errors.VetoNotAllowed, "VETO_NOT_ALLOWED")
    emergency = propose(g, g.egat, K.EMERGENCY, ParamChange("frequency_max_mhz", 51_000))
    g.rejects(g.erc, CastVote(emergency, VETO), errors.VetoNotAllowed, "VETO_NOT_ALLOWED")


@pytest.mark.parametrize(
    "params",
    [
        ParamChange("price_min_satang_per_kwh", 2_000),  # above the maximum
        ParamChange("reading_clock_skew_seconds", -1),  # negative
        ParamChange("tariffs.peak_weekdays", (0, 7)),
    ],
)
def test_parameters_that_do_not_validate_are_refused(g: Cast, params: ParamChange) -> None:
    kind = K.MARKET_RULE if params.name.startswith("price") else K.PARAMETER
    g.rejects(g.egat, SubmitProposal(kind, (params,)), errors.InvalidParams, "INVALID_PARAMS")


def test_governance_rules_that_do_not_validate_are_refused(g: Cast) -> None:
    body = SubmitProposal(K.PARAMETER, (ParamChange("governance.emergency_timelock_heights", 9),))
    g.rejects(g.egat, body, errors.InvalidParams, "INVALID_PARAMS")
    body = SubmitProposal(K.PARAMETER, (ParamChange("governance.parameter_quorum_bp", 0),))
    g.rejects(g.egat, body, errors.InvalidParams, "INVALID_PARAMS")


@pytest.mark.parametrize(
    ("kind", "action", "message"),
    [
        (K.PARAMETER, ParamChange("gate_closure_seconds", 60), "MARKET_RULE"),
        (K.MARKET_RULE, ParamChange("min_fee_satang", 1), "PARAMETER"),
        (K.PARAMETER, ParamChange("small_prosumer_threshold_w", 1), "LICENCE_POLICY"),
        (K.PARAMETER, ValidatorChange(NEW.public_key, 1), "VALIDATOR"),
        (K.VALIDATOR, WeightChange("EGAT", 1), "PARAMETER"),
        (K.PARAMETER, ParamChange("no_such_field", 1), "no governed parameter"),
        (K.PARAMETER, ParamChange("tariffs.nope", 1), "no governed parameter"),
        (K.PARAMETER, ParamChange("tariffs", 1), "is a group"),
        (K.PARAMETER, ParamChange("tariffs.holidays.x", 1), "nested too deeply"),
        (K.PARAMETER, ParamChange("min_fee_satang", (1, 2)), "takes an integer"),
        (K.PARAMETER, ParamChange("tariffs.holidays", 20260101), "takes a tuple"),
        (K.PARAMETER, WeightChange("XYZ", 1), "no authority"),
        (K.PARAMETER, WeightChange("EGAT", 0), None),  # fine alone; see the next test
    ],
)
def test_malformed_proposals_are_refused(
    g: Cast, kind: ProposalKind, action: Action, message: str | None
) -> None:
    body = SubmitProposal(kind, (action,))
    if message is None:
        g.ok(g.egat, body)
        return
    exc = g.rejects(g.egat, body, errors.InvalidProposal, "INVALID_PROPOSAL")
    assert message in str(exc)


def test_a_proposal_leaving_nobody_a_vote_is_refused(g: Cast) -> None:
    body = SubmitProposal(
        K.PARAMETER, tuple(WeightChange(c, 0) for c in ("EGAT", "MEA", "PEA", "ERC", "NEPO"))
    )
    g.rejects(g.egat, body, errors.InvalidProposal, "INVALID_PROPOSAL")


def test_a_validator_change_that_could_not_execute_now_is_refused(g: Cast) -> None:
    bad_key = SubmitProposal(K.VALIDATOR, (ValidatorChange(b"\x00" * 32, 1_000),))
    g.rejects(g.erc, bad_key, errors.InvalidValidatorKey, "INVALID_VALIDATOR_KEY")
    stranger = SubmitProposal(K.VALIDATOR, (ValidatorUnjail(NEW.address),))
    g.rejects(g.erc, stranger, errors.UnknownValidator, "UNKNOWN_VALIDATOR")


def test_too_many_open_proposals_are_refused() -> None:
    n = Cast(governed_sandbox(max_active_proposals=2))
    propose(n, n.egat, K.PARAMETER, ParamChange("min_fee_satang", 1))
    pid = propose(n, n.egat, K.PARAMETER, ParamChange("min_fee_satang", 2))
    n.rejects(n.mea, FEE, errors.TooManyProposals, "TOO_MANY_PROPOSALS")
    n.ok(n.egat, WithdrawProposal(pid))
    n.ok(n.mea, FEE)


def test_only_the_proposer_may_withdraw_and_only_while_voting(g: Cast) -> None:
    pid = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    g.rejects(g.mea, WithdrawProposal(pid), errors.Unauthorised, "UNAUTHORISED")
    g.ok(g.egat, WithdrawProposal(pid))
    g.rejects(g.egat, WithdrawProposal(pid), errors.VotingClosed, "VOTING_CLOSED")
    g.rejects(g.mea, CastVote(pid, YES), errors.VotingClosed, "VOTING_CLOSED")


def test_genesis_weights_default_to_the_specification(sb: Sandbox) -> None:
    assert governance.weights(sb.state) == {
        "EGAT": 10_000,
        "MEA": 8_000,
        "PEA": 8_000,
        "ERC": 7_000,
        "NEPO": 6_000,
    }
    assert chain_info.params(sb.state).governance == Governance()


# --- vote delegation ------------------------------------------------------------------------
def delegate(n: Cast, signer: PrivateKey, code: str) -> Event:
    (event,) = n.ok(signer, DelegateVote(code))
    return event


def codes(n: Net) -> dict[bytes, str]:
    return {n.sb.authority(c).address: c for c in ("EGAT", "MEA", "PEA", "ERC", "NEPO")}


def ballots(n: Net, proposal_id: int) -> dict[str, tuple[VoteChoice, int, str]]:
    """Authority code -> (choice, weight, code of the delegate that cast it or "")."""
    code = codes(n)
    prefix = governance.ballot_key(proposal_id, b"")
    found = {}
    for k, b in n.sb.state.scan(prefix):
        assert isinstance(b, governance.Ballot)
        found[code[k[len(prefix) :]]] = (b.choice, b.weight, code.get(b.delegate, ""))
    return found


def vote_event(n: Cast, signer: PrivateKey, proposal_id: int, choice: VoteChoice) -> Event:
    (event,) = n.ok(signer, CastVote(proposal_id, choice))
    assert event.kind == "vote_cast"
    return event


def test_a_delegate_votes_with_its_own_weight_and_its_delegators(g: Cast) -> None:
    """Worked example in docs/governance.md: MEA and PEA delegate to EGAT, whose one vote
    carries 26,000 of 39,000, enough for quorum (19,500) and approval alone."""
    event = delegate(g, g.mea, "EGAT")
    assert (event.kind, event.attrs) == ("vote_delegated", {"delegator": "MEA", "delegate": "EGAT"})
    delegate(g, g.pea, "EGAT")
    assert governance.delegators_of(g.sb.state, g.egat.address) == tuple(
        sorted((g.mea.address, g.pea.address))
    )
    assert governance.delegate_of(g.sb.state, g.mea.address) == g.egat.address
    pid = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    event = vote_event(g, g.egat, pid, YES)
    assert event.attrs == {
        "id": pid,
        "voter": "EGAT",
        "choice": "YES",
        "weight": 10_000,
        "delegated": 16_000,
        "on_behalf": "MEA,PEA",
    }
    p = proposal(g, pid)
    assert (p.yes, p.no, p.abstain, p.total_weight) == (26_000, 0, 0, 39_000)
    assert ballots(g, pid) == {
        "EGAT": (YES, 10_000, ""),
        "MEA": (YES, 8_000, "EGAT"),
        "PEA": (YES, 8_000, "EGAT"),
    }
    vote(g, pid, (g.nepo, NO))
    assert kinds(finish(g, pid)) == ["proposal_passed", "proposal_executed", "params_changed"]
    assert g.params.min_fee_satang == 50


@pytest.mark.parametrize("nepo_first", [False, True])
def test_the_worked_delegation_example(g: Cast, nepo_first: bool) -> None:
    """docs/governance.md "Vote delegation", step by step."""
    for delegator, to in ((g.mea, "EGAT"), (g.pea, "EGAT"), (g.nepo, "ERC")):
        delegate(g, delegator, to)
    pid = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    if nepo_first:
        vote(g, pid, (g.nepo, NO))
    event = vote_event(g, g.egat, pid, YES)
    assert (event.attrs["delegated"], event.attrs["on_behalf"]) == (16_000, "MEA,PEA")
    assert proposal(g, pid).yes == 26_000
    assert vote_event(g, g.pea, pid, NO).attrs["overrides"] == "EGAT"
    vote(g, pid, (g.erc, ABSTAIN))
    p = proposal(g, pid)
    if nepo_first:
        assert (p.yes, p.no, p.abstain) == (18_000, 14_000, 7_000)
        events = finish(g, pid)
        assert str(events[0].attrs["reason"]).startswith("not approved: 18000 yes of 32000")
        return
    assert (p.yes, p.no, p.abstain) == (18_000, 8_000, 13_000)
    assert kinds(finish(g, pid))[:2] == ["proposal_passed", "proposal_executed"]


def test_a_delegator_voting_later_overrides_its_delegate(g: Cast) -> None:
    delegate(g, g.mea, "EGAT")
    delegate(g, g.pea, "EGAT")
    pid = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    vote(g, pid, (g.egat, YES))
    event = vote_event(g, g.mea, pid, NO)
    assert event.attrs == {
        "id": pid,
        "voter": "MEA",
        "choice": "NO",
        "weight": 8_000,
        "overrides": "EGAT",
    }
    p = proposal(g, pid)
    assert (p.yes, p.no) == (18_000, 8_000)  # MEA's 8,000 left EGAT's yes for its own no
    assert ballots(g, pid)["MEA"] == (NO, 8_000, "")
    assert ballots(g, pid)["PEA"] == (YES, 8_000, "EGAT")
    g.rejects(g.mea, CastVote(pid, YES), errors.AlreadyVoted, "ALREADY_VOTED")
    g.rejects(g.egat, CastVote(pid, NO), errors.AlreadyVoted, "ALREADY_VOTED")
    # Abstaining overrides too: PEA's weight moves from yes to abstain.
    vote(g, pid, (g.pea, ABSTAIN))
    p = proposal(g, pid)
    assert (p.yes, p.no, p.abstain) == (10_000, 8_000, 8_000)


def test_a_delegator_that_voted_first_is_not_counted_again(g: Cast) -> None:
    delegate(g, g.mea, "EGAT")
    pid = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    vote(g, pid, (g.mea, NO))
    event = vote_event(g, g.egat, pid, YES)
    assert "delegated" not in event.attrs and "on_behalf" not in event.attrs
    p = proposal(g, pid)
    assert (p.yes, p.no) == (10_000, 8_000)
    assert ballots(g, pid) == {"EGAT": (YES, 10_000, ""), "MEA": (NO, 8_000, "")}


def test_clearing_a_delegation_takes_effect_from_the_next_vote(g: Cast) -> None:
    delegate(g, g.mea, "EGAT")
    first = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    vote(g, first, (g.egat, YES))
    (event,) = g.ok(g.mea, DelegateVote(""))
    assert (event.kind, event.attrs) == (
        "vote_delegation_cleared",
        {"delegator": "MEA", "delegate": "EGAT"},
    )
    assert governance.delegate_of(g.sb.state, g.mea.address) is None
    assert governance.delegators_of(g.sb.state, g.egat.address) == ()
    assert g.sb.state.get(governance.delegators_key(g.egat.address), governance.Delegators) is None
    # The ballot EGAT cast for MEA before the change stands (MEA may still override it)...
    assert ballots(g, first)["MEA"] == (YES, 8_000, "EGAT")
    # ...and the next proposal counts MEA only if MEA votes itself.
    second = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 60))
    vote(g, second, (g.egat, YES))
    assert proposal(g, second).yes == 10_000
    assert set(ballots(g, second)) == {"EGAT"}


def test_delegation_changing_between_and_during_proposals(g: Cast) -> None:
    """The delegation in force when a vote is cast is the one that counts."""
    delegate(g, g.mea, "EGAT")
    first = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    vote(g, first, (g.egat, YES))  # carries MEA
    event = delegate(g, g.mea, "PEA")  # re-delegating needs no clearing first
    assert event.attrs == {"delegator": "MEA", "delegate": "PEA", "previous_delegate": "EGAT"}
    assert governance.delegators_of(g.sb.state, g.egat.address) == ()
    assert governance.delegators_of(g.sb.state, g.pea.address) == (g.mea.address,)
    second = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 60))
    vote(g, first, (g.pea, NO))  # MEA already counted (through EGAT) on the first
    vote(g, second, (g.egat, YES), (g.pea, NO))  # PEA carries MEA on the second
    a, b = proposal(g, first), proposal(g, second)
    assert (a.yes, a.no) == (18_000, 8_000)
    assert (b.yes, b.no) == (10_000, 16_000)
    assert ballots(g, first)["MEA"] == (YES, 8_000, "EGAT")
    assert ballots(g, second)["MEA"] == (NO, 8_000, "PEA")


def test_the_veto_stays_the_regulators_own(g: Cast) -> None:
    """A delegate cannot veto with the ERC's weight; the ERC keeps its veto by voting itself,
    and a veto the ERC casts as a delegate carries its delegators' weight as a plain no."""
    delegate(g, g.erc, "EGAT")
    market = propose(g, g.egat, K.MARKET_RULE, ParamChange("platform_fee_basis_points", 50))
    g.rejects(g.egat, CastVote(market, VETO), errors.VetoNotAllowed, "VETO_NOT_ALLOWED")
    vote(g, market, (g.egat, YES))
    assert proposal(g, market).yes == 17_000
    vote(g, market, (g.erc, VETO))  # overrides EGAT's yes on its behalf
    p = proposal(g, market)
    assert (p.yes, p.no, p.vetoed) == (10_000, 7_000, True)
    g.ok(g.erc, DelegateVote(""))
    delegate(g, g.nepo, "ERC")
    licence = propose(g, g.mea, K.LICENCE_POLICY, ParamChange("small_prosumer_threshold_w", 1))
    event = vote_event(g, g.erc, licence, VETO)
    assert (event.attrs["delegated"], event.attrs["on_behalf"]) == (6_000, "NEPO")
    p = proposal(g, licence)
    assert (p.yes, p.no, p.vetoed) == (0, 13_000, True)
    assert ballots(g, licence) == {"ERC": (VETO, 7_000, ""), "NEPO": (NO, 6_000, "ERC")}
    assert kinds(finish(g, licence)) == ["proposal_rejected", "proposal_rejected"]  # both vetoed


def test_a_delegator_without_weight_adds_nothing_and_may_still_clear(g: Cast) -> None:
    delegate(g, g.nepo, "EGAT")
    g.rejects(g.egat, DelegateVote("MEA"), errors.DelegationChain, "DELEGATION_CHAIN")
    cut = propose(g, g.egat, K.PARAMETER, WeightChange("NEPO", 0))
    vote(g, cut, (g.egat, YES), (g.mea, YES))  # EGAT carries NEPO's 6,000 on this one
    assert proposal(g, cut).yes == 24_000
    assert kinds(finish(g, cut))[:2] == ["proposal_passed", "proposal_executed"]
    later = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 5))
    event = vote_event(g, g.egat, later, YES)
    assert "delegated" not in event.attrs and set(ballots(g, later)) == {"EGAT"}
    g.rejects(g.nepo, DelegateVote("MEA"), errors.NoGovernanceWeight, "NO_GOVERNANCE_WEIGHT")
    g.ok(g.nepo, DelegateVote(""))  # clearing needs no weight, so EGAT is not stuck
    delegate(g, g.egat, "MEA")


def test_a_delegate_whose_weight_was_voted_away_carries_nobody(g: Cast) -> None:
    delegate(g, g.mea, "NEPO")
    cut = propose(g, g.egat, K.PARAMETER, WeightChange("NEPO", 0))
    vote(g, cut, (g.egat, YES), (g.mea, YES), (g.pea, YES))
    assert kinds(finish(g, cut))[:2] == ["proposal_passed", "proposal_executed"]
    pid = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 5))
    g.rejects(g.nepo, CastVote(pid, YES), errors.NoGovernanceWeight, "NO_GOVERNANCE_WEIGHT")
    g.rejects(g.pea, DelegateVote("NEPO"), errors.InvalidDelegate, "INVALID_DELEGATE")
    vote(g, pid, (g.mea, YES))  # MEA's weight is its own to use
    assert proposal(g, pid).yes == 8_000


def test_delegation_rejections(g: Cast) -> None:
    g.rejects(g.home, DelegateVote("EGAT"), errors.Unauthorised, "UNAUTHORISED")
    g.rejects(g.home, DelegateVote(""), errors.Unauthorised, "UNAUTHORISED")
    g.rejects(g.mea, DelegateVote("XYZ"), errors.InvalidDelegate, "INVALID_DELEGATE")
    g.rejects(g.mea, DelegateVote("egat"), errors.InvalidDelegate, "INVALID_DELEGATE")
    g.rejects(g.mea, DelegateVote("MEA"), errors.SelfDelegation, "SELF_DELEGATION")
    g.rejects(g.mea, DelegateVote(""), errors.NotDelegating, "NOT_DELEGATING")
    delegate(g, g.mea, "EGAT")
    g.rejects(g.mea, DelegateVote("EGAT"), errors.DelegationUnchanged, "DELEGATION_UNCHANGED")
    exc = g.rejects(g.egat, DelegateVote("PEA"), errors.DelegationChain, "DELEGATION_CHAIN")
    assert "others delegate to EGAT" in str(exc)
    exc = g.rejects(g.pea, DelegateVote("MEA"), errors.DelegationChain, "DELEGATION_CHAIN")
    assert "MEA delegates its own vote" in str(exc)
    g.ok(g.mea, DelegateVote(""))
    g.rejects(g.mea, DelegateVote(""), errors.NotDelegating, "NOT_DELEGATING")
    delegate(g, g.egat, "PEA")  # no longer a delegate, so EGAT may delegate


def test_an_authority_without_weight_may_not_delegate_nor_be_delegated_to() -> None:
    n = nepo_without_weight()
    n.rejects(n.nepo, DelegateVote("EGAT"), errors.NoGovernanceWeight, "NO_GOVERNANCE_WEIGHT")
    exc = n.rejects(n.mea, DelegateVote("NEPO"), errors.InvalidDelegate, "INVALID_DELEGATE")
    assert "no governance weight" in str(exc)
    n.rejects(n.nepo, DelegateVote(""), errors.NotDelegating, "NOT_DELEGATING")


def _forge(n: Cast, *records: tuple[bytes, msgspec.Struct | None]) -> None:
    view = n.sb.state.overlay()
    for k, record in records:
        if record is None:
            view.delete(k)
        else:
            view.put(k, record)
    view.commit()


@pytest.mark.parametrize(
    "forgery",
    [
        "tally_without_ballot",
        "delegated_ballot_without_the_delegates_own",
        "delegated_ballot_with_another_choice",
        "delegated_veto",
        "chain",
        "unlisted_delegator",
        "listed_by_two",
        "self",
    ],
)
def test_the_invariant_catches_miscounted_delegated_weight_and_broken_records(
    g: Cast, forgery: str
) -> None:
    delegate(g, g.mea, "EGAT")
    pid = propose(g, g.egat, K.PARAMETER, ParamChange("min_fee_satang", 50))
    vote(g, pid, (g.egat, YES))
    invariants.check_governance(g.sb.state)
    p = proposal(g, pid)
    egat, mea, pea = g.egat.address, g.mea.address, g.pea.address
    mea_ballot = governance.ballot_key(pid, mea)
    forged: dict[str, list[tuple[bytes, msgspec.Struct | None]]] = {
        # MEA's weight counted twice: in the tally again, beyond its one ballot.
        "tally_without_ballot": [
            (governance.proposal_key(pid), msgspec.structs.replace(p, yes=p.yes + 8_000))
        ],
        "delegated_ballot_without_the_delegates_own": [
            (governance.ballot_key(pid, pea), governance.Ballot(YES, 8_000, g.nepo.address)),
            (governance.proposal_key(pid), msgspec.structs.replace(p, yes=p.yes + 8_000)),
        ],
        "delegated_ballot_with_another_choice": [
            (mea_ballot, governance.Ballot(NO, 8_000, egat)),
            (governance.proposal_key(pid), msgspec.structs.replace(p, yes=10_000, no=8_000)),
        ],
        "delegated_veto": [(mea_ballot, governance.Ballot(VETO, 8_000, egat))],
        "chain": [
            (governance.delegation_key(egat), governance.Delegation(pea)),
            (governance.delegators_key(pea), governance.Delegators((egat,))),
        ],
        "unlisted_delegator": [(governance.delegators_key(egat), None)],
        "listed_by_two": [(governance.delegators_key(pea), governance.Delegators((mea,)))],
        "self": [
            (governance.delegation_key(pea), governance.Delegation(pea)),
            (governance.delegators_key(pea), governance.Delegators((pea,))),
        ],
    }
    _forge(g, *forged[forgery])
    with pytest.raises(invariants.InvariantViolation):
        invariants.check_governance(g.sb.state)


# --- replicated: a governance vote adds a fifth validator, which then signs blocks ----------
def test_a_voted_validator_signs_blocks_under_consensus(tmp_path: Path) -> None:
    from tests.ledger.test_validator_changes import (
        GENESIS_TIME,
        _scripted_nodes,
        _stored,
        _without_nepo_power,
    )

    keys = genesis.dev_keys()
    egat, mea, pea, erc, nepo = (keys[c] for c in ("EGAT", "MEA", "PEA", "ERC", "NEPO"))
    four_sb = _without_nepo_power(Sandbox(chain_id=CHAIN_ID, genesis_time=GENESIS_TIME))
    rules = msgspec.structs.replace(
        Governance(),
        voting_period_heights=3,
        timelock_heights=1,
        emergency_voting_period_heights=1,
        emergency_timelock_heights=0,
    )
    spec = msgspec.structs.replace(
        four_sb.genesis, params=msgspec.structs.replace(four_sb.genesis.params, governance=rules)
    )
    four = four_sb.validators(1)
    assert four.get(nepo.address) is None
    join = (ValidatorChange(nepo.public_key, 6_000),)
    submit = tx.make(egat, CHAIN_ID, 0, SubmitProposal(K.VALIDATOR, join, "NEPO joins")).encode()
    votes = [
        tx.make(signer, CHAIN_ID, nonce, CastVote(1, YES)).encode()
        for signer, nonce in ((egat, 1), (mea, 0), (pea, 0), (erc, 0))
    ]
    script: dict[int, list[Callable[[Application], object]]] = {
        0: [lambda a: a.submit(submit)],  # in block 1: voting ends at height 3
        1: [lambda a, raw=raw: a.submit(raw) for raw in votes],  # in block 2 or 3
    }
    apps: dict[int, Application] = {}
    open_app = _scripted_nodes(spec, tmp_path, script, apps)

    heights = 10
    scenario = Scenario(seed=7, validators=5, heights=heights, delay_ms=(1, 100))
    node_keys = [egat, mea, pea, erc, nepo]
    Simulation(scenario, apps=open_app, keys=node_keys, validators=four).run()
    try:
        assert all(a.height == heights for a in apps.values())
        assert len({a.state.root() for a in apps.values()}) == 1
        state = apps[0].state
        p = governance.get_proposal(state, 1)
        assert p is not None and p.status is ProposalStatus.EXECUTED
        assert p.yes == 33_000 and p.execute_height == 4
        five = validator_set.for_height(state, heights + 1)
        assert five.power(nepo.address) == 6_000 and len(five.validators) == 5
        chain = [_stored(apps[0], h) for h in range(1, heights + 1)]
        for h, (block, signers) in enumerate(chain, start=1):
            expected = five if h >= p.execute_height + 2 else four
            assert block.header.validators_hash == validator_set.set_hash(expected), h
            if h < p.execute_height + 2:
                assert nepo.address not in signers
        signed_by_nepo = {h for h, (_, s) in enumerate(chain, start=1) if nepo.address in s}
        assert signed_by_nepo, "NEPO's vote never made it into a commit certificate"
        executed = apps[0].store.block_events(p.execute_height)
        assert executed is not None and "proposal_executed" in kinds(executed)
    finally:
        for a in apps.values():
            a.close()


# --- random mixes keep the governance invariants -------------------------------------------
_ACTIONS: list[Action] = [
    ParamChange("min_fee_satang", 5),
    ParamChange("price_max_satang_per_kwh", 900),
    ParamChange("price_min_satang_per_kwh", 950),
    ParamChange("small_prosumer_threshold_w", 20_000),
    ParamChange("tariffs.holidays", (20260101,)),
    ParamChange("governance.voting_period_heights", 2),
    ParamChange("interval_seconds", 7),
    ValidatorChange(NEW.public_key, 3_000),
    ValidatorChange(NEW.public_key, 0),
    WeightChange("NEPO", 0),
    WeightChange("EGAT", 12_000),
    InterconnectorChange("NTH", "STH", 100_000, 400),
    InterconnectorChange("BKK", "CEN", 5, 100),
]
_CODES = ("EGAT", "MEA", "PEA", "ERC", "NEPO")
_op = st.one_of(
    st.tuples(
        st.just("submit"),
        st.sampled_from(_CODES),
        st.sampled_from(ProposalKind),
        st.lists(st.sampled_from(_ACTIONS), min_size=1, max_size=3),
    ),
    # Proposals whose kind fits their action, so that votes (and delegated votes) have
    # open proposals to land on rather than mostly refused submissions.
    st.sampled_from(_ACTIONS).flatmap(
        lambda a: st.tuples(
            st.just("submit"),
            st.sampled_from(_CODES),
            st.just(governance._action_kind(a)),
            st.just([a]),
        )
    ),
    st.tuples(
        st.just("vote"), st.sampled_from(_CODES), st.integers(1, 4), st.sampled_from(VoteChoice)
    ),
    st.tuples(st.just("withdraw"), st.sampled_from(_CODES), st.integers(1, 4), st.just(None)),
    st.tuples(
        st.just("delegate"),
        st.sampled_from(_CODES),
        st.sampled_from((*_CODES, "", "XYZ")),
        st.just(None),
    ),
    st.tuples(st.just("advance"), st.just(""), st.just(0), st.just(None)),
)


def _replay(ops: list[tuple[str, str, object, object]]) -> tuple[bytes, list[str]]:
    sb = governed_sandbox()
    outcomes = []
    for name, code, a, b in ops:
        if name == "advance":
            sb.advance(1)
            outcomes.append("advanced")
        else:
            if name == "submit":
                assert isinstance(a, ProposalKind) and isinstance(b, list)
                body: tx.Body = SubmitProposal(a, tuple(b))
            elif name == "vote":
                assert isinstance(a, int) and isinstance(b, VoteChoice)
                body = CastVote(a, b)
            elif name == "delegate":
                assert isinstance(a, str)
                body = DelegateVote(a)
            else:
                assert isinstance(a, int)
                body = WithdrawProposal(a)
            root = sb.state.root()
            try:
                sb.submit(sb.authority(code), body)
                outcomes.append("ok")
            except errors.Rejection as exc:
                assert sb.state.root() == root
                outcomes.append(exc.code)
        invariants.check_all(sb.state)
    return sb.state.root(), outcomes


@settings(max_examples=40, deadline=None)
@given(st.lists(_op, max_size=30))
def test_random_governance_mixes_keep_invariants_and_replay_identically(
    ops: list[tuple[str, str, object, object]],
) -> None:
    assert _replay(ops) == _replay(ops)


_ballot_op = st.one_of(
    st.tuples(st.just("delegate"), st.sampled_from(_CODES), st.sampled_from((*_CODES, ""))),
    st.tuples(
        st.just("vote"),
        st.sampled_from(_CODES),
        st.tuples(st.integers(1, 2), st.sampled_from((YES, NO, ABSTAIN))),
    ),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_ballot_op, max_size=30))
def test_random_delegations_and_votes_count_each_weight_once_and_own_votes_win(
    ops: list[tuple[str, str, object]],
) -> None:
    """Two open proposals, delegations and votes in any order: a delegate's vote gives a
    ballot with its choice to exactly its delegators (in force then) that had none, no
    tally ever exceeds the total weight, and once every authority has voted itself the
    tallies are what they would be without delegation."""
    n = Net(governed_sandbox(voting_period_heights=1_000))
    pids = [propose(n, n.egat, K.PARAMETER, ParamChange("min_fee_satang", f)) for f in (1, 2)]
    own: dict[tuple[int, str], VoteChoice] = {}
    for name, code, arg in ops:
        signer = n.sb.authority(code)
        try:
            if name == "delegate":
                assert isinstance(arg, str)
                n.ok(signer, DelegateVote(arg))
                continue
            assert isinstance(arg, tuple)
            pid, choice = pids[arg[0] - 1], arg[1]
            prefix = governance.ballot_key(pid, b"")
            before = dict(n.sb.state.scan(prefix))
            waiting = [
                d
                for d in governance.delegators_of(n.sb.state, signer.address)
                if governance.ballot_key(pid, d) not in before
            ]
            n.ok(signer, CastVote(pid, choice))
            own[(pid, code)] = choice
        except errors.Rejection:
            continue
        changed = {k: b for k, b in n.sb.state.scan(prefix) if before.get(k) != b}
        weight = governance.weights(n.sb.state)
        assert changed == {
            prefix + signer.address: governance.Ballot(choice, weight[code]),
            **{
                prefix + d: governance.Ballot(choice, weight[codes(n)[d]], signer.address)
                for d in waiting
            },
        }
        for p in (proposal(n, i) for i in pids):
            assert p.yes + p.no + p.abstain <= p.total_weight == 39_000
    for pid in pids:
        for code in _CODES:
            if (pid, code) not in own:
                n.ok(n.sb.authority(code), CastVote(pid, YES))
                own[(pid, code)] = YES
        weight = governance.weights(n.sb.state)
        expected = {
            c: sum(weight[a] for (i, a), v in own.items() if i == pid and v is c)
            for c in VoteChoice
        }
        p = proposal(n, pid)
        assert (p.yes, p.no, p.abstain) == (expected[YES], expected[NO], expected[ABSTAIN])
