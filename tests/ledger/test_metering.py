"""Metering: signed 15-minute readings, the only way GRID is minted, and their validation."""

from __future__ import annotations

import pytest

from gridtokenx.ledger import invariants, metering
from gridtokenx.ledger.metering import ReadingRecord
from gridtokenx.wire import errors
from gridtokenx.wire.tx import MeterKind, MeterReading, RegisterMeter
from tests.conftest import INTERVAL, Cast, key

HOME_LIMIT = 5_000 * INTERVAL // 3600  # 1,250 Wh per interval at 5 kW


@pytest.fixture
def t0(net: Cast) -> int:
    """Start of the first interval; the clock is moved to its end, so it may be reported."""
    start = net.sb.time
    assert start % INTERVAL == 0
    net.sb.advance(4 * INTERVAL)  # intervals t0 .. t0 + 3 * INTERVAL have ended
    return start


def _record(net: Cast, meter: bytes, start: int) -> ReadingRecord | None:
    return net.sb.state.get(metering.reading_key(meter, start), ReadingRecord)


# --- accepted readings --------------------------------------------------------------------
def test_reading_mints_export_to_owner(net: Cast, t0: int) -> None:
    events = net.ok(net.home_meter, MeterReading(t0, 300, 1_000))
    assert [e.kind for e in events] == ["reading", "minted"]
    assert events[0].attrs == {
        "meter": net.home_meter.address,
        "interval": t0,
        "import_wh": 300,
        "export_wh": 1_000,
    }
    assert events[1].attrs == {
        "to": net.home.address,
        "meter": net.home_meter.address,
        "interval": t0,
        "amount": 1_000,
        "total": 1_000,  # GRID minted so far: the chain's first reading
        "to_balance": 1_000,  # the owner's GRID after it
    }
    assert net.grid(net.home.address) == 1_000
    assert net.grid(net.home_meter.address) == 0  # the meter's own account holds nothing
    assert net.supply().grid_minted_wh == 1_000
    meter = net.meter(net.home_meter.address)
    assert (meter.last_interval, meter.import_register_wh, meter.export_register_wh) == (
        t0,
        300,
        1_000,
    )
    assert _record(net, net.home_meter.address, t0) == ReadingRecord(
        net.home.address, "BKK", t0, 300, 1_000, 1_000, net.sb.height
    )


def test_reading_mints_only_the_delta(net: Cast, t0: int) -> None:
    net.ok(net.home_meter, MeterReading(t0, 0, 1_000))
    events = net.ok(net.home_meter, MeterReading(t0 + INTERVAL, 0, 1_800))
    assert events[1].attrs["amount"] == 800
    assert net.grid(net.home.address) == 1_800
    assert net.supply().grid_minted_wh == 1_800


def test_import_is_recorded_but_mints_nothing(net: Cast, t0: int) -> None:
    events = net.ok(net.consumer_meter, MeterReading(t0, 2_000, 0))
    assert [e.kind for e in events] == ["reading"]
    assert events[0].attrs["import_wh"] == 2_000
    assert net.grid(net.consumer.address) == 0
    assert net.supply().grid_minted_wh == 0
    record = _record(net, net.consumer_meter.address, t0)
    assert record is not None and (record.import_wh, record.minted_wh) == (2_000, 0)
    assert net.meter(net.consumer_meter.address).import_register_wh == 2_000


def test_zero_export_mints_nothing(net: Cast, t0: int) -> None:
    net.ok(net.home_meter, MeterReading(t0, 0, 500))
    events = net.ok(net.home_meter, MeterReading(t0 + INTERVAL, 40, 500))
    assert [e.kind for e in events] == ["reading"]
    assert net.grid(net.home.address) == 500
    assert net.supply().grid_minted_wh == 500


def test_import_is_not_capacity_limited(net: Cast, t0: int) -> None:
    net.ok(net.home_meter, MeterReading(t0, 10**9, 0))


def test_meter_nonce_advances(net: Cast, t0: int) -> None:
    net.ok(net.home_meter, MeterReading(t0, 0, 1))
    net.ok(net.home_meter, MeterReading(t0 + INTERVAL, 0, 2))
    assert net.nonce(net.home_meter.address) == 2


# --- who may sign -------------------------------------------------------------------------
def test_owner_cannot_sign_its_meter_reading(net: Cast, t0: int) -> None:
    body = MeterReading(t0, 0, 1_000)
    net.rejects(net.home, body, errors.UnknownMeter, "UNKNOWN_METER")


@pytest.mark.parametrize("code", ["MEA", "EGAT"])
def test_authority_cannot_sign_a_reading(net: Cast, t0: int, code: str) -> None:
    body = MeterReading(t0, 0, 1_000)
    net.rejects(net.sb.authority(code), body, errors.UnknownMeter, "UNKNOWN_METER")


