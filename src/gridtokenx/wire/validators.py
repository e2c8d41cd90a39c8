"""The validator set: voting power, quorums and proposer rotation.

Quorums are by voting power, not head count: "2f + 1" in the paper means more than two
thirds of the total power, "f + 1" more than one third. Proposers rotate in proportion to
power with the interleaving priority rule CometBFT uses (add each validator's power to its
priority, pick the highest, subtract the total from the winner), computed once over one
full cycle so that looking up the proposer of any (height, round) is O(1).

A height's later rounds go to the validators that follow in the schedule, each once before
any repeats: with f validators down, at most f rounds of a height time out. (Reading the
schedule at height + round instead gave a heavy validator two rounds in a row where the
cycle wraps, so one dead validator cost a height two timeouts.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gridtokenx.wire import crypto


@dataclass(frozen=True)
class Validator:
    address: bytes
    public_key: bytes
    power: int


@dataclass(frozen=True)
class ValidatorSet:
    validators: tuple[Validator, ...]
    _by_address: dict[bytes, Validator] = field(init=False, repr=False, compare=False)
    _schedule: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    _rounds: dict[int, tuple[bytes, ...]] = field(init=False, repr=False, compare=False)
    _total: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.validators:
            raise ValueError("a validator set needs at least one validator")
        if any(v.power <= 0 for v in self.validators):
            raise ValueError("voting power must be positive")
        by_address = {v.address: v for v in self.validators}
        if len(by_address) != len(self.validators):
            raise ValueError("duplicate validator address")
        object.__setattr__(self, "_by_address", by_address)
        object.__setattr__(self, "_schedule", self._rotation())
        object.__setattr__(self, "_rounds", {})
        # Summed once: the core asks for quorums a few dozen times a height.
        object.__setattr__(self, "_total", sum(v.power for v in self.validators))

    @classmethod
    def of(cls, members: list[tuple[bytes, int]]) -> ValidatorSet:
        """From (public key, power) pairs, in address order."""
        vals = [Validator(crypto.address_of(pk), pk, power) for pk, power in members]
        return cls(tuple(sorted(vals, key=lambda v: v.address)))

    def _rotation(self) -> tuple[bytes, ...]:
        step = math.gcd(*(v.power for v in self.validators))
        weights = {v.address: v.power // step for v in self.validators}
        total = sum(weights.values())
        priority = dict.fromkeys(weights, 0)
        order = []
        for _ in range(total):
            for address, weight in weights.items():
                priority[address] += weight
            chosen = max(priority, key=lambda a: (priority[a], a))
            priority[chosen] -= total
            order.append(chosen)
        return tuple(order)

    @property
    def total_power(self) -> int:
        return self._total

    def power(self, address: bytes) -> int:
        found = self._by_address.get(address)
        return 0 if found is None else found.power

    def get(self, address: bytes) -> Validator | None:
        return self._by_address.get(address)

    def is_quorum(self, power: int) -> bool:
        """More than two thirds of the total power (the paper's 2f + 1)."""
        return 3 * power > 2 * self._total

    def is_one_honest(self, power: int) -> bool:
        """More than one third of the total power (the paper's f + 1): at least one honest."""
        return 3 * power > self._total

    def proposer(self, height: int, round: int) -> bytes:
        """Round 0 follows the power-weighted schedule; round r takes the r-th distinct
        validator from there on, so a height's rounds try every validator before any
        twice."""
        if round == 0:
            return self._schedule[height % len(self._schedule)]
        order = self._round_order(height % len(self._schedule))
        return order[round % len(order)]

    def _round_order(self, start: int) -> tuple[bytes, ...]:
        """Each validator once, in the order of its first slot at or after `start` (cached:
        one entry per schedule position, at most a cycle's length)."""
        found = self._rounds.get(start)
        if found is None:
            seen: dict[bytes, None] = {}
            n, size = len(self.validators), len(self._schedule)
            for i in range(size):  # bounded by one cycle, which holds every validator
                seen.setdefault(self._schedule[(start + i) % size], None)
                if len(seen) == n:
                    break
            found = self._rounds[start] = tuple(seen)
        return found
