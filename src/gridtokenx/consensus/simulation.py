"""A deterministic network simulator for the consensus core.

N validators run the real `consensus.core.Core` in one process. A seeded random generator
decides every message delay, drop, duplicate and reordering; partitions cut groups apart
until they heal; validators crash and restart from their write-ahead state; up to f
validators equivocate (sign two different votes for one height and round). Time is
simulated milliseconds in a priority queue, so a run is a pure function of its `Scenario`:
a failing seed replays exactly.

After a run the caller checks safety (no two different blocks decided at one height by
honest validators) and liveness (every honest validator that is up reaches the target
height once the network has healed).
"""

from __future__ import annotations

import copy
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gridtokenx.consensus import core
from gridtokenx.consensus.core import Action, Core, Persistent
from gridtokenx.wire import crypto
from gridtokenx.wire.validators import ValidatorSet
from gridtokenx.wire.votes import NIL, Commit, Evidence, Proposal, Vote, sign_vote

CHAIN_ID = "gridtokenx-sim"
GOSSIP_MS = 1_000  # how often a node re-sends what it has heard at its height
POWERS = (10_000, 8_000, 8_000, 7_000)  # EGAT, MEA, PEA, ERC


@dataclass(frozen=True)
class Scenario:
    seed: int
    validators: int = 4
    heights: int = 5  # decide this many heights
    max_time_ms: int = 600_000
    delay_ms: tuple[int, int] = (1, 300)
    drop_rate: float = 0.0  # before `heal_ms`
    duplicate_rate: float = 0.0
    heal_ms: int = 0  # network is reliable (no drops, no partitions) from here on
    partitions: tuple[tuple[int, int, frozenset[int]], ...] = ()  # (from, to, one side)
    crashes: tuple[tuple[int, int, int], ...] = ()  # (validator, down at, back at)
    equivocators: frozenset[int] = frozenset()
    lossy_crashes: bool = False
    """A crash also loses what the validator sent that has not arrived yet, as a killed
    process's socket buffers do: its WAL says it voted, but nobody may have the vote."""

    @classmethod
    def random(cls, seed: int) -> Scenario:
        """A hostile but recoverable network drawn from the seed: delays, drops, duplicates,
        a partition, a crash with restart (losing what was in flight) and possibly one
        equivocator, all before `heal_ms`; at most f (one of four) validators faulty at any
        time."""
        rng = random.Random(seed)
        n = 4
        heal = rng.choice([0, 5_000, 20_000, 40_000])
        partitions: tuple[tuple[int, int, frozenset[int]], ...] = ()
        if heal and rng.random() < 0.5:
            side = frozenset(rng.sample(range(n), rng.randint(1, 2)))
            partitions = ((rng.randint(0, heal // 2), heal, side),)
        faulty = rng.randrange(n)
        crashes: tuple[tuple[int, int, int], ...] = ()
        equivocators: frozenset[int] = frozenset()
        if rng.random() < 0.5:
            down = rng.randint(0, 20_000)
            crashes = ((faulty, down, down + rng.randint(1, 30_000)),)
        elif rng.random() < 0.5:
            equivocators = frozenset({faulty})
        return cls(
            seed=seed,
            validators=n,
            heights=rng.randint(3, 8),
            delay_ms=(1, rng.choice([50, 300, 1_500])),
            drop_rate=rng.choice([0.0, 0.1, 0.3]) if heal else 0.0,
            duplicate_rate=rng.choice([0.0, 0.2]),
            heal_ms=heal,
            partitions=partitions,
            crashes=crashes,
            equivocators=equivocators,
            lossy_crashes=True,  # a real crash loses its socket buffers; draws no number
        )

    @property
    def honest(self) -> set[int]:
        return set(range(self.validators)) - set(self.equivocators)


@dataclass
class SyncRequest:
    height: int
    sender: int


Message = Proposal | Vote | Commit | SyncRequest


@dataclass
class Node:
    index: int
    key: crypto.PrivateKey
    core: Core
    wal: Persistent
    store: dict[int, Commit] = field(default_factory=dict)
    up: bool = True
    heard: dict[bytes, Proposal | Vote] = field(default_factory=dict)
    """This height's proposals and votes, own and others', that gossip keeps re-sending."""


@dataclass
class Result:
    decisions: dict[int, dict[int, bytes]]  # validator -> height -> block
    evidence: list[Evidence]
    time_ms: int
    messages: int

    def safe(self, honest: set[int]) -> bool:
        heights = {h for v in honest for h in self.decisions[v]}
        return all(
            len({self.decisions[v][h] for v in honest if h in self.decisions[v]}) == 1
            for h in heights
        )

    def reached(self, validators: set[int], height: int) -> bool:
        return all(height in self.decisions[v] for v in validators)


def _memo_verify() -> core.Verifier:
    """Every node verifies the same broadcast; verify each signature once per run."""
    cache: dict[tuple[bytes, bytes, bytes], bool] = {}

    def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
        key = (public_key, message, signature)
        found = cache.get(key)
        if found is None:
            found = cache[key] = crypto.verify(public_key, message, signature)
        return found

    return verify


class App(Protocol):
    """What the simulator needs of the replicated application (`application.Application`)."""

    def build_block(self, height: int, time: int, proposer: bytes) -> bytes: ...
    def check_block(self, height: int, raw: bytes) -> bool: ...
    def commit(self, height: int, raw: bytes, certificate: tuple[Vote, ...]) -> object: ...
    def validators(self, height: int) -> ValidatorSet: ...
    def report_evidence(self, evidence: Evidence) -> None: ...


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        apps: Callable[[int, bool], App] | None = None,
        keys: list[crypto.PrivateKey] | None = None,
        validators: ValidatorSet | None = None,
    ) -> None:
        """`apps(index, restarted)` gives validator `index` its application (re-opened from
        its store after a restart), whose ledger then decides the validator set of every
        next height; without it, blocks are opaque labels. `keys` and `validators` replace
        the simulator's own validators (for an application whose genesis names them)."""
        self.s = scenario
        self.app_factory = apps
        self.apps: dict[int, App] = {}
        self.rng = random.Random(scenario.seed)
        if keys is None:
            keys = [
                crypto.PrivateKey.from_dev_label(f"sim/validator/{i}")
                for i in range(scenario.validators)
            ]
        if validators is None:
            powers = [POWERS[i % len(POWERS)] for i in range(len(keys))]
            validators = ValidatorSet.of(
                [(k.public_key, p) for k, p in zip(keys, powers, strict=True)]
            )
        self.validators = validators
        self.verify = _memo_verify()
        self.queue: list[tuple[int, int, str, Any]] = []
        self.seq = 0
        self.now = 0
        self.messages = 0
        self.evidence: list[Evidence] = []
        self.decisions: dict[int, dict[int, bytes]] = {i: {} for i in range(scenario.validators)}
        self.nodes = [self._new_node(i, k, Persistent(1)) for i, k in enumerate(keys)]
        self.index_of = {k.address: i for i, k in enumerate(keys)}
        for down, at, back in scenario.crashes:
            self._push(at, "crash", down)
            self._push(back, "restart", down)

    def _new_node(self, index: int, key: crypto.PrivateKey, state: Persistent) -> Node:
        c = Core(
            CHAIN_ID, self.validators, key, self.verify, state.height, persistent=copy.copy(state)
        )
        return Node(index, key, c, copy.copy(state))

    def _push(self, at: int, kind: str, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, kind, payload))

    # --- the network -----------------------------------------------------------------------
    def _cut(self, a: int, b: int) -> bool:
        for start, end, side in self.s.partitions:
            if start <= self.now < end and ((a in side) != (b in side)):
                return True
        return False

    def _send(self, sender: int, to: int, message: Message) -> None:
        healed = self.now >= self.s.heal_ms
        if not healed and (self._cut(sender, to) or self.rng.random() < self.s.drop_rate):
            return
        copies = 2 if self.rng.random() < self.s.duplicate_rate else 1
        for _ in range(copies):
            low, high = self.s.delay_ms
            self._push(self.now + self.rng.randint(low, high), "deliver", (sender, to, message))

    def _broadcast(self, sender: int, message: Message) -> None:
        for node in self.nodes:
            if node.index != sender:
                self._send(sender, node.index, message)

    # --- a node reacting -------------------------------------------------------------------
    def _act(self, node: Node, actions: list[Action]) -> None:
        node.wal = copy.copy(node.core.state)  # written ahead of every send below
        for action in actions:
            if isinstance(action, core.Broadcast):
                self._broadcast_from(node, action.message)
            elif isinstance(action, core.ScheduleTimeout):
                self._push(self.now + action.delay_ms, "timeout", (node.index, action))
            elif isinstance(action, core.RequestValue):
                app = self.apps.get(node.index)
                if app is not None:
                    block = app.build_block(action.height, self.now // 1000, node.key.address)
                else:
                    block = f"{CHAIN_ID}/h{action.height}/r{action.round}/v{node.index}".encode()
                self._act(node, node.core.on_value(action.height, action.round, block))
            elif isinstance(action, core.Decide):
                self._decided(node, action)
            elif isinstance(action, core.ReportEvidence):
                self.evidence.append(action.evidence)
                if (app := self.apps.get(node.index)) is not None:
                    app.report_evidence(action.evidence)

    def _remember(self, node: Node, message: Proposal | Vote) -> None:
        if message.height != node.core.height:
            return
        node.heard.setdefault(message.signature, message)

    def _gossip(self, node: Node) -> None:
        """Re-send this height's messages to every peer: a lossy network delivers eventually."""
        for message in list(node.heard.values()):
            if message.height == node.core.height:
                self._broadcast(node.index, message)
            else:
                del node.heard[message.signature]
        self._push(self.now + GOSSIP_MS, "gossip", node.index)

    def _broadcast_from(self, node: Node, message: Proposal | Vote) -> None:
        self.messages += 1
        if node.index not in self.s.equivocators:
            self._remember(node, message)
        if node.index in self.s.equivocators and isinstance(message, Vote):
            # Sign a second, conflicting vote and split the peers between the two.
            other = NIL if message.block_id != NIL else b"\x01" * 32
            twin = sign_vote(
                node.key,
                CHAIN_ID,
                Vote(message.height, message.round, message.type, other, message.validator),
            )
            for peer in self.nodes:
                if peer.index != node.index:
                    self._send(node.index, peer.index, message if peer.index % 2 else twin)
            return
        self._broadcast(node.index, message)

    def _decided(self, node: Node, decision: core.Decide) -> None:
        app = self.apps.get(node.index)
        if app is not None:
            app.commit(decision.height, decision.block, decision.commit)
        self.decisions[node.index][decision.height] = decision.block
        commit = Commit(decision.height, decision.block, decision.commit)
        node.store[decision.height] = commit
        self._broadcast(node.index, commit)
        if decision.height < self.s.heights:
            following = None if app is None else app.validators(decision.height + 1)
            self._act(node, node.core.advance(following))

    def _deliver(self, sender: int, node: Node, message: Message) -> None:
        c = node.core
        height = message.height
        if height > c.height and not isinstance(message, SyncRequest):
            self._send(node.index, sender, SyncRequest(c.height, node.index))
        if isinstance(message, Proposal):
            self._remember(node, message)
            app = self.apps.get(node.index)
            valid = True if app is None else app.check_block(message.height, message.block)
            self._act(node, c.on_proposal(message, valid=valid))
        elif isinstance(message, Vote):
            self._remember(node, message)
            self._act(node, c.on_vote(message))
        elif isinstance(message, Commit):
            self._act(node, c.on_commit(message.height, message.block, message.certificate))
        elif message.height in node.store:
            self._send(node.index, message.sender, node.store[message.height])

    # --- the run ---------------------------------------------------------------------------
    def run(self, until: Callable[[Simulation], bool] | None = None) -> Result:
        for node in self.nodes:
            if self.app_factory is not None:
                app = self.apps[node.index] = self.app_factory(node.index, False)
                node.core.validators = app.validators(node.core.height)
            self._act(node, node.core.start())
            self._push(GOSSIP_MS, "gossip", node.index)
        done = until or (lambda sim: sim._all_up_reached())
        while self.queue and not done(self):
            at, _, kind, payload = heapq.heappop(self.queue)
            if at > self.s.max_time_ms:
                break
            self.now = at
            if kind == "deliver":
                sender, to, message = payload
                if self.nodes[to].up:
                    self._deliver(sender, self.nodes[to], message)
            elif kind == "timeout":
                index, t = payload
                node = self.nodes[index]
                if node.up:
                    self._act(node, node.core.on_timeout(t.height, t.round, t.step))
            elif kind == "gossip":
                node = self.nodes[payload]
                if node.up:
                    self._gossip(node)
                else:
                    self._push(self.now + GOSSIP_MS, "gossip", payload)
            elif kind == "crash":
                self.nodes[payload].up = False
                if self.s.lossy_crashes:
                    self._lose_in_flight(payload)
            elif kind == "restart":
                old = self.nodes[payload]
                node = self._new_node(old.index, old.key, old.wal)
                node.store = old.store
                self.nodes[payload] = node
                if self.app_factory is not None:
                    app = self.apps[node.index] = self.app_factory(node.index, True)
                    node.core.validators = app.validators(node.core.height)
                self._act(node, node.core.start())
        return Result(self.decisions, self.evidence, self.now, self.messages)

    def _lose_in_flight(self, sender: int) -> None:
        """Drop every delivery from `sender` still in the queue (the order of the rest, and
        so the run, stays a function of the scenario)."""
        self.queue = [
            entry for entry in self.queue if not (entry[2] == "deliver" and entry[3][0] == sender)
        ]
        heapq.heapify(self.queue)

    def _all_up_reached(self) -> bool:
        up = [n.index for n in self.nodes if n.up]
        return all(self.s.heights in self.decisions[i] for i in up) and not self._pending_restart()

    def _pending_restart(self) -> bool:
        return any(kind == "restart" for _, _, kind, _ in self.queue)


def simulate(scenario: Scenario) -> Result:
    return Simulation(scenario).run()
