"""Per-peer rate limits for gossip: a token bucket per peer and lane, on an injected clock.

Gossip forwards what it receives, so without a budget one peer could make a node decode,
hash, check and re-send as much as the peer can type. Each peer gets a bucket per lane
(transactions, consensus messages, requests), so a transaction flood cannot crowd out
votes, and a frame over budget is dropped before anything else looks at it. Dropping alone
would let a flooder go on forever at no cost, so the frames it is refused are metered too,
leaking at the lane's rate: a peer whose refused frames pile up to a whole burst (it sent
about twice its burst at once, or over twice its rate for a while) is penalised, and a
peer that keeps at it is disconnected. A peer just over its budget only loses frames:
honest peers behind a burst of client traffic must not be banned for it.

The budgets are per second of the clock the caller passes in, so tests replay a flood
without sleeping. Floats are fine here: this is the network edge, not the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum


class Lane(IntEnum):
    """What a frame costs the receiver, which decides whose budget it draws on."""

    TX = 0
    CONSENSUS = 1  # proposals, votes and certified blocks
    REQUESTS = 2
    GRID = 3  # grid status and emergencies: small, rare, first in every send queue
    CONTROL = 4  # the mesh's own frames (subscriptions, grafts, prunes, announcements)


class Verdict(Enum):
    ADMIT = "admit"
    DROP = "drop"
    PENALISE = "penalise"  # dropped, and the peer is far over its budget


@dataclass(frozen=True)
class Budget:
    """`rate` frames per second on average, up to `burst` at once."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if not (self.rate > 0 and self.burst >= 1):
            raise ValueError(f"a budget needs rate > 0 and burst >= 1, not {self}")


@dataclass(frozen=True)
class Limits:
    """Budgets per lane. The defaults sit far above what an honest peer of a devnet sends
    (every peer forwards the whole network's traffic, so a peer's budget must cover the
    network's, not one node's); consensus gets the most so validators are never starved."""

    tx: Budget = field(default_factory=lambda: Budget(rate=2_000, burst=4_000))
    consensus: Budget = field(default_factory=lambda: Budget(rate=5_000, burst=20_000))
    requests: Budget = field(default_factory=lambda: Budget(rate=200, burst=400))
    grid: Budget = field(default_factory=lambda: Budget(rate=200, burst=400))
    control: Budget = field(default_factory=lambda: Budget(rate=1_000, burst=2_000))
    """A mesh peer sends IDONTWANT for each large message, IHAVE per topic and GRAFT or
    PRUNE per heartbeat: a few per message at most, far below this."""

    def of(self, lane: Lane) -> Budget:
        return (self.tx, self.consensus, self.requests, self.grid, self.control)[lane]


class TokenBucket:
    """Tokens refill at the budget's rate up to its burst; each admitted frame takes one.
    `excess` counts refused frames and leaks at the same rate."""

    __slots__ = ("budget", "excess", "stamp", "tokens")

    def __init__(self, budget: Budget, now: float) -> None:
        self.budget = budget
        self.tokens = budget.burst
        self.excess = 0.0
        self.stamp = now

    def take(self, now: float) -> Verdict:
        refill = max(0.0, now - self.stamp) * self.budget.rate
        self.stamp = max(self.stamp, now)  # a clock that steps back refills nothing
        self.tokens = min(self.budget.burst, self.tokens + refill)
        self.excess = max(0.0, self.excess - refill)
        if self.tokens >= 1:
            self.tokens -= 1
            return Verdict.ADMIT
        self.excess += 1
        if self.excess >= self.budget.burst:
            self.excess = 0.0  # the next penalty takes another whole burst of excess
            return Verdict.PENALISE
        return Verdict.DROP


class RateLimiter:
    """The buckets of every connected peer; a peer's buckets go when the peer does, so
    memory follows the number of connections."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._buckets: dict[tuple[bytes, Lane], TokenBucket] = {}

    def take(self, peer: bytes, lane: Lane, now: float) -> Verdict:
        bucket = self._buckets.get((peer, lane))
        if bucket is None:
            bucket = self._buckets[(peer, lane)] = TokenBucket(self.limits.of(lane), now)
        return bucket.take(now)

    def forget(self, peer: bytes) -> None:
        for lane in Lane:
            self._buckets.pop((peer, lane), None)
