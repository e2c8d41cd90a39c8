"""The retail tariff a buyer pays for import P2P trades did not cover: MEA/PEA's time-of-use
rate by the interval's Bangkok local time, with Ft and VAT (thai-market.md)."""

from __future__ import annotations

import datetime
from typing import Final

from gridtokenx.ledger.params import Params

_EPOCH: Final = datetime.date(1970, 1, 1)


def tariff_msat_per_kwh(start: int, params: Params) -> int:
    """Retail TOU rate for the interval including Ft and VAT, by its Bangkok local time."""
    t = params.tariffs
    local = start + t.utc_offset_seconds
    day = _EPOCH + datetime.timedelta(days=local // 86_400)
    minute = local % 86_400 // 60
    peak = (
        day.weekday() in t.peak_weekdays
        and int(day.strftime("%Y%m%d")) not in t.holidays
        and t.peak_start_minute <= minute < t.peak_end_minute
    )
    base = t.tou_peak_msat_per_kwh if peak else t.tou_offpeak_msat_per_kwh
    return (base + t.ft_msat_per_kwh) * (10_000 + t.vat_basis_points) // 10_000