# --- interval timing ----------------------------------------------------------------------
@pytest.mark.parametrize("offset", [1, 60, 450, 899])
def test_misaligned_interval(net: Cast, t0: int, offset: int) -> None:
    body = MeterReading(t0 + offset, 0, 100)
    net.rejects(net.home_meter, body, errors.MisalignedInterval, "MISALIGNED_INTERVAL")


def test_interval_not_yet_ended(net: Cast) -> None:
    now = net.sb.time  # aligned: the interval starting now has just begun
    body = MeterReading(now, 0, 100)
    net.rejects(net.home_meter, body, errors.ReadingOutsideWindow, "READING_OUTSIDE_WINDOW")
    body = MeterReading(now + INTERVAL, 0, 100)
    net.rejects(net.home_meter, body, errors.ReadingOutsideWindow, "READING_OUTSIDE_WINDOW")


def test_reading_within_clock_skew(net: Cast) -> None:
    skew = net.params.reading_clock_skew_seconds
    assert skew == 60
    start = net.sb.time
    net.sb.advance(INTERVAL - skew - 1)  # 61 s before the interval ends: too early
    body = MeterReading(start, 0, 100)
    net.rejects(net.home_meter, body, errors.ReadingOutsideWindow, "READING_OUTSIDE_WINDOW")
    net.sb.advance(1)  # exactly the allowed skew before the end
    net.ok(net.home_meter, body)
    assert net.grid(net.home.address) == 100


def test_interval_older_than_max_age(net: Cast) -> None:
    max_age = net.params.reading_max_age_seconds
    assert max_age == 7 * 86_400
    net.sb.advance(max_age + 4 * INTERVAL)
    now = net.sb.time
    too_old = MeterReading(now - max_age - INTERVAL, 0, 100)
    net.rejects(net.home_meter, too_old, errors.ReadingOutsideWindow, "READING_OUTSIDE_WINDOW")
    net.ok(net.home_meter, MeterReading(now - max_age, 0, 100))  # the oldest still accepted


# --- ordering -----------------------------------------------------------------------------
def test_same_interval_twice_does_not_mint_twice(net: Cast, t0: int) -> None:
    net.ok(net.home_meter, MeterReading(t0, 0, 1_000))
    supply = net.supply()
    for body in (MeterReading(t0, 0, 1_000), MeterReading(t0, 0, 1_200)):
        net.rejects(net.home_meter, body, errors.DuplicateReading, "DUPLICATE_READING")
    assert net.supply() == supply
    assert net.grid(net.home.address) == 1_000


def test_earlier_interval_after_later(net: Cast, t0: int) -> None:
    net.ok(net.home_meter, MeterReading(t0 + 2 * INTERVAL, 0, 1_000))
    for start in (t0 + INTERVAL, t0):
        body = MeterReading(start, 0, 1_000)
        net.rejects(net.home_meter, body, errors.ReadingOutOfOrder, "READING_OUT_OF_ORDER")


def test_gaps_between_intervals_allowed(net: Cast, t0: int) -> None:
    net.ok(net.home_meter, MeterReading(t0, 0, 400))
    net.ok(net.home_meter, MeterReading(t0 + 3 * INTERVAL, 0, 900))
    assert _record(net, net.home_meter.address, t0 + INTERVAL) is None
    assert net.grid(net.home.address) == 900
    assert net.meter(net.home_meter.address).last_interval == t0 + 3 * INTERVAL


# --- register values ----------------------------------------------------------------------
def test_export_register_decreasing(net: Cast, t0: int) -> None:
    net.ok(net.home_meter, MeterReading(t0, 100, 1_000))
    body = MeterReading(t0 + INTERVAL, 100, 999)
    net.rejects(net.home_meter, body, errors.RegisterNotMonotonic, "REGISTER_NOT_MONOTONIC")


def test_import_register_decreasing(net: Cast, t0: int) -> None:
    net.ok(net.home_meter, MeterReading(t0, 100, 1_000))
    body = MeterReading(t0 + INTERVAL, 99, 1_100)
    net.rejects(net.home_meter, body, errors.RegisterNotMonotonic, "REGISTER_NOT_MONOTONIC")


def test_export_above_capacity(net: Cast, t0: int) -> None:
    assert metering.max_export_wh(5_000, INTERVAL) == HOME_LIMIT == 1_250
    body = MeterReading(t0, 0, HOME_LIMIT + 1)
    net.rejects(net.home_meter, body, errors.OverCapacity, "OVER_CAPACITY")


def test_export_exactly_at_capacity(net: Cast, t0: int) -> None:
    net.ok(net.home_meter, MeterReading(t0, 0, HOME_LIMIT))
    net.ok(net.home_meter, MeterReading(t0 + INTERVAL, 0, 2 * HOME_LIMIT))
    body = MeterReading(t0 + 2 * INTERVAL, 0, 3 * HOME_LIMIT + 1)
    net.rejects(net.home_meter, body, errors.OverCapacity, "OVER_CAPACITY")
    assert net.grid(net.home.address) == 2 * HOME_LIMIT


