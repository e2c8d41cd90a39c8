"""Validator-set changes, which only a passed governance proposal makes: adding,
re-weighting, removing and unjailing validators. Every change is in force two heights after
the block that executes it, and changes decided in consecutive blocks, or with jailing
evidence in the same block, stack without delaying one another. Every rule's rejection
surfaces when the proposal is submitted (its dry run), or as a FAILED proposal when the
change is no longer possible at execution.

Most tests here vote under rules that submit, vote, tally and execute a proposal in one
block (voting period 1, timelock 0), so each is about the block that decides the change,
not the wait before it; tests/test_governance.py covers the periods themselves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from gridtokenx.chain import blocks
from gridtokenx.chain.application import Application
from gridtokenx.consensus.simulation import CHAIN_ID, Scenario, Simulation
from gridtokenx.ledger import genesis, governance, invariants, validator_set
from gridtokenx.ledger.context import BlockContext, Event
from gridtokenx.ledger.governance import ProposalStatus
from gridtokenx.ledger.sandbox import DEFAULT_GENESIS_TIME, Sandbox
from gridtokenx.ledger.state import Overlay
from gridtokenx.storage.store import open_application
from gridtokenx.wire import errors, tx
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import (
    MAX_TOTAL_POWER,
    Action,
    CastVote,
    ProposalKind,
    SubmitProposal,
    ValidatorChange,
    ValidatorUnjail,
    VoteChoice,
)
from gridtokenx.wire.validators import ValidatorSet
from gridtokenx.wire.votes import NIL, Evidence, Vote, VoteType, block_id, sign_vote
from tests.conftest import Cast, Net, key

NEW = key("validator/new")
OTHER = key("validator/other")
AUTHORITIES = ("EGAT", "MEA", "PEA", "ERC", "NEPO")


def _voting(spec: genesis.Genesis, period: int = 1, timelock: int = 0) -> genesis.Genesis:
    """`spec` whose proposals vote for `period` heights and then wait `timelock`: by
    default submitted, voted on, tallied and executed in one block (emergencies always)."""
    rules = {"voting_period_heights": period, "timelock_heights": timelock}
    short = {"emergency_voting_period_heights": 1, "emergency_timelock_heights": 0}
    governed = msgspec.structs.replace(spec.params.governance, **rules, **short)
    return msgspec.structs.replace(
        spec, params=msgspec.structs.replace(spec.params, governance=governed)
    )


def _governed() -> Sandbox:
    """The devnet genesis with one-block governance."""
    spec = genesis.devnet("gridtokenx-sandbox", DEFAULT_GENESIS_TIME, genesis.dev_keys())
    return Sandbox(spec=_voting(spec))


def _equivocation(sb: Sandbox, signer: PrivateKey, height: int = 1) -> Evidence:
    return equivocation(sb.chain_id, signer, height)


def equivocation(chain_id: str, signer: PrivateKey, height: int) -> Evidence:
    """Two precommits by `signer` for different blocks at one height and round."""

    def vote(bid: bytes) -> Vote:
        return sign_vote(signer, chain_id, Vote(height, 0, VoteType.PRECOMMIT, bid, signer.address))

    return Evidence(vote(NIL), vote(block_id(b"x")))


def _stages(sb: Sandbox) -> tuple[validator_set.Stage, ...]:
    sets = sb.state.get(validator_set.SET_KEY, validator_set.Sets)
    assert sets is not None
    return sets.pending


def _powers(sb: Sandbox, height: int) -> dict[bytes, int]:
    return {v.address: v.power for v in sb.validators(height).validators}


def _proposal(*actions: Action, kind: ProposalKind = ProposalKind.VALIDATOR) -> SubmitProposal:
    return SubmitProposal(kind, actions, "validator set")


def propose(n: Net, *actions: Action, kind: ProposalKind = ProposalKind.VALIDATOR) -> int:
    """The ERC proposes `actions` and every authority votes yes, all in the current block."""
    submitted = n.ok(n.erc, _proposal(*actions, kind=kind))
    proposal_id = submitted[0].attrs["id"]
    assert isinstance(proposal_id, int)
    for code in AUTHORITIES:
        n.ok(n.sb.authority(code), CastVote(proposal_id, VoteChoice.YES))
    return proposal_id


def _ended(n: Net) -> list[Event]:
    """End the current block (where one-block proposals tally and execute)."""
    events = n.sb.advance(1)
    invariants.check_all(n.sb.state)
    return events


def decide(n: Net, *actions: Action, kind: ProposalKind = ProposalKind.VALIDATOR) -> list[Event]:
    """Vote `actions` through in the current block and end it: the change is decided at
    the block's height. Returns the actions' events."""
    proposal_id = propose(n, *actions, kind=kind)
    events = _ended(n)
    assert [(e.kind, e.attrs["id"]) for e in events[:2]] == [
        ("proposal_passed", proposal_id),
        ("proposal_executed", proposal_id),
    ]
    return events[2:]


def _refused(n: Net, action: Action, exc_type: type[errors.Rejection], code: str) -> None:
    """The proposal's dry run refuses `action` at submission, and nothing changes."""
    n.rejects(n.erc, _proposal(action), exc_type, code)


