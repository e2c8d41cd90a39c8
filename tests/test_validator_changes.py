"""Validator-set changes by transaction: the ERC adds, re-weights, removes and unjails
validators; every change is in force two heights after the block that decides it, and
changes decided in consecutive blocks, or with jailing evidence in the same block, stack
without delaying one another."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from conftest import Cast, Net, key
from gridtokenx import blocks, errors, genesis, tx, validator_set
from gridtokenx.application import Application
from gridtokenx.consensus.messages import NIL, Evidence, Vote, VoteType, block_id, sign_vote
from gridtokenx.consensus.validators import ValidatorSet
from gridtokenx.crypto import PrivateKey
from gridtokenx.sandbox import Sandbox
from gridtokenx.sim.network import CHAIN_ID, Scenario, Simulation
from gridtokenx.tx import MAX_TOTAL_POWER, SetValidator, UnjailValidator

NEW = key("validator/new")
OTHER = key("validator/other")


def _equivocation(sb: Sandbox, signer: PrivateKey, height: int = 1) -> Evidence:
    def vote(bid: bytes) -> Vote:
        return sign_vote(
            signer, sb.chain_id, Vote(height, 0, VoteType.PRECOMMIT, bid, signer.address)
        )

    return Evidence(vote(NIL), vote(block_id(b"x")))


def _stages(sb: Sandbox) -> tuple[validator_set.Stage, ...]:
    sets = sb.state.get(validator_set.SET_KEY, validator_set.Sets)
    assert sets is not None
    return sets.pending


def _powers(sb: Sandbox, height: int) -> dict[bytes, int]:
    return {v.address: v.power for v in sb.validators(height).validators}


@pytest.fixture
def n(sb: Sandbox) -> Net:
    return Net(sb)


# --- happy paths ----------------------------------------------------------------------------
def test_erc_adds_a_validator_that_signs_from_two_heights_later(n: Net) -> None:
    sb = n.sb
    h = sb.height
    before = sb.validators(h + 1)
    events = n.ok(n.erc, SetValidator(NEW.public_key, 5_000))
    assert [(e.kind, e.attrs) for e in events] == [
        ("validator_added", {"validator": NEW.address, "power": 5_000, "from_height": h + 2})
    ]
    assert sb.validators(h + 1) == before  # the block after the decision: the old set
    after = sb.validators(h + 2)
    assert after.power(NEW.address) == 5_000
    assert after.total_power == before.total_power + 5_000
    assert validator_set.set_hash(sb.validators(h + 1)) == validator_set.set_hash(before)
    assert validator_set.set_hash(after) != validator_set.set_hash(before)
    sb.advance(1)
    assert sb.validators() == before and sb.validators(h + 2) == after  # not promoted yet
    sb.advance(1)
    assert sb.height == h + 2 and sb.validators() == after
    assert _stages(sb) == ()  # promoted into the current set


def test_erc_changes_a_validators_power(n: Net) -> None:
    h = n.sb.height
    events = n.ok(n.erc, SetValidator(n.mea.public_key, 9_000))
    assert events[0].kind == "validator_power_changed"
    assert events[0].attrs == {
        "validator": n.mea.address,
        "power": 9_000,
        "previous": 8_000,
        "from_height": h + 2,
    }
    assert _powers(n.sb, h + 1)[n.mea.address] == 8_000
    assert _powers(n.sb, h + 2)[n.mea.address] == 9_000


def test_erc_removes_a_validator_with_power_zero(n: Net) -> None:
    h = n.sb.height
    events = n.ok(n.erc, SetValidator(n.nepo.public_key, 0))
    assert [(e.kind, e.attrs) for e in events] == [
        ("validator_removed", {"validator": n.nepo.address, "from_height": h + 2})
    ]
    assert n.nepo.address in _powers(n.sb, h + 1)
    assert n.nepo.address not in _powers(n.sb, h + 2)
    # Removed, not jailed: adding it back is an addition.
    n.sb.advance(1)
    n.sb.advance(1)
    assert n.ok(n.erc, SetValidator(n.nepo.public_key, 100))[0].kind == "validator_added"


def test_erc_unjails_a_validator_at_its_old_power(n: Net) -> None:
    sb = n.sb
    sb.punish(_equivocation(sb, n.mea))
    sb.advance(1)
    sb.advance(1)
    assert n.mea.address not in _powers(sb, sb.height)
    h = sb.height
    events = n.ok(n.erc, UnjailValidator(n.mea.address))
    assert [(e.kind, e.attrs) for e in events] == [
        ("validator_unjailed", {"validator": n.mea.address, "from_height": h + 2})
    ]
    assert n.mea.address not in _powers(sb, h + 1)
    assert _powers(sb, h + 2)[n.mea.address] == 8_000


def _without_nepo_power(sb: Sandbox) -> Sandbox:
    """The devnet genesis with NEPO an authority but not a validator: four validators."""
    spec = genesis.devnet(sb.chain_id, sb.time, sb.authority_keys)
    authorities = tuple(
        msgspec.structs.replace(a, voting_power=0) if a.code == "NEPO" else a
        for a in spec.authorities
    )
    return Sandbox(spec=msgspec.structs.replace(spec, authorities=authorities))


def test_a_pardoned_offence_cannot_jail_again_but_a_new_one_can(n: Net) -> None:
    sb = n.sb
    offence = _equivocation(sb, n.mea, height=1)
    sb.punish(offence)
    sb.advance(1)
    n.ok(n.erc, UnjailValidator(n.mea.address))  # decided at 2: back from 4
    sb.advance(1)
    sb.advance(1)
    assert sb.height == 4 and n.mea.address in _powers(sb, 4)
    root = sb.state.root()
    for replayed in (offence, Evidence(offence.second, offence.first), _equivocation(sb, n.mea, 3)):
        with pytest.raises(validator_set.InvalidEvidence, match="current term"):
            sb.punish(replayed)
    assert sb.state.root() == root
    assert sb.punish(_equivocation(sb, n.mea, height=4))[0].kind == "validator_jailed"


def test_a_new_validator_answers_only_for_votes_from_its_first_height(n: Net) -> None:
    sb = n.sb
    n.ok(n.erc, SetValidator(NEW.public_key, 1_000))  # decided at 1: signs from 3
    sb.advance(1)
    sb.advance(1)
    sb.advance(1)
    with pytest.raises(validator_set.InvalidEvidence, match="current term"):
        sb.punish(_equivocation(sb, NEW, height=2))
    assert sb.punish(_equivocation(sb, NEW, height=3))[0].kind == "validator_jailed"


def test_an_authority_key_may_become_a_validator(sb: Sandbox) -> None:
    n = Net(_without_nepo_power(sb))
    assert n.nepo.address not in _powers(n.sb, 1)
    assert n.ok(n.erc, SetValidator(n.nepo.public_key, 6_000))[0].kind == "validator_added"
    assert _powers(n.sb, 3)[n.nepo.address] == 6_000


# --- rejections -----------------------------------------------------------------------------
def test_only_the_regulator_may_change_the_set(n: Net) -> None:
    for signer in (n.egat, n.mea, n.nepo):
        n.rejects(signer, SetValidator(NEW.public_key, 1_000), errors.Unauthorised, "UNAUTHORISED")
    n.sb.punish(_equivocation(n.sb, n.mea))
    n.rejects(n.egat, UnjailValidator(n.mea.address), errors.Unauthorised, "UNAUTHORISED")


def test_a_participant_may_not_change_the_set(net: Cast) -> None:
    net.rejects(net.home, SetValidator(NEW.public_key, 1_000), errors.Unauthorised, "UNAUTHORISED")


@pytest.mark.parametrize(
    "public_key",
    [
        b"\x00" * 32,  # not a canonical point
        b"\x01" + b"\x00" * 31,  # the identity: small order, any signature "verifies"
        b"\xff" * 32,  # not on the curve
        NEW.public_key[:31],  # too short (only a body built in code can carry this)
    ],
)
def test_a_key_that_is_not_an_ed25519_point_is_refused(n: Net, public_key: bytes) -> None:
    n.rejects(
        n.erc, SetValidator(public_key, 1_000), errors.InvalidValidatorKey, "INVALID_VALIDATOR_KEY"
    )


@pytest.mark.parametrize("power", [-1, MAX_TOTAL_POWER + 1, 2**63])
def test_power_out_of_range_is_refused(n: Net, power: int) -> None:
    n.rejects(
        n.erc, SetValidator(NEW.public_key, power), errors.PowerOutOfRange, "POWER_OUT_OF_RANGE"
    )


def test_total_power_above_the_cap_is_refused(n: Net) -> None:
    total = n.sb.validators().total_power
    n.rejects(
        n.erc,
        SetValidator(NEW.public_key, MAX_TOTAL_POWER - total + 1),
        errors.TotalPowerTooHigh,
        "TOTAL_POWER_TOO_HIGH",
    )
    n.ok(n.erc, SetValidator(NEW.public_key, MAX_TOTAL_POWER - total))  # exactly the cap
    assert n.sb.validators(n.sb.height + 2).total_power == MAX_TOTAL_POWER


def _single_validator(sb: Sandbox, *members: PrivateKey) -> None:
    view = sb.state.overlay()
    validator_set.install(view, [(m.public_key, 1_000) for m in members])
    view.commit()


def test_removing_the_last_validator_is_refused(n: Net) -> None:
    _single_validator(n.sb, n.mea)
    n.rejects(
        n.erc, SetValidator(n.mea.public_key, 0), errors.NoActiveValidator, "NO_ACTIVE_VALIDATOR"
    )


def test_removing_the_last_validator_that_is_not_jailed_is_refused(n: Net) -> None:
    _single_validator(n.sb, n.mea, n.egat)
    n.sb.punish(_equivocation(n.sb, n.egat))
    n.rejects(
        n.erc, SetValidator(n.mea.public_key, 0), errors.NoActiveValidator, "NO_ACTIVE_VALIDATOR"
    )
    n.ok(n.erc, SetValidator(n.egat.public_key, 0))  # the jailed one may go


def test_removing_or_unjailing_a_stranger_is_refused(n: Net) -> None:
    n.rejects(n.erc, SetValidator(NEW.public_key, 0), errors.UnknownValidator, "UNKNOWN_VALIDATOR")
    n.rejects(n.erc, UnjailValidator(NEW.address), errors.UnknownValidator, "UNKNOWN_VALIDATOR")


def test_removing_a_validator_twice_is_refused_while_the_first_is_pending(n: Net) -> None:
    n.ok(n.erc, SetValidator(n.nepo.public_key, 0))
    n.rejects(
        n.erc, SetValidator(n.nepo.public_key, 0), errors.UnknownValidator, "UNKNOWN_VALIDATOR"
    )


def test_setting_the_same_power_is_refused(n: Net) -> None:
    n.rejects(
        n.erc,
        SetValidator(n.mea.public_key, 8_000),
        errors.ValidatorUnchanged,
        "VALIDATOR_UNCHANGED",
    )
    n.ok(n.erc, SetValidator(n.mea.public_key, 9_000))  # pending counts: 9,000 is now a no-op
    n.rejects(
        n.erc,
        SetValidator(n.mea.public_key, 9_000),
        errors.ValidatorUnchanged,
        "VALIDATOR_UNCHANGED",
    )


def test_unjailing_a_validator_that_is_not_jailed_is_refused(n: Net) -> None:
    n.rejects(
        n.erc, UnjailValidator(n.mea.address), errors.ValidatorNotJailed, "VALIDATOR_NOT_JAILED"
    )
    n.sb.punish(_equivocation(n.sb, n.mea))
    n.ok(n.erc, UnjailValidator(n.mea.address))
    n.rejects(
        n.erc, UnjailValidator(n.mea.address), errors.ValidatorNotJailed, "VALIDATOR_NOT_JAILED"
    )


def test_a_participants_or_meters_key_cannot_become_a_validator(net: Cast) -> None:
    for taken in (net.home, net.home_meter):
        net.rejects(
            net.erc,
            SetValidator(taken.public_key, 1_000),
            errors.ValidatorKeyInUse,
            "VALIDATOR_KEY_IN_USE",
        )


# --- changes that stack ---------------------------------------------------------------------
def test_changes_in_one_block_merge_into_one_stage(n: Net) -> None:
    h = n.sb.height
    n.ok(n.erc, SetValidator(NEW.public_key, 1_000))
    n.ok(n.erc, SetValidator(n.mea.public_key, 9_000))
    n.ok(n.erc, SetValidator(n.nepo.public_key, 0))
    assert [s.from_height for s in _stages(n.sb)] == [h + 2]
    powers = _powers(n.sb, h + 2)
    assert powers[NEW.address] == 1_000 and powers[n.mea.address] == 9_000
    assert n.nepo.address not in powers


def test_a_change_in_the_next_block_applies_on_top_and_neither_is_delayed(n: Net) -> None:
    sb = n.sb
    h = sb.height
    n.ok(n.erc, SetValidator(NEW.public_key, 1_000))
    sb.advance(1)
    n.ok(n.erc, SetValidator(OTHER.public_key, 2_000))
    assert [s.from_height for s in _stages(sb)] == [h + 2, h + 3]
    assert NEW.address not in _powers(sb, h + 1)
    assert NEW.address in _powers(sb, h + 2) and OTHER.address not in _powers(sb, h + 2)
    assert {NEW.address, OTHER.address} <= set(_powers(sb, h + 3))
    sb.advance(1)  # end of h + 1 promotes the first stage only
    assert [s.from_height for s in _stages(sb)] == [h + 3]
    assert NEW.address in _powers(sb, h + 2) and OTHER.address not in _powers(sb, h + 2)
    sb.advance(1)
    assert _stages(sb) == () and {NEW.address, OTHER.address} <= set(_powers(sb, h + 3))


def test_evidence_and_a_set_change_in_the_same_block_both_apply(n: Net) -> None:
    """The block's evidence runs first; the transaction builds on the jailing, and both
    take effect at H + 2."""
    sb = n.sb
    h = sb.height
    before = sb.validators(h)
    sb.punish(_equivocation(sb, n.mea))
    n.ok(n.erc, SetValidator(NEW.public_key, 1_000))
    n.ok(n.erc, SetValidator(n.mea.public_key, 5_000))  # re-weighting keeps it jailed
    assert sb.validators(h + 1) == before
    powers = _powers(sb, h + 2)
    assert NEW.address in powers and n.mea.address not in powers
    sb.advance(1)
    sb.advance(1)
    n.ok(n.erc, UnjailValidator(n.mea.address))
    assert _powers(sb, sb.height + 2)[n.mea.address] == 5_000


def test_evidence_after_a_change_does_not_delay_the_change(n: Net) -> None:
    """A change decided at H - 1 signs H + 1 even when evidence at H decides another stage."""
    sb = n.sb
    n.ok(n.erc, SetValidator(NEW.public_key, 1_000))
    sb.advance(1)
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
    n.ok(n.erc, UnjailValidator(n.mea.address))
    assert sb.validators(h + 2) == before


def test_evidence_against_a_validator_being_removed_is_refused(n: Net) -> None:
    n.ok(n.erc, SetValidator(n.mea.public_key, 0))
    root = n.sb.state.root()
    with pytest.raises(validator_set.InvalidEvidence, match="leaving the set"):
        n.sb.punish(_equivocation(n.sb, n.mea))
    assert n.sb.state.root() == root


def test_the_same_decisions_give_the_same_state_root() -> None:
    def run() -> bytes:
        n = Net(Sandbox())
        n.ok(n.erc, SetValidator(NEW.public_key, 1_000))
        n.sb.punish(_equivocation(n.sb, n.pea))
        n.sb.advance(1)
        n.ok(n.erc, SetValidator(OTHER.public_key, 2_000))
        n.ok(n.erc, UnjailValidator(n.pea.address))
        n.sb.advance(1)
        return n.sb.state.root()

    assert run() == run()


# --- replicated: five nodes, the fifth joins, is jailed and comes back -----------------------
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
        app = apps[index] = Application.open(spec, folder / f"node-{index}")
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


def test_a_validator_joins_is_jailed_and_unjailed_under_consensus(tmp_path: Path) -> None:
    keys = genesis.dev_keys()
    nepo, erc = keys["NEPO"], keys["ERC"]
    sb = _without_nepo_power(Sandbox(chain_id=CHAIN_ID, genesis_time=GENESIS_TIME))
    spec = sb.genesis
    four = sb.validators(1)
    assert len(four.validators) == 4 and four.get(nepo.address) is None
    join = sb.sign(erc, SetValidator(nepo.public_key, 6_000)).encode()
    unjail = tx.make(erc, CHAIN_ID, 1, UnjailValidator(nepo.address)).encode()
    evidence = _equivocation(sb, nepo, height=4)
    script: dict[int, list[Callable[[Application], object]]] = {
        0: [lambda a: a.submit(join)],  # in block 1: NEPO signs from height 3
        5: [lambda a: a.report_evidence(evidence)],  # in block 6: jailed from height 8
        8: [lambda a: a.submit(unjail)],  # in block 9: back from height 11
    }
    apps: dict[int, Application] = {}
    open_app = _scripted_nodes(spec, tmp_path, script, apps)

    node_keys = [keys[c] for c in ("EGAT", "MEA", "PEA", "ERC", "NEPO")]
    heights = 15
    scenario = Scenario(seed=5, validators=5, heights=heights, delay_ms=(1, 100))
    Simulation(scenario, apps=open_app, keys=node_keys, validators=four).run()
    try:
        assert all(a.height == heights for a in apps.values())
        assert len({a.state.root() for a in apps.values()}) == 1
        chain = [_stored(apps[0], h) for h in range(1, heights + 1)]
        for other in list(apps.values())[1:]:  # every node stored the same certified blocks
            assert [b.hash for b, _ in chain] == [
                _stored(other, h)[0].hash for h in range(1, heights + 1)
            ]
        assert chain[-1][0].header.state_root == apps[0].state.root()

        def height_of(found: Callable[[blocks.Block], bool]) -> int:
            return next(h for h, (b, _) in enumerate(chain, start=1) if found(b))

        added = height_of(lambda b: join in b.txs)
        jailed = height_of(lambda b: bool(b.evidence))
        unjailed = height_of(lambda b: unjail in b.txs)
        assert added + 2 <= jailed and jailed + 2 <= unjailed and unjailed + 2 < heights
        five = validator_set.for_height(apps[0].state, heights + 1)
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
