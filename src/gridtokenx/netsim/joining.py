"""Many new nodes state-syncing at once, in simulated time over the simulator's network.

Joining nodes appear together, each with a few configured peers (random sentries and full
nodes, or the sentries alone as bootstrap peers), and fetch one snapshot the way
`node.state_sync.Joiner.fetch` does: chunks asked of every peer at once, a few requests in
flight per peer, a chunk checked on arrival by one of the joiner's `checkers` (its worker
processes, each on a core of its own) and then written by the joiner's loop, one chunk at
a time (`Restore.add`; the loop asks for more only once it is done), the requests of a
peer that sent nothing for a while asked again of the others (the peer still sends its
answers: its upload is spent, and the late chunks cost it score), and a peer late three
times no longer asked. `timeout_rule` "request" is the rule before: late when any one
request waited that long. Then the store is finished (the tree's top, the root checked)
and the node has joined. With `write_s_per_byte` 0 and one checker, all the writing
comes at the end (`finish_s_per_byte`), as the joiner did when it rebuilt its tree.

Serving nodes upload what is asked of them over all their connections at once, each
connection's requests in order: the upload rate, less what the live traffic takes
(`live_bytes_per_s`, from the gossip runs), is shared equally among the connections that
have a chunk to send (as TCP shares a link). A chunk then crosses the link's latency and the
joiner's download, which serialises chunks when several peers send at once. Chunk sizes,
verification and finishing costs come from the caller (the real encoding, measured).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from dataclasses import dataclass, field

from gridtokenx.netsim import topology


@dataclass(frozen=True, slots=True)
class JoinScenario:
    chunk_sizes: tuple[int, ...]  # bytes of each chunk as sent
    layout: topology.Layout = field(default_factory=topology.Layout)
    joiners: int = 100
    peers: int = 8  # configured peers of each joiner
    bootstrap: str = "random"  # "random": sentries and full nodes; "sentries": those only
    in_flight: int = 4  # requests outstanding per peer (`state_sync.IN_FLIGHT`)
    timeout_s: float = 10.0  # `state_sync.CHUNK_TIMEOUT_S`
    timeout_rule: str = "progress"  # late: nothing from the peer for timeout_s ("request":
    #                                  any one request waited that long, the rule before)
    strikes: int = 3  # `state_sync.STRIKES`
    download_mbit: float = 100.0  # a joining household's downlink
    live_bytes_per_s: tuple[float, float, float] = (3.3e6, 3.3e6, 0.89e6)  # by role
    verify_s_per_byte: float = 0.0  # the joiner's check of a chunk, per byte, on one core
    checkers: int = 1  # chunks checked at once (`state_sync.CHECKERS`, a core each)
    write_s_per_byte: float = 0.0  # the loop's write of a checked chunk (`Restore.add`)
    finish_s_per_byte: float = 0.0  # after the last chunk (`Restore.finish`)
    offers_s: float = 0.5  # connecting, asking for offers and choosing one
    seed: int = 1

    def __post_init__(self) -> None:
        if self.timeout_rule not in ("progress", "request"):
            raise ValueError(f"timeout_rule must be progress or request, not {self.timeout_rule!r}")
        if self.bootstrap not in ("random", "sentries"):
            raise ValueError(f"bootstrap must be random or sentries, not {self.bootstrap!r}")
        if not self.chunk_sizes or self.joiners < 1 or self.peers < 1 or self.checkers < 1:
            raise ValueError("a join needs chunks, joiners, peers and checkers")


@dataclass(slots=True)
class JoinReport:
    scenario: JoinScenario
    join_s: list[float]  # per joiner, from the start until its store is finished
    failed: int  # joiners that lost every peer
    requests: int
    timeouts: int
    late_chunks: int  # answers that came after their request was given to another peer
    dropped_peers: int
    served_bytes: float
    wasted_bytes: float  # uploaded for requests already given up on
    servers: int  # distinct serving nodes
    busiest_server_joiners: int  # joiners that one serving node served at most
    events: int


@dataclass(slots=True)
class _Flow:
    """One connection's chunks on its way from a server to a joiner, in request order."""

    joiner: int
    queue: deque[tuple[int, int, int]]  # (chunk, bytes, request serial)
    left: float = 0.0  # bytes of the head chunk still to send


@dataclass(slots=True)
class _Server:
    rate: float
    flows: dict[int, _Flow] = field(default_factory=dict)  # joiner -> its connection
    since: float = 0.0
    version: int = 0


@dataclass(slots=True)
class _Joiner:
    peers: list[int]
    todo: deque[int]
    done: set[int] = field(default_factory=set)
    asked: dict[int, dict[int, tuple[float, int]]] = field(default_factory=dict)
    strikes: dict[int, int] = field(default_factory=dict)
    heard: dict[int, float] = field(default_factory=dict)  # peer -> its last chunk's arrival
    queued: dict[int, int] = field(default_factory=dict)  # peer -> chunks awaiting the check
    checkers_free: list[float] = field(default_factory=list)  # when each checker is idle
    loop_free: float = 0.0  # when the loop is done writing
    down_free: float = 0.0
    finished: float | None = None