@pytest.fixture
def n() -> Net:
    return Net(_governed())


@pytest.fixture
def cast() -> Cast:
    return Cast(_governed())


# --- happy paths ----------------------------------------------------------------------------
def test_a_vote_adds_a_validator_that_signs_from_two_heights_later(n: Net) -> None:
    sb = n.sb
    h = sb.height
    before = sb.validators(h + 1)
    events = decide(n, ValidatorChange(NEW.public_key, 5_000))
    assert [(e.kind, e.attrs) for e in events] == [
        ("validator_added", {"validator": NEW.address, "power": 5_000, "from_height": h + 2})
    ]
    assert sb.height == h + 1 and sb.validators() == before  # the next block: the old set
    after = sb.validators(h + 2)
    assert after.power(NEW.address) == 5_000
    assert after.total_power == before.total_power + 5_000
    assert validator_set.set_hash(sb.validators(h + 1)) == validator_set.set_hash(before)
    assert validator_set.set_hash(after) != validator_set.set_hash(before)
    assert [s.from_height for s in _stages(sb)] == [h + 2]  # decided, not promoted yet
    _ended(n)
    assert sb.height == h + 2 and sb.validators() == after
    assert _stages(sb) == ()  # promoted into the current set


def test_a_vote_changes_a_validators_power(n: Net) -> None:
    h = n.sb.height
    events = decide(n, ValidatorChange(n.mea.public_key, 9_000))
    assert [(e.kind, e.attrs) for e in events] == [
        (
            "validator_power_changed",
            {"validator": n.mea.address, "power": 9_000, "previous": 8_000, "from_height": h + 2},
        )
    ]
    assert _powers(n.sb, h + 1)[n.mea.address] == 8_000
    assert _powers(n.sb, h + 2)[n.mea.address] == 9_000


def test_a_vote_removes_a_validator_with_power_zero(n: Net) -> None:
    h = n.sb.height
    events = decide(n, ValidatorChange(n.nepo.public_key, 0))
    assert [(e.kind, e.attrs) for e in events] == [
        ("validator_removed", {"validator": n.nepo.address, "from_height": h + 2})
    ]
    assert n.nepo.address in _powers(n.sb, h + 1)
    assert n.nepo.address not in _powers(n.sb, h + 2)
    # Removed, not jailed: adding it back is an addition. Its governance weight is not
    # consensus power: NEPO still votes on the proposal that brings it back.
    assert governance.weights(n.sb.state)["NEPO"] == 6_000
    _ended(n)
    assert decide(n, ValidatorChange(n.nepo.public_key, 100))[0].kind == "validator_added"


