"""Issue 13, "no peer can stall or crash a node", in the simulator's bounded links.

On real processes one validator that stopped reading its sockets halted the whole chain:
the node sent to its peers one after another and waited for each socket to drain. These
runs reproduce that on the `blocking` send model and show that the `queued` model (a
bounded queue per peer and lane, disconnecting a peer that does not read) keeps the
others committing at the rate they have with that peer switched off.

Every run has transaction traffic (each validator relays a batch every 100 ms), as a busy
network does: it is what fills the buffers in seconds. EGAT is the peer that misbehaves:
10,000 of 33,000, the most power that is still under a third.
"""

from __future__ import annotations

from typing import Any

import pytest

from gridtokenx.consensus.simulation import Result, Scenario, SendModel, Simulation

EGAT, OTHERS, EVERYONE = 0, (1, 2, 3), (0, 1, 2, 3)
STOP_AT, STOP_FOR, END = 20_000, 60_000, 120_000
RESUMED = STOP_AT + STOP_FOR
FILL_MS = 10_000  # blocking senders' links to the stopped peer fill within this (5-7 s here)


def _run(model: SendModel, seed: int = 1, **faults: Any) -> Result:
    """120 s of four validators under transaction load, with no target height to stop at."""
    scenario = Scenario(
        seed=seed,
        heights=10**6,
        max_time_ms=END,
        send_model=model,
        tx_every_ms=100,
        **faults,
    )
    return Simulation(scenario).run(until=lambda sim: False)


def _heights(result: Result, validators: tuple[int, ...], ms: int) -> list[int]:
    return [result.height_at(v, ms) for v in validators]


def _gained(result: Result, validator: int, start: int, end: int) -> int:
    return result.height_at(validator, end) - result.height_at(validator, start)


def test_a_validator_that_stops_reading_halts_blocking_nodes_not_queued_ones() -> None:
    """EGAT stops (SIGSTOP) from 20 s to 80 s. Blocking: within seconds MEA, PEA and ERC
    each wait on their full link to EGAT and read nothing meanwhile, so nobody decides
    anything more until EGAT reads again (seed 1: height 43 from 26.3 s to 80 s). Queued:
    they decide as many heights as with EGAT crashed (46 in the minute, against 0)."""
    stop = ((EGAT, STOP_AT, RESUMED),)
    blocking = _run("blocking", pauses=stop)
    stalled = _heights(blocking, OTHERS, STOP_AT + FILL_MS)
    assert stalled == _heights(blocking, OTHERS, RESUMED - 1), "blocking nodes went on"
    assert all(h > s for h, s in zip(_heights(blocking, OTHERS, END), stalled, strict=True))

    queued = _run("queued", pauses=stop)
    crashed = _run("queued", crashes=stop)  # the rate the others have without EGAT at all
    for v in OTHERS:
        gained = _gained(queued, v, STOP_AT, RESUMED)
        assert gained >= 0.9 * _gained(crashed, v, STOP_AT, RESUMED) and gained >= 40
    assert queued.disconnects >= 3  # each of the others dropped EGAT
    assert queued.height_at(EGAT, END) >= queued.height_at(1, RESUMED)  # and it caught up
    assert blocking.safe(set(EVERYONE)) and queued.safe(set(EVERYONE))


def test_a_rogue_peer_that_never_reads_halts_blocking_nodes_not_queued_ones() -> None:
    """A non-validator connects to every validator and never reads. Blocking: every
    validator ends up waiting on its link to the rogue and the chain stops for good
    (seed 1: at height 12, 6.6 s in). Queued: the rogue is dropped whenever its lane fills
    or its ping times out, redials, and is dropped again; the chain keeps its pace."""
    blocking = _run("blocking", rogues=1)
    assert _heights(blocking, EVERYONE, FILL_MS) == _heights(blocking, EVERYONE, END)

    queued, clean = _run("queued", rogues=1), _run("queued")
    for v in EVERYONE:
        assert queued.height_at(v, END) >= 0.95 * clean.height_at(v, END)
    assert queued.disconnects > 10 and queued.safe(set(EVERYONE))


def test_a_validator_that_reads_too_slowly_deadlocks_blocking_nodes_not_queued_ones() -> None:
    """EGAT reads 10 messages a second, fewer than it is sent. Blocking: its senders fill
    their links to it and stop reading, EGAT then blocks on their full links in turn, and
    the network deadlocks for good (seed 1: at heights 8 and 9, 9 s in). Queued: the others go
    on as if EGAT were down; EGAT is dropped and redials."""
    slow = ((EGAT, 1),)
    blocking = _run("blocking", slow_readers=slow)
    assert _heights(blocking, EVERYONE, FILL_MS) == _heights(blocking, EVERYONE, END)

    queued = _run("queued", slow_readers=slow)
    down = _run("queued", crashes=((EGAT, 0, END + 1),))
    for v in OTHERS:
        assert queued.height_at(v, END) >= 0.9 * down.height_at(v, END)
    assert queued.disconnects > 0 and queued.safe(set(EVERYONE))


@pytest.mark.parametrize(
    "faults",
    [{"pauses": ((0, 1, 2),)}, {"slow_readers": ((0, 1),)}, {"rogues": 1}],
)
def test_peers_that_push_back_need_bounded_links(faults: dict[str, Any]) -> None:
    """On the unbounded model a send costs nothing, so these faults would show nothing."""
    with pytest.raises(ValueError, match="bounded links"):
        Scenario(seed=0, **faults)
    Scenario(seed=0, send_model="queued", **faults)
