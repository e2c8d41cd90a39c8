"""Solar production per zone: sunrise and sunset, a clear-sky bell, and passing clouds.

Each zone is represented by one city. Sun times come from the standard sunrise equation
(solar declination, equation of time, 0.833 degrees for refraction and the sun's disc),
rounded to whole minutes once per day, so the only floating-point work is a handful of
libm calls whose result is rounded; everything per interval is integer arithmetic and
`random.Random` draws, which are the same on every platform for the same seed.

Output is in whole Wh per interval and never exceeds what the ledger accepts from a meter
(rated capacity x interval length), so a simulated reading can always be applied.

Model constants are assumptions, not figures from ../shared/thai-market.md (which has none
on irradiance): a fixed rooftop array gives 75 % of its rating at a clear noon (80 % in the
hot season, when skies are clearer and irradiance higher despite the heat), a solar farm on
single-axis trackers 80 % / 84 % with a broader curve. With the cloud means below that is
about 3.5-4.5 kWh per kWp per day, inside the 1,300-1,500 kWh/kWp/year usually quoted for
Thai rooftop PV.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final

from gridtokenx.simulator.clock import Day, is_hot_season


@dataclass(frozen=True)
class Site:
    city: str
    latitude: float  # degrees north
    longitude: float  # degrees east


SITES: Final = {
    "BKK": Site("Bangkok", 13.75, 100.50),
    "CEN": Site("Phra Nakhon Si Ayutthaya", 14.35, 100.57),
    "NTH": Site("Chiang Mai", 18.79, 98.98),
    "NEA": Site("Khon Kaen", 16.43, 102.83),
    "EST": Site("Chon Buri", 13.36, 100.98),
    "WST": Site("Ratchaburi", 13.54, 99.81),
    "STH": Site("Surat Thani", 9.14, 99.33),
}
"""One city per devnet zone; a zone not listed (another genesis) is treated as Bangkok."""

ROOFTOP_PEAK_PERMILLE: Final = (750, 800)  # (other seasons, hot season)
FARM_PEAK_PERMILLE: Final = (800, 840)
SHAPE_ONE: Final = 10_000  # shapes are in units of 1/10,000


def site(zone: str) -> Site:
    return SITES.get(zone, SITES["BKK"])


def sun_times(zone: str, day: Day) -> tuple[int, int]:
    """Local sunrise and sunset in minutes after midnight."""
    where = site(zone)
    n = day.date.timetuple().tm_yday
    declination = math.radians(23.44) * math.sin(2 * math.pi * (284 + n) / 365)
    lat = math.radians(where.latitude)
    cos_h = (math.sin(math.radians(-0.833)) - math.sin(lat) * math.sin(declination)) / (
        math.cos(lat) * math.cos(declination)
    )
    half_day_minutes = math.degrees(math.acos(max(-1.0, min(1.0, cos_h)))) * 4
    b = 2 * math.pi * (n - 81) / 364
    equation_of_time = 9.87 * math.sin(2 * b) - 7.53 * math.cos(b) - 1.5 * math.sin(b)
    meridian = day.utc_offset_seconds / 3600 * 15
    noon = 720 + (meridian - where.longitude) * 4 - equation_of_time
    return round(noon - half_day_minutes), round(noon + half_day_minutes)


def _bell(minute: int, sunrise: int, sunset: int) -> int:
    """4x(1-x) over the daylight hours, 0 outside, in 1/10,000."""
    if not sunrise < minute < sunset:
        return 0
    x = (minute - sunrise) * SHAPE_ONE // (sunset - sunrise)
    return 4 * x * (SHAPE_ONE - x) // SHAPE_ONE


def clear_sky_shape(zone: str, day: Day, *, tracking: bool = False) -> list[int]:
    """Clear-sky output per interval as a fraction of the clear-noon output, in 1/10,000.

    A fixed panel follows the bell squared (low sun: long air mass, steep angle); a tracker
    faces the sun all day, so its curve is the plain bell."""
    sunrise, sunset = sun_times(zone, day)
    shape = []
    for i in range(day.intervals):
        bell = _bell(day.mid_minute(i), sunrise, sunset)
        shape.append(bell if tracking else bell * bell // SHAPE_ONE)
    return shape


def cloud_mean_permille(day: Day, hot_season: bool) -> int:
    """Average clear-sky fraction: clearest in the hot season, cloudiest in the monsoon
    (mid-May to October). An assumption for the model, not a measured figure."""
    if hot_season or is_hot_season(day.date):
        return 900
    return 650 if 6 <= day.date.month <= 10 else 850


def clearness(seed: str, zone: str, day: Day, hot_season: bool) -> list[int]:
    """Fraction of clear-sky output reaching the panels per interval (per mille): a mean-
    reverting random walk per zone, so clouds drift over a zone for an hour or so and a
    forecast made from the last observed value is good but not perfect."""
    rng = random.Random(f"{seed}/clouds/{zone}/{day.date.isoformat()}")
    mean = cloud_mean_permille(day, hot_season)
    value, series = mean, []
    for _ in range(day.intervals):
        value += (mean - value) // 5 + rng.randint(-90, 90)
        value = max(250, min(1000, value))
        series.append(value)
    return series


def max_interval_wh(capacity_w: int, interval_seconds: int) -> int:
    """What the ledger lets a meter export in one interval (metering.max_export_wh)."""
    return capacity_w * interval_seconds // 3600


def output_wh(
    capacity_w: int,
    shape: list[int],
    clear: list[int],
    day: Day,
    hot_season: bool,
    *,
    farm: bool = False,
) -> list[int]:
    """Energy per interval for a plant of `capacity_w` given the day's shape and clearness."""
    peaks = FARM_PEAK_PERMILLE if farm else ROOFTOP_PEAK_PERMILLE
    peak = peaks[1] if hot_season else peaks[0]
    cap = max_interval_wh(capacity_w, day.interval_seconds)
    scale = 1000 * SHAPE_ONE * 1000 * 3600
    return [
        min(cap, capacity_w * peak * s * c * day.interval_seconds // scale)
        for s, c in zip(shape, clear, strict=True)
    ]