def test_a_vote_unjails_a_validator_at_its_old_power(n: Net) -> None:
    sb = n.sb
    sb.punish(_equivocation(sb, n.mea))
    _ended(n)
    _ended(n)
    assert n.mea.address not in _powers(sb, sb.height)
    h = sb.height
    events = decide(n, ValidatorUnjail(n.mea.address))
    assert [(e.kind, e.attrs) for e in events] == [
        ("validator_unjailed", {"validator": n.mea.address, "from_height": h + 2})
    ]
    assert n.mea.address not in _powers(sb, h + 1)
    assert _powers(sb, h + 2)[n.mea.address] == 8_000


def test_an_emergency_may_unjail_and_add(n: Net) -> None:
    """EGAT or the ERC may carry validator actions in an emergency (short clock, 75 %)."""
    sb = n.sb
    sb.punish(_equivocation(sb, n.pea))
    _ended(n)
    h = sb.height
    events = decide(
        n,
        ValidatorUnjail(n.pea.address),
        ValidatorChange(NEW.public_key, 1_000),
        kind=ProposalKind.EMERGENCY,
    )
    assert [e.kind for e in events] == ["validator_unjailed", "validator_added"]
    powers = _powers(sb, h + 2)
    assert powers[n.pea.address] == 8_000 and powers[NEW.address] == 1_000


def _without_nepo_power(sb: Sandbox) -> Sandbox:
    """The sandbox's genesis with NEPO an authority but not a validator: four validators."""
    spec = sb.genesis
    authorities = tuple(
        msgspec.structs.replace(a, voting_power=0) if a.code == "NEPO" else a
        for a in spec.authorities
    )
    return Sandbox(spec=msgspec.structs.replace(spec, authorities=authorities))


def test_a_pardoned_offence_cannot_jail_again_but_a_new_one_can(n: Net) -> None:
    sb = n.sb
    offence = _equivocation(sb, n.mea, height=1)
    sb.punish(offence)
    _ended(n)
    decide(n, ValidatorUnjail(n.mea.address))  # decided at 2: back from 4
    _ended(n)
    assert sb.height == 4 and n.mea.address in _powers(sb, 4)
    root = sb.state.root()
    for replayed in (offence, Evidence(offence.second, offence.first), _equivocation(sb, n.mea, 3)):
        with pytest.raises(validator_set.InvalidEvidence, match="current term"):
            sb.punish(replayed)
    assert sb.state.root() == root
    assert sb.punish(_equivocation(sb, n.mea, height=4))[0].kind == "validator_jailed"


def test_a_new_validator_answers_only_for_votes_from_its_first_height(n: Net) -> None:
    sb = n.sb
    decide(n, ValidatorChange(NEW.public_key, 1_000))  # decided at 1: signs from 3
    _ended(n)
    _ended(n)
    with pytest.raises(validator_set.InvalidEvidence, match="current term"):
        sb.punish(_equivocation(sb, NEW, height=2))
    assert sb.punish(_equivocation(sb, NEW, height=3))[0].kind == "validator_jailed"


def test_an_authority_key_may_become_a_validator() -> None:
    n = Net(_without_nepo_power(_governed()))
    assert n.nepo.address not in _powers(n.sb, 1)
    assert decide(n, ValidatorChange(n.nepo.public_key, 6_000))[0].kind == "validator_added"
    assert _powers(n.sb, 3)[n.nepo.address] == 6_000


# --- nobody changes the set alone -------------------------------------------------------------
def test_a_participant_may_not_propose_a_validator_change(cast: Cast) -> None:
    body = _proposal(ValidatorChange(NEW.public_key, 1_000))
    cast.rejects(cast.home, body, errors.Unauthorised, "UNAUTHORISED")


