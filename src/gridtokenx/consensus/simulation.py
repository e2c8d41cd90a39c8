"""A deterministic network simulator for the consensus core.

N validators run the real `consensus.core.Core` in one process. A seeded random generator
decides every message delay, drop, duplicate and reordering; partitions cut groups apart
until they heal; validators crash and restart from their write-ahead state; up to f
validators equivocate (sign two different votes for one height and round). Time is
simulated milliseconds in a priority queue, so a run is a pure function of its `Scenario`:
a failing seed replays exactly.

How a send meets the network is the scenario's `send_model`. `unbounded` (the default, and
all the simulator had before) hands every message to the network at once: sending costs
nothing and a peer that stops reading harms nobody. The two bounded models give every
connection a buffer of `link_buffer` messages in each direction, freed only when the
reader reads, so a paused, slow or never-reading peer pushes back on its senders:

- `blocking` is the node as it was: a node's sends go out one after another, and a send
  to a full link stops the node (no reads, timeouts or other sends) until room frees;
- `queued` is the node of issue 13: a bounded queue per peer and lane, drained into the
  link by the peer's own writer; enqueueing never waits, a full consensus lane disconnects
  the peer, a full transaction lane drops its oldest, and a peer that leaves a message
  unread past the ping timeout is disconnected. Peers reconnect once both answer again.

After a run the caller checks safety (no two different blocks decided at one height by
honest validators) and liveness (every honest validator that is up reaches the target
height once the network has healed).
"""

from __future__ import annotations

import copy
import dataclasses
import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, get_args

from gridtokenx.consensus import core
from gridtokenx.consensus.core import Action, Core, Persistent
from gridtokenx.wire import crypto
from gridtokenx.wire.validators import ValidatorSet
from gridtokenx.wire.votes import NIL, Commit, Evidence, Proposal, Vote, sign_vote

CHAIN_ID = "gridtokenx-sim"
GOSSIP_MS = 1_000  # how often a node re-sends what it has heard at its height
POWERS = (10_000, 8_000, 8_000, 7_000)  # EGAT, MEA, PEA, ERC
READ_TICK_MS: Final = 100  # a slow reader reads its few messages per this many milliseconds

SendModel = Literal["unbounded", "blocking", "queued"]


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
    process's socket buffers do: its WAL says it voted, but nobody may have the vote. On
    bounded links a crash always closes its connections, which loses that and more."""

    send_model: SendModel = "unbounded"
    """`unbounded`, `blocking` or `queued` (the module docstring); the fields below, except
    `tx_every_ms`, only mean something on the two bounded models."""
    link_buffer: int = 128
    """Messages one direction of a connection holds from the sender's write to the
    reader's read (both ends' socket buffers): in transit and arrived-but-unread alike."""
    consensus_queue: int = 100  # queued: a peer's consensus lane; full disconnects the peer
    tx_queue: int = 20  # queued: a peer's transaction lane; full drops its oldest batch
    ping_timeout_ms: int = 10_000  # queued: a message unread this long disconnects its reader
    reconnect_ms: int = 2_000  # a closed connection is dialled again this long after
    pauses: tuple[tuple[int, int, int], ...] = ()
    """(validator, stops at, goes on at): the process is stopped (SIGSTOP) and neither
    reads, sends nor times out until it goes on."""
    slow_readers: tuple[tuple[int, int], ...] = ()  # (validator, messages read per tick)
    rogues: int = 0  # non-validator peers of every validator that connect and never read
    tx_every_ms: int = 0  # every validator relays a transaction batch to its peers this often

    def __post_init__(self) -> None:
        if self.send_model not in get_args(SendModel):
            raise ValueError(f"unknown send model {self.send_model!r}")
        if self.send_model == "unbounded" and (self.pauses or self.slow_readers or self.rogues):
            raise ValueError("pauses, slow readers and rogue peers need bounded links")

    @classmethod
    def random(cls, seed: int, send_model: SendModel = "unbounded") -> Scenario:
        """A hostile but recoverable network drawn from the seed: delays, drops, duplicates,
        a partition, a crash with restart (losing what was in flight) and possibly one
        equivocator, all before `heal_ms`; at most f (one of four) validators faulty at any
        time. On the `queued` model the same draws come first (so seed s is seed s of the
        unbounded network) and then the faults only bounded links have (`_bounded_faults`).
        """
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
        scenario = cls(
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
        if send_model == "queued":
            return _bounded_faults(scenario, rng, faulty)
        return dataclasses.replace(scenario, send_model=send_model)

    @property
    def honest(self) -> set[int]:
        return set(range(self.validators)) - set(self.equivocators)


def _bounded_faults(scenario: Scenario, rng: random.Random, faulty: int) -> Scenario:
    """Add to a random scenario what only bounded links can show, on the queued model: the
    faulty validator stops (SIGSTOP) for up to 40 s or reads slowly, rogue peers that never
    read, and transaction traffic. The pause and the slow reader fall on the validator that
    may already crash or equivocate, so no more than f of four misbehave at once."""
    pauses: tuple[tuple[int, int, int], ...] = ()
    if rng.random() < 0.5:
        at = rng.randint(0, 30_000)
        pauses = ((faulty, at, at + rng.randint(1_000, 40_000)),)
    slow = ((faulty, rng.choice([2, 5, 20])),) if rng.random() < 0.3 else ()
    return dataclasses.replace(
        scenario,
        send_model="queued",
        pauses=pauses,
        slow_readers=slow,
        rogues=rng.choice([0, 0, 1, 2]),
        tx_every_ms=rng.choice([0, 0, 250]),
    )


@dataclass
class SyncRequest:
    height: int
    sender: int


@dataclass(frozen=True)
class TxBatch:
    """A relayed batch of transactions: consensus ignores it, but it takes room on links
    and in the reader's time, and rides the transaction lane of the queued model."""

    sender: int


