"""What `simulate` returns and what a checked `send` raises: the ledger's verdict on a
transaction tried against the current state and rolled back (`POST /txs/simulate`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gridtokenx.client.models import JSON, ApiError


@dataclass(frozen=True)
class Simulation:
    ok: bool  # the ledger would apply it now
    code: str  # the ledger's rejection code when not ok (GATE_CLOSED, ...)
    message: str
    hash: str | None  # None: the bytes did not decode
    height: int  # the block it was tried in
    time: int  # that block's time (the node's clock)
    events: list[JSON] = field(default_factory=list)

    @classmethod
    def of(cls, data: JSON) -> Simulation:
        return cls(data["ok"], data.get("code", ""), data.get("message", ""), data.get("hash"),
                   data["height"], data["time"], data.get("events", []))  # fmt: skip


class WouldBeRefused(ApiError):
    """A checked `send` stopped before submitting: the ledger would refuse the transaction
    now. `code` is the ledger's (the one a drop would carry), `simulation` the whole
    verdict. Nothing was submitted and the nonce was not used."""

    def __init__(self, simulation: Simulation) -> None:
        super().__init__(422, simulation.code, simulation.message)
        self.simulation = simulation
