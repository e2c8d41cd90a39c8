"""cli.units: quantities with their unit parsed exactly into the ledger's integers (bad ones
are BadInput, exit 2), and the integers formatted back exactly, floats nowhere."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridtokenx.cli import units
from gridtokenx.cli.errors import BadInput


def test_amounts_need_units_and_must_be_whole_base_units() -> None:
    assert units.energy_wh("1.5kWh") == 1_500
    assert units.energy_wh("1500 Wh") == 1_500
    assert units.energy_wh("2GRID") == 2_000 and units.energy_wh("0") == 0
    assert units.money_satang("12.50THB") == 1_250
    assert units.money_satang("7satang") == 7
    assert units.price_satang_per_kwh("4.5THB/kWh") == 450
    assert units.power_w("5kW") == 5_000
    for bad in ("1.5", "1500", "1.0005kWh", "-1kWh", "1e3Wh", "kWh", "5THB"):
        with pytest.raises(BadInput):
            units.energy_wh(bad)
    for bad in ("0.001THB", "1", "1kWh"):
        with pytest.raises(BadInput):
            units.money_satang(bad)
    for bad in ("4.5THB", "450", "4.555THB/kWh"):
        with pytest.raises(BadInput):
            units.price_satang_per_kwh(bad)
    with pytest.raises(BadInput, match="too large"):
        units.energy_wh(f"{2**63}Wh")


def test_times_are_unix_or_iso_with_an_offset() -> None:
    assert units.unix_time("1767236400") == 1_767_236_400
    assert units.unix_time("2026-01-01T10:00+07:00") == 1_767_236_400
    assert units.unix_time("2026-01-01T03:00:00Z") == 1_767_236_400
    for bad in ("2026-01-01T10:00", "tomorrow", "2026-01-01T10:00:00.5+07:00", "-5"):
        with pytest.raises(BadInput):
            units.unix_time(bad)


def test_local_dates_and_counts() -> None:
    assert units.local_date("2026-01-31", "--from-day") == 20260131
    assert units.local_date("20260131", "--from-day") == 20260131
    for bad in ("20260230", "2026/01/01", "260131"):
        with pytest.raises(BadInput, match="--from-day"):
            units.local_date(bad, "--from-day")
    assert units.count("42", "order id") == 42
    for bad in ("-1", "x", "1" * 20):
        with pytest.raises(BadInput):
            units.count(bad, "order id")
    assert units.loss_bp("2.5%") == 250 and units.loss_bp("150bp") == 150
    with pytest.raises(BadInput, match="below 100%"):
        units.loss_bp("100%")


def test_formatting_is_exact_for_any_size() -> None:
    assert units.kwh(1_500) == "1.5" and units.kwh(1_000) == "1" and units.kwh(0) == "0"
    assert units.kwh(1_234_500, trim=False) == "1,234.500"
    assert units.thb(150) == "1.50" and units.thb(123_456_789) == "1,234,567.89"
    assert units.mwh(1_000_000) == "1" and units.kg(475_000) == "475"
    assert units.percent(250) == "2.5" and units.hz(50_012) == "50.012"
    assert units.kwh(-1) == "-0.001" and units.thb(-5) == "-0.05"
    huge = 2**63 - 1  # a float would round this balance
    assert units.kwh(huge) == "9,223,372,036,854,775.807"
    assert units.seconds(1_234_567_890) == "1.23" and units.seconds(5_000_000) == "0.01"
    assert units.seconds(1_234_000_000_000) == "1234.00"  # no thousands separator


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_energy_round_trips_through_its_text(wh: int) -> None:
    text = units.kwh(wh).replace(",", "")
    assert units.energy_wh(f"{text}kWh") == wh
    assert units.kwh(wh, trim=False) == f"{wh // 1000:,}.{wh % 1000:03d}"


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_money_round_trips_through_its_text(satang: int) -> None:
    assert units.money_satang(units.thb(satang).replace(",", "") + "THB") == satang


def test_times_are_shown_in_bangkok_whatever_the_machine_zone() -> None:
    assert units.local_time(1_767_229_200) == "2026-01-01 08:00:00"  # 01:00 UTC
    assert units.local_minute(1_767_289_500) == "2026-01-02 00:45"  # across local midnight
    assert units.local_minute(0) == "1970-01-01 07:00"


def test_trade_values_are_exact_baht() -> None:
    assert units.value_thb(500, 345) == "1.725"  # 0.5 kWh at 3.45 THB/kWh
    assert units.value_thb(1_000, 300) == "3.00"
    assert units.value_thb(1, 1) == "0.00001"
    assert units.value_thb(10**9, 400) == "4,000,000.00"
