"""The consensus driver's reports, fed by hand: which precommits count as a validator's
signature (only its own, for the committed block, checked), evidence and round changes as
log lines and counters."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import generate_latest

from gridtokenx.ledger import genesis
from gridtokenx.node.metrics import Metrics
from gridtokenx.node.telemetry import CommitInfo, Telemetry
from gridtokenx.wire import crypto
from gridtokenx.wire.validators import ValidatorSet
from gridtokenx.wire.votes import Evidence, Vote, VoteType, sign_vote
from tests.node.test_observability import samples_of, value

CHAIN = "gridtokenx-telemetry-test"
KEYS = genesis.dev_keys()
CODES = ("EGAT", "MEA", "PEA", "ERC")
SET = ValidatorSet.of([(KEYS[c].public_key, p) for c, p in zip(CODES, (4, 3, 3, 2), strict=True)])


def _telemetry() -> Telemetry:
    names = {KEYS[c].address: c for c in CODES}
    return Telemetry(Metrics(), CHAIN, crypto.verify, lambda: names, lambda: {b"peer"})


def _precommit(code: str, height: int, block: bytes, round: int = 0) -> Vote:
    vote = Vote(height, round, VoteType.PRECOMMIT, block, KEYS[code].address)
    return sign_vote(KEYS[code], CHAIN, vote)


def _commit(t: Telemetry, height: int, signers: tuple[str, ...], now: float) -> bytes:
    block = bytes([height]) * 32
    certificate = tuple(_precommit(c, height, block) for c in signers)
    t.committed(CommitInfo(height, 0, block, 300, 2, certificate, SET, False), now)
    return block


def test_a_late_precommit_counts_only_when_it_is_genuine_and_for_the_block() -> None:
    t = _telemetry()
    block = _commit(t, 1, ("EGAT", "MEA", "PEA"), 1.0)
    forged = Vote(1, 0, VoteType.PRECOMMIT, block, KEYS["ERC"].address, b"\x00" * 64)
    t.late_precommit(forged)  # a peer cannot make ERC look present
    t.late_precommit(_precommit("ERC", 1, b"\x09" * 32))  # another block
    t.late_precommit(sign_vote(KEYS["ERC"], CHAIN, Vote(1, 0, VoteType.PREVOTE, block,
                                                        KEYS["ERC"].address)))  # fmt: skip
    _commit(t, 2, ("EGAT", "MEA", "PEA"), 2.0)  # settles height 1
    t.late_precommit(_precommit("ERC", 2, bytes([2]) * 32))  # genuine and in time
    _commit(t, 3, ("EGAT", "MEA", "PEA"), 3.0)  # settles height 2
    samples = samples_of(generate_latest(t.metrics.registry).decode())
    present = "gridtokenx_validator_signatures_present_total"
    missed = "gridtokenx_validator_signatures_missed_total"
    assert value(samples, present, moniker="EGAT") == 2
    assert value(samples, present, moniker="ERC") == 1  # height 2
    assert value(samples, missed, moniker="ERC") == 1  # height 1
    assert value(samples, "gridtokenx_missing_validators") == 0  # height 2: all four
    assert value(samples, "gridtokenx_txs_total") == 6
    assert value(samples, "gridtokenx_block_interval_seconds_count") == 2


def test_evidence_and_round_changes_are_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "gridtokenx")
    t = _telemetry()
    t.round_at(5, 0, 10.0)
    t.timeout(5, 0, "propose")
    t.round_at(5, 1, 12.5)
    t.round_at(5, 1, 13.0)  # the same round again: nothing new
    first, second = _precommit("MEA", 5, b"\x05" * 32), _precommit("MEA", 5, b"\x06" * 32)
    t.evidence(Evidence(first, second))
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert said == [("INFO", "timeout"), ("WARNING", "round change"), ("ERROR", "double signing")]
    change, signed = caplog.records[1], caplog.records[2]
    assert (change.height, change.round, change.previous, change.after_s) == (5, 1, 0, 2.5)  # type: ignore[attr-defined]
    assert (signed.validator, signed.height, signed.type) == ("MEA", 5, "precommit")  # type: ignore[attr-defined]
    samples = samples_of(generate_latest(t.metrics.registry).decode())
    assert value(samples, "gridtokenx_round_changes_total") == 1
    assert value(samples, "gridtokenx_consensus_timeouts_total", step="propose") == 1
    assert value(samples, "gridtokenx_evidence_total") == 1
    assert value(samples, "gridtokenx_round") == 1


def test_catching_up_follows_the_peers_still_connected(caplog: pytest.LogCaptureFixture) -> None:
    """A peer shows height 50 while the node works on 2: catching up. It disconnects: at the
    next commit the target is what the connected peers show, and the node has caught up."""
    caplog.set_level(logging.INFO, "gridtokenx")
    connected = {b"honest", b"far"}
    names = {KEYS[c].address: c for c in CODES}
    t = Telemetry(Metrics(), CHAIN, crypto.verify, lambda: names, lambda: connected)
    t.seen(b"honest", 3, 2, 1.0)
    assert not t.catching_up  # one ahead: an ordinary moment
    t.seen(b"far", 50, 2, 1.5)
    assert t.catching_up and t.best_seen == 50
    connected.discard(b"far")
    _commit(t, 2, CODES, 2.0)
    assert not t.catching_up and t.best_seen == 3
    said = [(r.getMessage(), getattr(r, "target", None)) for r in caplog.records]
    assert ("catching up", 50) in said and said[-1][0] == "caught up"
    samples = samples_of(generate_latest(t.metrics.registry).decode())
    assert value(samples, "gridtokenx_sync_catching_up") == 0
    assert value(samples, "gridtokenx_sync_target_height") == 3


def test_one_rule_for_behind_in_the_status_the_logs_and_the_gauge(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The status API (`Node.catching_up` reads `behind`), the log lines and the gauge
    share one map of what each peer itself showed. A height relayed in a synced block is a
    target, not a peer's claim, so it makes no one "behind"; a peer that leaves takes its
    claim with it at once, not at the next commit (a stuck node commits nothing)."""
    caplog.set_level(logging.INFO, "gridtokenx")
    connected = {b"relay", b"far"}
    t = Telemetry(Metrics(), CHAIN, crypto.verify, dict, lambda: connected)
    t.seen(b"relay", 50, 2, 1.0, shown=False)
    assert t.best_seen == 50 and t.peer_height() == 0 and not t.behind(2, 1.0)
    t.seen(b"far", 50, 2, 1.5)
    assert t.peer_height() == 50 and t.behind(2, 1.5)
    samples = samples_of(generate_latest(t.metrics.registry).decode())
    assert value(samples, "gridtokenx_sync_catching_up") == 1
    connected.discard(b"far")
    assert not t.behind(2, 2.0) and t.peer_height() == 0
    samples = samples_of(generate_latest(t.metrics.registry).decode())
    assert value(samples, "gridtokenx_sync_catching_up") == 0
    assert [r.getMessage() for r in caplog.records][-2:] == ["catching up", "caught up"]


def test_a_committed_line_splits_the_height_into_its_steps(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Where a height's time went (`Node._height_steps`) rides on its committed line, to
    the millisecond, for the devnet bench to read (docs/consensus.md)."""
    caplog.set_level(logging.INFO, "gridtokenx")
    steps = {"propose_s": 0.1234, "vote_s": 0.05, "execute_s": 0.2, "execute_cpu_s": 0.09}
    block = bytes([1]) * 32
    certificate = tuple(_precommit(c, 1, block) for c in ("EGAT", "MEA", "PEA"))
    _telemetry().committed(CommitInfo(1, 0, block, 300, 2, certificate, SET, False, steps), 1.0)
    (line,) = [r for r in caplog.records if r.getMessage() == "committed"]
    logged = {name: getattr(line, name) for name in steps}
    assert logged == {"propose_s": 0.123, "vote_s": 0.05, "execute_s": 0.2, "execute_cpu_s": 0.09}
