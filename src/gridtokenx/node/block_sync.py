"""Fast block sync: many runs of blocks in flight from several peers, applied in order.

A node behind its peers asks for runs of up to SYNC_RUN blocks (`Node._answer_sync`).
One run at a time from one peer left the link idle while each run was checked and
executed, and a day of blocks took hours. Here the heights ahead are split into runs on
fixed boundaries (run r holds heights [r * SYNC_RUN, (r + 1) * SYNC_RUN)); up to
RUNS_IN_FLIGHT runs past the node's height are asked at once, each of a peer that has
shown a height that far, in turn, so several peers answer at once. Blocks that arrive
ahead of their turn wait here (at most BUFFER_BYTES of them). Their transactions'
signatures are not verified again: a block's commit certificate, checked when its turn
comes, is the word of validators holding more than 2/3 of the power that the block is
valid, signatures included (docs/consensus.md, "Replaying certified blocks"); checking
them cost replaying the day mix 15-20 % of its CPU. A run that brought nothing for
SYNC_RETRY_S is asked again, of the next peer.

Blocks are applied strictly in height order, each one's commit certificate checked
against the validator set of its height before it executes (`Node._on_commit`), so a
peer can waste our bandwidth but never make us execute an uncertified block; a forged
certificate bans the peer that sent it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from gridtokenx.wire.votes import Commit

SYNC_RUN: Final = 32
"""Blocks one sync answer carries at most. One block per request made catching up a round
trip per block: under load a validator back from a 15 s outage synced 3 blocks/s while the
chain made 2.5, and stayed out of the quorum for minutes."""
RUNS_IN_FLIGHT: Final = 8  # runs asked at once past the node's height (256 blocks)
BUFFER_BYTES: Final = 256 * 1024 * 1024  # blocks held ahead of their turn, at most
SYNC_RETRY_S: Final = 2.0  # ask again for a run that brought nothing for this long
SYNC_CONTINUE_S: Final = 0.25
"""A run the node has applied in part, whose next block is not here and which brought
nothing for this long, is asked on at once from that block: a peer answers with
SYNC_RUN_BYTES at most (`Node._answer_sync`), 14 blocks of a 1,000 TPS day, so a run came
in part and its rest waited SYNC_RETRY_S, capping replay at about 7 blocks a second."""


@dataclass
class Ahead:
    """A certified block that arrived before its turn (its certificate is checked then)."""

    commit: Commit
    peer: bytes
    size: int


class BlockSync:
    """The runs asked and the blocks waiting; the node asks `plan` what to request and
    `pop` what to apply next."""

    def __init__(self, runs: int = RUNS_IN_FLIGHT, buffer_bytes: int = BUFFER_BYTES) -> None:
        self.runs = runs
        self.buffer_bytes = buffer_bytes
        # run -> (peer, when asked or its last block came, the height it was asked from)
        self.asked: dict[int, tuple[bytes, float, int]] = {}
        self.ahead: dict[int, Ahead] = {}
        self.held = 0
        self._turn = 0

    def plan(self, want: int, best: int, peers_at: Callable[[int], list[bytes]],
             now: float) -> list[tuple[bytes, int]]:  # fmt: skip
        """(peer, first height) requests to send now, for a node deciding `want` whose
        peers have shown up to `best`; `peers_at(h)` lists the peers that showed h."""
        first_run = want // SYNC_RUN
        for run in [r for r in self.asked if r < first_run]:
            del self.asked[run]
        requests = []
        for run in range(first_run, first_run + self.runs):
            start = max(want, run * SYNC_RUN)
            if start > best:
                break
            if self._arrived(start, min(best, (run + 1) * SYNC_RUN - 1)):
                continue
            asked = self.asked.get(run)
            if asked is not None and now - asked[1] <= SYNC_RETRY_S:
                # Part of it came and was applied (the node moved past where it was
                # asked from), then the peer went quiet: its answer was cut at its size.
                cut_short = start > asked[2] and start not in self.ahead
                if not (cut_short and now - asked[1] > SYNC_CONTINUE_S):
                    continue
            peers = peers_at(start)
            if asked is not None and len(peers) > 1:  # a retry goes to another peer
                peers = [p for p in peers if p != asked[0]] or peers
            if not peers:
                break
            peer = peers[self._turn % len(peers)]
            self._turn += 1
            self.asked[run] = (peer, now, start)
            requests.append((peer, start))
        return requests

    def _arrived(self, first: int, last: int) -> bool:
        return all(h in self.ahead for h in range(first, last + 1))

    def take(self, commit: Commit, peer: bytes, size: int, want: int, now: float) -> bool:
        """Hold a synced block for its turn; False when it is not wanted (behind the
        node, too far ahead, held already, or no room)."""
        height = commit.height
        if height < want or height >= (want // SYNC_RUN + self.runs) * SYNC_RUN:
            return False
        if height in self.ahead or self.held + size > self.buffer_bytes:
            return False
        run = height // SYNC_RUN
        if run in self.asked:
            peer_asked, _, first = self.asked[run]
            self.asked[run] = (peer_asked, now, first)  # the run is arriving
        self.ahead[height] = Ahead(commit, peer, size)
        self.held += size
        return True

    def pop(self, want: int) -> Ahead | None:
        """The block for `want` if it has arrived; blocks below it are dropped."""
        for height in [h for h in self.ahead if h < want]:
            self._drop(height)
        return self._drop(want) if want in self.ahead else None

    def _drop(self, height: int) -> Ahead:
        ahead = self.ahead.pop(height)
        self.held -= ahead.size
        return ahead

    def clear(self) -> None:
        self.ahead.clear()
        self.held = 0
