"""Mesh gossip for one node, as a sans-I/O state machine, in the way of libp2p gossipsub v1.1.

Flooding (`gossip.py` today) sends every message to every peer: with d peers a node uploads
each block d times and receives it up to d times. Here each topic is spread over a mesh of
bounded degree instead: a node forwards a full message only to its mesh peers of that topic
(about `d`), and tells some other peers, lazily, which message ids it holds (IHAVE), so a
peer whose mesh missed one asks for it (IWANT). The mesh is kept between `d_lo` and `d_hi`
by a heartbeat (GRAFT to add a peer, PRUNE to drop one, with a backoff before a pruned peer
may graft again: `Mesh.pruned` says whom it binds), and peers are scored so that members
which deliver nothing, send invalid messages or break IWANT promises are pruned and, below
the graylist threshold, ignored.

Two additions beyond v1.1 keep duplicates and bytes down: IDONTWANT (from gossipsub v1.2),
sent to mesh peers as soon as a large message arrives, so that a peer which has not yet
started sending its copy skips it (`wanted` is the driver's question at that moment); and a
priority per topic (`PRIORITY`: grid status first) that the driver's send queues honour.

A node's own messages are flood-published to every subscribed peer above the publish
threshold (v1.1's flood publishing), so the first hop does not depend on the mesh.

Nothing here reads a clock, opens a socket or draws entropy of its own: time comes in as
`now` (seconds), randomness from the `random.Random` the driver passes in, and every method
returns the frames to send as `(peer, frame)` pairs. The same code runs in the node and in
the discrete-event simulator (`gridtokenx.netsim`), which is what makes a 10,000-node run
meaningful for the node. A received message is handed back to the driver (`Step.deliver`)
to validate; `accept` then forwards it, ignores it or penalises its sender.

Scoring is a simplified v1.1 score per peer: per topic, time in the mesh (P1, capped), first
deliveries (P2), the mesh delivery deficit (P3: a mesh member earns credit by forwarding a
message, or by announcing it holds one with IDONTWANT, within a window of its first arrival)
and invalid messages (P4, squared); and, across topics, the behaviour penalty (P7, squared:
IWANT promises broken, GRAFTs during a backoff). Counters decay at each heartbeat.

Direct peers (gossipsub's): a validator's configured sentries and fellow validators, a
sentry's validator. Their score never falls below zero, so under heavy load (rate limits,
late deliveries) they are never graylisted, pruned, left out of IHAVE or of flood
publishing; and a consensus message, a certified block or a grid update is forwarded to
every direct peer that takes the topic, in the mesh or not (`DIRECT_TOPICS`), as a sentry
must pass its validator every vote. Blocks and grid updates too: a validator's sentries
are hubs whose meshes fill with full nodes' GRAFTs and trim the validator out, and a
validator pruned by all of them is backed off from each with an empty mesh (at 10,000
nodes, seed 3 with faults, all 20 sentries pruned validator 4 at their first heartbeats;
it got every block through IHAVE, one of them 0.465 s after it was published, when every
other node had it within 0.36 s).
Transactions stay mesh-only: a validator would get every batch from each of its
sentries.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Final, Generic, TypeVar

P = TypeVar("P", bound=Hashable)


class Topic(IntEnum):
    TRANSACTIONS = 0
    CONSENSUS = 1  # proposals and votes: validators and sentries only
    BLOCKS = 2  # certified blocks, to every node
    GRID = 3  # grid status and emergencies: every node, first in every queue


DIRECT_TOPICS: Final = frozenset({Topic.CONSENSUS, Topic.BLOCKS, Topic.GRID})
"""Topics forwarded to every direct peer that takes them, in the mesh or not."""

PRIORITY: Final = {Topic.GRID: 0, Topic.CONSENSUS: 2, Topic.BLOCKS: 3, Topic.TRANSACTIONS: 4}
"""Send order (lower first). Control frames (GRAFT, PRUNE, IHAVE, IWANT, IDONTWANT,
SUBSCRIBE) are `CONTROL_PRIORITY`: after grid updates, before anything large."""
CONTROL_PRIORITY: Final = 1
ID_BYTES: Final = 32
"""Size of a message id on the wire (a tagged hash of the message)."""
HEADER_BYTES: Final = 8


# --- frames ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Publish:
    """A full message."""

    topic: Topic
    id: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class IHave:
    topic: Topic
    ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class IWant:
    ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class IDontWant:
    ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Graft:
    topic: Topic


@dataclass(frozen=True, slots=True)
class Prune:
    topic: Topic
    backoff_s: float


@dataclass(frozen=True, slots=True)
class Subscribe:
    """The topics the sender takes, sent once on connecting (replacing any earlier)."""

    topics: frozenset[Topic]


Frame = Publish | IHave | IWant | IDontWant | Graft | Prune | Subscribe


def frame_size(frame: Frame) -> int:
    """Bytes on the wire, for the driver's bandwidth accounting."""
    if isinstance(frame, Publish):
        return HEADER_BYTES + ID_BYTES + len(frame.data)
    if isinstance(frame, IHave | IWant | IDontWant):
        return HEADER_BYTES + ID_BYTES * len(frame.ids)
    return HEADER_BYTES + 4