def test_the_regulator_alone_does_not_change_the_set(n: Net) -> None:
    """The ERC, which licenses grid operators, proposes and votes yes: 7,000 of 39,000 is
    no quorum, the proposal is rejected and the set stays as it was."""
    h = n.sb.height
    before = n.sb.validators(h + 2)
    pid = n.ok(n.erc, _proposal(ValidatorChange(NEW.public_key, 1_000)))[0].attrs["id"]
    assert isinstance(pid, int)
    n.ok(n.erc, CastVote(pid, VoteChoice.YES))
    events = _ended(n)
    assert [e.kind for e in events] == ["proposal_rejected"]
    assert "quorum not reached" in str(events[0].attrs["reason"])
    assert n.sb.validators(h + 2) == before and _stages(n.sb) == ()


# --- rejections, at submission --------------------------------------------------------------
@pytest.mark.parametrize(
    "public_key",
    [
        b"\x00" * 32,  # not a canonical point
        b"\x01" + b"\x00" * 31,  # the identity: small order, any signature "verifies"
        b"\xff" * 32,  # not on the curve
        NEW.public_key[:31],  # too short (only an action built in code can carry this)
    ],
)
def test_a_key_that_is_not_an_ed25519_point_is_refused(n: Net, public_key: bytes) -> None:
    action = ValidatorChange(public_key, 1_000)
    _refused(n, action, errors.InvalidValidatorKey, "INVALID_VALIDATOR_KEY")


@pytest.mark.parametrize("power", [-1, MAX_TOTAL_POWER + 1, 2**63])
def test_power_out_of_range_is_refused(n: Net, power: int) -> None:
    _refused(
        n, ValidatorChange(NEW.public_key, power), errors.PowerOutOfRange, "POWER_OUT_OF_RANGE"
    )


def test_total_power_above_the_cap_is_refused(n: Net) -> None:
    total = n.sb.validators().total_power
    over = ValidatorChange(NEW.public_key, MAX_TOTAL_POWER - total + 1)
    _refused(n, over, errors.TotalPowerTooHigh, "TOTAL_POWER_TOO_HIGH")
    decide(n, ValidatorChange(NEW.public_key, MAX_TOTAL_POWER - total))  # exactly the cap
    assert n.sb.validators(n.sb.height + 1).total_power == MAX_TOTAL_POWER


def _install(sb: Sandbox, *members: PrivateKey) -> None:
    """Replace the genesis set by `members` at power 1,000 each (test setup only)."""
    view = sb.state.overlay()
    validator_set.install(view, [(m.public_key, 1_000) for m in members])
    view.commit()


def test_removing_the_last_validator_is_refused(n: Net) -> None:
    _install(n.sb, n.mea)
    _refused(
        n, ValidatorChange(n.mea.public_key, 0), errors.NoActiveValidator, "NO_ACTIVE_VALIDATOR"
    )


def test_removing_the_last_validator_that_is_not_jailed_is_refused(n: Net) -> None:
    _install(n.sb, n.mea, n.egat)
    n.sb.punish(_equivocation(n.sb, n.egat))
    _refused(
        n, ValidatorChange(n.mea.public_key, 0), errors.NoActiveValidator, "NO_ACTIVE_VALIDATOR"
    )
    assert decide(n, ValidatorChange(n.egat.public_key, 0))[0].kind == "validator_removed"


def test_removing_or_unjailing_a_stranger_is_refused(n: Net) -> None:
    _refused(n, ValidatorChange(NEW.public_key, 0), errors.UnknownValidator, "UNKNOWN_VALIDATOR")
    _refused(n, ValidatorUnjail(NEW.address), errors.UnknownValidator, "UNKNOWN_VALIDATOR")


def test_removing_a_validator_twice_is_refused_while_the_first_is_pending(n: Net) -> None:
    decide(n, ValidatorChange(n.nepo.public_key, 0))
    assert _stages(n.sb)  # pending: NEPO still signs the next height
    _refused(n, ValidatorChange(n.nepo.public_key, 0), errors.UnknownValidator, "UNKNOWN_VALIDATOR")


