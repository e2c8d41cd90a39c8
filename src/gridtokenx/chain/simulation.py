"""Trying a signed transaction against the committed state without keeping anything, the
way Ethereum's `eth_call` does: the ledger's own answer (its code and message, or the
events it would emit) before the transaction is sent, so a client can say "the gate for
that interval has closed" at once instead of seeing the transaction admitted and then
dropped a block later.

The trial runs inside `State.begin()`/`rollback()`, as a proposal's trial execution does,
on the caller's thread (the node's event loop), so no block can commit half-way through
it; the derived indexes follow the rollback like every other write. The sender's
transactions still waiting in the mempool with lower nonces run first (their failures
ignored), so a client that pipelines transactions sees the balance and nonce its next one
will meet, not the one before its earlier transactions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gridtokenx.ledger import transition
from gridtokenx.ledger.context import BlockContext, Event
from gridtokenx.ledger.state import State
from gridtokenx.wire import errors, tx

MALFORMED = "MALFORMED"


@dataclass(frozen=True)
class Simulation:
    """What the ledger would do with the transaction in a block at `height` and `time`:
    `ok` with its events, or the rejection's stable `code` and readable `message`."""

    ok: bool
    height: int
    time: int
    tx_hash: bytes | None
    code: str = ""
    message: str = ""
    events: list[Event] = field(default_factory=list)


def simulate(
    state: State, raw: bytes, ctx: BlockContext, earlier: list[bytes] | None = None
) -> Simulation:
    """Apply `raw` after `earlier` (signed bytes, applied in order, refusals skipped) in
    a block with context `ctx`, then roll everything back. The state, its root and its
    indexes are exactly as before, whatever happens."""
    try:
        stx = tx.decode(raw)
    except ValueError as exc:
        return Simulation(False, ctx.height, ctx.time, None, MALFORMED, str(exc))
    state.begin()
    try:
        for before in earlier or []:
            try:
                transition.apply(state, tx.decode(before), ctx, check_signature=False)
            except (errors.Rejection, ValueError):
                continue  # it would fail in a block too; the trial goes on without it
        try:
            events = transition.apply(state, stx, ctx)
        except errors.Rejection as exc:
            return Simulation(False, ctx.height, ctx.time, stx.hash, exc.code, str(exc))
        return Simulation(True, ctx.height, ctx.time, stx.hash, events=events)
    finally:
        state.rollback()