Message = Proposal | Vote | Commit | SyncRequest
Packet = Message | TxBatch
Timer = tuple[str, Any]  # ("timeout", ScheduleTimeout) | ("gossip", index) | ("txs", index)


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
    peer_heights: dict[int, int] = field(default_factory=dict)
    """The highest height each peer showed (its proposals, votes and sync requests): late
    and duplicated messages can show less, and a peer's height never goes down."""
    todo: deque[Action] = field(default_factory=deque)
    """Actions the core asked for that wait behind a blocked send (empty between events
    unless the node is stopped or blocked)."""
    # The bounded models only; a crash loses all of it with the process.
    inbox: deque[tuple[int, int, Packet]] = field(default_factory=deque)
    """(sender, connection epoch, message): arrived and not yet read."""
    outbox: deque[tuple[int, Packet]] = field(default_factory=deque)
    """blocking: sends waiting, in order, for room on their link; the node is stuck while
    any wait."""
    deferred: list[Timer] = field(default_factory=list)  # fired while the node was stuck
    read_tick: int = -1  # a slow reader's current tick and what it has read in it
    reads: int = 0
    tick_wake: int = -1  # the tick start a slow reader is woken at, if one is pending


@dataclass
class Link:
    """One direction of one connection, as its sender sees it. `unread` holds the send time
    of every message written and not yet read, in order (a stream keeps its order): its
    length is what fills the socket buffers. The lanes are the queued model's per-peer
    send queues, which the peer's writer drains into the link while it has room."""

    unread: deque[int] = field(default_factory=deque)
    arrives: int = 0  # when the last message written arrives; later ones arrive after it
    consensus: deque[Packet] = field(default_factory=deque)
    txs: deque[Packet] = field(default_factory=deque)


@dataclass
class Connection:
    """A connection between two peers. Closing it loses everything on both links; the
    epoch tells the messages of an earlier connection, still on their way, to vanish."""

    up: bool = True
    epoch: int = 0
    since: int = 0  # when it closed


