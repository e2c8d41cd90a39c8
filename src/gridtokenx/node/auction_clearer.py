"""A validator clears the day-ahead auctions whose gate has passed, with no manual step.

Every validator node runs this: once the last committed block is past an interval's auction
gate (and before its clearing deadline), it solves the auction (HiGHS, in a worker thread,
off the loop and off consensus) and submits the certificate as its own transaction. The
first one a block includes clears the auction; the others are refused as already cleared
and cost nothing but their check. Redundancy is what makes it robust: no single proposer's
failure leaves an auction uncleared, and a certificate that some node got wrong is simply
refused while another's passes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from gridtokenx.ledger import chain_info, registry
from gridtokenx.ledger.market import auction, auction_clearing
from gridtokenx.wire import tx

if TYPE_CHECKING:
    from gridtokenx.node.runtime import Node

_log = logging.getLogger(__name__)
RETRY_S = 10.0  # wall seconds before the same interval is tried again


class AuctionClearer:
    def __init__(self, node: Node, every: float = 0.5) -> None:
        self.node = node
        self.every = every
        self._tried: dict[int, float] = {}  # interval -> loop time of the last submission

    def due(self) -> list[int]:
        """Intervals whose auction this node should clear now."""
        app = self.node.app
        state = app.state.overlay()
        if registry.authority_of(state, self.node.key.address) is None:
            return []
        p = chain_info.params(state)
        a = auction.auction_params(state)
        found = []
        for start in auction.active(state):
            opens = auction.gate(start, p, a)
            record = auction.get_interval(state, start)
            if record is None or record.status is not auction.AuctionStatus.OPEN:
                continue
            if opens <= app.last_time < opens + a.clearing_deadline_seconds:
                found.append(start)
        return found

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.node.halted:  # bounded by the node's life
            await asyncio.sleep(self.every)
            for start in self.due():
                if loop.time() - self._tried.get(start, -RETRY_S) < RETRY_S:
                    continue
                self._tried[start] = loop.time()
                await self._clear(start)

    async def _clear(self, start: int) -> None:
        from gridtokenx.node import auction_solver  # HiGHS loads on a node's first clearing

        app = self.node.app
        state = app.state.overlay()
        inst, _ = auction_clearing.instance(state, start, chain_info.params(state))
        try:
            solution = await asyncio.to_thread(auction_solver.solve, inst, start)
        except auction_solver.SolveError:
            _log.exception("could not solve the auction of %d", start)
            return
        key = self.node.key
        address = key.address
        nonce = (app.nonce_of(address) or 0) + len(app.mempool.queued_before(address, 2**62))
        raw = tx.make(key, app.chain_id, nonce, solution.body).encode()
        (admission,) = await self.node.admit([raw])
        _log.info(
            "auction of %d solved (welfare %.0f satang): submitted, %s",
            start,
            float(solution.welfare) / 1000,
            admission.code or "admitted",
        )
