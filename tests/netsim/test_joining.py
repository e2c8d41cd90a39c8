"""Many nodes state-syncing at once in the simulator (`netsim.joining`): every joiner gets
every chunk from its peers, the serving nodes' uploads bound how fast, a run replays from
its seed, and under contention at a few bootstrap peers the per-peer progress timeout the
joiner uses lets every node join where the per-request timeout it replaced made them give
their peers up and fail."""

from __future__ import annotations

import pytest

from gridtokenx.netsim import joining, topology

LAYOUT = topology.Layout(nodes=300)
SIZES = (200_000,) * 50  # a 10 MB snapshot in 50 chunks


def _run(**changes: object) -> joining.JoinReport:
    base: dict[str, object] = {"chunk_sizes": SIZES, "layout": LAYOUT, "joiners": 30}
    return joining.JoinSimulation(joining.JoinScenario(**{**base, **changes})).run()  # type: ignore[arg-type]


def test_every_joiner_gets_every_chunk_within_what_the_uploads_allow() -> None:
    report = _run()
    assert len(report.join_s) == 30 and report.failed == 0
    assert report.served_bytes == 30 * sum(SIZES) and report.wasted_bytes == 0
    # No joiner is faster than its own 100 Mbit/s download allows, and each took its
    # chunks from several of its peers' spare uploads (a household's is 1.6 MB/s).
    assert report.join_s[0] >= sum(SIZES) / (100e6 / 8)
    assert report.join_s[-1] < sum(SIZES) / 1.6e6
    assert _run() == report  # replayable: the same seed, the same run


def test_under_contention_the_progress_timeout_keeps_steady_peers() -> None:
    crowded = {"bootstrap": "sentries", "timeout_s": 0.5}
    before = _run(timeout_rule="request", **crowded)
    assert before.timeouts > 0 and before.late_chunks > 0 and before.failed > 0
    now = _run(**crowded)
    assert len(now.join_s) == 30 and now.failed == 0 and now.late_chunks == 0


def test_a_joiner_verifying_slower_than_chunks_arrive_does_not_blame_its_peers() -> None:
    slow_check = {"verify_s_per_byte": 1 / 1e6, "timeout_s": 2.0}  # 1 MB/s of checking
    before = _run(timeout_rule="request", **slow_check)
    assert before.timeouts > 0 and before.late_chunks > 0
    now = _run(**slow_check)
    assert len(now.join_s) == 30 and now.timeouts == 0 and now.late_chunks == 0
    assert now.join_s[0] >= sum(SIZES) / 1e6  # bound by the checking, as it should be


def test_checking_in_several_processes_and_writing_as_chunks_come_overlap() -> None:
    # Checking at 0.5 MB/s a core, writing at 1 MB/s: one checker with all the writing at
    # the end (the joiner that rebuilt its tree) takes both in turn; one checker and the
    # loop writing each chunk once checked take the checking's time; two checkers about
    # the writing's alone.
    mb = sum(SIZES) / 1e6
    costs = {"verify_s_per_byte": 2 / 1e6, "timeout_s": 5.0}
    serial = _run(finish_s_per_byte=1 / 1e6, **costs)
    assert serial.join_s[0] >= 3 * mb
    one = _run(write_s_per_byte=1 / 1e6, **costs)
    assert 2 * mb <= one.join_s[0] and one.join_s[-1] < 2.2 * mb
    two = _run(checkers=2, write_s_per_byte=1 / 1e6, **costs)
    assert len(two.join_s) == 30 and two.failed == 0
    assert two.timeouts == 0 and two.late_chunks == 0
    assert mb <= two.join_s[0] and two.join_s[-1] < 1.3 * mb


def test_a_scenario_without_chunks_or_with_an_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="chunks"):
        joining.JoinScenario(chunk_sizes=())
    with pytest.raises(ValueError, match="checkers"):
        joining.JoinScenario(chunk_sizes=SIZES, checkers=0)
    with pytest.raises(ValueError, match="timeout_rule"):
        joining.JoinScenario(chunk_sizes=SIZES, timeout_rule="never")