@dataclass
class Result:
    decisions: dict[int, dict[int, bytes]]  # validator -> height -> block
    evidence: list[Evidence]
    time_ms: int
    messages: int
    decided_at: dict[int, dict[int, int]] = field(default_factory=dict)  # validator -> h -> ms
    disconnects: int = 0  # connections closed by a full consensus lane or a ping timeout
    tx_dropped: int = 0  # transaction batches a full lane dropped

    def safe(self, honest: set[int]) -> bool:
        heights = {h for v in honest for h in self.decisions[v]}
        return all(
            len({self.decisions[v][h] for v in honest if h in self.decisions[v]}) == 1
            for h in heights
        )

    def reached(self, validators: set[int], height: int) -> bool:
        return all(height in self.decisions[v] for v in validators)

    def height_at(self, validator: int, ms: int) -> int:
        """The highest height `validator` had decided by simulated time `ms` (0: none)."""
        return max((h for h, at in self.decided_at[validator].items() if at <= ms), default=0)


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
        self.decided_at: dict[int, dict[int, int]] = {i: {} for i in range(scenario.validators)}
        self.nodes = [self._new_node(i, k, Persistent(1)) for i, k in enumerate(keys)]
        self.index_of = {k.address: i for i, k in enumerate(keys)}
        for down, at, back in scenario.crashes:
            self._push(at, "crash", down)
            self._push(back, "restart", down)
        self._init_network()

    def _init_network(self) -> None:
        """The bounded models' connections: every validator to every other peer, rogues
        (indices after the validators) to every validator only."""
        s = self.s
        self.bounded = s.send_model != "unbounded"
        everyone = range(s.validators + s.rogues)
        self.peer_lists = [[i for i in everyone if i != v] for v in range(s.validators)]
        self.paused: set[int] = set()
        self.slow = dict(s.slow_readers)
        self.links: dict[tuple[int, int], Link] = {}
        self.connections: dict[tuple[int, int], Connection] = {}
        self.disconnects = 0
        self.tx_dropped = 0
        if self.bounded:
            for a in range(s.validators):
                for b in self._peers(a):
                    self.links[a, b] = Link()
                    self.connections.setdefault((min(a, b), max(a, b)), Connection())
        for who, at, back in s.pauses:
            self._push(at, "pause", who)
            self._push(back, "resume", who)

    def _new_node(self, index: int, key: crypto.PrivateKey, state: Persistent) -> Node:
        c = Core(
            CHAIN_ID, self.validators, key, self.verify, state.height, persistent=copy.copy(state)
        )
        return Node(index, key, c, copy.copy(state))

    def _push(self, at: int, kind: str, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, kind, payload))

    def _peers(self, validator: int) -> list[int]:
        """Who a validator sends to, in the order it sends: every other validator, then
        the rogues (which connect to validators only)."""
        return self.peer_lists[validator]

    # --- the network -----------------------------------------------------------------------
    def _cut(self, a: int, b: int) -> bool:
        for start, end, side in self.s.partitions:
            if start <= self.now < end and ((a in side) != (b in side)):
                return True
        return False

    def _send(self, sender: int, to: int, message: Packet) -> None:
        healed = self.now >= self.s.heal_ms
        if not healed and (self._cut(sender, to) or self.rng.random() < self.s.drop_rate):
            return
        copies = 2 if self.rng.random() < self.s.duplicate_rate else 1
        for _ in range(copies):
            if self.bounded:
                self._enqueue(sender, to, message)
            else:
                low, high = self.s.delay_ms
                self._push(self.now + self.rng.randint(low, high), "deliver", (sender, to, message))

    def _broadcast(self, sender: int, message: Packet) -> None:
        for peer in self._peers(sender):
            self._send(sender, peer, message)

    def _connection(self, a: int, b: int) -> Connection:
        return self.connections[min(a, b), max(a, b)]

    def _enqueue(self, a: int, b: int, message: Packet) -> None:
        """Hand a message for peer `b` to `a`'s side of their connection. Blocking: behind
        `a`'s earlier sends, which stop `a` once one finds its link full. Queued: into the
        peer's lane, never waiting: a full transaction lane drops its oldest, a full
        consensus lane closes the connection (the peer can catch up after it reconnects;
        waiting for it would let it stall us)."""
        if not self._connection(a, b).up:
            return
        if self.s.send_model == "blocking":
            node = self.nodes[a]
            node.outbox.append((b, message))
            self._flush(node)
            return
        link = self.links[a, b]
        if isinstance(message, TxBatch):
            if len(link.txs) >= self.s.tx_queue:
                link.txs.popleft()
                self.tx_dropped += 1
            link.txs.append(message)
        elif len(link.consensus) >= self.s.consensus_queue:
            self._disconnect(a, b)
            return
        else:
            link.consensus.append(message)
        self._write(a, b)

    def _flush(self, node: Node) -> None:
        """blocking: send what waits, in order, until a link is full."""
        while node.outbox:
            to, message = node.outbox[0]
            if self._connection(node.index, to).up:
                if len(self.links[node.index, to].unread) >= self.s.link_buffer:
                    return
                self._put(node.index, to, message)
            node.outbox.popleft()

    def _write(self, a: int, b: int) -> None:
        """queued: `a`'s writer for `b` moves what its lanes hold onto the link while the
        link has room, consensus first. A stopped or crashed process writes nothing."""
        if a in self.paused or not self.nodes[a].up:
            return
        link = self.links[a, b]
        while len(link.unread) < self.s.link_buffer and (link.consensus or link.txs):
            message = link.consensus.popleft() if link.consensus else link.txs.popleft()
            self._put(a, b, message)

    def _put(self, a: int, b: int, message: Packet) -> None:
        link = self.links[a, b]
        link.unread.append(self.now)
        low, high = self.s.delay_ms
        link.arrives = max(self.now + self.rng.randint(low, high), link.arrives)
        self._push(link.arrives, "arrive", (a, b, self._connection(a, b).epoch, message))

    def _arrive(self, payload: tuple[int, int, int, Packet]) -> None:
        a, b, epoch, message = payload
        if epoch != self._connection(a, b).epoch or b >= self.s.validators:
            return  # its connection has closed since, or it reached a rogue, who never reads
        node = self.nodes[b]
        node.inbox.append((a, epoch, message))
        self._work(node)

    def _read(self, node: Node) -> None:
        """Read what has arrived, in order: everything, or a slow reader's few per tick.
        Each read frees room on the sender's link."""
        limit = self.slow.get(node.index)
        while node.inbox and self._can_act(node):
            sender, epoch, message = node.inbox[0]
            if epoch != self._connection(sender, node.index).epoch:
                node.inbox.popleft()  # its connection was closed: the bytes are gone
                continue
            if limit is not None and not self._may_read(node, limit):
                return
            node.inbox.popleft()
            self.links[sender, node.index].unread.popleft()
            self._room(sender, node.index)
            self._deliver(sender, node, message)

    def _may_read(self, node: Node, limit: int) -> bool:
        """A slow reader's budget: `limit` reads per tick, and a wake-up at the next tick
        when it has used them."""
        tick = self.now // READ_TICK_MS
        if tick != node.read_tick:
            node.read_tick, node.reads = tick, 0
        if node.reads < limit:
            node.reads += 1
            return True
        start = (tick + 1) * READ_TICK_MS
        if node.tick_wake != start:
            node.tick_wake = start
            self._push(start, "wake", node.index)
        return False

    def _room(self, a: int, b: int) -> None:
        """`b` read from `a`: a blocked `a` waiting on `b` goes on (as an event of its own,
        so one node's reads never run another's work inside them); a queued writer moves
        the next message up."""
        if self.s.send_model == "queued":
            self._write(a, b)
            return
        sender = self.nodes[a]
        if sender.outbox and sender.outbox[0][0] == b:
            self._push(self.now, "wake", a)

    def _disconnect(self, a: int, b: int) -> None:
        """Close the connection: both links and the lanes are lost; a blocked sender's
        send to the peer fails and it goes on."""
        conn = self._connection(a, b)
        conn.up, conn.since, conn.epoch = False, self.now, conn.epoch + 1
        for x, y in ((a, b), (b, a)):
            if (link := self.links.get((x, y))) is not None:
                link.unread.clear()
                link.consensus.clear()
                link.txs.clear()
                if self.nodes[x].outbox:
                    self._push(self.now, "wake", x)
        if self.nodes[a].up and (b >= self.s.validators or self.nodes[b].up):
            self.disconnects += 1  # closed by a lane or a ping, not by a crash

    def _reconnect(self, a: int, b: int) -> None:
        conn = self._connection(a, b)
        conn.up, conn.epoch = True, conn.epoch + 1
        for x, y in ((a, b), (b, a)):
            if (link := self.links.get((x, y))) is not None:
                link.arrives = self.now

    def _answers(self, index: int) -> bool:
        """Whether `index` would complete a handshake now. A rogue always does; it just
        never reads afterwards."""
        if index >= self.s.validators:
            return True
        return self.nodes[index].up and index not in self.paused

    def _tend(self, node: Node) -> None:
        """On each gossip tick (bounded models): redial closed connections once both ends
        answer and `reconnect_ms` has passed, and (queued) close a connection whose reader
        has left a message unread past the ping timeout."""
        for peer in self._peers(node.index):
            conn = self._connection(node.index, peer)
            link = self.links[node.index, peer]
            if not conn.up:
                if self._answers(peer) and self.now - conn.since >= self.s.reconnect_ms:
                    self._reconnect(node.index, peer)
            elif (
                self.s.send_model == "queued"
                and link.unread
                and self.now - link.unread[0] > self.s.ping_timeout_ms
            ):
                self._disconnect(node.index, peer)

    # --- a node reacting -------------------------------------------------------------------
    def _can_act(self, node: Node) -> bool:
        """Up, not stopped, and not blocked on a full link."""
        return node.up and node.index not in self.paused and not node.outbox

    def _act(self, node: Node, actions: list[Action]) -> None:
        """Carry out the core's actions in order. Actions of actions (a block the core asked
        for, the next height's start) come before the rest, as nested calls would do them;
        what a blocked send holds up waits in `todo`."""
        node.wal = copy.copy(node.core.state)  # written ahead of every send below
        node.todo.extendleft(reversed(actions))
        self._drain(node)

    def _drain(self, node: Node) -> None:
        while node.todo and self._can_act(node):
            self._do(node, node.todo.popleft())

    def _do(self, node: Node, action: Action) -> None:
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

    def _work(self, node: Node) -> None:
        """Let a node do what it can now, in order: its sends waiting for room, the actions
        behind them, the timers that fired while it was stuck, then what it has to read."""
        if not (node.up and node.index not in self.paused):
            return
        self._flush(node)
        self._drain(node)
        while node.deferred and self._can_act(node):
            self._fire(node, node.deferred.pop(0))
        self._read(node)

    def _timer(self, index: int, timer: Timer) -> None:
        """A timer went off: act on it now, or once the node can act again. A down node
        loses its timeouts and keeps its periodic loops ticking."""
        node = self.nodes[index]
        kind, payload = timer
        if not node.up:
            if kind != "timeout":
                self._push(self.now + self._period(kind), kind, payload)
        elif not self._can_act(node):
            if kind == "timeout" or timer not in node.deferred:
                node.deferred.append(timer)
        else:
            self._fire(node, timer)

    def _period(self, kind: str) -> int:
        return GOSSIP_MS if kind == "gossip" else self.s.tx_every_ms

    def _fire(self, node: Node, timer: Timer) -> None:
        kind, payload = timer
        if kind == "timeout":
            self._act(node, node.core.on_timeout(payload.height, payload.round, payload.step))
            return
        if kind == "gossip":
            if self.bounded:
                self._tend(node)
            self._gossip(node)
        else:
            self._broadcast(node.index, TxBatch(node.index))
        self._push(self.now + self._period(kind), kind, payload)

    def _remember(self, node: Node, message: Proposal | Vote) -> None:
        if message.height != node.core.height:
            return
        node.heard.setdefault(message.signature, message)

    def _gossip(self, node: Node) -> None:
        """Re-send this height's messages to every peer: a lossy network delivers eventually,
        and a peer that reconnects catches up (a superset of the node's re-gossip of its own
        proposals and votes). A peer known to be at an earlier height gets the commit it
        needs first, as CometBFT's per-peer gossip sends a lagging peer its block: behind
        this height's votes, a slow reader would reach it only after its ping timeout
        had closed the connection, again and again. (The votes still follow: what a
        node knows of a peer's height may be stale.)"""
        for signature, message in list(node.heard.items()):
            if message.height != node.core.height:
                del node.heard[signature]
        for peer in self._peers(node.index):
            behind = node.peer_heights.get(peer, node.core.height)
            if behind < node.core.height and behind in node.store:
                self._send(node.index, peer, node.store[behind])
            for message in node.heard.values():
                self._send(node.index, peer, message)

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
            for peer in self._peers(node.index):
                self._send(node.index, peer, message if peer % 2 else twin)
            return
        self._broadcast(node.index, message)

    def _decided(self, node: Node, decision: core.Decide) -> None:
        app = self.apps.get(node.index)
        if app is not None:
            app.commit(decision.height, decision.block, decision.commit)
        self.decisions[node.index][decision.height] = decision.block
        self.decided_at[node.index][decision.height] = self.now
        commit = Commit(decision.height, decision.block, decision.commit)
        node.store[decision.height] = commit
        self._broadcast(node.index, commit)
        if decision.height < self.s.heights:
            following = None if app is None else app.validators(decision.height + 1)
            self._act(node, node.core.advance(following))

    def _deliver(self, sender: int, node: Node, message: Packet) -> None:
        if isinstance(message, TxBatch):
            return  # the mempool's business, not consensus's
        c = node.core
        height = message.height
        if not isinstance(message, Commit) and height > node.peer_heights.get(sender, 0):
            node.peer_heights[sender] = height  # a commit may be an old block's relay
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
            if self.s.tx_every_ms:
                self._push(self.s.tx_every_ms, "txs", node.index)
        handlers: dict[str, Callable[[Any], None]] = {
            "deliver": self._delivery,
            "arrive": self._arrive,
            "timeout": lambda p: self._timer(p[0], ("timeout", p[1])),
            "gossip": lambda p: self._timer(p, ("gossip", p)),
            "txs": lambda p: self._timer(p, ("txs", p)),
            "wake": lambda p: self._work(self.nodes[p]),
            "crash": self._crash,
            "restart": self._restart,
            "pause": self.paused.add,
            "resume": self._resume,
        }
        done = until or (lambda sim: sim._all_up_reached())
        while self.queue and not done(self):
            at, _, kind, payload = heapq.heappop(self.queue)
            if at > self.s.max_time_ms:
                break
            self.now = at
            handlers[kind](payload)
        return Result(
            self.decisions,
            self.evidence,
            self.now,
            self.messages,
            self.decided_at,
            self.disconnects,
            self.tx_dropped,
        )

    def _delivery(self, payload: tuple[int, int, Packet]) -> None:
        """unbounded: a message arrives and is read at once, if its reader is up."""
        sender, to, message = payload
        if self.nodes[to].up:
            self._deliver(sender, self.nodes[to], message)

    def _crash(self, index: int) -> None:
        self.nodes[index].up = False
        if self.bounded:  # the process's connections close with it
            for peer in self._peers(index):
                if self._connection(index, peer).up:
                    self._disconnect(index, peer)
        elif self.s.lossy_crashes:
            self._lose_in_flight(index)

    def _restart(self, index: int) -> None:
        old = self.nodes[index]
        node = self._new_node(old.index, old.key, old.wal)
        node.store = old.store
        self.nodes[index] = node
        if self.bounded and self._answers(index):  # it dials its peers as it starts
            for peer in self._peers(index):
                if not self._connection(index, peer).up and self._answers(peer):
                    self._reconnect(index, peer)
        if self.app_factory is not None:
            app = self.apps[node.index] = self.app_factory(node.index, True)
            node.core.validators = app.validators(node.core.height)
        self._act(node, node.core.start())

    def _resume(self, index: int) -> None:
        """A stopped process goes on: its writers write, its timers fire, it reads."""
        self.paused.discard(index)
        if self.s.send_model == "queued" and self.nodes[index].up:
            for peer in self._peers(index):
                self._write(index, peer)
        self._work(self.nodes[index])

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
