"""Where the day's transactions go: the `Sink` protocol and the in-process Sandbox sink.

The driver submits pre-signed bytes and moves time forward, so the same day runs against a
single-process ledger here and against a devnet through the SDK (`devnet_sink.DevnetSink`:
batches, the chain's clock, finality). The storyline also needs two facts only the chain
knows, so a sink answers two reads of committed state (`ChainReader`): the id its fee
proposal got and the certificates a member holds. Everything else the day decides alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from gridtokenx.ledger import accounts, certificates, chain_info, governance, registry, transition
from gridtokenx.ledger.context import Event
from gridtokenx.ledger.market import auction_clearing, queries
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.wire import errors, tx


class ChainReader(Protocol):
    """Reads of committed state: what the day cannot know in advance."""

    def certificates_of(self, address: bytes) -> list[int]:
        """Ids of the active (not retired) certificates `address` holds, ascending."""

    def find_proposal(self, proposer: bytes, title: str) -> int | None:
        """The newest open proposal `proposer` submitted with `title`, if any: the day finds
        its own proposal's id this way rather than assuming the chain's counter."""


class Sink(ChainReader, Protocol):
    def submit(self, txs: list[bytes]) -> None:
        """Send signed transactions, in order, to be included at the current chain time."""

    def advance_to(self, unix_time: int) -> None:
        """Return once the chain's clock has reached `unix_time` (blocks before it closed)."""

    def wait_final(self) -> None:
        """Return once everything submitted so far is final (committed or refused)."""

    def next_block(self) -> None:
        """Return once one more block is committed (the fee vote's heights pass this way)."""

    def chain_time(self) -> int:
        """The latest committed block's time: whether the day is still on time."""


Sign = Callable[[tx.SubmitAuctionClearing], bytes]


@runtime_checkable
class AuctionClearing(Protocol):
    """How a day-ahead auction gets cleared once its gate has passed."""

    def clear_auction(self, interval_start: int, sign: Sign) -> None:
        """Return once the interval's auction is cleared: the in-process sink solves it and
        submits the certificate, signed by `sign`; a devnet's validators clear it by
        themselves (node/auction_clearer.py) and the devnet sink waits for the result."""

    def next_nonce(self, address: bytes) -> int:
        """The nonce the chain expects next from `address`: the validators' nodes sign
        their clearings with the authorities' keys, so the day reads where they left off."""


class SimulationRejected(RuntimeError):
    """The ledger refused a transaction the simulator built: a bug in the model (or in the
    ledger), never something to skip, because the sender's later nonces would all fail."""

    def __init__(self, index: int, stx: tx.SignedTransaction, rejection: errors.Rejection):
        body = type(stx.tx.body).__name__
        super().__init__(f"transaction {index} ({body}) refused: {rejection.code}: {rejection}")
        self.code = rejection.code


class LateForTheChain(RuntimeError):
    """The chain's clock passed a deadline of the day (a gate closure, the end of the
    setup interval) before the transactions due by then were sent: on an accelerated
    devnet, the machine did not keep up with the clock's speed."""

    def __init__(self, what: str, deadline: int, chain_time: int) -> None:
        super().__init__(f"{what} were due by chain time {deadline} but the chain was "
                         f"already at {chain_time} ({chain_time - deadline} s late)")  # fmt: skip
        self.what, self.deadline, self.chain_time = what, deadline, chain_time


class SandboxSink:
    """Applies each transaction at once in a `Sandbox`; `advance_to` ends the block (gate
    closure, settlement) and starts the next one at the given time."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.events: list[Event] = []
        self.committed = 0

    def submit(self, txs: list[bytes]) -> None:
        for raw in txs:
            stx = tx.decode(raw)
            try:
                self.events += transition.apply(self.sandbox.state, stx, self.sandbox.context)
            except errors.Rejection as exc:
                raise SimulationRejected(self.committed, stx, exc) from exc
            self.committed += 1

    def advance_to(self, unix_time: int) -> None:
        if unix_time <= self.sandbox.time:
            raise ValueError(f"time {unix_time} is not after the sandbox's {self.sandbox.time}")
        self.events += self.sandbox.advance(unix_time - self.sandbox.time)

    def wait_final(self) -> None:
        """Everything applied is final in a single-process ledger."""

    def next_block(self) -> None:
        """A block one second later."""
        self.advance_to(self.sandbox.time + 1)

    def chain_time(self) -> int:
        return self.sandbox.time

    def next_nonce(self, address: bytes) -> int:
        """The nonce the ledger expects next from `address` (0 for an account not yet open)."""
        account = accounts.get_account(self.sandbox.state, address)
        return 0 if account is None else account.nonce

    def certificates_of(self, address: bytes) -> list[int]:
        """From every certificate by id: a few reads for what a simulated day issues."""
        state = self.sandbox.state
        return [c.id for c in certificates.issued(state) if c.owner == address and not c.retired]

    def find_proposal(self, proposer: bytes, title: str) -> int | None:
        """From the ledger's list of open proposals (a handful), not a scan."""
        found = [
            i
            for i in governance.active_ids(self.sandbox.state)
            if (p := governance.get_proposal(self.sandbox.state, i)) is not None
            and p.proposer == proposer
            and p.title == title
        ]
        return max(found, default=None)

    def clear_auction(self, interval_start: int, sign: Sign) -> None:
        """Solve with the validators' own solver (HiGHS) and apply the certificate."""
        from gridtokenx.node import auction_solver  # HiGHS loads on the first clearing

        state = self.sandbox.state
        inst, _ = auction_clearing.instance(state.overlay(), interval_start,
                                            chain_info.params(state))  # fmt: skip
        self.submit([sign(auction_solver.solve(inst, interval_start).body)])

    # --- what the manipulating agents read (simulator.manipulators.MarketReader) ----------
    def open_orders_of(self, address: bytes) -> list[int]:
        return list(queries.open_order_ids(self.sandbox.state, address))

    def resting(self, interval: int) -> list[tuple[tx.Side, int, int]]:
        state = self.sandbox.state
        out = []
        for zone in registry.zone_index(state.overlay()).zones:
            for oid in queries.book_order_ids(state, zone, interval):
                found = queries.order(state, oid)
                if found is not None:
                    out.append((found.side, found.price, found.remaining_wh))
        return out

    def traded(self, interval: int) -> list[tuple[int, int]]:
        return [
            (t.quantity_wh, t.price) for t in queries.interval_trades(self.sandbox.state, interval)
        ]
