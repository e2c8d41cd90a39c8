"""The event loop: a heap of timed events over nodes with upload queues.

Each node sends one frame at a time at its upload rate, from queues ordered by priority
(grid updates, then control frames, consensus, blocks, transactions: `mesh.priority`); a
frame arrives one link latency after its last byte left (store and forward), and is
handed to the receiver's router. Before a queued copy of a message starts, the router is
asked whether the peer still wants it (an IDONTWANT may have come meanwhile). A received
message is validated after a per-topic delay (the signature or certificate check a node
does before forwarding), then accepted.

Faults: never-reading nodes stop processing anything at the end of the warm-up (their
peers keep sending into their socket buffers, `STUCK_BUFFER` bytes a link, and then lose
the frames without spending upload on them); churning nodes go down at a random time,
losing every connection, and come back a few seconds later as a fresh process that dials
new peers.

What a run measures (`Report`): for each message published in the measured window, the
time it took to reach every node that was up and reading from its publication to the end
of the run; each node's bytes sent and received per second, by role; connections by role;
duplicate copies received per message; and the mesh degree after each heartbeat.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from gridtokenx.netsim import topology, traffic
from gridtokenx.netsim.flood import Flood
from gridtokenx.netsim.topology import Role
from gridtokenx.p2p import mesh
from gridtokenx.p2p.mesh import Frame, Publish, Topic, Validation

STUCK_BUFFER: Final = 4 * 1024 * 1024  # socket buffers a never-reading peer fills
SMALL: Final = 4096  # frames up to this are not queued behind large ones
QUEUES: Final = 5
TOPICS_OF: Final = {
    Role.VALIDATOR: frozenset(Topic),
    Role.SENTRY: frozenset(Topic),
    Role.FULL: frozenset({Topic.TRANSACTIONS, Topic.BLOCKS, Topic.GRID}),
}
VALIDATION_S: Final = {
    Topic.GRID: 0.0002,  # one signature
    Topic.CONSENSUS: 0.0002,  # a vote's or proposal's signature
    Topic.BLOCKS: 0.002,  # decode and check the commit certificate
    Topic.TRANSACTIONS: 0.001,  # skip known ones; the batch's signatures go to a pool
}

_PER_SLOT: Final = 1000  # event slots a simulated second (`Simulation.heap`)

# event kinds
_DONE, _ARRIVE, _VALID, _BEAT, _EMIT, _DOWN, _UP, _STOP = range(8)


@dataclass(frozen=True, slots=True)
class Scenario:
    layout: topology.Layout = field(default_factory=topology.Layout)
    router: str = "mesh"  # or "flood"
    params: mesh.Params = field(default_factory=mesh.Params)
    seed: int = 1
    warmup_s: float = 4.0
    duration_s: float = 10.0
    drain_s: float = 4.0
    tps: int = 1_000
    block_interval_s: float = 1.0
    grid_per_s: float = 2.0
    tx_batches_per_s: float = 2.0
    non_reading: float = 0.0  # share of full nodes that stop reading
    churn: float = 0.0  # share of full nodes that go down and come back
    churn_down_s: tuple[float, float] = (2.0, 5.0)

    def __post_init__(self) -> None:
        if self.router not in ("mesh", "flood"):
            raise ValueError(f"router must be mesh or flood, not {self.router!r}")


@dataclass(slots=True)
class _Message:
    topic: Topic
    published: float
    publisher: int
    measured: bool
    arrived: list[float] | None  # first arrival per node, for measured messages


@dataclass(slots=True)
class Report:
    scenario: Scenario
    sizes: traffic.Sizes
    events: int
    reach_s: dict[str, list[float]]  # topic -> time to reach every counted node, per message
    delivery_s: dict[str, list[float]]  # topic -> every counted (node, message) delay
    missed: dict[str, int]  # topic -> (node, message) pairs never delivered
    messages: dict[str, int]
    duplicates: dict[str, float]  # topic -> duplicate copies per node per message
    bytes_per_s: dict[str, dict[str, list[float]]]  # role -> {"sent": [...], "received": [...]}
    connections: dict[str, list[int]]  # role -> per node, at the end
    degree_violations: int  # heartbeats that left a mesh outside its bounds
    degrees: dict[str, list[int]]  # topic -> heartbeats that left the mesh at each size
    heartbeats_checked: int
    dropped_stuck: int  # frames lost in never-reading peers' full buffers
    cancelled: int  # queued copies skipped after an IDONTWANT


class Simulation:
    def __init__(self, scenario: Scenario, sizes: traffic.Sizes | None = None) -> None:
        self.sc = sc = scenario
        self.rng = random.Random(sc.seed)
        self.router_rng = random.Random(sc.seed + 1)  # so mesh and flood share a schedule
        self.net = topology.build(sc.layout, self.rng)
        self.sizes = sizes or traffic.sizes(
            sc.tps, sc.block_interval_s, sc.tx_batches_per_s, sc.layout.validators
        )
        n = sc.layout.nodes
        self.n = n
        self.roles = self.net.roles
        self.adj: list[dict[int, float]] = [{} for _ in range(n)]
        self.routers: list[Any] = [self._router(i) for i in range(n)]
        self.queues: list[list[deque[tuple[int, Frame, int]]]] = [
            [deque() for _ in range(QUEUES)] for _ in range(n)
        ]
        self.current: list[tuple[int, Frame, int] | None] = [None] * n
        self.debt = [0.0] * n  # seconds of upload small frames took meanwhile
        self.online = [True] * n
        self.reading = [True] * n
        self.generation = [0] * n  # bumped on each restart: stale events are dropped
        self.sent = [0.0] * n
        self.received = [0.0] * n
        self.stuck: dict[tuple[int, int], int] = {}
        # The events due in the current slot of SLOT_S seconds, a heap; later ones wait
        # unsorted in their slot's list (`later`, the slots in `slots`, a heap) and are
        # heaped when their slot comes: the same order as one heap of every event, by
        # (time, sequence), with heaps of a slot's size (most of a flood run's time went
        # into popping one heap of hundreds of thousands).
        self.heap: list[tuple[float, int, int, int, Any, Any]] = []
        self.slot = 0
        self.later: dict[int, list[tuple[float, int, int, int, Any, Any]]] = {}
        self.slots: list[int] = []
        self.seq = itertools.count()
        self.now = 0.0
        self.events = 0
        self.messages: list[_Message] = []
        self.arrivals = {topic: 0 for topic in Topic}
        self.firsts = {topic: 0 for topic in Topic}
        self.dropped_stuck = 0
        self.cancelled = 0
        self.violations = 0
        self.degrees = {t.name.lower(): [0] * 64 for t in Topic}  # mesh sizes after heartbeats
        self.checked = 0
        self.down: dict[int, tuple[float, float]] = {}
        self.window = (sc.warmup_s, sc.warmup_s + sc.duration_s)

    def _router(self, node: int) -> Any:
        if self.sc.router == "flood":
            return Flood()
        rng = random.Random(self.router_rng.getrandbits(64))
        return mesh.Mesh(TOPICS_OF[self.roles[node]], rng, self.sc.params)

    # --- plumbing ------------------------------------------------------------------------
    def _at(self, time: float, kind: int, node: int, a: Any = None, b: Any = None) -> None:
        event = (time, next(self.seq), kind, node, a, b)
        slot = int(time * _PER_SLOT)
        if slot <= self.slot:
            heapq.heappush(self.heap, event)
            return
        waiting = self.later.get(slot)
        if waiting is None:
            self.later[slot] = [event]
            heapq.heappush(self.slots, slot)
        else:
            waiting.append(event)

    def _send(self, node: int, sends: list[tuple[int, Frame]]) -> None:
        """Queue large messages; small frames (control, votes, grid updates) go at once,
        interleaved with whatever is being sent, their time added to the node's debt."""
        queues = self.queues[node]
        adj = self.adj[node]
        rate = self.net.upload[node]
        now = self.now
        counting = self.window[0] <= now < self.window[1]
        queued = False
        for peer, frame in sends:
            if type(frame) is Publish:
                size = len(frame.data) + mesh.HEADER_BYTES + mesh.ID_BYTES
                if size > SMALL:
                    queues[mesh.PRIORITY[frame.topic]].append((peer, frame, size))
                    queued = True
                    continue
            else:
                size = mesh.frame_size(frame)
            latency = adj.get(peer)
            if latency is None or not self._room(node, peer, size):
                continue
            self.debt[node] += size / rate
            if counting:
                self.sent[node] += size
            self._at(now + size / rate + latency, _ARRIVE, peer, node, frame)
        if queued and self.current[node] is None:
            self._next(node)

    def _room(self, node: int, peer: int, size: int) -> bool:
        """Whether a frame fits: a never-reading peer's socket buffers fill up."""
        if self.reading[peer]:
            return True
        stuck = self.stuck.get((node, peer), 0)
        if stuck >= STUCK_BUFFER:
            self.dropped_stuck += 1
            return False
        self.stuck[node, peer] = stuck + size
        return True

    def _next(self, node: int) -> None:
        """Start the next frame in priority order, skipping ones nobody wants any more."""
        router = self.routers[node]
        adj = self.adj[node]
        for queue in self.queues[node]:
            while queue:
                peer, frame, size = queue.popleft()
                if peer not in adj:
                    continue
                if isinstance(frame, Publish) and not router.wanted(peer, frame.id):
                    self.cancelled += 1
                    continue
                if not self._room(node, peer, size):
                    continue
                self.current[node] = (peer, frame, size)
                if self.window[0] <= self.now < self.window[1]:
                    self.sent[node] += size
                debt, self.debt[node] = self.debt[node], 0.0
                self._at(self.now + debt + size / self.net.upload[node], _DONE, node,
                         self.generation[node])  # fmt: skip
                return
        self.current[node] = None

    def _connect(self, a: int, b: int) -> None:
        """`a` dialled `b`. A validator and a sentry are each other's direct peers, as the
        node makes them (a validator's configured sentries, a sentry's validators)."""
        latency = topology.latency_s(self.rng, a, b, self.net.province)
        self.adj[a][b] = latency
        self.adj[b][a] = latency
        direct = {self.roles[a], self.roles[b]} == {Role.VALIDATOR, Role.SENTRY}
        self._send(a, self.routers[a].connect(b, self.now, True, direct))
        self._send(b, self.routers[b].connect(a, self.now, False, direct))

    # --- events --------------------------------------------------------------------------
    def _done(self, node: int, generation: int) -> None:
        if generation != self.generation[node]:
            return
        item = self.current[node]
        assert item is not None
        peer, frame, _ = item
        latency = self.adj[node].get(peer)
        if latency is not None:
            self._at(self.now + latency, _ARRIVE, peer, node, frame)
        self._next(node)

    def _arrive(self, node: int, source: int, frame: Frame) -> None:
        if not self.reading[node] or source not in self.adj[node]:
            return
        publish = type(frame) is Publish
        if self.window[0] <= self.now < self.window[1]:
            self.received[node] += mesh.frame_size(frame)
        step = self.routers[node].receive(source, frame, self.now)
        if publish:
            self.arrivals[frame.topic] += 1  # type: ignore[union-attr]
        for message in step.deliver:
            self.firsts[message.topic] += 1
            record = self.messages[int.from_bytes(message.id, "big")]
            if record.arrived is not None:
                record.arrived[node] = self.now
            delay = VALIDATION_S[message.topic]
            self._at(self.now + delay, _VALID, node, message.id, self.generation[node])
        if step.sends:
            self._send(node, step.sends)

    def _valid(self, node: int, message_id: bytes, generation: int) -> None:
        if generation != self.generation[node] or not self.reading[node]:
            return
        self._send(node, self.routers[node].accept(message_id, Validation.VALID, self.now))

    def _beat(self, node: int, generation: int) -> None:
        if generation != self.generation[node] or not self.reading[node]:
            return
        router = self.routers[node]
        self._send(node, router.heartbeat(self.now))
        if self.now >= self.window[0] and isinstance(router, mesh.Mesh):
            self._check_degree(router)
        self._at(self.now + self.sc.params.heartbeat_s, _BEAT, node, generation)

    def _check_degree(self, router: mesh.Mesh[int]) -> None:
        for topic, members in router.mesh.items():
            p = router.degree[topic]
            self.checked += 1
            size = len(members)
            self.degrees[topic.name.lower()][min(size, len(self.degrees["grid"]) - 1)] += 1
            if size > p.d_hi or size < min(p.d_lo, size + len(router.candidates(topic, self.now))):
                self.violations += 1

    def _emit(self, topic: Topic, publisher: int, data: bytes) -> None:
        index = len(self.messages)
        up = self.online[publisher] and self.reading[publisher]
        measured = up and self.window[0] <= self.now < self.window[1]
        arrived = [math.inf] * self.n if measured else None
        self.messages.append(_Message(topic, self.now, publisher, measured, arrived))
        if not up:
            return  # a node that is down publishes nothing
        if arrived is not None:
            arrived[publisher] = self.now
        message_id = index.to_bytes(8, "big")
        sends = self.routers[publisher].publish(topic, message_id, data, self.now)
        self._send(publisher, sends)

    def _go_down(self, node: int) -> None:
        self.online[node] = False
        self.generation[node] += 1
        for peer in list(self.adj[node]):
            del self.adj[peer][node]
            self.routers[peer].disconnect(node)
        self.adj[node] = {}
        self.queues[node] = [deque() for _ in range(QUEUES)]
        self.current[node] = None

    def _come_up(self, node: int) -> None:
        self.online[node] = True
        self.routers[node] = self._router(node)
        layout = self.sc.layout
        cap = {Role.SENTRY: layout.max_peers_sentry, Role.FULL: layout.max_peers_full}
        first = layout.validators
        made = tries = 0
        while made < layout.full_dials and tries < 10 * layout.full_dials:
            tries += 1
            peer = self.rng.randrange(first, self.n)
            if (peer != node and self.online[peer] and peer not in self.adj[node]
                    and len(self.adj[peer]) < cap[self.roles[peer]]):  # fmt: skip
                self._connect(node, peer)
                made += 1
        if self.sc.router == "mesh":
            self._at(self.now + self.rng.uniform(0, self.sc.params.heartbeat_s), _BEAT, node,
                     self.generation[node])  # fmt: skip

    # --- the run -------------------------------------------------------------------------
    def _schedule(self) -> None:
        sc, rng, sizes = self.sc, self.rng, self.sizes
        commit, grid, batch = bytes(sizes.commit), bytes(sizes.grid), bytes(sizes.tx_batch)
        proposal, vote = bytes(sizes.proposal), bytes(sizes.vote)
        end = self.window[1]
        v = sc.layout.validators
        full = range(v * (1 + sc.layout.sentries_per_validator), self.n)
        height = 0
        t = 1.0
        while t < end:  # proposer's block at t, certified and published 0.3 s later
            self._at(t, _EMIT, height % v, Topic.CONSENSUS, proposal)
            for validator in range(v):
                self._at(t + 0.1, _EMIT, validator, Topic.CONSENSUS, vote)  # prevote
                self._at(t + 0.2, _EMIT, validator, Topic.CONSENSUS, vote)  # precommit
            self._at(t + 0.3, _EMIT, height % v, Topic.BLOCKS, commit)
            height += 1
            t += sc.block_interval_s
        t = rng.expovariate(sc.grid_per_s)
        while t < end:  # grid operators' nodes: sentries and full nodes alike
            self._at(t, _EMIT, rng.randrange(v, self.n), Topic.GRID, grid)
            t += rng.expovariate(sc.grid_per_s)
        t = rng.expovariate(sc.tx_batches_per_s)
        while t < end:  # batches submitted through random full nodes' APIs
            self._at(t, _EMIT, rng.choice(full), Topic.TRANSACTIONS, batch)
            t += rng.expovariate(sc.tx_batches_per_s)
        faulty = rng.sample(full, round((sc.non_reading + sc.churn) * len(full)))
        stuck_count = round(sc.non_reading * len(full))
        for node in faulty[:stuck_count]:
            self._at(sc.warmup_s, _STOP, node)
        for node in faulty[stuck_count:]:
            down = rng.uniform(sc.warmup_s, end - 1.0)
            up = down + rng.uniform(*sc.churn_down_s)
            self.down[node] = (down, up)
            self._at(down, _DOWN, node)
            self._at(up, _UP, node)
        if sc.router == "mesh":
            for node in range(self.n):
                self._at(rng.uniform(0, sc.params.heartbeat_s), _BEAT, node, 0)

    def run(self, progress: Callable[[float], None] | None = None) -> Report:
        for a, b in self.net.links:
            self._connect(a, b)
        self._schedule()
        stop = self.window[1] + self.sc.drain_s
        heap, later, slots = self.heap, self.later, self.slots
        pop = heapq.heappop
        next_report = 1.0
        while True:
            if not heap:
                if not slots:
                    break
                self.slot = pop(slots)
                heap = self.heap = later.pop(self.slot)
                heapq.heapify(heap)
            time, _, kind, node, a, b = pop(heap)
            if time > stop:
                break
            self.now = time
            self.events += 1
            if kind == _ARRIVE:
                self._arrive(node, a, b)
            elif kind == _DONE:
                self._done(node, a)
            elif kind == _VALID:
                self._valid(node, a, b)
            elif kind == _BEAT:
                self._beat(node, a)
            elif kind == _EMIT:
                self._emit(a, node, b)
            elif kind == _STOP:
                self.reading[node] = False
            elif kind == _DOWN:
                self._go_down(node)
            elif kind == _UP:
                self._come_up(node)
            if progress is not None and time >= next_report:
                progress(time)
                next_report += 1.0
        return self._report()

    # --- figures -------------------------------------------------------------------------
    def _counted(self, node: int, published: float) -> bool:
        if not self.reading[node]:
            return False
        window = self.down.get(node)
        return window is None or not (window[0] <= self.window[1] + self.sc.drain_s
                                      and window[1] >= published)  # fmt: skip

    def _report(self) -> Report:
        reach: dict[str, list[float]] = {t.name.lower(): [] for t in Topic}
        delivery: dict[str, list[float]] = {t.name.lower(): [] for t in Topic}
        missed = {t.name.lower(): 0 for t in Topic}
        count = {t.name.lower(): 0 for t in Topic}
        subscribers = {t: [i for i in range(self.n) if t in TOPICS_OF[self.roles[i]]]
                       for t in Topic}  # fmt: skip
        if self.sc.router == "flood":
            subscribers = {t: list(range(self.n)) for t in Topic}
        for message in self.messages:
            if message.arrived is None:
                continue
            name = message.topic.name.lower()
            count[name] += 1
            worst = 0.0
            for node in subscribers[message.topic]:
                if not self._counted(node, message.published):
                    continue
                delay = message.arrived[node] - message.published
                if delay == math.inf:
                    missed[name] += 1
                else:
                    delivery[name].append(delay)
                worst = max(worst, delay)
            reach[name].append(worst)
        duplicates = {
            t.name.lower(): (self.arrivals[t] - self.firsts[t]) / self.firsts[t]
            for t in Topic
            if self.firsts[t]
        }
        seconds = self.sc.duration_s
        rates: dict[str, dict[str, list[float]]] = {}
        connections: dict[str, list[int]] = {}
        for node in range(self.n):
            role = self.roles[node].name.lower()
            entry = rates.setdefault(role, {"sent": [], "received": []})
            if self.reading[node] and node not in self.down:
                entry["sent"].append(self.sent[node] / seconds)
                entry["received"].append(self.received[node] / seconds)
            connections.setdefault(role, []).append(len(self.adj[node]))
        return Report(
            scenario=self.sc, sizes=self.sizes, events=self.events, reach_s=reach,
            delivery_s=delivery, missed=missed, messages=count, duplicates=duplicates,
            bytes_per_s=rates, connections=connections, degree_violations=self.violations,
            degrees=self.degrees,
            heartbeats_checked=self.checked, dropped_stuck=self.dropped_stuck,
            cancelled=self.cancelled,
        )  # fmt: skip


def run(scenario: Scenario, sizes: traffic.Sizes | None = None) -> Report:
    return Simulation(scenario, sizes).run()
