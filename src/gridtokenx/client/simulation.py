"""What `simulate` returns and what a checked `send` raises: the ledger's verdict on a
transaction tried against the current state and rolled back (`POST /txs/simulate`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gridtokenx.client.models import EVENTS, JSON, ApiError, describe
from gridtokenx.client.results import Event


@dataclass(frozen=True)
class Simulation:
    ok: bool  # the ledger would apply it now
    code: str  # the ledger's rejection code when not ok (GATE_CLOSED, ...)
    message: str
    hash: str | None  # None: the bytes did not decode
    height: int  # the block it was tried in
    time: int  # that block's time (the node's clock)
    events: list[Event] = field(default_factory=list)

    @classmethod
    def of(cls, data: JSON) -> Simulation:
        return cls(data["ok"], data.get("code", ""), data.get("message", ""), data.get("hash"),
                   data["height"], data["time"], EVENTS(data.get("events", [])))  # fmt: skip


class WouldBeRefused(ApiError):
    """A checked `send` (the default) stopped before submitting: the ledger would refuse
    the transaction now. `code` is the ledger's (the one a drop would carry), `message`
    the rule and the ledger's message, `simulation` the whole verdict. Nothing was
    submitted and the nonce was not used."""

    def __init__(self, simulation: Simulation) -> None:
        super().__init__(422, simulation.code, refusal_text(simulation))
        self.simulation = simulation


def refusal_text(simulation: Simulation) -> str:
    """The ledger's rule in words (its description of the code) with its message, and that
    nothing left the client: a bare code is all a drop a block later would have said."""
    rule = describe(simulation.code)
    said = f"{rule} ({simulation.message})" if rule and simulation.message else rule
    return f"{said or simulation.message or simulation.code}; nothing was sent"
