"""The validator set in state: genesis powers, equivocation evidence that jails, and changes
that take effect two heights after the block that decides them."""

from __future__ import annotations

import pytest

from gridtokenx.ledger import genesis, validator_set
from gridtokenx.ledger.context import BlockContext
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.ledger.state import State
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.votes import NIL, Evidence, Vote, VoteType, block_id, sign_vote

KEYS = genesis.dev_keys()
EGAT, MEA = KEYS["EGAT"], KEYS["MEA"]


def _vote(key: PrivateKey, chain: str, bid: bytes, height: int = 5, round: int = 0) -> Vote:
    return sign_vote(key, chain, Vote(height, round, VoteType.PRECOMMIT, bid, key.address))


def _equivocation(sb: Sandbox, key: PrivateKey = MEA, height: int = 5) -> Evidence:
    return Evidence(
        _vote(key, sb.chain_id, NIL, height), _vote(key, sb.chain_id, block_id(b"x"), height)
    )


def _apply(state: State, evidence: Evidence, height: int = 10) -> None:
    view = state.overlay()
    validator_set.apply_evidence(view, BlockContext(height, 0), evidence)
    view.commit()


def _end_block(state: State, height: int) -> None:
    view = state.overlay()
    validator_set.end_block(view, BlockContext(height, 0))
    view.commit()


def test_genesis_gives_every_authority_its_voting_power() -> None:
    vals = validator_set.for_height(Sandbox().state, 1)
    powers = sorted(v.power for v in vals.validators)
    assert powers == sorted(a[3] for a in genesis.AUTHORITIES if a[3] > 0)


def test_evidence_jails_from_two_heights_later() -> None:
    sb = Sandbox()
    before = validator_set.for_height(sb.state, 11)
    _apply(sb.state, _equivocation(sb), height=10)
    assert validator_set.for_height(sb.state, 11) == before  # H + 1 keeps the old set
    after = validator_set.for_height(sb.state, 12)
    assert after.get(MEA.address) is None and len(after.validators) == len(before.validators) - 1
    assert validator_set.set_hash(after) != validator_set.set_hash(before)
    _end_block(sb.state, 10)
    assert validator_set.for_height(sb.state, 11) == before  # not yet promoted
    _end_block(sb.state, 11)
    assert validator_set.for_height(sb.state, 12) == after
    assert validator_set.for_height(sb.state, 11) == after  # promoted: the change is in force


def _bad(sb: Sandbox) -> list[tuple[Evidence, str]]:
    chain = sb.chain_id
    same = _vote(MEA, chain, NIL)
    stranger = PrivateKey.from_dev_label("test/stranger")
    return [
        (
            Evidence(_vote(MEA, chain, NIL), _vote(EGAT, chain, block_id(b"x"))),
            "different validators",
        ),
        (Evidence(_vote(MEA, chain, NIL, 5), _vote(MEA, chain, block_id(b"x"), 6)), "same height"),
        (Evidence(_vote(MEA, chain, NIL, 5, 0), _vote(MEA, chain, NIL, 5, 1)), "same height"),
        (Evidence(same, same), "agree"),
        (_equivocation(sb, MEA, height=11), "future"),
        (_equivocation(sb, stranger), "not a validator"),
        (Evidence(_vote(MEA, "other-chain", NIL), _vote(MEA, chain, block_id(b"x"))), "signature"),
    ]


def test_invalid_evidence_is_refused_and_changes_nothing() -> None:
    sb = Sandbox()
    for evidence, reason in _bad(sb):
        root = sb.state.root()
        with pytest.raises(validator_set.InvalidEvidence, match=reason):
            _apply(sb.state, evidence)
        assert sb.state.root() == root


def test_a_jailed_validator_cannot_be_jailed_twice() -> None:
    sb = Sandbox()
    _apply(sb.state, _equivocation(sb))
    with pytest.raises(validator_set.InvalidEvidence, match="already jailed"):
        _apply(sb.state, _equivocation(sb, height=6))


def test_evidence_too_old_is_refused() -> None:
    sb = Sandbox()
    with pytest.raises(validator_set.InvalidEvidence, match="too old"):
        _apply(sb.state, _equivocation(sb, height=1), height=1 + validator_set.EVIDENCE_MAX_AGE + 1)


def test_the_last_validator_is_never_jailed() -> None:
    sb = Sandbox()
    view = sb.state.overlay()
    validator_set.install(view, [(MEA.public_key, 100)])
    view.commit()
    with pytest.raises(validator_set.InvalidEvidence, match="no validator"):
        _apply(sb.state, _equivocation(sb))