def priority(frame: Frame) -> int:
    return PRIORITY[frame.topic] if isinstance(frame, Publish) else CONTROL_PRIORITY


class Validation(Enum):
    VALID = "valid"  # forward to the mesh
    IGNORE = "ignore"  # not now (another height): not forwarded, not penalised, looked at again
    INVALID = "invalid"  # the sender loses score


# --- parameters --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Degree:
    """A topic's mesh size: `d` wanted, kept within [`d_lo`, `d_hi`]; `d_score` kept by score
    when trimming, at least `d_out` outbound (an eclipse takes inbound ones)."""

    d: int
    d_lo: int
    d_hi: int
    d_score: int
    d_out: int

    def __post_init__(self) -> None:
        if not 0 < self.d_lo <= self.d <= self.d_hi or self.d_out > self.d_lo:
            raise ValueError(f"need 0 < d_lo <= d <= d_hi and d_out <= d_lo: {self}")
        if not 0 <= self.d_score <= self.d:
            raise ValueError(f"need 0 <= d_score <= d: {self}")


@dataclass(frozen=True, slots=True)
class Params:
    """gossipsub's knobs; the defaults are go-libp2p's where they apply."""

    d: int = 8
    d_lo: int = 6
    d_hi: int = 12
    d_score: int = 4  # kept by score when trimming an oversized mesh
    d_out: int = 2  # outbound peers a mesh keeps at least (an eclipse takes inbound ones)
    topic_degrees: tuple[tuple[Topic, Degree], ...] = (
        (Topic.GRID, Degree(d=4, d_lo=3, d_hi=6, d_score=2, d_out=1)),
        (Topic.CONSENSUS, Degree(d=5, d_lo=4, d_hi=8, d_score=2, d_out=2)),
        (Topic.BLOCKS, Degree(d=6, d_lo=5, d_hi=10, d_score=3, d_out=2)),
    )
    """Topics with a mesh size of their own. Grid updates and votes are a few hundred bytes:
    no IDONTWANT can overtake them, so every mesh member's copy arrives, and a smaller mesh
    halves the duplicates for a hop or two more, which small frames cross in milliseconds
    (measured in the network simulator: bench/network_bench.py). Consensus runs among a few
    dozen validators and sentries, whose own messages are flood-published anyway. Certified
    blocks travel compact (35 KB at 1,000 TPS), so they too leave a 20 Mbit/s upload in
    14 ms, before most IDONTWANTs arrive: a blocks mesh of 6 (go-libp2p's `D`) instead of 8
    keeps their duplicates under 3 per node (3.29 with 8 at 10,000 nodes)."""
    d_lazy: int = 6  # peers told IHAVE per topic per heartbeat, at least
    gossip_factor: float = 0.25  # ... or this share of the eligible non-mesh peers
    heartbeat_s: float = 1.0
    mcache_windows: int = 5  # heartbeats a message stays available for IWANT
    gossip_windows: int = 3  # heartbeats of ids announced in IHAVE
    seen_ttl_s: float = 120.0
    prune_backoff_s: float = 60.0
    iwant_followup_s: float = 3.0  # a promised message must arrive within this
    max_ihave_ids: int = 5000  # per IHAVE
    max_iwant_per_heartbeat: int = 500  # ids asked of one peer between heartbeats
    max_retransmissions: int = 3  # copies one peer may ask of one message
    idontwant_min_bytes: int = 1024  # smaller messages are cheaper than the notice
    delivery_window_s: float = 3.0  # a mesh member's copy counts as delivery within this
    dont_want_ttl_s: float = 10.0  # an IDONTWANT is kept this long
    gossip_from_window: int = 0  # 1: announce no id younger than one heartbeat
    # scores
    gossip_threshold: float = -10.0  # below: no IHAVE to or from the peer
    publish_threshold: float = -50.0  # below: not flood-published to
    graylist_threshold: float = -80.0  # below: every frame ignored
    decay: float = 0.9  # counters are multiplied by this each heartbeat
    time_in_mesh_weight: float = 0.01  # per second in the mesh ...
    time_in_mesh_cap: float = 1.0  # ... up to this
    first_delivery_weight: float = 0.5
    first_delivery_cap: float = 10.0
    mesh_delivery_weight: float = -4.0  # times the deficit squared
    mesh_activation_s: float = 5.0  # a new member's deficit counts after this in the mesh
    invalid_weight: float = -50.0  # times the invalid count squared
    behaviour_weight: float = -5.0  # times the behaviour penalty squared
    delivery_thresholds: tuple[tuple[Topic, float], ...] = ((Topic.BLOCKS, 1.0),)
    """Topics whose messages flow steadily enough for a mesh member to owe deliveries, and
    the decayed count owed; elsewhere a quiet member is not at fault."""

    def __post_init__(self) -> None:
        Degree(self.d, self.d_lo, self.d_hi, self.d_score, self.d_out)  # checks the default

    def degree(self, topic: Topic) -> Degree:
        for named, degree in self.topic_degrees:
            if named is topic:
                return degree
        return Degree(self.d, self.d_lo, self.d_hi, self.d_score, self.d_out)