def test_setting_the_same_power_is_refused(n: Net) -> None:
    same = ValidatorChange(n.mea.public_key, 8_000)
    _refused(n, same, errors.ValidatorUnchanged, "VALIDATOR_UNCHANGED")
    decide(n, ValidatorChange(n.mea.public_key, 9_000))  # pending counts: 9,000 is now a no-op
    again = ValidatorChange(n.mea.public_key, 9_000)
    _refused(n, again, errors.ValidatorUnchanged, "VALIDATOR_UNCHANGED")


def test_unjailing_a_validator_that_is_not_jailed_is_refused(n: Net) -> None:
    unjail = ValidatorUnjail(n.mea.address)
    _refused(n, unjail, errors.ValidatorNotJailed, "VALIDATOR_NOT_JAILED")
    n.sb.punish(_equivocation(n.sb, n.mea))
    decide(n, unjail)
    _refused(n, unjail, errors.ValidatorNotJailed, "VALIDATOR_NOT_JAILED")


def test_a_participants_or_meters_key_cannot_become_a_validator(cast: Cast) -> None:
    for taken in (cast.home, cast.home_meter):
        action = ValidatorChange(taken.public_key, 1_000)
        _refused(cast, action, errors.ValidatorKeyInUse, "VALIDATOR_KEY_IN_USE")


# --- rejections, at execution ---------------------------------------------------------------
def test_a_change_no_longer_possible_at_execution_fails_the_proposal(n: Net) -> None:
    """Two proposals to remove NEPO pass in one block: each was possible when submitted,
    the first executes, the second fails with the rule it now breaks and changes nothing."""
    first = propose(n, ValidatorChange(n.nepo.public_key, 0))
    second = propose(n, ValidatorChange(n.nepo.public_key, 0), ValidatorChange(NEW.public_key, 1))
    h = n.sb.height
    events = _ended(n)
    assert [e.kind for e in events] == [
        "proposal_passed",
        "proposal_executed",
        "validator_removed",
        "proposal_passed",
        "proposal_failed",
    ]
    failed = governance.get_proposal(n.sb.state, second)
    assert failed is not None and failed.status is ProposalStatus.FAILED
    assert failed.outcome.startswith("UNKNOWN_VALIDATOR: ")
    executed = governance.get_proposal(n.sb.state, first)
    assert executed is not None and executed.status is ProposalStatus.EXECUTED
    powers = _powers(n.sb, h + 2)
    assert n.nepo.address not in powers and NEW.address not in powers  # none of #2's actions


def test_a_key_registered_before_execution_fails_the_proposal(cast: Cast) -> None:
    """MEA registers the would-be validator's key as a participant after the proposal was
    submitted: at execution the key is in use, so the proposal fails."""
    pid = propose(cast, ValidatorChange(NEW.public_key, 1_000))
    body = tx.RegisterParticipant(NEW.address, "BKK", tx.ParticipantKind.HOUSEHOLD, "taken")
    cast.ok(cast.mea, body)
    _ended(cast)
    failed = governance.get_proposal(cast.sb.state, pid)
    assert failed is not None and failed.status is ProposalStatus.FAILED
    assert failed.outcome.startswith("VALIDATOR_KEY_IN_USE: ")
    assert NEW.address not in _powers(cast.sb, cast.sb.height + 1)


# --- the set's functions, called with plain arguments ---------------------------------------
def _apply(sb: Sandbox, change: Callable[[Overlay, BlockContext], list[Event]]) -> list[Event]:
    view = sb.state.overlay()
    events = change(view, sb.context)
    view.commit()
    return events