def test_capacity_limit_rounds_down(net: Cast, t0: int) -> None:
    tiny = net.add_meter("tiny", net.home, "BKK", net.meter(net.home_meter.address).kind, 10)
    start = net.meter(tiny.address).first_interval
    net.sb.advance(INTERVAL)
    assert metering.max_export_wh(10, INTERVAL) == 2  # 2.5 Wh rounded down
    net.rejects(tiny, MeterReading(start, 0, 3), errors.OverCapacity, "OVER_CAPACITY")
    net.ok(tiny, MeterReading(start, 0, 2))


def test_reading_before_registration_is_refused(net: Cast, t0: int) -> None:
    late = net.add_meter("late", net.home, "BKK", net.meter(net.home_meter.address).kind, 5_000)
    first = net.meter(late.address).first_interval
    assert first > t0
    net.sb.advance(INTERVAL)
    net.rejects(
        late,
        MeterReading(first - INTERVAL, 0, 10),
        errors.ReadingBeforeRegistration,
        "READING_BEFORE_REGISTRATION",
    )
    net.ok(late, MeterReading(first, 0, 10))


def test_installed_registers_are_a_baseline_not_minted(net: Cast) -> None:
    """An existing meter joins with non-zero registers; only growth after that mints."""
    mea = net.sb.authority("MEA")
    meter = key("meter/installed")
    net.ok(
        mea,
        RegisterMeter(
            meter.public_key, net.home.address, "BKK", MeterKind.SOLAR, 5_000, 40_000, 1_234_567
        ),
    )
    first = net.meter(meter.address).first_interval
    net.sb.advance(INTERVAL)
    before = net.grid(net.home.address)
    net.rejects(
        meter,
        MeterReading(first, 40_000, 1_234_566),
        errors.RegisterNotMonotonic,
        "REGISTER_NOT_MONOTONIC",
    )
    net.ok(meter, MeterReading(first, 40_100, 1_234_567 + 700))
    assert net.grid(net.home.address) == before + 700
    assert net.supply().grid_minted_wh >= 700


def test_reading_after_a_gap_may_cover_every_missed_interval(net: Cast, t0: int) -> None:
    """A gateway offline for two intervals reports the third with all the energy since."""
    net.ok(net.home_meter, MeterReading(t0, 0, HOME_LIMIT))
    third = t0 + 3 * INTERVAL
    net.rejects(
        net.home_meter,
        MeterReading(third, 0, HOME_LIMIT + 3 * HOME_LIMIT + 1),
        errors.OverCapacity,
        "OVER_CAPACITY",
    )
    net.ok(net.home_meter, MeterReading(third, 0, HOME_LIMIT + 3 * HOME_LIMIT))
    record = _record(net, net.home_meter.address, third)
    assert record is not None and record.covers_from == t0 + INTERVAL
    assert net.grid(net.home.address) == 4 * HOME_LIMIT


def test_export_on_consumption_meter(net: Cast, t0: int) -> None:
    body = MeterReading(t0, 500, 1)
    net.rejects(
        net.consumer_meter,
        body,
        errors.ExportOnConsumptionMeter,
        "EXPORT_ON_CONSUMPTION_METER",
    )


def test_rejected_reading_leaves_meter_usable(net: Cast, t0: int) -> None:
    net.rejects(net.home_meter, MeterReading(t0, 0, 5_000), errors.OverCapacity, "OVER_CAPACITY")
    assert net.nonce(net.home_meter.address) == 0
    assert net.meter(net.home_meter.address).last_interval == -1
    net.ok(net.home_meter, MeterReading(t0, 0, 1_000))


# --- invariants ---------------------------------------------------------------------------
def test_mint_trace_over_many_readings(net: Cast, t0: int) -> None:
    net.sb.advance(8 * INTERVAL)
    exports = {net.home_meter: 0, net.factory_meter: 0, net.consumer_meter: 0}
    minted = 0
    for n in range(10):
        for meter, step in ((net.home_meter, 100 * n), (net.factory_meter, 1_000 * n)):
            if n % 3 == 2 and meter is net.home_meter:
                continue  # a skipped interval
            exports[meter] += step
            net.ok(meter, MeterReading(t0 + n * INTERVAL, n, exports[meter]))
            minted += step
        net.ok(net.consumer_meter, MeterReading(t0 + n * INTERVAL, 50 * n, 0))
    invariants.check_mint_trace(net.sb.state)
    assert net.supply().grid_minted_wh == minted
    assert net.grid(net.home.address) == exports[net.home_meter]
    assert net.grid(net.factory.address) == exports[net.factory_meter]
    for meter, total in exports.items():
        assert net.meter(meter.address).export_register_wh == total
