"""Simulated days in Bangkok time: which interval is which, and when the hot season is.

The ledger knows only unix seconds; the model thinks in local days and 15-minute slots.
Thailand keeps UTC+7 all year (no daylight saving), and the offset and interval length are
read from the governed parameters rather than assumed here.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Final

from gridtokenx.ledger.params import Params

HOT_SEASON_MONTHS: Final = (3, 4, 5)
"""March-May, when the national peak is set (../shared/thai-market.md, "Time")."""


def is_hot_season(date: datetime.date) -> bool:
    return date.month in HOT_SEASON_MONTHS


@dataclass(frozen=True)
class Day:
    """One local calendar day cut into settlement intervals."""

    date: datetime.date
    utc_offset_seconds: int
    interval_seconds: int

    @classmethod
    def of(cls, date: datetime.date, params: Params) -> Day:
        return cls(date, params.tariffs.utc_offset_seconds, params.interval_seconds)

    @property
    def intervals(self) -> int:
        return 86_400 // self.interval_seconds

    @property
    def midnight(self) -> int:
        """Unix time of local 00:00."""
        epoch_days = (self.date - datetime.date(1970, 1, 1)).days
        return epoch_days * 86_400 - self.utc_offset_seconds

    @property
    def weekend(self) -> bool:
        return self.date.weekday() >= 5

    @property
    def sunday(self) -> bool:
        return self.date.weekday() == 6

    def start(self, index: int) -> int:
        """Unix start of the day's interval `index` (0 = the one starting at midnight)."""
        return self.midnight + index * self.interval_seconds

    def mid_minute(self, index: int) -> int:
        """Local minute of the day at the middle of interval `index` (rounded down)."""
        return (index * self.interval_seconds + self.interval_seconds // 2) // 60

    def next(self) -> Day:
        return Day(self.date + datetime.timedelta(days=1), self.utc_offset_seconds,
                   self.interval_seconds)  # fmt: skip


def locate(unix_time: int, params: Params) -> tuple[Day, int]:
    """The local day an interval start falls in, and its index within that day."""
    local = unix_time + params.tariffs.utc_offset_seconds
    date = datetime.date(1970, 1, 1) + datetime.timedelta(days=local // 86_400)
    return Day.of(date, params), local % 86_400 // params.interval_seconds
