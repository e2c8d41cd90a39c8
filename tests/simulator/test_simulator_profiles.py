"""Shapes and totals of the simulator's solar and demand profiles."""

from __future__ import annotations

import datetime

import pytest

from gridtokenx.ledger.params import Params
from gridtokenx.ledger.sandbox import DEFAULT_GENESIS_TIME
from gridtokenx.simulator import demand, solar
from gridtokenx.simulator.clock import Day, is_hot_season, locate

PARAMS = Params()
JAN = Day.of(datetime.date(2026, 1, 14), PARAMS)  # a Wednesday in the cool season
APR = Day.of(datetime.date(2026, 4, 22), PARAMS)  # a Wednesday in the hot season
AUG = Day.of(datetime.date(2026, 8, 19), PARAMS)  # a Wednesday in the monsoon
SUNDAY = Day.of(datetime.date(2026, 1, 18), PARAMS)


def minute(day: Day, index: int) -> int:
    return day.mid_minute(index)


def test_day_maps_local_midnight_to_unix_time() -> None:
    new_year = Day.of(datetime.date(2026, 1, 1), PARAMS)
    assert new_year.midnight == DEFAULT_GENESIS_TIME - 7 * 3600  # 00:00 UTC is 07:00 Bangkok
    assert new_year.intervals == 96
    assert locate(new_year.start(30), PARAMS) == (new_year, 30)
    assert locate(new_year.start(96), PARAMS) == (new_year.next(), 0)
    assert is_hot_season(APR.date) and not is_hot_season(JAN.date)


def test_bangkok_sun_times_in_january_and_june() -> None:
    sunrise, sunset = solar.sun_times("BKK", JAN)
    assert 6 * 60 + 30 <= sunrise <= 6 * 60 + 50  # almanacs: about 06:43 and 18:06
    assert 17 * 60 + 55 <= sunset <= 18 * 60 + 15
    june = Day.of(datetime.date(2026, 6, 21), PARAMS)
    rise, set_ = solar.sun_times("BKK", june)
    assert 5 * 60 + 45 <= rise <= 6 * 60 and 18 * 60 + 40 <= set_ <= 18 * 60 + 55


def test_northern_winter_days_are_shorter_than_southern_ones() -> None:
    north = solar.sun_times("NTH", JAN)
    south = solar.sun_times("STH", JAN)
    assert north[1] - north[0] < south[1] - south[0]
    assert solar.sun_times("NEA", JAN)[0] < solar.sun_times("NTH", JAN)[0]  # east rises first


@pytest.mark.parametrize("zone", sorted(solar.SITES))
@pytest.mark.parametrize("day", [JAN, APR, AUG])
def test_rooftop_output_is_zero_at_night_and_peaks_near_noon(zone: str, day: Day) -> None:
    capacity = 5_000
    shape = solar.clear_sky_shape(zone, day)
    clear = [1000] * day.intervals
    out = solar.output_wh(capacity, shape, clear, day, hot_season=False)
    sunrise, sunset = solar.sun_times(zone, day)
    for i, wh in enumerate(out):
        if not sunrise < minute(day, i) < sunset:
            assert wh == 0, f"output at night, interval {i}"
        assert wh <= solar.max_interval_wh(capacity, day.interval_seconds)
    peak = max(range(day.intervals), key=lambda i: out[i])
    assert abs(minute(day, peak) - (sunrise + sunset) // 2) <= 15
    clear_noon = capacity * 750 // 1000 * day.interval_seconds // 3600  # 75 % of rated
    assert clear_noon * 95 // 100 <= out[peak] <= clear_noon


@pytest.mark.parametrize("seed", ["1", "2", "3"])
@pytest.mark.parametrize("day", [JAN, APR, AUG])
def test_rooftop_daily_yield_is_plausible_for_thailand(seed: str, day: Day) -> None:
    """3-5.5 kWh per kWp per day; Thai rooftop PV is usually quoted at 1,300-1,500
    kWh/kWp/year (3.6-4.1 a day), less in the monsoon, more in the hot season."""
    hot = is_hot_season(day.date)
    out = solar.output_wh(
        1_000,
        solar.clear_sky_shape("BKK", day),
        solar.clearness(seed, "BKK", day, hot),
        day,
        hot,
    )
    assert 2_500 <= sum(out) <= 5_500


def test_trackers_yield_more_than_fixed_panels_and_hot_season_skies_are_clearer() -> None:
    clear = [1000] * APR.intervals
    fixed = solar.output_wh(1_000_000, solar.clear_sky_shape("CEN", APR), clear, APR, True)
    tracked = solar.output_wh(
        1_000_000, solar.clear_sky_shape("CEN", APR, tracking=True), clear, APR, True, farm=True
    )
    assert sum(tracked) > sum(fixed) * 115 // 100
    hot = solar.clearness("7", "CEN", APR, True)
    monsoon = solar.clearness("7", "CEN", AUG, False)
    assert sum(hot) > sum(monsoon)
    assert all(250 <= c <= 1000 for c in hot + monsoon)


def test_clearness_is_seeded() -> None:
    assert solar.clearness("a", "BKK", JAN, False) == solar.clearness("a", "BKK", JAN, False)
    assert solar.clearness("a", "BKK", JAN, False) != solar.clearness("b", "BKK", JAN, False)
    assert solar.clearness("a", "BKK", JAN, False) != solar.clearness("a", "CEN", JAN, False)


def test_household_load_peaks_in_the_evening_and_keeps_its_daily_total() -> None:
    load = demand.household_wh(10_000, JAN, hot_season=False)
    peak = max(range(JAN.intervals), key=lambda i: load[i])
    assert 18 * 60 <= minute(JAN, peak) <= 23 * 60
    assert 9_900 <= sum(load) <= 10_000
    assert min(load[40:64]) < max(load[:24])  # daytime (10:00-16:00) below the AC night
    hot = demand.household_wh(10_000, APR, hot_season=True)
    assert sum(hot) > 12_800


def test_office_load_follows_working_hours_on_weekdays_only() -> None:
    weekday = demand.office_wh(100_000, JAN, hot_season=False)
    peak = max(range(JAN.intervals), key=lambda i: weekday[i])
    assert 8 * 60 <= minute(JAN, peak) <= 18 * 60
    assert max(weekday) <= 100_000 * 900 // 3600
    assert weekday[8] < weekday[44] // 4  # 02:00 against 11:00
    weekend = demand.office_wh(100_000, SUNDAY, hot_season=False)
    assert sum(weekend) < sum(weekday) // 2
    assert sum(demand.office_wh(100_000, APR, hot_season=True)) > sum(weekday)


def test_factory_load_is_flat_across_shifts_and_halves_on_sunday() -> None:
    three = demand.factory_wh(500_000, JAN, False, three_shifts=True)
    assert max(three) * 100 <= min(three) * 130
    two = demand.factory_wh(500_000, JAN, False, three_shifts=False)
    assert sum(two) < sum(three)
    assert two[12] < two[44] * 70 // 100  # 03:00 night against 11:00 first shift
    sunday = demand.factory_wh(500_000, SUNDAY, False, three_shifts=True)
    assert set(sunday) == {500_000 * 500 // 1000 * 900 // 3600}
