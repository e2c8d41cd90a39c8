"""Electricity demand per interval: households, offices and shops, factories.

Shapes are hourly weights interpolated to the interval's midpoint, so a day's curve is
smooth and every value is an integer. The shapes are assumptions that follow the well-known
Thai pattern (../shared/thai-market.md only says the national peak is set in the hot season,
mid-afternoon or around 20:00): homes run air conditioning in the bedroom at night and peak
in the evening when people come home; offices run 08:00-18:00 on weekdays; factories run
two or three shifts with dips at shift change and rest on Sunday. The hot season (March-May)
adds air-conditioning load: +30 % for homes with more of it in the afternoon, +15 % in
office hours, +5 % for factory cooling.
"""

from __future__ import annotations

from typing import Final

from gridtokenx.simulator.clock import Day

HOUSEHOLD: Final = (90, 85, 80, 78, 75, 72, 80, 85, 60, 45, 42, 42,
                    48, 45, 42, 45, 55, 75, 100, 130, 150, 150, 130, 110)  # fmt: skip
HOUSEHOLD_HOT_EXTRA: Final = (10, 10, 10, 10, 10, 10, 0, 0, 0, 0, 10, 20,
                              30, 35, 35, 30, 20, 10, 10, 10, 10, 10, 10, 10)  # fmt: skip
OFFICE_WEEKDAY: Final = (150, 150, 150, 150, 150, 150, 200, 400, 800, 1000, 1000, 1000,
                         900, 1000, 1000, 1000, 950, 800, 500, 300, 200, 200, 150, 150)  # fmt: skip
OFFICE_WEEKEND: Final = (150,) * 9 + (250,) * 9 + (150,) * 6
HOT_HOUSEHOLD_PERCENT: Final = 130
HOT_OFFICE_PERCENT: Final = 115
HOT_FACTORY_PERCENT: Final = 105


def _curve(hourly: tuple[int, ...], day: Day) -> list[int]:
    """Hourly weights (read as values at each hour's middle) interpolated per interval."""
    out = []
    for i in range(day.intervals):
        t = day.mid_minute(i) - 30
        h, frac = divmod(t, 60)
        a, b = hourly[h % 24], hourly[(h + 1) % 24]
        out.append((a * (60 - frac) + b * frac) // 60)
    return out


def _per_interval_wh(power_w: int, day: Day) -> int:
    return power_w * day.interval_seconds // 3600


def household_wh(daily_wh: int, day: Day, hot_season: bool) -> list[int]:
    """A home using about `daily_wh` on an ordinary day (more in the hot season)."""
    hourly: tuple[int, ...] = HOUSEHOLD
    if hot_season:
        hourly = tuple(a + b for a, b in zip(HOUSEHOLD, HOUSEHOLD_HOT_EXTRA, strict=True))
        daily_wh = daily_wh * HOT_HOUSEHOLD_PERCENT // 100
    weights = _curve(hourly, day)
    total = sum(weights)
    return [daily_wh * w // total for w in weights]


def office_wh(peak_w: int, day: Day, hot_season: bool) -> list[int]:
    """An office or shop drawing `peak_w` at the height of a working day."""
    hourly: tuple[int, ...] = OFFICE_WEEKEND if day.weekend else OFFICE_WEEKDAY
    if hot_season:
        hourly = tuple(w * HOT_OFFICE_PERCENT // 100 if w >= 800 else w for w in hourly)
    return [_per_interval_wh(peak_w * w // 1000, day) for w in _curve(hourly, day)]


def factory_hourly(three_shifts: bool, sunday: bool) -> tuple[int, ...]:
    """Per mille of the base load per hour: shifts 06-14, 14-22 and (if run) 22-06, each
    starting with a dip while one shift hands over to the next; Sunday at half load."""
    if sunday:
        return (500,) * 24
    night = 900 if three_shifts else 600
    hourly = [night] * 6 + [1000] * 8 + [950] * 8 + [night] * 2
    for change in (6, 14, 22):
        hourly[change] = hourly[change] * 85 // 100
    return tuple(hourly)


def factory_wh(base_w: int, day: Day, hot_season: bool, *, three_shifts: bool) -> list[int]:
    """A factory whose first shift draws `base_w`."""
    hourly = factory_hourly(three_shifts, day.sunday)
    percent = HOT_FACTORY_PERCENT if hot_season else 100
    return [_per_interval_wh(base_w * w * percent // 100_000, day) for w in _curve(hourly, day)]