def test_the_set_functions_take_plain_arguments_and_refuse_without_a_trace(n: Net) -> None:
    sb = n.sb
    h = sb.height
    added = _apply(sb, lambda v, c: validator_set.change_validator(v, c, NEW.public_key, 700))
    assert added[0].attrs == {"validator": NEW.address, "power": 700, "from_height": h + 2}
    root = sb.state.root()
    view = sb.state.overlay()
    with pytest.raises(errors.ValidatorNotJailed):
        validator_set.unjail(view, sb.context, NEW.address)
    with pytest.raises(errors.ValidatorUnchanged):
        validator_set.change_validator(view, sb.context, NEW.public_key, 700)
    assert sb.state.root() == root  # nothing was committed
    sb.punish(_equivocation(sb, n.mea))
    unjailed = _apply(sb, lambda v, c: validator_set.unjail(v, c, n.mea.address))
    assert unjailed[0].kind == "validator_unjailed"
    assert [s.from_height for s in _stages(sb)] == [h + 2]  # all three merged into one stage


# --- changes that stack ---------------------------------------------------------------------
def test_changes_in_one_block_merge_into_one_stage(n: Net) -> None:
    h = n.sb.height
    decide(
        n,
        ValidatorChange(NEW.public_key, 1_000),
        ValidatorChange(n.mea.public_key, 9_000),
        ValidatorChange(n.nepo.public_key, 0),
    )
    assert [s.from_height for s in _stages(n.sb)] == [h + 2]
    powers = _powers(n.sb, h + 2)
    assert powers[NEW.address] == 1_000 and powers[n.mea.address] == 9_000
    assert n.nepo.address not in powers


def test_two_proposals_executed_in_one_block_merge_into_one_stage(n: Net) -> None:
    h = n.sb.height
    propose(n, ValidatorChange(NEW.public_key, 1_000))
    propose(n, ValidatorChange(OTHER.public_key, 2_000))
    _ended(n)
    assert [s.from_height for s in _stages(n.sb)] == [h + 2]
    assert {NEW.address, OTHER.address} <= set(_powers(n.sb, h + 2))


def test_a_change_in_the_next_block_applies_on_top_and_neither_is_delayed(n: Net) -> None:
    sb = n.sb
    h = sb.height
    decide(n, ValidatorChange(NEW.public_key, 1_000))
    assert NEW.address not in _powers(sb, h + 1)
    decide(n, ValidatorChange(OTHER.public_key, 2_000))  # decided at h + 1; promotes the first
    assert [s.from_height for s in _stages(sb)] == [h + 3]
    assert NEW.address in _powers(sb, h + 2) and OTHER.address not in _powers(sb, h + 2)
    assert {NEW.address, OTHER.address} <= set(_powers(sb, h + 3))
    _ended(n)
    assert _stages(sb) == () and {NEW.address, OTHER.address} <= set(_powers(sb, h + 3))


def test_two_changes_can_be_pending_at_once(n: Net) -> None:
    """Decided at h and h + 1, seen from inside block h + 1: both stages wait."""
    sb = n.sb
    h = sb.height
    decide(n, ValidatorChange(NEW.public_key, 1_000))
    propose(n, ValidatorChange(OTHER.public_key, 2_000))
    view = sb.state.overlay()
    governance.end_block(view, sb.context)  # the proposal executes; promotion comes after
    view.commit()
    assert [s.from_height for s in _stages(sb)] == [h + 2, h + 3]


def test_evidence_and_a_set_change_in_the_same_block_both_apply(n: Net) -> None:
    """The block's evidence runs first, before its transactions and its end, where the
    proposal executes; the change builds on the jailing, and both take effect at H + 2."""
    sb = n.sb
    h = sb.height
    before = sb.validators(h)
    sb.punish(_equivocation(sb, n.mea))
    decide(
        n,
        ValidatorChange(NEW.public_key, 1_000),
        ValidatorChange(n.mea.public_key, 5_000),  # re-weighting keeps it jailed
    )
    assert sb.validators(h + 1) == before
    powers = _powers(sb, h + 2)
    assert NEW.address in powers and n.mea.address not in powers
    _ended(n)
    decide(n, ValidatorUnjail(n.mea.address))
    assert _powers(sb, sb.height + 1)[n.mea.address] == 5_000


