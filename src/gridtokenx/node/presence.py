"""Which validators this node has heard from lately, so that a round whose proposer is
gone (paused, killed, cut off, on a link too slow to matter) is not waited out in full.

A propose timeout exists for a proposer that does not propose. Waiting it out in full at
every one of a dead validator's turns is what made a validator's outage cost the chain: EGAT
holds 10 of 33 shares of the proposer schedule, so with EGAT paused about every third height
waited a whole propose timeout (1 s and more), often two heights in a row. A validator that
has signed nothing this node has seen for the last `ABSENT_AFTER` heights is taken to be
absent, and the node waits only `ABSENT_PROPOSE_S` for its proposal before prevoting nil.

Timeouts are each validator's own liveness decision: shortening one can cost a round, never
safety. The rule counts heights rather than seconds so that a loaded machine, on which every
height takes longer, judges no live validator absent; and a wrong judgement costs one round
(the next proposer's), after which the validator's votes of that height show it present
again."""

from __future__ import annotations

from typing import Final

ABSENT_AFTER: Final = 2
"""Heights without a signed message after which a validator is taken to be absent. One is
the ordinary race at each commit (its precommit may arrive after the quorum's)."""

ABSENT_PROPOSE_S: Final = 0.2
"""How long a round waits for the proposal of an absent proposer. Not zero: one that has
just come back gets a moment to show it, and its proposal is relayed within this even on a
loaded machine when it is on its way already."""


class Presence:
    """The latest height at which each validator's signature reached this node (a vote, a
    proposal, or its precommit in a commit certificate)."""

    def __init__(self, start_height: int) -> None:
        """Every validator counts as heard at `start_height`, the height this node starts
        (or restarts) at, so that none is judged absent before the node could hear it."""
        self._since = start_height
        self._heard: dict[bytes, int] = {}

    def heard(self, validator: bytes, height: int) -> None:
        """A message signed by `validator` for `height` checked out."""
        if height > self._heard.get(validator, 0):
            self._heard[validator] = height

    def absent(self, validator: bytes, height: int) -> bool:
        """Whether `validator` has signed nothing seen here for the ABSENT_AFTER heights
        before `height`."""
        return max(self._heard.get(validator, 0), self._since) < height - ABSENT_AFTER
