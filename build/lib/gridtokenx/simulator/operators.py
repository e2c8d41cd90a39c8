"""The grid operators' SCADA gateways: what EGAT and the distributors report each interval.

At every interval boundary the gateways report the metered interval that just ended:

- EGAT (the transmission system operator) signs one `TransmissionStatus`: the system
  frequency and, per zone, generation and demand as average kW over the interval, summed
  from the members' plans (actual PV and actual load, the energy the meters then read).
- Each zone's distribution authority (MEA for Bangkok, PEA for the others, from the
  genesis) signs a `DistributionStatus` for it: the zone's load (the same average demand)
  and the feeder/transformer headroom.

The frequency is drawn per interval from a seeded generator within ±40 mHz of 50 Hz, so it
always stays in the normal band (49.5-50.5 Hz) and never halts the market: the storyline
shows the reports, not an emergency. Nothing here reads the ledger, so the reports are as
reproducible as the rest of the day.

Headroom caps the P2P energy a zone may import from other zones per interval (the market
rations it like one more link). The gateways report it as the zone's feeder rating less
its load, with the rating modelled as twice the zone's peak demand over the simulated
window (forecast or actual, whichever is higher) and at least `FEEDER_FLOOR_KW`. So the
headroom is never below that peak, and the peak bounds what the zone's buyers can bid for
in any interval (a bid never exceeds its member's forecast load): the reports are on chain
without ever binding a P2P import of the day. A tighter rating is a grid scenario of its
own (docs/grid.md), not what the market-day demo shows.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from gridtokenx.ledger import genesis, registry
from gridtokenx.simulator.agents import Plan
from gridtokenx.simulator.population import Member
from gridtokenx.wire import tx

NOMINAL_FREQUENCY_MHZ: Final = 50_000
FREQUENCY_SWING_MHZ: Final = 40  # far inside the governed band of ±500 mHz
FEEDER_RATING_FACTOR: Final = 2  # feeder rating = this x the zone's peak demand
FEEDER_FLOOR_KW: Final = 1_000  # the rating of a zone with (almost) no members


def average_kw(wh: int, interval_seconds: int) -> int:
    """The average power (kW, rounded down) of `wh` delivered over one interval."""
    return wh * 3600 // interval_seconds // 1000


def _ceil_kw(wh: int, interval_seconds: int) -> int:
    return -(-wh * 3600 // (interval_seconds * 1000))


@dataclass(frozen=True)
class ZoneEnergy:
    """One zone's energy per window interval, Wh."""

    generation: list[int]
    demand: list[int]
    forecast_demand: list[int]


class Scada:
    """The operators' gateways for one day: their reports per window interval."""

    def __init__(
        self,
        spec: genesis.Genesis,
        members: Sequence[Member],
        plans: dict[str, Plan],
        intervals: int,
        seed: str,
    ) -> None:
        self.interval = spec.params.interval_seconds
        self.seed = seed
        self.distributors = {z.code: z.distribution_authority for z in spec.zones}
        self.transmission_operator = next(
            a.code for a in spec.authorities if registry.ROLE_TRANSMISSION in a.roles
        )
        self.zones = {code: ZoneEnergy([0] * intervals, [0] * intervals, [0] * intervals)
                      for code in self.distributors}  # fmt: skip
        for m in members:
            p, z = plans[m.name], self.zones[m.zone]
            for k in range(intervals):
                z.generation[k] += p.actual_pv[k]
                z.demand[k] += p.actual_load[k]
                z.forecast_demand[k] += p.forecast_load[k]
        self.feeder_kw = {code: self._feeder_rating(z) for code, z in self.zones.items()}

    def _feeder_rating(self, zone: ZoneEnergy) -> int:
        peak_wh = max(zone.demand + zone.forecast_demand, default=0)
        return max(FEEDER_FLOOR_KW, FEEDER_RATING_FACTOR * _ceil_kw(peak_wh, self.interval))

    def frequency_mhz(self, k: int) -> int:
        """System frequency at the end of window interval `k`: one draw per interval from its
        own seeded generator, so it does not depend on what was asked before."""
        rng = random.Random(f"{self.seed}/scada/frequency/{k}")
        return NOMINAL_FREQUENCY_MHZ + rng.randint(-FREQUENCY_SWING_MHZ, FREQUENCY_SWING_MHZ)

    def load_kw(self, zone: str, k: int) -> int:
        return average_kw(self.zones[zone].demand[k], self.interval)

    def headroom_kw(self, zone: str, k: int) -> int:
        return self.feeder_kw[zone] - self.load_kw(zone, k)

    def transmission(self, k: int, measured_at: int) -> tx.TransmissionStatus:
        """EGAT's snapshot of interval `k` (links left out: their genesis ratings stand)."""
        balances = tuple(
            tx.ZoneBalance(code, average_kw(z.generation[k], self.interval),
                           average_kw(z.demand[k], self.interval))
            for code, z in self.zones.items()
        )  # fmt: skip
        return tx.TransmissionStatus(measured_at, self.frequency_mhz(k), zones=balances)

    def distribution(self, k: int, measured_at: int) -> list[tuple[str, tx.DistributionStatus]]:
        """(distribution authority code, its report) for every zone, in genesis order."""
        return [
            (code, tx.DistributionStatus(measured_at, zone, self.load_kw(zone, k),
                                         self.headroom_kw(zone, k)))
            for zone, code in self.distributors.items()
        ]  # fmt: skip

    def reports(self, k: int, measured_at: int) -> list[tuple[str, tx.Body]]:
        """Every gateway's report of window interval `k`, EGAT's first, with its signer."""
        egat = self.transmission_operator
        found: list[tuple[str, tx.Body]] = [(egat, self.transmission(k, measured_at))]
        return found + list(self.distribution(k, measured_at))
