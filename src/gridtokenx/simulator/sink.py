"""Where the day's transactions go: the `Sink` protocol and the in-process Sandbox sink.

The driver only submits pre-signed bytes and moves time forward, so the same day runs
against a single-process ledger here and against a devnet through the SDK
(`devnet_sink.DevnetSink`: batches, the chain's clock, finality).
"""

from __future__ import annotations

from typing import Protocol

from gridtokenx import accounts, errors, ledger, tx
from gridtokenx.context import Event
from gridtokenx.sandbox import Sandbox


class Sink(Protocol):
    def submit(self, txs: list[bytes]) -> None:
        """Send signed transactions, in order, to be included at the current chain time."""

    def advance_to(self, unix_time: int) -> None:
        """Return once the chain's clock has reached `unix_time` (blocks before it closed)."""

    def wait_final(self) -> None:
        """Return once everything submitted so far is final (committed or refused)."""


class SimulationRejected(RuntimeError):
    """The ledger refused a transaction the simulator built: a bug in the model (or in the
    ledger), never something to skip, because the sender's later nonces would all fail."""

    def __init__(self, index: int, stx: tx.SignedTransaction, rejection: errors.Rejection):
        body = type(stx.tx.body).__name__
        super().__init__(f"transaction {index} ({body}) refused: {rejection.code}: {rejection}")
        self.code = rejection.code


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
                self.events += ledger.apply(self.sandbox.state, stx, self.sandbox.context)
            except errors.Rejection as exc:
                raise SimulationRejected(self.committed, stx, exc) from exc
            self.committed += 1

    def advance_to(self, unix_time: int) -> None:
        if unix_time <= self.sandbox.time:
            raise ValueError(f"time {unix_time} is not after the sandbox's {self.sandbox.time}")
        self.events += self.sandbox.advance(unix_time - self.sandbox.time)

    def wait_final(self) -> None:
        """Everything applied is final in a single-process ledger."""

    def next_nonce(self, address: bytes) -> int:
        """The nonce the ledger expects next from `address` (0 for an account not yet open)."""
        account = self.sandbox.state.get(accounts.account_key(address), accounts.Account)
        return 0 if account is None else account.nonce
