"""The surveillance engine: feed it committed blocks in order, it raises alerts.

Each delivery interval is judged once, by every detector, in the block that settles it
(its `interval_settled` event), or else in the first block at or after its settlement
deadline: by then its gate has closed, its orders have expired and its meters have
reported, so the evidence is complete and no later block can change the verdict. The
engine is deterministic: the same blocks and settings give the same alerts, ids included,
on every node (no wall clock, no mempool, no local state)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from gridtokenx.ledger.params import Params
from gridtokenx.surveillance import market_power, marking, spoofing, wash, withholding
from gridtokenx.surveillance.alerts import Alert, Detector
from gridtokenx.surveillance.scope import Scope
from gridtokenx.surveillance.settings import SurveillanceSettings
from gridtokenx.surveillance.tape import CommittedBlock, Tape, TradeOrders

DetectorFn = Callable[[Tape, Scope, int], list[Alert]]
DETECTORS: Final[dict[Detector, DetectorFn]] = {
    Detector.WASH: wash.detect,
    Detector.SPOOFING: spoofing.detect,
    Detector.MARKING: marking.detect,
    Detector.WITHHOLDING: withholding.detect,
    Detector.MARKET_POWER: market_power.detect,
}


class Surveillance:
    def __init__(
        self,
        params: Params,
        trade_orders: TradeOrders,
        settings: SurveillanceSettings | None = None,
        detectors: dict[Detector, DetectorFn] | None = None,
    ) -> None:
        self.params = params
        self.settings = settings or SurveillanceSettings()
        if problems := self.settings.problems():
            raise ValueError("invalid surveillance settings: " + "; ".join(problems))
        self.detectors = DETECTORS if detectors is None else detectors
        self.tape = Tape(trade_orders)
        self.alerts: list[Alert] = []
        self.judged: set[int] = set()
        self.height = 0
        # Intervals kept after judging: the wash window, and withholding's look two back.
        self.keep_seconds = (self.settings.wash.lookback_intervals + 2) * params.interval_seconds

    def due(self, block_time: int) -> list[int]:
        """Intervals to judge now: settled in this block, or past the settlement deadline."""
        p = self.params
        late = p.interval_seconds + p.settlement_deadline_seconds
        settled = set(self.tape.settled)
        return sorted(s for s in self.tape.intervals if s not in self.judged
                      and (s in settled or block_time >= s + late))  # fmt: skip

    def observe(self, block: CommittedBlock) -> list[Alert]:
        """Take one committed block (heights in order, none skipped); the new alerts."""
        if self.height and block.height != self.height + 1:
            raise ValueError(f"expected height {self.height + 1}, got {block.height}")
        self.height = block.height
        self.tape.observe(block)
        new: list[Alert] = []
        scope = Scope(self.params, self.settings, block.height)
        for start in self.due(block.time):
            new += self.judge(start, scope)
            self.judged.add(start)
        if new:
            self.alerts += new
        if self.judged:
            horizon = max(self.judged) - self.keep_seconds
            self.tape.forget_before(horizon)
            self.judged = {s for s in self.judged if s >= horizon}
        return new

    def judge(self, start: int, scope: Scope) -> list[Alert]:
        return [a for detect in self.detectors.values() for a in detect(self.tape, scope, start)]


def select(
    alerts: list[Alert],
    *,
    detector: Detector | None = None,
    account: str | None = None,
    zone: str | None = None,
    interval_from: int | None = None,
    interval_to: int | None = None,
    min_score: int = 0,
) -> list[Alert]:
    """The alerts matching every filter given, newest interval first."""
    return sorted(
        (a for a in alerts
         if (detector is None or a.detector is detector)
         and (account is None or account in a.accounts)
         and (zone is None or a.zone == zone)
         and (interval_from is None or a.interval >= interval_from)
         and (interval_to is None or a.interval <= interval_to)
         and a.score >= min_score),
        key=lambda a: (-a.interval, -a.height, a.detector, a.id),
    )  # fmt: skip