def test_evidence_after_a_change_does_not_delay_the_change(n: Net) -> None:
    """A change decided at H - 1 signs H + 1 even when evidence at H decides another stage."""
    sb = n.sb
    decide(n, ValidatorChange(NEW.public_key, 1_000))
    h = sb.height
    events = sb.punish(_equivocation(sb, n.mea))
    assert events[0].attrs == {"validator": n.mea.address, "from_height": h + 2}
    at_next = _powers(sb, h + 1)
    assert NEW.address in at_next and n.mea.address in at_next
    later = _powers(sb, h + 2)
    assert NEW.address in later and n.mea.address not in later


def test_unjailing_in_the_jailing_block_cancels_the_jail(n: Net) -> None:
    sb = n.sb
    h = sb.height
    before = sb.validators(h)
    sb.punish(_equivocation(sb, n.mea))
    decide(n, ValidatorUnjail(n.mea.address))
    assert sb.validators(h + 2) == before


def test_evidence_against_a_validator_being_removed_is_refused(n: Net) -> None:
    decide(n, ValidatorChange(n.mea.public_key, 0))
    root = n.sb.state.root()
    with pytest.raises(validator_set.InvalidEvidence, match="leaving the set"):
        n.sb.punish(_equivocation(n.sb, n.mea))
    assert n.sb.state.root() == root


def test_the_same_decisions_give_the_same_state_root() -> None:
    def run() -> bytes:
        n = Net(_governed())
        n.sb.punish(_equivocation(n.sb, n.pea))
        decide(n, ValidatorChange(NEW.public_key, 1_000))
        decide(n, ValidatorChange(OTHER.public_key, 2_000), ValidatorUnjail(n.pea.address))
        return n.sb.state.root()

    assert run() == run()


# --- replicated: five nodes, the fifth is voted in, jailed and voted back ---------------------
GENESIS_TIME = 1_767_225_600


@dataclass
class _Scripted:
    """An Application that, like an operator at each node, submits transactions or reports
    evidence right after committing a given height (0: before the first block)."""

    app: Application
    script: dict[int, list[Callable[[Application], object]]]

    def build_block(self, height: int, time: int, proposer: bytes) -> bytes:
        return self.app.build_block(height, time, proposer)

    def check_block(self, height: int, raw: bytes) -> bool:
        return self.app.check_block(height, raw)

    def commit(self, height: int, raw: bytes, certificate: tuple[Vote, ...]) -> object:
        receipts = self.app.commit(height, raw, certificate)
        for action in self.script.get(height, []):
            action(self.app)
        return receipts

    def validators(self, height: int) -> ValidatorSet:
        return self.app.validators(height)

    def report_evidence(self, evidence: Evidence) -> None:
        self.app.report_evidence(evidence)


def _scripted_nodes(
    spec: genesis.Genesis,
    folder: Path,
    script: dict[int, list[Callable[[Application], object]]],
    apps: dict[int, Application],
) -> Callable[[int, bool], _Scripted]:
    """The simulator's app factory: node i opens its store under `folder`, runs the script's
    height-0 actions, then follows the script after each commit (no restarts)."""

    def open_app(index: int, restarted: bool) -> _Scripted:
        assert not restarted
        app = apps[index] = open_application(spec, folder / f"node-{index}")
        for action in script[0]:
            action(app)
        return _Scripted(app, script)

    return open_app


def _stored(app: Application, height: int) -> tuple[blocks.Block, set[bytes]]:
    stored = app.store.block(height)
    assert stored is not None
    certificate = msgspec.msgpack.decode(stored[1], type=tuple[Vote, ...])
    assert {v.height for v in certificate} == {height}
    return blocks.decode(stored[0]), {v.validator for v in certificate}


