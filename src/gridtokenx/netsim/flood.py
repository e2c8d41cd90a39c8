"""The baseline: flood gossip as `p2p/gossip.py` does it today, behind the mesh's interface.

Every message goes once to every connected peer (a seen cache stops loops): a node's own
to all its peers, a received one, once valid, to all but those it came from. No topics,
no control frames, no heartbeat.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from gridtokenx.p2p.mesh import Frame, Publish, Step, Topic, Validation

P = TypeVar("P", bound=Hashable)


class Flood(Generic[P]):
    def __init__(self) -> None:
        self.peers: dict[P, bool] = {}
        self.seen: set[bytes] = set()
        self.pending: dict[bytes, tuple[Publish, set[P]]] = {}

    def connect(self, peer: P, now: float, outbound: bool, direct: bool = False) -> list[
        tuple[P, Frame]
    ]:  # fmt: skip
        self.peers[peer] = outbound
        return []

    def disconnect(self, peer: P) -> None:
        self.peers.pop(peer, None)

    def publish(self, topic: Topic, message_id: bytes, data: bytes, now: float) -> list[
        tuple[P, Frame]
    ]:  # fmt: skip
        self.seen.add(message_id)
        message = Publish(topic, message_id, data)
        return [(peer, message) for peer in self.peers]

    def receive(self, peer: P, frame: Frame, now: float) -> Step[P]:
        step: Step[P] = Step()
        if not isinstance(frame, Publish):
            return step
        if frame.id in self.seen:
            pending = self.pending.get(frame.id)
            if pending is not None:
                pending[1].add(peer)
            return step
        self.seen.add(frame.id)
        self.pending[frame.id] = (frame, {peer})
        step.deliver.append(frame)
        return step

    def accept(self, message_id: bytes, outcome: Validation, now: float) -> list[
        tuple[P, Frame]
    ]:  # fmt: skip
        message, senders = self.pending.pop(message_id)
        if outcome is not Validation.VALID:
            return []
        return [(peer, message) for peer in self.peers if peer not in senders]

    def heartbeat(self, now: float) -> list[tuple[P, Frame]]:
        return []

    def wanted(self, peer: P, message_id: bytes) -> bool:
        return peer in self.peers