@dataclass(slots=True)
class _TopicScore:
    grafted_at: float | None = None  # in the mesh since
    first_deliveries: float = 0.0
    mesh_deliveries: float = 0.0
    invalid: float = 0.0


@dataclass(slots=True)
class _Peer(Generic[P]):
    outbound: bool
    direct: bool = False
    topics: frozenset[Topic] = frozenset()
    scores: dict[Topic, _TopicScore] = field(default_factory=dict)
    behaviour: float = 0.0
    dont_want: dict[bytes, float] = field(default_factory=dict)  # id -> when told
    asked: int = 0  # ids asked of it since the last heartbeat
    served: dict[bytes, int] = field(default_factory=dict)  # id -> copies it asked of us

    def topic(self, topic: Topic) -> _TopicScore:
        score = self.scores.get(topic)
        if score is None:
            score = self.scores[topic] = _TopicScore()
        return score


@dataclass(slots=True)
class _Pending(Generic[P]):
    message: Publish
    source: P
    arrived: float
    senders: set[P]


@dataclass(slots=True)
class Step(Generic[P]):
    """What one received frame made: frames to send now, and new messages to validate (each
    to be answered with `accept`)."""

    sends: list[tuple[P, Frame]] = field(default_factory=list)
    deliver: list[Publish] = field(default_factory=list)