def test_a_validator_voted_in_jailed_and_voted_back_signs_under_consensus(
    tmp_path: Path,
) -> None:
    keys = genesis.dev_keys()
    egat, mea, pea, erc, nepo = (keys[c] for c in AUTHORITIES)
    sb = _without_nepo_power(Sandbox(chain_id=CHAIN_ID, genesis_time=GENESIS_TIME))
    spec = _voting(sb.genesis, period=3, timelock=1)
    four = sb.validators(1)
    assert len(four.validators) == 4 and four.get(nepo.address) is None

    def signed(signer: PrivateKey, nonce: int, body: tx.Body) -> bytes:
        return tx.make(signer, CHAIN_ID, nonce, body).encode()

    def yes(proposal_id: int, *voters: tuple[PrivateKey, int]) -> list[bytes]:
        return [signed(s, nonce, CastVote(proposal_id, VoteChoice.YES)) for s, nonce in voters]

    join = signed(egat, 0, _proposal(ValidatorChange(nepo.public_key, 6_000)))
    unjail = signed(erc, 1, _proposal(ValidatorUnjail(nepo.address)))
    evidence = _equivocation(sb, nepo, height=6)

    def submit(raws: list[bytes]) -> list[Callable[[Application], object]]:
        return [lambda a, raw=raw: a.submit(raw) for raw in raws]

    script: dict[int, list[Callable[[Application], object]]] = {
        0: submit([join]),  # in block 1: voting ends at 3, executed at 4, signs from 6
        1: submit(yes(1, (egat, 1), (mea, 0), (pea, 0), (erc, 0))),  # 33,000 of 39,000
        7: [lambda a: a.report_evidence(evidence)],  # in block 8: jailed from height 10
        9: submit([unjail]),  # in block 10: voting ends at 12, executed at 13, back from 15
        10: submit(yes(2, (egat, 2), (mea, 1), (pea, 1), (erc, 2))),
    }
    apps: dict[int, Application] = {}
    open_app = _scripted_nodes(spec, tmp_path, script, apps)

    heights = 20
    scenario = Scenario(seed=5, validators=5, heights=heights, delay_ms=(1, 100))
    Simulation(scenario, apps=open_app, keys=[egat, mea, pea, erc, nepo], validators=four).run()
    try:
        assert all(a.height == heights for a in apps.values())
        assert len({a.state.root() for a in apps.values()}) == 1
        state = apps[0].state
        voted_in, voted_back = governance.get_proposal(state, 1), governance.get_proposal(state, 2)
        assert voted_in is not None and voted_back is not None
        assert voted_in.status is voted_back.status is ProposalStatus.EXECUTED
        chain = [_stored(apps[0], h) for h in range(1, heights + 1)]
        for other in list(apps.values())[1:]:  # every node stored the same certified blocks
            assert [b.hash for b, _ in chain] == [
                _stored(other, h)[0].hash for h in range(1, heights + 1)
            ]
        assert chain[-1][0].header.state_root == state.root()
        jailed = next(h for h, (b, _) in enumerate(chain, start=1) if b.evidence)
        added, unjailed = voted_in.execute_height, voted_back.execute_height
        assert (added, jailed, unjailed) == (4, 8, 13)
        assert unjail in chain[10 - 1][0].txs  # submitted while NEPO was jailed
        five = validator_set.for_height(state, heights + 1)
        assert five.power(nepo.address) == 6_000 and len(five.validators) == 5
        expected = {
            h: five
            if added + 2 <= h < jailed + 2 or h >= unjailed + 2
            else four  # before joining, and while jailed (the jailed set is the four again)
            for h in range(1, heights + 1)
        }
        for h, (block, _) in enumerate(chain, start=1):
            assert block.header.validators_hash == validator_set.set_hash(expected[h]), h
        signed_by_nepo = {
            h for h, (_, signers) in enumerate(chain, start=1) if nepo.address in signers
        }
        assert signed_by_nepo, "NEPO's vote never made it into a commit certificate"
        assert all(expected[h] == five for h in signed_by_nepo)
        assert signed_by_nepo & set(range(added + 2, jailed + 2))
        assert signed_by_nepo & set(range(unjailed + 2, heights + 1))
    finally:
        for a in apps.values():
            a.close()
