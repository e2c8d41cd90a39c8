"""A market day recorded as committed blocks, for surveillance.

The in-process sink has no blocks, only a height and a clock; `RecordingSink` groups what
it applies into `surveillance.tape.CommittedBlock`s (each transaction's hash, sender, body
and events, and the block's end-of-block events), with a block hash derived from the
height and the transaction hashes. `run_surveilled_day` runs a day (honest, or with
manipulators mixed in) and returns the blocks, so a benchmark can feed them to the
detectors and time them without the ledger's own cost."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from gridtokenx.ledger import transition
from gridtokenx.ledger.context import Event
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.simulator.day import DayConfig, MarketDay
from gridtokenx.simulator.sink import SandboxSink, SimulationRejected
from gridtokenx.surveillance.tape import CommittedBlock, CommittedTx
from gridtokenx.wire import errors, tx


class RecordingSink(SandboxSink):
    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(sandbox)
        self.blocks: list[CommittedBlock] = []
        self._txs: list[CommittedTx] = []

    def submit(self, txs: list[bytes]) -> None:
        for raw in txs:
            stx = tx.decode(raw)
            try:
                events = transition.apply(self.sandbox.state, stx, self.sandbox.context)
            except errors.Rejection as exc:
                raise SimulationRejected(self.committed, stx, exc) from exc
            self.events += events
            self.committed += 1
            self._txs.append(CommittedTx(tx.hash_of(raw), stx.tx.sender_address, stx.tx.body,
                                         events))  # fmt: skip

    def advance_to(self, unix_time: int) -> None:
        height, time, before = self.sandbox.height, self.sandbox.time, len(self.events)
        super().advance_to(unix_time)
        end: list[Event] = self.events[before:]
        digest = hashlib.sha256(b"sandbox-block" + height.to_bytes(8))
        for t in self._txs:
            digest.update(t.tx_hash)
        self.blocks.append(CommittedBlock(height, time, digest.digest(), self._txs, end))
        self._txs = []


@dataclass
class SurveilledDay:
    day: MarketDay
    sandbox: Sandbox
    sink: RecordingSink

    @property
    def blocks(self) -> list[CommittedBlock]:
        return self.sink.blocks


def run_surveilled_day(config: DayConfig, params: Params | None = None) -> SurveilledDay:
    from gridtokenx.simulator import sandbox_for

    sandbox = sandbox_for(config, params)
    sink = RecordingSink(sandbox)
    day = MarketDay(config, sandbox.genesis, sandbox.authority_keys, sink.next_nonce)
    day.run(sink)
    return SurveilledDay(day, sandbox, sink)
