"""Who is connected to whom, where they are, and how fast they upload.

Validators sit behind sentries (as `init --no-pex` sets up): each validator dials every
sentry, and sentries dial each other, so consensus crosses only validators and sentries.
Full nodes dial a few random full nodes and sentries; sentries dial some full nodes too,
to spread blocks from the start. Caps are the node's: a sentry takes at most
`max_peers_sentry` connections, a full node `max_peers_full`.

Latencies are one-way, drawn per link for Thailand: a few milliseconds inside a province
(a third of the nodes in Greater Bangkok), 10 to 40 ms across provinces.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

PROVINCES: Final = 77
BANGKOK_SHARE: Final = 0.33


class Role(IntEnum):
    VALIDATOR = 0
    SENTRY = 1
    FULL = 2


@dataclass(frozen=True, slots=True)
class Layout:
    nodes: int = 10_000
    validators: int = 5
    sentries_per_validator: int = 4
    full_dials: int = 8  # outbound connections a full node makes
    sentry_dials: int = 30  # full nodes each sentry dials
    max_peers_full: int = 50
    max_peers_sentry: int = 200
    validator_mbit: float = 100.0  # upload, megabits per second
    sentry_mbit: float = 100.0
    full_mbit: float = 20.0  # a household gateway

    def __post_init__(self) -> None:
        if self.nodes <= self.validators * (1 + self.sentries_per_validator):
            raise ValueError("the layout needs some full nodes")


@dataclass(slots=True)
class Network:
    roles: list[Role]
    province: list[int]
    upload: list[float]  # bytes per second
    links: list[tuple[int, int]]  # (dialler, dialled)

    def role_of(self, node: int) -> Role:
        return self.roles[node]


def latency_s(rng: random.Random, a: int, b: int, province: list[int]) -> float:
    if province[a] == province[b]:
        return rng.uniform(0.001, 0.005)
    return rng.uniform(0.010, 0.040)


def build(layout: Layout, rng: random.Random) -> Network:
    v = layout.validators
    s = v * layout.sentries_per_validator
    n = layout.nodes
    roles = [Role.VALIDATOR] * v + [Role.SENTRY] * s + [Role.FULL] * (n - v - s)
    province = [0 if rng.random() < BANGKOK_SHARE else rng.randrange(1, PROVINCES)
                for _ in range(n)]  # fmt: skip
    mbit = {Role.VALIDATOR: layout.validator_mbit, Role.SENTRY: layout.sentry_mbit,
            Role.FULL: layout.full_mbit}  # fmt: skip
    upload = [mbit[role] * 1e6 / 8 for role in roles]
    cap = {Role.VALIDATOR: 50, Role.SENTRY: layout.max_peers_sentry,
           Role.FULL: layout.max_peers_full}  # fmt: skip
    degree = [0] * n
    linked: set[tuple[int, int]] = set()
    links: list[tuple[int, int]] = []

    def link(a: int, b: int) -> bool:
        key = (min(a, b), max(a, b))
        if a == b or key in linked or degree[a] >= cap[roles[a]] or degree[b] >= cap[roles[b]]:
            return False
        linked.add(key)
        links.append((a, b))
        degree[a] += 1
        degree[b] += 1
        return True

    sentries = range(v, v + s)
    for validator in range(v):
        for sentry in sentries:
            link(validator, sentry)
    for a in sentries:
        for b in sentries:
            if a < b:
                link(a, b)
    full = range(v + s, n)
    for sentry in sentries:
        for target in rng.sample(full, min(layout.sentry_dials, len(full))):
            link(sentry, target)
    dialable = list(range(v, n))  # sentries and full nodes; validators are never dialled
    for node in full:
        made = tries = 0
        while made < layout.full_dials and tries < 10 * layout.full_dials:
            tries += 1
            made += link(node, rng.choice(dialable))
    return Network(roles, province, upload, links)
