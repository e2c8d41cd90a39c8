"""The ERC surveillance service as any full node runs it: replay the store, then follow
each commit.

`Follower.catch_up` feeds the stored heights to the engine (from the store's first
unpruned height), and `Follower.on_commit` has the node's commit-listener signature, so
the API hooks it where the node hands out committed blocks. New alerts go to the
`subscribe`d callbacks (the WebSocket hub). The alerts of a chain are a function of its
blocks and the settings, so a follower started late, or on another node, holds the same
alerts under the same ids; heights pruned from the store before the follower started are
not judged (the alerts list says from which height it follows)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gridtokenx.chain.blocks import Receipt
from gridtokenx.ledger import chain_info
from gridtokenx.ledger.context import Event
from gridtokenx.ledger.state import State
from gridtokenx.storage.store import Store
from gridtokenx.surveillance import follow
from gridtokenx.surveillance.alerts import Alert
from gridtokenx.surveillance.engine import Surveillance
from gridtokenx.surveillance.settings import SurveillanceSettings
from gridtokenx.wire import tx

AlertSink = Callable[[list[Alert]], None]


Decoded = Callable[[int], Sequence[tx.SignedTransaction] | None]
"""A height's transactions as the node decoded them (`Application.committed_txs`)."""


class Follower:
    def __init__(
        self,
        state: State,
        settings: SurveillanceSettings | None = None,
        decoded: Decoded | None = None,
    ) -> None:
        """`decoded`: where `on_commit` finds the committed block's transactions already
        decoded by the node, which executed it: without it every committed transaction is
        decoded a second time on every node that runs surveillance."""
        self.engine = Surveillance(chain_info.params(state), follow.trade_orders(state), settings)
        self._decoded = decoded
        self.from_height = 0  # the first height followed (0: none yet)
        self._subscribers: list[AlertSink] = []

    @property
    def alerts(self) -> list[Alert]:
        return self.engine.alerts

    @property
    def height(self) -> int:
        return self.engine.height

    def subscribe(self, sink: AlertSink) -> None:
        self._subscribers.append(sink)

    def catch_up(self, store: Store, to_height: int | None = None) -> int:
        """Judge the stored heights not yet followed; returns the alerts raised."""
        last = store.height() if to_height is None else to_height
        first = self.engine.height + 1 if self.engine.height else max(1, store.pruned_below())
        raised = 0
        for height in range(first, last + 1):
            raised += len(self._take(follow.from_store(store, height)))
        return raised

    def start_at(self, height: int) -> None:
        """Follow from `height` on without judging what came before (a store whose older
        heights lack their receipts cannot be replayed)."""
        self.engine.height = height - 1

    def on_commit(
        self, height: int, block: bytes, receipts: list[Receipt], end_events: list[Event]
    ) -> None:
        if height <= self.engine.height:
            return  # already replayed from the store
        signed = None if self._decoded is None else self._decoded(height)
        self._take(follow.from_commit(height, block, receipts, end_events, signed))

    def _take(self, block: follow.CommittedBlock) -> list[Alert]:
        if not self.from_height:
            self.from_height = block.height
        new = self.engine.observe(block)
        if new:
            for sink in self._subscribers:
                sink(new)
        return new
