"""Fast block sync's bookkeeping: runs on fixed boundaries asked of several peers at once,
no run asked twice while it arrives, a silent run asked again of another peer, blocks held
ahead of their turn within the window and the buffer, and handed out in height order."""

from __future__ import annotations

from gridtokenx.node.block_sync import SYNC_RETRY_S, SYNC_RUN, BlockSync
from gridtokenx.wire.votes import Commit

A, B, C = b"a" * 20, b"b" * 20, b"c" * 20


def _everyone(height: int) -> list[bytes]:
    return [A, B, C]


def test_runs_are_spread_over_the_peers_up_to_the_window_and_the_best_height() -> None:
    sync = BlockSync(runs=4)
    asked = sync.plan(10, 10_000, _everyone, now=0.0)
    assert [first for _, first in asked] == [10, SYNC_RUN, 2 * SYNC_RUN, 3 * SYNC_RUN]
    assert {peer for peer, _ in asked} == {A, B, C}
    assert sync.plan(10, 10_000, _everyone, now=1.0) == []  # all in flight
    assert [f for _, f in BlockSync(runs=4).plan(10, 40, _everyone, 0.0)] == [10, SYNC_RUN]


def test_a_run_that_brought_nothing_is_asked_again_of_another_peer() -> None:
    sync = BlockSync(runs=1)
    ((first_peer, _),) = sync.plan(0, 100, _everyone, now=0.0)
    assert sync.plan(0, 100, _everyone, now=SYNC_RETRY_S) == []
    ((again, first),) = sync.plan(0, 100, _everyone, now=SYNC_RETRY_S + 0.1)
    assert again != first_peer and first == 0


def test_only_peers_that_showed_the_height_are_asked() -> None:
    sync = BlockSync(runs=3)
    asked = sync.plan(0, 1000, lambda h: [A] if h < SYNC_RUN else [], now=0.0)
    assert asked == [(A, 0)]  # nobody has shown the second run yet


def test_blocks_wait_for_their_turn_within_the_window_and_the_buffer() -> None:
    sync = BlockSync(runs=2, buffer_bytes=1000)

    def take(height: int, size: int = 100) -> bool:
        return sync.take(Commit(height, b"", ()), A, size, 5, 0.0)

    assert not take(4)  # behind the node
    assert not take(2 * SYNC_RUN)  # beyond the window of two runs
    assert take(7) and take(6) and not take(6)  # held once
    assert not take(8, size=900)  # no room
    assert sync.pop(5) is None
    popped = sync.pop(6)
    assert popped is not None and popped.commit.height == 6
    assert sync.pop(8) is None and sync.ahead == {} and sync.held == 0  # 7 dropped
