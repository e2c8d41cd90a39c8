"""What a detector is given besides the tape: the chain's market parameters (gate closure,
tick, tariffs), the ERC's settings, and the height raising the alerts."""

from __future__ import annotations

from dataclasses import dataclass

from gridtokenx.ledger.market.tariff import tariff_msat_per_kwh
from gridtokenx.ledger.params import Params
from gridtokenx.surveillance.settings import SurveillanceSettings


@dataclass(frozen=True)
class Scope:
    params: Params
    settings: SurveillanceSettings
    height: int

    def gate(self, start: int) -> int:
        return start - self.params.gate_closure_seconds

    def price_band(self, start: int) -> tuple[int, int]:
        """(buy-back rate, buyers' cap) in satang/kWh for the interval: a seller's outside
        option and the most a buyer can pay with fee and wheeling and still beat the TOU
        rate. Where a price sits between them is what market power moves."""
        p = self.params
        retail = tariff_msat_per_kwh(start, p) // 1000
        cap = (
            (retail - p.wheeling_satang_per_kwh) * 10_000 // (10_000 + p.platform_fee_basis_points)
        )
        return p.tariffs.buyback_msat_per_kwh // 1000, max(cap, 0)


def vwap(pairs: list[tuple[int, int]]) -> int | None:
    """Volume-weighted price of (quantity, price) pairs, rounded down; None without volume."""
    volume = sum(q for q, _ in pairs)
    return None if volume == 0 else sum(q * p for q, p in pairs) // volume