_REQUEST, _SERVED, _ARRIVED, _VERIFIED, _TICK, _WRITTEN = range(6)


class JoinSimulation:
    def __init__(self, sc: JoinScenario) -> None:
        self.sc = sc
        self.rng = random.Random(sc.seed)
        self.net = topology.build(sc.layout, self.rng)
        layout = sc.layout
        v = layout.validators
        s = v * layout.sentries_per_validator
        candidates = list(range(v, v + s)) if sc.bootstrap == "sentries" else list(
            range(v, layout.nodes))  # fmt: skip
        n = len(sc.chunk_sizes)
        self.joiners: list[_Joiner] = []
        self.province: list[int] = []
        for _ in range(sc.joiners):
            peers = self.rng.sample(candidates, min(sc.peers, len(candidates)))
            self.joiners.append(_Joiner(peers, deque(range(n)), asked={p: {} for p in peers},
                                        strikes=dict.fromkeys(peers, 0),
                                        checkers_free=[0.0] * sc.checkers))  # fmt: skip
            self.province.append(self.rng.randrange(topology.PROVINCES))
        self.latency: dict[tuple[int, int], float] = {}
        self.servers: dict[int, _Server] = {}
        for j, joiner in enumerate(self.joiners):
            for peer in joiner.peers:
                home = self.net.province[peer]
                same = home == self.province[j]
                self.latency[j, peer] = (self.rng.uniform(0.001, 0.005) if same
                                         else self.rng.uniform(0.010, 0.040))  # fmt: skip
                if peer not in self.servers:
                    role = self.net.roles[peer]
                    spare = self.net.upload[peer] - sc.live_bytes_per_s[role]
                    self.servers[peer] = _Server(max(spare, self.net.upload[peer] * 0.05))
        self.heap: list[tuple[float, int, int, tuple[int, ...]]] = []
        self.seq = itertools.count()
        self.serial = itertools.count()
        self.download = sc.download_mbit * 1e6 / 8
        self.stats = {"requests": 0, "timeouts": 0, "late": 0, "dropped": 0, "failed": 0}
        self.served_bytes = self.wasted_bytes = 0.0
        self.served_joiners: dict[int, set[int]] = {}
        self.events = 0

    def _at(self, t: float, kind: int, *args: int) -> None:
        heapq.heappush(self.heap, (t, next(self.seq), kind, args))

    # --- the joiner ------------------------------------------------------------------------
    def _ask(self, j: int, now: float) -> None:
        """Fill every peer's free request slots, the least busy first (as `fetch` does)."""
        joiner = self.joiners[j]
        for peer in sorted(joiner.asked, key=lambda p: len(joiner.asked[p])):
            slots = joiner.asked[peer]
            if not slots:
                joiner.heard[peer] = now  # the wait starts now
            while joiner.todo and len(slots) < self.sc.in_flight:
                index = joiner.todo.popleft()
                if index in joiner.done:
                    continue
                serial = next(self.serial)
                slots[index] = (now + self.sc.timeout_s, serial)
                self.stats["requests"] += 1
                self._at(now + self.latency[j, peer], _REQUEST, peer, j, index, serial)

    def _tick(self, j: int, now: float) -> None:
        """Requests past their deadline go back in the queue; a peer late STRIKES times
        is dropped (what it was asked goes back too)."""
        joiner = self.joiners[j]
        if joiner.finished is not None:
            return
        for peer in list(joiner.asked):
            slots = joiner.asked[peer]
            progress = self.sc.timeout_rule == "progress"
            waiting = joiner.queued.get(peer, 0)  # the joiner's backlog, not the peer's
            if progress and slots and not waiting and now - joiner.heard[peer] > self.sc.timeout_s:
                joiner.todo.extend(slots)
                self.stats["timeouts"] += len(slots)
                slots.clear()
                joiner.strikes[peer] += 1
            for index, (due, _) in list(slots.items()):
                if self.sc.timeout_rule == "request" and due < now:
                    del slots[index]
                    joiner.strikes[peer] += 1
                    joiner.todo.append(index)
                    self.stats["timeouts"] += 1
            if joiner.strikes[peer] >= self.sc.strikes:
                joiner.todo.extend(slots)
                del joiner.asked[peer]
                self.stats["dropped"] += 1
        if not joiner.asked:
            self.stats["failed"] += 1
            joiner.finished = float("inf")
            return
        self._ask(j, now)
        self._at(now + 0.5, _TICK, j)  # as `fetch` wakes at least every 0.5 s

    def _arrived(self, j: int, peer: int, index: int, serial: int, now: float) -> None:
        joiner = self.joiners[j]
        joiner.heard[peer] = now
        joiner.queued[peer] = joiner.queued.get(peer, 0) + 1
        size = self.sc.chunk_sizes[index]
        free = joiner.checkers_free
        lane = min(range(len(free)), key=free.__getitem__)  # the checker idle first
        free[lane] = max(now, free[lane]) + size * self.sc.verify_s_per_byte
        self._at(free[lane], _VERIFIED, j, peer, index, serial)

    def _verified(self, j: int, peer: int, index: int, serial: int, now: float) -> None:
        joiner = self.joiners[j]
        joiner.queued[peer] -= 1
        if joiner.finished is not None:
            return
        if self.sc.timeout_rule == "progress":
            joiner.heard[peer] = now  # its other requests wait from now
        slots = joiner.asked.get(peer)
        if slots is None or slots.get(index, (0.0, -1))[1] != serial:
            self.stats["late"] += 1  # given to another peer meanwhile: a penalty, no use
            self.wasted_bytes += self.sc.chunk_sizes[index]
            return
        joiner.done.add(index)
        if not self.sc.write_s_per_byte:
            self._written(j, peer, index, now)
            return
        joiner.loop_free = max(now, joiner.loop_free) + (
            self.sc.chunk_sizes[index] * self.sc.write_s_per_byte
        )
        self._at(joiner.loop_free, _WRITTEN, j, peer, index)

    def _written(self, j: int, peer: int, index: int, now: float) -> None:
        """A checked chunk is in the store: its request's slot is free again."""
        joiner = self.joiners[j]
        if joiner.finished is not None:
            return
        slots = joiner.asked.get(peer)
        if slots is not None:
            slots.pop(index, None)
        if len(joiner.done) == len(self.sc.chunk_sizes) and now >= joiner.loop_free:
            total = sum(self.sc.chunk_sizes)
            joiner.finished = now + total * self.sc.finish_s_per_byte + self.sc.offers_s
            return
        self._ask(j, now)

    # --- the serving nodes -----------------------------------------------------------------
    def _advance(self, server: _Server, now: float) -> None:
        """Bring every flow's head chunk forward to `now` at the shared rate."""
        busy = [f for f in server.flows.values() if f.queue]
        if busy:
            sent = (now - server.since) * server.rate / len(busy)
            for flow in busy:
                flow.left -= sent
        server.since = now

    def _plan(self, peer: int, now: float) -> None:
        server = self.servers[peer]
        busy = [f for f in server.flows.values() if f.queue]
        server.version += 1
        if busy:
            first = min(f.left for f in busy)
            self._at(now + max(first, 0.0) * len(busy) / server.rate, _SERVED, peer,
                     server.version)  # fmt: skip

    def _request(self, peer: int, j: int, index: int, serial: int, now: float) -> None:
        server = self.servers[peer]
        self._advance(server, now)
        flow = server.flows.setdefault(j, _Flow(j, deque()))
        size = self.sc.chunk_sizes[index]
        if not flow.queue:
            flow.left = size
        flow.queue.append((index, size, serial))
        self.served_joiners.setdefault(peer, set()).add(j)
        self._plan(peer, now)

    def _served(self, peer: int, version: int, now: float) -> None:
        server = self.servers[peer]
        if version != server.version:
            return
        self._advance(server, now)
        for flow in server.flows.values():
            while flow.queue and flow.left <= 1.0:  # a byte: rounding
                index, size, serial = flow.queue.popleft()
                self.served_bytes += size
                self._deliver(flow.joiner, peer, index, serial, size, now)
                if flow.queue:
                    flow.left = flow.queue[0][1]
        self._plan(peer, now)

    def _deliver(self, j: int, peer: int, index: int, serial: int, size: int, now: float) -> None:
        """Across the link, then through the joiner's download (serialised when full)."""
        joiner = self.joiners[j]
        across = now + self.latency[j, peer]
        joiner.down_free = max(across, joiner.down_free + size / self.download)
        self._at(joiner.down_free, _ARRIVED, j, peer, index, serial)

    # --- the run ---------------------------------------------------------------------------
    def run(self, limit_s: float = 3600.0) -> JoinReport:
        for j in range(len(self.joiners)):
            self._ask(j, 0.0)
            self._at(0.5, _TICK, j)
        while self.heap:
            now, _, kind, args = heapq.heappop(self.heap)
            if now > limit_s:
                break
            self.events += 1
            if kind == _REQUEST:
                self._request(args[0], args[1], args[2], args[3], now)
            elif kind == _SERVED:
                self._served(args[0], args[1], now)
            elif kind == _ARRIVED:
                self._arrived(args[0], args[1], args[2], args[3], now)
            elif kind == _VERIFIED:
                self._verified(args[0], args[1], args[2], args[3], now)
            elif kind == _TICK:
                self._tick(args[0], now)
            elif kind == _WRITTEN:
                self._written(args[0], args[1], args[2], now)
        return self._report()

    def _report(self) -> JoinReport:
        finished = [j.finished for j in self.joiners if j.finished not in (None, float("inf"))]
        return JoinReport(
            scenario=self.sc, join_s=sorted(f for f in finished if f is not None),
            failed=self.stats["failed"] + sum(j.finished is None for j in self.joiners),
            requests=self.stats["requests"], timeouts=self.stats["timeouts"],
            late_chunks=self.stats["late"], dropped_peers=self.stats["dropped"],
            served_bytes=self.served_bytes, wasted_bytes=self.wasted_bytes,
            servers=len(self.servers),
            busiest_server_joiners=max((len(s) for s in self.served_joiners.values()),
                                       default=0),
            events=self.events,
        )  # fmt: skip