class Mesh(Generic[P]):
    """One node's gossip state. `topics` are the topics it takes (a full node does not
    take consensus messages); `rng` is seeded by the driver."""

    def __init__(
        self, topics: Iterable[Topic], rng: random.Random, params: Params | None = None
    ) -> None:
        self.params = params or Params()
        self.topics = frozenset(topics)
        self.rng = rng
        self.peers: dict[P, _Peer[P]] = {}
        self.mesh: dict[Topic, set[P]] = {topic: set() for topic in self.topics}
        self.degree = {topic: self.params.degree(topic) for topic in Topic}
        self.backoff: dict[tuple[Topic, P], float] = {}
        """Peers that pruned us (or refused our GRAFT): we do not graft them until then."""
        self.pruned: dict[tuple[Topic, P], float] = {}
        """Peers we pruned (or refused): a GRAFT from them before then is refused and costs
        them behaviour score. Unlike go-libp2p, our own prune does not stop *us* from
        grafting the peer again when our mesh runs short, and a peer that pruned us may come
        back: a backoff binds the pruned side only. With it binding both sides, a node whose
        peers are all hubs was left with no mesh for a minute (found at 10,000 nodes in the
        simulator: a validator accepted GRAFTs from all 20 sentries as they connected,
        trimmed 16 with a backoff on both sides, and the 4 it kept then dropped it as their
        own meshes overflowed, so grid updates reached it only by IHAVE, 1.3 s late)."""
        self.seen: dict[bytes, float] = {}  # id -> first seen (insertion order = time order)
        self.first_seen: dict[bytes, float] = {}  # accepted ids, for delivery credit
        self.pending: dict[bytes, _Pending[P]] = {}
        self.held: dict[bytes, set[P]] = {}
        """Valid messages the driver took without forwarding them yet (`accept` with
        `forward` False), with the peers that sent them: `forward` sends one on later."""
        self.cache: dict[bytes, Publish] = {}
        self.windows: list[list[bytes]] = [[]]  # newest first
        self.promises: dict[bytes, tuple[P, float]] = {}  # id -> (peer asked, deadline)
        self.scores: dict[P, float] = {}  # as of the last heartbeat
        self._delivery: dict[Topic, float] = dict(self.params.delivery_thresholds)
        self.traffic: dict[Topic, float] = dict.fromkeys(Topic, 0.0)  # new messages, decayed

    # --- peers ---------------------------------------------------------------------------
    def connect(
        self, peer: P, now: float, outbound: bool, direct: bool = False
    ) -> list[tuple[P, Frame]]:
        """A connection came up: tell the peer our topics (`direct`: a configured peer whose
        score is never held against it, see the module's docstring). Until its own SUBSCRIBE arrives
        the peer counts as taking every topic, and a mesh short of `d_lo` grafts it at
        once: otherwise a message published right after connecting would reach nobody,
        and a node with fewer than `d_lo` peers has every peer in every mesh (so a small
        network spreads messages as a flood would)."""
        state = self.peers[peer] = _Peer(outbound, direct, frozenset(Topic))
        sends: list[tuple[P, Frame]] = [(peer, Subscribe(self.topics))]
        for topic, members in self.mesh.items():
            if len(members) < self.degree[topic].d_lo and self._eligible(topic, peer, now):
                self._join(topic, peer, state, now)
                sends.append((peer, Graft(topic)))
        return sends

    def subscribe(self, topics: Iterable[Topic], now: float) -> list[tuple[P, Frame]]:
        """Take `topics` from now on (a full node voted in as a validator takes consensus
        messages, and leaves them when voted out): every peer is told, a topic left
        drops its mesh, and a topic taken grafts the eligible peers up to `d`."""
        topics = frozenset(topics)
        if topics == self.topics:
            return []
        self.topics = topics
        # the subscription first: a GRAFT for a topic the peer thinks we do not take is
        # refused
        sends: list[tuple[P, Frame]] = [(peer, Subscribe(topics)) for peer in self.peers]
        for topic in [t for t in self.mesh if t not in topics]:
            for peer in list(self.mesh[topic]):
                self._leave(topic, peer, self.peers[peer])
            del self.mesh[topic]
        for topic in topics - self.mesh.keys():
            self.mesh[topic] = set()
            candidates = self.candidates(topic, now)
            wanted = min(len(candidates), self.degree[topic].d)
            for peer in self.rng.sample(candidates, wanted):
                self._graft(topic, peer, now, sends)
        return sends

    def members(self, topic: Topic) -> frozenset[P]:
        """The topic's mesh (empty for a topic this node does not take)."""
        return frozenset(self.mesh.get(topic, ()))

    def disconnect(self, peer: P) -> None:
        self.peers.pop(peer, None)
        self.scores.pop(peer, None)
        for members in self.mesh.values():
            members.discard(peer)

    def score(self, peer: P, now: float) -> float:
        """The peer's score now (the heartbeat caches it in `scores`)."""
        state = self.peers.get(peer)
        if state is None:
            return 0.0
        p = self.params
        total = p.behaviour_weight * state.behaviour * state.behaviour
        for topic, ts in state.scores.items():
            total += p.first_delivery_weight * min(ts.first_deliveries, p.first_delivery_cap)
            total += p.invalid_weight * ts.invalid * ts.invalid
            if ts.grafted_at is not None:
                in_mesh = now - ts.grafted_at
                total += min(p.time_in_mesh_weight * in_mesh, p.time_in_mesh_cap)
                owed = self._delivery.get(topic)
                if owed is not None and in_mesh >= p.mesh_activation_s:
                    # owed only what the topic carried: a quiet topic costs nobody
                    deficit = min(owed, self.traffic[topic]) - ts.mesh_deliveries
                    if deficit > 0:
                        total += p.mesh_delivery_weight * deficit * deficit
        return max(total, 0.0) if state.direct else total

    def _current(self, peer: P) -> float:
        return self.scores.get(peer, 0.0)

    # --- publishing ----------------------------------------------------------------------
    def publish(self, topic: Topic, message_id: bytes, data: bytes, now: float) -> list[
        tuple[P, Frame]
    ]:  # fmt: skip
        """Our own message: to every peer that takes the topic and is above the publish
        threshold (flood publishing), and into the cache for IWANT."""
        if message_id in self.seen:
            return []
        message = Publish(topic, message_id, data)
        self._remember(message, now)
        threshold = self.params.publish_threshold
        return [
            (peer, message)
            for peer, state in self.peers.items()
            if topic in state.topics and self._current(peer) >= threshold
        ]

    def relay(
        self, topic: Topic, message_id: bytes, data: bytes, now: float
    ) -> list[tuple[P, Frame]]:
        """A message the driver made from what peers sent, after its own checks (a node
        re-batches the transactions its mempool admitted): to the topic's mesh only, as a
        forwarded message goes, and into the cache for IWANT."""
        if message_id in self.seen or topic not in self.mesh:
            return []
        self._remember(Publish(topic, message_id, data), now)
        return [
            (peer, self.cache[message_id])
            for peer in self._targets(topic)
            if message_id not in self.peers[peer].dont_want
        ]

    def _targets(self, topic: Topic) -> Iterable[P]:
        """Whom a forwarded message of `topic` goes to: its mesh, and for `DIRECT_TOPICS`
        every direct peer that takes it."""
        members = self.mesh.get(topic, set())
        if topic not in DIRECT_TOPICS:
            return members
        direct = [peer for peer, state in self.peers.items()
                  if state.direct and topic in state.topics and peer not in members]  # fmt: skip
        return [*members, *direct] if direct else members

    def _remember(self, message: Publish, now: float) -> None:
        self.traffic[message.topic] += 1
        self.seen[message.id] = now
        self.first_seen[message.id] = now
        self.cache[message.id] = message
        self.windows[0].append(message.id)

    def wanted(self, peer: P, message_id: bytes) -> bool:
        """Whether a queued copy of a message should still go to `peer` (False once the
        peer said IDONTWANT): the driver asks as the frame reaches the head of its queue."""
        state = self.peers.get(peer)
        return state is not None and message_id not in state.dont_want

    # --- receiving -----------------------------------------------------------------------
    def receive(self, peer: P, frame: Frame, now: float) -> Step[P]:
        step: Step[P] = Step()
        state = self._heard(peer)
        if state is None:
            return step
        if isinstance(frame, Publish):
            self._on_publish(peer, state, frame, now, step)
        elif isinstance(frame, IDontWant):
            for message_id in frame.ids[: self.params.max_ihave_ids]:
                state.dont_want[message_id] = now
                self._credit(peer, state, message_id, now)
        elif isinstance(frame, IHave):
            self._on_ihave(peer, state, frame, now, step)
        elif isinstance(frame, IWant):
            self._on_iwant(peer, state, frame, step)
        elif isinstance(frame, Graft):
            self._on_graft(peer, state, frame.topic, now, step)
        elif isinstance(frame, Prune):
            self._leave(frame.topic, peer, state)
            self.backoff[frame.topic, peer] = now + max(frame.backoff_s, 0.0)
            self.pruned.pop((frame.topic, peer), None)  # it chose to leave: it may come back
        elif isinstance(frame, Subscribe):
            self._on_subscribe(peer, state, frame.topics, now, step)
        return step

    def again(self, peer: P, message_id: bytes, now: float) -> bool:
        """A copy of a message seen already, taken as `receive` takes it (its sender joins
        the senders the forward skips, and earns a mesh member its delivery credit), or a
        frame of a peer `receive` ignores; False for anything else, which goes to
        `receive`. The driver asks this first with the id alone: in a mesh most copies
        are duplicates (a validator of four gets each vote three times, 12 of the 21
        frames a height brings), and each cost a `Publish` and a `Step` for nothing
        (bench/height_bench.py, December 2026)."""
        state = self._heard(peer)
        if state is None:
            return True
        if message_id not in self.seen:
            return False
        self._again(peer, state, message_id, now)
        return True

    def _heard(self, peer: P) -> _Peer[P] | None:
        """The peer's state, or None when its frames are ignored (unknown, or graylisted:
        scored below `graylist_threshold`)."""
        state = self.peers.get(peer)
        if state is None or self._current(peer) < self.params.graylist_threshold:
            return None
        return state

    def _again(self, peer: P, state: _Peer[P], message_id: bytes, now: float) -> None:
        pending = self.pending.get(message_id)
        if pending is not None:
            pending.senders.add(peer)
        elif (held := self.held.get(message_id)) is not None:
            held.add(peer)
        self._credit(peer, state, message_id, now)

    def _on_subscribe(
        self, peer: P, state: _Peer[P], topics: frozenset[Topic], now: float, step: Step[P]
    ) -> None:
        """Learn the peer's topics; a mesh short of `d_lo` takes it at once rather than at
        the next heartbeat (a node that just started or came back needs its mesh now)."""
        state.topics = topics
        for topic, members in self.mesh.items():
            if topic not in topics:
                if peer in members:
                    self._leave(topic, peer, state)
            elif (
                peer not in members  # grafted on connecting already: one GRAFT is enough
                and len(members) < self.degree[topic].d_lo
                and self._eligible(topic, peer, now)
            ):
                self._join(topic, peer, state, now)
                step.sends.append((peer, Graft(topic)))

    def _credit(self, peer: P, state: _Peer[P], message_id: bytes, now: float) -> None:
        """A mesh member forwarded, or announced, a message soon after its first arrival."""
        first = self.first_seen.get(message_id)
        message = self.cache.get(message_id)
        pending = self.pending.get(message_id)
        topic = message.topic if message is not None else (
            pending.message.topic if pending is not None else None
        )  # fmt: skip
        if topic is None or first is None or now - first > self.params.delivery_window_s:
            return
        if peer in self.mesh.get(topic, ()):
            state.topic(topic).mesh_deliveries += 1

    def _on_publish(
        self, peer: P, state: _Peer[P], message: Publish, now: float, step: Step[P]
    ) -> None:
        message_id = message.id
        if message_id in self.seen:
            self._again(peer, state, message_id, now)
            return
        if message.topic not in self.topics:
            return  # not ours to carry
        self.seen[message_id] = now
        self.first_seen[message_id] = now
        self.traffic[message.topic] += 1
        self.promises.pop(message_id, None)
        self.pending[message_id] = _Pending(message, peer, now, {peer})
        topic_score = state.topic(message.topic)
        topic_score.first_deliveries += 1
        if peer in self.mesh[message.topic]:
            topic_score.mesh_deliveries += 1
        if len(message.data) >= self.params.idontwant_min_bytes:
            # To every mesh member, and the source too where members owe deliveries (blocks):
            # the notice is also its receipt, the delivery credit that keeps a member
            # downstream of us from looking idle. Elsewhere (transaction batches) the source
            # would only read a frame that tells it nothing: it never sends a message twice.
            notice = IDontWant((message_id,))
            owed = message.topic in self._delivery
            step.sends.extend((member, notice) for member in self._targets(message.topic)
                              if owed or member != peer)  # fmt: skip
        step.deliver.append(message)

    def accept(self, message_id: bytes, outcome: Validation, now: float, forward: bool = True
               ) -> list[tuple[P, Frame]]:  # fmt: skip
        """The driver's verdict on a delivered message: forward a valid one to the mesh
        (not to peers that sent it or said IDONTWANT; with `forward` False it is kept for
        IWANT and held, with its senders, until the driver forwards it (`forward`) or
        relays what it makes of it itself); forget an ignored one (a later copy is looked
        at again); penalise the sender of an invalid one."""
        pending = self.pending.pop(message_id, None)
        if pending is None:
            return []
        message = pending.message
        if outcome is Validation.IGNORE:
            self.seen.pop(message_id, None)
            self.first_seen.pop(message_id, None)
            return []
        if outcome is Validation.INVALID:
            state = self.peers.get(pending.source)
            if state is not None:
                topic_score = state.topic(message.topic)
                topic_score.invalid += 1
                topic_score.first_deliveries = max(0.0, topic_score.first_deliveries - 1)
            return []
        self.cache[message_id] = message
        self.windows[0].append(message_id)
        if not forward:
            self.held[message_id] = pending.senders
            return []
        return self._forwards(message, pending.senders)

    def forward(self, message_id: bytes) -> list[tuple[P, Frame]] | None:
        """Forward a message held by `accept` (the driver's own checks passed later, as a
        node's mempool admits a transaction batch after `accept`): to the mesh, not to the
        peers that sent it, before or since, nor to those that said IDONTWANT. None when
        it is not held (never accepted, forwarded already, or out of the cache)."""
        senders = self.held.pop(message_id, None)
        message = self.cache.get(message_id)
        if senders is None or message is None:
            return None
        return self._forwards(message, senders)

    def _forwards(self, message: Publish, senders: set[P]) -> list[tuple[P, Frame]]:
        sends: list[tuple[P, Frame]] = []
        peers = self.peers
        for member in self._targets(message.topic):
            if member in senders:
                continue
            state = peers.get(member)
            if state is not None and message.id not in state.dont_want:
                sends.append((member, message))
        return sends

    def _on_ihave(self, peer: P, state: _Peer[P], frame: IHave, now: float, step: Step[P]) -> None:
        p = self.params
        if self._current(peer) < p.gossip_threshold or frame.topic not in self.topics:
            return
        budget = p.max_iwant_per_heartbeat - state.asked
        wanted: list[bytes] = []
        for message_id in frame.ids[: p.max_ihave_ids]:
            if len(wanted) >= budget:
                break
            if message_id in self.seen or message_id in self.promises:
                continue
            wanted.append(message_id)
            self.promises[message_id] = (peer, now + p.iwant_followup_s)
        if wanted:
            state.asked += len(wanted)
            step.sends.append((peer, IWant(tuple(wanted))))

    def _on_iwant(self, peer: P, state: _Peer[P], frame: IWant, step: Step[P]) -> None:
        if self._current(peer) < self.params.gossip_threshold:
            return
        for message_id in frame.ids[: self.params.max_ihave_ids]:
            message = self.cache.get(message_id)
            if message is None:
                continue
            copies = state.served.get(message_id, 0)
            if copies >= self.params.max_retransmissions:
                continue
            state.served[message_id] = copies + 1
            step.sends.append((peer, message))

    def _on_graft(self, peer: P, state: _Peer[P], topic: Topic, now: float, step: Step[P]) -> None:
        p = self.params
        members = self.mesh.get(topic)
        if members is None or peer in members:
            return
        backed_off = now < self.pruned.get((topic, peer), -1.0)
        if backed_off:
            state.behaviour += 1  # grafting back while told to wait: v1.1 penalises it
        if (
            backed_off
            or self._current(peer) < 0
            or topic not in state.topics
            or (len(members) >= self.degree[topic].d_hi and not state.outbound)  # room kept
        ):
            self.pruned[topic, peer] = now + p.prune_backoff_s
            step.sends.append((peer, Prune(topic, p.prune_backoff_s)))
            return
        # A peer that pruned us grafts again within its own backoff: taken, as it may now be
        # short of peers, but without a fresh start, so leaving and coming back cannot
        # dodge the mesh delivery deficit (P3).
        returning = now < self.backoff.pop((topic, peer), -1.0)
        self._join(topic, peer, state, now, returning)

    def _join(
        self, topic: Topic, peer: P, state: _Peer[P], now: float, returning: bool = False
    ) -> None:
        """`returning`: the peer left on its own within its backoff; its delivery duty
        resumes at once, with the credit it had."""
        self.mesh[topic].add(peer)
        self.pruned.pop((topic, peer), None)  # asked back, or back on its own terms
        score = state.topic(topic)
        if returning:
            score.grafted_at = now - self.params.mesh_activation_s
            return
        score.grafted_at = now
        score.mesh_deliveries = 0.0

    def _leave(self, topic: Topic, peer: P, state: _Peer[P]) -> None:
        members = self.mesh.get(topic)
        if members is not None and peer in members:
            members.discard(peer)
            state.topic(topic).grafted_at = None

    # --- heartbeat -----------------------------------------------------------------------
    def heartbeat(self, now: float) -> list[tuple[P, Frame]]:
        """Mesh maintenance, lazy gossip and bookkeeping, every `heartbeat_s`."""
        p = self.params
        sends: list[tuple[P, Frame]] = []
        self._check_promises(now)
        self.scores = {peer: self.score(peer, now) for peer in self.peers}
        for topic, members in self.mesh.items():
            self._maintain(topic, members, now, sends)
            self._gossip(topic, members, sends)
        self._decay_and_expire(now)
        self.windows.insert(0, [])
        for old in self.windows[p.mcache_windows :]:
            for message_id in old:
                self.cache.pop(message_id, None)
                self.held.pop(message_id, None)
        del self.windows[p.mcache_windows :]
        return sends

    def _check_promises(self, now: float) -> None:
        broken = [mid for mid, (_, deadline) in self.promises.items() if deadline <= now]
        for message_id in broken:
            peer, _ = self.promises.pop(message_id)
            state = self.peers.get(peer)
            if state is not None:
                state.behaviour += 1

    def _eligible(self, topic: Topic, peer: P, now: float) -> bool:
        state = self.peers[peer]
        return (
            topic in state.topics
            and self.scores.get(peer, 0.0) >= 0
            and now >= self.backoff.get((topic, peer), -1.0)
        )

    def candidates(self, topic: Topic, now: float) -> list[P]:
        """Peers outside the topic's mesh that a heartbeat could graft now."""
        members = self.mesh.get(topic, set())
        return [p for p in self.peers if p not in members and self._eligible(topic, p, now)]

    def _maintain(
        self, topic: Topic, members: set[P], now: float, sends: list[tuple[P, Frame]]
    ) -> None:
        p = self.degree[topic]
        for peer in [m for m in members if self.scores.get(m, 0.0) < 0]:
            self._prune(topic, peer, now, sends)
        if len(members) < p.d_lo:
            candidates = self.candidates(topic, now)
            for peer in self.rng.sample(candidates, min(len(candidates), p.d - len(members))):
                self._graft(topic, peer, now, sends)
        if len(members) > p.d_hi:
            ranked = sorted(members, key=lambda m: self.scores.get(m, 0.0), reverse=True)
            keep = ranked[: p.d_score]
            rest = ranked[p.d_score :]
            self.rng.shuffle(rest)
            keep += rest[: p.d - p.d_score]
            outbound = [m for m in keep if self.peers[m].outbound]
            if len(outbound) < p.d_out:  # swap in outbound members from those dropped
                spare = [m for m in rest[p.d - p.d_score :] if self.peers[m].outbound]
                inbound_kept = [m for m in keep[p.d_score :] if not self.peers[m].outbound]
                for add, drop in zip(spare, inbound_kept[::-1], strict=False):
                    if len(outbound) >= p.d_out:
                        break
                    keep.remove(drop)
                    keep.append(add)
                    outbound.append(add)
            kept = set(keep)
            for peer in [m for m in members if m not in kept]:
                self._prune(topic, peer, now, sends)
        outbound_count = sum(1 for m in members if self.peers[m].outbound)
        if outbound_count < p.d_out:
            candidates = [
                peer for peer, state in self.peers.items()
                if state.outbound and peer not in members and self._eligible(topic, peer, now)
            ]  # fmt: skip
            need = min(len(candidates), p.d_out - outbound_count)
            for peer in self.rng.sample(candidates, need):
                self._graft(topic, peer, now, sends)

    def _graft(self, topic: Topic, peer: P, now: float, sends: list[tuple[P, Frame]]) -> None:
        self._join(topic, peer, self.peers[peer], now)
        sends.append((peer, Graft(topic)))

    def _prune(self, topic: Topic, peer: P, now: float, sends: list[tuple[P, Frame]]) -> None:
        self._leave(topic, peer, self.peers[peer])
        self.pruned[topic, peer] = now + self.params.prune_backoff_s
        sends.append((peer, Prune(topic, self.params.prune_backoff_s)))

    def _gossip(self, topic: Topic, members: set[P], sends: list[tuple[P, Frame]]) -> None:
        p = self.params
        # The peers first: where every peer is in the mesh (a few validators), there is no
        # one to tell, and the ids need not be gathered from every window at every heartbeat.
        candidates = [
            peer
            for peer, state in self.peers.items()
            if peer not in members
            and topic in state.topics
            and self.scores.get(peer, 0.0) >= p.gossip_threshold
        ]
        if not candidates:
            return
        ids = [
            mid
            for window in self.windows[p.gossip_from_window : p.gossip_windows]
            for mid in window
            if (message := self.cache.get(mid)) is not None and message.topic is topic
        ]
        if not ids:
            return
        count = max(p.d_lazy, int(p.gossip_factor * len(candidates)))
        announced = IHave(topic, tuple(ids[-p.max_ihave_ids :]))
        for peer in self.rng.sample(candidates, min(count, len(candidates))):
            sends.append((peer, announced))

    def _decay_and_expire(self, now: float) -> None:
        p = self.params
        horizon = now - p.delivery_window_s
        forget = now - p.dont_want_ttl_s
        for topic in self.traffic:
            self.traffic[topic] *= p.decay
        for state in self.peers.values():
            state.behaviour *= p.decay
            state.asked = 0
            for ts in state.scores.values():
                ts.first_deliveries *= p.decay
                ts.mesh_deliveries *= p.decay
                ts.invalid *= p.decay
            if state.dont_want:
                state.dont_want = {m: t for m, t in state.dont_want.items() if t > forget}
            if state.served:
                state.served = {m: c for m, c in state.served.items() if m in self.cache}
        expiry = now - p.seen_ttl_s
        while self.seen:
            oldest = next(iter(self.seen))
            if self.seen[oldest] > expiry:
                break
            del self.seen[oldest]
        while self.first_seen:
            oldest = next(iter(self.first_seen))
            if self.first_seen[oldest] > horizon:
                break
            del self.first_seen[oldest]
        for backoffs in (self.backoff, self.pruned):
            for key in [k for k, until in backoffs.items() if until <= now]:
                del backoffs[key]
